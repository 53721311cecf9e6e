"""The documentation: README stays a short front page, the pages build with
`mkdocs build --strict` (a broken link, anchor or API reference fails), and the
command reference is every command's `--help` as it is today."""
import os
import re
import subprocess
import sys

from cli_helpers import REPO

README_MAX_LINES = 200


def test_the_command_reference_is_every_help():
    done = subprocess.run([sys.executable, os.path.join(REPO, "docs", "generate_commands.py"), "--check"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr


def test_the_pages_build_strictly(tmp_path):
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                          cwd=REPO, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    api = (tmp_path / "site" / "api" / "index.html").read_text(encoding="utf-8")
    assert all(name in api for name in ("build_model", "TrainConfig", "logme", "otdd", "select_classes"))


def test_readme_is_a_front_page_whose_links_resolve():
    with open(os.path.join(REPO, "README.md"), encoding="utf-8") as handle:
        readme = handle.read()
    assert len(readme.splitlines()) <= README_MAX_LINES
    for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", readme):
        assert os.path.exists(os.path.join(REPO, target)), target
    assert "make demo" in readme and "make test" in readme

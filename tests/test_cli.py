"""The `fgtf` console script and every command's --help."""
import os
import shutil
import subprocess
import sys

import pytest

from fgtf import cli


@pytest.mark.parametrize("command", sorted(cli.COMMANDS))
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main([command, "--help"])
    assert exit_info.value.code == 0
    assert "usage:" in capsys.readouterr().out


def test_unknown_command_lists_the_known_ones(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["trian"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "unknown command 'trian'" in err and "extract-features" in err


def test_console_script_is_installed():
    script = shutil.which("fgtf", path=os.path.dirname(sys.executable)) or shutil.which("fgtf")
    assert script, "the fgtf console script is not installed (pip install -e .)"
    run = subprocess.run([script, "--help"], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and "convert" in run.stdout

"""The `fgtf` console script: commands named as their modules (former names as
aliases), `fgtf --help` with each command's purpose without importing
TensorFlow, program names as invoked, clear errors; train.sh/eval.sh paths."""
import argparse
import os
import shutil
import subprocess
import sys

import pytest

from fgtf import cli
from fgtf.checkpoints.__main__ import main as checkpoints_command
from cli_helpers import REPO

MODULE_COMMANDS = ["demo", "synthetic", "convert", "inspect", "verify", "merge", "checkpoints", "train", "recipes",
                   "evaluate", "extract_features", "linear", "domain_similarity", "select_source", "rank",
                   "visualize_attention", "simtrans", "export"]


def test_commands_are_the_module_names():
    assert list(cli.COMMANDS) == MODULE_COMMANDS
    for command, (module, purpose) in cli.COMMANDS.items():
        assert module.rsplit(".", 1)[-1] == command or (command, module) == ("synthetic", "fgtf.datasets.synthetic")
        assert purpose and "\n" not in purpose
    assert all(new in cli.COMMANDS for new in cli.ALIASES.values())


@pytest.mark.parametrize("command", MODULE_COMMANDS + sorted(cli.ALIASES))
def test_every_command_has_help_named_as_invoked(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main([command, "--help"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: fgtf {cli.ALIASES.get(command, command)} ")
    assert argparse.ArgumentParser("python -m fgtf.convert").prog == "python -m fgtf.convert"  # renaming undone


def test_subcommands_and_errors_carry_the_invoked_name(capsys):
    with pytest.raises(SystemExit):
        cli.main(["checkpoints", "convert", "--help"])
    assert capsys.readouterr().out.startswith("usage: fgtf checkpoints convert ")
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["extract_features", "--dataset", "x"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("fgtf extract_features: error: ")


def test_help_wraps_prose_keeps_examples_and_lists_and_gives_each_default_once(monkeypatch):
    from fgtf.command_line import command_parser

    monkeypatch.setattr(sys, "argv", ["fgtf demo"])  # as fgtf.cli runs a command
    monkeypatch.setenv("COLUMNS", "60")
    description = ("One paragraph of prose that is long enough\nto be wrapped again at the terminal's width, "
                   "whatever its lines.\n\n    fgtf demo --seed 1     an example, kept as written\n\n"
                   "Items:\n* first, as written\n* second")
    parser = command_parser("fgtf.demo", description)
    parser.add_argument("--seed", type=int, default=0, help="the seed")
    parser.add_argument("--out", default="x", help="where (default: beside the input)")
    parser.add_argument("--fast", action="store_true", help="go fast")
    text = parser.format_help()
    assert text.startswith("usage: fgtf demo ")
    assert ("One paragraph of prose that is long enough to be wrapped\nagain at the terminal's width, whatever "
            "its lines.") in text
    assert "\n    fgtf demo --seed 1     an example, kept as written\n" in text
    assert "Items:\n* first, as written\n* second\n" in text
    assert "the seed (default: 0)" in text and text.count("(default") == 2 and "go fast\n" in text


def test_error_prefix_is_the_command_as_typed(tmp_path, capsys):
    from cli_helpers import run_cli

    # refused before TensorFlow is imported, so the subprocess is quick
    argv = ["convert", "--checkpoint", str(tmp_path / "missing.ckpt"), "--out", str(tmp_path / "x.h5")]
    error = "error: --out must end in .weights.h5"
    code, _, err, _ = run_cli("fgtf.checkpoints", *argv)
    assert code == 2 and err == f"python -m fgtf.checkpoints: {error} (the Keras weights-file suffix)\n"
    with pytest.raises(SystemExit):
        cli.main(["checkpoints", *argv])
    assert capsys.readouterr().err.startswith(f"fgtf checkpoints: {error}")
    with pytest.raises(SystemExit):  # called from Python: named as its module
        checkpoints_command(argv)
    assert capsys.readouterr().err.startswith(f"python -m fgtf.checkpoints: {error}")
    assert os.listdir(tmp_path) == []


def test_fgtf_help_lists_each_command_with_its_purpose_fast_and_without_tensorflow():
    code = ("import sys\nfrom fgtf import cli\ntry:\n    cli.main(['--help'])\nexcept SystemExit as e:\n"
            "    assert e.code == 0\nassert 'tensorflow' not in sys.modules, 'fgtf --help imported TensorFlow'\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": REPO})
    assert done.returncode == 0 and done.stderr == "", done.stderr
    for command, (_, purpose) in cli.COMMANDS.items():
        assert any(line.split() == [command] + purpose.split() for line in done.stdout.splitlines()), command
    assert "merge-shards (merge)" in done.stdout


def test_unknown_command_lists_the_known_ones(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["trian"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("fgtf: error: unknown command 'trian'") and "extract_features" in err


def test_a_command_whose_module_or_package_is_missing_is_one_sentence(monkeypatch, tmp_path, capsys):
    (tmp_path / "needy_command.py").write_text("import absent_package_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(cli.COMMANDS, "ghost", ("fgtf.ghost", "not written yet"))
    monkeypatch.setitem(cli.COMMANDS, "needy", ("needy_command", "needs a package"))
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["ghost", "--help"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == ("fgtf: error: cannot run `fgtf ghost`: its module fgtf.ghost is not part "
                                       "of this installation\n")
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["needy"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == ("fgtf: error: cannot run `fgtf needy`: it needs the Python package "
                                       "'absent_package_xyz', which is not installed\n")


def test_console_script_is_installed():
    script = shutil.which("fgtf", path=os.path.dirname(sys.executable)) or shutil.which("fgtf")
    assert script, "the fgtf console script is not installed (pip install -e .)"
    run = subprocess.run([script, "--help"], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and "extract_features" in run.stdout


@pytest.mark.parametrize("script, flags", [
    ("train.sh", ["--dataset=synthetic", "--dataset_dir=mine/data", "--run_dir=mine/run", "--model=small_cnn",
                  "--image_size=64", "--max_number_of_steps=300", "--batch_norm_decay=0.9", "--batch_size=32",
                  "--optimizer=adam", "--learning_rate=0.001", "--opt_epsilon=1e-7", "--min_crop_area=0.5"]),
    ("eval.sh", ["--checkpoint=mine/run", "--dataset_dir=mine/data"]),
])
def test_scripts_pass_caller_relative_paths_and_vocabulary_flags(tmp_path, script, flags):
    """train.sh/eval.sh run from another directory: relative paths stay the
    caller's, and fgtf is imported from the repository the script is in."""
    fake_python = tmp_path / "python"
    fake_python.write_text('#!/bin/sh\necho "cwd=$(pwd)"\necho "path=$PYTHONPATH"\nfor a in "$@"; do echo "$a"; done\n')
    fake_python.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(PYTHON=str(fake_python), DATASET_DIR="mine/data", MODEL_DIR="mine/run")
    done = subprocess.run(["bash", os.path.join(REPO, script), "--extra"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == f"cwd={tmp_path}" and lines[1] == f"path={REPO}"
    assert lines[2] == "-m" and lines[-1] == "--extra"
    assert set(flags) <= set(lines[4:]), lines
    if script == "train.sh":  # the rest of the schedule: fgtf.train's own defaults
        assert not any(a.startswith(("--end_learning_rate", "--weight_decay")) for a in lines)


def test_train_sh_fine_tunes_a_checkpoint_with_the_original_recipe(tmp_path):
    """With CHECKPOINT_PATH the from-scratch recipe steps aside: fgtf.train's own image size, optimizer,
    learning rate and crops, as the original scripts."""
    fake_python = tmp_path / "python"
    fake_python.write_text('#!/bin/sh\nfor a in "$@"; do echo "$a"; done\n')
    fake_python.chmod(0o755)
    env = dict(os.environ, PYTHON=str(fake_python), CHECKPOINT_PATH="checkpoints/x.ckpt")
    lines = subprocess.run(["bash", os.path.join(REPO, "train.sh")], env=env, capture_output=True, text=True,
                           timeout=30).stdout.splitlines()
    assert "--checkpoint=checkpoints/x.ckpt" in lines
    assert not any(a.startswith(("--optimizer", "--learning_rate", "--opt_epsilon", "--image_size", "--min_crop_area"))
                   for a in lines)


def test_train_sh_keeps_the_networks_batch_norm_decay_for_long_runs(tmp_path):
    fake_python = tmp_path / "python"
    fake_python.write_text('#!/bin/sh\nfor a in "$@"; do echo "$a"; done\n')
    fake_python.chmod(0o755)
    env = dict(os.environ, PYTHON=str(fake_python), MAX_STEPS="20000", OPTIMIZER="momentum")
    lines = subprocess.run(["bash", os.path.join(REPO, "train.sh")], env=env, capture_output=True, text=True,
                           timeout=30).stdout.splitlines()
    assert "--max_number_of_steps=20000" in lines and "--optimizer=momentum" in lines
    assert not any(a.startswith("--batch_norm_decay") for a in lines)

"""Quiet commands: TensorFlow's start-up lines stay off the console (fd 2
captured during its import only, replayed when the import fails), `--verbose`
shows them, and a closed pipe ends a command without a traceback."""
import os
import subprocess
import sys

import pytest

from cli_helpers import REPO

# A stand-in for TensorFlow: noise on fd 2 while imported and in the device
# scan, as the real one prints; `later()` writes a line a user must see.
FAKE_TENSORFLOW = '''
import os
os.write(2, b"I0000 port.cc] oneDNN custom operations are on\\n")
if os.environ.get("FAKE_TF_BROKEN"):
    raise ImportError("libtensorflow_framework.so.2: cannot open shared object file")

class config:
    @staticmethod
    def list_physical_devices():
        os.write(2, b"E0000 cuda_platform.cc] failed call to cuInit: UNKNOWN ERROR (303)\\n")
        return []

def later():
    os.write(2, b"a real warning after the import\\n")
'''

COMMAND = '''
import sys
from tfrecord_tools.cli import cli_main

@cli_main
def main(argv=None):
    import tensorflow
    tensorflow.later()
    print("args", argv)

main()
'''


def _run(tmp_path, *args, env=None):
    (tmp_path / "tensorflow").mkdir(exist_ok=True)
    (tmp_path / "tensorflow" / "__init__.py").write_text(FAKE_TENSORFLOW)
    environment = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{REPO}", **(env or {})}
    environment.pop("TF_CPP_MIN_LOG_LEVEL", None)
    return subprocess.run([sys.executable, "-c", COMMAND, *args], capture_output=True, text=True, env=environment,
                          timeout=60)


def test_start_up_lines_are_hidden_and_later_lines_shown(tmp_path):
    done = _run(tmp_path, "--out", "x")
    assert done.returncode == 0
    assert done.stderr == "a real warning after the import\n"
    assert done.stdout == "args ['--out', 'x']\n"


def test_verbose_shows_the_start_up_lines_and_is_not_passed_on(tmp_path):
    done = _run(tmp_path, "--verbose", "--out", "x")
    assert done.returncode == 0 and done.stdout == "args ['--out', 'x']\n"
    assert done.stderr.splitlines() == ["I0000 port.cc] oneDNN custom operations are on",
                                        "a real warning after the import"]


def test_a_failing_import_shows_what_it_printed(tmp_path):
    done = _run(tmp_path, env={"FAKE_TF_BROKEN": "1"})
    assert done.returncode == 1
    assert done.stderr.startswith("I0000 port.cc] oneDNN custom operations are on\n")
    assert "ImportError: libtensorflow_framework.so.2: cannot open shared object file" in done.stderr


@pytest.mark.slow
def test_a_real_command_prints_no_tensorflow_line_on_a_cpu(tmp_path):
    """TensorFlow itself, through a command that runs a model (the export of
    a small network): nothing on stderr; with --verbose its lines."""
    from fgtf.models import build_model
    from fgtf.models.weights import save_keras_weights

    weights = str(tmp_path / "small.weights.h5")
    save_keras_weights(build_model("small_cnn", classes=3, input_shape=(32, 32, 3)), weights, "small_cnn", 3,
                       aux_logits=False)
    environment = {**os.environ, "PYTHONPATH": REPO}
    environment.pop("TF_CPP_MIN_LOG_LEVEL", None)
    command = [sys.executable, "-m", "fgtf.export", "--checkpoint", weights, "--image_size", "32", "--format", "keras"]
    quiet = subprocess.run([*command, "--out", str(tmp_path / "quiet")], capture_output=True, text=True,
                           env=environment, timeout=300)
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr
    assert quiet.stdout.startswith("wrote ")
    loud = subprocess.run([*command, "--out", str(tmp_path / "loud"), "--verbose"], capture_output=True, text=True,
                          env=environment, timeout=300)
    assert loud.returncode == 0 and "absl::InitializeLog()" in loud.stderr


def test_a_closed_pipe_ends_a_command_without_a_traceback(tmp_path):
    """`inspect DIR | head`: the reader is gone before the command writes (deterministically: its end of the pipe
    is closed first), as `head` leaves after its lines."""
    from test_convert import _make_dataset
    from fgtf import convert

    root = _make_dataset(str(tmp_path / "data"))
    convert.main(["--dataset_dir", root, "--num_shards", "1", "--num_workers", "1"])
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run([sys.executable, "-m", "tfrecord_tools.inspect", f"{root}/tfrecords"], stdout=write_end,
                              stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": REPO}, timeout=60)
    finally:
        os.close(write_end)
    assert done.stderr == "" and done.returncode == 141  # as a command killed by SIGPIPE


@pytest.mark.parametrize("command", [["fgtf", "synthetic"], ["fgtf", "simtrans"], ["tfrecord_tools.inspect"]])
def test_help_into_a_closed_pipe_ends_without_a_traceback(command):
    """`fgtf synthetic --help | head -4`: the reader may leave before the last line of the help."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run([sys.executable, "-m", *command, "--help"], stdout=write_end, stderr=subprocess.PIPE,
                              text=True, env={**os.environ, "PYTHONPATH": REPO}, timeout=60)
    finally:
        os.close(write_end)
    assert done.stderr == "" and done.returncode == 141

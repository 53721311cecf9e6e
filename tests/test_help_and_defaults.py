"""What `--help` shows a newcomer: each flag's default once, the
vocabulary's names, no internal references; `fgtf --version`; data-size
errors that say which flag to lower."""
import re
import subprocess
import sys

import numpy as np
import pytest

from cli_helpers import REPO, run_cli
from fgtf import cli
from fgtf.transfer import domain_similarity
from fgtf.transfer.domain_similarity.table import similarity_table
from fgtf.transfer.feature_store import save_features

COMMANDS_WITH_HELP = ["demo", "synthetic", "convert", "inspect", "verify", "merge", "checkpoints", "train", "evaluate",
                      "extract_features", "linear", "domain_similarity", "select_source", "visualize_attention",
                      "simtrans", "export"]


def _help(*command):
    done = subprocess.run([sys.executable, "-c", "import sys; from fgtf.cli import main; main(sys.argv[1:])",
                           *command, "--help"], capture_output=True, text=True, timeout=60,
                          env={"PYTHONPATH": REPO, "PATH": ""})
    assert done.returncode == 0 and done.stderr == "", done.stderr
    return done.stdout


def _options(text):
    """{flags: help text on one line} of a --help output's option entries."""
    entries = re.split(r"\n  (?=-)", text.split("options:", 1)[1])
    return {entry.split("  ")[0].strip(): " ".join(entry.split()) for entry in entries[1:]}


@pytest.mark.parametrize("command", COMMANDS_WITH_HELP)
def test_every_flag_shows_its_default_once(command):
    text = _help(command)
    for flags, entry in _options(text).items():
        assert entry.count("(default:") <= 1, entry
        assert not re.search(r"\(default: (None|True|False)\)", entry), entry
    assert text.rstrip().endswith(cli.VERBOSE_HELP)


def test_train_and_evaluate_help_speak_the_vocabulary():
    train = _help("train")
    assert "--dataset NAME, --dataset_name NAME" in train and "--run_dir DIR, --train_dir DIR" in train
    assert "--image_size N, --train_image_size N" in train and "--checkpoint PATH, --checkpoint_path PATH" in train
    example = train.split("options:")[0]
    assert "--dataset_name" not in example and "--model_name" not in example and "--train_dir" not in example
    assert "fgtf.input_pipeline" not in train
    assert "--no_ema" in train and "(default: True)" not in train
    assert "--image_size N, --eval_image_size N" in _help("evaluate")


def test_checkpoints_help_names_no_internal_function():
    text = _help("checkpoints")
    for internal in ("checkpoint_kind", "load_network", "load_into", "describe", "fgtf.models.weights"):
        assert internal not in text


def test_version():
    done = subprocess.run([sys.executable, "-c", "import sys; from fgtf.cli import main; main(sys.argv[1:])",
                           "--version"], capture_output=True, text=True, timeout=60, env={"PYTHONPATH": REPO})
    import fgtf

    assert done.returncode == 0 and done.stdout == f"fgtf {fgtf.__version__}\n"
    assert "fgtf --version" in cli.usage()


def test_too_few_images_for_min_images_says_to_lower_it(tmp_path):
    rng = np.random.default_rng(0)
    for name in ("source", "target"):
        save_features(str(tmp_path), name, "train", rng.normal(size=(12, 4)), np.repeat([0, 1, 2], 4))
    code, stdout, stderr, _ = run_cli("fgtf.transfer.domain_similarity", "--features", str(tmp_path),
                                      "--sources", "source", "--targets", "target")
    assert code == 2 and stdout == ""
    assert stderr.strip().endswith("no source class has --min_images 200 images (the largest has 4); lower "
                                   "--min_images, e.g. --min_images 4")
    with pytest.raises(domain_similarity.TooFewImages, match="the largest has 4"):  # the library's own error
        similarity_table(str(tmp_path), ["source"], ["target"])

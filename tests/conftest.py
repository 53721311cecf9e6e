"""Shared test fixtures: the reference folder and generated slim checkpoints."""
import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


def reference_dir():
    """`FGTF_REFERENCE_DIR`, or ../shared/reference beside the repository."""
    return Path(os.environ.get("FGTF_REFERENCE_DIR", REPO.parent / "shared" / "reference"))


def relative_l2(actual, expected):
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    return float(np.linalg.norm(actual - expected) / np.linalg.norm(expected))


def reference_input(npz):
    """Input A of shared/reference/slim/README.md, from the npz's `input_seed`."""
    seed = int(npz["input_seed"])
    return np.random.default_rng(seed).uniform(-1, 1, (2, 299, 299, 3)).astype(np.float32)


def _slim_checkpoint_writer():
    path = reference_dir() / "slim" / "make_slim_checkpoint.py"
    spec = importlib.util.spec_from_file_location("make_slim_checkpoint", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def slim_checkpoint(tmp_path_factory):
    """`slim_checkpoint(net)` -> prefix of the deterministic checkpoint that
    make_slim_checkpoint.py writes from `<net>_variables.txt` (made once per session)."""
    made = {}

    def make(net):
        if net not in made:
            writer = _slim_checkpoint_writer()
            variables = writer.read_variables_file(reference_dir() / "slim" / f"{net}_variables.txt")
            prefix = str(tmp_path_factory.mktemp(net) / net)
            writer.write_checkpoint(variables, prefix)
            made[net] = prefix
        return made[net]

    return make


@pytest.fixture(scope="session")
def slim_reference():
    """`slim_reference(net)` -> the loaded `<net>.npz` of the slim references."""
    return lambda net: np.load(reference_dir() / "slim" / f"{net}.npz")


@pytest.fixture(scope="session")
def heads_reference():
    """`heads_reference(name)` -> the loaded `heads/<name>.npz`."""
    return lambda name: np.load(reference_dir() / "heads" / f"{name}.npz")

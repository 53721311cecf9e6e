"""Shared test fixtures: the reference folder and generated slim checkpoints."""
import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


def reference_dir():
    """`FGTF_REFERENCE_DIR`, or the suite's own copy in tests/reference."""
    return Path(os.environ.get("FGTF_REFERENCE_DIR", REPO / "tests" / "reference"))


def relative_l2(actual, expected):
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    return float(np.linalg.norm(actual - expected) / np.linalg.norm(expected))


def reference_input(npz):
    """Input A of tests/reference/slim/README.md, from the npz's `input_seed`."""
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


def check_slim_reference(net, checkpoint_prefix, ref):
    """Build `net` with fgtf, load the generated slim checkpoint, run input A and
    compare every output stored in the reference npz `ref` (README tolerances:
    relative L2 < 1e-4; end-point means within 1e-4 * rms of their channel means)."""
    import keras

    from fgtf.checkpoints import load_slim_checkpoint
    from fgtf.models import build_model, feature_endpoint

    has_aux = "aux_logits" in ref
    # only the Inception builders take aux_logits (the ResNets have no aux head)
    extra = {"aux_logits": True} if has_aux else {}
    model = build_model(net, classes=10, classifier_activation=None, **extra)
    load_slim_checkpoint(model, checkpoint_prefix)
    endpoints = sorted(k[len("endpoint_"):-len("_mean")] for k in ref.files if k.startswith("endpoint_"))
    maps = [model.get_layer(name).output for name in [feature_endpoint(net)] + endpoints]
    heads = model.outputs
    probe = keras.Model(model.input, maps + heads)
    outputs = [np.asarray(o) for o in probe(reference_input(ref), training=False)]
    features, endpoint_maps, heads = outputs[0], outputs[1:1 + len(endpoints)], outputs[1 + len(endpoints):]

    errors = {"features": relative_l2(features.mean(axis=(1, 2)), ref["features"]),
              "logits": relative_l2(heads[0], ref["logits"])}
    if has_aux:
        errors["aux_logits"] = relative_l2(heads[1], ref["aux_logits"])
    for name, value in zip(endpoints, endpoint_maps):
        channel_mean = value.mean(axis=(1, 2))
        errors[f"channel_mean_{name}"] = relative_l2(channel_mean, ref[f"channel_mean_{name}"])
        rms = np.sqrt(np.mean(np.square(ref[f"channel_mean_{name}"])))
        errors[f"endpoint_{name}_mean"] = float(np.max(np.abs(value.mean(axis=(1, 2, 3)) - ref[f"endpoint_{name}_mean"]))) / rms
    bad = {k: v for k, v in errors.items() if not v < 1e-4}
    assert not bad, f"{net}: outputs differ from the slim reference: {bad}"
    return errors


_JAX_REFERENCE_CHECK = """
import json, sys
sys.path.insert(0, sys.argv[1])
import keras
import numpy as np
import fgtf.models
from conftest import check_slim_reference, reference_dir

assert keras.backend.backend() == "jax", keras.backend.backend()
build_model = fgtf.models.build_model

def build_without_tensorflow(name, **kwargs):
    model = build_model(name, **kwargs)
    assert "tensorflow" not in sys.modules, "building the model imported TensorFlow"
    return model

fgtf.models.build_model = build_without_tensorflow
net, prefix = sys.argv[2], sys.argv[3]
errors = check_slim_reference(net, prefix, np.load(reference_dir() / "slim" / f"{net}.npz"))
print(json.dumps({k: float(v) for k, v in errors.items()}))
"""


def check_slim_reference_on_jax(net, checkpoint_prefix):
    """`check_slim_reference` in a fresh process with KERAS_BACKEND=jax; building
    the model must not import TensorFlow (only the checkpoint reader does).
    Returns the errors dict of that process."""
    import json
    import subprocess
    import sys

    env = dict(os.environ, KERAS_BACKEND="jax", TF_CPP_MIN_LOG_LEVEL="3",
               # the forward runs op by op, so XLA compile time dominates: skip its optimisations
               XLA_FLAGS="--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true")
    run = subprocess.run([sys.executable, "-c", _JAX_REFERENCE_CHECK, str(Path(__file__).parent), net,
                          str(checkpoint_prefix)], env=env, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


@pytest.fixture
def model_registry(monkeypatch):
    """`fgtf.models.register_model` for this test only: what it registers is
    gone after the test (the registry is a copy restored afterwards)."""
    from fgtf import models

    monkeypatch.setattr(models, "_MODELS", dict(models._MODELS))
    return models.register_model


@pytest.fixture(scope="module")
def tiny_models_registered():
    """tests/tiny_models.py's networks (tiny_net, tiny_swin, tiny_aux_net) in
    the registry for one test module (`pytestmark = pytest.mark.usefixtures(...)`),
    removed after it."""
    import tiny_models
    from fgtf import models

    saved = dict(models._MODELS)
    tiny_models.register()
    yield
    models._MODELS.clear()
    models._MODELS.update(saved)

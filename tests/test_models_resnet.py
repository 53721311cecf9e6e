"""torchvision's ResNets (fgtf.models.resnet): outputs equal torchvision's on
weights it saved (tests/reference/torchvision/make_resnet_reference.py), from
`.pth` files of both torch formats; state-dict names, classifier skipping and
recognising a network by its state dict."""
import importlib.util

import numpy as np
import pytest

from conftest import reference_dir, relative_l2
from fgtf.models import build_model, default_image_size, default_preprocessing, feature_endpoint
from fgtf.models.resnet import BLOCKS, network_of_state_dict
from fgtf.checkpoints import torch_network
from fgtf.models.weights import torch_key
from pth_writer import write_legacy_pth, write_pth

TOLERANCE = 1e-4


def _torch_weights():
    spec = importlib.util.spec_from_file_location(
        "torch_weights", reference_dir() / "torchvision" / "torch_weights.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


torch_weights = _torch_weights()


def _listing(net):
    return torch_weights.read_listing(reference_dir() / "torchvision" / f"{net}_state_dict.txt")


@pytest.fixture(scope="module")
def reference():
    return np.load(reference_dir() / "torchvision" / "resnets.npz")


def _write(path, state, torch_format):
    """`state` as torchvision's files (zip: the plain state dict) or as a
    training script's (legacy: under `state_dict`, DataParallel's `module.`)."""
    if torch_format == "zip":
        write_pth(path, state)
    else:
        write_legacy_pth(path, {"state_dict": {f"module.{k}": v for k, v in state.items()}, "epoch": 90})


def _check_outputs(net, path, reference, sizes=(224, 448)):
    """Build `net` from the `.pth` at `path` at each size; returns the relative L2 errors."""
    import keras

    errors = {}
    for size in sizes:
        model = build_model(net, weights=str(path), classes=1000, classifier_activation=None,
                            input_shape=(size, size, 3))
        probe = keras.Model(model.input, [model.output, model.get_layer("layer4").output])
        images = torch_weights.reference_images(int(reference["input_seed"]), size)
        logits, layer4 = (np.asarray(o) for o in probe(images, training=False))
        errors[f"{size}_logits"] = relative_l2(logits, reference[f"{net}_{size}_logits"])
        errors[f"{size}_features"] = relative_l2(layer4.mean(axis=(1, 2)), reference[f"{net}_{size}_features"])
        errors[f"{size}_channel_mean"] = relative_l2(layer4.mean(axis=3), reference[f"{net}_{size}_channel_mean"])
    return errors


@pytest.mark.reference
@pytest.mark.parametrize("net", ["resnet18", pytest.param("resnet50", marks=pytest.mark.slow)])
@pytest.mark.parametrize("torch_format", ["zip", "legacy"])
def test_outputs_equal_torchvision(net, torch_format, reference, tmp_path, capsys):
    path = tmp_path / f"{net}.pth"
    _write(path, torch_weights.state_dict(_listing(net)), torch_format)
    errors = _check_outputs(net, path, reference)
    with capsys.disabled():
        print(f"\n{net} ({torch_format}): " + ", ".join(f"{k} {v:.1e}" for k, v in errors.items()))
    assert max(errors.values()) < TOLERANCE, errors


@pytest.mark.reference
def test_ignoring_the_running_statistics_would_fail(reference, tmp_path):
    # the reference weights' batch-norm statistics are far from torch's defaults
    state = torch_weights.state_dict(_listing("resnet18"))
    for key in state:
        if key.endswith("running_mean"):
            state[key] = np.zeros_like(state[key])
        elif key.endswith("running_var"):
            state[key] = np.ones_like(state[key])
    path = tmp_path / "defaults.pth"
    write_pth(path, state)
    errors = _check_outputs("resnet18", path, reference, sizes=(224,))
    assert min(errors.values()) > 100 * TOLERANCE, errors


@pytest.mark.parametrize("net", ["resnet18", "resnet50"])
def test_weight_names_are_torchvisions_state_dict(net):
    model = build_model(net, classes=1000)
    keys = {torch_key(variable.path)[0] for variable in model.weights}
    expected = {key for key, _, _ in _listing(net) if not key.endswith("num_batches_tracked")}
    assert keys == expected


@pytest.mark.parametrize("net", sorted(BLOCKS))
def test_a_state_dict_says_its_network(net):
    model = build_model(net, include_top=False, input_shape=(32, 32, 3))
    state = {torch_key(variable.path)[0]: None for variable in model.weights}
    assert network_of_state_dict(state) == net == torch_network(state)
    assert feature_endpoint(net) == "layer4" and default_image_size(net) == 224
    assert default_preprocessing(net) == "simtrans"


def test_classifier_of_another_class_count_or_no_top_is_skipped_in_one_line(tmp_path, capsys):
    import keras

    state = torch_weights.state_dict(_listing("resnet18"))
    path = tmp_path / "resnet18.pth"
    write_pth(path, state)
    images = torch_weights.reference_images(0, 64)

    features = build_model("resnet18", include_top=False, pooling="avg", input_shape=(64, 64, 3), weights=str(path))
    assert "skipped the classifier fc" in capsys.readouterr().out
    tuned = build_model("resnet18", classes=7, input_shape=(64, 64, 3), weights=str(path))
    line = capsys.readouterr().out
    assert "skipped the classifier fc" in line and "1000 classes" in line and "left as initialised" in line
    # the backbone under the new classifier is the checkpoint's
    pooled = keras.Model(tuned.input, tuned.get_layer("avgpool").output)
    np.testing.assert_allclose(pooled(images), features(images), rtol=1e-5, atol=1e-5)
    assert tuned.get_layer("fc").kernel.shape == (512, 7)

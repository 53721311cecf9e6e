"""The contract every network of the registry (`fgtf.models.list_models()`)
keeps: it builds at the minimum input size its record states and refuses one
pixel less, its feature end point is a layer reachable by name, and its
weights come back from a `.weights.h5` through the loader its builder's
`weights=` uses, with equal outputs."""
import numpy as np
import pytest

from fgtf.models import build_model, feature_endpoint, list_models, model_record
from fgtf.models.weights import load_weights

CLASSES = 3
# More than 40 M weights each: 10-25 s apiece to build, run and round-trip on a
# loaded 2-core CPU; the smaller member of each family keeps the default run short.
SLOW = {"inception_v4", "inception_resnet_v2", "inception_resnet_v2_se", "resnet_v2_101", "resnet_v2_152",
        "resnet101", "resnet152",
        "swin_small", "swin_base"}


def _networks(names):
    return [pytest.param(name, marks=pytest.mark.slow) if name in SLOW else name for name in names]


NETWORKS = _networks(list_models())
SIZED_NETWORKS = _networks(name for name in list_models() if model_record(name).min_size)


@pytest.fixture(scope="module")
def built():
    """`built(name)` -> network `name` with a small classifier (logits) at its
    minimum input size (its default size when the record has none), built once
    per module."""
    networks = {}

    def build(name):
        if name not in networks:
            size = model_record(name).min_size
            networks[name] = build_model(name, input_shape=(size, size, 3) if size else None, classes=CLASSES,
                                         classifier_activation=None)
        return networks[name]

    return build


@pytest.mark.parametrize("name", NETWORKS)
def test_builds_at_its_minimum_size_with_its_feature_end_point(name, built):
    network = built(name)
    size = model_record(name).min_size
    if size:
        assert network.input_shape == (None, size, size, 3)
    assert network.output_shape == (None, CLASSES)
    end_point = network.get_layer(feature_endpoint(name))
    batch, height, width, channels = end_point.output.shape  # a spatial map, not a vector
    assert batch is None and height >= 1 and width >= 1 and channels >= 1


@pytest.mark.parametrize("name", SIZED_NETWORKS)
def test_refuses_an_input_below_its_minimum_size(name):
    side = model_record(name).min_size - 1
    with pytest.raises(ValueError):
        build_model(name, input_shape=(side, side, 3), classes=CLASSES)


@pytest.mark.parametrize("name", NETWORKS)
def test_weights_file_round_trip(name, built, tmp_path):
    network = built(name)
    side = network.input_shape[1]
    images = np.random.default_rng(0).uniform(-1, 1, (1, side, side, 3)).astype(np.float32)
    expected = np.asarray(network(images, training=False))
    path = str(tmp_path / f"{name}.weights.h5")
    network.save_weights(path)
    network.set_weights([np.zeros(weight.shape, weight.dtype) for weight in network.weights])
    load_weights(network, path)
    np.testing.assert_array_equal(np.asarray(network(images, training=False)), expected)
    assert not np.allclose(expected, 0)  # the outputs compared depend on the weights

"""ResNet-v2 50 / 101 / 152 ports against the TF-Slim references, plus input
sizes, pooling, and a run on Keras's JAX backend."""
import importlib.util

import keras
import numpy as np
import pytest

from conftest import check_slim_reference, check_slim_reference_on_jax, relative_l2
from fgtf.models import feature_endpoint
from fgtf.models.resnet_v2 import ResNet50V2


@pytest.mark.reference
@pytest.mark.parametrize("net", ["resnet_v2_50", "resnet_v2_101", "resnet_v2_152"])
def test_matches_slim_reference(net, slim_checkpoint, slim_reference):
    check_slim_reference(net, slim_checkpoint(net), slim_reference(net))


def test_headless_at_448_loads_a_full_checkpoint_and_pools(slim_checkpoint):
    """include_top=False leaves the checkpoint's `logits` out; pooling='avg'
    averages the 14x14 `postnorm.Relu` map of a 448 input."""
    model = ResNet50V2(include_top=False, pooling="avg", input_shape=(448, 448, 3),
                       weights=slim_checkpoint("resnet_v2_50"))
    assert model.output_shape == (None, 2048)
    # 448 -> conv1 224 -> pool1 112 -> blocks 56, 28, 14, 14
    assert [model.get_layer(f"block{k}").output.shape[1] for k in range(1, 5)] == [56, 28, 14, 14]
    assert model.get_layer("postnorm.Relu").output.shape == (None, 14, 14, 2048)
    assert not np.allclose(np.asarray(model.get_layer("postnorm").beta), 0.0)


def test_logits_at_448_are_the_classifier_on_the_feature_mean(slim_checkpoint):
    """Away from 299 the logits still come from the spatial mean of
    `postnorm.Relu` (slim's global_pool)."""
    model = ResNet50V2(input_shape=(448, 448, 3), classes=10, classifier_activation=None,
                       weights=slim_checkpoint("resnet_v2_50"))
    probe = keras.Model(model.input, [model.get_layer(feature_endpoint("resnet_v2_50")).output, model.output])
    images = np.random.default_rng(1).uniform(-1, 1, (2, 448, 448, 3)).astype(np.float32)
    features, logits = (np.asarray(o) for o in probe(images, training=False))
    kernel, bias = (np.asarray(w) for w in model.get_layer("logits").weights)
    expected = features.mean(axis=(1, 2)) @ kernel[0, 0] + bias
    assert features.shape == (2, 14, 14, 2048)
    assert relative_l2(logits, expected) < 1e-5


def test_too_small_input_is_refused():
    with pytest.raises(ValueError, match="below the smallest"):
        ResNet50V2(input_shape=(31, 31, 3))


@pytest.mark.reference
@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="jax is not installed")
def test_matches_slim_reference_on_jax_backend(slim_checkpoint):
    """The reference check of resnet_v2_50 in a fresh process with
    KERAS_BACKEND=jax; building the model must not import TensorFlow (only the
    checkpoint reader does)."""
    errors = check_slim_reference_on_jax("resnet_v2_50", slim_checkpoint("resnet_v2_50"))
    assert {"features", "logits"} <= set(errors)

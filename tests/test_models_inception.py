"""Inception-v3, Inception-v3-SE and Inception-v4 ports: slim reference outputs,
other input sizes, pooling, saving, and the errors a user can run into."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import check_slim_reference
from fgtf.models import feature_endpoint
from fgtf.models.inception_v3 import InceptionV3, InceptionV3SE
from fgtf.models.inception_v4 import InceptionV4
from fgtf.models.weights import load_slim_checkpoint
from fgtf.errors import UserError

BUILDERS = {"inception_v3": InceptionV3, "inception_v3_se": InceptionV3SE, "inception_v4": InceptionV4}


def _images(size, batch=2, seed=1):
    return np.random.default_rng(seed).uniform(-1, 1, (batch, size, size, 3)).astype(np.float32)


@pytest.fixture(scope="module")
def v3_any_size():
    """InceptionV3 with 7 classes (not the checkpoints' 10), aux head, logits out, any input size."""
    return InceptionV3(classes=7, aux_logits=True, classifier_activation=None, input_shape=(None, None, 3))


@pytest.mark.reference
@pytest.mark.parametrize("net", sorted(BUILDERS))
def test_matches_slim_reference(net, slim_checkpoint, slim_reference):
    errors = check_slim_reference(net, slim_checkpoint(net), slim_reference(net))
    assert {"features", "logits", "aux_logits"} <= set(errors)


@pytest.mark.parametrize("net, pooling", [("inception_v3", "avg"), ("inception_v3_se", "max")])
def test_headless_at_448(net, pooling, slim_checkpoint):
    """include_top=False at 448 gives the 12x12 feature map, pooled as asked;
    `weights=` loads a full slim checkpoint, leaving out its classifier scopes."""
    checkpoint = slim_checkpoint(net)
    model = BUILDERS[net](include_top=False, pooling=pooling, input_shape=(448, 448, 3), weights=checkpoint)
    probe = keras.Model(model.input, [model.output, model.get_layer(feature_endpoint(net)).output])
    pooled, spatial = (np.asarray(t) for t in probe(_images(448), training=False))
    assert spatial.shape == (2, 12, 12, 2048)
    expected = {"avg": spatial.mean(axis=(1, 2)), "max": spatial.max(axis=(1, 2))}[pooling]
    np.testing.assert_allclose(pooled, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(model.get_layer("Conv2d_1a_3x3").kernel.numpy(),
                                  tf.train.load_checkpoint(checkpoint).get_tensor(f"{model.name}/Conv2d_1a_3x3/weights"))


def test_v3_classifier_at_448_is_the_global_mean(v3_any_size):
    """At 448 the 1x1-conv logits are taken on the spatial mean of the 12x12 Mixed_7c map."""
    probe = keras.Model(v3_any_size.input, v3_any_size.outputs + [v3_any_size.get_layer("Mixed_7c").output])
    logits, aux, spatial = (np.asarray(t) for t in probe(_images(448), training=False))
    assert spatial.shape == (2, 12, 12, 2048) and logits.shape == (2, 7) and aux.shape == (2, 7)
    kernel, bias = (np.asarray(w) for w in v3_any_size.get_layer("Logits.Conv2d_1c_1x1").weights)
    np.testing.assert_allclose(logits, spatial.mean(axis=(1, 2)) @ kernel[0, 0] + bias, rtol=1e-4, atol=1e-5)
    assert np.all(np.isfinite(aux))


def test_v4_dense_heads_at_448(slim_checkpoint):
    """Inception-v4 with its slim checkpoint (10 classes) at 448: the FC logits
    see the spatial mean of the 12x12 Mixed_7d map; the aux FC still fits."""
    model = InceptionV4(classes=10, aux_logits=True, classifier_activation=None, input_shape=(None, None, 3),
                        weights=slim_checkpoint("inception_v4"))
    probe = keras.Model(model.input, model.outputs + [model.get_layer(feature_endpoint("inception_v4")).output])
    logits, aux, spatial = (np.asarray(t) for t in probe(_images(448), training=False))
    assert spatial.shape == (2, 12, 12, 1536) and logits.shape == (2, 10) and aux.shape == (2, 10)
    kernel, bias = (np.asarray(w) for w in model.get_layer("Logits.Logits").weights)
    np.testing.assert_allclose(logits, spatial.mean(axis=(1, 2)) @ kernel + bias, rtol=1e-4, atol=1e-5)
    assert np.all(np.isfinite(aux))


def test_same_average_pool_excludes_padding(v3_any_size):
    # slim's SAME avg-pools average only the real cells: a constant map stays constant at the border
    pool = v3_any_size.get_layer("Mixed_5b.Branch_3.AvgPool_0a_3x3")
    np.testing.assert_array_equal(np.asarray(pool(np.ones((1, 5, 5, 2), np.float32))), 1.0)


def test_wrong_class_count(v3_any_size, slim_checkpoint):
    checkpoint = slim_checkpoint("inception_v3")
    with pytest.raises(UserError, match=r"shape mismatches.*Logits/Conv2d_1c_1x1/weights \(1, 1, 2048, 10\) "
                                        r"vs Keras \(1, 1, 2048, 7\).*exclude_scopes"):
        load_slim_checkpoint(v3_any_size, checkpoint)
    read = load_slim_checkpoint(v3_any_size, checkpoint, exclude_scopes="Logits,AuxLogits")
    assert not any("Logits" in name for name in read)
    np.testing.assert_array_equal(
        v3_any_size.get_layer("Mixed_7c.Branch_2.Conv2d_0d_3x1").kernel.numpy(),
        tf.train.load_checkpoint(checkpoint).get_tensor("InceptionV3/Mixed_7c/Branch_2/Conv2d_0d_3x1/weights"))


def test_keras_save_load_round_trip(v3_any_size, tmp_path):
    """The two-output, any-size model survives `.keras` saving with its slim names."""
    images = _images(299, batch=1)
    path = tmp_path / "inception_v3.keras"
    v3_any_size.save(path)
    restored = keras.saving.load_model(path)
    assert restored.name == "InceptionV3"
    assert [layer.name for layer in restored.layers] == [layer.name for layer in v3_any_size.layers]
    for expected, actual in zip(v3_any_size(images, training=False), restored(images, training=False)):
        np.testing.assert_array_equal(np.asarray(actual), np.asarray(expected))


@pytest.mark.parametrize("builder, kwargs, message", [
    (InceptionV3, {"input_shape": (74, 74, 3)}, "below the smallest this network allows \\(75\\)"),
    (InceptionV4, {"input_shape": (60, 299, 3), "include_top": False}, "below the smallest"),
    (InceptionV3SE, {"input_shape": (298, 298, 3), "aux_logits": True}, "aux_logits=True needs input sides of at least 299"),
    (InceptionV4, {"aux_logits": True, "include_top": False}, "aux_logits=True needs include_top=True"),
])
def test_clear_argument_errors(builder, kwargs, message):
    with pytest.raises(ValueError, match=message):
        builder(**kwargs)

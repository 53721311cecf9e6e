"""fgtf.models.weights: slim name mapping, EMA shadows, exclusions and clear
errors of the TF-Slim checkpoint loader."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from fgtf.models.layers import conv_bn
from fgtf.models.weights import load_slim_checkpoint
from fgtf.errors import UserError


def _tiny(classes=3, name="Tiny"):
    inputs = keras.Input((8, 8, 3))
    x = conv_bn(inputs, 4, 3, "Conv2d_1a_3x3")
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(classes, name="Logits.Logits")(x)
    return keras.Model(inputs, outputs, name=name)


def slim_values(classes=3, rng=None):
    rng = rng or np.random.default_rng(0)
    return {
        "Tiny/Conv2d_1a_3x3/weights": rng.normal(size=(3, 3, 3, 4)),
        "Tiny/Conv2d_1a_3x3/BatchNorm/beta": rng.normal(size=4),
        "Tiny/Conv2d_1a_3x3/BatchNorm/moving_mean": rng.normal(size=4),
        "Tiny/Conv2d_1a_3x3/BatchNorm/moving_variance": rng.uniform(0.5, 1.5, 4),
        "Tiny/Logits/Logits/weights": rng.normal(size=(4, classes)),
        "Tiny/Logits/Logits/biases": rng.normal(size=classes),
    }


def write_values(prefix, values):
    names = sorted(values)
    tf.raw_ops.SaveV2(prefix=tf.constant(str(prefix)), tensor_names=tf.constant(names),
                      shape_and_slices=tf.constant([""] * len(names)),
                      tensors=[tf.constant(np.asarray(values[n], np.float32)) for n in names])
    return str(prefix)


def _weights(model):
    return {f"{l.name}/{w.name}": np.asarray(w) for l in model.layers for w in l.weights}


def test_every_weight_maps_by_slim_name(tmp_path):
    values = slim_values()
    model = _tiny()
    read = load_slim_checkpoint(model, write_values(tmp_path / "ckpt", values))
    assert sorted(read) == sorted(values)
    w = _weights(model)
    np.testing.assert_allclose(w["Conv2d_1a_3x3/kernel"], values["Tiny/Conv2d_1a_3x3/weights"], rtol=1e-6)
    np.testing.assert_allclose(w["Conv2d_1a_3x3.BatchNorm/moving_variance"],
                               values["Tiny/Conv2d_1a_3x3/BatchNorm/moving_variance"], rtol=1e-6)
    np.testing.assert_allclose(w["Logits.Logits/bias"], values["Tiny/Logits/Logits/biases"], rtol=1e-6)


def test_ema_shadows_used_for_trainable_variables_only(tmp_path):
    values = slim_values()
    shadows = {f"{n}/ExponentialMovingAverage": v + 10 for n, v in values.items()}
    prefix = write_values(tmp_path / "ckpt", {**values, **shadows, "global_step": np.array(5.0),
                                        "Tiny/Logits/Logits/weights/Momentum": values["Tiny/Logits/Logits/weights"]})
    for use_ema, offset in (("auto", 10), (True, 10), (False, 0)):
        model = _tiny()
        load_slim_checkpoint(model, prefix, use_ema=use_ema)
        w = _weights(model)
        np.testing.assert_allclose(w["Conv2d_1a_3x3/kernel"], values["Tiny/Conv2d_1a_3x3/weights"] + offset, rtol=1e-6)
        np.testing.assert_allclose(w["Conv2d_1a_3x3.BatchNorm/beta"],
                                   values["Tiny/Conv2d_1a_3x3/BatchNorm/beta"] + offset, rtol=1e-6)
        # BN moving statistics always come from their plain names
        np.testing.assert_allclose(w["Conv2d_1a_3x3.BatchNorm/moving_mean"],
                                   values["Tiny/Conv2d_1a_3x3/BatchNorm/moving_mean"], rtol=1e-6)
    with pytest.raises(UserError, match="no ExponentialMovingAverage"):
        load_slim_checkpoint(_tiny(), write_values(tmp_path / "plain", values), use_ema=True)


def test_mismatches_are_reported_together_unless_excluded(tmp_path):
    prefix = write_values(tmp_path / "ckpt", {**slim_values(classes=5), "Tiny/Extra/weights": np.ones(2)})
    with pytest.raises(UserError) as error:
        load_slim_checkpoint(_tiny(classes=3), prefix)
    message = str(error.value)
    assert "2 shape mismatches" in message and "Tiny/Logits/Logits/weights (4, 5) vs Keras (4, 3)" in message
    assert "not used by the model (Tiny/Extra/weights)" in message
    model = _tiny(classes=3)
    before = _weights(model)["Logits.Logits/kernel"].copy()
    load_slim_checkpoint(model, prefix, exclude_scopes="Tiny/Logits,Extra")
    np.testing.assert_array_equal(_weights(model)["Logits.Logits/kernel"], before)


def test_missing_variables_and_paths_are_clear_errors(tmp_path):
    values = slim_values()
    del values["Tiny/Conv2d_1a_3x3/BatchNorm/beta"]
    with pytest.raises(UserError, match="1 model weights have no checkpoint variable .*BatchNorm/beta"):
        load_slim_checkpoint(_tiny(), write_values(tmp_path / "ckpt", values))
    with pytest.raises(UserError, match="not found"):
        load_slim_checkpoint(_tiny(), str(tmp_path / "nothing.ckpt"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no TF checkpoint"):
        load_slim_checkpoint(_tiny(), str(tmp_path / "empty"))


def test_folder_with_a_checkpoint_is_accepted(tmp_path):
    folder = tmp_path / "ckpt_dir"
    folder.mkdir()
    write_values(folder / "model.ckpt", slim_values())
    load_slim_checkpoint(_tiny(), str(folder))

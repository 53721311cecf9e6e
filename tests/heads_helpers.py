"""Shared pieces of the head tests: reference comparison, a tiny backbone,
and the fit / evaluate / predict / .keras round trip every head must pass."""
import json

import numpy as np

import keras
from keras import layers


def max_errors(pairs):
    """{key: (actual, expected)} -> {key: (max|actual - expected|, max|expected|)}."""
    errors = {}
    for key, (actual, expected) in pairs.items():
        actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
        assert actual.shape == expected.shape, f"{key}: shape {actual.shape} != {expected.shape}"
        errors[key] = (float(np.max(np.abs(actual - expected))), float(np.max(np.abs(expected))))
    return errors


def assert_relative(pairs, rel=1e-4):
    """Every pair within max|actual - expected| <= rel * max|expected| (the specs' rule)."""
    errors = max_errors(pairs)
    bad = {k: e for k, e in errors.items() if not e[0] <= rel * e[1]}
    assert not bad, f"differs from the reference (max|err|, max|ref|): {bad}"


def assert_absolute(pairs, atol):
    errors = max_errors(pairs)
    bad = {k: e for k, e in errors.items() if not e[0] <= atol}
    assert not bad, f"differs from the reference by more than {atol} (max|err|, max|ref|): {bad}"


def identity_backbone(feature_shape):
    """A backbone that passes a stored feature map (H, W, C) straight to the head."""
    inputs = keras.Input(tuple(int(s) for s in feature_shape))
    return keras.Model(inputs, inputs, name="identity")


def tiny_backbone(channels=12, batch_norm=True, image_size=16):
    """Two ReLU convs on (image_size, image_size, 3) images -> (B, 8, 8, channels)."""
    inputs = keras.Input((image_size, image_size, 3))
    x = layers.Conv2D(8, 3, strides=2, padding="same", activation="relu", name="conv1")(inputs)
    if batch_norm:
        x = layers.BatchNormalization(name="bn1")(x)
    x = layers.Conv2D(channels, 3, padding="same", activation="relu", name="conv2")(x)
    return keras.Model(inputs, x, name="tiny")


def random_images(count=8, classes=5, image_size=16, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.uniform(-1, 1, (count, image_size, image_size, 3)).astype(np.float32)
    return images, rng.integers(0, classes, count)


def fit_and_round_trip(model, tmp_path, classes=5, run_eagerly=False):
    """Compile, fit 2 steps, evaluate, predict, save to .keras, load, predict
    again; returns the fit history (every logged value must be finite).
    `run_eagerly` skips tracing (faster on a loaded CPU; one graph-mode run
    per head is enough)."""
    images, labels = random_images(classes=classes)
    model.compile(keras.optimizers.SGD(0.01, momentum=0.9),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"], run_eagerly=run_eagerly)
    history = model.fit(images, labels, batch_size=4, epochs=1, verbose=0)
    for name, values in history.history.items():
        assert np.all(np.isfinite(values)), f"{name} is not finite: {values}"
    for name in model.term_names:
        assert name in history.history, f"{name} missing from the fit logs"
    evaluated = model.evaluate(images, labels, batch_size=4, verbose=0, return_dict=True)
    assert set(evaluated) == {"loss", "accuracy"}
    predicted = model.predict(images, batch_size=8, verbose=0)
    assert predicted.shape == (len(images), classes)

    path = tmp_path / f"{model.name}.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert type(loaded) is type(model)
    # (JSON: the loaded config holds lists where the original holds tuples)
    assert json.dumps(loaded.get_config()) == json.dumps(model.get_config())
    np.testing.assert_allclose(loaded.predict(images, batch_size=8, verbose=0), predicted,
                               rtol=1e-5, atol=1e-6)
    return history

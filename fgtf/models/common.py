"""Pieces every backbone builder shares: the input, global pooling, the
classifier activation, and weight loading at the end of a builder."""
import keras
from keras import layers

from fgtf.errors import InputSizeError
from fgtf.models.weights import load_weights


def model_input(input_shape=None, input_tensor=None, default_size=299, min_size=75):
    """A `keras.Input` of `input_shape` (default `(default_size, default_size, 3)`;
    `None` spatial sizes are allowed), or wrap an existing `input_tensor`."""
    if input_shape is None:
        input_shape = (default_size, default_size, 3)
    input_shape = tuple(input_shape)
    if len(input_shape) != 3 or input_shape[-1] != 3:
        raise ValueError(f"input_shape must be (height, width, 3), got {input_shape}")
    for size in input_shape[:2]:
        if size is not None and size < min_size:
            raise InputSizeError(f"input size {size} is below the smallest this network allows ({min_size})",
                                 size, min_size)
    if input_tensor is None:
        return keras.Input(shape=input_shape)
    if keras.backend.is_keras_tensor(input_tensor):
        return input_tensor
    return keras.Input(tensor=input_tensor, shape=input_shape)


def global_pool(x, pooling, name="global_pool"):
    """`pooling=None` keeps the 4-D map, `'avg'` spatial mean, `'max'` spatial max."""
    if pooling is None:
        return x
    if pooling == "avg":
        return layers.GlobalAveragePooling2D(name=name)(x)
    if pooling == "max":
        return layers.GlobalMaxPooling2D(name=name)(x)
    raise ValueError(f"pooling must be None, 'avg' or 'max', got {pooling!r}")


def predictions(logits, classifier_activation, name="Predictions"):
    """Apply `classifier_activation` (e.g. 'softmax'); `None` returns the logits."""
    if classifier_activation is None:
        return logits
    return layers.Activation(classifier_activation, name=name, dtype="float32")(logits)


def finish_model(inputs, outputs, name, weights=None, exclude_scopes=()):
    """Make the functional model (named after its slim top scope) and load
    `weights` (a checkpoint path, see `fgtf.models.weights.load_weights`),
    leaving out `exclude_scopes`: the classifier scopes this build does not have."""
    model = keras.Model(inputs, outputs, name=name)
    if weights is not None:
        load_weights(model, weights, exclude_scopes=exclude_scopes)
    return model

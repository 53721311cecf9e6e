"""Layers shared by every backbone family.

Naming rule (what lets a TF-Slim checkpoint map onto a Keras model name by
name): a Keras layer is named after its slim scope relative to the network's
top scope, with `/` written as `.` (Keras 3 forbids `/` in layer names), and
the functional model is named after the top scope itself. So the slim
variable `InceptionV3/Mixed_5b/Branch_1/Conv2d_0a_1x1/BatchNorm/beta` is the
`beta` of layer `Mixed_5b.Branch_1.Conv2d_0a_1x1.BatchNorm` in model
`InceptionV3`. `slim_variable_name` is the one place that rule is written,
and the scope helpers below (`scope_prefixes`, `in_scopes`,
`freeze_outside_scopes`) match slim scopes against layer names by it.
"""
import keras
from keras import layers

from fgtf._keras_internals import flatten_layers
from tfrecord_tools.cli import UserError

SCOPE_SEPARATOR = "."

# Keras variable name -> TF-Slim variable name
_SLIM_VARIABLE = {
    "kernel": "weights",
    "bias": "biases",
    "gamma": "gamma",
    "beta": "beta",
    "moving_mean": "moving_mean",
    "moving_variance": "moving_variance",
}


def slim_variable_name(top_scope, layer_name, variable_name):
    """`('InceptionV3', 'Conv2d_1a_3x3', 'kernel')` -> `'InceptionV3/Conv2d_1a_3x3/weights'`."""
    return f"{slim_scope(top_scope, layer_name)}/{_SLIM_VARIABLE[variable_name]}"


def slim_scope(top_scope, layer_name):
    """`('InceptionV3', 'Logits.Conv2d_1c_1x1')` -> `'InceptionV3/Logits/Conv2d_1c_1x1'`."""
    return f"{top_scope}/{layer_name.replace(SCOPE_SEPARATOR, '/')}"


def scope(*parts):
    """Join slim scope parts into a Keras layer name: `scope('Mixed_5b', 'Branch_0')`."""
    return SCOPE_SEPARATOR.join(p for p in parts if p)


def freeze_outside_scopes(model, trainable_scopes):
    """Keep only the layers under the given slim scopes trainable (e.g.
    `Logits,AuxLogits` to train the classifier only). Scopes are matched on
    the naming rule above (`Mixed_7c` covers `Mixed_7c.*`) and may carry the
    model's top scope (`InceptionV3/Logits`).
    Returns the names of the layers left trainable."""
    prefixes = scope_prefixes(model, trainable_scopes)
    if not prefixes:
        return [layer.name for layer in model.layers]
    kept = []
    for layer in weight_layers(model):
        keep = in_scopes(layer.name, prefixes)
        layer.trainable = keep
        if keep and layer.weights:
            kept.append(layer.name)
    if not kept:
        raise UserError(f"--trainable_scopes {trainable_scopes} match no layer with weights in {model.name}")
    return kept


def scope_list(scopes):
    """Slim scopes given as a comma-separated string or a list, as a list of
    names without surrounding blanks and slashes (empty entries dropped)."""
    return [s.strip().strip("/") for s in (scopes.split(",") if isinstance(scopes, str) else scopes)
            if s and s.strip()]


def scope_prefixes(model, scopes):
    """Layer-name prefixes of comma-separated slim scopes (a list or a string),
    the model's top scope (`InceptionV3/`) dropped."""
    prefixes = []
    for s in scope_list(scopes):
        parts = s.split("/")
        if len(parts) > 1 and _has_top_scope(model, parts[0]):
            parts = parts[1:]
        prefixes.append(SCOPE_SEPARATOR.join(parts))
    return prefixes


def in_scopes(layer_name, prefixes):
    return any(layer_name == p or layer_name.startswith(p + SCOPE_SEPARATOR) for p in prefixes)


def weight_layers(model):
    """The layers of `model` and of the models nested in it (a head's backbone), models themselves left out."""
    return [layer for layer in flatten_layers(model)
            if not isinstance(layer, keras.Model)]


def _has_top_scope(model, name):
    return model.name == name or any(isinstance(l, keras.Model) and l.name == name
                                     for l in flatten_layers(model))


def conv_bn(x, filters, kernel_size, name, strides=1, padding="same",
            epsilon=1e-3, momentum=0.9997, scale=False, activation="relu"):
    """Slim `conv2d` inside an arg scope with batch norm: conv (no bias) -> BN -> ReLU.

    `name` is the slim scope of the conv (`Mixed_5b.Branch_1.Conv2d_0a_1x1`); the
    BN layer is `<name>.BatchNorm`. Inception nets use epsilon 1e-3, decay
    (Keras momentum) 0.9997 and no `gamma` (scale=False); ResNet-v2 uses
    epsilon 1e-5, decay 0.997 and `gamma`.
    """
    x = layers.Conv2D(filters, kernel_size, strides=strides, padding=padding,
                      use_bias=False, name=name)(x)
    x = layers.BatchNormalization(epsilon=epsilon, momentum=momentum, scale=scale,
                                  name=scope(name, "BatchNorm"))(x)
    if activation:
        x = layers.Activation(activation, name=scope(name, "Relu"))(x)
    return x


def se_block(x, name, reduction=16, output_name=None):
    """Squeeze-and-excitation: `x * sigmoid(conv_b(relu(conv_a(mean_HW(x)))))`.

    Slim variables `<name>/SE_block/Conv` (squeeze, int(C / reduction) outputs)
    and `<name>/SE_block/Conv_1` (excite), both 1x1 convs with biases, no BN.
    `output_name` names the product (e.g. the end point `Mixed_5b`).
    """
    channels = x.shape[-1]
    block = scope(name, "SE_block")
    s = layers.GlobalAveragePooling2D(keepdims=True, name=scope(block, "squeeze"))(x)
    s = layers.Conv2D(int(channels / reduction), 1, activation="relu", name=scope(block, "Conv"))(s)
    s = layers.Conv2D(channels, 1, activation="sigmoid", name=scope(block, "Conv_1"))(s)
    return layers.Multiply(name=output_name or scope(block, "excite"))([x, s])

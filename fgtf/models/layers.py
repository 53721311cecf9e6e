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
from fgtf.errors import ParameterError

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


def freeze_outside_scopes(model, trainable_scopes, matching="substring", frozen_batch_norm="train"):
    """Keep only the weights under the given scopes trainable (e.g.
    `Logits,AuxLogits` to train the classifier only), matched as
    `variables_in_scopes` does. The batch norm of layers left frozen runs as
    `frozen_batch_norm` says: `train` (slim's is_training=True, PyTorch's
    model.train(): batch statistics, moving averages updated) or `inference`
    (Keras's frozen layer: moving statistics, left as they are).
    Returns the names of the layers left trainable (all, without scopes)."""
    if not scope_list(trainable_scopes):
        return [layer.name for layer in model.layers]
    kept = {id(v) for v in variables_in_scopes(model, trainable_scopes, matching)}
    if not kept & {id(v) for v in model.trainable_weights}:
        raise ParameterError(f"`trainable_scopes` {trainable_scopes} match no trainable weight in {model.name}")
    for variable in model.trainable_weights:
        variable.trainable = id(variable) in kept
    if frozen_batch_norm == "inference":
        for layer in weight_layers(model):
            if isinstance(layer, keras.layers.BatchNormalization) and not kept & {id(v) for v in layer.weights}:
                layer.trainable = False
    return list(dict.fromkeys(v.path.rsplit("/", 1)[0] for v in model.trainable_weights))


def variables_in_scopes(model, scopes, matching="substring"):
    """The weights of `model` (and of the models nested in it, a head's
    backbone) that comma-separated scopes (a string or a list) name, in
    `model.weights` order. A weight's scope name is the name of the model
    holding it, then its layer and its own name: `InceptionV3/Logits/
    Conv2d_1c_1x1/kernel` (layer `Logits.Conv2d_1c_1x1`, see the naming rule
    above), `swin_tiny/layers/3/blocks/1/mlp/fc2/kernel`; `.` and `/` count
    alike. `substring`: a scope anywhere in that name (the CVPR 2018
    trainer's `scope in var.op.name`: `Logits` also names `AuxLogits`);
    `prefix`: whole leading parts of it, with or without the model's name
    (`Logits` names `Logits` and what lies under it)."""
    wanted = [_dotted(s) for s in scope_list(scopes)]
    if matching not in ("substring", "prefix"):
        raise ValueError(f"scope matching must be substring or prefix, not {matching!r}")
    found = []
    for variable, top in _weights_with_top_scope(model):
        relative = _dotted(variable.path)
        full = f"{top}{SCOPE_SEPARATOR}{relative}"
        if matching == "substring":
            hit = any(s in full for s in wanted)
        else:
            hit = any(name == s or name.startswith(s + SCOPE_SEPARATOR) for s in wanted for name in (relative, full))
        if hit:
            found.append(variable)
    return found


def layer_scopes(model, variables):
    """The slim scopes (`InceptionV3/AuxLogits/Conv2d_2a_5x5`) of the layers
    holding `variables`, weights of `model`: the layers of the model that
    holds each, one scope per layer, in order."""
    tops = {id(v): top for v, top in _weights_with_top_scope(model)}
    return list(dict.fromkeys(slim_scope(tops[id(v)], v.path.split("/")[0]) for v in variables))


def _weights_with_top_scope(model):
    """(weight, name of the innermost model holding it) for every weight of `model`."""
    tops = {}

    def visit(owner):
        for variable in owner.weights:
            tops[id(variable)] = owner.name
        for layer in owner.layers:
            if isinstance(layer, keras.Model):
                visit(layer)

    visit(model)
    return [(v, tops[id(v)]) for v in model.weights]


def _dotted(name):
    return name.strip().strip("/").replace("/", SCOPE_SEPARATOR)


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

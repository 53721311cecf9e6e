"""Layers shared by every backbone family.

Naming rule (what lets a TF-Slim checkpoint map onto a Keras model name by
name): a Keras layer is named after its slim scope relative to the network's
top scope, with `/` written as `.` (Keras 3 forbids `/` in layer names), and
the functional model is named after the top scope itself. So the slim
variable `InceptionV3/Mixed_5b/Branch_1/Conv2d_0a_1x1/BatchNorm/beta` is the
`beta` of layer `Mixed_5b.Branch_1.Conv2d_0a_1x1.BatchNorm` in model
`InceptionV3`. `slim_variable_name` is the one place that rule is written.
"""
from keras import layers

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

"""torchvision's ResNets 18 / 34 / 50 / 101 / 152 (`torchvision.models.resnet`,
the "v1.5" networks the PyTorch seeds start from) as Keras 3 functional
models that load torchvision's `.pth` state dicts without torch.

    model = fgtf.models.build_model("resnet50", weights="checkpoints/resnet50-19c8e357.pth",
                                    classes=1000, classifier_activation=None)

Layer names are torchvision's module names, so a state dict maps on name by
name (`fgtf.models.weights.load_torch_weights`): `conv1`, `bn1`,
`layer3.2.conv2`, `layer3.2.bn2`, `layer2.0.downsample.0` (the shortcut
conv) and `.1` (its batch norm), `fc`. End points reachable with
`model.get_layer(name)`: `layer1` .. `layer4`, the output of each stage's
last block; `layer4` is the feature end point (the map torchvision's
`avgpool` averages). Images are expected normalised as torchvision's
weights were trained: RGB in [0, 1], minus the ImageNet mean, over its std
(the `--preprocessing` pipelines other than `inception` do it).

What makes these torchvision's and not other ResNets (each changes the outputs):
* the stride of a down-sampling Bottleneck sits on its 3x3 conv (`conv2`),
  not on the first 1x1 ("v1.5"; keras.applications' ResNet50 is v1);
* torch pads symmetrically: the 7x7/2 stem conv 3 on every side, the 3x3/2
  convs and the stem max-pool 1, where TF's `SAME` would pad an even input
  0 before and 1 after;
* batch norm with epsilon 1e-5 and torch's momentum 0.1 (Keras 0.9), a
  shortcut of 1x1 conv + batch norm wherever a block changes width or
  stride, ReLU after the sum.
"""
import keras
from keras import layers

from fgtf.models.common import finish_model, global_pool, model_input, predictions

DEFAULT_SIZE = 224
MIN_SIZE = 32
FEATURE_ENDPOINT = "layer4"
# torch BatchNorm2d defaults: eps 1e-5, momentum 0.1 (Keras counts the other way)
_BN = dict(epsilon=1e-5, momentum=0.9)
_STAGE_WIDTHS = (64, 128, 256, 512)
# network -> (block kind, blocks in layer1..layer4), as torchvision's resnet18 ... resnet152
BLOCKS = {
    "resnet18": ("basic", (2, 2, 2, 2)),
    "resnet34": ("basic", (3, 4, 6, 3)),
    "resnet50": ("bottleneck", (3, 4, 6, 3)),
    "resnet101": ("bottleneck", (3, 4, 23, 3)),
    "resnet152": ("bottleneck", (3, 8, 36, 3)),
}
_EXPANSION = {"basic": 1, "bottleneck": 4}


def ResNet18(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None, classes=1000,
             classifier_activation="softmax", name="resnet18"):
    return build_resnet(*BLOCKS["resnet18"], name=name, include_top=include_top, weights=weights,
                        input_tensor=input_tensor, input_shape=input_shape, pooling=pooling, classes=classes,
                        classifier_activation=classifier_activation)


def ResNet34(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None, classes=1000,
             classifier_activation="softmax", name="resnet34"):
    return build_resnet(*BLOCKS["resnet34"], name=name, include_top=include_top, weights=weights,
                        input_tensor=input_tensor, input_shape=input_shape, pooling=pooling, classes=classes,
                        classifier_activation=classifier_activation)


def ResNet50(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None, classes=1000,
             classifier_activation="softmax", name="resnet50"):
    return build_resnet(*BLOCKS["resnet50"], name=name, include_top=include_top, weights=weights,
                        input_tensor=input_tensor, input_shape=input_shape, pooling=pooling, classes=classes,
                        classifier_activation=classifier_activation)


def ResNet101(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None, classes=1000,
              classifier_activation="softmax", name="resnet101"):
    return build_resnet(*BLOCKS["resnet101"], name=name, include_top=include_top, weights=weights,
                        input_tensor=input_tensor, input_shape=input_shape, pooling=pooling, classes=classes,
                        classifier_activation=classifier_activation)


def ResNet152(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None, classes=1000,
              classifier_activation="softmax", name="resnet152"):
    return build_resnet(*BLOCKS["resnet152"], name=name, include_top=include_top, weights=weights,
                        input_tensor=input_tensor, input_shape=input_shape, pooling=pooling, classes=classes,
                        classifier_activation=classifier_activation)


# The docstring of every builder, formatted per network as keras.applications does.
BASE_DOCSTRING = """torchvision's `{name}` ({kind} blocks, {blocks} per stage).

Args:
    include_top: add the classifier (`fc`, a Dense layer on the spatial mean
        of `layer4`, `classes` outputs).
    weights: None (torchvision's random initialisation), a torchvision state
        dict (`.pth`, zip or legacy format, plain or under `state_dict` /
        `model`; its `fc` is skipped, saying so, when its class count differs
        or the model has no top) or a `.weights.h5`.
    input_tensor, input_shape: the input, NHWC, normalised with the ImageNet
        mean and std; default `({size}, {size}, 3)`, sides of at least
        {min_size}; `None` sides allowed.
    pooling: without the top, None gives the `layer4` map
        `(batch, h, w, {channels})` (7x7 at 224), `'avg'` / `'max'` a
        `(batch, {channels})` vector.
    classes, classifier_activation: classifier width and its activation
        (`None` returns logits).
    name: model name.

Returns:
    a `keras.Model` giving `(batch, classes)` with the top, else the
    features above; any input size works (448 gives a 14x14 `layer4`).
"""


def build_resnet(kind, blocks_per_stage, *, name, include_top=True, weights=None, input_tensor=None,
                 input_shape=None, pooling=None, classes=1000, classifier_activation="softmax"):
    """Build a torchvision ResNet of `kind` ('basic' or 'bottleneck') blocks,
    `blocks_per_stage[k]` of them in `layer{k+1}`; the other arguments as
    `ResNet50`."""
    inputs = model_input(input_shape, input_tensor, default_size=DEFAULT_SIZE, min_size=MIN_SIZE)
    x = layers.ZeroPadding2D(3, name="conv1.pad")(inputs)
    x = layers.Conv2D(64, 7, strides=2, use_bias=False, kernel_initializer=_conv_init(), name="conv1")(x)
    x = layers.BatchNormalization(**_BN, name="bn1")(x)
    x = layers.Activation("relu", name="relu")(x)
    # torch pads the max-pool with -inf; after a ReLU every window holds a value >= 0, so zeros pool the same
    x = layers.ZeroPadding2D(1, name="maxpool.pad")(x)
    x = layers.MaxPooling2D(3, strides=2, name="maxpool")(x)

    block = _basic_block if kind == "basic" else _bottleneck
    for stage, (width, count) in enumerate(zip(_STAGE_WIDTHS, blocks_per_stage), 1):
        for index in range(count):
            stride = 2 if stage > 1 and index == 0 else 1
            x = block(x, width, stride, name=f"layer{stage}.{index}",
                      output_name=f"layer{stage}" if index == count - 1 else None)

    if include_top:
        x = layers.GlobalAveragePooling2D(name="avgpool")(x)
        # torch's nn.Linear initialisation: weight and bias ~ U(+-1 / sqrt(fan_in))
        limit = x.shape[-1] ** -0.5
        linear_init = keras.initializers.RandomUniform(-limit, limit)
        x = layers.Dense(classes, kernel_initializer=linear_init, bias_initializer=linear_init, name="fc")(x)
        outputs = predictions(x, classifier_activation)
    else:
        outputs = global_pool(x, pooling)
    return finish_model(inputs, outputs, name=name, weights=weights)


def _basic_block(x, width, stride, name, output_name=None):
    """torchvision `BasicBlock` `name` (`layer2.0`): two 3x3 conv-BN, the
    first with `stride`, plus the shortcut, then ReLU (named `output_name`
    when given, else `<name>.relu`)."""
    residual = _conv_bn(x, width, 3, stride, f"{name}.conv1", f"{name}.bn1")
    residual = layers.Activation("relu", name=f"{name}.relu1")(residual)
    residual = _conv_bn(residual, width, 3, 1, f"{name}.conv2", f"{name}.bn2")
    return _join(x, residual, stride, name, output_name)


def _bottleneck(x, width, stride, name, output_name=None):
    """torchvision `Bottleneck` `name`: 1x1 conv-BN-ReLU, 3x3 conv-BN-ReLU
    with `stride` (v1.5), 1x1 conv-BN to `4 * width`, plus the shortcut, then ReLU."""
    residual = _conv_bn(x, width, 1, 1, f"{name}.conv1", f"{name}.bn1")
    residual = layers.Activation("relu", name=f"{name}.relu1")(residual)
    residual = _conv_bn(residual, width, 3, stride, f"{name}.conv2", f"{name}.bn2")
    residual = layers.Activation("relu", name=f"{name}.relu2")(residual)
    residual = _conv_bn(residual, 4 * width, 1, 1, f"{name}.conv3", f"{name}.bn3")
    return _join(x, residual, stride, name, output_name)


def _join(x, residual, stride, name, output_name):
    """Shortcut + residual, then ReLU. The shortcut is `x`, or torchvision's
    `downsample` (1x1 conv with `stride`, BN) where the block changes width or stride."""
    shortcut = x
    if stride != 1 or x.shape[-1] != residual.shape[-1]:
        shortcut = _conv_bn(x, residual.shape[-1], 1, stride, f"{name}.downsample.0", f"{name}.downsample.1")
    x = layers.Add(name=f"{name}.add")([shortcut, residual])
    return layers.Activation("relu", name=output_name or f"{name}.relu")(x)


def _conv_bn(x, filters, kernel_size, stride, conv_name, bn_name):
    """Conv (no bias; torch's symmetric padding of kernel_size // 2) then batch norm."""
    pad = kernel_size // 2
    if pad and stride > 1:
        # TF's SAME would pad an even input 0 before / 1 after; torch pads both sides
        x = layers.ZeroPadding2D(pad, name=f"{conv_name}.pad")(x)
        padding = "valid"
    else:
        padding = "same"  # stride 1: SAME pads kernel_size // 2 on every side, as torch
    x = layers.Conv2D(filters, kernel_size, strides=stride, padding=padding, use_bias=False,
                      kernel_initializer=_conv_init(), name=conv_name)(x)
    return layers.BatchNormalization(**_BN, name=bn_name)(x)


def _conv_init():
    """torchvision's conv initialisation: kaiming_normal_(mode='fan_out', nonlinearity='relu')."""
    return keras.initializers.VarianceScaling(2.0, "fan_out", "untruncated_normal")


def network_of_state_dict(state):
    """The registry name of the torchvision ResNet whose state dict `state`
    (names -> arrays) is, by its blocks per stage and block kind; None when
    it is not one."""
    if "layer1.0.conv1.weight" not in state:
        return None
    kind = "bottleneck" if "layer1.0.conv3.weight" in state else "basic"
    counts = tuple(len({key.split(".")[1] for key in state if key.startswith(f"layer{stage}.")})
                   for stage in range(1, 5))
    return next((name for name, blocks in BLOCKS.items() if blocks == (kind, counts)), None)


def _docstring(name):
    kind, blocks = BLOCKS[name]
    return BASE_DOCSTRING.format(name=name, kind="Bottleneck" if kind == "bottleneck" else "BasicBlock",
                                 blocks="-".join(map(str, blocks)), size=DEFAULT_SIZE, min_size=MIN_SIZE,
                                 channels=512 * _EXPANSION[kind])


ResNet18.__doc__ = _docstring("resnet18")
ResNet34.__doc__ = _docstring("resnet34")
ResNet50.__doc__ = _docstring("resnet50")
ResNet101.__doc__ = _docstring("resnet101")
ResNet152.__doc__ = _docstring("resnet152")

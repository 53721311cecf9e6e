"""ResNet-v2 50 / 101 / 152 (pre-activation bottleneck ResNets) as TF-Slim
defines them in `nets/resnet_v2.py`, as Keras 3 functional models.

    model = ResNet50V2(include_top=False, pooling="avg", weights="checkpoints/resnet_v2_50.ckpt")

Layer names follow the slim scopes (see `fgtf.models.layers`), so a slim
`resnet_v2_50` checkpoint loads name by name. End points reachable with
`model.get_layer(name)`: `block1` .. `block4` (the residual stream after the
last unit of each block, before any batch norm) and `postnorm.Relu` (the
feature map whose spatial mean the original feature extraction used).

Slim details kept here (they change the outputs):
* the stride 2 of blocks 1-3 sits on `conv2` (the 3x3) of the LAST unit of
  the block, padded explicitly 1 before / 1 after then VALID (not `SAME`);
* a unit's shortcut is a 1x1 conv on the pre-activation when the width
  changes, else the raw input (not the pre-activation), subsampled 2x by a
  1x1 max-pool where the unit strides;
* `conv1` pads 3 / 3 explicitly, has biases and no batch norm.
"""
from keras import layers

from fgtf.models.common import finish_model, global_pool, model_input, predictions
from fgtf.models.layers import conv_bn, scope

# ResNet-v2 batch norm (slim `resnet_arg_scope`): epsilon 1e-5, decay 0.997, with gamma
_BN = dict(epsilon=1e-5, momentum=0.997)
# bottleneck widths of block1..block4; a unit outputs 4x its bottleneck width
_BOTTLENECK_WIDTHS = (64, 128, 256, 512)
_MIN_INPUT_SIZE = 32
# Bottleneck units in block1..block4 of each slim network, by its top scope.
UNITS_PER_BLOCK = {"resnet_v2_50": (3, 4, 6, 3), "resnet_v2_101": (3, 4, 23, 3), "resnet_v2_152": (3, 8, 36, 3)}


def ResNet50V2(include_top=True, weights=None, input_tensor=None, input_shape=None,
               pooling=None, classes=1000, classifier_activation="softmax", name="resnet_v2_50"):
    return build_resnet_v2(UNITS_PER_BLOCK["resnet_v2_50"], name=name, include_top=include_top, weights=weights,
                           input_tensor=input_tensor, input_shape=input_shape, pooling=pooling, classes=classes,
                           classifier_activation=classifier_activation)


def ResNet101V2(include_top=True, weights=None, input_tensor=None, input_shape=None,
                pooling=None, classes=1000, classifier_activation="softmax", name="resnet_v2_101"):
    return build_resnet_v2(UNITS_PER_BLOCK["resnet_v2_101"], name=name, include_top=include_top, weights=weights,
                           input_tensor=input_tensor, input_shape=input_shape, pooling=pooling, classes=classes,
                           classifier_activation=classifier_activation)


def ResNet152V2(include_top=True, weights=None, input_tensor=None, input_shape=None,
                pooling=None, classes=1000, classifier_activation="softmax", name="resnet_v2_152"):
    return build_resnet_v2(UNITS_PER_BLOCK["resnet_v2_152"], name=name, include_top=include_top, weights=weights,
                           input_tensor=input_tensor, input_shape=input_shape, pooling=pooling, classes=classes,
                           classifier_activation=classifier_activation)


# The docstring of every ResNet-v2 builder, formatted per network as keras.applications does.
BASE_DOCSTRING = """Slim `{scope}` (blocks of {units} bottleneck units).

Args:
    include_top: add the classifier (`logits` 1x1 conv on the spatial mean
        of `postnorm.Relu`, `classes` outputs).
    weights: None (random initialisation) or the path of a slim checkpoint
        or `.weights.h5` file; without the top, `logits` is left out.
    input_tensor, input_shape: the input, NHWC with values in [-1, 1];
        default `(299, 299, 3)`, sides of at least {min_size}; `None` sides allowed.
    pooling: without the top, None gives the `postnorm.Relu` map
        `(batch, h, w, 2048)` (10x10 at 299), `'avg'` / `'max'` a
        `(batch, 2048)` vector.
    classes, classifier_activation: classifier width and its activation
        (`None` returns logits).
    name: model name = slim top scope (`{scope}`); checkpoint
        variables are looked up under it.

Returns:
    a `keras.Model` giving `(batch, classes)` with the top, else the
    features above. The logits use the spatial mean of the last map at
    every input size (slim's `global_pool`), so 448 or 560 inputs work too.
"""


def build_resnet_v2(units_per_block, *, name, include_top=True, weights=None, input_tensor=None,
                    input_shape=None, pooling=None, classes=1000, classifier_activation="softmax"):
    """Build a slim ResNet-v2 with `units_per_block[k]` bottleneck units in
    block k+1 (e.g. `(3, 4, 6, 3)` for the 50-layer net); the other arguments
    as `ResNet50V2`."""
    inputs = model_input(input_shape, input_tensor, min_size=_MIN_INPUT_SIZE)
    # root: 7x7/2 conv with explicit 3/3 padding (slim conv2d_same), biases, no BN
    x = layers.ZeroPadding2D(3, name="conv1.Pad")(inputs)
    x = layers.Conv2D(64, 7, strides=2, padding="valid", name="conv1")(x)
    x = layers.MaxPooling2D(3, strides=2, padding="same", name="pool1")(x)

    for block_index, (width, units) in enumerate(zip(_BOTTLENECK_WIDTHS, units_per_block)):
        block = f"block{block_index + 1}"
        last_stride = 2 if block_index < 3 else 1
        for unit in range(1, units + 1):
            x = _bottleneck(x, width, stride=last_stride if unit == units else 1,
                            name=scope(block, f"unit_{unit}", "bottleneck_v2"),
                            output_name=block if unit == units else None)

    x = layers.BatchNormalization(**_BN, name="postnorm")(x)
    x = layers.Activation("relu", name="postnorm.Relu")(x)

    if include_top:
        # slim's global_pool: a spatial mean, so any input size reaches the 1x1 conv
        x = layers.GlobalAveragePooling2D(keepdims=True, name="pool5")(x)
        x = layers.Conv2D(classes, 1, name="logits")(x)
        x = layers.Flatten(name="SpatialSqueeze")(x)
        outputs = predictions(x, classifier_activation, name="predictions")
        exclude_scopes = ()
    else:
        outputs = global_pool(x, pooling)
        exclude_scopes = ("logits",)
    return finish_model(inputs, outputs, name=name, weights=weights, exclude_scopes=exclude_scopes)


def _bottleneck(x, width, stride, name, output_name=None):
    """Slim `bottleneck` (v2) unit under scope `name`
    (`block1.unit_1.bottleneck_v2`): output width `4 * width`, spatial stride
    `stride` on conv2. `output_name` names the sum (a block end point)."""
    depth = 4 * width
    preact = layers.BatchNormalization(**_BN, name=scope(name, "preact"))(x)
    preact = layers.Activation("relu", name=scope(name, "preact", "Relu"))(preact)

    if x.shape[-1] == depth:
        # slim subsample(): the raw input, not preact; 1x1 max-pool = x[:, ::s, ::s]
        shortcut = x if stride == 1 else layers.MaxPooling2D(1, strides=stride, name=scope(name, "shortcut"))(x)
    else:
        shortcut = layers.Conv2D(depth, 1, strides=stride, name=scope(name, "shortcut"))(preact)

    residual = conv_bn(preact, width, 1, name=scope(name, "conv1"), scale=True, **_BN)
    if stride == 1:
        residual = conv_bn(residual, width, 3, name=scope(name, "conv2"), scale=True, **_BN)
    else:
        # slim conv2d_same: pad 1/1 then VALID (differs from SAME on even sizes)
        residual = layers.ZeroPadding2D(1, name=scope(name, "conv2", "Pad"))(residual)
        residual = conv_bn(residual, width, 3, name=scope(name, "conv2"), strides=stride,
                           padding="valid", scale=True, **_BN)
    residual = layers.Conv2D(depth, 1, name=scope(name, "conv3"))(residual)
    return layers.Add(name=output_name or scope(name, "add"))([shortcut, residual])


def _docstring(slim_scope):
    units = ", ".join(str(n) for n in UNITS_PER_BLOCK[slim_scope])
    return BASE_DOCSTRING.format(scope=slim_scope, units=units, min_size=_MIN_INPUT_SIZE)


ResNet50V2.__doc__ = _docstring("resnet_v2_50")
ResNet101V2.__doc__ = _docstring("resnet_v2_101")
ResNet152V2.__doc__ = _docstring("resnet_v2_152")

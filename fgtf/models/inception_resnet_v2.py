"""Inception-ResNet-v2 and its squeeze-and-excitation variant as TF-Slim
defines them (`nets/inception_resnet_v2.py`, `inception_resnet_v2_se`), as
Keras 3 functional models.

    model = InceptionResNetV2(include_top=False, pooling="avg", weights="checkpoints/inception_resnet_v2.ckpt")

Layer names follow the slim scopes (see `fgtf.models.layers`), so a slim
checkpoint loads name by name. End points reachable with
`model.get_layer(name)`: `Mixed_5b` (35x35x320 at 299), `Mixed_6a`
(17x17x1088), `PreAuxLogits` (the output of the 20th block17), `Mixed_7a`
(8x8x2080) and `Conv2d_7b_1x1.Relu` (8x8x1536, the feature map whose spatial
mean the original feature extraction used; the layer named `Conv2d_7b_1x1` is
its conv, which holds the slim `Conv2d_7b_1x1/weights`).

Slim details kept here (they change the outputs):
* a residual block adds `scale * Conv2d_1x1(concat(branches))` (1x1 conv
  with biases, no BN) to its input, then applies ReLU; scales 0.17 / 0.10 /
  0.20 for block35 / block17 / block8, and the final `Block8` has scale 1.0
  and no ReLU;
* in the SE net the SE block acts on the already scaled residual, and after
  the concat of `Mixed_5b`, `Mixed_6a`, `Mixed_7a` (the end point is the SE
  output).
"""
from keras import layers

from fgtf.models import MIN_AUX_LOGITS_SIZE
from fgtf.models.common import finish_model, global_pool, model_input, predictions
from fgtf.models.layers import conv_bn, scope, se_block

_MIN_INPUT_SIZE = 75


def InceptionResNetV2(include_top=True, weights=None, input_tensor=None, input_shape=None,
                      pooling=None, classes=1000, classifier_activation="softmax",
                      aux_logits=False, dropout=0.2, name="InceptionResnetV2"):
    return build_inception_resnet_v2(se=False, name=name, include_top=include_top, weights=weights,
                                     input_tensor=input_tensor, input_shape=input_shape, pooling=pooling,
                                     classes=classes, classifier_activation=classifier_activation,
                                     aux_logits=aux_logits, dropout=dropout)


def InceptionResNetV2SE(include_top=True, weights=None, input_tensor=None, input_shape=None,
                        pooling=None, classes=1000, classifier_activation="softmax",
                        aux_logits=False, dropout=0.2, name="InceptionResnetV2SE"):
    return build_inception_resnet_v2(se=True, name=name, include_top=include_top, weights=weights,
                                     input_tensor=input_tensor, input_shape=input_shape, pooling=pooling,
                                     classes=classes, classifier_activation=classifier_activation,
                                     aux_logits=aux_logits, dropout=dropout)


# The docstring of both builders, formatted per network as keras.applications does.
BASE_DOCSTRING = """{title}

Args:
    include_top: add the classifier `Logits/Logits` (spatial mean ->
        dropout -> dense with `classes` outputs).
    weights: None (random initialisation) or the path of a slim checkpoint
        or `.weights.h5` file; the classifier scopes this build lacks
        (`Logits`, `AuxLogits`) are left out.
    input_tensor, input_shape: the input, NHWC with values in [-1, 1];
        default `(299, 299, 3)`, sides of at least {min_size} ({min_aux_size} with
        `aux_logits`); `None` sides allowed.
    pooling: without the top, None gives the `Conv2d_7b_1x1.Relu` map
        `(batch, h, w, 1536)` (8x8 at 299), `'avg'` / `'max'` a
        `(batch, 1536)` vector.
    classes, classifier_activation: classifier width and its activation
        (`None` returns logits).
    aux_logits: also output the auxiliary classifier on `PreAuxLogits`
        (needs `include_top`); the model then returns
        `[predictions, aux_predictions]`.
    dropout: dropout rate before the classifier (slim keep_prob 0.8).
    name: model name = slim top scope (`{scope}`); checkpoint
        variables are looked up under it.

Returns:
    a `keras.Model` giving `(batch, classes)` (or the list above) with the
    top, else the features above. Slim pools the last map with an 8x8
    VALID average pool and flattens the aux head's 1x1 map; here both are
    spatial means, identical at 299 and valid at other sizes (448, 560).
"""


def build_inception_resnet_v2(*, se, name, include_top=True, weights=None, input_tensor=None,
                              input_shape=None, pooling=None, classes=1000,
                              classifier_activation="softmax", aux_logits=False, dropout=0.2):
    """Build Inception-ResNet-v2, with the squeeze-and-excitation blocks of
    `inception_resnet_v2_se` when `se`; the other arguments as
    `InceptionResNetV2`."""
    if aux_logits and not include_top:
        raise ValueError("aux_logits=True needs include_top=True")
    min_size = MIN_AUX_LOGITS_SIZE if aux_logits else _MIN_INPUT_SIZE
    inputs = model_input(input_shape, input_tensor, min_size=min_size)

    # stem (as Inception-v3's): 299 -> 35x35x192
    x = conv_bn(inputs, 32, 3, strides=2, padding="valid", name="Conv2d_1a_3x3")
    x = conv_bn(x, 32, 3, padding="valid", name="Conv2d_2a_3x3")
    x = conv_bn(x, 64, 3, name="Conv2d_2b_3x3")
    x = layers.MaxPooling2D(3, strides=2, name="MaxPool_3a_3x3")(x)
    x = conv_bn(x, 80, 1, padding="valid", name="Conv2d_3b_1x1")
    x = conv_bn(x, 192, 3, padding="valid", name="Conv2d_4a_3x3")
    x = layers.MaxPooling2D(3, strides=2, name="MaxPool_5a_3x3")(x)

    x = _mixed(_mixed_5b_branches(x, "Mixed_5b"), "Mixed_5b", se)
    for i in range(1, 11):
        x = _residual_block(x, _block35_branches, 0.17, scope("Repeat", f"block35_{i}"), se)
    x = _mixed(_mixed_6a_branches(x, "Mixed_6a"), "Mixed_6a", se)
    for i in range(1, 21):
        x = _residual_block(x, _block17_branches, 0.10, scope("Repeat_1", f"block17_{i}"), se,
                            output_name="PreAuxLogits" if i == 20 else None)
    pre_aux_logits = x
    x = _mixed(_mixed_7a_branches(x, "Mixed_7a"), "Mixed_7a", se)
    for i in range(1, 10):
        x = _residual_block(x, _block8_branches, 0.20, scope("Repeat_2", f"block8_{i}"), se)
    x = _residual_block(x, _block8_branches, 1.0, "Block8", se, activation=False)
    x = conv_bn(x, 1536, 1, name="Conv2d_7b_1x1")

    if not include_top:
        outputs = global_pool(x, pooling)
        return finish_model(inputs, outputs, name=name, weights=weights, exclude_scopes=("Logits", "AuxLogits"))

    x = layers.GlobalAveragePooling2D(name="Logits.AvgPool_1a_8x8")(x)
    x = layers.Dropout(dropout, name="Logits.Dropout")(x)
    x = layers.Dense(classes, name="Logits.Logits")(x)
    outputs = predictions(x, classifier_activation, name="Predictions")
    if not aux_logits:
        return finish_model(inputs, outputs, name=name, weights=weights, exclude_scopes=("AuxLogits",))
    aux = _aux_logits(pre_aux_logits, classes)
    aux = predictions(aux, classifier_activation, name=scope("AuxLogits", "Predictions"))
    return finish_model(inputs, [outputs, aux], name=name, weights=weights)


def _mixed(branches, name, se):
    """Concatenate `branches` into end point `name` (through an SE block when `se`)."""
    if not se:
        return layers.Concatenate(name=name)(branches)
    x = layers.Concatenate(name=scope(name, "concat"))(branches)
    return se_block(x, name, output_name=name)


def _residual_block(x, branches_fn, scale, name, se, activation=True, output_name=None):
    """Slim block35 / block17 / block8 under scope `name`:
    `relu(x + scale * Conv2d_1x1(concat(branches_fn(x, name))))`, the scaled
    residual going through an SE block when `se`; `activation=False` drops the
    ReLU (final `Block8`). `output_name` names the output (an end point)."""
    mixed = layers.Concatenate(name=scope(name, "concat"))(branches_fn(x, name))
    # the up-projection back to the input width: biases, no BN, no activation
    up = layers.Conv2D(x.shape[-1], 1, name=scope(name, "Conv2d_1x1"))(mixed)
    up = layers.Rescaling(scale, name=scope(name, "scale"))(up)
    if se:
        up = se_block(up, name)
    if not activation:
        return layers.Add(name=output_name or scope(name, "add"))([x, up])
    x = layers.Add(name=scope(name, "add"))([x, up])
    return layers.Activation("relu", name=output_name or scope(name, "Relu"))(x)


def _mixed_5b_branches(x, name):
    b0 = conv_bn(x, 96, 1, name=scope(name, "Branch_0", "Conv2d_1x1"))
    b1 = conv_bn(x, 48, 1, name=scope(name, "Branch_1", "Conv2d_0a_1x1"))
    b1 = conv_bn(b1, 64, 5, name=scope(name, "Branch_1", "Conv2d_0b_5x5"))
    b2 = conv_bn(x, 64, 1, name=scope(name, "Branch_2", "Conv2d_0a_1x1"))
    b2 = conv_bn(b2, 96, 3, name=scope(name, "Branch_2", "Conv2d_0b_3x3"))
    b2 = conv_bn(b2, 96, 3, name=scope(name, "Branch_2", "Conv2d_0c_3x3"))
    b3 = layers.AveragePooling2D(3, strides=1, padding="same", name=scope(name, "Branch_3", "AvgPool_0a_3x3"))(x)
    b3 = conv_bn(b3, 64, 1, name=scope(name, "Branch_3", "Conv2d_0b_1x1"))
    return [b0, b1, b2, b3]


def _mixed_6a_branches(x, name):
    b0 = conv_bn(x, 384, 3, strides=2, padding="valid", name=scope(name, "Branch_0", "Conv2d_1a_3x3"))
    b1 = conv_bn(x, 256, 1, name=scope(name, "Branch_1", "Conv2d_0a_1x1"))
    b1 = conv_bn(b1, 256, 3, name=scope(name, "Branch_1", "Conv2d_0b_3x3"))
    b1 = conv_bn(b1, 384, 3, strides=2, padding="valid", name=scope(name, "Branch_1", "Conv2d_1a_3x3"))
    b2 = layers.MaxPooling2D(3, strides=2, name=scope(name, "Branch_2", "MaxPool_1a_3x3"))(x)
    return [b0, b1, b2]


def _mixed_7a_branches(x, name):
    b0 = conv_bn(x, 256, 1, name=scope(name, "Branch_0", "Conv2d_0a_1x1"))
    b0 = conv_bn(b0, 384, 3, strides=2, padding="valid", name=scope(name, "Branch_0", "Conv2d_1a_3x3"))
    b1 = conv_bn(x, 256, 1, name=scope(name, "Branch_1", "Conv2d_0a_1x1"))
    b1 = conv_bn(b1, 288, 3, strides=2, padding="valid", name=scope(name, "Branch_1", "Conv2d_1a_3x3"))
    b2 = conv_bn(x, 256, 1, name=scope(name, "Branch_2", "Conv2d_0a_1x1"))
    b2 = conv_bn(b2, 288, 3, name=scope(name, "Branch_2", "Conv2d_0b_3x3"))
    b2 = conv_bn(b2, 320, 3, strides=2, padding="valid", name=scope(name, "Branch_2", "Conv2d_1a_3x3"))
    b3 = layers.MaxPooling2D(3, strides=2, name=scope(name, "Branch_3", "MaxPool_1a_3x3"))(x)
    return [b0, b1, b2, b3]


def _block35_branches(x, name):
    b0 = conv_bn(x, 32, 1, name=scope(name, "Branch_0", "Conv2d_1x1"))
    b1 = conv_bn(x, 32, 1, name=scope(name, "Branch_1", "Conv2d_0a_1x1"))
    b1 = conv_bn(b1, 32, 3, name=scope(name, "Branch_1", "Conv2d_0b_3x3"))
    b2 = conv_bn(x, 32, 1, name=scope(name, "Branch_2", "Conv2d_0a_1x1"))
    b2 = conv_bn(b2, 48, 3, name=scope(name, "Branch_2", "Conv2d_0b_3x3"))
    b2 = conv_bn(b2, 64, 3, name=scope(name, "Branch_2", "Conv2d_0c_3x3"))
    return [b0, b1, b2]


def _block17_branches(x, name):
    b0 = conv_bn(x, 192, 1, name=scope(name, "Branch_0", "Conv2d_1x1"))
    b1 = conv_bn(x, 128, 1, name=scope(name, "Branch_1", "Conv2d_0a_1x1"))
    b1 = conv_bn(b1, 160, (1, 7), name=scope(name, "Branch_1", "Conv2d_0b_1x7"))
    b1 = conv_bn(b1, 192, (7, 1), name=scope(name, "Branch_1", "Conv2d_0c_7x1"))
    return [b0, b1]


def _block8_branches(x, name):
    b0 = conv_bn(x, 192, 1, name=scope(name, "Branch_0", "Conv2d_1x1"))
    b1 = conv_bn(x, 192, 1, name=scope(name, "Branch_1", "Conv2d_0a_1x1"))
    b1 = conv_bn(b1, 224, (1, 3), name=scope(name, "Branch_1", "Conv2d_0b_1x3"))
    b1 = conv_bn(b1, 256, (3, 1), name=scope(name, "Branch_1", "Conv2d_0c_3x1"))
    return [b0, b1]


def _aux_logits(x, classes):
    """Slim `AuxLogits` on the 17x17 `PreAuxLogits` map: 5x5/3 average pool
    (scope named `Conv2d_1a_3x3`), 1x1 conv 128, 5x5 VALID conv 768, dense."""
    x = layers.AveragePooling2D(5, strides=3, padding="valid", name=scope("AuxLogits", "Conv2d_1a_3x3"))(x)
    x = conv_bn(x, 128, 1, name=scope("AuxLogits", "Conv2d_1b_1x1"))
    x = conv_bn(x, 768, 5, padding="valid", name=scope("AuxLogits", "Conv2d_2a_5x5"))
    # slim flattens the 1x1 map there is at 299; the mean also serves larger inputs
    x = layers.GlobalAveragePooling2D(name=scope("AuxLogits", "Flatten"))(x)
    return layers.Dense(classes, name=scope("AuxLogits", "Logits"))(x)


def _docstring(title, slim_scope):
    return BASE_DOCSTRING.format(title=title, scope=slim_scope, min_size=_MIN_INPUT_SIZE,
                                 min_aux_size=MIN_AUX_LOGITS_SIZE)


InceptionResNetV2.__doc__ = _docstring("Slim `inception_resnet_v2`.", "InceptionResnetV2")
InceptionResNetV2SE.__doc__ = _docstring(
    "Slim `inception_resnet_v2_se`: SE blocks after `Mixed_5b`, `Mixed_6a`,\n`Mixed_7a` and in every residual block.",
    "InceptionResnetV2SE")

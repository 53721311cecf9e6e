"""Inception-v3 and Inception-v3-SE, mirroring TF-Slim's `inception_v3`.

    model = InceptionV3(classes=5089, weights="checkpoints/inception_v3_iNat_299.ckpt")
    features = InceptionV3(include_top=False, pooling="avg")  # (batch, 2048)

Layer names follow the slim scopes (`fgtf.models.layers`), so a slim
checkpoint loads name by name; the slim end points (`MaxPool_5a_3x3`,
`Mixed_5b` ... `Mixed_7c`) are layers of those exact names. The SE variant is
the same network with a squeeze-and-excitation block after the concat of
every Mixed block; its end point `Mixed_X` is the SE output.

The pieces that Inception-v4 shares (branch concat, pooled projection branch,
classifier plumbing) live here too and are imported by `inception_v4`.
"""
from keras import layers

from fgtf.models import MIN_AUX_LOGITS_SIZE
from fgtf.models.common import finish_model, global_pool, model_input, predictions
from fgtf.models.layers import conv_bn, scope, se_block

# Smallest input side each build accepts: the stride-2 VALID reductions need
# 75 to leave a 1x1 map after Mixed_7a; the auxiliary head's 5x5 VALID conv
# after a 5x5/3 pool needs the 17x17 map that 299 gives at Mixed_6e.
MIN_INPUT_SIZE = 75


def InceptionV3(include_top=True, weights=None, input_tensor=None, input_shape=None,
                pooling=None, classes=1000, classifier_activation="softmax",
                aux_logits=False, dropout=0.2, name="InceptionV3"):
    return _inception_v3(se=False, include_top=include_top, weights=weights, input_tensor=input_tensor,
                         input_shape=input_shape, pooling=pooling, classes=classes,
                         classifier_activation=classifier_activation, aux_logits=aux_logits, dropout=dropout,
                         name=name)


def InceptionV3SE(include_top=True, weights=None, input_tensor=None, input_shape=None,
                  pooling=None, classes=1000, classifier_activation="softmax",
                  aux_logits=False, dropout=0.2, name="InceptionV3SE"):
    return _inception_v3(se=True, include_top=include_top, weights=weights, input_tensor=input_tensor,
                         input_shape=input_shape, pooling=pooling, classes=classes,
                         classifier_activation=classifier_activation, aux_logits=aux_logits, dropout=dropout,
                         name=name)


# The docstring of every Inception-v3/v4 builder, formatted per network as
# keras.applications does (`inception_docstring`).
BASE_DOCSTRING = """{title}

Args:
    include_top: add the classifier (`Logits`). Without it the model returns
        the `{endpoint}` map `(batch, h, w, {channels})`, or `(batch, {channels})`
        with `pooling`.
    weights: `None` (random init) or a local checkpoint path (a TF-Slim
        `.ckpt` prefix or folder, or a `.weights.h5`). Scopes the build does
        not have (`Logits`/`AuxLogits` without the top, `AuxLogits` without
        `aux_logits`) are left out of the match.
    input_tensor: optional Keras tensor to use as the input.
    input_shape: `(height, width, 3)`, default `(299, 299, 3)`; sides of at
        least {min_size} ({min_aux_size} with `aux_logits`), or `None` for any size.
    pooling: with `include_top=False`: `None`, `'avg'` or `'max'`.
    classes: number of classes of the classifier.
    classifier_activation: activation of the outputs (`'softmax'`), or
        `None` for logits.
    aux_logits: also output the auxiliary classifier on `{aux_endpoint}`; the
        model then returns `[predictions, aux_predictions]`. Needs the top.
    dropout: dropout rate before the logits (slim `keep_prob` 0.8 = 0.2).
    name: model name; it is the slim top scope the checkpoint names use.

{classifier}

Returns:
    A `keras.Model` named `name`.
"""


def inception_docstring(title, *, endpoint, channels, aux_endpoint, classifier):
    """`BASE_DOCSTRING` for one network; `classifier` says how its logits pool."""
    return BASE_DOCSTRING.format(title=title, endpoint=endpoint, channels=channels, aux_endpoint=aux_endpoint,
                                 classifier=classifier, min_size=MIN_INPUT_SIZE, min_aux_size=MIN_AUX_LOGITS_SIZE)


def inception_input(input_shape, input_tensor, *, include_top, aux_logits):
    """Validate the top arguments and make the input of an Inception-v3/v4 build."""
    if aux_logits and not include_top:
        raise ValueError("aux_logits=True needs include_top=True")
    if aux_logits and input_shape is not None:
        small = [s for s in tuple(input_shape)[:2] if s is not None and s < MIN_AUX_LOGITS_SIZE]
        if small:
            raise ValueError(f"aux_logits=True needs input sides of at least {MIN_AUX_LOGITS_SIZE} "
                             f"(the aux head's 5x5 VALID conv), got input_shape {tuple(input_shape)}")
    return model_input(input_shape, input_tensor, default_size=299, min_size=MIN_INPUT_SIZE)


def mixed(branches, name, se=False):
    """Concatenate `branches` along channels as the end point `name` (e.g.
    `Mixed_5b`); with `se` the concat is `<name>.concat` and the end point is
    the output of the block's SE (`<name>/SE_block` in slim)."""
    if not se:
        return layers.Concatenate(name=name)(branches)
    x = layers.Concatenate(name=scope(name, "concat"))(branches)
    return se_block(x, name, output_name=name)


def pooled_projection(x, filters, block):
    """Branch_3 of the non-reduction Inception blocks: 3x3/1 SAME average pool
    (padding excluded from the mean, as TF's `avg_pool`) -> 1x1 conv."""
    branch = scope(block, "Branch_3")
    y = layers.AveragePooling2D(3, strides=1, padding="same", name=scope(branch, "AvgPool_0a_3x3"))(x)
    return conv_bn(y, filters, 1, scope(branch, "Conv2d_0b_1x1"))


def aux_head_trunk(x, conv_5x5_name):
    """Shared start of the v3/v4 auxiliary heads: 5x5/3 VALID average pool ->
    `Conv2d_1b_1x1` 128 -> 5x5 VALID conv 768 named `conv_5x5_name` (slim's
    `Conv2d_2a_5x5` in v3, `Conv2d_2a` in v4). Output 1x1x768 at 299."""
    x = layers.AveragePooling2D(5, strides=3, padding="valid", name="AuxLogits.AvgPool_1a_5x5")(x)
    x = conv_bn(x, 128, 1, "AuxLogits.Conv2d_1b_1x1")
    return conv_bn(x, 768, 5, scope("AuxLogits", conv_5x5_name), padding="valid")


def classifier_model(inputs, features, logits, aux_logits, *, include_top, pooling,
                     classifier_activation, weights, name):
    """Finish an Inception build: the predictions (and aux predictions) with
    the top, else the optionally pooled `features`; load `weights` leaving out
    the classifier scopes the build does not have."""
    if not include_top:
        return finish_model(inputs, global_pool(features, pooling), name=name, weights=weights,
                            exclude_scopes=("Logits", "AuxLogits"))
    outputs = predictions(logits, classifier_activation)
    if aux_logits is None:
        return finish_model(inputs, outputs, name=name, weights=weights, exclude_scopes=("AuxLogits",))
    aux_outputs = predictions(aux_logits, classifier_activation, name="AuxLogits.Predictions")
    return finish_model(inputs, [outputs, aux_outputs], name=name, weights=weights)


def _inception_v3(*, se, include_top, weights, input_tensor, input_shape, pooling, classes,
                  classifier_activation, aux_logits, dropout, name):
    inputs = inception_input(input_shape, input_tensor, include_top=include_top, aux_logits=aux_logits)
    x = _stem(inputs)
    x = _block_35(x, "Mixed_5b", pool_filters=32, se=se)
    x = _block_35(x, "Mixed_5c", pool_filters=64, se=se)
    x = _block_35(x, "Mixed_5d", pool_filters=64, se=se)
    x = _reduction_6a(x, se)
    for block, width in (("Mixed_6b", 128), ("Mixed_6c", 160), ("Mixed_6d", 160), ("Mixed_6e", 192)):
        x = _block_17(x, block, width, se)
    mixed_6e = x
    x = _reduction_7a(x, se)
    x = _block_8(x, "Mixed_7b", branch_1_3x1="Conv2d_0b_3x1", se=se)
    x = _block_8(x, "Mixed_7c", branch_1_3x1="Conv2d_0c_3x1", se=se)
    logits = aux = None
    if include_top:
        logits = _logits(x, classes, dropout)
        aux = _aux_logits(mixed_6e, classes) if aux_logits else None
    return classifier_model(inputs, x, logits, aux, include_top=include_top, pooling=pooling,
                            classifier_activation=classifier_activation, weights=weights, name=name)


def _stem(x):
    """299x299x3 -> 35x35x192 (`MaxPool_5a_3x3`); no SE here in either variant."""
    x = conv_bn(x, 32, 3, "Conv2d_1a_3x3", strides=2, padding="valid")
    x = conv_bn(x, 32, 3, "Conv2d_2a_3x3", padding="valid")
    x = conv_bn(x, 64, 3, "Conv2d_2b_3x3")
    x = layers.MaxPooling2D(3, strides=2, padding="valid", name="MaxPool_3a_3x3")(x)
    x = conv_bn(x, 80, 1, "Conv2d_3b_1x1", padding="valid")
    x = conv_bn(x, 192, 3, "Conv2d_4a_3x3", padding="valid")
    return layers.MaxPooling2D(3, strides=2, padding="valid", name="MaxPool_5a_3x3")(x)


def _block_35(x, block, pool_filters, se):
    """Mixed_5b/5c/5d (35x35): 1x1 | 1x1 -> 5x5 | 1x1 -> 3x3 -> 3x3 | pool -> 1x1.
    Mixed_5c's 5x5 branch carries slim's odd names (`Conv2d_0b_1x1`, `Conv_1_0c_5x5`)."""
    if block == "Mixed_5c":
        names_5x5 = ("Conv2d_0b_1x1", "Conv_1_0c_5x5")
    else:
        names_5x5 = ("Conv2d_0a_1x1", "Conv2d_0b_5x5")
    b0 = conv_bn(x, 64, 1, scope(block, "Branch_0", "Conv2d_0a_1x1"))
    b1 = conv_bn(x, 48, 1, scope(block, "Branch_1", names_5x5[0]))
    b1 = conv_bn(b1, 64, 5, scope(block, "Branch_1", names_5x5[1]))
    b2 = conv_bn(x, 64, 1, scope(block, "Branch_2", "Conv2d_0a_1x1"))
    b2 = conv_bn(b2, 96, 3, scope(block, "Branch_2", "Conv2d_0b_3x3"))
    b2 = conv_bn(b2, 96, 3, scope(block, "Branch_2", "Conv2d_0c_3x3"))
    b3 = pooled_projection(x, pool_filters, block)
    return mixed([b0, b1, b2, b3], block, se)


def _reduction_6a(x, se):
    """Mixed_6a, 35 -> 17: the stride-2 3x3 convs are named `Conv2d_1a_1x1` in slim."""
    block = "Mixed_6a"
    b0 = conv_bn(x, 384, 3, scope(block, "Branch_0", "Conv2d_1a_1x1"), strides=2, padding="valid")
    b1 = conv_bn(x, 64, 1, scope(block, "Branch_1", "Conv2d_0a_1x1"))
    b1 = conv_bn(b1, 96, 3, scope(block, "Branch_1", "Conv2d_0b_3x3"))
    b1 = conv_bn(b1, 96, 3, scope(block, "Branch_1", "Conv2d_1a_1x1"), strides=2, padding="valid")
    b2 = layers.MaxPooling2D(3, strides=2, padding="valid", name=scope(block, "Branch_2", "MaxPool_1a_3x3"))(x)
    return mixed([b0, b1, b2], block, se)


def _block_17(x, block, width, se):
    """Mixed_6b..6e (17x17, 768): 1x1 | 1x7 -> 7x1 | 7x1 -> 1x7 -> 7x1 -> 1x7 | pool -> 1x1,
    with `width` channels inside the factorised branches."""
    b0 = conv_bn(x, 192, 1, scope(block, "Branch_0", "Conv2d_0a_1x1"))
    b1 = conv_bn(x, width, 1, scope(block, "Branch_1", "Conv2d_0a_1x1"))
    b1 = conv_bn(b1, width, (1, 7), scope(block, "Branch_1", "Conv2d_0b_1x7"))
    b1 = conv_bn(b1, 192, (7, 1), scope(block, "Branch_1", "Conv2d_0c_7x1"))
    b2 = conv_bn(x, width, 1, scope(block, "Branch_2", "Conv2d_0a_1x1"))
    b2 = conv_bn(b2, width, (7, 1), scope(block, "Branch_2", "Conv2d_0b_7x1"))
    b2 = conv_bn(b2, width, (1, 7), scope(block, "Branch_2", "Conv2d_0c_1x7"))
    b2 = conv_bn(b2, width, (7, 1), scope(block, "Branch_2", "Conv2d_0d_7x1"))
    b2 = conv_bn(b2, 192, (1, 7), scope(block, "Branch_2", "Conv2d_0e_1x7"))
    b3 = pooled_projection(x, 192, block)
    return mixed([b0, b1, b2, b3], block, se)


def _reduction_7a(x, se):
    """Mixed_7a, 17 -> 8 (1280 channels)."""
    block = "Mixed_7a"
    b0 = conv_bn(x, 192, 1, scope(block, "Branch_0", "Conv2d_0a_1x1"))
    b0 = conv_bn(b0, 320, 3, scope(block, "Branch_0", "Conv2d_1a_3x3"), strides=2, padding="valid")
    b1 = conv_bn(x, 192, 1, scope(block, "Branch_1", "Conv2d_0a_1x1"))
    b1 = conv_bn(b1, 192, (1, 7), scope(block, "Branch_1", "Conv2d_0b_1x7"))
    b1 = conv_bn(b1, 192, (7, 1), scope(block, "Branch_1", "Conv2d_0c_7x1"))
    b1 = conv_bn(b1, 192, 3, scope(block, "Branch_1", "Conv2d_1a_3x3"), strides=2, padding="valid")
    b2 = layers.MaxPooling2D(3, strides=2, padding="valid", name=scope(block, "Branch_2", "MaxPool_1a_3x3"))(x)
    return mixed([b0, b1, b2], block, se)


def _block_8(x, block, branch_1_3x1, se):
    """Mixed_7b/7c (8x8, 2048): 1x1 | 1x1 -> [1x3 | 3x1] | 1x1 -> 3x3 -> [1x3 | 3x1] | pool -> 1x1.
    Branch_1's 3x1 conv is `Conv2d_0b_3x1` in 7b but `Conv2d_0c_3x1` in 7c."""
    b0 = conv_bn(x, 320, 1, scope(block, "Branch_0", "Conv2d_0a_1x1"))
    b1 = conv_bn(x, 384, 1, scope(block, "Branch_1", "Conv2d_0a_1x1"))
    b1 = layers.Concatenate(name=scope(block, "Branch_1", "concat"))([
        conv_bn(b1, 384, (1, 3), scope(block, "Branch_1", "Conv2d_0b_1x3")),
        conv_bn(b1, 384, (3, 1), scope(block, "Branch_1", branch_1_3x1))])
    b2 = conv_bn(x, 448, 1, scope(block, "Branch_2", "Conv2d_0a_1x1"))
    b2 = conv_bn(b2, 384, 3, scope(block, "Branch_2", "Conv2d_0b_3x3"))
    b2 = layers.Concatenate(name=scope(block, "Branch_2", "concat"))([
        conv_bn(b2, 384, (1, 3), scope(block, "Branch_2", "Conv2d_0c_1x3")),
        conv_bn(b2, 384, (3, 1), scope(block, "Branch_2", "Conv2d_0d_3x1"))])
    b3 = pooled_projection(x, 192, block)
    return mixed([b0, b1, b2, b3], block, se)


def _logits(x, classes, dropout):
    """Spatial mean -> dropout -> `Logits/Conv2d_1c_1x1` (a 1x1 conv with biases
    in slim, kept as a conv so the checkpoint's `[1, 1, 2048, classes]` kernel fits)."""
    x = layers.GlobalAveragePooling2D(keepdims=True, name="Logits.AvgPool_1a_8x8")(x)
    x = layers.Dropout(dropout, name="Logits.Dropout_1b")(x)
    x = layers.Conv2D(classes, 1, name="Logits.Conv2d_1c_1x1")(x)
    return layers.Flatten(name="Logits.SpatialSqueeze")(x)


def _aux_logits(x, classes):
    """AuxLogits on `Mixed_6e`: pool -> 1x1 128 -> 5x5 VALID 768 -> 1x1 conv to
    `classes` (biases, linear) -> spatial mean (a squeeze of the 1x1 map at 299)."""
    x = aux_head_trunk(x, "Conv2d_2a_5x5")
    x = layers.Conv2D(classes, 1, name="AuxLogits.Conv2d_2b_1x1")(x)
    return layers.GlobalAveragePooling2D(name="AuxLogits.SpatialSqueeze")(x)


_V3_CLASSIFIER = """The classifier pools with the spatial mean of `Mixed_7c`. At 299 this is
exactly slim's 8x8 VALID `AvgPool_1a_8x8`; at other sizes (448, 560) it is
slim's `global_pool=True`. The auxiliary logits are likewise the spatial
mean of the aux head's output, which is 1x1 (a plain squeeze) at 299."""
InceptionV3.__doc__ = inception_docstring(
    "Inception-v3 (slim `inception_v3`; 299x299 -> 8x8x2048 at `Mixed_7c`).",
    endpoint="Mixed_7c", channels=2048, aux_endpoint="Mixed_6e", classifier=_V3_CLASSIFIER)
InceptionV3SE.__doc__ = inception_docstring(
    "Inception-v3 with a squeeze-and-excitation block (reduction 16) after\nevery Mixed block (slim "
    "`inception_v3_se`; 299x299 -> 8x8x2048 at `Mixed_7c`,\nthe output of its SE block).",
    endpoint="Mixed_7c", channels=2048, aux_endpoint="Mixed_6e", classifier=_V3_CLASSIFIER)

"""Inception-v4, mirroring TF-Slim's `inception_v4`.

    model = InceptionV4(classes=5089, input_shape=(448, 448, 3),
                        weights="checkpoints/inception_v4_iNat_448.ckpt")
    features = InceptionV4(include_top=False, pooling="avg")  # (batch, 1536)

Layer names follow the slim scopes (`fgtf.models.layers`), so a slim
checkpoint loads name by name; the slim end points (`Mixed_3a` ... `Mixed_7d`)
are layers of those exact names. Branch concat, the pooled projection branch
and the classifier plumbing are shared with `inception_v3`.
"""
from keras import layers

from fgtf.models.inception_v3 import (aux_head_trunk, classifier_model, inception_docstring, inception_input,
                                      mixed, pooled_projection)
from fgtf.models.layers import conv_bn, scope


def InceptionV4(include_top=True, weights=None, input_tensor=None, input_shape=None,
                pooling=None, classes=1000, classifier_activation="softmax",
                aux_logits=False, dropout=0.2, name="InceptionV4"):
    inputs = inception_input(input_shape, input_tensor, include_top=include_top, aux_logits=aux_logits)
    x = _stem(inputs)
    for block in ("Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_5e"):
        x = _inception_a(x, block)
    x = _reduction_a(x)
    for block in ("Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e", "Mixed_6f", "Mixed_6g", "Mixed_6h"):
        x = _inception_b(x, block)
    mixed_6h = x
    x = _reduction_b(x)
    for block in ("Mixed_7b", "Mixed_7c", "Mixed_7d"):
        x = _inception_c(x, block)
    logits = aux = None
    if include_top:
        logits = _logits(x, classes, dropout)
        aux = _aux_logits(mixed_6h, classes) if aux_logits else None
    return classifier_model(inputs, x, logits, aux, include_top=include_top, pooling=pooling,
                            classifier_activation=classifier_activation, weights=weights, name=name)


def _stem(x):
    """299x299x3 -> 35x35x384 (`Mixed_5a`)."""
    x = conv_bn(x, 32, 3, "Conv2d_1a_3x3", strides=2, padding="valid")
    x = conv_bn(x, 32, 3, "Conv2d_2a_3x3", padding="valid")
    x = conv_bn(x, 64, 3, "Conv2d_2b_3x3")
    b0 = layers.MaxPooling2D(3, strides=2, padding="valid", name="Mixed_3a.Branch_0.MaxPool_0a_3x3")(x)
    b1 = conv_bn(x, 96, 3, "Mixed_3a.Branch_1.Conv2d_0a_3x3", strides=2, padding="valid")
    x = mixed([b0, b1], "Mixed_3a")
    b0 = conv_bn(x, 64, 1, "Mixed_4a.Branch_0.Conv2d_0a_1x1")
    b0 = conv_bn(b0, 96, 3, "Mixed_4a.Branch_0.Conv2d_1a_3x3", padding="valid")
    b1 = conv_bn(x, 64, 1, "Mixed_4a.Branch_1.Conv2d_0a_1x1")
    b1 = conv_bn(b1, 64, (1, 7), "Mixed_4a.Branch_1.Conv2d_0b_1x7")
    b1 = conv_bn(b1, 64, (7, 1), "Mixed_4a.Branch_1.Conv2d_0c_7x1")
    b1 = conv_bn(b1, 96, 3, "Mixed_4a.Branch_1.Conv2d_1a_3x3", padding="valid")
    x = mixed([b0, b1], "Mixed_4a")
    b0 = conv_bn(x, 192, 3, "Mixed_5a.Branch_0.Conv2d_1a_3x3", strides=2, padding="valid")
    b1 = layers.MaxPooling2D(3, strides=2, padding="valid", name="Mixed_5a.Branch_1.MaxPool_1a_3x3")(x)
    return mixed([b0, b1], "Mixed_5a")


def _inception_a(x, block):
    """Mixed_5b..5e (35x35, 384): 1x1 96 | 1x1 64 -> 3x3 96 | 1x1 64 -> 3x3 96 -> 3x3 96 | pool -> 1x1 96."""
    b0 = conv_bn(x, 96, 1, scope(block, "Branch_0", "Conv2d_0a_1x1"))
    b1 = conv_bn(x, 64, 1, scope(block, "Branch_1", "Conv2d_0a_1x1"))
    b1 = conv_bn(b1, 96, 3, scope(block, "Branch_1", "Conv2d_0b_3x3"))
    b2 = conv_bn(x, 64, 1, scope(block, "Branch_2", "Conv2d_0a_1x1"))
    b2 = conv_bn(b2, 96, 3, scope(block, "Branch_2", "Conv2d_0b_3x3"))
    b2 = conv_bn(b2, 96, 3, scope(block, "Branch_2", "Conv2d_0c_3x3"))
    b3 = pooled_projection(x, 96, block)
    return mixed([b0, b1, b2, b3], block)


def _reduction_a(x):
    """Mixed_6a, 35 -> 17 (1024)."""
    block = "Mixed_6a"
    b0 = conv_bn(x, 384, 3, scope(block, "Branch_0", "Conv2d_1a_3x3"), strides=2, padding="valid")
    b1 = conv_bn(x, 192, 1, scope(block, "Branch_1", "Conv2d_0a_1x1"))
    b1 = conv_bn(b1, 224, 3, scope(block, "Branch_1", "Conv2d_0b_3x3"))
    b1 = conv_bn(b1, 256, 3, scope(block, "Branch_1", "Conv2d_1a_3x3"), strides=2, padding="valid")
    b2 = layers.MaxPooling2D(3, strides=2, padding="valid", name=scope(block, "Branch_2", "MaxPool_1a_3x3"))(x)
    return mixed([b0, b1, b2], block)


def _inception_b(x, block):
    """Mixed_6b..6h (17x17, 1024): 1x1 384 | 1x1 -> 1x7 -> 7x1 | 1x1 -> 7x1 -> 1x7 -> 7x1 -> 1x7 | pool -> 1x1 128."""
    b0 = conv_bn(x, 384, 1, scope(block, "Branch_0", "Conv2d_0a_1x1"))
    b1 = conv_bn(x, 192, 1, scope(block, "Branch_1", "Conv2d_0a_1x1"))
    b1 = conv_bn(b1, 224, (1, 7), scope(block, "Branch_1", "Conv2d_0b_1x7"))
    b1 = conv_bn(b1, 256, (7, 1), scope(block, "Branch_1", "Conv2d_0c_7x1"))
    b2 = conv_bn(x, 192, 1, scope(block, "Branch_2", "Conv2d_0a_1x1"))
    b2 = conv_bn(b2, 192, (7, 1), scope(block, "Branch_2", "Conv2d_0b_7x1"))
    b2 = conv_bn(b2, 224, (1, 7), scope(block, "Branch_2", "Conv2d_0c_1x7"))
    b2 = conv_bn(b2, 224, (7, 1), scope(block, "Branch_2", "Conv2d_0d_7x1"))
    b2 = conv_bn(b2, 256, (1, 7), scope(block, "Branch_2", "Conv2d_0e_1x7"))
    b3 = pooled_projection(x, 128, block)
    return mixed([b0, b1, b2, b3], block)


def _reduction_b(x):
    """Mixed_7a, 17 -> 8 (1536)."""
    block = "Mixed_7a"
    b0 = conv_bn(x, 192, 1, scope(block, "Branch_0", "Conv2d_0a_1x1"))
    b0 = conv_bn(b0, 192, 3, scope(block, "Branch_0", "Conv2d_1a_3x3"), strides=2, padding="valid")
    b1 = conv_bn(x, 256, 1, scope(block, "Branch_1", "Conv2d_0a_1x1"))
    b1 = conv_bn(b1, 256, (1, 7), scope(block, "Branch_1", "Conv2d_0b_1x7"))
    b1 = conv_bn(b1, 320, (7, 1), scope(block, "Branch_1", "Conv2d_0c_7x1"))
    b1 = conv_bn(b1, 320, 3, scope(block, "Branch_1", "Conv2d_1a_3x3"), strides=2, padding="valid")
    b2 = layers.MaxPooling2D(3, strides=2, padding="valid", name=scope(block, "Branch_2", "MaxPool_1a_3x3"))(x)
    return mixed([b0, b1, b2], block)


def _inception_c(x, block):
    """Mixed_7b..7d (8x8, 1536): 1x1 256 | 1x1 384 -> [1x3 256 | 3x1 256] |
    1x1 384 -> 3x1 448 -> 1x3 512 -> [1x3 256 | 3x1 256] | pool -> 1x1 256."""
    b0 = conv_bn(x, 256, 1, scope(block, "Branch_0", "Conv2d_0a_1x1"))
    b1 = conv_bn(x, 384, 1, scope(block, "Branch_1", "Conv2d_0a_1x1"))
    b1 = layers.Concatenate(name=scope(block, "Branch_1", "concat"))([
        conv_bn(b1, 256, (1, 3), scope(block, "Branch_1", "Conv2d_0b_1x3")),
        conv_bn(b1, 256, (3, 1), scope(block, "Branch_1", "Conv2d_0c_3x1"))])
    b2 = conv_bn(x, 384, 1, scope(block, "Branch_2", "Conv2d_0a_1x1"))
    b2 = conv_bn(b2, 448, (3, 1), scope(block, "Branch_2", "Conv2d_0b_3x1"))
    b2 = conv_bn(b2, 512, (1, 3), scope(block, "Branch_2", "Conv2d_0c_1x3"))
    b2 = layers.Concatenate(name=scope(block, "Branch_2", "concat"))([
        conv_bn(b2, 256, (1, 3), scope(block, "Branch_2", "Conv2d_0d_1x3")),
        conv_bn(b2, 256, (3, 1), scope(block, "Branch_2", "Conv2d_0e_3x1"))])
    b3 = pooled_projection(x, 256, block)
    return mixed([b0, b1, b2, b3], block)


def _logits(x, classes, dropout):
    """Spatial mean (slim `AvgPool_1a` over the whole map) -> dropout -> `Logits/Logits` FC."""
    x = layers.GlobalAveragePooling2D(name="Logits.AvgPool_1a")(x)
    x = layers.Dropout(dropout, name="Logits.Dropout_1b")(x)
    return layers.Dense(classes, name="Logits.Logits")(x)


def _aux_logits(x, classes):
    """AuxLogits on `Mixed_6h`: pool -> 1x1 128 -> 5x5 VALID 768 -> spatial mean
    (slim's flatten of the 1x1 map at 299) -> `AuxLogits/Aux_logits` FC."""
    x = aux_head_trunk(x, "Conv2d_2a")
    x = layers.GlobalAveragePooling2D(name="AuxLogits.Flatten")(x)
    return layers.Dense(classes, name="AuxLogits.Aux_logits")(x)


InceptionV4.__doc__ = inception_docstring(
    "Inception-v4 (slim `inception_v4`; 299x299 -> 8x8x1536 at `Mixed_7d`).",
    endpoint="Mixed_7d", channels=1536, aux_endpoint="Mixed_6h",
    classifier="""The classifier is the spatial mean of `Mixed_7d` -> dropout -> `Logits/Logits`
(fully connected), as slim does at any size (its `AvgPool_1a` window is the
whole map). Slim's aux head sizes its `Conv2d_2a` kernel to the map it
sees, which is 5x5 only at 299; here the kernel stays 5x5 (the checkpoint's
shape) and the aux head takes the spatial mean of that conv's output
before `AuxLogits/Aux_logits`, which at 299 is slim's flatten of a 1x1 map.""")

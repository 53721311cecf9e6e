"""A CPU-sized backbone for quick experiments, demos and the synthetic
benchmarks; not one of the slim networks (no checkpoint exists for it).

    model = fgtf.models.build_model("small_cnn", classes=20, input_shape=(64, 64, 3))
"""
from keras import layers

from fgtf.models.common import finish_model, global_pool, model_input, predictions
from fgtf.models.layers import conv_bn

# (filters, stride) of the six 3x3 conv -> BN -> ReLU layers Conv2d_1..Conv2d_6
_LAYERS = ((32, 2), (32, 1), (64, 2), (64, 1), (128, 2), (128, 1))


def SmallCNN(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None, classes=1000,
             classifier_activation="softmax", name="SmallCNN"):
    """Six 3x3 conv-BN-ReLU layers (32, 32, 64, 64, 128, 128 channels, stride 2
    at the 1st, 3rd and 5th): an (S/8, S/8, 128) map at `Conv2d_6.Relu`, then
    the spatial mean and a Dense `Logits.Logits`. About 0.29 M weights.

    Args are those of the keras.applications builders: `include_top`,
    `weights` (a `.weights.h5` or checkpoint path), `input_tensor`,
    `input_shape` (default (64, 64, 3), sides >= 32), `pooling` ('avg',
    'max' or None without the top), `classes`, `classifier_activation`.
    """
    inputs = model_input(input_shape, input_tensor, default_size=64, min_size=32)
    x = inputs
    for index, (filters, stride) in enumerate(_LAYERS, 1):
        x = conv_bn(x, filters, 3, f"Conv2d_{index}", strides=stride, epsilon=1e-5, momentum=0.997, scale=True)
    if not include_top:
        return finish_model(inputs, global_pool(x, pooling), name=name, weights=weights, exclude_scopes=("Logits",))
    x = layers.GlobalAveragePooling2D(name="Logits.AvgPool")(x)
    logits = layers.Dense(classes, name="Logits.Logits")(x)
    return finish_model(inputs, predictions(logits, classifier_activation), name=name, weights=weights)

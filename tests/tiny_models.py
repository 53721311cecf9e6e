"""A tiny slim-named backbone for fast tests of the training machinery, and a
launcher that runs an fgtf CLI with it registered (for subprocess tests):

    [FGTF_LOGICAL_CPUS=2] python tests/tiny_models.py fgtf.train --model_name tiny_net ...

FGTF_LOGICAL_CPUS splits the CPU into that many logical devices first, so a
MirroredStrategy has several replicas on a machine without GPUs.
"""
import importlib
import os
import sys

import keras

from fgtf.models import register_model
from fgtf.models.common import finish_model, global_pool, model_input, predictions

# `python LAUNCHER fgtf.MODULE ARGS...`: an fgtf command with the tiny networks registered.
LAUNCHER = os.path.abspath(__file__)


def tiny_synthetic_tfrecords(root, classes, train_per_class, val_per_class, num_shards):
    """Generate a tiny synthetic dataset (48 px) under `root`/raw and convert it
    to `num_shards` shards per split under `root`/tfrecords; returns that folder."""
    from fgtf.convert import ConvertOptions, convert
    from fgtf.datasets.synthetic import generate

    generate(str(root / "raw"), classes=classes, train_per_class=train_per_class, val_per_class=val_per_class,
             image_size=48, seed=0)
    convert(ConvertOptions(dataset="synthetic", num_shards=num_shards, dataset_dir=str(root / "raw"),
                           output_dir=str(root / "tfrecords"), progress=False))
    return str(root / "tfrecords")


def TinyNet(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None, classes=10,
            classifier_activation="softmax", name="TinyNet"):
    """conv 3x3/2 -> conv 3x3 (`Mixed_5b`) -> spatial mean -> `Logits.Logits` dense; no batch norm
    (so replicas of a mirrored run agree exactly with one replica)."""
    inputs = model_input(input_shape, input_tensor, default_size=32, min_size=8)
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu", name="Conv2d_1a_3x3")(inputs)
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="Mixed_5b")(x)
    if not include_top:
        return finish_model(inputs, global_pool(x, pooling), name, weights, exclude_scopes=("Logits",))
    x = keras.layers.GlobalAveragePooling2D(name="Logits.AvgPool")(x)
    logits = keras.layers.Dense(classes, name="Logits.Logits")(x)
    return finish_model(inputs, predictions(logits, classifier_activation), name, weights)


def TinyAuxNet(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None, classes=10,
               classifier_activation="softmax", aux_logits=False, name="TinyAuxNet"):
    """TinyNet with an Inception-style auxiliary classifier (`AuxLogits.Logits`
    on the first conv's spatial mean) when `aux_logits`; the registry gives it
    from 299 px up, as the Inceptions'."""
    inputs = model_input(input_shape, input_tensor, default_size=32, min_size=8)
    early = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu", name="Conv2d_1a_3x3")(inputs)
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="Mixed_5b")(early)
    if not include_top:
        return finish_model(inputs, global_pool(x, pooling), name, weights, exclude_scopes=("Logits", "AuxLogits"))
    x = keras.layers.GlobalAveragePooling2D(name="Logits.AvgPool")(x)
    outputs = predictions(keras.layers.Dense(classes, name="Logits.Logits")(x), classifier_activation)
    if not aux_logits:
        return finish_model(inputs, outputs, name, weights, exclude_scopes=("AuxLogits",))
    aux = keras.layers.Dense(classes, name="AuxLogits.Logits")(keras.layers.GlobalAveragePooling2D()(early))
    return finish_model(inputs, [outputs, predictions(aux, classifier_activation, name="AuxLogits.Predictions")],
                        name, weights)


def TinySwin(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None, classes=10,
             classifier_activation="softmax", drop_path_rate=0.0, name="tiny_swin"):
    """A two-stage Swin of width 8 on 32 px inputs (4-token windows)."""
    from fgtf.models.swin import SwinTransformer

    return SwinTransformer(embed_dim=8, depths=(2, 2), num_heads=(2, 4), window_size=4, drop_path_rate=drop_path_rate,
                           include_top=include_top, weights=weights, input_tensor=input_tensor,
                           input_shape=input_shape or (32, 32, 3), pooling=pooling, classes=classes,
                           classifier_activation=classifier_activation, name=name)


def register():
    register_model("tiny_net", TinyNet, feature_endpoint="Mixed_5b", default_size=32)
    register_model("tiny_swin", TinySwin, feature_endpoint="norm", min_size=32, default_size=32)
    register_model("tiny_aux_net", TinyAuxNet, feature_endpoint="Mixed_5b", aux_logits=True, default_size=32)


def split_cpu(count):
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * count)


if __name__ == "__main__":
    if os.environ.get("FGTF_LOGICAL_CPUS"):
        split_cpu(int(os.environ["FGTF_LOGICAL_CPUS"]))
    register()
    importlib.import_module(sys.argv[1]).main(sys.argv[2:])

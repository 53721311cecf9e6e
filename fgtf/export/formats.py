"""The artifacts `fgtf.export` writes, one format each (SavedModel, LiteRT
float32 and int8, ONNX, `.keras`), and the calibration images of int8."""
import contextlib
import os

from fgtf.errors import ParameterError, UserError

CALIBRATION_IMAGES = 200
# fgtf layer classes that compute what a Keras layer computes outside training
_PLAIN_KERAS = {"fgtf>TorchBatchNormalization": "BatchNormalization"}


def write_artifact(model, path, format, card, calibration=None):
    """Write `model` as `format` to `path` (a folder for saved_model)."""
    import tensorflow as tf

    signature = [tf.TensorSpec([None, *card["input"]["shape"][1:]], tf.float32, name="images")]
    if format == "keras":
        _portable(model).save(path)
    elif format == "saved_model":
        _write_saved_model(model, path, signature, card["output_order"])
    elif format == "onnx":
        with _quiet():  # the model's dict of outputs names the ONNX outputs
            model.export(path, format="onnx", input_signature=signature, verbose=False)
    else:
        options = {}
        if format == "litert_int8":
            options = {"optimizations": [tf.lite.Optimize.DEFAULT],
                       "representative_dataset": lambda: ([batch] for batch in calibration)}
        with _quiet():
            model.export(path, format="litert", input_signature=signature, verbose=False, **options)
        _name_litert_tensors(path, card["output_order"])


def _name_litert_tensors(path, order):
    """Name the LiteRT model's input and output tensors as its signature does
    (`images`; `features`, `logits`) and list the outputs in `order`, so
    that `Interpreter.get_output_details()` reads as the model card, not as
    the converter's `StatefulPartitionedCall:1`, logits first."""
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model(path)
    (signature,) = model.signatureDefs
    graph = model.subgraphs[signature.subgraphIndex]
    outputs = {_text(entry.name): entry.tensorIndex for entry in signature.outputs}
    for entry in [*signature.inputs, *signature.outputs]:
        graph.tensors[entry.tensorIndex].name = entry.name
    graph.outputs = [outputs[name] for name in order]
    flatbuffer_utils.write_model(model, path)  # inside the folder that appears only when complete


def _text(name):
    return name.decode() if isinstance(name, bytes) else name


def _portable(model):
    """`model` rebuilt with plain Keras layers in place of fgtf's own layer
    classes that differ from Keras only in training (SAM's
    TorchBatchNormalization), so that `keras.saving.load_model` opens the
    `.keras` file without importing fgtf."""

    def plain(config):
        if isinstance(config, list):
            return [plain(item) for item in config]
        if not isinstance(config, dict):
            return config
        if config.get("registered_name") in _PLAIN_KERAS:
            config = {**config, "module": "keras.layers", "class_name": _PLAIN_KERAS[config["registered_name"]],
                      "registered_name": None}
        return {key: plain(value) for key, value in config.items()}

    portable = model.__class__.from_config(plain(model.get_config()))
    portable.set_weights(model.get_weights())
    return portable


def _write_saved_model(model, path, signature, order):
    """TF-Hub image feature vector: `obj(images)` and `serving_default` return
    the features; a `logits` signature the logits when the model has them.

    Written with tf.saved_model.save rather than keras.export.ExportArchive,
    which stores every weight twice (keras-team/keras#23553): the module tracks
    the very tf.Variables that the traced functions capture."""
    import tensorflow as tf

    @tf.function(input_signature=signature)
    def forward(images):  # traced once; every endpoint calls it
        return model(images, training=False)

    root = tf.Module()
    root.model_variables = [variable.value for variable in model.variables]
    root.__call__ = tf.function(lambda images: forward(images)[order[0]], input_signature=signature)
    signatures = {name: tf.function(lambda images, name=name: {name: forward(images)[name]},
                                    input_signature=signature) for name in order}
    signatures["serving_default"] = signatures.pop(order[0])
    tf.saved_model.save(root, path, signatures=signatures)


def calibration_batches(calibration_dir, image_size, count=CALIBRATION_IMAGES, preprocessing="inception"):
    """Up to `count` single-image float32 batches in [0, 1] from the TFRecords
    of `calibration_dir` (its train split, else validation) through the test
    transform of the `preprocessing` pipeline."""
    import numpy as np

    from fgtf.input_pipeline import PipelineSettings, make_dataset
    from fgtf.preprocessing import get_pipeline

    pipeline = get_pipeline(preprocessing)
    folder, split = calibration_source(calibration_dir)
    dataset = make_dataset(folder, split, PipelineSettings(image_size=image_size, batch_size=1, training=False,
                                                           preprocessing=pipeline))
    batches = [np.asarray(pipeline.denormalize(images), np.float32) for images, _ in dataset.take(count)]
    if not batches:
        raise ParameterError(f"`calibration_dir` {calibration_dir} holds no images")
    return batches


def checked_calibration(images, image_size):
    """`images` (N, S, S, 3) in [0, 1] as single-image float32 batches; UserError when they do not fit."""
    import numpy as np

    images = np.asarray(images, np.float32)
    if images.ndim != 4 or images.shape[1:] != (image_size, image_size, 3) or not len(images):
        raise UserError(f"calibration images have shape {images.shape}; the model takes "
                        f"(N, {image_size}, {image_size}, 3)")
    if images.min() < 0.0 or images.max() > 1.0:
        raise UserError(f"calibration images range over [{images.min():g}, {images.max():g}]; the model takes "
                        f"[0, 1] (divide 8-bit images by 255)")
    return [image[None] for image in images]


def calibration_source(calibration_dir):
    """(shard folder, split) that calibrates: the train split, else validation."""
    from fgtf.input_pipeline import shard_folder
    from tfrecord_tools.manifest import list_shard_files

    if not calibration_dir:
        raise ParameterError("`format` litert_int8 needs `calibration_dir` (a folder of TFRecords to calibrate on)")
    if not os.path.isdir(calibration_dir):
        raise ParameterError(f"`calibration_dir` {calibration_dir} is not a folder")
    folder = shard_folder(calibration_dir)
    return folder, "train" if list_shard_files(folder, "train") else "validation"


@contextlib.contextmanager
def _quiet():
    """tf2onnx and the TFLite converter log every step (Python logging, warnings
    and C++ lines on file descriptor 2): keep the console to fgtf's one line,
    and replay their output when the conversion fails."""
    import logging
    import warnings

    from tfrecord_tools.quiet import captured_stderr

    root, previous = logging.getLogger(), logging.getLogger().level
    with captured_stderr(), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # tf2onnx on NumPy 2
        root.setLevel(logging.ERROR)
        try:
            yield
        finally:
            root.setLevel(previous)

"""Export an fgtf model for use without fgtf: a SavedModel in the TF-Hub image
feature-vector convention, LiteRT (float32 or int8), ONNX or a `.keras` file,
each with `labels.txt` and `model_card.json` beside it.

    python -m fgtf.export --checkpoint checkpoints/inception_v3_iNat_299.ckpt \\
        --model inception_v3 --format saved_model --out exported/inception_v3_iNat

Every artifact takes float32 RGB images in [0, 1] at --image_size (batch free),
named `images`, and carries the normalisation of its --preprocessing pipeline
(the run's, else the network's): x * 2 - 1 for inception, (x - mean) / std
with ImageNet's mean and std for the seeds' pipelines; the model card names
the pipeline and its test transform (resize and crop, done before). Its
outputs are named in every format: `features` (the pooled end point
`fgtf.extract_features` writes) and, with a classifier (--num_classes, or a
run folder's own, heads included), `logits`, in that order. The SavedModel's
`serving_default` signature (and calling the loaded object) returns the
features, its `logits` signature the logits; LiteRT's signature and output
tensors, ONNX's outputs and the `.keras` model's output dict carry the names.
A `.keras` file needs no fgtf to load. The model card holds the run's
evaluation by fgtf.evaluate when it evaluated the exported checkpoint. The
output folder is written whole or not at all, by one process at a time. A
SavedModel given as --checkpoint is a program: its graph runs in this
process, so export only SavedModels you trust.
"""
# The package: this module builds the model to export, its card and the atomic output folder;
# formats.py writes each format and calibrates int8; __main__.py is the command.
from __future__ import annotations

import hashlib
import json
import os
import shutil
from typing import TYPE_CHECKING

import fgtf
from fgtf.export.formats import (CALIBRATION_IMAGES, calibration_batches, calibration_source, checked_calibration,
                                 write_artifact)
from tfrecord_tools.atomic import atomic_dir, is_temporary_of
from fgtf.errors import ParameterError, UserError
from tfrecord_tools.folder_lock import hold_folder

if TYPE_CHECKING:
    import keras
    import numpy as np


FORMATS = ("saved_model", "litert", "litert_int8", "onnx", "keras")
OUTPUTS = ("features", "logits", "both")
ARTIFACT = {"saved_model": "saved_model", "litert": "model.tflite", "litert_int8": "model_int8.tflite",
            "onnx": "model.onnx", "keras": "model.keras"}
# Python modules each format needs beyond TensorFlow (all in `pip install 'fgtf[export]'`).
_NEEDS = {"litert": ("ai_edge_litert",), "litert_int8": ("ai_edge_litert",), "onnx": ("onnx", "onnxruntime", "tf2onnx")}


def export(checkpoint: str, out: str, *, format: str, model: str | None = None, num_classes: int | None = None,
           image_size: int | None = None, outputs: str | None = None, calibration_dir: str | None = None,
           calibration_data: np.ndarray | None = None, labels: str | None = None,
           calibration_images: int = CALIBRATION_IMAGES, preprocessing: str | None = None) -> str:
    """Write `format` of the model at `checkpoint` to the folder `out` (with
    labels.txt and model_card.json); returns the artifact's path.

    litert_int8 is calibrated on `calibration_data` (float32 images in [0, 1],
    (N, S, S, 3) at the model's size) or on `calibration_images` images of the
    TFRecords in `calibration_dir` through the test transform of the
    model's `preprocessing` pipeline (default: the checkpoint's).
    Raises `FolderBusy` when another process exports to `out`."""
    _check_request(checkpoint, out, format, calibration_dir, calibration_data)
    with hold_folder(out, beside=True):
        _check_out(out)  # again: another export may have finished it while this one waited for nothing
        _remove_stale_temporaries(out)
        return _export(checkpoint, out, format, model, num_classes, image_size, outputs, calibration_dir,
                       calibration_data, labels, calibration_images, preprocessing)


def _export(checkpoint, out, format, model, num_classes, image_size, outputs, calibration_dir, calibration_data,
            labels, calibration_images, preprocessing):
    from fgtf import runs

    network, card = export_model(checkpoint, model=model, num_classes=num_classes, image_size=image_size,
                                 outputs=outputs, preprocessing=preprocessing)
    size = card["input"]["shape"][1]
    classes = card["outputs"].get("logits")
    class_names = classes and runs.network_class_names(
        checkpoint, classes, labels, calibration_dir and calibration_source(calibration_dir)[0])
    calibration = None
    if format == "litert_int8":
        calibration = (checked_calibration(calibration_data, size) if calibration_data is not None
                       else calibration_batches(calibration_dir, size, calibration_images,
                                                card["preprocessing"]["name"]))
    card.update(format=format, artifact=ARTIFACT[format], classes=class_names,
                checkpoint_sha256=_sha256(card["checkpoint"]))
    if os.path.isdir(out):
        os.rmdir(out)  # empty (checked): the folder is written whole
    with atomic_dir(out) as folder:
        write_artifact(network, os.path.join(folder, ARTIFACT[format]), format, card, calibration)
        with open(os.path.join(folder, "labels.txt"), "w", encoding="utf-8") as handle:
            handle.writelines(f"{name}\n" for name in class_names or [])
        with open(os.path.join(folder, "model_card.json"), "w", encoding="utf-8") as handle:
            json.dump(card, handle, indent=2, sort_keys=True)
            handle.write("\n")
    print(f"wrote {os.path.join(out, ARTIFACT[format])}: {card['network']}, {size} px, outputs "
          + ", ".join(f"{k} ({v})" for k, v in card["outputs"].items()))
    return os.path.join(out, ARTIFACT[format])


def export_model(checkpoint: str, *, model: str | None = None, num_classes: int | None = None,
                 image_size: int | None = None, outputs: str | None = None,
                 preprocessing: str | None = None) -> tuple[keras.Model, dict]:
    """(keras.Model taking [0, 1] images, partial model card). The model returns
    a dict of its outputs by name (`features`, `logits` or both). The network is what
    `fgtf.checkpoints.load_network` builds from `checkpoint`: with its
    classifier when `num_classes` is given (it must be the checkpoint's) or
    the checkpoint is a run folder, else its backbone (a SavedModel: its
    feature vector, at the size its fgtf model card says, else 299 px, unless
    `image_size` is given); before it, the
    normalisation of the `preprocessing` pipeline (default: the checkpoint's)."""
    import keras

    from fgtf.checkpoints import checkpoint_kind, load_network
    from fgtf.preprocessing import get_pipeline

    if outputs is not None and outputs not in OUTPUTS:
        raise ParameterError(f"unknown `outputs` {outputs!r}; choose one of {', '.join(OUTPUTS)}")
    kind = checkpoint_kind(checkpoint)
    if kind == "saved_model":  # an opaque graph: its feature vector only
        if outputs in ("logits", "both"):
            raise ParameterError(f"{checkpoint} is a SavedModel: only its features can be exported "
                                 f"(`outputs` features)")
        num_classes = None
    loaded = load_network(checkpoint, model=model, image_size=image_size,
                          include_top=num_classes is not None or kind == "run", preprocessing=preprocessing)
    if num_classes is not None and loaded.num_classes != num_classes:
        raise ParameterError(f"{checkpoint} holds a classifier of {loaded.num_classes} classes, not `num_classes` "
                             f"{num_classes}")
    if outputs in ("logits", "both") and not loaded.num_classes:
        raise ParameterError(f"{checkpoint} gives no classifier here; pass `num_classes` or use `outputs` features")
    outputs = outputs or ("both" if loaded.num_classes else "features")
    order = ["features", "logits"] if outputs == "both" else [outputs]
    pipeline = get_pipeline(loaded.preprocessing)
    size, name = loaded.image_size, loaded.model
    images = keras.Input((size, size, 3), name="images")
    results = loaded.features_model(order)(normalization_layer(pipeline)(images))
    named = dict(zip(order, results if len(order) > 1 else [results]))
    exported = keras.Model(images, named, name=f"{name}_export")
    sizes = [int(named[output].shape[-1]) for output in order]
    card = {"network": name, "checkpoint": loaded.weights, "fgtf_version": fgtf.__version__,
            "input": {"name": "images", "shape": [None, size, size, 3], "dtype": "float32",
                      "range": [0.0, 1.0], "color": "RGB"},
            "preprocessing": {"name": pipeline.name, "inside the model": "(x - mean) / std, per RGB channel",
                              "mean": list(pipeline.mean), "std": list(pipeline.std),
                              "before the model": f"{pipeline.test_text} (S = {size}), values / 255"},
            "outputs": dict(zip(order, sizes)), "output_order": order}
    if kind != "saved_model":
        card.update(_run_figures(checkpoint, loaded.weights, loaded.ema))
    return exported, card


def normalization_layer(pipeline):
    """The Keras layer taking RGB in [0, 1] to what `pipeline` gives a network: (x - mean) / std."""
    import keras
    import numpy as np

    mean, std = np.asarray(pipeline.mean, np.float32), np.asarray(pipeline.std, np.float32)
    return keras.layers.Rescaling(1.0 / std, offset=-mean / std, name=f"{pipeline.name}_normalization")


def _remove_stale_temporaries(out):
    """Remove the temporary folders that killed exports to `out` left beside it
    (this process holds `out`, so none is being written)."""
    parent, name = os.path.split(os.path.abspath(out))
    for leftover in os.listdir(parent):
        if is_temporary_of(leftover, name):
            shutil.rmtree(os.path.join(parent, leftover), ignore_errors=True)


def _check_out(out):
    if os.path.exists(out) and (not os.path.isdir(out) or os.listdir(out)):
        raise ParameterError(f"`out` {out} exists and is not an empty folder; choose a new folder")


def _check_request(checkpoint, out, format, calibration_dir, calibration_data):
    """Refuse bad requests before any work."""
    from fgtf.checkpoints import checkpoint_kind

    if format not in FORMATS:
        raise ParameterError(f"unknown `format` {format!r}; choose one of {', '.join(FORMATS)}")
    _check_out(out)
    if checkpoint_kind(checkpoint) == "saved_model" and format == "keras":
        raise UserError(f"{checkpoint} is a SavedModel, an opaque graph: it cannot become a .keras file; "
                        f"export an fgtf checkpoint or run folder instead")
    for module in _NEEDS.get(format, ()):
        try:
            __import__(module)
        except ImportError:
            raise ParameterError(f"`format` {format} needs the Python package {module}; "
                                 f"pip install 'fgtf[export]'") from None
    if format == "litert_int8" and calibration_data is None:
        calibration_source(calibration_dir)


def _run_figures(checkpoint, weights, ema):
    """What a run folder says of the network exported: its run_config,
    `training` (the step it ended at and the metrics of its last logged
    training steps, from train_done.json) and `evaluation`, fgtf.evaluate's
    results (top-1, top-5, mean per-class accuracy, loss, on which data)
    when `<run>/eval/eval_results.json` evaluated the exported checkpoint
    `weights` with the same choice of EMA weights `ema`, else None."""
    from fgtf import runs

    folder = checkpoint if os.path.isdir(checkpoint) else os.path.dirname(checkpoint)
    if not os.path.isfile(os.path.join(folder, runs.RUN_CONFIG)):
        return {}
    figures = {"run_config": runs.load_run_config(folder).to_dict(), "training": None, "evaluation": None}
    done = _read_json(os.path.join(folder, runs.DONE))
    if done is not None:
        figures["training"] = {"step": done["step"], "metrics_of_the_last_logged_steps": done["metrics"]}
    results = _read_json(os.path.join(folder, "eval", "eval_results.json"))
    if results is not None and results["checkpoint"] == weights and results["ema_weights"] == ema:
        figures["evaluation"] = {key: results[key] for key in EVALUATION_FIGURES}
    return figures


# what the model card keeps of fgtf.evaluate's eval_results.json
EVALUATION_FIGURES = ("top1", "top5", "mean_per_class_accuracy", "loss", "split", "num_images", "dataset_dir",
                      "image_size", "step", "checkpoint", "ema_weights")


def _read_json(path):
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def _sha256(checkpoint):
    """sha256 over the checkpoint's files (a file, a prefix's .index/.data, or a folder)."""
    if os.path.isfile(checkpoint):
        files = [checkpoint]
    elif os.path.isdir(checkpoint):
        files = sorted(os.path.join(root, f) for root, _, names in os.walk(checkpoint) for f in names)
    else:
        folder, stem = os.path.split(os.path.abspath(checkpoint))
        files = sorted(os.path.join(folder, f) for f in os.listdir(folder) if f.startswith(stem + "."))
    digest = hashlib.sha256()
    for path in files:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()

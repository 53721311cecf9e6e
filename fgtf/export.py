"""Export an fgtf model for use without fgtf: a SavedModel in the TF-Hub image
feature-vector convention, LiteRT (float32 or int8), ONNX or a `.keras` file,
each with `labels.txt` and `model_card.json` beside it.

    python -m fgtf.export --checkpoint checkpoints/inception_v3_iNat_299.ckpt \\
        --model inception_v3 --format saved_model --out exported/inception_v3_iNat

Every artifact takes float32 RGB images in [0, 1] at --image_size (batch free)
and carries the model's own preprocessing (the rescale to [-1, 1]). Outputs:
`features` (the pooled end point `fgtf.extract_features` writes) and, with a
classifier (--num_classes, or a run folder), `logits`. The SavedModel's
`serving_default` signature (and calling the loaded object) returns the
features; its `logits` signature the logits. The output folder is written
whole or not at all.
"""
import argparse
import contextlib
import hashlib
import json
import os
import shutil

from tfrecord_tools.cli import UserError, cli_main

FORMATS = ("saved_model", "litert", "litert_int8", "onnx", "keras")
OUTPUTS = ("features", "logits", "both")
ARTIFACT = {"saved_model": "saved_model", "litert": "model.tflite", "litert_int8": "model_int8.tflite",
            "onnx": "model.onnx", "keras": "model.keras"}
# Python modules each format needs beyond TensorFlow (all in `pip install 'fgtf[export]'`).
_NEEDS = {"litert": ("ai_edge_litert",), "litert_int8": ("ai_edge_litert",), "onnx": ("onnx", "onnxruntime", "tf2onnx")}
CALIBRATION_IMAGES = 200


@cli_main
def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m fgtf.export", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True,
                   help="slim .ckpt, .weights.h5, fgtf run folder (EMA weights when kept) or SavedModel folder")
    p.add_argument("--model", default="inception_v3", help="backbone name (ignored for run and SavedModel folders) "
                                                           "(default: %(default)s)")
    p.add_argument("--num_classes", type=int, help="classifier size; without it only features are exported "
                                                   "(run folders: from the run) (default: %(default)s)")
    p.add_argument("--image_size", type=int, default=299, help="input side in pixels (default: %(default)s)")
    p.add_argument("--format", required=True, choices=FORMATS, help="artifact to write")
    p.add_argument("--outputs", choices=OUTPUTS, help="what the artifact returns (default: both with a "
                                                      "classifier, else features)")
    p.add_argument("--calibration_dir", help="TFRecord folder (or a dataset folder whose tfrecords/ holds them) "
                                             "whose images calibrate litert_int8 (default: %(default)s)")
    p.add_argument("--labels", help="class names in label order, one per line (default: class numbers)")
    p.add_argument("--out", required=True, help="output folder; must not exist or be empty")
    args = p.parse_args(argv)
    export(args.checkpoint, args.out, format=args.format, model=args.model, num_classes=args.num_classes,
           image_size=args.image_size, outputs=args.outputs, calibration_dir=args.calibration_dir,
           labels=args.labels)


def export(checkpoint, out, *, format, model="inception_v3", num_classes=None, image_size=299, outputs=None,
           calibration_dir=None, labels=None, calibration_images=CALIBRATION_IMAGES):
    """Write `format` of the model at `checkpoint` to the folder `out` (with
    labels.txt and model_card.json); returns the artifact's path."""
    _check_request(checkpoint, out, format, image_size, calibration_dir)
    network, card = export_model(checkpoint, model=model, num_classes=num_classes, image_size=image_size,
                                 outputs=outputs)
    class_names = _class_names(labels, card["outputs"].get("logits"))
    calibration = (calibration_batches(calibration_dir, image_size, calibration_images)
                   if format == "litert_int8" else None)
    card.update(format=format, artifact=ARTIFACT[format], classes=class_names,
                checkpoint=os.path.abspath(checkpoint), checkpoint_sha256=_sha256(checkpoint))
    with atomic_folder(out) as folder:
        write_artifact(network, os.path.join(folder, ARTIFACT[format]), format, card, calibration)
        with open(os.path.join(folder, "labels.txt"), "w", encoding="utf-8") as handle:
            handle.writelines(f"{name}\n" for name in class_names or [])
        with open(os.path.join(folder, "model_card.json"), "w", encoding="utf-8") as handle:
            json.dump(card, handle, indent=2, sort_keys=True)
            handle.write("\n")
    print(f"wrote {os.path.join(out, ARTIFACT[format])}: {card['network']}, outputs "
          + ", ".join(f"{k} ({v})" for k, v in card["outputs"].items()))
    return os.path.join(out, ARTIFACT[format])


def export_model(checkpoint, *, model="inception_v3", num_classes=None, image_size=299, outputs=None):
    """(keras.Model taking [0, 1] images, partial model card). The model returns
    one tensor, or [features, logits] for outputs='both'."""
    import keras

    from fgtf import runs
    from fgtf.checkpoints import hub_feature_model, is_saved_model
    from fgtf.models import build_model, feature_endpoint

    if outputs is not None and outputs not in OUTPUTS:
        raise UserError(f"unknown --outputs {outputs!r}; choose one of {', '.join(OUTPUTS)}")
    shape = (image_size, image_size, 3)
    if is_saved_model(checkpoint):
        features, logits, name = hub_feature_model(checkpoint, image_size), None, "saved_model"
    else:
        if runs.is_run_checkpoint(checkpoint):
            config = runs.load_run_config(checkpoint if os.path.isdir(checkpoint) else os.path.dirname(checkpoint))
            network = runs.build_network({**config, "image_size": image_size})
            runs.restore_for_inference(network, runs.latest_checkpoint(checkpoint))
            name, logits = config["model_name"], network
        else:
            network = build_model(model, include_top=num_classes is not None, weights=checkpoint, input_shape=shape,
                                  **({"classes": num_classes, "classifier_activation": None} if num_classes else {}))
            name, logits = model, network if num_classes else None
        backbone = runs.backbone_of(network)
        pooled = keras.layers.GlobalAveragePooling2D(name="features")(backbone.get_layer(feature_endpoint(name)).output)
        features = keras.Model(backbone.inputs, pooled, name=f"{backbone.name}_features")
    if outputs in ("logits", "both") and logits is None:
        raise UserError(f"{checkpoint} gives no classifier here; pass --num_classes or use --outputs features")
    outputs = outputs or ("both" if logits is not None else "features")

    images = keras.Input(shape, name="images")
    scaled = keras.layers.Rescaling(2.0, offset=-1.0, name="to_minus_one_one")(images)
    result = {}
    if outputs in ("features", "both"):
        result["features"] = features(scaled)
    if outputs in ("logits", "both"):
        head = logits(scaled)
        result["logits"] = head[0] if isinstance(head, (list, tuple)) else head
    if outputs == "both" and logits is not features and isinstance(features, keras.Model) \
            and runs.backbone_of(logits) is logits:
        # one graph for both outputs, so each layer is saved (and run) once
        both = keras.Model(logits.inputs, [features.output, logits.outputs[0]], name=f"{name}_both")
        result["features"], result["logits"] = both(scaled)
    exported = keras.Model(images, list(result.values()) if len(result) > 1 else next(iter(result.values())),
                           name=f"{name}_export")
    card = {"network": name, "fgtf_version": _fgtf_version(),
            "input": {"name": "images", "shape": [None, image_size, image_size, 3], "dtype": "float32",
                      "range": [0.0, 1.0], "color": "RGB"},
            "preprocessing": "inside the model: x * 2 - 1; resize or central-crop to the input size before "
                             "(fgtf's evaluation preprocessing: central crop 87.5%, bilinear resize)",
            "outputs": {k: int(v.shape[-1]) for k, v in result.items()},
            "output_order": list(result)}
    card.update(_run_figures(checkpoint))
    return exported, card


def write_artifact(model, path, format, card, calibration=None):
    """Write `model` as `format` to `path` (a folder for saved_model)."""
    import tensorflow as tf

    signature = [tf.TensorSpec([None, *card["input"]["shape"][1:]], tf.float32, name="images")]
    if format == "keras":
        model.save(path)
    elif format == "saved_model":
        _write_saved_model(model, path, signature, card["output_order"])
    elif format == "onnx":
        with _quiet():
            model.export(path, format="onnx", input_signature=signature, verbose=False)
    else:
        options = {}
        if format == "litert_int8":
            options = {"optimizations": [tf.lite.Optimize.DEFAULT],
                       "representative_dataset": lambda: ([batch] for batch in calibration)}
        with _quiet():
            model.export(path, format="litert", input_signature=signature, verbose=False, **options)


def _write_saved_model(model, path, signature, order):
    """TF-Hub image feature vector: `obj(images)` and `serving_default` return
    the features; a `logits` signature the logits when the model has them."""
    import keras

    archive = keras.export.ExportArchive()
    archive.track(model)

    def output(name):
        def call(images):
            result = model(images, training=False)
            return result[order.index(name)] if len(order) > 1 else result
        return call

    first = order[0]
    archive.add_endpoint("serving_default", lambda images: {first: output(first)(images)}, input_signature=signature)
    archive.add_endpoint("__call__", output(first), input_signature=signature)
    for name in order[1:]:
        archive.add_endpoint(name, lambda images, name=name: {name: output(name)(images)}, input_signature=signature)
    archive.write_out(path, verbose=False)


def calibration_batches(calibration_dir, image_size, count=CALIBRATION_IMAGES):
    """Up to `count` single-image float32 batches in [0, 1] from the TFRecords
    of `calibration_dir` (its train split, else validation) through fgtf's
    evaluation preprocessing."""
    import numpy as np

    from fgtf.input_pipeline import make_dataset

    folder, split = _calibration_source(calibration_dir)
    dataset = make_dataset(folder, split, image_size=image_size, batch_size=1, training=False)
    batches = [(np.asarray(images, np.float32) + 1.0) / 2.0 for images, _ in dataset.take(count)]
    if not batches:
        raise UserError(f"--calibration_dir {calibration_dir} holds no images")
    return batches


def _calibration_source(calibration_dir):
    from fgtf.input_pipeline import list_shards

    if not calibration_dir:
        raise UserError("--format litert_int8 needs --calibration_dir (a folder of TFRecords to calibrate on)")
    for folder in (calibration_dir, os.path.join(calibration_dir, "tfrecords")):
        for split in ("train", "validation"):
            if os.path.isdir(folder) and _safe_shards(list_shards, folder, split):
                return folder, split
    raise UserError(f"--calibration_dir {calibration_dir} holds no TFRecord shards (nor does its tfrecords/)")


def _safe_shards(list_shards, folder, split):
    try:
        return list_shards(folder, split)
    except (UserError, ValueError, OSError):
        return []


@contextlib.contextmanager
def atomic_folder(out):
    """Yield a hidden folder beside `out`, renamed to `out` when the block
    succeeds and removed when it fails."""
    out = os.path.abspath(out)
    temporary = os.path.join(os.path.dirname(out), f".{os.path.basename(out)}.tmp-{os.getpid()}")
    shutil.rmtree(temporary, ignore_errors=True)
    os.makedirs(temporary)
    try:
        yield temporary
        if os.path.isdir(out):
            os.rmdir(out)  # empty (checked before)
        os.replace(temporary, out)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise


def _check_request(checkpoint, out, format, image_size, calibration_dir):
    """Refuse bad requests before any work."""
    if format not in FORMATS:
        raise UserError(f"unknown --format {format!r}; choose one of {', '.join(FORMATS)}")
    if os.path.exists(out) and (not os.path.isdir(out) or os.listdir(out)):
        raise UserError(f"--out {out} exists and is not an empty folder; choose a new folder")
    if image_size < 32:
        raise UserError("--image_size must be >= 32")
    if not os.path.exists(checkpoint) and not os.path.exists(checkpoint + ".index"):
        raise UserError(f"checkpoint {checkpoint} not found")
    for module in _NEEDS.get(format, ()):
        try:
            __import__(module)
        except ImportError:
            raise UserError(f"--format {format} needs the Python package of {module}; "
                            f"pip install 'fgtf[export]'") from None
    if format == "litert_int8":
        _calibration_source(calibration_dir)


def _class_names(labels, classes):
    if classes is None:
        return None
    if labels is None:
        return [str(i) for i in range(classes)]
    with open(labels, encoding="utf-8") as handle:
        names = [line.strip() for line in handle if line.strip()]
    if len(names) != classes:
        raise UserError(f"--labels {labels} names {len(names)} classes, the classifier has {classes}")
    return names


def _run_figures(checkpoint):
    """The training/evaluation summaries a run folder holds (*.json but its config)."""
    from fgtf import runs

    folder = checkpoint if os.path.isdir(checkpoint) else os.path.dirname(checkpoint)
    if not os.path.isfile(os.path.join(folder, runs.RUN_CONFIG)):
        return {}
    figures = {}
    for name in sorted(os.listdir(folder)):
        if name.endswith(".json") and name != runs.RUN_CONFIG:
            with open(os.path.join(folder, name), encoding="utf-8") as handle:
                figures[name[: -len(".json")]] = json.load(handle)
    return {"run_config": runs.load_run_config(folder), "evaluation": figures}


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


def _fgtf_version():
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("fgtf")
    except PackageNotFoundError:
        return "unknown"


@contextlib.contextmanager
def _quiet():
    """tf2onnx and the TFLite converter log every step; keep the console to fgtf's one line."""
    import logging

    previous = logging.getLogger().level
    logging.getLogger().setLevel(logging.ERROR)
    try:
        yield
    finally:
        logging.getLogger().setLevel(previous)


if __name__ == "__main__":
    main()

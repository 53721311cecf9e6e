"""The feature files of the original notebooks, one folder per model:

    feature/<model_name>/<dataset>_feature_{train,val}.npy   (N, D) float32
    feature/<model_name>/<dataset>_label_{train,val}.npy     (N,)   int64
    feature/<model_name>/<dataset>_path_{train,val}.txt      N image paths, row order
    feature/<model_name>/<dataset>_classes.txt               class names by label, one per line
    feature/<model_name>/<dataset>_probability_{train,val}.npy  (N, Z) float32, optional:
        the network's softmax over its Z source classes (LEEP, NCE)

Rows follow the order of the dataset's split list. A split's files are
written together (`save_features`: a hidden temporary folder, then renamed
into place), and `fgtf.extract_features` records their sha256 in the folder's
`extract_features.json`; `load_features` checks them, so features, labels and
paths of two extractions are never read as one.
"""
import json
import os
import shutil

import numpy as np

from fgtf.fileio import write_text
from tfrecord_tools.atomic import temporary_name
from fgtf.errors import UserError
from tfrecord_tools.manifest import sha256_file

# pipeline split name -> the name in feature file names
FILE_SPLIT = {"train": "train", "validation": "val", "val": "val"}
# the record of a features folder written by fgtf.extract_features
RECORD = "extract_features.json"


def feature_files(features_dir, dataset, split):
    """{'feature': path, 'label': path, 'path': path} for one dataset split."""
    tag = FILE_SPLIT[split]
    return {
        "feature": os.path.join(features_dir, f"{dataset}_feature_{tag}.npy"),
        "label": os.path.join(features_dir, f"{dataset}_label_{tag}.npy"),
        "path": os.path.join(features_dir, f"{dataset}_path_{tag}.txt"),
        "probability": os.path.join(features_dir, f"{dataset}_probability_{tag}.npy"),
    }


def has_features(features_dir, dataset, split):
    files = feature_files(features_dir, dataset, split)
    return os.path.isfile(files["feature"]) and os.path.isfile(files["label"])


def has_probabilities(features_dir, dataset, split):
    return has_features(features_dir, dataset, split) and os.path.isfile(
        feature_files(features_dir, dataset, split)["probability"])


def save_features(features_dir, dataset, split, features, labels, paths=None, before_replace=None,
                  probabilities=None):
    """Write one split's features, labels and (optionally) image paths and
    source-class probabilities together: into a hidden temporary folder,
    flushed to disk, then renamed into place, so a failure while writing (a
    full disk) leaves the split as it was; probabilities of an earlier
    extraction, now stale, are removed then. `before_replace()`, when given,
    runs between the two (it is where `fgtf.extract_features` drops the
    split from its record). Returns {kind: sha256} of the files written."""
    files = feature_files(features_dir, dataset, split)
    contents = {"label": np.asarray(labels, dtype=np.int64), "feature": np.asarray(features, dtype=np.float32)}
    if paths is not None:
        contents["path"] = "".join(f"{p}\n" for p in paths)
    if probabilities is not None:
        contents["probability"] = np.asarray(probabilities, dtype=np.float32)
    os.makedirs(features_dir, exist_ok=True)
    staging = temporary_name(os.path.join(features_dir, f"{dataset}_{FILE_SPLIT[split]}"))
    os.makedirs(staging)
    try:
        for kind, content in contents.items():
            staged = os.path.join(staging, os.path.basename(files[kind]))
            with open(staged, "wb") as handle:
                if kind == "path":
                    handle.write(content.encode("utf-8"))
                else:
                    np.save(handle, content)
                handle.flush()
                os.fsync(handle.fileno())
        sums = {kind: sha256_file(os.path.join(staging, os.path.basename(files[kind]))) for kind in contents}
        if before_replace is not None:
            before_replace()
        if probabilities is None and os.path.isfile(files["probability"]):
            os.remove(files["probability"])
        for kind in contents:  # the feature file last: its presence marks the split
            os.replace(os.path.join(staging, os.path.basename(files[kind])), files[kind])
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return sums


def load_features(features_dir, dataset, split):
    """(features (N, D) float32, labels (N,) int64, paths list or None). In a
    folder written by `fgtf.extract_features` the files must be those it
    recorded (sha256); a split it did not finish writing is refused."""
    files = feature_files(features_dir, dataset, split)
    for kind in ("feature", "label"):
        if not os.path.isfile(files[kind]):
            raise UserError(f"{files[kind]} is missing; run `python -m fgtf.extract_features --dataset {dataset} ...` first")
    _check_recorded_sums(features_dir, dataset, split, files)
    features, labels = _load_array(files["feature"], "a matrix of numbers", 2), _load_array(files["label"], "integer labels", 1)
    if len(features) != len(labels):
        raise UserError(f"{files['feature']} has {len(features)} rows but {files['label']} has {len(labels)} labels")
    if not np.issubdtype(labels.dtype, np.integer) or (len(labels) and labels.min() < 0):
        raise UserError(f"{files['label']} does not hold class labels (integers from 0)")
    paths = None
    if os.path.isfile(files["path"]):
        with open(files["path"], encoding="utf-8") as handle:
            paths = [line.rstrip("\n") for line in handle]
    return features, labels, paths


def load_probabilities(features_dir, dataset, split):
    """(N, Z) float32: the source-class softmax stored beside the features
    (checked against the record as `load_features` checks the features)."""
    files = feature_files(features_dir, dataset, split)
    if not os.path.isfile(files["probability"]):
        raise UserError(f"{files['probability']} is missing; extract it with `python -m fgtf.extract_features "
                        f"--dataset {dataset} --outputs features,probabilities ...` (the checkpoint needs its "
                        f"classifier)")
    _check_recorded_sums(features_dir, dataset, split, files)
    return _load_array(files["probability"], "a matrix of probabilities", 2)


def read_record(features_dir):
    """The `extract_features.json` of `features_dir` as a dict ({} without one)."""
    path = os.path.join(features_dir, RECORD)
    if not os.path.isfile(path):
        return {}
    with open(path, encoding="utf-8") as handle:
        try:
            record = json.load(handle)
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise UserError(f"{path} is not valid JSON ({error}); it was altered or damaged") from None
    if not isinstance(record, dict):
        raise UserError(f"{path} is not a features record (a JSON object); it was altered or damaged")
    return record


def _check_recorded_sums(features_dir, dataset, split, files):
    record = read_record(features_dir)
    if not record:
        return  # features of the original notebooks' layout, written elsewhere: nothing to check against
    entry = record.get("features", {}).get(dataset, {}).get("splits", {}).get({"val": "validation"}.get(split, split))
    if entry is None:
        raise UserError(f"{features_dir} holds {dataset} {split} features that {RECORD} does not list: their "
                        f"writing was interrupted; extract them again (python -m fgtf.extract_features ... "
                        f"--out {features_dir})")
    for kind, expected in entry.get("sha256", {}).items():  # records of older fgtf versions have none
        if not os.path.isfile(files[kind]) or sha256_file(files[kind]) != expected:
            raise UserError(f"{files[kind]} is not the file fgtf.extract_features wrote (its sha256 differs from "
                            f"{RECORD}): it was changed or replaced; extract the split again with --overwrite")


def _load_array(path, what, ndim):
    """The .npy array at `path`, which must hold `what` with `ndim` axes."""
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise UserError(f"{path} is not a plain numeric .npy file ({error})") from None
    if array.ndim != ndim or not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        raise UserError(f"{path} holds a {array.ndim}-axis {array.dtype} array, not {what}")
    return array


def save_class_names(features_dir, dataset, class_names):
    """Write the class names of `dataset`'s labels (label order)."""
    write_text(_classes_file(features_dir, dataset), "".join(f"{name}\n" for name in class_names))


def load_class_names(features_dir, dataset):
    """The class names of `dataset`'s labels, or None when none were saved."""
    from fgtf.datasets.splits import read_name_list

    path = _classes_file(features_dir, dataset)
    return read_name_list(path) if os.path.isfile(path) else None


def _classes_file(features_dir, dataset):
    return os.path.join(features_dir, f"{dataset}_classes.txt")

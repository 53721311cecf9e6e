"""The feature files of the original notebooks, one folder per model:

    feature/<model_name>/<dataset>_feature_{train,val}.npy   (N, D) float32
    feature/<model_name>/<dataset>_label_{train,val}.npy     (N,)   int64
    feature/<model_name>/<dataset>_path_{train,val}.txt      N image paths, row order

Rows follow the order of the dataset's split list.
"""
import os

import numpy as np

from fgtf.fileio import write_npy, write_text
from tfrecord_tools.cli import UserError

# pipeline split name -> the name in feature file names
FILE_SPLIT = {"train": "train", "validation": "val", "val": "val"}


def feature_files(features_dir, dataset, split):
    """{'feature': path, 'label': path, 'path': path} for one dataset split."""
    tag = FILE_SPLIT[split]
    return {
        "feature": os.path.join(features_dir, f"{dataset}_feature_{tag}.npy"),
        "label": os.path.join(features_dir, f"{dataset}_label_{tag}.npy"),
        "path": os.path.join(features_dir, f"{dataset}_path_{tag}.txt"),
    }


def has_features(features_dir, dataset, split):
    files = feature_files(features_dir, dataset, split)
    return os.path.isfile(files["feature"]) and os.path.isfile(files["label"])


def save_features(features_dir, dataset, split, features, labels, paths=None):
    """Write one split's features, labels and (optionally) image paths atomically;
    the feature file goes last, so its presence marks a complete split."""
    files = feature_files(features_dir, dataset, split)
    if paths is not None:
        write_text(files["path"], "".join(f"{p}\n" for p in paths))
    write_npy(files["label"], np.asarray(labels, dtype=np.int64))
    write_npy(files["feature"], np.asarray(features, dtype=np.float32))


def load_features(features_dir, dataset, split):
    """(features (N, D) float32, labels (N,) int64, paths list or None)."""
    files = feature_files(features_dir, dataset, split)
    for kind in ("feature", "label"):
        if not os.path.isfile(files[kind]):
            raise UserError(f"{files[kind]} is missing; run `python -m fgtf.extract_features --dataset {dataset} ...` first")
    features, labels = np.load(files["feature"]), np.load(files["label"])
    if len(features) != len(labels):
        raise UserError(f"{files['feature']} has {len(features)} rows but {files['label']} has {len(labels)} labels")
    paths = None
    if os.path.isfile(files["path"]):
        with open(files["path"], encoding="utf-8") as handle:
            paths = [line.rstrip("\n") for line in handle]
    return features, labels, paths

"""Registry of datasets: class counts, split sizes, split readers."""
import os
from collections import namedtuple

from tfrecord_tools.cli import UserError

SPLITS = ("train", "validation")
# split -> file name of the seed-style list
SEED_LIST = {"train": "train.txt", "validation": "val.txt"}

Record = namedtuple("Record", "path label class_name")
Record.__doc__ = "One image: absolute `path`, 0-based `label`, `class_name` (None when unknown)."

DatasetInfo = namedtuple("DatasetInfo", "name num_classes split_sizes")
DatasetInfo.__doc__ = ("`num_classes` (None: read from the lists) and `split_sizes` "
                       "{'train': n, 'validation': n} (None: not fixed).")

_DATASETS = {
    "synthetic": DatasetInfo("synthetic", None, None),
}


def list_datasets():
    return sorted(_DATASETS)


def get_dataset_info(name):
    if name not in _DATASETS:
        raise UserError(f"unknown dataset {name!r}; known datasets: {', '.join(list_datasets())}")
    return _DATASETS[name]


def read_split(name, dataset_dir, split):
    """List the images of `split` ('train' or 'validation') of dataset `name`
    stored in `dataset_dir`, as `Record`s in list order."""
    get_dataset_info(name)
    if split not in SPLITS:
        raise UserError(f"unknown split {split!r}; splits are {', '.join(SPLITS)}")
    if not os.path.isdir(dataset_dir):
        raise UserError(f"dataset folder {dataset_dir} does not exist")
    return read_seed_list(dataset_dir, split)


def read_seed_list(dataset_dir, split):
    """Read `<dataset_dir>/train.txt` or `val.txt`: lines `relative/path.jpg: <label>`.
    Class names are taken from `classes.txt` (one per line, label order) when present."""
    list_path = os.path.join(dataset_dir, SEED_LIST[split])
    if not os.path.isfile(list_path):
        raise UserError(f"split list {list_path} is missing")
    names = _read_class_names(dataset_dir)
    records = []
    with open(list_path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            line = line.rstrip("\n")
            if not line.strip():
                continue
            path, sep, label = line.rpartition(": ")
            if not sep or not label.strip().lstrip("-").isdigit():
                raise UserError(f"{list_path}:{number}: expected 'relative/path.jpg: <int label>', got {line!r}")
            label = int(label)
            records.append(Record(os.path.join(os.path.abspath(dataset_dir), path), label,
                                  names[label] if names and 0 <= label < len(names) else None))
    return records


def _read_class_names(dataset_dir):
    path = os.path.join(dataset_dir, "classes.txt")
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as handle:
        return [line.rstrip("\n") for line in handle if line.strip()]

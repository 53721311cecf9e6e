"""Seed-style split lists: the `Record` every reader returns, `train.txt` /
`val.txt` (`relative/path.jpg: <label>` per line) and `classes.txt`.

A leaf module: the dataset registry and the release-layout readers both build
on it.
"""
import os
from collections import namedtuple

from tfrecord_tools.cli import UserError

SPLITS = ("train", "validation")
# split -> file name of the seed-style list
SEED_LIST = {"train": "train.txt", "validation": "val.txt"}

Record = namedtuple("Record", "path label class_name")
Record.__doc__ = "One image: absolute `path`, 0-based `label`, `class_name` (None when unknown)."


def read_seed_list(dataset_dir, split):
    """Read `<dataset_dir>/train.txt` or `val.txt`: lines `relative/path.jpg: <label>`.
    Class names are taken from `classes.txt` (one per line, label order) when present."""
    return read_list_file(os.path.join(dataset_dir, SEED_LIST[split]), dataset_dir)


def read_list_file(list_path, dataset_dir):
    """Read any seed-style list (`relative/path.jpg: <label>` per line, paths
    relative to `dataset_dir`) as `Record`s in list order; class names from
    `<dataset_dir>/classes.txt` when present."""
    if not os.path.isfile(list_path):
        raise UserError(f"split list {list_path} is missing")
    names = read_class_names(dataset_dir)
    records = []
    with open(list_path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            path, sep, label = line.rpartition(": ")
            if not sep or not label.strip().lstrip("-").isdigit():
                raise UserError(f"{list_path}:{number}: expected 'relative/path.jpg: <int label>', got {line!r}")
            label = int(label)
            records.append(Record(os.path.join(os.path.abspath(dataset_dir), path), label,
                                  names[label] if names and 0 <= label < len(names) else None))
    return records


def read_class_names(dataset_dir):
    """The class names of `<dataset_dir>/classes.txt` in label order, or None without one."""
    path = os.path.join(dataset_dir, "classes.txt")
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as handle:
        return [line.rstrip("\r\n") for line in handle if line.strip()]

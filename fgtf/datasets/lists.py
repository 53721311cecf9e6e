"""Seed-style split lists: the `Record` every reader returns, `train.txt` /
`val.txt` (`relative/path.jpg: <label>` per line) and `classes.txt`.

Class names come from `classes.txt` (one per line, label order); without
one, from the images' folders when each class's images sit in a folder of
its own (`<class>/<image>.jpg`, as most datasets store them).

A leaf module: the dataset registry and the release-layout readers both build
on it.
"""
import os
from collections import namedtuple

from fgtf.errors import ParameterError, UserError

SPLITS = ("train", "validation")
# split -> file name of the seed-style list
SEED_LIST = {"train": "train.txt", "validation": "val.txt"}
# the class names, one per line in label order, in a dataset folder, beside shards and in a run folder
CLASSES_FILE = "classes.txt"

Record = namedtuple("Record", "path label class_name")
Record.__doc__ = "One image: absolute `path`, 0-based `label`, `class_name` (None when unknown)."


def read_seed_list(dataset_dir, split, allow_outside_paths=False):
    """Read `<dataset_dir>/train.txt` or `val.txt`: lines `relative/path.jpg: <label>`,
    with class names as the module docstring says."""
    return read_list_file(os.path.join(dataset_dir, SEED_LIST[split]), dataset_dir, allow_outside_paths)


def read_list_file(list_path, dataset_dir, allow_outside_paths=False):
    """Read any seed-style list (`relative/path.jpg: <label>` per line, paths
    relative to `dataset_dir`) as `Record`s in list order; class names from
    `<dataset_dir>/classes.txt`, else from the images' folders (see
    `folder_class_names`). Labels are integers from 0
    (below the number of classes classes.txt names, when there is one); a
    path that leads outside `dataset_dir` (absolute, `..`, or through a
    symbolic link) is a UserError unless `allow_outside_paths` (see
    `refuse_outside_paths`)."""
    if not os.path.isfile(list_path):
        raise UserError(f"split list {list_path} is missing")
    names = read_class_names(dataset_dir)
    records = []
    with open(list_path, encoding="utf-8") as handle:
        for number, line in enumerate(_text_lines(handle, list_path), 1):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            path, sep, label = line.rpartition(": ")
            if not sep or not label.strip().isdigit():
                raise UserError(f"{list_path}:{number}: expected 'relative/path.jpg: <label>' with a label of 0 "
                                f"or more, got {line!r}")
            label = int(label)
            if names and label >= len(names):
                raise UserError(f"{list_path}:{number}: label {label}, but {os.path.join(dataset_dir, 'classes.txt')} "
                                f"names {len(names)} classes (labels 0..{len(names) - 1})")
            records.append(Record(os.path.join(os.path.abspath(dataset_dir), path), label,
                                  names[label] if names else None))
    if not allow_outside_paths:
        refuse_outside_paths(records, dataset_dir, list_path)
    if names is None:
        folders = folder_class_names([record.path for record in records], [record.label for record in records])
        if folders:
            records = [record._replace(class_name=folders[record.label]) for record in records]
    return records


def folder_class_names(paths, labels):
    """{label: the name of the folder holding its images} when every label's
    images sit in one folder and different labels' in different folders
    (`<class>/<image>.jpg`), else None: the folders do not name the classes."""
    folders = {}
    for path, label in zip(paths, labels):
        folders.setdefault(int(label), set()).add(os.path.basename(os.path.dirname(path)))
    if not folders or any(len(names) != 1 for names in folders.values()):
        return None
    names = {label: next(iter(names)) for label, names in folders.items()}
    return names if len(set(names.values())) == len(names) and "" not in names.values() else None


def refuse_outside_paths(records, dataset_dir, source):
    """Raise UserError when the path of a record resolves outside `dataset_dir`
    (an absolute path, `..`, a symbolic link leading out): a split list
    names the images of its folder, and one that names others (say, a
    private file) is refused unless the user allows it. `source` is the list
    (or layout) the records came from, for the message."""
    root = os.path.realpath(dataset_dir)
    resolved_folders = {}
    for record in records:
        folder, name = os.path.split(record.path)
        if folder not in resolved_folders:
            resolved_folders[folder] = os.path.realpath(folder)
        resolved = os.path.join(resolved_folders[folder], name)
        if os.path.islink(resolved):
            resolved = os.path.realpath(resolved)
        if os.path.commonpath([root, resolved]) != root:
            raise ParameterError(f"{source} names {record.path}, which leads outside the dataset folder {dataset_dir} "
                                 f"(to {resolved}); pass `allow_outside_paths` if the list's images really live "
                                 f"elsewhere")


def read_class_names(dataset_dir):
    """The class names of `<dataset_dir>/classes.txt` in label order, or None without one."""
    path = os.path.join(dataset_dir, CLASSES_FILE)
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as handle:
        return [line.rstrip("\r\n") for line in _text_lines(handle, path) if line.strip()]


def shard_class_names(shard_dir, num_classes):
    """The class names of the TFRecords in `shard_dir`: the classes.txt
    beside them (fgtf.convert's) or in the folder above (a dataset folder
    whose tfrecords/ they are), when it names `num_classes` classes; else None."""
    for folder in (shard_dir, os.path.dirname(os.path.abspath(shard_dir))):
        names = read_class_names(folder)
        if names is not None:
            return names if len(names) == num_classes else None
    return None


def _text_lines(handle, path):
    """The lines of the text file `handle`; a file that is not UTF-8 text is a UserError naming it."""
    try:
        yield from handle
    except UnicodeDecodeError as error:
        raise UserError(f"{path} is not UTF-8 text (it holds the byte 0x{error.object[error.start]:02x}, "
                        f"{error.reason}); save it as UTF-8") from None

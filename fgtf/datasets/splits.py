"""Derived splits: low-data label-ratio subsets (SAM's protocol), per-class
caps (the class-balanced second stage on a long-tailed source), class lists
(a source subset chosen by `fgtf.transfer.select_source`) and the base/novel
class split with noisy web training data (SimTrans' weak-shot setting).

    train = read_split("cub_200", "data/cub_200", "train")
    few = label_ratio_subset(train, 10, seed=0)          # ~10 % of every class
    balanced = cap_per_class(train, 50, seed=0)          # at most 50 images of every class
    labels = class_list_labels(read_name_list("classes.txt"), train)
    subset = keep_classes(train, labels)                 # those classes, relabelled 0..K-1

    base, novel = base_novel_split(200, 50, seed=0)      # or class_split_from_names(...)
    data = weak_shot_split("cub_200", "data/cub_200", novel, base)
    data.novel_train                                     # noisy web images, labels 0..49
"""
import math
import os
from collections import defaultdict, namedtuple
from fractions import Fraction

import numpy as np

from fgtf.datasets.layouts import strip_number_prefix
from fgtf.datasets.lists import Record, read_list_file
from fgtf.datasets.registry import read_split
from fgtf.errors import UserError

# The noisy web training images of the weak-shot setting, inside the dataset folder.
WEB_LIST = "web.txt"
WEB_FOLDER = "web"

WeakShotSplit = namedtuple("WeakShotSplit", "base_train base_test novel_train novel_test base_classes novel_classes")
WeakShotSplit.__doc__ = (
    "Record lists of the weak-shot setting. Base records are relabelled to their "
    "position in `base_classes`, novel records to their position in `novel_classes` "
    "(original 0-based labels). `novel_train` holds the noisy web images.")


def label_ratio_subset(records, ratio_percent, seed=0):
    """Keep `ratio_percent` % of each class's records: ceil(n_c * ratio / 100)
    images of a class with n_c, at least 1 (SAM's protocol: 10, 15, 30, 50, 100;
    CUB's 30 images per class give 3/5/9/15/30).

    Which images a class keeps is a seeded permutation of its records sorted by
    path, so the subset depends only on (records, ratio, seed), not on the input
    order, and subsets of one seed are nested (10 % within 15 % within 30 % ...).
    Returns the kept records in their input order."""
    ratio = Fraction(str(ratio_percent))
    if not 0 < ratio <= 100:
        raise UserError(f"label ratio must be a percentage in (0, 100], got {ratio_percent}")
    return _keep_per_class(records, lambda count: max(1, math.ceil(count * ratio / 100)), seed)


def cap_per_class(records, max_per_class, seed=0):
    """Keep at most `max_per_class` records of each class (a class-balanced
    sample of a long-tailed split: classes with fewer keep all of theirs).
    The choice is the seeded per-class permutation of `label_ratio_subset`, so
    it depends only on (records, cap, seed) and caps of one seed are nested.
    Returns the kept records in their input order."""
    if isinstance(max_per_class, bool) or not isinstance(max_per_class, int) or max_per_class < 1:
        raise UserError(f"the per-class cap must be a positive integer, got {max_per_class!r}")
    return _keep_per_class(records, lambda count: min(count, max_per_class), seed)


def class_list_labels(class_names, records):
    """The labels of `class_names` (e.g. a `--class_list` file read by
    `read_name_list`), in that order, looked up among the class names the
    `records` carry; a name matches with or without a numeric 'NNN.' prefix.
    An unknown or repeated name is a `UserError` naming it."""
    if not class_names:
        raise UserError("the class list is empty")
    repeated = sorted({name for name in class_names if class_names.count(name) > 1})
    if repeated:
        raise UserError(f"the class list names {', '.join(repeated[:5])} more than once")
    known = class_names_of(records)
    if not known:
        raise UserError("the dataset's images carry no class names (a seed-style folder needs classes.txt, or "
                        "one image folder per class), so a class list cannot be matched")
    return _labels_of(class_names, _label_by_name(known))


def base_novel_split(num_classes, num_novel, seed=0):
    """Split labels 0..num_classes-1 into (base, novel): `num_novel` novel
    labels drawn at random by `seed`; both lists sorted. For the splits the
    SimTrans code uses, see `class_split_from_names` (CUB: Xian et al.'s
    `testclasses.txt`) or pass e.g. `novel = list(range(0, C, 4))` (its Car rule)."""
    if not 0 < num_novel < num_classes:
        raise UserError(f"the number of novel classes must be between 1 and {num_classes - 1}, got {num_novel}")
    novel = sorted(int(i) for i in np.random.default_rng(seed).choice(num_classes, num_novel, replace=False))
    return _other_labels(num_classes, novel), novel


def class_split_from_names(class_names, novel_names, base_names=None):
    """(base, novel) label lists from class-name lists, each in the order given
    (SimTrans: class index = position in the split file). `class_names[label]`
    is the dataset's name of each label; a name matches with or without a
    numeric 'NNN.' prefix (CUB folder names). Without `base_names`, base = every
    other label in label order."""
    label_of = _label_by_name(class_names)
    novel = _labels_of(novel_names, label_of)
    base = (_labels_of(base_names, label_of) if base_names is not None
            else _other_labels(len(class_names), novel))
    overlap = set(base) & set(novel)
    if overlap:
        raise UserError(f"classes {', '.join(class_names[i] for i in sorted(overlap))} are both base and novel")
    return base, novel


def read_name_list(path):
    """Class names, one per line (e.g. Xian et al.'s `trainvalclasses.txt` / `testclasses.txt`)."""
    if not os.path.isfile(path):
        raise UserError(f"class list {path} is missing")
    with open(path, encoding="utf-8") as handle:
        return [line.strip() for line in handle if line.strip()]


def keep_classes(records, classes):
    """Records whose label is in `classes` (a list of labels), relabelled to the
    label's position in `classes`; input order kept."""
    position = {label: index for index, label in enumerate(classes)}
    return [record._replace(label=position[record.label]) for record in records if record.label in position]


def class_names_of(records):
    """{label: class name} of the records that carry a name."""
    return {record.label: record.class_name for record in records if record.class_name is not None}


def class_names_by_label(records):
    """The names of labels 0..K-1 as the records give them (the label's
    number for a label they do not name) when their labels are 0..K-1, each
    present; None when labels are missing (classes.txt could not list them)."""
    labels = {record.label for record in records}
    if not labels or labels != set(range(len(labels))):
        return None
    names = class_names_of(records)
    return [names.get(label, str(label)) for label in range(len(labels))]


def read_web_split(dataset_dir, class_names):
    """The noisy web training images in `dataset_dir`, labelled by their search
    query (the class they were found for), as `Record`s in the dataset's label space:
      `web.txt`: seed-style list `relative/path.jpg: <label>`, or
      `web/<class name>/*`: one folder per class (SimTrans' `CUB_web` layout),
                 folder names matching `class_names[label]` with or without an
                 'NNN.' prefix; files sorted by name within a class.
    `class_names` is the dataset's list of names by label."""
    list_path = os.path.join(dataset_dir, WEB_LIST)
    if os.path.isfile(list_path):
        return read_list_file(list_path, dataset_dir)
    folder = os.path.join(dataset_dir, WEB_FOLDER)
    if not os.path.isdir(folder):
        raise UserError(f"{list_path} is missing; the weak-shot setting needs the noisy web training images "
                        f"as that list or as {folder}/<class name>/ folders")
    label_of = _label_by_name(class_names)
    records = []
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        if not entry.is_dir():
            continue
        label = label_of.get(entry.name, label_of.get(strip_number_prefix(entry.name)))
        if label is None:
            raise UserError(f"web folder {entry.path} does not match any class name of the dataset")
        records += [Record(file.path, label, class_names[label])
                    for file in sorted(os.scandir(entry.path), key=lambda e: e.name) if file.is_file()]
    return records


def weak_shot_split(name, dataset_dir, novel_classes, base_classes=None):
    """The weak-shot data of dataset `name` in `dataset_dir`: clean train and
    validation images of the base classes, noisy training images and clean
    validation images of the novel classes. `novel_classes` and `base_classes`
    are label lists (default base: every other label; the synthetic generator
    records its novel classes in `synthetic.json`).

    The novel classes' noisy training images are the web data of
    `read_web_split` when the folder has it; a `synthetic` dataset without web
    data uses its own training list, whose novel classes carry the web-like
    label noise of `--label_noise` (true labels: `train_clean_labels.txt`)."""
    train = read_split(name, dataset_dir, "train")
    validation = read_split(name, dataset_dir, "validation")
    num_classes = max(r.label for r in train + validation) + 1
    if base_classes is None:
        base_classes = _other_labels(num_classes, novel_classes)
    names = {**class_names_of(train), **class_names_of(validation)}
    class_names = [names.get(label, str(label)) for label in range(num_classes)]
    has_web_data = os.path.exists(os.path.join(dataset_dir, WEB_LIST)) or os.path.isdir(
        os.path.join(dataset_dir, WEB_FOLDER))
    web = train if name == "synthetic" and not has_web_data else read_web_split(dataset_dir, class_names)
    return WeakShotSplit(
        base_train=keep_classes(train, base_classes),
        base_test=keep_classes(validation, base_classes),
        novel_train=keep_classes(web, novel_classes),
        novel_test=keep_classes(validation, novel_classes),
        base_classes=list(base_classes),
        novel_classes=list(novel_classes),
    )


def _other_labels(num_classes, labels):
    excluded = set(labels)
    return [label for label in range(num_classes) if label not in excluded]


def _keep_per_class(records, kept_count, seed):
    """Records of which each class keeps `kept_count(n_c)` of its n_c: the first
    ones of a permutation seeded by (seed, label) of its records sorted by path."""
    by_class = defaultdict(list)
    for index, record in enumerate(records):
        by_class[record.label].append(index)
    kept = set()
    for label, members in by_class.items():
        members.sort(key=lambda index: records[index].path)
        order = np.random.default_rng([seed, label]).permutation(len(members))
        kept.update(members[i] for i in order[:kept_count(len(members))])
    return [record for index, record in enumerate(records) if index in kept]


def _label_by_name(class_names):
    """{name: label}, each name also without its 'NNN.' prefix. `class_names`:
    the names by label, as a list or a {label: name} dict."""
    label_of = {}
    for label, name in (class_names.items() if isinstance(class_names, dict) else enumerate(class_names)):
        label_of[name] = label_of[strip_number_prefix(name)] = label
    return label_of


def _labels_of(names, label_of):
    missing = [n for n in names if n not in label_of and strip_number_prefix(n) not in label_of]
    if missing:
        raise UserError(f"class names not in the dataset: {', '.join(missing[:5])}"
                        + (f" and {len(missing) - 5} more" if len(missing) > 5 else ""))
    return [label_of.get(n, label_of.get(strip_number_prefix(n))) for n in names]

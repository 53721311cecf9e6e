"""Registry of datasets: class counts, split sizes, split readers.

Every dataset is read from one folder, either through the seed-style lists
`train.txt` / `val.txt` (used whenever the folder holds one of them) or through
the dataset's official release layout (`fgtf.datasets.layouts`). `folder`
(any dataset of your own, the default of every command given only
`--dataset_dir`) and `synthetic` have no release layout: they read the seed
lists, else an image-folder tree `train/<class>/*.jpg` + `val/<class>/*.jpg`
(`fgtf.datasets.folders`).
"""
import os
from collections import namedtuple

from fgtf.datasets import folders, layouts
from fgtf.datasets.lists import SEED_LIST, SPLITS, read_class_names, read_seed_list, refuse_outside_paths
from fgtf.errors import UserError

# The name of a dataset of your own: seed lists or an image-folder tree, classes read from it.
GENERIC = "folder"

DatasetInfo = namedtuple("DatasetInfo", "name num_classes split_sizes")
DatasetInfo.__doc__ = ("`num_classes` (None: read from the lists) and `split_sizes` "
                       "{'train': n, 'validation': n} (None: not fixed).")


def _info(name, num_classes, train, validation):
    return DatasetInfo(name, num_classes, {"train": train, "validation": validation})


# Split sizes of the full official releases, as the CVPR 2018 study uses them:
# inat2017 train = 579,184 train + 95,986 val - 9,697 minival; aircraft is the
# 100-variant task (trainval / test); flower_102 train = train + val.
_DATASETS = {
    "ILSVRC2012": _info("ILSVRC2012", 1000, 1281167, 50000),
    "inat2017": _info("inat2017", 5089, 665473, 9697),
    "aircraft": _info("aircraft", 100, 6667, 3333),
    "cub_200": _info("cub_200", 200, 5994, 5794),
    "flower_102": _info("flower_102", 102, 2040, 6149),
    "food_101": _info("food_101", 101, 75750, 25250),
    "nabirds": _info("nabirds", 555, 23929, 24633),
    "stanford_cars": _info("stanford_cars", 196, 8144, 8041),
    "stanford_dogs": _info("stanford_dogs", 120, 12000, 8580),
    "synthetic": DatasetInfo("synthetic", None, None),
    GENERIC: DatasetInfo(GENERIC, None, None),
}


def list_datasets():
    """Names of every dataset fgtf knows, sorted."""
    return sorted(_DATASETS)


def get_dataset_info(name):
    """The `DatasetInfo` of dataset `name`; an unknown name is a `UserError` listing the known ones."""
    if name not in _DATASETS:
        raise UserError(f"unknown dataset {name!r}; known datasets: {', '.join(list_datasets())}")
    return _DATASETS[name]


def get_num_classes(name, dataset_dir=None):
    """Number of classes of dataset `name`: the registry's count, or for a
    dataset without a fixed count (`folder`, `synthetic`) the length of
    `classes.txt`, else 1 + the largest label of its splits in `dataset_dir`."""
    info = get_dataset_info(name)
    if info.num_classes is not None:
        return info.num_classes
    if dataset_dir is None:
        raise UserError(f"{name}: the number of classes is read from the dataset folder; pass its path")
    names = read_class_names(dataset_dir)
    if names:
        return len(names)
    labels = [record.label for split in SPLITS
              for record in read_split(name, dataset_dir, split, allow_outside_paths=True)]  # no image is read
    return max(labels) + 1


def read_split(name, dataset_dir, split, allow_outside_paths=False):
    """List the images of `split` ('train' or 'validation') of dataset `name`
    stored in `dataset_dir`, as `Record`s with 0-based contiguous labels, in a
    deterministic order (list order for seed lists; see `fgtf.datasets.layouts`
    for each release layout). Labels below the registry's class count; images
    inside `dataset_dir` unless `allow_outside_paths` (a UserError otherwise,
    see `fgtf.datasets.lists.refuse_outside_paths`)."""
    info = get_dataset_info(name)
    if split not in SPLITS:
        raise UserError(f"unknown split {split!r}; splits are {', '.join(SPLITS)}")
    if not os.path.isdir(dataset_dir):
        raise UserError(f"dataset folder {dataset_dir} does not exist")
    has_seed_lists = any(os.path.isfile(os.path.join(dataset_dir, f)) for f in SEED_LIST.values())
    if has_seed_lists or (name not in layouts.LAYOUTS and not folders.is_image_folder_tree(dataset_dir)):
        _require_seed_list(name, dataset_dir, split, layouts.LAYOUTS)
        records = read_seed_list(dataset_dir, split, allow_outside_paths)
        source = os.path.join(dataset_dir, SEED_LIST[split])
    else:
        if name in layouts.LAYOUTS:
            records = layouts.read_layout(name, dataset_dir, split)
            source = f"the {name} release layout in {dataset_dir}"
        else:
            records = folders.read_image_folders(dataset_dir, split)
            source = f"the image folders in {dataset_dir}"
        if not allow_outside_paths:
            refuse_outside_paths(records, dataset_dir, source)
    too_large = [record for record in records if info.num_classes and record.label >= info.num_classes]
    if too_large:
        raise UserError(f"{source} gives {too_large[0].path} the label {too_large[0].label}, but {name} has "
                        f"{info.num_classes} classes (labels 0..{info.num_classes - 1})")
    return records


def _require_seed_list(name, dataset_dir, split, layouts_known):
    path = os.path.join(dataset_dir, SEED_LIST[split])
    if os.path.isfile(path):
        return
    if name == "synthetic":
        raise UserError(f"synthetic: {path} is missing; generate the dataset with "
                        f"`python -m fgtf.datasets.synthetic --out {dataset_dir}`")
    if name in layouts_known:
        raise UserError(f"{name}: {path} is missing; expected train.txt and val.txt (or no seed lists at all, "
                        f"to read the release layout)")
    raise UserError(f"{path} is missing; a dataset folder holds the split lists train.txt and val.txt "
                    f"('relative/path.jpg: <label>' per line), or the folders train/<class>/ and val/<class>/ "
                    f"of images")

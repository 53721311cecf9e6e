"""Image-folder trees, the layout `keras.utils.image_dataset_from_directory`
and torchvision's `ImageFolder` read:

    <dataset_dir>/train/<class>/<image>           the training split
    <dataset_dir>/val/<class>/<image>             the validation split (or validation/, valid/, test/)

Labels follow the sorted class folders of `train/` (the first is 0, as
torchvision numbers them); the validation split's class folders must be
among them. Images are the files with an image suffix below a class folder
(subfolders included, hidden files left out), in sorted path order.
"""
import os

from fgtf.datasets.lists import Record
from fgtf.errors import UserError

# split -> the folder names it may have, the first present is read
SPLIT_FOLDERS = {"train": ("train",), "validation": ("validation", "val", "valid", "test")}
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")


def is_image_folder_tree(dataset_dir):
    """True when `dataset_dir` has a `train/` folder of class folders."""
    return os.path.isdir(os.path.join(dataset_dir, "train"))


def read_image_folders(dataset_dir, split):
    """The images of `split` ('train' or 'validation') of the tree in
    `dataset_dir` as `Record`s named by their class folder; a missing split
    folder, a class folder without images or a validation class that
    training lacks is a `UserError` naming it."""
    classes = class_folders(dataset_dir)
    folder = _split_folder(dataset_dir, split)
    label_of = {name: label for label, name in enumerate(classes)}
    records = []
    for name in _subfolders(folder):
        if name not in label_of:
            raise UserError(f"{os.path.join(folder, name)} is a class folder that "
                            f"{os.path.join(dataset_dir, 'train')} lacks; every class needs training images")
        images = _images_below(os.path.join(folder, name))
        if not images and split == "train":
            raise UserError(f"class folder {os.path.join(folder, name)} holds no images "
                            f"({', '.join(IMAGE_SUFFIXES)})")
        records += [Record(path, label_of[name], name) for path in images]
    return records


def class_folders(dataset_dir):
    """The class names of the tree: the sorted folders of its `train/`."""
    train = os.path.join(dataset_dir, "train")
    classes = _subfolders(train)
    if not classes:
        raise UserError(f"{train} holds no class folders; expected {train}/<class>/<image>.jpg")
    return classes


def _split_folder(dataset_dir, split):
    for name in SPLIT_FOLDERS[split]:
        folder = os.path.join(os.path.abspath(dataset_dir), name)
        if os.path.isdir(folder):
            return folder
    raise UserError(f"{dataset_dir} has train/ but no validation folder; expected one of "
                    f"{', '.join(name + '/' for name in SPLIT_FOLDERS['validation'])} with one folder per class")


def _subfolders(folder):
    return sorted(entry.name for entry in os.scandir(folder) if entry.is_dir() and not entry.name.startswith("."))


def _images_below(folder):
    images = []
    for root, dirs, names in os.walk(folder, followlinks=True):
        dirs[:] = [name for name in dirs if not name.startswith(".")]
        images += [os.path.join(root, name) for name in names
                   if not name.startswith(".") and name.lower().endswith(IMAGE_SUFFIXES)]
    return sorted(images)

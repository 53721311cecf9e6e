"""The datasets fgtf knows, and readers that list their images.

    records = fgtf.datasets.read_split("cub_200", "data/cub_200", "train")
    records[0]  # Record(path='/abs/.../001.Black_footed_Albatross/....jpg', label=0, class_name='Black_footed_Albatross')

Splits are named `train` and `validation` (the TFRecord shard names). A reader
takes the seed-style lists `train.txt` / `val.txt` when the folder has them,
otherwise the dataset's official release layout (`fgtf.datasets.layouts`),
or for a dataset of your own (`folder`, `GENERIC`) an image-folder tree
`train/<class>/*.jpg` + `val/<class>/*.jpg` (`fgtf.datasets.folders`).
Derived splits (`fgtf.datasets.splits`): label-ratio subsets for low-data
training, and the base/novel class split with noisy web data (weak-shot).
"""
from fgtf.datasets.lists import SPLITS, Record, read_list_file, read_seed_list  # noqa: F401
from fgtf.datasets.registry import (  # noqa: F401
    GENERIC, DatasetInfo, get_dataset_info, get_num_classes, list_datasets, read_split)
from fgtf.datasets.splits import (  # noqa: F401
    WeakShotSplit, base_novel_split, class_names_by_label, class_names_of, class_split_from_names, label_ratio_subset,
    read_name_list, read_web_split, keep_classes, weak_shot_split)

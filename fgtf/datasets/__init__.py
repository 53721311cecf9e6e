"""The datasets fgtf knows, and readers that list their images.

    records = fgtf.datasets.read_split("cub_200", "data/cub_200", "train")
    records[0]  # Record(path='/abs/.../001.Black_footed_Albatross/....jpg', label=0, class_name='Black_footed_Albatross')

Splits are named `train` and `validation` (the TFRecord shard names). A reader
takes the seed-style lists `train.txt` / `val.txt` when the folder has them,
otherwise the dataset's official release layout.
"""
from fgtf.datasets.registry import Record, DatasetInfo, get_dataset_info, list_datasets, read_split  # noqa: F401

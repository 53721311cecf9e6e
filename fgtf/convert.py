"""Convert a dataset's raw images to sharded TFRecords.

    python -m fgtf.convert --dataset cub_200 --num_shards 10
    # reads data/cub_200 (seed-style train.txt/val.txt or the official layout),
    # writes data/cub_200/tfrecords/{train,validation}_0000i-of-00010.tfrecord,
    # manifest.json and conversion_report.json

Records carry the original TF1 converter's keys (see `tfrecord_tools.example`),
`image/filename` (path relative to the dataset folder) and `image/class/text`
when the class name is known. The training split is shuffled by `--seed`;
validation keeps list order. Images are normalised by
`tfrecord_tools.images` (good JPEGs pass through untouched); bad files are
skipped and listed in conversion_report.json, or stop the run with --strict.
Rerunning the same command after an interruption finishes the job; the shards
end byte-identical to an uninterrupted run. `--shard_range a:b` splits one
conversion across machines (a shared output folder, or folders merged
afterwards by `python -m tfrecord_tools.merge`).
"""
import argparse
import os
import random
import sys
from collections import namedtuple

import fgtf
from fgtf import datasets
from tfrecord_tools.cli import UserError, cli_main
from tfrecord_tools.manifest import MANIFEST, REPORT
from tfrecord_tools.writer import ImageItem, write_split


Conversion = namedtuple("Conversion", "output_dir summaries")
Conversion.__doc__ = "`output_dir` written; `summaries`: {split: tfrecord_tools.writer.SplitSummary}."


def convert(dataset, num_shards, data_dir="data", dataset_dir=None, output_dir=None, num_workers=None,
            seed=0, shard_range=None, strict=False, label_ratio=None, progress=True):
    """Convert both splits of `dataset`; returns a `Conversion`.

    `dataset_dir` defaults to `<data_dir>/<dataset>`, `output_dir` to
    `<dataset_dir>/tfrecords` (`tfrecords_label<R>` with a `label_ratio` R,
    the percentage of each class's training images kept). Other arguments
    as the command-line flags. Raises `UserError` for bad arguments before
    any shard is written.
    """
    datasets.get_dataset_info(dataset)
    if num_shards < 1:
        raise UserError(f"--num_shards must be at least 1, got {num_shards}")
    if num_workers is not None and num_workers < 1:
        raise UserError(f"--num_workers must be at least 1, got {num_workers}")
    dataset_dir = dataset_dir or os.path.join(data_dir, dataset)
    if not os.path.isdir(dataset_dir):
        raise UserError(f"dataset folder {dataset_dir} does not exist (set --data_dir or --dataset_dir)")
    if output_dir is None:
        folder = "tfrecords" if label_ratio is None else f"tfrecords_label{label_ratio:g}"
        output_dir = os.path.join(dataset_dir, folder)

    splits = {split: datasets.read_split(dataset, dataset_dir, split) for split in ("train", "validation")}
    if label_ratio is not None:
        splits["train"] = datasets.label_ratio_subset(splits["train"], label_ratio, seed)
    random.Random(seed).shuffle(splits["train"])
    for split, records in splits.items():
        if num_shards > len(records):
            raise UserError(f"--num_shards {num_shards} is more than the {len(records)} images of the "
                            f"{split} split; use at most {len(records)}")

    metadata = {"tool": f"fgtf {fgtf.__version__}",
                "arguments": {"dataset": dataset, "num_shards": num_shards, "seed": seed,
                              "label_ratio": label_ratio}}
    summaries = {split: write_split([_item(record, dataset_dir) for record in records], output_dir, split,
                                    num_shards, shard_range=shard_range, num_workers=num_workers, strict=strict,
                                    metadata=metadata, progress=progress)
                 for split, records in splits.items()}
    return Conversion(output_dir, summaries)


@cli_main
def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m fgtf.convert",
        description="Convert a dataset's images to sharded TFRecords "
                    "(<split>_<i>-of-<n>.tfrecord for splits train and validation) with manifest.json "
                    "and conversion_report.json. Rerun the same command to resume an interrupted run.")
    parser.add_argument("--dataset", required=True, help=f"dataset name: {', '.join(datasets.list_datasets())}")
    parser.add_argument("--num_shards", type=int, required=True, help="shards per split")
    parser.add_argument("--data_dir", default="data", help="folder holding one folder per dataset (default: data)")
    parser.add_argument("--dataset_dir", help="the dataset's raw folder (default: <data_dir>/<dataset>)")
    parser.add_argument("--output_dir", help="where shards go (default: the dataset folder's tfrecords/, i.e. "
                                             "<data_dir>/<dataset>/tfrecords; tfrecords_label<R>/ with "
                                             "--label_ratio R)")
    parser.add_argument("--num_workers", type=int, help="writer processes (default: number of CPUs)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the training-order shuffle and of "
                                                            "--label_ratio's choice (default: 0)")
    parser.add_argument("--shard_range", type=_shard_range, metavar="A:B",
                        help="write only shards A..B-1 of each split, to split one conversion across machines: "
                             "those sharing the output folder merge as they go, others merge afterwards with "
                             "python -m tfrecord_tools.merge")
    parser.add_argument("--strict", action="store_true",
                        help="stop at the first unreadable image instead of skipping and reporting it")
    parser.add_argument("--label_ratio", type=float, metavar="R",
                        help="keep R percent of each class's training images (low-data protocol, e.g. 10)")
    args = parser.parse_args(argv)
    output_dir, summaries = convert(args.dataset, args.num_shards, args.data_dir, args.dataset_dir,
                                    args.output_dir, args.num_workers, args.seed, args.shard_range, args.strict,
                                    args.label_ratio)
    for summary in summaries.values():
        print(f"{summary.split}: wrote {len(summary.shards_written)} shards, kept {len(summary.shards_kept)} "
              f"already complete; {summary.records} records, {summary.skipped} skipped, "
              f"{summary.reencoded} re-encoded; {summary.images_per_second:.0f} images/s")
    skipped = sum(summary.skipped for summary in summaries.values())
    if skipped:
        print(f"{skipped} files skipped: reasons in {os.path.join(output_dir, REPORT)}", file=sys.stderr)
    print(f"manifest: {os.path.join(output_dir, MANIFEST)}")
    return 0


def _item(record, dataset_dir):
    return ImageItem(record.path, record.label, os.path.relpath(record.path, dataset_dir), record.class_name)


def _shard_range(text):
    first, sep, last = text.partition(":")
    if not sep or not first.isdigit() or not last.isdigit():
        raise argparse.ArgumentTypeError(f"expected A:B with integers A < B, got {text!r}")
    return int(first), int(last)


if __name__ == "__main__":
    main()

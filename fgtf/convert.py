"""Convert a dataset's raw images to sharded TFRecords.

    python -m fgtf.convert --dataset cub_200 --num_shards 10
    # reads data/cub_200 (seed-style train.txt/val.txt or the official layout),
    # writes data/cub_200/tfrecords/{train,validation}_0000i-of-00010.tfrecord,
    # manifest.json, conversion_report.json and classes.txt
    python -m fgtf.convert --dataset_dir my_images --num_shards 4
    # a dataset of your own: my_images/train.txt + val.txt, or my_images/train/<class>/*.jpg
    # + my_images/val/<class>/*.jpg; writes my_images/tfrecords/

Records carry the original TF1 converter's keys (see `tfrecord_tools.example`),
`image/filename` (path relative to the dataset folder) and `image/class/text`
when the class name is known. The training split is shuffled by `--seed`;
validation keeps list order. Images are normalised by
`tfrecord_tools.images` (good JPEGs pass through untouched); bad files are
skipped and listed in conversion_report.json, or stop the run with --strict.
A split whose every image was skipped is an error: its (empty) shards and
manifest entry are removed, the report stays.
Rerunning the same command after an interruption finishes the job; the shards
end byte-identical to an uninterrupted run. `--shard_range a:b` splits one
conversion across machines (a shared output folder, or folders merged
afterwards by `python -m tfrecord_tools.merge`).

Subsets (`fgtf.datasets.splits`), each applied to the training split and
recorded in the manifest's metadata:
  --label_ratio R      R % of each class's training images (low-data protocol)
  --max_per_class N    at most N training images per class: the class-balanced
                       sample of a long-tailed source for the short second
                       training stage at a low learning rate
  --class_list FILE    only the classes named in FILE (one per line, e.g. from
                       `fgtf.transfer.select_source`), relabelled 0..K-1 in the
                       file's order; applied to the validation split too
The validation split is never subsampled. The output folder's classes.txt
lists the class names by label (the label numbers for a dataset that names
none; left out when the labels are not 0..K-1, each present).
"""
from __future__ import annotations
import argparse
import os
import random
import sys
from collections import namedtuple

import fgtf
from fgtf import datasets
from fgtf.datasets import splits as subsets
from fgtf.fileio import write_text
from tfrecord_tools import manifest as manifest_lib
from fgtf.command_line import cli_main, command_parser, positive_int
from fgtf.errors import UserError
from tfrecord_tools.folder_lock import hold_folder
from tfrecord_tools.images import DEFAULT_MAX_PIXELS
from tfrecord_tools.manifest import MANIFEST, REPORT
from tfrecord_tools.writer import ImageItem, write_split


Conversion = namedtuple("Conversion", "output_dir summaries")
Conversion.__doc__ = "`output_dir` written; `summaries`: {split: tfrecord_tools.writer.SplitSummary}."


def convert(dataset: str, num_shards: int, data_dir: str = "data", dataset_dir: str | None = None,
            output_dir: str | None = None, num_workers: int | None = None, seed: int = 0,
            shard_range: tuple[int, int] | None = None, strict: bool = False, label_ratio: float | None = None,
            progress: bool = True, class_list: str | None = None, max_per_class: int | None = None,
            allow_outside_paths: bool = False, max_pixels: int = DEFAULT_MAX_PIXELS) -> Conversion:
    """Convert both splits of `dataset`; returns a `Conversion`.

    `dataset` None is a dataset of your own (`fgtf.datasets.GENERIC`) in
    `dataset_dir`. `dataset_dir` defaults to `<data_dir>/<dataset>`, `output_dir` to
    `<dataset_dir>/<default_output_folder(...)>` (`tfrecords`, with suffixes
    for the subsets). `class_list` is the path of a file of class names;
    other arguments as the command-line flags. Raises `UserError` for bad
    arguments before any shard is written, and when every image of a split
    was skipped. The output folder is held while it is written (see
    `tfrecord_tools.writer`): a second conversion into it is refused.
    """
    if dataset is None and dataset_dir is None:
        raise UserError("give --dataset_dir, the folder of your dataset (train.txt + val.txt, or train/<class>/ "
                        f"+ val/<class>/ image folders), or --dataset, one of {', '.join(datasets.list_datasets())}")
    dataset = dataset or datasets.GENERIC
    datasets.get_dataset_info(dataset)
    if num_shards < 1:
        raise UserError(f"--num_shards must be at least 1, got {num_shards}")
    if num_workers is not None and num_workers < 1:
        raise UserError(f"--num_workers must be at least 1, got {num_workers}")
    dataset_dir = dataset_dir or os.path.join(data_dir, dataset)
    if not os.path.isdir(dataset_dir):
        raise UserError(f"dataset folder {dataset_dir} does not exist (set --data_dir or --dataset_dir)")
    output_dir = output_dir or os.path.join(dataset_dir, default_output_folder(label_ratio, max_per_class,
                                                                               class_list))

    splits = {split: datasets.read_split(dataset, dataset_dir, split, allow_outside_paths)
              for split in ("train", "validation")}
    keep = None
    if class_list is not None:
        keep = subsets.class_list_labels(subsets.read_name_list(class_list), splits["train"] + splits["validation"])
    if label_ratio is not None:
        splits["train"] = subsets.label_ratio_subset(splits["train"], label_ratio, seed)
    if max_per_class is not None:
        splits["train"] = subsets.cap_per_class(splits["train"], max_per_class, seed)
    if keep is not None:
        # Last, so that the images a class keeps do not depend on which other classes are listed.
        splits = {split: subsets.keep_classes(records, keep) for split, records in splits.items()}
    random.Random(seed).shuffle(splits["train"])
    for split, records in splits.items():
        if num_shards > len(records):
            raise UserError(f"--num_shards {num_shards} is more than the {len(records)} images of the "
                            f"{split} split; use at most {len(records)}")

    metadata = {"tool": f"fgtf {fgtf.__version__}",
                "arguments": {"dataset": dataset, "num_shards": num_shards, "seed": seed,
                              "label_ratio": label_ratio, "max_per_class": max_per_class,
                              "class_list": class_list}}
    class_names = subsets.class_names_by_label(splits["train"] + splits["validation"])
    if keep is not None:
        metadata["class_names"] = class_names
    summaries = {}
    with hold_folder(output_dir, shared=shard_range is not None):
        for split, records in splits.items():
            summaries[split] = write_split([_item(record, dataset_dir) for record in records], output_dir, split,
                                           num_shards, shard_range=shard_range, num_workers=num_workers,
                                           strict=strict, max_pixels=max_pixels, metadata=metadata,
                                           progress=progress)
            _refuse_empty_split(output_dir, split)
        if class_names is not None:
            write_text(os.path.join(output_dir, "classes.txt"), "".join(f"{name}\n" for name in class_names))
    return Conversion(output_dir, summaries)


def default_output_folder(label_ratio=None, max_per_class=None, class_list=None):
    """`tfrecords`, with a suffix for each subset so that a subset never
    overwrites the full conversion: `_label<R>`, `_<class list file stem>`,
    `_max<N>` (e.g. `tfrecords_selected_max50`)."""
    parts = ["tfrecords"]
    if label_ratio is not None:
        parts.append(f"label{label_ratio:g}")
    if class_list is not None:
        parts.append(os.path.splitext(os.path.basename(class_list))[0])
    if max_per_class is not None:
        parts.append(f"max{max_per_class}")
    return "_".join(parts)


@cli_main
def main(argv=None):
    parser = command_parser(__name__, "Convert a dataset's images to sharded TFRecords "
                    "(<split>_<i>-of-<n>.tfrecord for splits train and validation) with manifest.json, "
                    "conversion_report.json and classes.txt. Rerun the same command to resume an "
                    "interrupted run.")
    parser.add_argument("--dataset",
                        help=f"dataset name: {', '.join(datasets.list_datasets())} (default: {datasets.GENERIC}, "
                             f"a dataset of your own in --dataset_dir)")
    parser.add_argument("--num_shards", type=positive_int, required=True, help="shards per split (required)")
    parser.add_argument("--data_dir", default="data", help="folder holding one folder per dataset (default: data)")
    parser.add_argument("--dataset_dir", help="the dataset's raw folder: its split lists train.txt and val.txt, its "
                                              "official release layout, or image folders train/<class>/ and "
                                              "val/<class>/ (default: <data_dir>/<dataset>)")
    parser.add_argument("--out", "--output_dir", dest="output_dir", metavar="DIR",
                        help="where shards go (default: the dataset folder's tfrecords/, i.e. "
                             "<data_dir>/<dataset>/tfrecords; with subsets tfrecords_label<R>, "
                             "tfrecords_<class list stem>, tfrecords_max<N>, joined by _)")
    parser.add_argument("--num_workers", type=positive_int, help="writer processes (default: number of CPUs)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the training-order shuffle and of the "
                                                            "--label_ratio / --max_per_class choice (default: 0)")
    parser.add_argument("--shard_range", type=_shard_range, metavar="A:B",
                        help="write only shards A..B-1 of each split, to split one conversion across machines: "
                             "those sharing the output folder merge as they go, others merge afterwards with "
                             "python -m tfrecord_tools.merge (default: all shards)")
    parser.add_argument("--strict", action="store_true",
                        help="stop at the first unreadable image instead of skipping and reporting it "
                             "(default: skip and report)")
    parser.add_argument("--label_ratio", type=_percentage, metavar="R",
                        help="keep R percent of each class's training images (low-data protocol, e.g. 10; "
                             "default: all)")
    parser.add_argument("--max_per_class", type=positive_int, metavar="N",
                        help="keep at most N training images of each class, a class-balanced sample for the "
                             "second, low-learning-rate stage on a long-tailed source (default: no cap)")
    parser.add_argument("--class_list", metavar="FILE",
                        help="keep only the classes named in FILE, one per line as in classes.txt (e.g. from "
                             "fgtf.transfer.select_source), relabelled 0..K-1 in the file's order, in both "
                             "splits (default: every class)")
    parser.add_argument("--allow_outside_paths", action="store_true",
                        help="read split-list images that lie outside the dataset folder (absolute paths, .., "
                             "symbolic links leading out); without it such a list is refused (default: refused)")
    parser.add_argument("--max_pixels", type=positive_int, default=DEFAULT_MAX_PIXELS,
                        help="skip (or, with --strict, stop at) an image whose header declares more pixels, "
                             "width x height, before anything is decoded (default: %(default)s)")
    args = parser.parse_args(argv)
    output_dir, summaries = convert(args.dataset, args.num_shards, args.data_dir, args.dataset_dir,
                                    args.output_dir, args.num_workers, args.seed, args.shard_range, args.strict,
                                    args.label_ratio, class_list=args.class_list,
                                    max_per_class=args.max_per_class, allow_outside_paths=args.allow_outside_paths,
                                    max_pixels=args.max_pixels)
    for summary in summaries.values():
        print(f"{summary.split}: wrote {len(summary.shards_written)} shards, kept {len(summary.shards_kept)} "
              f"already complete; {summary.records} records, {summary.skipped} skipped, "
              f"{summary.reencoded} re-encoded; {summary.images_per_second:.0f} images/s")
    skipped = sum(summary.skipped for summary in summaries.values())
    if skipped:
        print(f"{skipped} files skipped: reasons in {os.path.join(output_dir, REPORT)}", file=sys.stderr)
    print(f"manifest: {os.path.join(output_dir, MANIFEST)}")
    return 0


def _refuse_empty_split(output_dir, split):
    """When every image of `split` was skipped, remove its empty shards and its
    manifest entry (empty shards must not pass for a conversion; the manifest
    goes too when it lists nothing else) and raise; the report keeps the reasons."""
    with manifest_lib.locked(output_dir):
        manifest = manifest_lib.load_manifest(output_dir)
        if manifest["splits"][split]["records"]:
            return
        skipped = len(manifest_lib.load_report(output_dir)[split]["skipped"])
        for name in manifest_lib.list_shard_files(output_dir, split):
            os.remove(os.path.join(output_dir, name))
        del manifest["splits"][split]
        if manifest["splits"]:
            manifest_lib.save_manifest(output_dir, manifest)
        else:
            os.remove(os.path.join(output_dir, MANIFEST))
    raise UserError(f"every image of the {split} split was skipped ({skipped} files), so no shard was kept; "
                    f"the reasons are in {os.path.join(output_dir, REPORT)}")


def _item(record, dataset_dir):
    return ImageItem(record.path, record.label, os.path.relpath(record.path, dataset_dir), record.class_name)


def _percentage(text):
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is None or not 0 < value <= 100:
        raise argparse.ArgumentTypeError(f"expected a percentage in (0, 100], got {text!r}")
    return value


def _shard_range(text):
    first, sep, last = text.partition(":")
    if not sep or not first.isdigit() or not last.isdigit():
        raise argparse.ArgumentTypeError(f"expected A:B with integers A < B, got {text!r}")
    return int(first), int(last)


if __name__ == "__main__":
    main()

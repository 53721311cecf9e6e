"""Convert a dataset's raw images to sharded TFRecords.

    python -m fgtf.convert --dataset cub_200 --num_shards 10
    # reads data/cub_200 (seed-style train.txt/val.txt or the official layout),
    # writes data/cub_200/tfrecords/{train,validation}_0000i-of-00010.tfrecord,
    # manifest.json, conversion_report.json and classes.txt
    python -m fgtf.convert --dataset_dir my_images --num_shards 4
    # a dataset of your own: my_images/train.txt + val.txt, or my_images/train/<class>/*.jpg
    # + my_images/val/<class>/*.jpg; writes my_images/tfrecords/

    convert(ConvertOptions(dataset_dir="my_images", num_shards=4))   # the same in Python

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
import dataclasses
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


@dataclasses.dataclass(frozen=True, kw_only=True)
class ConvertOptions:
    """What `convert` converts, where to and how: each field named as its
    `python -m fgtf.convert` flag (`--out` is `output_dir`), whose help says
    more; `dataclasses.replace` varies one.

    dataset: a dataset registry name; None: a dataset of your own
      (`fgtf.datasets.GENERIC`) in `dataset_dir`.
    num_shards: shards per split.
    data_dir: the folder holding one folder per dataset.
    dataset_dir: the dataset's raw folder; None: `<data_dir>/<dataset>`.
    output_dir: where the shards go; None:
      `<dataset_dir>/<default_output_folder(...)>` (`tfrecords`, with
      suffixes for the subsets).
    num_workers: writer processes; None: one per CPU.
    seed: seed of the training-order shuffle and of the subsets' choice.
    shard_range: (A, B): write only shards A..B-1 of each split.
    strict: stop at the first unreadable image instead of skipping it.
    label_ratio: keep this percentage of each class's training images.
    max_per_class: keep at most this many training images of each class.
    class_list: the path of a file of class names: keep only these
      classes, relabelled 0..K-1 in the file's order, in both splits.
    allow_outside_paths: read split-list images outside the dataset folder.
    max_pixels: skip an image whose header declares more pixels.
    progress: show a progress bar with images/s on stderr (no flag: the
      command always does).
    """
    dataset: str | None = None
    num_shards: int
    data_dir: str = "data"
    dataset_dir: str | None = None
    output_dir: str | None = None
    num_workers: int | None = None
    seed: int = 0
    shard_range: tuple[int, int] | None = None
    strict: bool = False
    label_ratio: float | None = None
    max_per_class: int | None = None
    class_list: str | None = None
    allow_outside_paths: bool = False
    max_pixels: int = DEFAULT_MAX_PIXELS
    progress: bool = True


def convert(options: ConvertOptions) -> Conversion:
    """Convert both splits of `options.dataset`; returns a `Conversion`.

    Raises `UserError` for bad options before any shard is written, and when
    every image of a split was skipped. The output folder is held while it
    is written (see `tfrecord_tools.writer`): a second conversion into it is
    refused.
    """
    dataset, dataset_dir = _checked_source(options)
    output_dir = options.output_dir or os.path.join(dataset_dir, default_output_folder(
        options.label_ratio, options.max_per_class, options.class_list))
    splits, relabelled = _chosen_records(options, dataset, dataset_dir)
    for split, records in splits.items():
        if options.num_shards > len(records):
            raise UserError(f"--num_shards {options.num_shards} is more than the {len(records)} images of the "
                            f"{split} split; use at most {len(records)}")

    metadata = {"tool": f"fgtf {fgtf.__version__}",
                "arguments": {"dataset": dataset, "num_shards": options.num_shards, "seed": options.seed,
                              "label_ratio": options.label_ratio, "max_per_class": options.max_per_class,
                              "class_list": options.class_list}}
    class_names = subsets.class_names_by_label(splits["train"] + splits["validation"])
    if relabelled:
        metadata["class_names"] = class_names
    summaries = {}
    with hold_folder(output_dir, shared=options.shard_range is not None):
        for split, records in splits.items():
            summaries[split] = write_split([_item(record, dataset_dir) for record in records], output_dir, split,
                                           options.num_shards, shard_range=options.shard_range,
                                           num_workers=options.num_workers, strict=options.strict,
                                           max_pixels=options.max_pixels, metadata=metadata,
                                           progress=options.progress)
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
    output_dir, summaries = convert(ConvertOptions(**vars(parser.parse_args(argv))))
    for summary in summaries.values():
        print(f"{summary.split}: wrote {len(summary.shards_written)} shards, kept {len(summary.shards_kept)} "
              f"already complete; {summary.records} records, {summary.skipped} skipped, "
              f"{summary.reencoded} re-encoded; {summary.images_per_second:.0f} images/s")
    skipped = sum(summary.skipped for summary in summaries.values())
    if skipped:
        print(f"{skipped} files skipped: reasons in {os.path.join(output_dir, REPORT)}", file=sys.stderr)
    print(f"manifest: {os.path.join(output_dir, MANIFEST)}")
    return 0


def _checked_source(options):
    """(dataset registry name, dataset folder) of `options`, each checked."""
    if options.dataset is None and options.dataset_dir is None:
        raise UserError("give --dataset_dir, the folder of your dataset (train.txt + val.txt, or train/<class>/ "
                        f"+ val/<class>/ image folders), or --dataset, one of {', '.join(datasets.list_datasets())}")
    dataset = options.dataset or datasets.GENERIC
    datasets.get_dataset_info(dataset)
    if options.num_shards < 1:
        raise UserError(f"--num_shards must be at least 1, got {options.num_shards}")
    if options.num_workers is not None and options.num_workers < 1:
        raise UserError(f"--num_workers must be at least 1, got {options.num_workers}")
    dataset_dir = options.dataset_dir or os.path.join(options.data_dir, dataset)
    if not os.path.isdir(dataset_dir):
        raise UserError(f"dataset folder {dataset_dir} does not exist (set --data_dir or --dataset_dir)")
    return dataset, dataset_dir


def _chosen_records(options, dataset, dataset_dir):
    """({split: records} to write, whether `options.class_list` relabelled
    them): the subsets applied, the training split shuffled by the seed."""
    splits = {split: datasets.read_split(dataset, dataset_dir, split, options.allow_outside_paths)
              for split in ("train", "validation")}
    keep = None
    if options.class_list is not None:
        keep = subsets.class_list_labels(subsets.read_name_list(options.class_list),
                                         splits["train"] + splits["validation"])
    if options.label_ratio is not None:
        splits["train"] = subsets.label_ratio_subset(splits["train"], options.label_ratio, options.seed)
    if options.max_per_class is not None:
        splits["train"] = subsets.cap_per_class(splits["train"], options.max_per_class, options.seed)
    if keep is not None:
        # Last, so that the images a class keeps do not depend on which other classes are listed.
        splits = {split: subsets.keep_classes(records, keep) for split, records in splits.items()}
    random.Random(options.seed).shuffle(splits["train"])
    return splits, keep is not None


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

"""Summarise a TFRecord folder: shards and records per split, label histogram,
and a few records decoded.

    python -m tfrecord_tools.inspect data/cub_200/tfrecords

Counts and histograms come from manifest.json when the folder has one (run
`python -m tfrecord_tools.verify` to check them against the bytes), otherwise
from reading every record. Sample records are fully decoded with PIL.
"""
import argparse
import io
import os
from collections import Counter

from PIL import Image

from tfrecord_tools import manifest as manifest_lib
from tfrecord_tools.cli import UserError, cli_main
from tfrecord_tools.example import CLASS_TEXT, ENCODED, FILENAME, HEIGHT, LABEL, WIDTH
from tfrecord_tools.reader import check_shard, read_examples

_HISTOGRAM_LIMIT = 20  # classes listed one by one; past that, a summary


def inspect_dir(output_dir, samples=2):
    """Return the summary of `output_dir` as text (what the CLI prints);
    `samples`: records decoded per split."""
    if not os.path.isdir(output_dir):
        raise UserError(f"folder {output_dir} does not exist")
    shards = manifest_lib.list_shard_files(output_dir)
    if not shards:
        raise UserError(f"{output_dir} holds no <split>_NNNNN-of-NNNNN.tfrecord shards")
    manifest = manifest_lib.load_manifest(output_dir)
    source = "manifest.json" if manifest else "reading every record (no manifest.json)"
    lines = [f"{output_dir}  (counts from {source})"]
    for split in sorted({manifest_lib.parse_shard_name(name)[0] for name in shards}):
        names = [name for name in shards if manifest_lib.parse_shard_name(name)[0] == split]
        entry = manifest["splits"].get(split) if manifest else None
        records, histogram, state = _split_counts(output_dir, names, entry)
        lines.append(f"{split}: {len(names)} shard files{state}, {records} records, {len(histogram)} classes")
        lines.append("  labels: " + _format_histogram(histogram))
        lines += ["  " + line for line in _sample_lines(os.path.join(output_dir, names[0]), samples)]
    return "\n".join(lines)


@cli_main
def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m tfrecord_tools.inspect",
        description="Print shards and record counts per split, the label histogram and a few "
                    "decoded sample records of a TFRecord folder.")
    parser.add_argument("dir", help="folder holding the .tfrecord shards (and manifest.json)")
    parser.add_argument("--samples", type=int, default=2, help="records to decode per split (default 2)")
    args = parser.parse_args(argv)
    print(inspect_dir(args.dir, args.samples))
    return 0


def _split_counts(output_dir, names, entry):
    if entry is not None:
        state = "" if entry["complete"] else f" (incomplete: {len(entry['shards'])} of {entry['num_shards']} done)"
        histogram = Counter({int(label): count for label, count in entry["label_histogram"].items()})
        return entry["records"], histogram, state
    records, histogram = 0, Counter()
    for name in names:
        check = check_shard(os.path.join(output_dir, name))
        records += check.records
        histogram.update(check.labels)
    return records, histogram, ""


def _format_histogram(histogram):
    if not histogram:
        return "(none)"
    if len(histogram) <= _HISTOGRAM_LIMIT:
        return ", ".join(f"{label}: {histogram[label]}" for label in sorted(histogram))
    counts = sorted(histogram.values())
    return (f"{len(counts)} classes, images per class min {counts[0]}, "
            f"median {counts[len(counts) // 2]}, max {counts[-1]}")


def _sample_lines(path, samples):
    lines = []
    for index, features in enumerate(read_examples(path)):
        if index >= samples:
            break
        text = _first_text(features, CLASS_TEXT)
        described = f"label {features[LABEL][0]}" + (f" ({text})" if text else "")
        filename = _first_text(features, FILENAME)
        try:
            with Image.open(io.BytesIO(features[ENCODED][0])) as image:
                image.load()
                decoded = f"decodes to {image.width}x{image.height} {image.mode}"
        except (OSError, SyntaxError, ValueError) as error:
            decoded = f"DOES NOT DECODE ({error})"
        lines.append(f"sample {os.path.basename(path)}[{index}]: {described}, {filename or 'no filename'}, "
                     f"stored {features[WIDTH][0]}x{features[HEIGHT][0]}, {decoded}")
    return lines


def _first_text(features, key):
    values = features.get(key)
    return values[0].decode("utf-8", "replace") if values else None


if __name__ == "__main__":
    main()

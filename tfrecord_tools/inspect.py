"""Summarise a TFRecord folder: shards and records per split, label histogram,
and a few records decoded.

    python -m tfrecord_tools.inspect data/cub_200/tfrecords

Counts and histograms come from manifest.json when the folder has one,
trusted: each shard's presence and size are checked against it, not its
bytes (the first line says so; `python -m tfrecord_tools.verify` reads every
byte); otherwise from reading every record, each checked. Every record read
(the sample records, fully decoded with PIL, and without a manifest all of
them) is checked: its CRCs, its Example structure and its image. A shard
found bad is named on a `BAD <shard>: <problem>` line, worded as verify
words it, and the exit status is 1 (2 for a usage mistake).
"""
import io
import os
import sys
from collections import Counter

from PIL import Image

from tfrecord_tools import manifest as manifest_lib
from tfrecord_tools.cli import cli_main, command_parser, non_negative_int
from tfrecord_tools.errors import UserError
from tfrecord_tools.example import CLASS_TEXT, ENCODED, FILENAME, HEIGHT, LABEL, WIDTH
from tfrecord_tools.reader import check_shard, read_examples
from tfrecord_tools.verify import file_problem

_HISTOGRAM_LIMIT = 20  # classes listed one by one; past that, a summary


def inspect_dir(output_dir, samples=2):
    """Return the summary of `output_dir` as text (what the CLI prints);
    `samples`: records decoded per split. A shard that cannot be read shows as
    a line `BAD <shard>: <problem>`, worded as `tfrecord_tools.verify` words it."""
    lines, _ = summarize_dir(output_dir, samples)
    return "\n".join(lines)


def summarize_dir(output_dir, samples=2):
    """(lines of the summary, problems): `problems` is a list of (shard name,
    one sentence) for the shards found bad, empty when none was. Checked:
    every shard's presence and size against the manifest, or every record
    when there is none, and the records sampled."""
    if not os.path.isdir(output_dir):
        raise UserError(f"folder {output_dir} does not exist")
    shards = manifest_lib.list_shard_files(output_dir)
    if not shards:
        raise UserError(f"{output_dir} holds no <split>_NNNNN-of-NNNNN.tfrecord shards")
    manifest = manifest_lib.load_manifest(output_dir)
    source = (f"manifest.json, trusted: shard sizes checked, not their bytes; python -m tfrecord_tools.verify "
              f"reads every byte" if manifest else "reading every record, each checked (no manifest.json)")
    lines, problems = [f"{output_dir}  (counts from {source})"], []
    for split in sorted({manifest_lib.parse_shard_name(name)[0] for name in shards}):
        names = [name for name in shards if manifest_lib.parse_shard_name(name)[0] == split]
        entry = manifest["splits"].get(split) if manifest else None
        records, histogram, state, bad = _split_counts(output_dir, names, entry)
        lines.append(f"{split}: {len(names)} shard files{state}, {records} records, {len(histogram)} classes")
        lines.append("  labels: " + _format_histogram(histogram))
        sample_lines, sample_problem = _sample_lines(os.path.join(output_dir, names[0]), samples)
        lines += ["  " + line for line in sample_lines]
        if sample_problem and names[0] not in dict(bad):
            bad.insert(0, (names[0], sample_problem))
        problems += bad
    lines += [f"BAD {name}: {problem}" for name, problem in problems]
    return lines, problems


@cli_main
def main(argv=None):
    parser = command_parser(__name__, "Print shards and record counts per split, the label histogram and a few "
                    "decoded sample records of a TFRecord folder. A shard that cannot be read is "
                    "named in a BAD line, as verify does, and the exit status is 1.")
    parser.add_argument("dir", help="folder holding the .tfrecord shards (and manifest.json)")
    parser.add_argument("--samples", type=non_negative_int, default=2,
                        help="records to decode and describe per split")
    args = parser.parse_args(argv)
    lines, problems = summarize_dir(args.dir, args.samples)
    print("\n".join(lines))
    if problems:
        print(f"NOT OK {args.dir}: {len(problems)} unreadable shard(s); "
              f"run python -m tfrecord_tools.verify {args.dir} for a full check")
        sys.exit(1)
    return 0


def _split_counts(output_dir, names, entry):
    """(records, label histogram, state note, [(shard, problem)]) of one split."""
    if entry is not None:  # counts from the manifest; each file's presence and size checked
        state = "" if entry["complete"] else f" (incomplete: {len(entry['shards'])} of {entry['num_shards']} done)"
        histogram = Counter({int(label): count for label, count in entry["label_histogram"].items()})
        problems = [(name, file_problem(os.path.join(output_dir, name), shard))
                    for name, shard in sorted(entry["shards"].items())]
        return entry["records"], histogram, state, [(name, problem) for name, problem in problems if problem]
    records, histogram, problems = 0, Counter(), []
    for name in names:
        check = check_shard(os.path.join(output_dir, name))
        records += check.records
        histogram.update(check.labels)
        if check.problem:
            problems.append((name, check.problem))
    gaps = [(num_shards, missing) for _, num_shards, missing in manifest_lib.missing_shards(names)]
    state = "".join(f" (incomplete: {num_shards - len(missing)} of {num_shards} present)" for num_shards, missing in gaps)
    return records, histogram, state, problems


def _format_histogram(histogram):
    if not histogram:
        return "(none)"
    if len(histogram) <= _HISTOGRAM_LIMIT:
        return ", ".join(f"{label}: {histogram[label]}" for label in sorted(histogram))
    counts = sorted(histogram.values())
    return (f"{len(counts)} classes, images per class min {counts[0]}, "
            f"median {counts[len(counts) // 2]}, max {counts[-1]}")


def _sample_lines(path, samples):
    """(description lines of the first `samples` records of `path`, None or the
    problem that stopped the reading, worded as `check_shard` words it)."""
    lines = []
    try:
        for index, features in enumerate(read_examples(path)):
            if index >= samples:
                break
            lines.append(_describe(os.path.basename(path), index, features))
    except (ValueError, KeyError, IndexError):  # bad framing, not an Example, a key missing
        return lines, check_shard(path).problem
    return lines, None


def _describe(name, index, features):
    text = _first_text(features, CLASS_TEXT)
    described = f"label {features[LABEL][0]}" + (f" ({text})" if text else "")
    filename = _first_text(features, FILENAME)
    try:
        with Image.open(io.BytesIO(features[ENCODED][0])) as image:
            image.load()
            decoded = f"decodes to {image.width}x{image.height} {image.mode}"
    except (OSError, SyntaxError, ValueError) as error:
        decoded = f"DOES NOT DECODE ({error})"
    return (f"sample {name}[{index}]: {described}, {filename or 'no filename'}, "
            f"stored {features[WIDTH][0]}x{features[HEIGHT][0]}, {decoded}")


def _first_text(features, key):
    values = features.get(key)
    return values[0].decode("utf-8", "replace") if values else None


if __name__ == "__main__":
    main()

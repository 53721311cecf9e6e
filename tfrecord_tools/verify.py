"""Check every shard of a TFRecord folder against its manifest.

    python -m tfrecord_tools.verify data/cub_200/tfrecords

For each split in manifest.json: every shard 0..n-1 is listed and on disk, its
size and sha256 match, every record's CRCs, Example structure and required
keys are sound, the JPEG header agrees with the stored height/width, and the
record count and label histogram match. Shard files the manifest does not
list are reported too. Without a manifest (e.g. shards of the original TF1
converter) the records alone are checked.

Exit status: 0 when all is well; 1 with one line per bad shard naming it;
2 for a usage mistake (no such folder).
"""
import argparse
import os
import sys

from tfrecord_tools import manifest as manifest_lib
from tfrecord_tools.cli import UserError, cli_main
from tfrecord_tools.reader import check_shard


def verify_dir(output_dir):
    """Check `output_dir`; returns (problems, records): `problems` is a list of
    (shard name, one sentence), empty when all is well; `records` the count read."""
    if not os.path.isdir(output_dir):
        raise UserError(f"folder {output_dir} does not exist")
    manifest = manifest_lib.load_manifest(output_dir)
    on_disk = set(manifest_lib.list_shard_files(output_dir))
    if manifest is None:
        if not on_disk:
            raise UserError(f"{output_dir} has neither {manifest_lib.MANIFEST} nor shard files")
        return _check_records(output_dir, sorted(on_disk))
    problems, records, listed = [], 0, set()
    for split, entry in sorted(manifest["splits"].items()):
        for index in range(entry["num_shards"]):
            name = manifest_lib.shard_name(split, index, entry["num_shards"])
            listed.add(name)
            expected = entry["shards"].get(name)
            if expected is None:
                problems.append((name, "not in the manifest: the conversion of this shard has not finished"))
                continue
            problem, count = _check_against_manifest(os.path.join(output_dir, name), expected)
            records += count
            if problem:
                problems.append((name, problem))
    problems += [(name, "shard file not listed in the manifest") for name in sorted(on_disk - listed)]
    return problems, records


@cli_main
def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m tfrecord_tools.verify",
        description="Check every shard in DIR: CRCs, that each record parses as an image Example, "
                    "and record counts, label histograms and sha256 checksums against manifest.json. "
                    "Exits 1 naming each bad shard.")
    parser.add_argument("dir", help="folder holding the .tfrecord shards and manifest.json")
    args = parser.parse_args(argv)
    problems, records = verify_dir(args.dir)
    for name, problem in problems:
        print(f"BAD {name}: {problem}")
    if problems:
        print(f"verify: {len(problems)} bad shard(s) in {args.dir}", file=sys.stderr)
        sys.exit(1)
    note = "" if manifest_lib.load_manifest(args.dir) else f" (no {manifest_lib.MANIFEST}: records checked only)"
    print(f"OK {args.dir}: {records} records{note}")
    return 0


def _check_records(output_dir, names):
    problems, records = [], 0
    for name in names:
        check = check_shard(os.path.join(output_dir, name))
        records += check.records
        if check.problem:
            problems.append((name, check.problem))
    return problems, records


def _check_against_manifest(path, expected):
    """(problem or None, records read) for one shard file against its manifest entry."""
    if not os.path.isfile(path):
        return "file is missing", 0
    size = os.path.getsize(path)
    if size != expected["bytes"]:
        return f"size {size} bytes, manifest says {expected['bytes']}", 0
    check = check_shard(path)
    if check.problem:
        return check.problem, check.records
    if check.records != expected["records"]:
        return f"{check.records} records, manifest says {expected['records']}", check.records
    labels = {str(label): check.labels[label] for label in sorted(check.labels)}
    if labels != expected["labels"]:
        return "label histogram differs from the manifest", check.records
    if manifest_lib.sha256_file(path) != expected["sha256"]:
        return "sha256 differs from the manifest", check.records
    return None, check.records


if __name__ == "__main__":
    main()

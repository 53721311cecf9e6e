"""Check every shard of a TFRecord folder against its manifest.

    python -m tfrecord_tools.verify data/cub_200/tfrecords

The manifest must be sound: plain shard names of this folder (never a path),
and each split's record total, label histogram and `complete` flag the sums
of its shards. For each split in manifest.json: every shard 0..n-1 is listed
and on disk, its size and sha256 match, every record's CRCs, Example structure
and required keys are sound, the JPEG header agrees with the stored
height/width and declares no more pixels than the budget, and the record count
and label histogram match, and the split holds at least one record. Shard files the manifest does not list are reported too. Without a
manifest (e.g. shards of the original TF1 converter) the records are checked,
every `-of-N` set must be complete and every split hold a record.

Exit status: 0 when all is well ("OK ..."); 1 with one "BAD <shard or split>:
..." line per problem and a final "NOT OK ..." line; 2 for a usage mistake
(no such folder).
"""
import os
import sys
from collections import Counter

from tfrecord_tools import manifest as manifest_lib
from tfrecord_tools.cli import cli_main, command_parser, positive_int
from tfrecord_tools.errors import UserError
from tfrecord_tools.images import DEFAULT_MAX_PIXELS
from tfrecord_tools.reader import check_shard


def verify_dir(output_dir, max_pixels=DEFAULT_MAX_PIXELS):
    """Check `output_dir`; returns (problems, records): `problems` is a list of
    (shard, split or manifest name, one sentence), empty when all is well;
    `records` the count read. An image declaring more than `max_pixels`
    pixels is a problem."""
    if not os.path.isdir(output_dir):
        raise UserError(f"folder {output_dir} does not exist")
    on_disk = manifest_lib.list_shard_files(output_dir)
    try:
        manifest = manifest_lib.load_manifest(output_dir)
    except manifest_lib.ManifestError as error:  # a problem of the folder, reported as one
        return [(manifest_lib.MANIFEST, f"not a sound conversion manifest: {error.problem}")], 0
    if manifest is None:
        if not on_disk:
            raise UserError(f"{output_dir} has neither {manifest_lib.MANIFEST} nor shard files")
        return _check_without_manifest(output_dir, on_disk, max_pixels)
    problems, records, listed = [], 0, set()
    for split, entry in sorted(manifest["splits"].items()):
        for index in range(entry["num_shards"]):
            name = manifest_lib.shard_name(split, index, entry["num_shards"])
            listed.add(name)
            expected = entry["shards"].get(name)
            if expected is None:
                problems.append((name, "not in the manifest: the conversion of this shard has not finished"))
                continue
            problem, count = _check_against_manifest(os.path.join(output_dir, name), expected, max_pixels)
            records += count
            if problem:
                problems.append((name, problem))
        if entry["shards"] and not sum(shard["records"] for shard in entry["shards"].values()):
            problems.append((split, f"no records in its shards: every image was skipped "
                                    f"(reasons in {manifest_lib.REPORT})"))
    problems += [(name, "shard file not listed in the manifest") for name in sorted(set(on_disk) - listed)]
    return problems, records


def file_problem(path, expected):
    """The quick check of a shard file against its manifest entry `expected`
    (present, size), without reading it: None or one sentence."""
    if not os.path.isfile(path):
        return "file is missing"
    size = os.path.getsize(path)
    if size != expected["bytes"]:
        return f"size {size} bytes, manifest says {expected['bytes']}"
    return None


@cli_main
def main(argv=None):
    parser = command_parser(__name__, "Check every shard in DIR: CRCs, that each record parses as an image Example, "
                    "that no shard of a -of-N set is missing and no split is empty, and record counts, "
                    "label histograms and sha256 checksums against manifest.json. Prints OK, or one BAD "
                    "line per problem and NOT OK (exit 1); exit 2 for a usage mistake.")
    parser.add_argument("dir", help="folder holding the .tfrecord shards (and manifest.json, when a "
                                    "conversion wrote it)")
    parser.add_argument("--max_pixels", type=positive_int, default=DEFAULT_MAX_PIXELS,
                        help="an image whose header declares more pixels (width x height) is a problem "
                             "(default: %(default)s)")
    args = parser.parse_args(argv)
    problems, records = verify_dir(args.dir, args.max_pixels)
    for name, problem in problems:
        print(f"BAD {name}: {problem}")
    if problems:
        print(f"NOT OK {args.dir}: {len(problems)} problem(s), {records} records read")
        sys.exit(1)
    note = "" if manifest_lib.load_manifest(args.dir) else f" (no {manifest_lib.MANIFEST}: records checked only)"
    print(f"OK {args.dir}: {records} records{note}")
    return 0


def _check_without_manifest(output_dir, names, max_pixels):
    """Records of every shard, the gaps in each -of-N set, and splits with no record."""
    problems, per_split = [], Counter()
    for split, num_shards, missing in manifest_lib.missing_shards(names):
        problems += [(name, f"file is missing: only {num_shards - len(missing)} of the {num_shards} {split} "
                            f"shards are here (no {manifest_lib.MANIFEST} to say more)") for name in missing]
    for name in names:
        check = check_shard(os.path.join(output_dir, name), max_pixels)
        per_split[manifest_lib.parse_shard_name(name)[0]] += check.records
        if check.problem:
            problems.append((name, check.problem))
    problems += [(split, "no records in its shards") for split in sorted(per_split) if not per_split[split]]
    return problems, sum(per_split.values())


def _check_against_manifest(path, expected, max_pixels):
    """(problem or None, records read) for one shard file against its manifest entry."""
    problem = file_problem(path, expected)
    if problem:
        return problem, 0
    check = check_shard(path, max_pixels)
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

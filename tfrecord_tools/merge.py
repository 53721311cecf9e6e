"""Merge the output folders of one conversion split by shard range across
machines that do not share a file system.

    # machine 1: python -m fgtf.convert ... --shard_range 0:5 --output_dir part1
    # machine 2: python -m fgtf.convert ... --shard_range 5:10 --output_dir part2
    python -m tfrecord_tools.merge data/cub_200/tfrecords part1 part2

Every part's shards are checked against its manifest (size, sha256), copied
into OUTPUT_DIR (atomically; a part may be OUTPUT_DIR itself) and entered in
OUTPUT_DIR's manifest and conversion report; the parts' classes.txt (the
label names a conversion writes beside its shards) comes along, and parts
whose classes.txt differ are refused. Parts of a different conversion
(other input list, shard count or options) are refused. A merge that fails
writes nothing: a new OUTPUT_DIR appears only when complete. Machines writing to
one shared folder need no merge: their manifests merge as they write.
"""
import contextlib
import os
import shutil

from tfrecord_tools import manifest as manifest_lib
from tfrecord_tools.atomic import atomic_dir, atomic_path
from tfrecord_tools.cli import ENVIRONMENT_ERRNOS, cli_main, command_parser
from tfrecord_tools.errors import UserError

# the label names, one per line in label order, that fgtf.convert writes beside the shards
LABEL_NAMES = "classes.txt"


def merge_dirs(output_dir, part_dirs):
    """Merge the shards, manifests and reports of `part_dirs` into `output_dir`.
    Returns {split: number of shards now listed}. Raises `UserError` when a
    part has no manifest, a shard that does not match it, or comes from a
    different conversion; then nothing has been written. A new `output_dir` is
    built in a temporary folder beside it and renamed into place at the end;
    into an existing one, shards are copied first and the manifest written
    last, and the copies are removed again if the merge fails."""
    parts = [(part, _part_manifest(part)) for part in part_dirs]
    try:
        if os.path.isdir(output_dir):
            with manifest_lib.locked(output_dir):
                return _merge_into(output_dir, output_dir, parts)
        with atomic_dir(output_dir) as building:
            return _merge_into(building, output_dir, parts)
    except OSError as error:
        if error.errno in ENVIRONMENT_ERRNOS:
            raise  # a full disk: cli_main says so (exit 75); nothing was merged
        raise UserError(f"cannot write to output folder {output_dir} ({error.strerror or error})") from None


@cli_main
def main(argv=None):
    parser = command_parser(__name__, "Merge output folders written with --shard_range on different machines into "
                    "OUTPUT_DIR: shards are checked against their manifest, copied, and listed in one "
                    "manifest.json and conversion_report.json. On error nothing is written.")
    parser.add_argument("output_dir", help="folder to merge into: a new one, an earlier merge, or one of the parts")
    parser.add_argument("parts", nargs="+",
                        help="folders written by the --shard_range runs, each with its manifest.json")
    args = parser.parse_args(argv)
    counts = merge_dirs(args.output_dir, args.parts)
    manifest = manifest_lib.load_manifest(args.output_dir)
    for split, count in sorted(counts.items()):
        total = manifest["splits"][split]["num_shards"]
        state = "complete" if count == total else f"{total - count} still missing"
        print(f"{split}: {count} of {total} shards ({state})")
    return 0


def _part_manifest(part):
    if not os.path.isdir(part):
        raise UserError(f"folder {part} does not exist")
    manifest = manifest_lib.load_manifest(part)
    if manifest is None:
        raise UserError(f"{part} has no {manifest_lib.MANIFEST}: it was not written by a conversion")
    return manifest


def _merge_into(folder, output_dir, parts):
    """Merge `parts` into `folder` (`output_dir` itself or the temporary folder
    that becomes it): plan and check everything, then copy, then write."""
    target = manifest_lib.load_manifest(folder) or manifest_lib.empty_manifest()
    report = manifest_lib.load_report(folder)
    report_path = os.path.join(folder, manifest_lib.REPORT)
    old_report = None
    if os.path.exists(report_path):
        with open(report_path, "rb") as handle:
            old_report = handle.read()
    label_names = _label_names(folder, [part for part, _ in parts])
    copies = [] if label_names is None else [(label_names, LABEL_NAMES)]
    for part, part_manifest in parts:
        target["metadata"] = target["metadata"] or part_manifest["metadata"]
        part_report = manifest_lib.load_report(part)
        for split, entry in sorted(part_manifest["splits"].items()):
            copies += _merge_split(output_dir, part, split, entry, target, report, part_report.get(split, {}))
    created = []
    try:
        for source, name in copies:
            destination = os.path.join(folder, name)
            if not os.path.exists(destination):
                created.append(destination)
            _copy_atomically(source, destination)
        manifest_lib.save_report(folder, report)
        manifest_lib.save_manifest(folder, target)
    except BaseException:  # undo: the folder as it was (the manifest is written last)
        for path in created:
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)
        _restore(report_path, old_report)
        raise
    return {split: len(entry["shards"]) for split, entry in target["splits"].items()}


def _label_names(folder, part_dirs):
    """The path of the classes.txt the merged folder gets (None: no part has
    one); a `UserError` when the parts' (or `folder`'s own) differ."""
    found = {}  # contents -> the first file holding them
    for place in [folder, *part_dirs]:
        path = os.path.join(place, LABEL_NAMES)
        if os.path.isfile(path):
            with open(path, "rb") as handle:
                found.setdefault(handle.read(), path)
    if len(found) > 1:
        raise UserError(f"{' and '.join(list(found.values())[:2])} differ: the parts name their classes "
                        f"differently, so they are not one conversion")
    path = next(iter(found.values()), None)
    return None if path is None or path == os.path.join(folder, LABEL_NAMES) else path


def _merge_split(output_dir, part, split, entry, target, report, part_lines):
    """Enter one part's split in `target` and `report` (in memory) after checking
    its shards; returns the (source path, shard name) copies it needs."""
    existing = target["splits"].get(split)
    if existing is None:
        existing = target["splits"][split] = {key: value for key, value in entry.items() if key != "shards"}
        existing["shards"] = {}
    elif (existing["fingerprint"], existing["num_shards"]) != (entry["fingerprint"], entry["num_shards"]):
        raise UserError(f"split {split} in {part} comes from a different conversion than the one in "
                        f"{output_dir} (input list, shard count or options differ)")
    same_folder = os.path.realpath(part) == os.path.realpath(output_dir)
    copies = []
    for name, shard in sorted(entry["shards"].items()):
        source = os.path.join(part, name)
        if not os.path.isfile(source) or manifest_lib.sha256_file(source) != shard["sha256"]:
            raise UserError(f"{source} is missing or does not match its manifest; rerun that part's conversion")
        if not same_folder:
            copies.append((source, name))
        existing["shards"][name] = shard
    lines = report.setdefault(split, {"skipped": [], "reencoded": []})
    for kind in ("skipped", "reencoded"):
        new = part_lines.get(kind, [])
        merged = {(line["shard"], line["position"]): line for line in lines[kind] + new}
        lines[kind] = [merged[key] for key in sorted(merged)]
    return copies


def _restore(path, data):
    """Put back the file `path` as `data` (bytes), or remove it when `data` is None."""
    if data is None:
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)
        return
    with atomic_path(path) as temporary, open(temporary, "wb") as out:
        out.write(data)


def _copy_atomically(source, destination):
    with atomic_path(destination) as temporary:
        shutil.copyfile(source, temporary)


if __name__ == "__main__":
    main()

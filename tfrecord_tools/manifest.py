"""The layout of an output folder: shard names, `manifest.json`, `conversion_report.json`.

    <dir>/<split>_<shard:05d>-of-<num_shards:05d>.tfrecord
    <dir>/manifest.json            what was written and how to check it
    <dir>/conversion_report.json   files skipped (with the reason) or re-encoded

manifest.json:

    {"manifest_version": 1,
     "metadata": {...},                       # the caller's: tool version, arguments
     "splits": {"train": {
         "num_shards": 10, "num_inputs": 5994,
         "fingerprint": "<sha256 of the input list and options>",
         "complete": true,                    # every shard 0..num_shards-1 present
         "records": 5990, "label_histogram": {"0": 30, ...},
         "shards": {"train_00000-of-00010.tfrecord": {
             "index": 0, "records": 599, "bytes": 123, "sha256": "...",
             "labels": {"0": 3, ...}, "skipped": 1, "reencoded": 2}}}}}

Updates are read-modify-write under an exclusive lock on `<dir>/.manifest.lock`
and land with an atomic rename, so several processes or machines (shared
file system) writing different shard ranges of one conversion merge into one
manifest. Nothing in either file depends on time, so an interrupted and resumed
conversion ends with the same bytes as an uninterrupted one.
"""
import contextlib
import fcntl
import hashlib
import json
import os
import re
from collections import Counter

from tfrecord_tools.atomic import atomic_path
from tfrecord_tools.cli import UserError

MANIFEST = "manifest.json"
REPORT = "conversion_report.json"
MANIFEST_VERSION = 1
_LOCK = ".manifest.lock"
_SHARD_NAME = re.compile(r"^(?P<split>.+)_(?P<index>\d{5,})-of-(?P<num_shards>\d{5,})\.tfrecord$")


def shard_name(split, index, num_shards):
    """'train', 3, 10 -> 'train_00003-of-00010.tfrecord'."""
    return f"{split}_{index:05d}-of-{num_shards:05d}.tfrecord"


def parse_shard_name(name):
    """'train_00003-of-00010.tfrecord' -> ('train', 3, 10); None for other names."""
    match = _SHARD_NAME.match(name)
    if not match:
        return None
    return match["split"], int(match["index"]), int(match["num_shards"])


def list_shard_files(output_dir, split=None):
    """Names of the shard files in `output_dir` (optionally of one `split`), sorted."""
    names = []
    for name in os.listdir(output_dir):
        parsed = parse_shard_name(name)
        if parsed and (split is None or parsed[0] == split):
            names.append(name)
    return sorted(names)


def missing_shards(names):
    """Where the shard file names `names` (as `list_shard_files` gives them)
    leave gaps in their `-of-N` sets: a list of (split, N, [missing names]), one
    per set with a gap. This is all a folder without a manifest tells about
    which shards should be there."""
    present = {}
    for name in names:
        split, index, num_shards = parse_shard_name(name)
        present.setdefault((split, num_shards), set()).add(index)
    gaps = []
    for (split, num_shards), indices in sorted(present.items()):
        missing = [shard_name(split, index, num_shards) for index in range(num_shards) if index not in indices]
        if missing:
            gaps.append((split, num_shards, missing))
    return gaps


def load_manifest(output_dir):
    """The manifest of `output_dir` as a dict, or None when there is none."""
    return _load_json(os.path.join(output_dir, MANIFEST))


def load_report(output_dir):
    """The conversion report of `output_dir` as a dict ({} when there is none)."""
    return _load_json(os.path.join(output_dir, REPORT)) or {}


@contextlib.contextmanager
def locked(output_dir):
    """Hold the exclusive lock that guards the manifest and report of `output_dir`."""
    with open(os.path.join(output_dir, _LOCK), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def empty_manifest():
    return {"manifest_version": MANIFEST_VERSION, "metadata": {}, "splits": {}}


def save_manifest(output_dir, manifest):
    """Recompute each split's totals and write `manifest` atomically (call under `locked`)."""
    for entry in manifest["splits"].values():
        shards = entry["shards"]
        histogram = Counter()
        for shard in shards.values():
            histogram.update({int(label): count for label, count in shard["labels"].items()})
        entry["complete"] = len(shards) == entry["num_shards"]
        entry["records"] = sum(shard["records"] for shard in shards.values())
        entry["label_histogram"] = {str(label): histogram[label] for label in sorted(histogram)}
    write_json_atomic(os.path.join(output_dir, MANIFEST), manifest)


def save_report(output_dir, report):
    """Write the conversion report atomically (call under `locked`)."""
    write_json_atomic(os.path.join(output_dir, REPORT), report)


def sha256_file(path):
    """Hex sha256 of the file at `path`, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_json_atomic(path, data):
    """Write `data` as JSON to `path` atomically (`tfrecord_tools.atomic`)."""
    with atomic_path(path) as temporary, open(temporary, "w", encoding="utf-8") as out:
        json.dump(data, out, indent=1, sort_keys=True)
        out.write("\n")


def _load_json(path):
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as handle:
        try:
            return json.load(handle)
        except json.JSONDecodeError as error:
            raise UserError(f"{path} is not valid JSON ({error}); remove it to start over") from None

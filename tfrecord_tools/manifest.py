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
from tfrecord_tools.errors import UserError

MANIFEST = "manifest.json"
REPORT = "conversion_report.json"
MANIFEST_VERSION = 1
_LOCK = ".manifest.lock"
# A split name is a plain word: a shard name never holds a path separator or `..`.
_SPLIT_NAME = r"[A-Za-z0-9_-]+"
_SHARD_NAME = re.compile(rf"^(?P<split>{_SPLIT_NAME})_(?P<index>\d{{5,}})-of-(?P<num_shards>\d{{5,}})\.tfrecord$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class ManifestError(UserError):
    """A manifest.json that is not what a conversion writes: damaged, edited,
    or naming files outside its folder. Nothing it lists is used; `problem`
    says what is wrong in a few words."""

    def __init__(self, path, problem):
        super().__init__(f"{path} is not a sound conversion manifest: {problem}; check the folder with "
                         f"python -m tfrecord_tools.verify, or remove the manifest and convert again")
        self.problem = problem


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
    """The manifest of `output_dir` as a dict, or None when there is none.
    Raises `ManifestError` when it is not a sound conversion manifest (see
    `manifest_problem`): its shard names and counts are trusted by every
    reader, so they are checked here, once, for all of them."""
    path = os.path.join(output_dir, MANIFEST)
    manifest = _load_json(path)
    problem = None if manifest is None else manifest_problem(manifest)
    if problem:
        raise ManifestError(path, problem)
    return manifest


def manifest_problem(manifest):
    """None when `manifest` is a sound conversion manifest, else one phrase
    naming the first problem: a split or shard name that is not a plain
    shard name of that split (a path, `..`), a shard index outside its set,
    counts that are not non-negative integers, labels below 0, a shard whose
    label histogram does not add up to its records, or split totals
    (records, label histogram, complete) that are not the sums of its shards."""
    if not isinstance(manifest, dict) or not isinstance(manifest.get("splits"), dict):
        return "it holds no splits"
    for split, entry in manifest["splits"].items():
        if not re.fullmatch(_SPLIT_NAME, str(split)):
            return f"split name {split!r} is not a plain name (letters, digits, _ and -)"
        problem = _split_problem(split, entry)
        if problem:
            return f"split {split}: {problem}"
    return None


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


def _split_problem(split, entry):
    if not isinstance(entry, dict) or not _is_count(entry.get("num_shards")) or not entry["num_shards"]:
        return "no shard count"
    if not isinstance(entry.get("shards"), dict):
        return "no shard list"
    histogram = Counter()
    for name, shard in entry["shards"].items():
        if not isinstance(shard, dict) or not _is_count(shard.get("index")):
            return f"shard {name!r} has no index"
        if parse_shard_name(str(name)) != (split, shard["index"], entry["num_shards"]) \
                or name != shard_name(split, shard["index"], entry["num_shards"]) \
                or shard["index"] >= entry["num_shards"]:
            return f"shard name {name!r} is not shard {shard['index']} of the {entry['num_shards']} {split} shards"
        if not (_is_count(shard.get("records")) and _is_count(shard.get("bytes"))
                and isinstance(shard.get("sha256"), str) and _SHA256.match(shard["sha256"])):
            return f"shard {name} lacks its record count, size or sha256"
        labels = _histogram(shard.get("labels"))
        if labels is None:
            return f"shard {name} has labels that are not counts of labels 0, 1, ..."
        if sum(labels.values()) != shard["records"]:
            return f"shard {name} lists {shard['records']} records but labels for {sum(labels.values())}"
        histogram.update(labels)
    totals = {"records": sum(shard["records"] for shard in entry["shards"].values()),
              "label_histogram": {str(label): histogram[label] for label in sorted(histogram)},
              "complete": len(entry["shards"]) == entry["num_shards"]}
    for key, total in totals.items():
        if key in entry and entry[key] != total:
            return f"its {key.replace('_', ' ')} ({_short(entry[key])}) is not that of its shards ({_short(total)})"
    return None


def _histogram(labels):
    """{label: count} of a manifest's {"<label>": count}, or None when it is not one."""
    if not isinstance(labels, dict):
        return None
    histogram = {}
    for label, count in labels.items():
        if not (isinstance(label, str) and label.isdigit() and _is_count(count)):
            return None
        histogram[int(label)] = count
    return histogram


def _is_count(value):
    return type(value) is int and value >= 0


def _short(value):
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _load_json(path):
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as handle:
        try:
            return json.load(handle)
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise UserError(f"{path} is not valid JSON ({error}); remove it to start over") from None

"""Parallel, atomic, resumable sharded writer of labelled images.

    items = [ImageItem("/data/cub/001/a.jpg", 0, "001/a.jpg", "Albatross"), ...]
    summary = write_split(items, "/data/cub/tfrecords", "train", num_shards=10,
                          metadata={"tool": "fgtf 0.1.0", "args": {...}})
    summary.records, summary.split_records, summary.images_per_second

Shard `i` of `n` holds items[i*N//n : (i+1)*N//n] in the given order, minus
files the image normaliser rejects (listed with the reason in
`conversion_report.json`). Worker processes each write whole shards to a
temporary name and rename it into place when complete, then the parent adds
the shard (record count, label histogram, sha256) to `manifest.json`.

Rerunning the same conversion after an interruption, even SIGKILL, keeps every
shard whose file matches its manifest entry (size and sha256, checked in the
workers) and rewrites the rest; records are a pure function of the inputs, so
the result is byte-identical to an uninterrupted run. A different input list,
shard count or JPEG quality is a different conversion: its split starts over.
`shard_range=(a, b)` writes only shards a..b-1, so several machines writing to
one shared folder split a conversion; their manifests merge under a file lock.
The output folder is held while its shards are written (`folder_lock`): by
one process, or by several that each write a shard range, never by a
conversion of all shards and another process at once.
"""
import contextlib
import hashlib
import json
import multiprocessing
import os
import resource
import sys
import threading
import time
from collections import Counter, namedtuple
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

from tfrecord_tools import manifest as manifest_lib
from tfrecord_tools.atomic import atomic_path, is_temporary_of
from tfrecord_tools.cli import ENVIRONMENT_ERRNOS
from tfrecord_tools.errors import UserError
from tfrecord_tools.example import encode_example
from tfrecord_tools.folder_lock import hold_folder
from tfrecord_tools.images import DEFAULT_MAX_PIXELS, DEFAULT_QUALITY, BadImage, normalize_image
from tfrecord_tools.records import frame_record

ImageItem = namedtuple("ImageItem", "path label filename class_text", defaults=(None, None))
ImageItem.__doc__ = ("One input image: `path` to read, int `label`, optional `filename` stored as "
                     "image/filename (give a path relative to the dataset folder so records do not "
                     "depend on where the data is mounted) and `class_text` stored as image/class/text.")

SplitSummary = namedtuple(
    "SplitSummary", "split shards_written shards_kept records skipped reencoded seconds "
                    "images_per_second peak_worker_rss_mb split_records")
SplitSummary.__doc__ = ("What `write_split` did: shard names written and kept (already complete and "
                        "verified), record / skipped / re-encoded counts over the written shards, wall "
                        "seconds, images per second, the largest worker's peak resident memory in MiB, "
                        "and `split_records`: the records the manifest lists for the whole split now "
                        "(written, kept, and other shard ranges' shards). `split_records == 0` means "
                        "every image was skipped: the split holds nothing to train on.")

_FINGERPRINT_VERSION = 1
_PROGRESS_EVERY = 16  # images per progress update from a worker: cheap, still smooth


def write_split(items, output_dir, split, num_shards, *, shard_range=None, num_workers=None,
                strict=False, quality=DEFAULT_QUALITY, max_pixels=DEFAULT_MAX_PIXELS, metadata=None,
                progress=True):
    """Write `items` (a sequence of `ImageItem`) as `num_shards` TFRecord shards
    named `<split>_<i:05d>-of-<num_shards:05d>.tfrecord` in `output_dir`.

    `shard_range`: (a, b) writes shards a..b-1 only (default: all).
    `num_workers`: processes (default: CPU count, at most one per shard to write).
    `strict`: the first bad image raises `UserError` instead of being skipped.
    `quality`: JPEG quality of re-encoded images.
    `max_pixels`: images whose header declares more pixels are skipped as bad.
    `metadata`: JSON-able dict stored in the manifest (tool version, arguments).
    `progress`: show a progress bar with images/s on stderr.
    Returns a `SplitSummary`. Raises `UserError` for impossible requests, and
    `folder_lock.FolderBusy` when another process holds `output_dir`.
    """
    items = [ImageItem(*item) for item in items]
    first, last = _check_request(items, output_dir, num_shards, shard_range)
    with hold_folder(output_dir, shared=shard_range is not None):
        return _write_split(items, output_dir, split, num_shards, first, last, num_workers, strict, quality,
                            max_pixels, metadata, progress)


def _write_split(items, output_dir, split, num_shards, first, last, num_workers, strict, quality, max_pixels,
                 metadata, progress):
    bounds = [len(items) * index // num_shards for index in range(num_shards + 1)]
    fingerprint = _fingerprint(items, num_shards, quality, max_pixels)

    with manifest_lib.locked(output_dir):
        manifest = manifest_lib.load_manifest(output_dir) or manifest_lib.empty_manifest()
        entry = manifest["splits"].get(split)
        if not entry or entry["fingerprint"] != fingerprint or entry["num_shards"] != num_shards:
            entry = _start_split(output_dir, manifest, split, num_shards, len(items), fingerprint)
        manifest["metadata"] = metadata or {}
        manifest_lib.save_manifest(output_dir, manifest)
        known = dict(entry["shards"])

    tasks = []
    for index in range(first, last):
        name = manifest_lib.shard_name(split, index, num_shards)
        tasks.append(_ShardTask(output_dir, name, index, items[bounds[index]:bounds[index + 1]],
                                known.get(name), quality, max_pixels, strict))
    _remove_stale_temporaries(output_dir, {task.name for task in tasks})
    return _run(tasks, output_dir, split, num_workers, progress)


# --- the parent: checks, manifest, pool -----------------------------------

_ShardTask = namedtuple("_ShardTask", "output_dir name index items expected quality max_pixels strict")


def _check_request(items, output_dir, num_shards, shard_range):
    if num_shards < 1:
        raise UserError(f"the number of shards must be at least 1, got {num_shards}")
    if num_shards > len(items):
        raise UserError(f"cannot write {num_shards} shards from {len(items)} images; use at most {len(items)} shards")
    first, last = shard_range if shard_range is not None else (0, num_shards)
    if not 0 <= first < last <= num_shards:
        raise UserError(f"shard range {first}:{last} must satisfy 0 <= a < b <= {num_shards} (the number of shards)")
    try:
        os.makedirs(output_dir, exist_ok=True)
        with manifest_lib.locked(output_dir):
            pass
    except OSError as error:
        raise UserError(f"cannot write to output folder {output_dir} ({error.strerror or error})") from None
    return first, last


def _fingerprint(items, num_shards, quality, max_pixels):
    """sha256 of everything that decides the shard bytes (file contents aside)."""
    digest = hashlib.sha256()
    # The default budget is left out, so conversions written before it existed resume as they were.
    budget = [] if max_pixels == DEFAULT_MAX_PIXELS else [max_pixels]
    digest.update(json.dumps([_FINGERPRINT_VERSION, num_shards, quality, *budget]).encode())
    for item in items:
        # The stored filename, not the path, so machines mounting the data elsewhere agree.
        source = ["path", item.path] if item.filename is None else ["filename", item.filename]
        digest.update(json.dumps(source + [item.label, item.class_text]).encode() + b"\n")
    return digest.hexdigest()


def _start_split(output_dir, manifest, split, num_shards, num_inputs, fingerprint):
    """Forget an earlier, different conversion of `split`: its manifest entry,
    report lines and shard files (a different shard count leaves other names)."""
    for name in manifest_lib.list_shard_files(output_dir, split):
        os.remove(os.path.join(output_dir, name))
    report = manifest_lib.load_report(output_dir)
    if split in report:
        del report[split]
        manifest_lib.save_report(output_dir, report)
    entry = {"num_shards": num_shards, "num_inputs": num_inputs, "fingerprint": fingerprint, "shards": {}}
    manifest["splits"][split] = entry
    return entry


def _remove_stale_temporaries(output_dir, names):
    """Delete temporaries of the shards `names` left by a killed run. Only these:
    another machine may be writing other shards of the same folder."""
    for leftover in os.listdir(output_dir):
        if any(is_temporary_of(leftover, name) for name in names):
            with contextlib.suppress(FileNotFoundError):
                os.remove(os.path.join(output_dir, leftover))


def _run(tasks, output_dir, split, num_workers, progress):
    start = time.perf_counter()
    workers = min(num_workers or os.cpu_count() or 1, len(tasks))
    try:
        if workers > 1:
            results = _run_pool(tasks, workers, output_dir, split, progress)
        else:
            results = []
            with _progress_bar(tasks, split, progress) as bar:
                for task in tasks:
                    results.append(_write_shard(task, bar.update))
                    _record(output_dir, split, results[-1])
    except BadImage as error:
        raise UserError(f"{error.path}: {error.reason} (strict mode stops at the first bad image)") from None
    except BrokenProcessPool:
        raise UserError("a worker process died (killed for memory?); rerun the same command to resume") from None
    except OSError as error:
        if error.errno in ENVIRONMENT_ERRNOS:
            raise  # the disk filled up: cli_main says so (exit 75); rerunning resumes once it is fixed
        raise UserError(f"writing shards to {output_dir} failed ({error})") from None
    seconds = time.perf_counter() - start
    written = [result for result in results if not result.kept]
    written_names = {result.name for result in written}
    images = sum(len(task.items) for task in tasks if task.name in written_names)
    return SplitSummary(
        split=split,
        shards_written=sorted(result.name for result in written),
        shards_kept=sorted(result.name for result in results if result.kept),
        records=sum(result.entry["records"] for result in written),
        skipped=sum(len(result.skipped) for result in written),
        reencoded=sum(len(result.reencoded) for result in written),
        seconds=seconds,
        images_per_second=images / seconds if seconds > 0 else 0.0,
        peak_worker_rss_mb=max(result.peak_rss_kb for result in results) / 1024,
        split_records=manifest_lib.load_manifest(output_dir)["splits"][split]["records"])


def _run_pool(tasks, workers, output_dir, split, progress):
    """Write `tasks` in `workers` processes, recording each shard as it lands."""
    context = _process_context()
    counter = context.Value("q", 0)
    results = []
    # ProcessPoolExecutor, not multiprocessing.Pool: a worker that dies (say, killed
    # for memory) breaks the executor with an error instead of hanging the run.
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker, initargs=(counter,)) as pool, \
            _progress_bar(tasks, split, progress) as bar:
        pending = {pool.submit(_write_shard_in_worker, task) for task in tasks}
        try:
            while pending:
                done, pending = wait(pending, timeout=0.25, return_when=FIRST_COMPLETED)
                for future in done:
                    results.append(future.result())
                    _record(output_dir, split, results[-1])
                bar.update(counter.value - bar.n)
        except BaseException:
            for future in pending:  # shards not started yet; running ones finish unrecorded
                future.cancel()
            raise
    return results


def _progress_bar(tasks, split, progress):
    from tqdm import tqdm

    class Bar(tqdm):
        monitor_interval = 0  # no monitor thread: a second thread would rule out fork for the next pool

    # disable=None: the bar shows on a terminal, not in logs
    return Bar(total=sum(len(task.items) for task in tasks), desc=split, unit="img",
               disable=None if progress else True, dynamic_ncols=True)


def _process_context():
    """fork (fast start) while the parent is single-threaded and free of
    TensorFlow, whose native threads make forking unsafe; else forkserver:
    workers start from a clean process preloaded with this module."""
    methods = multiprocessing.get_all_start_methods()
    if "fork" in methods and threading.active_count() == 1 and "tensorflow" not in sys.modules:
        return multiprocessing.get_context("fork")
    if "forkserver" in methods:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload([__name__])
        return context
    return multiprocessing.get_context("spawn")


def _record(output_dir, split, result):
    """Add a finished shard to the manifest and its skipped / re-encoded files to the report."""
    if result.kept:
        return
    with manifest_lib.locked(output_dir):
        # Report first, manifest last: the manifest entry is what makes a shard count
        # as done, so a kill between the two writes only costs rewriting the shard.
        report = manifest_lib.load_report(output_dir)
        lines = report.setdefault(split, {"skipped": [], "reencoded": []})
        for kind, new in (("skipped", result.skipped), ("reencoded", result.reencoded)):
            lines[kind] = sorted([line for line in lines[kind] if line["shard"] != result.name] + new,
                                 key=lambda line: (line["shard"], line["position"]))
        manifest_lib.save_report(output_dir, report)
        manifest = manifest_lib.load_manifest(output_dir)
        manifest["splits"][split]["shards"][result.name] = result.entry
        manifest_lib.save_manifest(output_dir, manifest)


# --- the workers -----------------------------------------------------------

_ShardResult = namedtuple("_ShardResult", "name kept entry skipped reencoded peak_rss_kb")
_counter = None


def _init_worker(counter):
    global _counter
    _counter = counter


def _write_shard_in_worker(task):
    def report_progress(count):
        with _counter.get_lock():
            _counter.value += count

    return _write_shard(task, report_progress)


def _write_shard(task, report_progress):
    """Write one shard (or keep it when its file matches `task.expected`);
    `report_progress(n)` is called as images are done. Returns a `_ShardResult`."""
    path = os.path.join(task.output_dir, task.name)
    if task.expected and _file_matches(path, task.expected):
        report_progress(len(task.items))
        return _ShardResult(task.name, True, task.expected, [], [], _peak_rss_kb())
    digest, labels, skipped, reencoded = hashlib.sha256(), Counter(), [], []
    records = size = pending = 0
    with atomic_path(path) as temporary, open(temporary, "wb") as out:
        for position, item in enumerate(task.items):
            pending += 1
            if pending == _PROGRESS_EVERY:
                report_progress(pending)
                pending = 0
            try:
                image = normalize_image(item.path, task.quality, task.max_pixels)
            except BadImage as error:
                if task.strict:
                    raise
                skipped.append({"shard": task.name, "position": position, "path": item.path,
                                "reason": error.reason})
                continue
            if image.conversion:
                reencoded.append({"shard": task.name, "position": position, "path": item.path,
                                  "conversion": image.conversion})
            record = frame_record(encode_example(image.jpeg, item.label, image.height, image.width,
                                                 item.filename, item.class_text))
            out.write(record)
            digest.update(record)
            labels[item.label] += 1
            records += 1
            size += len(record)
    report_progress(pending)
    entry = {"index": task.index, "records": records, "bytes": size, "sha256": digest.hexdigest(),
             "labels": {str(label): labels[label] for label in sorted(labels)},
             "skipped": len(skipped), "reencoded": len(reencoded)}
    return _ShardResult(task.name, False, entry, skipped, reencoded, _peak_rss_kb())


def _file_matches(path, expected):
    if not os.path.isfile(path) or os.path.getsize(path) != expected["bytes"]:
        return False
    return manifest_lib.sha256_file(path) == expected["sha256"]


def _peak_rss_kb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

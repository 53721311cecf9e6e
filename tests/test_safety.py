"""Nothing lost, nothing escapes (issue 26): each case measured against the
earlier code, as a test. Every refusal is one line, a documented exit code and
no traceback; nothing is written outside the output folder; what is left
behind is the old complete state or the new complete one, never a mix.

Two-process cases hold a folder in a helper process that says `held` and
waits on its stdin, so no test depends on timing; full disks are writers
patched to fail as a full disk fails (the OSError or TensorFlow error that a
1 MiB tmpfs gave on this machine)."""
import contextlib
import errno
import hashlib
import io
import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from cli_helpers import REPO
from fgtf import convert
from tfrecord_tools import folder_lock, manifest, merge, verify
from tfrecord_tools.cli import EXIT_ENVIRONMENT, cli_main
from tfrecord_tools.example import encode_example
from tfrecord_tools.records import frame_record
from tfrecord_tools.writer import ImageItem, write_split



# --- helpers ------------------------------------------------------------------

def _jpeg(path, seed=0, size=16):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (size // 4, size // 4, 3), np.uint8).repeat(4, 0).repeat(4, 1)
    Image.fromarray(pixels).save(path, "JPEG", quality=90)
    return path


def _dataset(root, train=None, val=None, classes=("a", "b")):
    """A seed-style folder with four images; `train` / `val`: list lines (default: its own images)."""
    for index in range(4):
        _jpeg(os.path.join(root, "images", f"{index}.jpg"), seed=index)
    default = [f"images/{index}.jpg: {index % 2}" for index in range(4)]
    for name, lines in (("train.txt", train or default), ("val.txt", val or default[:2])):
        with open(os.path.join(root, name), "w", encoding="utf-8") as handle:
            handle.write("\n".join(lines) + "\n")
    if classes:
        with open(os.path.join(root, "classes.txt"), "w", encoding="utf-8") as handle:
            handle.write("\n".join(classes) + "\n")
    return str(root)


def _tree(root, skip=None):
    """{relative path: sha256} of every file under `root`, leaving out the folder `skip`."""
    files = {}
    for folder, _, names in os.walk(root):
        if skip and os.path.commonpath([os.path.abspath(folder), os.path.abspath(skip)]) == os.path.abspath(skip):
            continue
        for name in names:
            path = os.path.join(folder, name)
            with open(path, "rb") as handle:
                files[os.path.relpath(path, root)] = hashlib.sha256(handle.read()).hexdigest()
    return files


def _exit(main, argv, capsys):
    """(exit code, stdout, stderr) of a command's `main(argv)` run here."""
    try:
        main(argv)
        code = 0
    except SystemExit as stop:
        code = stop.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _one_line(err, *fragments):
    """The error is one line holding `fragments`, and no traceback."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err and len(lines) == 1, err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


_HOLDER = """
import sys
from tfrecord_tools.folder_lock import hold_folder
with hold_folder(sys.argv[1], shared=sys.argv[2] == "shared", beside=sys.argv[3] == "beside"):
    print("held", flush=True)
    sys.stdin.read()
"""


@contextlib.contextmanager
def _held_elsewhere(folder, shared=False, beside=False):
    """Another process holds `folder` for the block (it says so before the block starts)."""
    process = subprocess.Popen([sys.executable, "-c", _HOLDER, str(folder), "shared" if shared else "-",
                                "beside" if beside else "-"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               text=True, env=dict(os.environ, PYTHONPATH=REPO))
    try:
        assert process.stdout.readline().strip() == "held"
        yield process
    finally:
        if process.poll() is None:
            process.stdin.close()
        process.wait(timeout=60)
        process.stdout.close()


def _conversion(root):
    """A finished conversion of four images into `root`/part: its folder."""
    items = [ImageItem(_jpeg(os.path.join(root, "img", f"{index}.jpg"), seed=index), index % 2, f"{index}.jpg")
             for index in range(4)]
    part = os.path.join(root, "part")
    write_split(items, part, "train", 2, num_workers=1, progress=False)
    return part


def _edit_manifest(folder, change):
    path = os.path.join(folder, manifest.MANIFEST)
    with open(path, encoding="utf-8") as handle:
        data = json.load(handle)
    change(data)
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(data, handle)


def _huge_jpeg(size=16, declared=50_000):
    """A real JPEG whose header (SOF0) declares `declared` x `declared` pixels."""
    out = io.BytesIO()
    Image.new("RGB", (size, size), (200, 30, 30)).save(out, "JPEG")
    data = bytearray(out.getvalue())
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = declared.to_bytes(2, "big") * 2  # height, width
    return bytes(data)


# --- (1) shard names in manifests ----------------------------------------------

def test_merge_refuses_a_manifest_that_names_a_file_outside_its_folder(tmp_path, capsys):
    # Before: merge wrote (and on rerun overwrote) ../../../x/payload.txt outside its output folder,
    # exit 0, and verify then said OK.
    part = _conversion(tmp_path)
    payload = tmp_path / "elsewhere" / "payload.txt"
    payload.parent.mkdir()
    payload.write_text("not a shard")

    def point_outside(data):
        shards = data["splits"]["train"]["shards"]
        shard = shards.pop("train_00000-of-00002.tfrecord")
        shard.update(bytes=payload.stat().st_size, sha256=hashlib.sha256(payload.read_bytes()).hexdigest())
        shards["../elsewhere/payload.txt"] = shard

    _edit_manifest(part, point_outside)
    out = tmp_path / "deep" / "merged"
    before = _tree(tmp_path)
    code, _, err = _exit(merge.main, [str(out), part], capsys)
    assert code == 2
    _one_line(err, "is not a sound conversion manifest", "'../elsewhere/payload.txt' is not shard 0")
    assert _tree(tmp_path) == before and not out.exists() and not (tmp_path / "deep").exists()

    code, printed, _ = _exit(verify.main, [part], capsys)
    assert code == 1
    assert "BAD manifest.json: not a sound conversion manifest: split train: shard name '../elsewhere/payload.txt'" \
        in printed and "NOT OK" in printed


def test_a_split_name_with_a_separator_is_refused_by_every_reader(tmp_path):
    part = _conversion(tmp_path)
    _edit_manifest(part, lambda data: data["splits"].update({"../x": data["splits"].pop("train")}))
    with pytest.raises(manifest.ManifestError, match="split name '../x' is not a plain name"):
        manifest.load_manifest(part)


# --- (9) split totals against the shards --------------------------------------------

def test_verify_checks_each_split_total_and_histogram_against_its_shards(tmp_path, capsys):
    # Before: a manifest claiming 1,000 records for shards holding 4 passed verify.
    part = _conversion(tmp_path)
    assert _exit(verify.main, [part], capsys)[0] == 0
    _edit_manifest(part, lambda data: data["splits"]["train"].update(records=1000))
    code, printed, _ = _exit(verify.main, [part], capsys)
    assert code == 1 and "BAD manifest.json: not a sound conversion manifest: split train: its records (1000) is " \
                         "not that of its shards (4)" in printed
    _edit_manifest(part, lambda data: data["splits"]["train"].update(records=4, label_histogram={"0": 4}))
    code, printed, _ = _exit(verify.main, [part], capsys)
    assert code == 1 and "its label histogram" in printed


# --- (2) split-list paths outside --dataset_dir ---------------------------------------

@pytest.mark.parametrize("kind", ["absolute", "dot-dot", "symlink"])
def test_a_list_naming_images_outside_the_dataset_folder_is_refused(tmp_path, capsys, kind):
    # Before: an outside JPEG was copied into a shard byte for byte, /etc/shadow was opened.
    outside = _jpeg(str(tmp_path / "private" / "secret.jpg"), seed=9)
    root = tmp_path / "data"
    _dataset(root)
    if kind == "symlink":
        os.symlink(outside, root / "images" / "link.jpg")
    name = {"absolute": outside, "dot-dot": "../private/secret.jpg", "symlink": "images/link.jpg"}[kind]
    _dataset(root, train=[f"images/{index}.jpg: {index % 2}" for index in range(3)] + [f"{name}: 1"])
    out = tmp_path / "out"
    before = _tree(tmp_path)
    code, _, err = _exit(convert.main, ["--dataset", "synthetic", "--num_shards", "1", "--dataset_dir", str(root),
                                        "--out", str(out), "--num_workers", "1"], capsys)
    assert code == 2
    _one_line(err, "leads outside the dataset folder", "--allow_outside_paths")
    assert _tree(tmp_path) == before and not out.exists()

    code, _, _ = _exit(convert.main, ["--dataset", "synthetic", "--num_shards", "1", "--dataset_dir", str(root),
                                      "--out", str(out), "--num_workers", "1", "--allow_outside_paths"], capsys)
    assert code == 0 and manifest.load_manifest(str(out))["splits"]["train"]["records"] == 4


# --- (10) labels -----------------------------------------------------------------------

@pytest.mark.parametrize("label, classes, message", [
    ("-1", ("a", "b"), "with a label of 0 or more"),
    ("1000000000", ("a", "b"), "label 1000000000, but"),
])
def test_a_list_label_below_zero_or_beyond_the_classes_is_refused(tmp_path, capsys, label, classes, message):
    # Before: label -1 converted and trained; a label of 1e9 ended in an out-of-memory traceback.
    root = _dataset(tmp_path / "data", train=["images/0.jpg: 0", f"images/1.jpg: {label}"], classes=classes)
    code, _, err = _exit(convert.main, ["--dataset", "synthetic", "--num_shards", "1", "--dataset_dir", root,
                                        "--out", str(tmp_path / "out")], capsys)
    assert code == 2
    _one_line(err, message)
    assert not (tmp_path / "out").exists()


# --- (4) the pixel budget ---------------------------------------------------------------

def test_a_jpeg_declaring_50000_pixels_square_is_skipped_by_convert_and_stops_strict(tmp_path, capsys):
    # Before: it passed conversion unchecked (and crashed verify with a traceback).
    root = _dataset(tmp_path / "data")
    (tmp_path / "data" / "images" / "3.jpg").write_bytes(_huge_jpeg())
    arguments = ["--dataset", "synthetic", "--num_shards", "1", "--dataset_dir", root, "--num_workers", "1"]
    code, _, err = _exit(convert.main, arguments + ["--out", str(tmp_path / "strict"), "--strict"], capsys)
    assert code == 2
    _one_line(err, "3.jpg: declares 50000x50000 pixels, more than the budget of 100,000,000")
    code, _, _ = _exit(convert.main, arguments + ["--out", str(tmp_path / "out")], capsys)
    assert code == 0
    skipped = manifest.load_report(str(tmp_path / "out"))["train"]["skipped"]
    assert [line["reason"] for line in skipped] == [
        "declares 50000x50000 pixels, more than the budget of 100,000,000 (--max_pixels)"]


def test_verify_names_a_record_declaring_50000_pixels_square_without_a_traceback(tmp_path, capsys):
    shards = tmp_path / "shards"
    shards.mkdir()
    with open(shards / "train_00000-of-00001.tfrecord", "wb") as out:
        out.write(frame_record(encode_example(_huge_jpeg(), 0, 50_000, 50_000)))
    code, printed, err = _exit(verify.main, [str(shards)], capsys)
    assert code == 1 and "Traceback" not in err
    assert "BAD train_00000-of-00001.tfrecord: record 0: image/encoded declares 50000x50000 pixels" in printed
    code, printed, _ = _exit(verify.main, [str(shards), "--max_pixels", str(50_000 ** 2)], capsys)
    assert code == 0, printed


# --- text that is not UTF-8 --------------------------------------------------------------

def test_a_split_list_that_is_not_utf8_is_one_line(tmp_path, capsys):
    # Before: a UnicodeDecodeError traceback.
    root = _dataset(tmp_path / "data")
    with open(os.path.join(root, "train.txt"), "wb") as handle:
        handle.write(b"images/0.jpg: 0\nimages/\xff\xfe1.jpg: 1\n")
    code, _, err = _exit(convert.main, ["--dataset", "synthetic", "--num_shards", "1", "--dataset_dir", root,
                                        "--out", str(tmp_path / "out")], capsys)
    assert code == 2
    _one_line(err, "train.txt is not UTF-8 text", "save it as UTF-8")


# --- a full disk while converting ----------------------------------------------------------------

def test_a_full_disk_while_converting_is_one_line_and_a_retry_ends_byte_identical(tmp_path, capsys, monkeypatch):
    # Before: one line, but exit 2 (a user mistake) for a fault of the machine.
    from tfrecord_tools import writer

    root = _dataset(tmp_path / "data")
    arguments = ["--dataset", "synthetic", "--num_shards", "2", "--dataset_dir", root, "--num_workers", "1"]
    assert _exit(convert.main, arguments + ["--out", str(tmp_path / "whole")], capsys)[0] == 0
    frame, calls = writer.frame_record, []

    def full_disk(data):
        calls.append(data)
        if len(calls) == 3:  # in the second shard
            raise OSError(errno.ENOSPC, "No space left on device", "shard")
        return frame(data)

    monkeypatch.setattr(writer, "frame_record", full_disk)
    out = tmp_path / "out"
    code, _, err = _exit(convert.main, arguments + ["--out", str(out)], capsys)
    assert code == EXIT_ENVIRONMENT
    _one_line(err, "the disk is full (No space left on device: shard); free space, then run the same command "
                   "again; it resumes where it stopped")
    assert not [name for name in os.listdir(out) if ".tmp-" in name]
    monkeypatch.undo()
    assert _exit(convert.main, arguments + ["--out", str(out)], capsys)[0] == 0
    assert _tree(out) == _tree(tmp_path / "whole")


# --- locks: conversion output folders ------------------------------------------------------

def test_a_second_conversion_into_a_held_folder_is_turned_away_naming_the_holder(tmp_path, capsys):
    # Before: two converts into one folder could fail with "No such file ... .tmp-PID" (one removed
    # the other's temporaries) or, with other lists, delete each other's shards.
    root = _dataset(tmp_path / "data")
    out = tmp_path / "out"
    arguments = ["--dataset", "synthetic", "--num_shards", "2", "--dataset_dir", root, "--out", str(out),
                 "--num_workers", "1"]
    with _held_elsewhere(out) as holder:
        code, _, err = _exit(convert.main, arguments, capsys)
        assert code == 2
        _one_line(err, f"{out} is in use by process {holder.pid} on ", "wait for it to finish")
        assert os.listdir(out) == [folder_lock.LOCK_FILE]
    assert not out.exists()  # the holder made the folder and left it empty: removed
    # Shard ranges of one conversion share the folder; a whole conversion does not.
    with _held_elsewhere(out, shared=True):
        assert _exit(convert.main, arguments + ["--shard_range", "0:1"], capsys)[0] == 0
        assert _exit(convert.main, arguments, capsys)[0] == 2
    assert _exit(convert.main, arguments, capsys)[0] == 0
    assert verify.verify_dir(str(out))[0] == []


def test_the_lock_of_a_killed_process_is_taken_over_saying_so(tmp_path, capsys):
    root = _dataset(tmp_path / "data")
    out = tmp_path / "out"
    with _held_elsewhere(out) as holder:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    code, _, err = _exit(convert.main, ["--dataset", "synthetic", "--num_shards", "1", "--dataset_dir", root,
                                        "--out", str(out), "--num_workers", "1"], capsys)
    assert code == 0
    assert f"note: taking over the lock of {out} left by process {holder.pid} on " in err
    assert folder_lock.LOCK_FILE not in os.listdir(out)  # released cleanly: the file goes


def test_one_process_may_hold_a_folder_again_and_a_clean_release_leaves_nothing(tmp_path):
    folder = tmp_path / "new"
    with folder_lock.hold_folder(folder):
        with folder_lock.hold_folder(folder):  # nested in one process (the study's commands)
            assert folder_lock.holder(folder_lock.lock_file(folder)).startswith(f"process {os.getpid()} on ")
        assert os.path.exists(folder_lock.lock_file(folder))
    assert not folder.exists()
    with folder_lock.hold_folder(folder, beside=True):
        assert os.listdir(tmp_path) == [".new.fgtf.lock"]
    assert os.listdir(tmp_path) == []


# --- one line for every fault ---------------------------------------------------------------

def _tensorflow_error(kind, message):
    import tensorflow as tf

    return getattr(tf.errors, kind)(None, None, message)


def _tensorflow_case(kind, message, code, sentence):  # imports TensorFlow: slow
    return pytest.param(lambda: _tensorflow_error(kind, message), code, sentence, marks=pytest.mark.slow,
                        id=f"{kind}:{message[:20]}")


@pytest.mark.parametrize("make_error, code, sentence", [
    (lambda: OSError(errno.ENOSPC, "No space left on device", "/data/out/x.npy"), EXIT_ENVIRONMENT,
     "the disk is full (No space left on device: /data/out/x.npy); free space, then run the same command again"),
    (lambda: OSError(errno.EACCES, "Permission denied", "/data/out"), 2, "Permission denied: /data/out"),
    (lambda: FileNotFoundError(errno.ENOENT, "No such file or directory", "/data/x"), 2,
     "No such file or directory: /data/x"),
    (lambda: OSError(errno.EIO, "Input/output error", "/data/x"), EXIT_ENVIRONMENT,
     "the system failed (Input/output error"),
    (MemoryError, EXIT_ENVIRONMENT, "out of memory; use a smaller batch"),
    (lambda: UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"), 2,
     "a file that should be UTF-8 text is not (invalid start byte at byte 0)"),
    (lambda: json.JSONDecodeError("Expecting value", "{x", 1), 2, "a JSON file is malformed (Expecting value"),
    _tensorflow_case("ResourceExhaustedError", "{{function_node __wrapped__SaveV2}} /r/ckpt-1_temp/part-0; No space "
                     "left on device [Op:SaveV2]", EXIT_ENVIRONMENT,
                     "the disk is full (/r/ckpt-1_temp/part-0; No space left on device)"),
    _tensorflow_case("ResourceExhaustedError", "OOM when allocating tensor with shape[1000000000,16]",
                     EXIT_ENVIRONMENT, "out of memory (OOM when allocating tensor"),
    _tensorflow_case("DataLossError", "not an sstable (bad magic number)", 2, "a file is damaged (not an sstable"),
    _tensorflow_case("NotFoundError", "/x/ckpt-3.index; No such file or directory", 2, "not found (/x/ckpt-3.index"),
])
def test_cli_main_turns_faults_into_one_line(capsys, make_error, code, sentence):
    error = make_error()

    @cli_main
    def main(argv=None):
        raise error

    exit_code, _, err = _exit(main, [], capsys)
    assert exit_code == code
    _one_line(err, sentence)


def test_a_bug_still_shows_its_traceback():
    @cli_main
    def main(argv=None):
        raise KeyError("a bug")

    with pytest.raises(KeyError):
        main([])

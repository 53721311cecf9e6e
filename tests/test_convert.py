"""fgtf.convert: both splits from a seed-style dataset folder, deterministic
order, label-ratio subsets, bad files, kill-and-resume byte identity, shard
ranges and the command-line errors."""
import json
import math
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from fgtf import convert
from tfrecord_tools import manifest, verify
from tfrecord_tools.reader import read_examples

CLASSES = ["Albatross", "Auklet", "Blackbird"]


def _make_dataset(root, train_per_class=4, val_per_class=2, size=40, format="JPEG"):
    """A seed-style folder: images/<class>/<i>.jpg, train.txt, val.txt and classes.txt.
    `format`: what the .jpg files really hold. Returns the folder."""
    rng = np.random.default_rng(0)
    lines = {"train.txt": [], "val.txt": []}
    for label, name in enumerate(CLASSES):
        os.makedirs(os.path.join(root, "images", name), exist_ok=True)
        for index in range(train_per_class + val_per_class):
            relative = f"images/{name}/{index:03d}.jpg"
            pixels = rng.integers(0, 256, (size // 4, size // 4, 3), dtype=np.uint8).repeat(4, 0).repeat(4, 1)
            Image.fromarray(pixels).save(os.path.join(root, relative), format=format)
            lines["train.txt" if index < train_per_class else "val.txt"].append(f"{relative}: {label}")
    for list_name, entries in lines.items():
        with open(os.path.join(root, list_name), "w") as out:
            out.write("\n".join(entries) + "\n")
    with open(os.path.join(root, "classes.txt"), "w") as out:
        out.write("\n".join(CLASSES) + "\n")
    return root


def _records(output_dir, split):
    return [features for name in manifest.list_shard_files(output_dir, split)
            for features in read_examples(os.path.join(output_dir, name))]


def _outputs(output_dir):
    """Every file the conversion leaves (shards, manifest, report) -> bytes, the lock aside."""
    return {name: open(os.path.join(output_dir, name), "rb").read()
            for name in sorted(os.listdir(output_dir)) if not name.startswith(".")}


def _list(root, list_name):
    with open(os.path.join(root, list_name)) as handle:
        return [line.split(": ")[0] for line in handle.read().splitlines()]


def test_convert_writes_shuffled_train_and_ordered_validation(tmp_path, capsys):
    root = _make_dataset(str(tmp_path / "data" / "cub_200"))
    assert convert.main(["--dataset", "cub_200", "--num_shards", "3", "--data_dir", str(tmp_path / "data"),
                         "--num_workers", "2", "--seed", "5"]) == 0
    output_dir = os.path.join(root, "tfrecords")
    lines = capsys.readouterr().out.splitlines()
    assert re.fullmatch(r"train: wrote 3 shards, kept 0 already complete; 12 records, 0 skipped, "
                        r"0 re-encoded; \d+ images/s", lines[0])
    assert lines[1].startswith("validation: wrote 3 shards, kept 0 already complete; 6 records")
    assert lines[2] == f"manifest: {output_dir}/manifest.json"

    train, validation = _records(output_dir, "train"), _records(output_dir, "validation")
    expected_train = _list(root, "train.txt")
    random.Random(5).shuffle(expected_train)
    assert [f["image/filename"][0].decode() for f in train] == expected_train
    assert [f["image/filename"][0].decode() for f in validation] == _list(root, "val.txt")
    first = train[0]
    label = first["image/class/label"][0]
    assert first["image/class/text"] == [CLASSES[label].encode()]
    assert first["image/format"] == [b"jpg"] and (first["image/height"], first["image/width"]) == ([40], [40])
    assert first["image/encoded"][0] == open(os.path.join(root, expected_train[0]), "rb").read()

    saved = manifest.load_manifest(output_dir)
    assert saved["metadata"]["arguments"] == {"dataset": "cub_200", "num_shards": 3, "seed": 5, "label_ratio": None}
    assert saved["metadata"]["tool"].startswith("fgtf ")
    assert saved["splits"]["train"]["label_histogram"] == {"0": 4, "1": 4, "2": 4}
    assert verify.verify_dir(output_dir) == ([], 18)


def test_seed_changes_the_training_order_only(tmp_path):
    root = _make_dataset(str(tmp_path / "cub"))
    outputs = {}
    for seed in (0, 1):
        output_dir = convert.convert("cub_200", 2, dataset_dir=root, output_dir=str(tmp_path / f"seed{seed}"),
                                     num_workers=1, seed=seed, progress=False).output_dir
        outputs[seed] = _outputs(output_dir)
    names = sorted(outputs[0])
    assert [outputs[0][n] == outputs[1][n] for n in names if n.startswith("validation_")] == [True, True]
    assert any(outputs[0][n] != outputs[1][n] for n in names if n.startswith("train_"))


def test_label_ratio_keeps_that_share_of_each_class(tmp_path):
    root = _make_dataset(str(tmp_path / "cub"), train_per_class=5)
    result = convert.convert("cub_200", 2, dataset_dir=root, label_ratio=50, num_workers=1, progress=False)
    assert result.output_dir == os.path.join(root, "tfrecords_label50")
    labels = Counter(f["image/class/label"][0] for f in _records(result.output_dir, "train"))
    assert labels == {label: math.ceil(5 * 0.5) for label in range(3)}
    assert len(_records(result.output_dir, "validation")) == 6


def test_bad_files_are_reported_or_fatal_with_strict(tmp_path, capsys):
    root = _make_dataset(str(tmp_path / "cub"))
    broken = os.path.join(root, "images", "Auklet", "001.jpg")
    open(broken, "wb").close()
    args = ["--dataset", "cub_200", "--num_shards", "2", "--dataset_dir", root, "--num_workers", "1"]

    with pytest.raises(SystemExit) as exited:
        convert.main(args + ["--strict", "--output_dir", str(tmp_path / "strict")])
    assert exited.value.code == 2
    assert capsys.readouterr().err.strip().endswith(f"{broken}: empty file (strict mode stops at the first bad image)")

    assert convert.main(args + ["--output_dir", str(tmp_path / "lenient")]) == 0
    err = capsys.readouterr().err
    assert f"1 files skipped: reasons in {tmp_path / 'lenient' / 'conversion_report.json'}" in err
    report = json.load(open(tmp_path / "lenient" / "conversion_report.json"))
    assert [(line["path"], line["reason"]) for line in report["train"]["skipped"]] == [(broken, "empty file")]
    assert len(_records(str(tmp_path / "lenient"), "train")) == 11


def test_shard_ranges_on_two_machines_equal_one_run(tmp_path):
    root = _make_dataset(str(tmp_path / "cub"))
    common = ["--dataset", "cub_200", "--num_shards", "3", "--dataset_dir", root, "--num_workers", "1"]
    convert.main(common + ["--output_dir", str(tmp_path / "whole")])
    convert.main(common + ["--output_dir", str(tmp_path / "shared"), "--shard_range", "1:3"])
    convert.main(common + ["--output_dir", str(tmp_path / "shared"), "--shard_range", "0:1"])
    assert _outputs(str(tmp_path / "shared")) == _outputs(str(tmp_path / "whole"))


def test_kill_and_resume_ends_byte_identical(tmp_path):
    # PNG data behind .jpg names: every image is re-encoded, so the run lasts long enough to be killed mid-way.
    root = _make_dataset(str(tmp_path / "cub"), train_per_class=60, val_per_class=10, size=64, format="PNG")
    common = ["--dataset", "cub_200", "--num_shards", "30", "--dataset_dir", root]
    killed, whole = str(tmp_path / "killed"), str(tmp_path / "whole")

    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    process = subprocess.Popen([sys.executable, "-m", "fgtf.convert", *common, "--output_dir", killed],
                               start_new_session=True, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not _train_shards_done(killed) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    assert process.poll() is None, f"the conversion ended before it was killed: {process.stderr.read()}"
    os.killpg(process.pid, signal.SIGKILL)  # the whole group: parent and workers
    process.wait()
    done = _train_shards_done(killed)
    assert 0 < done < 30, f"the run was not interrupted mid-way ({done} of 30 train shards done)"

    convert.main(common + ["--output_dir", killed])
    convert.main(common + ["--output_dir", whole])
    assert _outputs(killed) == _outputs(whole)
    assert verify.verify_dir(killed) == ([], 210)


def _train_shards_done(output_dir):
    saved = os.path.isdir(output_dir) and manifest.load_manifest(output_dir)
    return len(saved["splits"]["train"]["shards"]) if saved and "train" in saved["splits"] else 0


@pytest.mark.parametrize("extra, message", [
    (["--dataset", "nope"], "unknown dataset 'nope'; known datasets: "),
    (["--data_dir", "{tmp}/nowhere"], "dataset folder {tmp}/nowhere/cub_200 does not exist"),
    (["--num_shards", "0"], "--num_shards must be at least 1, got 0"),
    (["--num_shards", "7"], "--num_shards 7 is more than the 6 images of the validation split; use at most 6"),
    (["--output_dir", "{tmp}/file/out"], "cannot write to output folder {tmp}/file/out (Not a directory)"),
    (["--shard_range", "2:1"], "shard range 2:1 must satisfy 0 <= a < b <= 2"),
    (["--shard_range", "3"], "argument --shard_range: expected A:B with integers A < B, got '3'"),
    (["--label_ratio", "0"], "label ratio must be a percentage in (0, 100], got 0.0"),
])
def test_bad_arguments_give_one_line_and_exit_2(tmp_path, capsys, extra, message):
    _make_dataset(str(tmp_path / "data" / "cub_200"), train_per_class=3, val_per_class=2)
    (tmp_path / "file").write_text("")
    args = ["--dataset", "cub_200", "--num_shards", "2", "--data_dir", str(tmp_path / "data")]
    with pytest.raises(SystemExit) as exited:
        convert.main(args + [part.format(tmp=tmp_path) for part in extra])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert message.format(tmp=tmp_path) in err and "Traceback" not in err
    assert "known datasets: " not in message or "cub_200" in err

"""fgtf.convert: both splits from a seed-style dataset folder, deterministic
order, label-ratio subsets, per-class caps and class lists (and the pure
subset functions of fgtf.datasets.splits behind them), bad files, a split of
only bad files, kill-and-resume byte identity, shard ranges and the
command-line errors."""
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
from fgtf.datasets import Record
from fgtf.datasets.splits import cap_per_class, class_list_labels
from tfrecord_tools import manifest, verify
from tfrecord_tools.reader import read_examples

CLASSES = ["Albatross", "Auklet", "Blackbird"]


def _make_dataset(root, train_per_class=4, val_per_class=2, size=40, format="JPEG"):
    """A seed-style folder: images/<class>/<i>.jpg, train.txt, val.txt and classes.txt.
    `train_per_class`: one count, or one per class (a long tail). `format`:
    what the .jpg files really hold. Returns the folder."""
    rng = np.random.default_rng(0)
    lines = {"train.txt": [], "val.txt": []}
    train_counts = train_per_class if isinstance(train_per_class, list) else [train_per_class] * len(CLASSES)
    for label, (name, train_count) in enumerate(zip(CLASSES, train_counts)):
        os.makedirs(os.path.join(root, "images", name), exist_ok=True)
        for index in range(train_count + val_per_class):
            relative = f"images/{name}/{index:03d}.jpg"
            pixels = rng.integers(0, 256, (size // 4, size // 4, 3), dtype=np.uint8).repeat(4, 0).repeat(4, 1)
            Image.fromarray(pixels).save(os.path.join(root, relative), format=format)
            lines["train.txt" if index < train_count else "val.txt"].append(f"{relative}: {label}")
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
    assert saved["metadata"]["arguments"] == {"dataset": "cub_200", "num_shards": 3, "seed": 5, "label_ratio": None,
                                              "max_per_class": None, "class_list": None}
    assert saved["metadata"]["tool"].startswith("fgtf ")
    assert saved["splits"]["train"]["label_histogram"] == {"0": 4, "1": 4, "2": 4}
    assert verify.verify_dir(output_dir) == ([], 18)
    assert open(os.path.join(output_dir, "classes.txt")).read().splitlines() == CLASSES


def test_seed_changes_the_training_order_only(tmp_path):
    root = _make_dataset(str(tmp_path / "cub"))
    outputs = {}
    for seed in (0, 1):
        output_dir = convert.convert(convert.ConvertOptions(dataset="cub_200", num_shards=2, dataset_dir=root,
                                                            output_dir=str(tmp_path / f"seed{seed}"), num_workers=1,
                                                            seed=seed, progress=False)).output_dir
        outputs[seed] = _outputs(output_dir)
    names = sorted(outputs[0])
    assert [outputs[0][n] == outputs[1][n] for n in names if n.startswith("validation_")] == [True, True]
    assert any(outputs[0][n] != outputs[1][n] for n in names if n.startswith("train_"))


def test_label_ratio_keeps_that_share_of_each_class(tmp_path):
    root = _make_dataset(str(tmp_path / "cub"), train_per_class=5)
    result = convert.convert(convert.ConvertOptions(dataset="cub_200", num_shards=2, dataset_dir=root, label_ratio=50,
                                                    num_workers=1, progress=False))
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


def test_parts_converted_apart_merge_with_their_class_names(tmp_path, capsys):
    from tfrecord_tools import merge

    root = _make_dataset(str(tmp_path / "cub"))
    common = ["--dataset", "cub_200", "--num_shards", "3", "--dataset_dir", root, "--num_workers", "1"]
    convert.main(common + ["--output_dir", str(tmp_path / "whole")])
    convert.main(common + ["--output_dir", str(tmp_path / "part1"), "--shard_range", "0:1"])
    convert.main(common + ["--output_dir", str(tmp_path / "part2"), "--shard_range", "1:3"])
    merge.main([str(tmp_path / "merged"), str(tmp_path / "part1"), str(tmp_path / "part2")])
    assert (tmp_path / "merged" / "classes.txt").read_text().splitlines() == CLASSES
    assert _outputs(str(tmp_path / "merged")) == _outputs(str(tmp_path / "whole"))
    (tmp_path / "part2" / "classes.txt").write_text("Albatross\nAuklet\nBlackbird_\n")
    with pytest.raises(SystemExit) as exited:
        merge.main([str(tmp_path / "merged2"), str(tmp_path / "part1"), str(tmp_path / "part2")])
    assert exited.value.code == 2 and not (tmp_path / "merged2").exists()
    assert "part1/classes.txt and " in capsys.readouterr().err


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
    (["--num_shards", "0"], "argument --num_shards: must be an integer of at least 1, got 0"),
    (["--num_workers", "two"], "argument --num_workers: invalid positive_int value: 'two'"),
    (["--max_per_class", "0"], "argument --max_per_class: must be an integer of at least 1, got 0"),
    (["--class_list", "{tmp}/none.txt"], "class list {tmp}/none.txt is missing"),
    (["--class_list", "{tmp}/list.txt"], "class names not in the dataset: Kiwi"),
    (["--num_shards", "7"], "--num_shards 7 is more than the 6 images of the validation split; use at most 6"),
    (["--output_dir", "{tmp}/file/out"], "cannot write to output folder {tmp}/file/out (Not a directory)"),
    (["--shard_range", "2:1"], "shard range 2:1 must satisfy 0 <= a < b <= 2"),
    (["--shard_range", "3"], "argument --shard_range: expected A:B with integers A < B, got '3'"),
    (["--label_ratio", "0"], "argument --label_ratio: expected a percentage in (0, 100], got '0'"),
])
def test_bad_arguments_give_one_line_and_exit_2(tmp_path, capsys, extra, message):
    _make_dataset(str(tmp_path / "data" / "cub_200"), train_per_class=3, val_per_class=2)
    (tmp_path / "file").write_text("")
    (tmp_path / "list.txt").write_text("Auklet\nKiwi\n")
    args = ["--dataset", "cub_200", "--num_shards", "2", "--data_dir", str(tmp_path / "data")]
    before = sorted(os.listdir(tmp_path / "data" / "cub_200"))
    with pytest.raises(SystemExit) as exited:
        convert.main(args + [part.format(tmp=tmp_path) for part in extra])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    *usage, last = err.strip().splitlines()
    assert message.format(tmp=tmp_path) in last and "Traceback" not in err
    assert all(line.startswith(("usage:", " ")) for line in usage)  # argparse's usage block, nothing else
    assert "known datasets: " not in message or "cub_200" in err
    assert sorted(os.listdir(tmp_path / "data" / "cub_200")) == before  # nothing written


def test_class_list_keeps_those_classes_relabelled_in_file_order(tmp_path, capsys):
    root = _make_dataset(str(tmp_path / "cub"))
    class_list = tmp_path / "selected.txt"
    class_list.write_text("Blackbird\nAlbatross\n")
    assert convert.main(["--dataset", "cub_200", "--num_shards", "2", "--dataset_dir", root, "--num_workers", "1",
                         "--class_list", str(class_list)]) == 0
    output_dir = os.path.join(root, "tfrecords_selected")
    assert capsys.readouterr().out.splitlines()[-1] == f"manifest: {output_dir}/manifest.json"
    for split, per_class in (("train", 4), ("validation", 2)):
        records = _records(output_dir, split)
        pairs = Counter((f["image/class/label"][0], f["image/class/text"][0].decode()) for f in records)
        assert pairs == {(0, "Blackbird"): per_class, (1, "Albatross"): per_class}
        folders = {f["image/filename"][0].decode().split("/")[1] for f in records}
        assert folders == {"Blackbird", "Albatross"}
    assert open(os.path.join(output_dir, "classes.txt")).read() == "Blackbird\nAlbatross\n"
    metadata = manifest.load_manifest(output_dir)["metadata"]
    assert metadata["arguments"]["class_list"] == str(class_list)
    assert metadata["class_names"] == ["Blackbird", "Albatross"]
    assert verify.verify_dir(output_dir) == ([], 12)
    assert not os.path.exists(os.path.join(root, "tfrecords"))  # the full conversion's folder is not touched


def test_max_per_class_caps_the_training_split_only(tmp_path):
    root = _make_dataset(str(tmp_path / "cub"), train_per_class=[6, 2, 4])
    result = convert.convert(convert.ConvertOptions(dataset="cub_200", num_shards=2, dataset_dir=root, max_per_class=3,
                                                    seed=1, num_workers=1, progress=False))
    assert result.output_dir == os.path.join(root, "tfrecords_max3")
    saved = manifest.load_manifest(result.output_dir)
    assert saved["splits"]["train"]["label_histogram"] == {"0": 3, "1": 2, "2": 3}
    assert saved["splits"]["validation"]["label_histogram"] == {"0": 2, "1": 2, "2": 2}
    assert saved["metadata"]["arguments"]["max_per_class"] == 3
    kept = {f["image/filename"][0].decode() for f in _records(result.output_dir, "train")}
    again = convert.convert(convert.ConvertOptions(dataset="cub_200", num_shards=2, dataset_dir=root, max_per_class=3,
                                                   seed=1, output_dir=str(tmp_path / "b"), num_workers=1,
                                                   progress=False))
    assert {f["image/filename"][0].decode() for f in _records(again.output_dir, "train")} == kept


def test_class_list_and_cap_together(tmp_path):
    root = _make_dataset(str(tmp_path / "cub"), train_per_class=[6, 2, 4])
    (tmp_path / "birds.txt").write_text("Blackbird\nAlbatross\n")
    result = convert.convert(convert.ConvertOptions(dataset="cub_200", num_shards=1, dataset_dir=root,
                                                    class_list=str(tmp_path / "birds.txt"), max_per_class=3,
                                                    num_workers=1, progress=False))
    assert result.output_dir == os.path.join(root, "tfrecords_birds_max3")
    assert manifest.load_manifest(result.output_dir)["splits"]["train"]["label_histogram"] == {"0": 3, "1": 3}
    # A class keeps the same images whichever other classes are listed.
    alone = convert.convert(convert.ConvertOptions(dataset="cub_200", num_shards=1, dataset_dir=root, max_per_class=3,
                                                   output_dir=str(tmp_path / "all"), num_workers=1, progress=False))
    def blackbirds(output_dir):
        return {f["image/filename"][0].decode() for f in _records(output_dir, "train")
                if f["image/class/text"] == [b"Blackbird"]}
    assert blackbirds(result.output_dir) == blackbirds(alone.output_dir)


def test_a_split_of_only_bad_files_is_an_error_and_leaves_no_shards(tmp_path, capsys):
    root = _make_dataset(str(tmp_path / "cub"))
    for name in CLASSES:
        for index in range(4):  # every training image
            open(os.path.join(root, "images", name, f"{index:03d}.jpg"), "wb").close()
    output_dir = tmp_path / "out"
    with pytest.raises(SystemExit) as exited:
        convert.main(["--dataset", "cub_200", "--num_shards", "2", "--dataset_dir", root, "--num_workers", "1",
                      "--out", str(output_dir)])
    assert exited.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith(f"every image of the train split was skipped (12 files), so no shard was kept; the reasons "
                        f"are in {output_dir / 'conversion_report.json'}") and len(err.splitlines()) == 1
    assert manifest.list_shard_files(str(output_dir)) == []
    assert not (output_dir / "manifest.json").exists() and not (output_dir / "classes.txt").exists()
    report = json.load(open(output_dir / "conversion_report.json"))
    assert len(report["train"]["skipped"]) == 12


# --- the subset functions behind --max_per_class and --class_list

def _long_tail(counts):
    return [Record(f"/d/{label}/{index:02d}.jpg", label, f"{label:03d}.Class{label}")
            for label, count in enumerate(counts) for index in range(count)]


def test_cap_per_class_is_balanced_seeded_order_free_and_nested():
    records = _long_tail([20, 5, 1, 9])
    capped = cap_per_class(records, 4, seed=3)
    assert Counter(r.label for r in capped) == {0: 4, 1: 4, 2: 1, 3: 4}
    assert [r for r in records if r in capped] == capped  # input order kept
    shuffled = records[:]
    random.Random(0).shuffle(shuffled)
    assert set(cap_per_class(shuffled, 4, seed=3)) == set(capped)
    assert set(cap_per_class(records, 2, seed=3)) <= set(capped)
    assert set(cap_per_class(records, 4, seed=4)) != set(capped)
    assert cap_per_class(records, 100) == records
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="per-class cap must be a positive integer"):
            cap_per_class(records, bad)


def test_class_list_labels_match_names_with_or_without_number_prefix():
    records = _long_tail([1, 1, 1])
    assert class_list_labels(["Class2", "000.Class0"], records) == [2, 0]
    with pytest.raises(ValueError, match="class names not in the dataset: Kiwi"):
        class_list_labels(["Class1", "Kiwi"], records)
    with pytest.raises(ValueError, match="names Class1 more than once"):
        class_list_labels(["Class1", "Class1"], records)
    with pytest.raises(ValueError, match="class list is empty"):
        class_list_labels([], records)
    with pytest.raises(ValueError, match="carry no class names"):
        class_list_labels(["Class1"], [r._replace(class_name=None) for r in records])

"""The synthetic fine-grained dataset: format, determinism, fine-grainedness, label noise, CLI."""
import importlib.util
import json
import os
import re
from collections import Counter
from pathlib import Path

import pytest

from fgtf.datasets import read_split
from fgtf.datasets import synthetic
from fgtf.datasets.synthetic import generation

SMALL = dict(classes=6, train_per_class=4, val_per_class=2, image_size=48)


def _tree_bytes(root):
    """{relative path: bytes} of every file under `root`."""
    files = {}
    for folder, _, names in os.walk(root):
        for name in names:
            path = os.path.join(folder, name)
            with open(path, "rb") as handle:
                files[os.path.relpath(path, root)] = handle.read()
    return files


def test_reruns_and_worker_counts_give_identical_bytes(tmp_path):
    synthetic.generate(tmp_path / "a", num_workers=1, **SMALL)
    synthetic.generate(tmp_path / "b", num_workers=2, **SMALL)
    first, second = _tree_bytes(tmp_path / "a"), _tree_bytes(tmp_path / "b")
    assert len(first) == 6 * (4 + 2) + 5
    assert first == second
    assert sorted(os.listdir(tmp_path)) == ["a", "b"]  # no temporary folders left behind


def test_lists_classes_and_counts(tmp_path):
    metadata = synthetic.generate(tmp_path, num_workers=1, **SMALL)
    line = re.compile(r"^images/[^/:]+/(train|val)_\d{4}\.jpg: \d+$")
    for list_name in ("train.txt", "val.txt", synthetic.CLEAN_LABELS_FILE):
        lines = (tmp_path / list_name).read_text().splitlines()
        assert lines and all(line.match(text) for text in lines), list_name
    names = (tmp_path / "classes.txt").read_text().splitlines()
    assert len(names) == 6 and names == [c["name"] for c in metadata["classes"]]

    train = read_split("synthetic", str(tmp_path), "train")
    val = read_split("synthetic", str(tmp_path), "validation")
    assert Counter(r.label for r in train) == {label: 4 for label in range(6)}
    assert Counter(r.label for r in val) == {label: 2 for label in range(6)}
    assert all(r.class_name == names[r.label] and f"/{r.class_name}/" in r.path for r in train + val)
    assert metadata["num_images"] == {"train": 24, "val": 12}
    assert metadata["novel_classes"] == [] and metadata["num_mislabelled_train_images"] == 0

    from PIL import Image
    with Image.open(train[0].path) as image:
        assert image.format == "JPEG" and image.mode == "RGB" and image.size == (48, 48)


@pytest.mark.parametrize("family", synthetic.FAMILIES)
def test_classes_are_combinations_of_shared_attribute_values(family):
    definitions = synthetic.class_definitions(family, 20, seed=0)
    assert len(set(definitions)) == 20  # every class is a distinct combination
    for attribute, (name, values) in enumerate(synthetic.ATTRIBUTES[family]):
        counts = Counter(d[attribute] for d in definitions)
        # every value is shared by several classes, evenly: no single attribute decides
        assert set(counts) == set(range(len(values))), name
        assert max(counts.values()) - min(counts.values()) <= 1 and min(counts.values()) >= 2, name
    assert synthetic.class_definitions(family, 20, seed=0) == definitions
    assert synthetic.class_definitions(family, 20, seed=1) != definitions
    largest = synthetic.class_definitions(family, synthetic.max_classes(family), seed=0)
    assert len(set(largest)) == synthetic.max_classes(family)


def test_families_differ(tmp_path):
    metadata = {family: synthetic.generate(tmp_path / family, family=family, num_workers=1, **SMALL)
                for family in synthetic.FAMILIES}
    assert set(metadata["birds"]["attributes"]) == {"wing_bar", "beak", "breast", "head", "tail"}
    assert set(metadata["planes"]["attributes"]) == {"engines", "wingtips", "insignia", "nose", "canopy"}
    assert set(metadata["fish"]["attributes"]) == {"gill", "tail_fin", "dorsal", "pattern", "snout"}
    assert set(metadata["butterflies"]["attributes"]) == {"spot_colour", "forewing", "hindwing", "forewing_tip",
                                                          "eyespot"}
    images = [set(_tree_bytes(tmp_path / family).values()) for family in synthetic.FAMILIES]
    assert sum(map(len, images)) == len(set().union(*images))  # no image is shared by two families


def test_label_noise_on_novel_classes(tmp_path):
    noisy = synthetic.generate(tmp_path / "noisy", classes=8, train_per_class=10, val_per_class=2,
                               image_size=40, label_noise=0.4, novel_classes=3, num_workers=1)
    synthetic.generate(tmp_path / "clean", classes=8, train_per_class=10, val_per_class=2,
                       image_size=40, num_workers=1)
    listed = read_split("synthetic", str(tmp_path / "noisy"), "train")
    true = synthetic.read_clean_labels(str(tmp_path / "noisy"))
    assert len(true) == len(listed)
    wrong = [r for r in listed if true[r.path] != r.label]
    # exactly round(0.4 * 10) mislabelled images in each novel class, none elsewhere
    assert Counter(r.label for r in wrong) == {5: 4, 6: 4, 7: 4}
    assert noisy["novel_classes"] == [5, 6, 7] and noisy["num_mislabelled_train_images"] == 12
    # the noise is mostly the most similar classes (sharing the most attributes)
    definitions = synthetic.class_definitions("birds", 8, seed=0)

    def distance(a, b):
        return sum(x != y for x, y in zip(definitions[a], definitions[b]))

    nearest = sum(distance(true[r.path], r.label) == min(distance(c, r.label) for c in range(8) if c != r.label)
                  for r in wrong)
    assert nearest >= len(wrong) // 2
    # validation is clean and, like every correctly labelled image, unchanged by the noise
    noisy_files, clean_files = _tree_bytes(tmp_path / "noisy"), _tree_bytes(tmp_path / "clean")
    assert (tmp_path / "noisy" / "val.txt").read_text() == (tmp_path / "clean" / "val.txt").read_text()
    wrong_paths = {os.path.relpath(r.path, tmp_path / "noisy") for r in wrong}
    for path, data in noisy_files.items():
        if path.endswith(".jpg"):
            assert (data == clean_files[path]) == (path not in wrong_paths), path


def test_rerun_skips_a_complete_dataset_and_replaces_a_different_one(tmp_path):
    out = tmp_path / "data"
    synthetic.generate(out, num_workers=1, **SMALL)
    marker = out / synthetic.METADATA_FILE
    before = marker.stat().st_mtime_ns
    synthetic.generate(out, num_workers=1, **SMALL)
    assert marker.stat().st_mtime_ns == before  # same arguments: nothing rewritten

    first_image = out / (out / "train.txt").read_text().split(": ")[0]
    first_image.unlink()
    synthetic.generate(out, num_workers=1, **SMALL)
    assert first_image.is_file()  # an incomplete dataset is generated again

    metadata = synthetic.generate(out, num_workers=1, **dict(SMALL, classes=3))
    assert len(os.listdir(out / "images")) == 3 and metadata["arguments"]["classes"] == 3
    assert sorted(os.listdir(tmp_path)) == ["data"]


def test_a_failed_run_leaves_the_previous_dataset_untouched(tmp_path, monkeypatch):
    out = tmp_path / "data"
    synthetic.generate(out, num_workers=1, **SMALL)
    before = _tree_bytes(out)

    def fail(job):
        raise KeyboardInterrupt

    monkeypatch.setattr(generation, "_write_image", fail)
    with pytest.raises(KeyboardInterrupt):
        synthetic.generate(out, num_workers=1, **dict(SMALL, classes=3))
    assert _tree_bytes(out) == before
    assert sorted(os.listdir(tmp_path)) == ["data"]


def test_cli_writes_the_dataset(tmp_path, capsys):
    synthetic.main(["--out", str(tmp_path), "--classes", "3", "--train_per_class", "2", "--val_per_class", "1",
                    "--image_size", "32", "--family", "planes", "--workers", "1"])
    assert "3 planes classes, 6 train + 3 val images" in capsys.readouterr().out
    metadata = json.loads((tmp_path / synthetic.METADATA_FILE).read_text())
    assert metadata["arguments"]["family"] == "planes"


@pytest.mark.parametrize("arguments, message", [
    (["--classes", "1"], "--classes must be between 2 and"),
    (["--classes", "100000"], "--classes must be between 2 and"),
    (["--train_per_class", "0"], "--train_per_class must be at least 1"),
    (["--val_per_class", "-1"], "--val_per_class must be at least 0"),
    (["--image_size", "8"], "--image_size must be between 32 and 1024"),
    (["--label_noise", "1.5", "--novel_classes", "2"], "--label_noise must be in [0, 1)"),
    (["--label_noise", "0.3"], "give --novel_classes N as well"),
    (["--novel_classes", "20"], "--novel_classes must be between 0 and 19"),
    (["--workers", "0"], "--num_workers must be at least 1"),
    (["--seed", "-3"], "--seed must be non-negative"),
])
def test_cli_rejects_bad_values(tmp_path, capsys, arguments, message):
    with pytest.raises(SystemExit) as exit_info:
        synthetic.main(["--out", str(tmp_path / "out")] + arguments)
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert message in error and "Traceback" not in error
    assert not (tmp_path / "out").exists()


def test_cli_refuses_foreign_output_folders(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("mine")
    for out in (tmp_path, tmp_path / "notes.txt"):
        with pytest.raises(SystemExit) as exit_info:
            synthetic.main(["--out", str(out), "--classes", "2", "--workers", "1"])
        assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert "not a synthetic dataset" in error and "is a file" in error
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_global_colour_and_layout_do_not_reveal_the_class(tmp_path):
    probe_accuracy = _difficulty_benchmark().probe_accuracy
    synthetic.generate(tmp_path, classes=8, train_per_class=20, val_per_class=15, image_size=64, num_workers=2)
    chance = 1 / 8
    for features in ("histogram", "thumbnail"):
        assert probe_accuracy(str(tmp_path), features) < 2.5 * chance, features


def _difficulty_benchmark():
    """benchmarks/synthetic_difficulty.py, home of the shortcut-classifier probe (not a package: loaded by path)."""
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "synthetic_difficulty.py"
    spec = importlib.util.spec_from_file_location("synthetic_difficulty", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module

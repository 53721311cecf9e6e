"""The transfer world: a long-tailed source pool and one small target per family."""
import json
import os
from collections import Counter

import pytest

from fgtf.datasets import read_split
from fgtf.datasets import synthetic
from fgtf.datasets.synthetic import generation

# a tiny world (about 90 images at 32 px) drawn in a second
TINY = dict(image_size=32, source_classes=12, max_source_per_class=6, min_source_per_class=1,
            source_val_per_class=1, target_classes=3, target_train_per_class=2, target_val_per_class=1)
TINY_FLAGS = [f"--{name}={value}" for name, value in TINY.items()]


def _tree_bytes(root):
    """{relative path: bytes} of every file under `root`."""
    files = {}
    for folder, _, names in os.walk(root):
        for name in names:
            path = os.path.join(folder, name)
            with open(path, "rb") as handle:
                files[os.path.relpath(path, root)] = handle.read()
    return files


def _folders(world):
    return [world["source"]["dataset_dir"]] + [target["dataset_dir"] for target in world["targets"]]


def _classes(root, folder):
    return (root / folder / "classes.txt").read_text().splitlines()


def test_a_seed_gives_the_same_bytes_whatever_the_workers(tmp_path):
    synthetic.generate_world(tmp_path / "a", num_workers=1, **TINY)
    synthetic.generate_world(tmp_path / "b", num_workers=2, **TINY)
    first, second = _tree_bytes(tmp_path / "a"), _tree_bytes(tmp_path / "b")
    assert first == second and sum(name.endswith(".jpg") for name in first) == 34 + 12 + 4 * 9
    assert sorted(os.listdir(tmp_path)) == ["a", "b"]  # no temporary folders left behind
    synthetic.generate_world(tmp_path / "c", seed=1, num_workers=1, **TINY)
    assert _classes(tmp_path / "c", "source") != _classes(tmp_path / "a", "source")


def test_world_json_describes_readable_datasets(tmp_path):
    world = synthetic.generate_world(tmp_path, num_workers=1, **TINY)
    assert json.loads((tmp_path / synthetic.WORLD_FILE).read_text()) == world
    assert world["format_version"] == synthetic.FORMAT_VERSION and world["families"] == list(synthetic.FAMILIES)
    assert {k: world["arguments"][k] for k in TINY} == TINY and world["arguments"]["seed"] == 0
    assert [t["name"] for t in world["targets"]] == list(synthetic.FAMILIES)
    for entry in [world["source"]] + world["targets"]:
        folder = str(tmp_path / entry["dataset_dir"])
        train, val = read_split("synthetic", folder, "train"), read_split("synthetic", folder, "validation")
        assert (len(train), len(val)) == (entry["train_images"], entry["val_images"])
        names = _classes(tmp_path, entry["dataset_dir"])
        assert len(names) == entry["classes"]
        assert {r.label for r in train} == {r.label for r in val} == set(range(len(names)))
        assert all(f"/images/{r.class_name}/" in r.path and os.path.isfile(r.path) for r in train + val)
    for target in world["targets"]:
        assert target["dataset_dir"] == f"targets/{target['family']}"
        assert (target["classes"], target["train_images"], target["val_images"]) == (3, 6, 3)
        assert all(name.startswith(target["family"] + ".") for name in _classes(tmp_path, target["dataset_dir"]))
    source = world["source"]
    assert sum(source["family_classes"].values()) == source["classes"] == 12
    assert sum(source["family_train_images"].values()) == source["train_images"]
    metadata = json.loads((tmp_path / "source" / synthetic.METADATA_FILE).read_text())
    assert [c["name"] for c in metadata["classes"]] == _classes(tmp_path, "source")
    assert metadata["classes"][0]["attributes"].keys() == metadata["family_attributes"][
        metadata["classes"][0]["family"]].keys()


def test_class_names_are_family_prefixed_unique_and_targets_new(tmp_path):
    world = synthetic.generate_world(tmp_path, num_workers=1, **TINY)
    names = {folder: _classes(tmp_path, folder) for folder in _folders(world)}
    every = [name for folder_names in names.values() for name in folder_names]
    assert len(every) == len(set(every))  # unique over the whole world, so no target class is a source class
    for name in every:
        family, _, values = name.partition(".")
        assert family in synthetic.FAMILIES and len(values.split("-")) == len(synthetic.ATTRIBUTES[family])
    # a family's part of the pool is found by its prefix, as `grep '^birds\.'` does
    source_families = Counter(name.partition(".")[0] for name in names["source"])
    assert source_families == {family: n for family, n in world["source"]["family_classes"].items() if n}


def test_the_pool_is_long_tailed_over_unequal_family_shares(tmp_path):
    world = synthetic.generate_world(tmp_path, num_workers=2, image_size=32, source_classes=40, max_source_per_class=25,
                                     min_source_per_class=1, source_val_per_class=1, target_classes=2,
                                     target_train_per_class=1, target_val_per_class=1)
    shares = world["source"]["family_classes"]
    assert shares["birds"] > shares["planes"] > shares["fish"] > shares["butterflies"] == 0
    assert world["source"]["family_train_images"]["butterflies"] == 0
    counts = sorted(Counter(r.label for r in read_split("synthetic", str(tmp_path / "source"), "train")).values(),
                    reverse=True)
    assert len(counts) == 40 and counts[0] == 25 and counts[-1] == 1
    # a long tail: the 10 % largest classes hold far more than 10 % of the images, the median class few
    assert sum(counts[:4]) > 0.25 * sum(counts) and counts[20] < sum(counts) / 40
    # every family has common and rare classes: the ranks are not ordered by family
    labels = Counter(r.label for r in read_split("synthetic", str(tmp_path / "source"), "train"))
    names = _classes(tmp_path, "source")
    largest = {names[label].partition(".")[0] for label, count in labels.items() if count >= 10}
    assert len(largest) >= 2


def test_a_complete_world_is_skipped_an_incomplete_or_different_one_redone(tmp_path):
    out = tmp_path / "world"
    synthetic.generate_world(out, num_workers=1, **TINY)
    marker = out / synthetic.WORLD_FILE
    before = marker.stat().st_mtime_ns
    synthetic.generate_world(out, num_workers=1, **TINY)
    assert marker.stat().st_mtime_ns == before  # same arguments: nothing rewritten

    image = out / "targets" / "fish" / (out / "targets" / "fish" / "val.txt").read_text().split(": ")[0]
    image.unlink()
    synthetic.generate_world(out, num_workers=1, **TINY)
    assert image.is_file()  # an incomplete world is generated again

    world = synthetic.generate_world(out, num_workers=1, **dict(TINY, target_classes=2))
    assert world["targets"][0]["classes"] == 2 and len(_classes(out, "targets/birds")) == 2
    assert sorted(os.listdir(tmp_path)) == ["world"]


def test_a_failed_run_leaves_the_previous_world_untouched(tmp_path, monkeypatch):
    out = tmp_path / "world"
    synthetic.generate_world(out, num_workers=1, **TINY)
    before = _tree_bytes(out)

    def fail(job):
        raise KeyboardInterrupt

    monkeypatch.setattr(generation, "_write_image", fail)
    with pytest.raises(KeyboardInterrupt):
        synthetic.generate_world(out, num_workers=1, **dict(TINY, seed=3))
    assert _tree_bytes(out) == before
    assert sorted(os.listdir(tmp_path)) == ["world"]


def test_cli_writes_the_world(tmp_path, capsys):
    synthetic.main(["world", "--out", str(tmp_path / "w"), "--workers", "1"] + TINY_FLAGS)
    out = capsys.readouterr().out
    assert "source 12 classes (birds 7, planes 3, fish 2, butterflies 0), 34 train + 12 val images" in out
    assert "targets birds, planes, fish, butterflies, 3 classes and 6 train + 3 val images each" in out
    assert json.loads((tmp_path / "w" / synthetic.WORLD_FILE).read_text())["arguments"]["image_size"] == 32


@pytest.mark.parametrize("arguments, message", [
    (["--seed", "-1"], "--seed must be non-negative"),
    (["--image_size", "16"], "--image_size must be between 32 and 1024"),
    (["--source_classes", "0"], "--source_classes must be at least 1"),
    (["--min_source_per_class", "0"], "--min_source_per_class must be at least 1"),
    (["--max_source_per_class", "3", "--min_source_per_class", "5"], "--max_source_per_class must be at least"),
    (["--target_classes", "1"], "--target_classes must be at least 2"),
    (["--target_val_per_class", "0"], "--target_val_per_class must be at least 1"),
    (["--target_classes", "500"], "more than the 512 it offers"),
    (["--num_workers", "0"], "--num_workers must be at least 1"),
])
def test_cli_rejects_bad_values_in_one_line(tmp_path, capsys, arguments, message):
    with pytest.raises(SystemExit) as exit_info:
        synthetic.main(["world", "--out", str(tmp_path / "out")] + arguments)
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert message in error and len(error.strip().splitlines()) == 1 and "Traceback" not in error
    assert not (tmp_path / "out").exists()


def test_cli_refuses_folders_that_are_not_a_world(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("mine")
    single = tmp_path / "single"
    synthetic.generate(single, classes=2, train_per_class=1, val_per_class=1, image_size=32, num_workers=1)
    before = _tree_bytes(single)
    for out in (tmp_path, tmp_path / "notes.txt", single):
        with pytest.raises(SystemExit) as exit_info:
            synthetic.main(["world", "--out", str(out), "--workers", "1"] + TINY_FLAGS)
        assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert error.count("not a synthetic world") == 2 and "is a file" in error
    assert (tmp_path / "notes.txt").read_text() == "mine" and _tree_bytes(single) == before


def test_convert_reads_a_family_of_the_pool_by_its_class_list(tmp_path):
    from fgtf.convert import ConvertOptions, convert

    synthetic.generate_world(tmp_path / "w", num_workers=1, **TINY)
    source = tmp_path / "w" / "source"
    birds = [name for name in _classes(tmp_path / "w", "source") if name.startswith("birds.")]
    (tmp_path / "birds.txt").write_text("".join(name + "\n" for name in birds))
    done = convert(ConvertOptions(dataset="synthetic", num_shards=1, dataset_dir=str(source),
                                  output_dir=str(tmp_path / "records"), class_list=str(tmp_path / "birds.txt"),
                                  progress=False, num_workers=1))
    world = json.loads((tmp_path / "w" / synthetic.WORLD_FILE).read_text())
    assert done.summaries["train"].records == world["source"]["family_train_images"]["birds"]
    assert (tmp_path / "records" / "classes.txt").read_text().splitlines() == birds

"""fgtf.transfer.select_source on hand-made features: source classes near the
target are selected, the target's mass is shared out at most 1/K per class
(K = 1: the class of least EMD alone), every target class is served, ties,
--min_images, too large a K,
class names from image folders or the source folder, and the CLI's outputs
and misuse (exit 2, one line, nothing written)."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from fgtf.datasets import read_split
from fgtf.datasets.splits import class_list_labels, read_name_list
from fgtf.transfer import select_source
from fgtf.transfer.domain_similarity import class_features, emd
from fgtf.transfer.feature_store import save_features

# Target: three classes around (10, 0). Source: three near it, three far away.
TARGET_CENTRES = [(10.0, 0.0), (10.0, 2.0), (12.0, 0.0)]
SOURCE = [  # (name, centre, images)
    ("Far_North", (0.0, 40.0), 8),
    ("Near_Middle", (10.6, 0.6), 6),    # the nearest to the whole target
    ("Far_West", (-30.0, 0.0), 9),
    ("Near_Edge", (9.0, 0.0), 3),
    ("Far_East", (60.0, 5.0), 7),
    ("Near_Above", (10.5, 3.5), 5),
]
NEAR_IN_ORDER = [1, 3, 5]  # each serves one target class; nearest distances 0.85, 1.0, 1.58


def _domain(centres, counts, seed):
    """Features scattered (0.1) around each centre, labels 0..C-1."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(len(centres)), counts)
    features = np.asarray(centres)[labels] + rng.normal(0, 0.1, (len(labels), 2))
    return features.astype(np.float32), labels


def _source():
    return _domain([centre for _, centre, _ in SOURCE], [images for _, _, images in SOURCE], seed=1)


def _target():
    return _domain(TARGET_CENTRES, [4, 4, 4], seed=2)


def test_near_source_classes_are_selected_most_similar_first():
    selected = select_source.select_classes(*_source(), *_target(), 3)
    assert selected.dtype == np.int64 and selected.tolist() == NEAR_IN_ORDER


def test_the_target_mass_is_shared_out_at_most_one_kth_per_class():
    source_feats, source_counts = class_features(*_source())
    target_feats, target_counts = class_features(*_target())
    for k in (1, 2, 3, 6):
        ranking = select_source.rank_class_features(source_feats, source_counts, target_feats, target_counts, k)
        assert ranking.mass.sum() == pytest.approx(1.0) and (ranking.mass <= 1 / k + 1e-12).all()
        assert sorted(ranking.labels.tolist()) == list(range(len(SOURCE)))
    # K = 1: one class takes the whole target, so it is the class of least EMD alone to the target.
    alone = [emd(source_feats[[i]], source_counts[[i]], target_feats, target_counts, min_images=1)
             for i in range(len(SOURCE))]
    assert select_source.select_classes(*_source(), *_target(), 1).tolist() == [int(np.argmin(alone))]


def test_every_target_class_gets_source_classes_near_it():
    # Three source classes crowd around target class A, one lies nearer B than anything else:
    # with K = 2 the transport serves B too (ranking by nearest distance alone would take two near A).
    target = _domain([(0.0, 0.0), (100.0, 0.0)], [3, 3], seed=3)
    source = _domain([(0.1, 0.0), (0.0, 0.2), (-0.3, 0.0), (95.0, 0.0)], [3, 3, 3, 3], seed=4)
    assert select_source.select_classes(*source, *target, 2).tolist() == [0, 3]
    assert select_source.select_classes(*source, *target, 4).tolist() == [0, 1, 2, 3]


def test_ties_go_to_the_nearer_then_the_lower_class_index():
    features = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 3.0]])
    ranking = select_source.rank_class_features(features, np.ones(3), np.zeros((1, 2)), np.ones(1), 2)
    assert ranking.labels.tolist() == [0, 1, 2] and ranking.mass.tolist() == [0.5, 0.5, 0.0]
    assert ranking.nearest.tolist() == [1.0, 1.0, 3.0]


def test_min_images_drops_small_classes_and_too_many_classes_is_an_error():
    # Near_Edge has 3 images: with min_images 4 a far class takes its place after the two other near ones.
    selected = select_source.select_classes(*_source(), *_target(), 3, min_images=4)
    assert 3 not in selected.tolist() and selected.tolist()[:2] == [1, 5]
    ranking = select_source.rank_class_features(*class_features(*_source()), *class_features(*_target()), 3,
                                                min_images=4)
    assert sorted(ranking.labels.tolist()) == [0, 1, 2, 4, 5]
    with pytest.raises(ValueError, match="cannot select 6 source classes: only 5 have at least min_images=4"):
        select_source.select_classes(*_source(), *_target(), 6, min_images=4)
    with pytest.raises(ValueError, match="cannot select 7 source classes: only 6 have"):
        select_source.select_classes(*_source(), *_target(), 7)
    with pytest.raises(ValueError, match="must be a positive integer, got 0"):
        select_source.select_classes(*_source(), *_target(), 0)
    with pytest.raises(ValueError, match="3-d but target features are 2-d"):
        select_source.select_classes(np.zeros((2, 3)), np.array([0, 1]), *_target(), 1)


def _features_dir(tmp_path, with_paths=True):
    folder = str(tmp_path / "feature" / "small_cnn")
    features, labels = _source()
    paths = [f"/data/pool/images/{SOURCE[label][0]}/{i:03d}.jpg" for i, label in enumerate(labels)]
    save_features(folder, "pool", "train", features, labels, paths if with_paths else None)
    save_features(folder, "birds", "train", *_target())
    return folder


def _run(args, capsys):
    with pytest.raises(SystemExit) as exited:
        select_source.main(args)
    err = capsys.readouterr().err.strip()
    return exited.value.code, err


def test_cli_writes_the_class_list_and_a_report_beside_it(tmp_path, capsys):
    features = _features_dir(tmp_path)
    out = tmp_path / "selected" / "classes.txt"
    select_source.main(["--features", features, "--source", "pool", "--target", "birds", "--num_classes", "3",
                        "--out", str(out)])
    names = [SOURCE[i][0] for i in NEAR_IN_ORDER]
    assert out.read_text() == "".join(f"{name}\n" for name in names)
    printed = capsys.readouterr().out
    assert f"wrote {out} (3 classes) and {tmp_path / 'selected' / 'classes.json'}" in printed
    report = json.loads((tmp_path / "selected" / "classes.json").read_text())
    assert [(e["rank"], e["label"], e["name"], e["images"]) for e in report["selected"]] == [
        (rank, i, SOURCE[i][0], SOURCE[i][2]) for rank, i in enumerate(NEAR_IN_ORDER, 1)]
    assert [e["target_share"] for e in report["selected"]] == pytest.approx([1 / 3] * 3)
    distances = [e["nearest_target_distance"] for e in report["selected"]]
    assert distances == sorted(distances) and distances[0] < 1
    assert {key: report[key] for key in ("source", "target", "split", "num_classes", "min_images", "gamma",
                                         "class_names_from", "source_classes", "eligible_classes")} == {
        "source": "pool", "target": "birds", "split": "train", "num_classes": 3, "min_images": 1, "gamma": 0.01,
        "class_names_from": "image folders", "source_classes": 6, "eligible_classes": 6}
    assert report["subset_emd"] < report["pool_emd"] and report["subset_similarity"] > report["pool_similarity"]
    assert report["subset_images"] == 14 and report["pool_images"] == 38


def test_class_names_from_the_source_folder_match_what_convert_reads(tmp_path, capsys):
    features = _features_dir(tmp_path, with_paths=False)
    pool = tmp_path / "pool"
    pool.mkdir()
    names = [f"{i + 1:03d}.{name}" for i, (name, _, _) in enumerate(SOURCE)]
    (pool / "classes.txt").write_text("".join(f"{name}\n" for name in names))
    labels = _source()[1]
    (pool / "train.txt").write_text("".join(f"images/{i}.jpg: {label}\n" for i, label in enumerate(labels)))
    (pool / "val.txt").write_text("images/v.jpg: 0\n")
    out = tmp_path / "classes.txt"
    args = ["--features", features, "--source", "pool", "--target", "birds", "--num_classes", "3", "--out", str(out)]

    code, err = _run(args, capsys)
    assert code == 2 and err.endswith("the source features have no _path_ file to read class folders from; "
                                      "pass --source_dir") and not out.exists()

    select_source.main(args + ["--source_dir", str(pool)])
    assert out.read_text().splitlines() == [names[i] for i in NEAR_IN_ORDER]
    # fgtf.convert --class_list resolves the file to those labels, in its order.
    records = read_split("synthetic", str(pool), "train")
    assert class_list_labels(read_name_list(str(out)), records) == NEAR_IN_ORDER


def test_folders_that_do_not_name_classes_are_refused(tmp_path, capsys):
    folder = str(tmp_path / "feature")
    features, labels = _source()
    save_features(folder, "pool", "train", features, labels, [f"/flat/{i}.jpg" for i in range(len(labels))])
    save_features(folder, "birds", "train", *_target())
    code, err = _run(["--features", folder, "--source", "pool", "--target", "birds", "--num_classes", "2",
                      "--out", str(tmp_path / "c.txt")], capsys)
    assert code == 2 and err.endswith("the source images are not in one folder per class, so their folders do "
                                      "not name the classes; pass --source_dir (the source dataset's folder)")


@pytest.mark.parametrize("extra, message", [
    (["--num_classes", "0"], "argument --num_classes: must be an integer of at least 1, got 0"),
    (["--num_classes", "9"], "cannot select 9 source classes: only 6 have at least min_images=1 images"),
    (["--min_images", "-3"], "argument --min_images: must be an integer of at least 1, got -3"),
    (["--min_images", "4", "--num_classes", "6"], "cannot select 6 source classes: only 5 have at least "
                                                  "min_images=4 images"),
    (["--split", "test"], "argument --split: unknown split 'test'; choose train or validation (or val)"),
    (["--split", "val"], "_feature_val.npy is missing; run `python -m fgtf.extract_features --dataset pool"),
    (["--target", "cars"], "cars_feature_train.npy is missing"),
    (["--out", "{tmp}/c.json"], "--out {tmp}/c.json would be overwritten by the JSON report; name the class list"),
    (["--out", "{tmp}"], "--out {tmp} is a folder; give the class list's file name"),
])
def test_misuse_gives_one_line_exit_2_and_writes_nothing(tmp_path, capsys, extra, message):
    features = _features_dir(tmp_path)
    before = sorted(os.listdir(tmp_path))
    args = ["--features", features, "--source", "pool", "--target", "birds", "--num_classes", "3",
            "--out", str(tmp_path / "c.txt")]
    code, err = _run(args + [part.format(tmp=tmp_path) for part in extra], capsys)
    *usage, last = err.splitlines()
    assert code == 2 and message.format(tmp=tmp_path) in last and "Traceback" not in err
    assert all(line.startswith(("usage:", " ")) for line in usage)
    assert sorted(os.listdir(tmp_path)) == before


def test_the_command_imports_no_tensorflow_and_its_help_shows_defaults(tmp_path, capsys):
    features = _features_dir(tmp_path)
    code = ("import sys; from fgtf.transfer import select_source; "
            f"select_source.main(['--features', {features!r}, '--source', 'pool', '--target', 'birds', "
            f"'--num_classes', '2', '--out', {str(tmp_path / 'c.txt')!r}]); "
            "print('tensorflow' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.splitlines()[-1] == "False"
    with pytest.raises(SystemExit) as exited:
        select_source.main(["--help"])
    help_text = capsys.readouterr().out
    assert exited.value.code == 0 and "(default: 1;" in help_text and "(default: train)" in help_text

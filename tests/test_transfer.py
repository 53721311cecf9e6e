"""Linear probe, kNN classification and retrieval, EMD domain similarity
(plain NumPy), their CLIs, and the confusion-matrix figure."""
import csv
import json
import os
import subprocess
import sys

import numpy as np
import ot
import pytest
from PIL import Image
from sklearn.metrics.pairwise import euclidean_distances

from fgtf import plots
from fgtf.metrics import classification_report
from fgtf.transfer import domain_similarity as ds
from fgtf.transfer import linear
from fgtf.transfer.domain_similarity.__main__ import main as domain_similarity_command
from fgtf.transfer.feature_store import load_features, save_features
from cli_helpers import frameworks_imported, run_cli


def test_class_features_means_and_counts():
    features = np.array([[1.0, 0.0], [3.0, 2.0], [5.0, 5.0]])
    labels = np.array([0, 0, 1])
    feats, counts = ds.class_features(features, labels)
    np.testing.assert_allclose(feats, [[2.0, 1.0], [5.0, 5.0]])
    np.testing.assert_array_equal(counts, [2, 1])


@pytest.mark.parametrize("features, labels, message", [
    (np.ones((3, 2)), np.array([0, 2, 2]), "no image"),
    (np.array([[np.nan, 1.0]]), np.array([0]), "NaN"),
    (np.ones((3, 2)), np.array([0, 1]), "expected features"),
])
def test_class_features_rejects_bad_input(features, labels, message):
    with pytest.raises(ValueError, match=message):
        ds.class_features(features, labels)


def test_emd_hand_computed_case():
    # Source: two classes at x=0 (weight 3/4) and x=4 (1/4); target: one class at x=1.
    source = np.array([[0.0], [4.0]]), np.array([300, 100])
    target = np.array([[1.0]]), np.array([10])
    assert ds.emd(*source, *target, min_images=100) == pytest.approx(0.75 * 1 + 0.25 * 3)
    assert ds.emd(*source, *source, min_images=100) == pytest.approx(0.0, abs=1e-12)


def test_emd_equals_the_square_formulation_of_the_original():
    rng = np.random.default_rng(0)
    s_feats, t_feats = rng.random((30, 16)), rng.random((12, 16)) + 0.3
    s_counts, t_counts = rng.integers(200, 900, 30), rng.integers(5, 60, 12)
    ours = ds.emd(s_feats, s_counts, t_feats, t_counts)
    # Original: one (S+T)x(S+T) distance matrix over all class features, with
    # the source weights padded by zeros for the targets and vice versa.
    both = np.concatenate([s_feats, t_feats])
    square = euclidean_distances(both, both)
    a = np.concatenate([s_counts / s_counts.sum(), np.zeros(12)])
    b = np.concatenate([np.zeros(30), t_counts / t_counts.sum()])
    assert ours == pytest.approx(ot.emd2(a, b, square, numItermax=10_000_000), rel=1e-9)


def test_emd_drops_small_source_classes_and_checks_inputs():
    source = np.array([[0.0], [10.0]]), np.array([500, 50])
    target = np.array([[1.0]]), np.array([5])
    assert ds.emd(*source, *target, min_images=200) == pytest.approx(1.0)
    assert ds.emd(*source, *target, min_images=1) == pytest.approx((500 * 1 + 50 * 9) / 550)
    with pytest.raises(ValueError, match="min_images"):
        ds.emd(*source, *target, min_images=1000)
    with pytest.raises(ValueError, match="-d"):
        ds.emd(np.ones((2, 3)), np.array([300, 300]), np.ones((1, 2)), np.array([1]))
    with pytest.raises(ValueError, match="NaN"):
        ds.emd(np.full((1, 2), np.nan), np.array([300]), np.ones((1, 2)), np.array([1]))


def test_similarity_and_combine():
    assert ds.similarity(100.0) == pytest.approx(np.exp(-1.0))
    assert ds.similarity(0.0, gamma=5) == 1.0
    feats, counts = ds.combine((np.zeros((2, 3)), [1, 2]), (np.ones((1, 3)), [7]))
    assert feats.shape == (3, 3) and counts.tolist() == [1, 2, 7]
    with pytest.raises(ValueError, match="feature sizes"):
        ds.combine((np.zeros((2, 3)), [1, 2]), (np.ones((1, 4)), [7]))


def test_logistic_regression_probe_and_report():
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 5, (4, 8))
    labels = np.repeat(np.arange(4), 25)
    features = centres[labels] + rng.normal(0, 0.5, (100, 8))
    for standardize in (False, True):
        model = linear.fit_logistic_regression(features, labels, standardize=standardize)
        report = linear.evaluate_probe(model, features, labels)
        assert report["accuracy"] == 1.0
        assert report["confusion_matrix"].trace() == 100


def test_classification_report_hand_computed():
    report = classification_report([0, 0, 0, 1, 2, 2], [0, 1, 0, 1, 2, 0])
    assert report["accuracy"] == pytest.approx(4 / 6)
    np.testing.assert_allclose(report["per_class_accuracy"], [2 / 3, 1.0, 0.5])
    assert report["mean_per_class_accuracy"] == pytest.approx((2 / 3 + 1 + 0.5) / 3)
    np.testing.assert_array_equal(report["confusion_matrix"], [[2, 1, 0], [0, 1, 0], [1, 0, 1]])


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_nearest_neighbours_matches_brute_force(metric):
    rng = np.random.default_rng(1)
    bank, query = rng.random((50, 6)), rng.random((7, 6))
    indices, distances = linear.nearest_neighbours(bank, query, k=4, metric=metric, batch_size=3)
    if metric == "cosine":
        unit = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)  # noqa: E731
        full = 1 - unit(query) @ unit(bank).T
    else:
        full = np.linalg.norm(query[:, None] - bank[None], axis=2)
    np.testing.assert_array_equal(indices, np.argsort(full, axis=1)[:, :4])
    np.testing.assert_allclose(distances, np.sort(full, axis=1)[:, :4], atol=1e-9)


def _write_feature_dataset(folder, dataset, centres, per_class, rng, image_dir=None):
    for split in ("train", "validation"):
        labels = np.repeat(np.arange(len(centres)), per_class)
        features = np.maximum(centres[labels] + rng.normal(0, 0.3, (len(labels), centres.shape[1])), 0)
        paths = None
        if image_dir is not None:
            paths = []
            for i, label in enumerate(labels):
                path = image_dir / f"{dataset}_{split}_{i}.png"
                Image.new("RGB", (16, 16), (int(label) * 60 % 255, 100, 50)).save(path)
                paths.append(str(path))
        save_features(folder, dataset, split, features, labels, paths)


def test_feature_store_round_trip(tmp_path):
    save_features(tmp_path, "toy", "validation", np.ones((3, 2)), [0, 1, 1], ["a", "b", "c"])
    features, labels, paths = load_features(tmp_path, "toy", "validation")
    assert features.dtype == np.float32 and labels.tolist() == [0, 1, 1] and paths == ["a", "b", "c"]
    assert (tmp_path / "toy_feature_val.npy").is_file()


def test_linear_cli_writes_report_and_pngs(tmp_path, capsys):
    rng = np.random.default_rng(0)
    images = tmp_path / "images"
    images.mkdir()
    _write_feature_dataset(tmp_path, "toy", rng.normal(2, 1, (3, 5)), 6, rng, image_dir=images)
    linear.main(["--features", str(tmp_path), "--dataset", "toy", "--k", "3", "--queries", "2"])
    assert "linear probe top-1 accuracy" in capsys.readouterr().out
    results = json.loads((tmp_path / "toy_linear_results.json").read_text())
    assert results["accuracy"] > 0.9
    for name in ("toy_linear_confusion.png", "toy_linear_retrieval.png"):
        with Image.open(tmp_path / name) as image:
            assert image.format == "PNG" and image.size[0] > 100


def test_domain_similarity_cli_table(tmp_path, capsys):
    rng = np.random.default_rng(0)
    near = rng.normal(3, 1, (4, 8))
    _write_feature_dataset(tmp_path, "src", near, 210, rng)
    _write_feature_dataset(tmp_path, "near", near + 0.1, 5, rng)
    _write_feature_dataset(tmp_path, "far", near + 4.0, 5, rng)
    domain_similarity_command(["--features", str(tmp_path), "--sources", "src", "--targets", "near,far"])
    out = capsys.readouterr().out
    assert "similarity" in out
    rows = json.loads((tmp_path / "domain_similarity.json").read_text())
    by_target = {r["target"]: r for r in rows}
    assert by_target["near"]["similarity"] > by_target["far"]["similarity"]
    assert (tmp_path / "domain_similarity.csv").read_text().startswith("source,target,emd,similarity")
    assert (tmp_path / "domain_similarity.png").stat().st_size > 1000


def test_cli_errors_exit_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        domain_similarity_command(["--features", str(tmp_path), "--sources", "missing", "--targets", "x"])
    assert exit_info.value.code == 2
    assert "missing_feature_train.npy is missing" in capsys.readouterr().err
    rng = np.random.default_rng(0)
    _write_feature_dataset(tmp_path, "small", rng.random((2, 3)), 3, rng)
    with pytest.raises(SystemExit) as exit_info:
        domain_similarity_command(["--features", str(tmp_path), "--sources", "small", "--targets", "small"])
    assert exit_info.value.code == 2
    assert "min_images" in capsys.readouterr().err


def test_knn_predict_majority_vote_with_ties_to_the_nearest():
    bank = np.array([[0.0], [1.0], [2.0], [10.0], [11.0]])
    labels = np.array([0, 1, 1, 2, 2])
    query = np.array([[0.2], [1.6], [10.4], [5.0]])
    # k=3 nearest of 0.2: 0 (label 0), 1, 2 (label 1) -> 1; of 1.6: 2, 1, 0 -> 1; of 10.4: 10, 11, 2 -> 2;
    # of 5.0: 2 (1), 1 (1), 10 (2) -> 1
    np.testing.assert_array_equal(linear.knn_predict(bank, labels, query, k=3, metric="euclidean"), [1, 1, 2, 1])
    # k=2 at 0.4: neighbours 0 (label 0) and 1 (label 1) tie one vote each: the nearest (label 0) wins
    np.testing.assert_array_equal(linear.knn_predict(bank, labels, [[0.4], [0.6]], k=2, metric="euclidean"), [0, 1])
    assert linear.knn_predict(bank, labels, query, k=1, metric="euclidean").tolist() == [0, 1, 2, 1]


def test_linear_cli_reports_knn_and_records_its_settings(tmp_path, capsys):
    rng = np.random.default_rng(0)
    _write_feature_dataset(tmp_path, "toy", rng.normal(2, 1, (3, 5)), 6, rng)
    linear.main(["--features", str(tmp_path), "--dataset", "toy", "--k", "3", "--metric", "euclidean",
                 "--C", "0.5", "--standardize"])
    out = capsys.readouterr().out
    assert "toy: kNN (k=3, euclidean, majority vote) top-1 accuracy" in out
    results = json.loads((tmp_path / "toy_linear_results.json").read_text())
    x_train, y_train, _ = load_features(tmp_path, "toy", "train")
    x_val, y_val, _ = load_features(tmp_path, "toy", "validation")
    expected = np.mean(linear.knn_predict(x_train, y_train, x_val, k=3, metric="euclidean") == y_val)
    assert results["knn"]["accuracy"] == pytest.approx(expected)
    assert f"top-1 accuracy {expected:.4f}" in out.splitlines()[1]
    assert (results["knn"]["k"], results["knn"]["metric"]) == (3, "euclidean")
    assert results["settings"] == {
        "features": str(tmp_path), "dataset": "toy", "fit_split": "train", "eval_split": "validation",
        "train_images": 18, "validation_images": 18, "C": 0.5, "max_iter": 1000, "standardize": True,
        "k": 3, "metric": "euclidean"}


def test_domain_similarity_outputs_record_their_settings_and_accept_val(tmp_path, capsys):
    rng = np.random.default_rng(0)
    centres = rng.normal(3, 1, (3, 4))
    _write_feature_dataset(tmp_path, "src", centres, 4, rng)
    _write_feature_dataset(tmp_path, "tgt", centres + 0.5, 2, rng)
    domain_similarity_command(["--features", str(tmp_path), "--sources", "src", "--targets", "tgt", "--split", "val",
             "--gamma", "0.5", "--min_images", "3"])
    assert "(gamma 0.5, min_images 3, validation features of" in capsys.readouterr().out
    [row] = json.loads((tmp_path / "domain_similarity.json").read_text())
    assert {key: row[key] for key in ("gamma", "min_images", "split", "features")} == {
        "gamma": 0.5, "min_images": 3, "split": "validation", "features": str(tmp_path)}
    x, y, _ = load_features(tmp_path, "src", "validation")
    xt, yt, _ = load_features(tmp_path, "tgt", "validation")
    assert row["emd"] == pytest.approx(ds.emd(*ds.class_features(x, y), *ds.class_features(xt, yt), min_images=3))
    assert 0 < row["similarity"] <= 1
    with open(tmp_path / "domain_similarity.csv", newline="") as handle:
        [csv_row] = list(csv.DictReader(handle))
    assert csv_row["gamma"] == "0.5" and csv_row["min_images"] == "3" and csv_row["split"] == "validation"
    assert float(csv_row["similarity"]) == pytest.approx(row["similarity"], abs=1e-6)


def test_library_refuses_gamma_and_min_images_out_of_range():
    for gamma in (-1, 0, float("nan")):
        with pytest.raises(ValueError, match="gamma must be"):
            ds.similarity(3.0, gamma)
    with pytest.raises(ValueError, match="min_images must be at least 1"):
        ds.emd(np.ones((1, 2)), [5], np.ones((1, 2)), [5], min_images=-3)



_DS = ["fgtf.transfer.domain_similarity", "--features", "{dir}", "--sources", "src", "--targets", "src"]
_LINEAR = ["fgtf.transfer.linear", "--features", "{dir}", "--dataset", "src"]


@pytest.mark.parametrize("args, message", [
    (_DS + ["--gamma", "-1"], "argument --gamma: must be a finite number greater than 0, got -1"),
    (_DS + ["--gamma", "0"], "argument --gamma: must be a finite number greater than 0, got 0"),
    (_DS + ["--min_images", "-5"], "argument --min_images: must be an integer of at least 1, got -5"),
    (_DS + ["--min_images", "0"], "argument --min_images: must be an integer of at least 1, got 0"),
    (_DS + ["--split", "test"], "unknown split 'test'; choose train or validation (or val)"),
    (_DS + ["--min_images", "1000"], "no source class has --min_images 1000 images (the largest has 3); lower --min_images"),
    (_LINEAR + ["--k", "0"], "argument --k: must be an integer of at least 1, got 0"),
    (_LINEAR + ["--k", "99"], "--k 99 is more than the 6 training images"),
    (_LINEAR + ["--C", "-2"], "argument --C: must be a finite number greater than 0, got -2"),
    (_LINEAR + ["--max_iter", "0"], "argument --max_iter: must be an integer of at least 1"),
    (_LINEAR + ["--queries", "-1"], "argument --queries: must be an integer of at least 1"),
    (_LINEAR + ["--metric", "manhattan"], "argument --metric: invalid choice"),
])
def test_transfer_cli_misuse_is_one_line_and_exit_2(tmp_path, args, message):
    rng = np.random.default_rng(0)
    _write_feature_dataset(tmp_path, "src", rng.random((2, 3)), 3, rng)
    before = {name: (tmp_path / name).read_bytes() for name in os.listdir(tmp_path)}
    code, stdout, stderr, _ = run_cli(*[arg.format(dir=tmp_path) for arg in args])
    assert code == 2 and stdout == ""
    *usage, error = stderr.strip().splitlines()  # argparse's usage block, then the one error line
    assert "Traceback" not in stderr and all(line.startswith(("usage:", " ")) for line in usage)
    assert ": error: " in error
    assert message in error
    assert {name: (tmp_path / name).read_bytes() for name in os.listdir(tmp_path)} == before


@pytest.mark.parametrize("module, default", [
    ("fgtf.transfer.linear", "(default: cosine)"),
    ("fgtf.transfer.domain_similarity", "(default: 0.01)"),
])
def test_transfer_help_is_fast_quiet_and_shows_defaults(module, default):
    code, stdout, stderr, _ = run_cli(module, "--help")
    assert code == 0 and stderr == "", stderr
    assert frameworks_imported(module, "--help") == set()
    assert default in " ".join(stdout.split())
    assert "(default: None)" not in stdout


def test_transfer_clis_never_import_tensorflow(tmp_path):
    rng = np.random.default_rng(0)
    _write_feature_dataset(tmp_path, "src", rng.normal(2, 1, (2, 3)), 3, rng)
    code = ("import sys\n"
            "from fgtf.transfer import linear\n"
            "from fgtf.transfer.domain_similarity.__main__ import main as domain_similarity\n"
            f"linear.main(['--features', {str(tmp_path)!r}, '--dataset', 'src', '--k', '2'])\n"
            f"domain_similarity(['--features', {str(tmp_path)!r}, '--sources', 'src', '--targets', 'src',"
            " '--min_images', '1'])\n"
            "assert 'tensorflow' not in sys.modules\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""


@pytest.mark.parametrize("num_classes, names, expected_ticks", [
    (5, None, [0, 1, 2, 3, 4]),
    (40, "names", list(range(40))),
    (41, None, list(range(0, 41, 2))),
    (200, "names", list(range(0, 200, 5))),
])
def test_confusion_ticks_are_whole_classes_named_up_to_40(num_classes, names, expected_ticks):
    class_names = [f"class_{i}" for i in range(num_classes)] if names else None
    ticks, labels = plots.class_ticks(num_classes, class_names)
    assert ticks.tolist() == expected_ticks
    assert labels == [f"class_{i}" if names else str(i) for i in expected_ticks]


def test_confusion_matrix_png_draws_named_integer_ticks(tmp_path, monkeypatch):
    drawn = {}
    monkeypatch.setattr(plots, "_save", lambda fig, path: drawn.update(axes=fig.axes[0]))
    plots.confusion_matrix_png(np.eye(3, dtype=int) * 4, tmp_path / "c.png", class_names=["ant", "bee", "cat"])
    axes = drawn["axes"]
    assert axes.get_xticks().tolist() == [0, 1, 2] and axes.get_yticks().tolist() == [0, 1, 2]
    assert [label.get_text() for label in axes.get_xticklabels()] == ["ant", "bee", "cat"]
    assert [label.get_text() for label in axes.get_yticklabels()] == ["ant", "bee", "cat"]
    plots.confusion_matrix_png(np.eye(45, dtype=int), tmp_path / "c.png")
    assert drawn["axes"].get_xticks().tolist() == list(range(0, 45, 2))
    with pytest.raises(ValueError, match="2 class names for 3 classes"):
        plots.confusion_matrix_png(np.eye(3), tmp_path / "c.png", class_names=["a", "b"])


def test_long_class_names_wrap_at_their_separators():
    name = "birds.red_bar-hooked_beak-spotted_breast-capped-forked_tail"
    assert plots.wrapped(name, 26) == "birds.red_bar-hooked_beak-\nspotted_breast-capped-\nforked_tail"
    assert plots.wrapped(name, 26, lines=2) == "birds.red_bar-hooked_beak-\nspotted_breast-capped-\u2026"
    assert plots.wrapped("x" * 30, 12) == "xxxxxxxxxxxx\nxxxxxxxxxxxx\nxxxxxx" and plots.wrapped("Emu", 26) == "Emu"


@pytest.mark.parametrize("count, name", [(2, "Emu {}"), (5, "birds.red_bar-hooked_beak-spotted_breast-capped-{}"),
                                         (20, "Class_{}"), (200, "{:03d}.Some_Bird_Name")])
def test_confusion_matrix_keeps_its_room_and_its_title_from_2_to_200_classes(tmp_path, monkeypatch, count, name):
    """The matrix is at least 3 inches whatever the names' length, the colour bar stays off the title,
    and every tick label lies inside the figure."""
    drawn = {}
    monkeypatch.setattr(plots, "_save", lambda fig, path: drawn.update(fig=fig))
    names = [name.format(i) for i in range(count)]
    plots.confusion_matrix_png(np.eye(count, dtype=int) * 3 + 1, tmp_path / "c.png", class_names=names,
                               title="linear probe (top-1 0.731)")
    fig = drawn["fig"]
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    matrix, colourbar = fig.axes
    box = matrix.get_window_extent(renderer)
    assert min(box.width, box.height) >= 3 * fig.dpi * 0.95
    title = matrix.title.get_window_extent(renderer)
    assert not title.overlaps(colourbar.get_window_extent(renderer))
    whole = fig.bbox
    for label in matrix.get_xticklabels() + matrix.get_yticklabels():
        extent = label.get_window_extent(renderer)
        assert extent.x0 >= whole.x0 - 1 and extent.x1 <= whole.x1 + 1 and extent.y0 >= whole.y0 - 1, label
    plots.plt.close(fig)


def test_sample_weight_titles_have_enough_decimals_to_rank():
    assert plots._distinguishing_decimals([[0.5, 0.25], [1.0]]) == 2
    assert plots._distinguishing_decimals([[1.0004, 1.0001, 0.9999]]) == 4
    assert plots._distinguishing_decimals([[1.0, 1.0, 1.0]]) == 2  # equal weights: nothing to tell apart

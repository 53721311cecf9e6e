"""Linear probe, kNN retrieval and EMD domain similarity (plain NumPy)."""
import json

import numpy as np
import ot
import pytest
from PIL import Image

from fgtf.transfer import domain_similarity as ds
from fgtf.transfer import linear
from fgtf.transfer.feature_store import load_features, save_features


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
    square = ds.euclidean_distances(both, both)
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
        report = linear.evaluate(model, features, labels)
        assert report["accuracy"] == 1.0
        assert report["confusion_matrix"].trace() == 100


def test_classification_report_hand_computed():
    report = linear.classification_report([0, 0, 0, 1, 2, 2], [0, 1, 0, 1, 2, 0])
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
    ds.main(["--features", str(tmp_path), "--sources", "src", "--targets", "near,far"])
    out = capsys.readouterr().out
    assert "similarity" in out
    rows = json.loads((tmp_path / "domain_similarity.json").read_text())
    by_target = {r["target"]: r for r in rows}
    assert by_target["near"]["similarity"] > by_target["far"]["similarity"]
    assert (tmp_path / "domain_similarity.csv").read_text().startswith("source,target,emd,similarity")
    assert (tmp_path / "domain_similarity.png").stat().st_size > 1000


def test_cli_errors_exit_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        ds.main(["--features", str(tmp_path), "--sources", "missing", "--targets", "x"])
    assert exit_info.value.code == 2
    assert "missing_feature_train.npy is missing" in capsys.readouterr().err
    rng = np.random.default_rng(0)
    _write_feature_dataset(tmp_path, "small", rng.random((2, 3)), 3, rng)
    with pytest.raises(SystemExit) as exit_info:
        ds.main(["--features", str(tmp_path), "--sources", "small", "--targets", "small"])
    assert exit_info.value.code == 2
    assert "min_images" in capsys.readouterr().err

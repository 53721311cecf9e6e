"""Linear probe on extracted features, as the original LinearClassifier
notebook: multinomial logistic regression (lbfgs), plus kNN retrieval.

    clf = fit_logistic_regression(x_train, y_train)
    report = evaluate(clf, x_val, y_val)        # accuracy, mean per-class, confusion
    idx, dist = nearest_neighbours(x_train, x_val[:5], k=5)

CLI: python -m fgtf.transfer.linear --features feature/inception_v3/ --dataset cub_200
"""
import argparse
import os

import numpy as np

from fgtf.transfer.feature_store import load_features
from tfrecord_tools.cli import UserError, cli_main


def fit_logistic_regression(features_train, labels_train, *, C=1.0, max_iter=1000, standardize=False,
                            random_state=0):
    """Fit scikit-learn's multinomial lbfgs logistic regression.

    features_train: (N, D); labels_train: (N,) ints. `standardize=True` puts a
    per-feature zero-mean/unit-variance scaler first (the original used raw
    features). Returns the fitted estimator (a Pipeline when standardising)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    features_train, labels_train = _check_xy(features_train, labels_train)
    classifier = LogisticRegression(C=C, solver="lbfgs", max_iter=max_iter, random_state=random_state)
    model = make_pipeline(StandardScaler(), classifier) if standardize else classifier
    return model.fit(features_train, labels_train)


def evaluate(model, features, labels, num_classes=None):
    """Accuracy, mean per-class accuracy and confusion matrix of a fitted probe.

    Returns {'accuracy': float, 'mean_per_class_accuracy': float,
    'per_class_accuracy': (C,), 'confusion_matrix': (C, C) int64 [true, predicted],
    'predictions': (N,)}."""
    features, labels = _check_xy(features, labels)
    predictions = model.predict(features)
    return classification_report(labels, predictions, num_classes)


def classification_report(labels, predictions, num_classes=None):
    """Metrics of integer `predictions` against `labels` (both (N,))."""
    labels = np.asarray(labels, dtype=np.int64)
    predictions = np.asarray(predictions, dtype=np.int64)
    num_classes = num_classes or int(max(labels.max(), predictions.max())) + 1
    confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(confusion, (labels, predictions), 1)
    per_class_total = confusion.sum(axis=1)
    present = per_class_total > 0
    per_class = np.divide(np.diag(confusion), per_class_total, out=np.full(num_classes, np.nan),
                          where=present)
    return {
        "accuracy": float(np.mean(labels == predictions)),
        "mean_per_class_accuracy": float(np.nanmean(per_class)),
        "per_class_accuracy": per_class,
        "confusion_matrix": confusion,
        "predictions": predictions,
    }


def nearest_neighbours(features_train, query, k=5, metric="cosine", batch_size=1024):
    """The k nearest training rows of each query row.

    features_train: (N, D); query: (Q, D); metric 'cosine' or 'euclidean'.
    Returns (indices (Q, k) int64, distances (Q, k) float64), nearest first."""
    from fgtf.transfer.domain_similarity import euclidean_distances

    bank = np.asarray(features_train, dtype=np.float64)
    query = np.asarray(query, dtype=np.float64)
    if bank.ndim != 2 or query.ndim != 2 or bank.shape[1] != query.shape[1]:
        raise ValueError(f"expected (N, D) and (Q, D) features with the same D, got {bank.shape} and {query.shape}")
    if not 1 <= k <= len(bank):
        raise ValueError(f"k must be between 1 and the number of training rows ({len(bank)}), got {k}")
    if metric == "cosine":
        bank = _unit_rows(bank)
    elif metric != "euclidean":
        raise ValueError(f"metric must be 'cosine' or 'euclidean', got {metric!r}")
    indices, distances = [], []
    for start in range(0, len(query), batch_size):
        block = query[start:start + batch_size]
        if metric == "cosine":
            dist = 1.0 - _unit_rows(block) @ bank.T
        else:
            dist = euclidean_distances(block, bank)
        nearest = np.argpartition(dist, k - 1, axis=1)[:, :k]
        order = np.take_along_axis(dist, nearest, axis=1).argsort(axis=1, kind="stable")
        nearest = np.take_along_axis(nearest, order, axis=1)
        indices.append(nearest)
        distances.append(np.take_along_axis(dist, nearest, axis=1))
    return np.concatenate(indices), np.concatenate(distances)


@cli_main
def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m fgtf.transfer.linear",
        description="Logistic-regression probe and kNN retrieval on extracted features "
                    "(feature/<model>/<dataset>_feature_{train,val}.npy).")
    parser.add_argument("--features", required=True, help="folder of one model's features, e.g. feature/inception_v3/")
    parser.add_argument("--dataset", required=True, help="dataset name used in the feature file names")
    parser.add_argument("--C", type=float, default=1.0, help="inverse regularisation strength (default 1.0)")
    parser.add_argument("--max_iter", type=int, default=1000, help="lbfgs iterations (default 1000)")
    parser.add_argument("--standardize", action="store_true", help="standardise features before the probe")
    parser.add_argument("--k", type=int, default=5, help="neighbours per query in the retrieval grid (default 5)")
    parser.add_argument("--queries", type=int, default=6, help="query images in the retrieval grid (default 6)")
    parser.add_argument("--out", help="output folder for the PNGs and linear_results.json (default: --features)")
    args = parser.parse_args(argv)
    if args.k < 1 or args.queries < 1:
        raise UserError("--k and --queries must be at least 1")

    x_train, y_train, paths_train = load_features(args.features, args.dataset, "train")
    x_val, y_val, paths_val = load_features(args.features, args.dataset, "validation")
    if x_train.shape[1] != x_val.shape[1]:
        raise UserError(f"train features are {x_train.shape[1]}-d but validation features are {x_val.shape[1]}-d")
    num_classes = int(max(y_train.max(), y_val.max())) + 1
    try:
        model = fit_logistic_regression(x_train, y_train, C=args.C, max_iter=args.max_iter,
                                        standardize=args.standardize)
    except ValueError as error:
        raise UserError(str(error)) from None
    report = evaluate(model, x_val, y_val, num_classes)
    print(f"{args.dataset}: linear probe top-1 accuracy {report['accuracy']:.4f}, "
          f"mean per-class accuracy {report['mean_per_class_accuracy']:.4f} "
          f"({len(y_train)} train / {len(y_val)} validation images, {num_classes} classes)")
    write_outputs(args, report, x_train, y_train, paths_train, x_val, y_val, paths_val)


def write_outputs(args, report, x_train, y_train, paths_train, x_val, y_val, paths_val):
    from fgtf.fileio import write_json
    from fgtf.plots import confusion_matrix_png, retrieval_grid_png

    out = args.out or args.features
    prefix = os.path.join(out, f"{args.dataset}_linear")
    write_json(prefix + "_results.json", {
        "dataset": args.dataset, "accuracy": report["accuracy"],
        "mean_per_class_accuracy": report["mean_per_class_accuracy"],
        "per_class_accuracy": [None if np.isnan(a) else float(a) for a in report["per_class_accuracy"]],
        "C": args.C, "standardize": args.standardize})
    confusion_matrix_png(report["confusion_matrix"], prefix + "_confusion.png",
                         title=f"{args.dataset}: linear probe (top-1 {report['accuracy']:.3f})")
    print(f"wrote {prefix}_results.json and {prefix}_confusion.png")
    if paths_train is None or paths_val is None:
        print("no image path lists next to the features; retrieval grid skipped")
        return
    k = min(args.k, len(x_train))
    queries = np.linspace(0, len(x_val) - 1, min(args.queries, len(x_val))).astype(int)
    neighbours, _ = nearest_neighbours(x_train, x_val[queries], k=k)
    retrieval_grid_png([paths_val[q] for q in queries], [[paths_train[i] for i in row] for row in neighbours],
                       prefix + "_retrieval.png", query_labels=y_val[queries].tolist(),
                       neighbour_labels=y_train[neighbours].tolist())
    print(f"wrote {prefix}_retrieval.png")


def _check_xy(features, labels):
    features, labels = np.asarray(features), np.asarray(labels)
    if features.ndim != 2 or labels.shape != (len(features),):
        raise ValueError(f"expected features (N, D) and labels (N,), got {features.shape} and {labels.shape}")
    if not np.isfinite(features).all():
        raise ValueError("features contain NaN or inf values")
    return features, labels


def _unit_rows(x):
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


if __name__ == "__main__":
    main()

"""Linear probe on extracted features, as the original LinearClassifier
notebook: multinomial logistic regression (lbfgs), plus kNN classification
and retrieval.

    clf = fit_logistic_regression(x_train, y_train)
    report = evaluate_probe(clf, x_val, y_val)      # accuracy, mean per-class, confusion
    idx, dist = nearest_neighbours(x_train, x_val[:5], k=5)
    predictions = knn_predict(x_train, y_train, x_val, k=5)   # majority vote, cosine

The kNN classifier labels each validation image with the majority label of
its k nearest training images (cosine distance by default, `--metric
euclidean` for Euclidean); a tie goes to the tied class whose member is
nearest. Its top-1 accuracy is printed and stored beside the logistic
regression's.

CLI: python -m fgtf.transfer.linear --features feature/inception_v3/ --dataset cub_200
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike

from fgtf.metrics import classification_report
from fgtf.transfer.feature_store import load_class_names, load_features
from fgtf.command_line import cli_main, command_parser, positive_float, positive_int
from fgtf.errors import UserError

if TYPE_CHECKING:
    from sklearn.base import ClassifierMixin

METRICS = ("cosine", "euclidean")


def fit_logistic_regression(features_train: ArrayLike, labels_train: ArrayLike, *, C: float = 1.0, max_iter: int = 1000,
                            standardize: bool = False, random_state: int = 0) -> ClassifierMixin:
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


def evaluate_probe(model: ClassifierMixin, features: ArrayLike, labels: ArrayLike,
                   num_classes: int | None = None) -> dict:
    """Accuracy, mean per-class accuracy and confusion matrix of a fitted probe.

    Returns {'accuracy': float, 'mean_per_class_accuracy': float,
    'per_class_accuracy': (C,), 'confusion_matrix': (C, C) int64 [true, predicted],
    'predictions': (N,)}."""
    features, labels = _check_xy(features, labels)
    predictions = model.predict(features)
    return classification_report(labels, predictions, num_classes)


def nearest_neighbours(features_train: ArrayLike, query: ArrayLike, k: int = 5, metric: str = "cosine",
                       batch_size: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """The k nearest training rows of each query row.

    features_train: (N, D); query: (Q, D); metric 'cosine' or 'euclidean'.
    Returns (indices (Q, k) int64, distances (Q, k) float64), nearest first."""
    from sklearn.metrics.pairwise import euclidean_distances

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


def knn_predict(features_train: ArrayLike, labels_train: ArrayLike, query: ArrayLike, k: int = 5,
                metric: str = "cosine", batch_size: int = 1024) -> np.ndarray:
    """kNN classification: each query row gets the majority label of its `k`
    nearest training rows (`metric` as in `nearest_neighbours`); a tie goes to
    the tied label whose member is nearest. Returns (Q,) int64 predictions."""
    features_train, labels_train = _check_xy(features_train, labels_train)
    neighbours, _ = nearest_neighbours(features_train, query, k=k, metric=metric, batch_size=batch_size)
    votes = labels_train.astype(np.int64)[neighbours]  # (Q, k), nearest first
    counts = (votes[:, :, None] == votes[:, None, :]).sum(axis=2)  # votes for each neighbour's label
    # The first (nearest) neighbour among those whose label has the most votes.
    return votes[np.arange(len(votes)), np.argmax(counts == counts.max(axis=1, keepdims=True), axis=1)]


@cli_main
def main(argv=None):
    parser = command_parser(__name__, "Logistic-regression probe, kNN classification and kNN retrieval on extracted "
                    "features (feature/<model>/<dataset>_feature_{train,val}.npy): fit on the train "
                    "split, report top-1 on the validation split.")
    parser.add_argument("--features", required=True, help="folder of one model's features, e.g. feature/inception_v3/")
    parser.add_argument("--dataset", help="dataset name used in the feature file names (default: the only dataset "
                                          "whose features are in --features)")
    parser.add_argument("--C", type=positive_float, default=1.0,
                        help="inverse L2 regularisation strength of the logistic regression")
    parser.add_argument("--max_iter", type=positive_int, default=1000, help="most lbfgs iterations")
    parser.add_argument("--standardize", action="store_true",
                        help="scale each feature to zero mean and unit variance before the logistic regression")
    parser.add_argument("--k", type=positive_int, default=5,
                        help="neighbours that vote in the kNN classifier, and shown per query in the retrieval grid")
    parser.add_argument("--metric", choices=METRICS, default="cosine", help="distance of the kNN classifier and grid")
    parser.add_argument("--queries", type=positive_int, default=6, help="query images in the retrieval grid")
    parser.add_argument("--out", help="output folder for the PNGs and <dataset>_linear_results.json "
                                      "(default: the --features folder)")
    args = parser.parse_args(argv)
    args.dataset = args.dataset or only_dataset(args.features)

    x_train, y_train, paths_train = load_features(args.features, args.dataset, "train")
    x_val, y_val, paths_val = load_features(args.features, args.dataset, "validation")
    if x_train.shape[1] != x_val.shape[1]:
        raise UserError(f"train features are {x_train.shape[1]}-d but validation features are {x_val.shape[1]}-d")
    if args.k > len(x_train):
        raise UserError(f"--k {args.k} is more than the {len(x_train)} training images")
    num_classes = int(max(y_train.max(), y_val.max())) + 1
    class_names = load_class_names(args.features, args.dataset)
    if class_names is not None and len(class_names) != num_classes:
        class_names = None  # not these labels' names
    try:
        model = fit_logistic_regression(x_train, y_train, C=args.C, max_iter=args.max_iter,
                                        standardize=args.standardize)
        knn = classification_report(y_val, knn_predict(x_train, y_train, x_val, k=args.k, metric=args.metric),
                                    num_classes)
    except UserError:
        raise
    except ValueError as error:  # scikit-learn's and POT's say what is wrong with the data
        raise UserError(str(error)) from None
    report = evaluate_probe(model, x_val, y_val, num_classes)
    print(f"{args.dataset}: linear probe top-1 accuracy {report['accuracy']:.4f}, "
          f"mean per-class accuracy {report['mean_per_class_accuracy']:.4f} "
          f"({len(y_train)} train / {len(y_val)} validation images, {num_classes} classes)")
    print(f"{args.dataset}: kNN (k={args.k}, {args.metric}, majority vote) top-1 accuracy {knn['accuracy']:.4f}, "
          f"mean per-class accuracy {knn['mean_per_class_accuracy']:.4f}")
    write_outputs(args, report, x_train, y_train, paths_train, x_val, y_val, paths_val, knn=knn,
                  class_names=class_names)


def only_dataset(features_dir):
    """The name of the one dataset whose training features are in `features_dir`; else a UserError."""
    suffix = "_feature_train.npy"
    if not os.path.isdir(features_dir):
        raise UserError(f"--features {features_dir} is not a folder")
    names = sorted(name[: -len(suffix)] for name in os.listdir(features_dir) if name.endswith(suffix))
    if not names:
        raise UserError(f"{features_dir} holds no *{suffix}; run python -m fgtf.extract_features first")
    if len(names) > 1:
        raise UserError(f"{features_dir} holds the features of {', '.join(names)}; name one with --dataset")
    return names[0]


def write_outputs(args, report, x_train, y_train, paths_train, x_val, y_val, paths_val, knn=None, class_names=None):
    """<dataset>_linear_results.json (scores and the settings that produced
    them), the confusion matrix PNG and, with image paths, the retrieval grid,
    with the classes named by `class_names` (else numbered)."""
    from fgtf.fileio import write_json
    from fgtf.plots import confusion_matrix_png, retrieval_grid_png

    out = args.out or args.features
    prefix = os.path.join(out, f"{args.dataset}_linear")
    metric = args.metric
    results = {
        "dataset": args.dataset, "accuracy": report["accuracy"],
        "mean_per_class_accuracy": report["mean_per_class_accuracy"],
        "per_class_accuracy": _jsonable_accuracies(report["per_class_accuracy"]), "class_names": class_names,
        "C": args.C, "standardize": args.standardize,
        "settings": {"features": os.path.abspath(args.features), "dataset": args.dataset,
                     "fit_split": "train", "eval_split": "validation",
                     "train_images": len(y_train), "validation_images": len(y_val),
                     "C": args.C, "max_iter": args.max_iter, "standardize": args.standardize,
                     "k": args.k, "metric": metric}}
    if knn is not None:
        results["knn"] = {"k": args.k, "metric": metric, "vote": "majority, ties to the nearest",
                          "accuracy": knn["accuracy"], "mean_per_class_accuracy": knn["mean_per_class_accuracy"],
                          "per_class_accuracy": _jsonable_accuracies(knn["per_class_accuracy"])}
    write_json(prefix + "_results.json", results)
    confusion_matrix_png(report["confusion_matrix"], prefix + "_confusion.png", class_names=class_names,
                         title=f"{args.dataset}: linear probe (top-1 {report['accuracy']:.3f})")
    print(f"wrote {prefix}_results.json and {prefix}_confusion.png")
    if paths_train is None or paths_val is None:
        print("no image path lists next to the features; retrieval grid skipped")
        return
    queries = np.linspace(0, len(x_val) - 1, min(args.queries, len(x_val))).astype(int)
    neighbours, _ = nearest_neighbours(x_train, x_val[queries], k=args.k, metric=metric)
    name = (lambda label: class_names[label]) if class_names else int
    retrieval_grid_png([paths_val[q] for q in queries], [[paths_train[i] for i in row] for row in neighbours],
                       prefix + "_retrieval.png", query_labels=[name(label) for label in y_val[queries]],
                       neighbour_labels=[[name(label) for label in row] for row in y_train[neighbours]])
    print(f"wrote {prefix}_retrieval.png")


def _jsonable_accuracies(per_class):
    return [None if np.isnan(a) else float(a) for a in per_class]


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

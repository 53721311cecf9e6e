"""Domain similarity between datasets by the Earth Mover's Distance of their
class features (Cui et al., CVPR 2018, Sec. 4):

    class_feats, counts = class_features(features, labels)
    d = emd(source_feats, source_counts, target_feats, target_counts)
    s = similarity(d)            # exp(-0.01 * d)

CLI: python -m fgtf.transfer.domain_similarity --features feature/inception_v3/ \
         --sources inat2017,ILSVRC2012 --targets cub_200,stanford_cars

A source written `A+B` combines the classes of A and B into one source domain.
"""
import argparse
import os

import numpy as np

from fgtf.transfer.feature_store import load_features
from tfrecord_tools.cli import HelpFormatter, UserError, cli_main, positive_float, positive_int, split_name

# POT probes every array backend it finds when imported; its TensorFlow, JAX
# and PyTorch probes import those frameworks (seconds), though fgtf only
# passes NumPy arrays. A user's own setting wins.
for _backend in ("TENSORFLOW", "JAX", "PYTORCH", "CUPY"):
    os.environ.setdefault(f"POT_BACKEND_DISABLE_{_backend}", "1")


def class_features(features, labels):
    """Per-class mean feature and image count.

    features: (N, D) float; labels: (N,) int in [0, C).
    Returns (class_feats (C, D) float64, counts (C,) int64). Every class in
    0..max(labels) must have at least one image."""
    features = np.asarray(features)
    labels = np.asarray(labels)
    if features.ndim != 2 or labels.shape != (len(features),):
        raise ValueError(f"expected features (N, D) and labels (N,), got {features.shape} and {labels.shape}")
    if len(labels) == 0:
        raise ValueError("no features given")
    _check_finite(features, "features")
    if labels.min() < 0:
        raise ValueError("labels must be non-negative class indices")
    counts = np.bincount(labels)
    empty = np.flatnonzero(counts == 0)
    if len(empty):
        raise ValueError(f"{len(empty)} classes have no image (first: {empty[:5].tolist()})")
    sums = np.zeros((len(counts), features.shape[1]), dtype=np.float64)
    np.add.at(sums, labels, features)
    return sums / counts[:, None], counts.astype(np.int64)


class TooFewImages(ValueError):
    """No source class has `min_images` images; `largest` is the most any has."""

    def __init__(self, min_images, largest):
        super().__init__(f"no source class has at least min_images={min_images} images (the largest has {largest})")
        self.min_images, self.largest = min_images, largest


def emd(source_feats, source_counts, target_feats, target_counts, *, min_images=200):
    """Earth Mover's Distance between two domains given as class features.

    source_feats: (S, D), source_counts: (S,); target_feats: (T, D), target_counts: (T,).
    Source classes with fewer than `min_images` images are dropped (as the
    original, which kept well-populated iNat/ImageNet classes); the counts are
    normalised to weights, the cost is the Euclidean distance between class
    features, and the exact transport is solved by POT's network simplex on
    the rectangular (S, T) cost. Returns the optimal cost (float)."""
    import ot

    if min_images < 1:
        raise ValueError(f"min_images must be at least 1, got {min_images}")
    source_feats, source_counts = _domain(source_feats, source_counts, "source")
    target_feats, target_counts = _domain(target_feats, target_counts, "target")
    if source_feats.shape[1] != target_feats.shape[1]:
        raise ValueError(f"source features are {source_feats.shape[1]}-d but target features are {target_feats.shape[1]}-d")
    keep = source_counts >= min_images
    if not keep.any():
        raise TooFewImages(min_images, int(source_counts.max()))
    source_feats, source_counts = source_feats[keep], source_counts[keep]
    cost = euclidean_distances(source_feats, target_feats)
    source_weights = source_counts / source_counts.sum()
    target_weights = target_counts / target_counts.sum()
    return float(ot.emd2(source_weights, target_weights, cost, numItermax=10_000_000))


def similarity(emd_value, gamma=0.01):
    """Domain similarity `exp(-gamma * emd_value)` (gamma 0.01 as in the paper);
    `gamma` must be > 0, so that the similarity lies in (0, 1]."""
    if not (np.isfinite(gamma) and gamma > 0):
        raise ValueError(f"gamma must be a finite number greater than 0, got {gamma}")
    return np.exp(-gamma * np.asarray(emd_value, dtype=np.float64))


def combine(*sources):
    """Concatenate several domains' `(class_feats, counts)` into one domain."""
    if not sources:
        raise ValueError("combine needs at least one (class_feats, counts) pair")
    feats = [np.asarray(f, dtype=np.float64) for f, _ in sources]
    if len({f.shape[1] for f in feats}) != 1:
        raise ValueError(f"cannot combine domains of different feature sizes {[f.shape[1] for f in feats]}")
    return np.concatenate(feats), np.concatenate([np.asarray(c, dtype=np.int64) for _, c in sources])


def euclidean_distances(a, b):
    """Pairwise Euclidean distances (len(a), len(b)), float64, without the
    (A, B, D) intermediate."""
    squared = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return np.sqrt(np.maximum(squared, 0.0))


def similarity_table(features_dir, sources, targets, *, min_images=200, gamma=0.01, split="train"):
    """EMD and similarity for every (source, target) pair of dataset names whose
    features are stored in `features_dir`. Returns a list of row dicts, each
    with the settings that produced it (gamma, min_images, split, features)."""
    settings = {"gamma": gamma, "min_images": min_images, "split": split,
                "features": os.path.abspath(features_dir)}
    domains = {}

    def domain(name):
        if name not in domains:
            parts = [class_features(*load_features(features_dir, part, split)[:2]) for part in name.split("+")]
            domains[name] = combine(*parts)
        return domains[name]

    rows = []
    for source in sources:
        for target in targets:
            distance = emd(*domain(source), *domain(target), min_images=min_images)
            rows.append({"source": source, "target": target, "emd": distance,
                         "similarity": float(similarity(distance, gamma)), **settings})
    return rows


@cli_main
def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m fgtf.transfer.domain_similarity",
        description="EMD domain similarity between source and target datasets from extracted features "
                    "(feature/<model>/<dataset>_feature_<split>.npy and _label_<split>.npy).",
        formatter_class=HelpFormatter)
    parser.add_argument("--features", required=True, help="folder of one model's features, e.g. feature/inception_v3/")
    parser.add_argument("--sources", required=True, help="comma-separated source datasets; A+B combines two into one domain")
    parser.add_argument("--targets", required=True, help="comma-separated target datasets")
    parser.add_argument("--min_images", type=positive_int, default=200,
                        help="drop source classes with fewer images than this (at least 1)")
    parser.add_argument("--gamma", type=positive_float, default=0.01,
                        help="similarity = exp(-gamma * EMD); must be > 0, so similarity is in (0, 1]")
    parser.add_argument("--split", type=split_name, default="train",
                        help="feature split to compare: train or validation (val accepted)")
    parser.add_argument("--out", help="output folder for domain_similarity.{csv,json,png} (default: the --features folder)")
    args = parser.parse_args(argv)
    sources = [s for s in args.sources.split(",") if s]
    targets = [t for t in args.targets.split(",") if t]
    if not sources or not targets:
        raise UserError("give at least one source and one target dataset")
    try:
        rows = similarity_table(args.features, sources, targets, min_images=args.min_images,
                                gamma=args.gamma, split=args.split)
    except TooFewImages as error:
        raise UserError(f"no source class has --min_images {error.min_images} images (the largest has "
                        f"{error.largest}); lower --min_images, e.g. --min_images {error.largest}") from None
    except ValueError as error:
        raise UserError(str(error)) from None
    print(format_table(rows))
    print(f"(gamma {args.gamma}, min_images {args.min_images}, {args.split} features of {args.features})")
    out = args.out or args.features
    write_table(rows, out, sources, targets)
    print(f"wrote {os.path.join(out, 'domain_similarity')}.csv/.json/.png")


def format_table(rows):
    lines = [f"{'source':<24} {'target':<20} {'EMD':>10} {'similarity':>11}"]
    lines += [f"{r['source']:<24} {r['target']:<20} {r['emd']:>10.4f} {r['similarity']:>11.4f}" for r in rows]
    return "\n".join(lines)


_CSV_COLUMNS = ("source", "target", "emd", "similarity", "gamma", "min_images", "split", "features")


def write_table(rows, out_dir, sources, targets):
    """domain_similarity.csv, .json and a heatmap .png of the similarities;
    rows keep the settings `similarity_table` put in them."""
    import csv
    import io

    from fgtf.fileio import write_json, write_text
    from fgtf.plots import similarity_heatmap_png

    base = os.path.join(out_dir, "domain_similarity")
    text = io.StringIO()
    table_writer = csv.DictWriter(text, [c for c in _CSV_COLUMNS if c in rows[0]], extrasaction="ignore",
                                  lineterminator="\n")
    table_writer.writeheader()
    table_writer.writerows({**r, "emd": f"{r['emd']:.6f}", "similarity": f"{r['similarity']:.6f}"} for r in rows)
    write_text(base + ".csv", text.getvalue())
    write_json(base + ".json", rows)
    table = np.array([[r["similarity"] for r in rows[i * len(targets):(i + 1) * len(targets)]]
                      for i in range(len(sources))])
    similarity_heatmap_png(table, sources, targets, base + ".png", title="Domain similarity exp(-γ·EMD)")


def _domain(feats, counts, what):
    feats = np.asarray(feats, dtype=np.float64)
    counts = np.asarray(counts)
    if feats.ndim != 2 or counts.shape != (len(feats),):
        raise ValueError(f"{what}: expected class features (C, D) and counts (C,), got {feats.shape} and {counts.shape}")
    if len(feats) == 0:
        raise ValueError(f"{what} domain has no classes")
    _check_finite(feats, f"{what} class features")
    if (counts <= 0).any():
        raise ValueError(f"{what} domain has classes with no images")
    return feats, counts.astype(np.float64)


def _check_finite(array, what):
    if not np.isfinite(array).all():
        raise ValueError(f"{what} contain NaN or inf values")


if __name__ == "__main__":
    main()

"""Domain similarity between datasets by the Earth Mover's Distance of their
class features (Cui et al., CVPR 2018, Sec. 4), plain arrays in and out:

    class_feats, counts = class_features(features, labels)
    d = emd(source_feats, source_counts, target_feats, target_counts)
    s = similarity(d)            # exp(-0.01 * d)

The table over stored features and its files: `fgtf.transfer.domain_similarity.table`;
the command: python -m fgtf.transfer.domain_similarity --features feature/inception_v3/ \
    --sources inat2017,ILSVRC2012 --targets cub_200,stanford_cars
(a source written `A+B` combines the classes of A and B into one source domain).
"""
import os

import numpy as np
from numpy.typing import ArrayLike
from sklearn.metrics.pairwise import euclidean_distances


def class_features(features: ArrayLike, labels: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
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


def emd(source_feats: ArrayLike, source_counts: ArrayLike, target_feats: ArrayLike, target_counts: ArrayLike, *,
        min_images: int = 200) -> float:
    """Earth Mover's Distance between two domains given as class features.

    source_feats: (S, D), source_counts: (S,); target_feats: (T, D), target_counts: (T,).
    Source classes with fewer than `min_images` images are dropped (as the
    original, which kept well-populated iNat/ImageNet classes); the counts are
    normalised to weights, the cost is the Euclidean distance between class
    features, and the exact transport is solved by POT's network simplex on
    the rectangular (S, T) cost. Returns the optimal cost (float)."""
    ot = import_pot()
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


def similarity(emd_value: ArrayLike, gamma: float = 0.01) -> np.ndarray:
    """Domain similarity `exp(-gamma * emd_value)` (gamma 0.01 as in the paper);
    `gamma` must be > 0, so that the similarity lies in (0, 1]."""
    if not (np.isfinite(gamma) and gamma > 0):
        raise ValueError(f"gamma must be a finite number greater than 0, got {gamma}")
    return np.exp(-gamma * np.asarray(emd_value, dtype=np.float64))


def combine(*sources: tuple[ArrayLike, ArrayLike]) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate several domains' `(class_feats, counts)` into one domain."""
    if not sources:
        raise ValueError("combine needs at least one (class_feats, counts) pair")
    feats = [np.asarray(f, dtype=np.float64) for f, _ in sources]
    if len({f.shape[1] for f in feats}) != 1:
        raise ValueError(f"cannot combine domains of different feature sizes {[f.shape[1] for f in feats]}")
    return np.concatenate(feats), np.concatenate([np.asarray(c, dtype=np.int64) for _, c in sources])


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


def import_pot():
    """POT, imported without its probes of TensorFlow, JAX and PyTorch: it
    probes every array backend it finds when first imported, which imports
    those frameworks (seconds), though fgtf only passes NumPy arrays. A user's
    own setting wins."""
    for backend in ("TENSORFLOW", "JAX", "PYTORCH", "CUPY"):
        os.environ.setdefault(f"POT_BACKEND_DISABLE_{backend}", "1")
    import ot

    return ot

"""Transferability estimation: how well a pretrained network (or a source
dataset) will transfer to a target, scored from the network's outputs on the
target's training images, before any fine-tuning.

    from fgtf.transfer import transferability as tr
    tr.logme(features, labels)        # features (N, D), labels (N,) ints 0..K-1
    tr.leep(probabilities, labels)    # the source classifier's softmax (N, Z)
    tr.otdd(source_features, source_labels, target_features, target_labels)

Arrays in, a float out; higher means "transfers better" for every score but
`otdd`, a distance (`METRICS[name].higher_is_better` says which). Labels are
integers 0..K-1 with every class present; a mistake in the input raises
`TransferabilityInputError` (a ValueError) naming it. Each score equals the
value of its authors' code (tests/reference/transferability/README.md):

| function | paper | follows |
|---|---|---|
| `logme` | You et al., ICML 2021; JMLR 2022 | thuml/LogME LogME.py (fixed point) |
| `leep` | Nguyen et al., ICML 2020 | thuml/LogME LEEP.py, tllib, google-research |
| `nce` | Tran et al., ICCV 2019 | thuml/LogME NCE.py, tllib |
| `hscore` | Bao et al., ICIP 2019 | tllib h_score |
| `regularized_hscore` | Ibrahim et al., ICLR 2022 | tllib regularized_h_score |
| `transrate` | Huang et al., ICML 2022 | tllib transrate |
| `gbc` | Pándy et al., CVPR 2022 | google-research stable_transfer gbc.py |
| `nleep` | Li et al., CVPR 2021 | google-research stable_transfer nleep.py |
| `sfda` | Shao et al., ECCV 2022 | TencentARC/SFDA metrics.py |
| `otdd` | Alvarez-Melis & Fusi, NeurIPS 2020 | microsoft/otdd DatasetDistance |
| `emd_similarity` | Cui et al., CVPR 2018 | `fgtf.transfer.domain_similarity` |

Where the originals disagree, fgtf says which it follows in the function's
docstring (LogME with fewer images than dimensions, the two H-scores, the
two N-LEEPs). Everything runs in float64 NumPy/SciPy, except the PCA and
Gaussian mixture of `nleep`, which are scikit-learn's on float32 features as
in the original, so that the mixture starts from the same point.
"""
import dataclasses

import numpy as np
from numpy.typing import ArrayLike


class TransferabilityInputError(ValueError):
    """Input a transferability score cannot be computed from; the message
    names the problem."""


def logme(features: ArrayLike, labels: ArrayLike) -> float:
    """LogME, the log maximum evidence of a Bayesian linear regression from
    the features to each class's one-hot indicator, averaged over classes and
    divided by N (You et al., ICML 2021; the fixed-point algorithm of the
    JMLR 2022 version, thuml/LogME's default).

    features (N, D), not centred, as the original. With at least as many
    images as dimensions (and full rank) the value is thuml's fixed-point
    code's. With fewer, that code sums log(α + β·σ²) over the N singular
    values only and so leaves out (D − N)/2 · log α of the evidence (the
    D − N zero directions of the feature space), which makes small sets
    score high and rank feature sets backwards; fgtf keeps the full evidence,
    as the ICML algorithm (thuml's `_fit_icml`, tllib) does. The iteration is
    run for all classes at once."""
    x, labels, classes = _features_and_labels(features, labels)
    n, dim = x.shape
    sigma, projections = _logme_spectrum(x, labels, classes)
    counts = np.bincount(labels).astype(np.float64)
    x2 = projections ** 2  # (k, classes)
    residual_outside = counts - x2.sum(axis=0)  # the targets' part outside the features' span
    sigma = sigma[:, None]
    alpha, beta = np.ones(classes), np.ones(classes)
    m2, res2 = np.zeros(classes), np.zeros(classes)
    running = np.ones(classes, dtype=bool)
    for _ in range(11):  # the original's bound: it converges in a few steps
        t = alpha / beta
        gamma = (sigma / (sigma + t)).sum(axis=0)
        step_m2 = (sigma * x2 / ((t + sigma) ** 2)).sum(axis=0)
        step_res2 = (x2 / ((1 + sigma / t) ** 2)).sum(axis=0) + residual_outside
        step_alpha = gamma / (step_m2 + 1e-5)
        step_beta = (n - gamma) / (step_res2 + 1e-5)
        for value, step in ((alpha, step_alpha), (beta, step_beta), (m2, step_m2), (res2, step_res2)):
            value[running] = step[running]
        running &= ~(np.abs(step_alpha / step_beta - t) / t <= 1e-3)
        if not running.any():
            break
    missing = dim - len(sigma)  # directions with no feature variance: each adds log α − log α = 0 to the evidence
    evidence = (dim / 2.0 * np.log(alpha) + n / 2.0 * np.log(beta)
                - 0.5 * np.sum(np.log(alpha + beta * sigma), axis=0) - missing / 2.0 * np.log(alpha)
                - beta / 2.0 * res2 - alpha / 2.0 * m2 - n / 2.0 * np.log(2 * np.pi))
    return float(np.mean(evidence / n))


def leep(probabilities: ArrayLike, labels: ArrayLike) -> float:
    """LEEP, the mean log-likelihood of the target labels under the "empirical
    predictor" that maps the source classifier's soft prediction through the
    empirical P(target | source class) (Nguyen et al., ICML 2020).

    probabilities (N, Z): the source model's softmax on the target images
    (rows sum to 1), not its argmax. A source class no image predicts at all
    contributes nothing (google-research's divide-no-nan)."""
    probabilities, labels, classes = _probabilities_and_labels(probabilities, labels)
    return _leep(probabilities, labels, classes)


def nce(probabilities: ArrayLike, labels: ArrayLike) -> float:
    """NCE, the negative conditional entropy H(target | source class) of the
    source classifier's hard predictions (argmax of `probabilities`, (N, Z))
    and the target labels (Tran et al., ICCV 2019), as thuml's NCE.py / tllib:
    source classes never predicted are left out."""
    probabilities, labels, classes = _probabilities_and_labels(probabilities, labels)
    from scipy.special import entr

    sources = probabilities.shape[1]
    pairs = labels * sources + probabilities.argmax(axis=1)
    joint = np.bincount(pairs, minlength=classes * sources).reshape(classes, sources) / len(labels)
    marginal = joint.sum(axis=0)
    used = marginal > 0
    conditional = joint[:, used] / marginal[used]
    return float(-np.sum(marginal[used] * entr(conditional).sum(axis=0)))


def hscore(features: ArrayLike, labels: ArrayLike) -> float:
    """H-score, tr(cov(f)⁺ cov(E[f | y])) (Bao et al., ICIP 2019), as tllib's
    `h_score`: covariances with 1/(N − 1), the pseudo-inverse cutting
    eigenvalues below 1e-15 of the largest. (google-research's hscore.py
    multiplies the two matrices element-wise, a different quantity fgtf does
    not provide.) features (N, D)."""
    x, labels, classes = _features_and_labels(features, labels)
    n = len(x)
    centred = x - x.mean(axis=0)
    return _between_over_total(centred, labels, classes, centred.T @ centred / (n - 1)) / (n - 1)


def regularized_hscore(features: ArrayLike, labels: ArrayLike) -> float:
    """The shrinkage H-score (Ibrahim, Ponomareva & Mazumder, ICLR 2022), as
    tllib's `regularized_h_score`: centred features, the Ledoit–Wolf
    covariance (1 − α)·S + α·tr(S)/D·I (S with 1/N) and its shrinkage α, and
    the between-class covariance scaled by 1 − α. features (N, D)."""
    x, labels, classes = _features_and_labels(features, labels)
    n, dim = x.shape
    centred = x - x.mean(axis=0)
    covariance = centred.T @ centred / n
    shrinkage = _ledoit_wolf_shrinkage(centred, covariance)
    scale = np.trace(covariance) / dim
    shrunk = (1 - shrinkage) * covariance
    shrunk.flat[::dim + 1] += shrinkage * scale
    return (1 - shrinkage) * _between_over_total(centred, labels, classes, shrunk) / (n - 1)


def transrate(features: ArrayLike, labels: ArrayLike, eps: float = 1e-4) -> float:
    """TransRate, the coding rate of the features minus their mean coding rate
    within each class (Huang et al., ICML 2022), as tllib's `transrate`:
    R(Z) = ½ log det(I + ZᵀZ / (n·eps)), features centred once by their mean,
    classes averaged unweighted. features (N, D); `eps` the distortion."""
    x, labels, classes = _features_and_labels(features, labels)
    if not (np.isfinite(eps) and eps > 0):
        raise TransferabilityInputError(f"eps must be a positive number, got {eps}")
    centred = x - x.mean(axis=0)
    within = [_coding_rate(centred[labels == c], eps) for c in range(classes)]
    return float(_coding_rate(centred, eps) - np.sum(within) / classes)


def gbc(features: ArrayLike, labels: ArrayLike, gaussian: str = "spherical", pca_dim: int | None = 64) -> float:
    """GBC, the Gaussian Bhattacharyya coefficient: minus the summed overlap
    exp(−D_B) of every ordered pair of classes, each a Gaussian with its mean
    and per-dimension variance (Pándy et al., CVPR 2022), as google-research's
    gbc.py: features reduced to `pca_dim` principal components first (None:
    not reduced), variances with 1/n_c floored at 1e-4; `gaussian`
    'spherical' (the default: one variance per class, the mean of its
    dimensions') or 'diagonal'. For spherical Gaussians the original adds the
    log-variance terms of D_B once, not once per dimension; fgtf does the
    same, so the values agree. features (N, D)."""
    x, labels, classes = _features_and_labels(features, labels)
    if gaussian not in ("spherical", "diagonal"):
        raise TransferabilityInputError(f"gaussian must be 'spherical' or 'diagonal', got {gaussian!r}")
    if pca_dim is not None:
        x = _principal_components(x, _positive_int(pca_dim, "pca_dim"))
    counts = np.bincount(labels)[:, None]
    means = _class_sums(x, labels, classes) / counts
    variances = np.maximum(_class_sums((x - means[labels]) ** 2, labels, classes) / counts, 1e-4)
    if gaussian == "spherical":
        variances = variances.mean(axis=1, keepdims=True)
    overlap = 0.0
    for c in range(classes):  # one row of class pairs at a time: (classes, dims) in memory
        pair_variance = (variances[c] + variances) / 2
        distance = (np.sum((means[c] - means) ** 2 / pair_variance, axis=1) / 8
                    + 0.5 * np.sum(np.log(pair_variance) - 0.5 * np.log(variances[c]) - 0.5 * np.log(variances),
                                   axis=1))
        overlap += np.sum(np.exp(-np.delete(distance, c)))
    return float(-overlap)


def nleep(features: ArrayLike, labels: ArrayLike, components_per_class: int = 5, pca_variance: float = 0.8,
          seed: int = 123) -> float:
    """N-LEEP: LEEP with the source classifier replaced by a Gaussian mixture
    of `components_per_class` × K components fitted to the features (Li et
    al., CVPR 2021), as google-research's nleep.py: PCA keeping
    `pca_variance` of the variance (exact SVD, float32 output), scikit-learn's
    GaussianMixture (full covariances, k-means start, `seed` its
    random_state), then the log-likelihood LEEP. (SFDA's copy leaves the log
    out; fgtf follows the paper.) features (N, D); needs at least as many
    images as mixture components."""
    x, labels, classes = _features_and_labels(features, labels)
    components = _positive_int(components_per_class, "components_per_class") * classes
    if len(x) < components:
        raise TransferabilityInputError(f"N-LEEP fits {components} mixture components ({components_per_class} per "
                                        f"class) but there are only {len(x)} images; lower components_per_class")
    if not 0 < pca_variance <= 1:
        raise TransferabilityInputError(f"pca_variance must be in (0, 1], got {pca_variance}")
    from sklearn.decomposition import PCA
    from sklearn.mixture import GaussianMixture
    from threadpoolctl import threadpool_limits

    reduced = x.astype(np.float32)
    if pca_variance < 1:
        # OpenBLAS's float32 SVD changes in the last bits with its thread count, and the mixture's k-means
        # start amplifies that (1e-5 in the components moved one reference score by 0.6 %): one thread
        # makes the score the same on every machine, and the original's.
        with threadpool_limits(limits=1, user_api="blas"):
            reduced = PCA(n_components=pca_variance, svd_solver="full").fit_transform(reduced).astype(np.float32)
    mixture = GaussianMixture(n_components=components, random_state=seed).fit(reduced)
    return _leep(mixture.predict_proba(reduced).astype(np.float32), labels, classes)


def sfda(features: ArrayLike, labels: ArrayLike) -> float:
    """SFDA, the self-challenging Fisher discriminant (Shao et al., ECCV 2022),
    as TencentARC/SFDA's `SFDA_Score`: a Fisher discriminant with the
    within-class scatter shrunk toward tr/D·I by λ = max(exp(−5·ρ), 1e-10), ρ
    three power-iteration steps toward its largest eigenvalue; its class
    probabilities softened by a second softmax; each image mixed toward the
    mean of the other classes' means by one minus its own class's
    probability (ConfMix); the same discriminant (same λ) refitted on the
    mixed images; score = the mean probability of the true class (no log).

    The original projects on every eigenvector of the generalised problem
    (S_b, S_w'), so its classifier is means · S_w'⁻¹ whatever S_b is: fgtf
    solves with S_w' directly (Cholesky), which gives the same value.
    features (N, D)."""
    x, labels, classes = _features_and_labels(features, labels)
    rows = np.arange(len(x))
    priors = np.bincount(labels) / len(x)
    probabilities, shrinkage = _shrunk_discriminant(x, labels, classes, priors, shrinkage=None)
    softened = np.exp(probabilities) / np.exp(probabilities).sum(axis=1, keepdims=True)
    means = _class_sums(x, labels, classes) / np.bincount(labels)[:, None]
    others = (means.sum(axis=0) - means) / (classes - 1)
    own = softened[rows, labels][:, None]
    mixed = own * x + (1 - own) * others[labels]
    probabilities, _ = _shrunk_discriminant(mixed, labels, classes, priors, shrinkage)
    return float(probabilities[rows, labels].mean())


def otdd(source_features: ArrayLike, source_labels: ArrayLike, target_features: ArrayLike, target_labels: ArrayLike,
         *, label_distance: str = "exact", entreg: float = 0.1, max_samples: int = 1000, seed: int = 0) -> float:
    """OTDD, the optimal transport dataset distance (Alvarez-Melis & Fusi,
    NeurIPS 2020), as microsoft/otdd's `DatasetDistance(...).distance()`:
    the debiased Sinkhorn divergence between the two labelled sets with
    ground cost |x − x'|²/2 + W(y, y')/2, where W is a distance between the
    classes (the "label-to-label" distances) — `label_distance` 'exact' (the
    entropic OT cost |x − x'|² between the two classes' images, otdd's
    `inner_ot_method='exact'`) or 'gaussian' (the squared 2-Wasserstein
    distance of the classes' Gaussians, otdd's default). Lower is closer, so
    more transferable.

    As otdd: classes with fewer than 2 images are left out; the label
    distances use every image; the outer problem uses at most `max_samples`
    images of each set (drawn with `seed`; otdd draws them unseeded;
    otdd's example passes 1,000); ε = `entreg` for both problems. Neither
    problem is run to convergence: otdd's solver (GeomLoss) takes one
    Sinkhorn step per temperature of an ε-scaling from the squared diameter
    of the points down to ε, then one extrapolation, and fgtf takes the same
    steps (`fgtf.transfer.sinkhorn`), so it agrees with otdd to float
    rounding. That diameter is the points' bounding box with, as otdd builds
    them, each image's label index appended as one more coordinate (the
    target's after the source's). Run to convergence instead, the divergence
    on the reference sets is 0.5–0.6 % lower, and a schedule from the
    features' own diameter would move it by about 1 %.

    source_features (Ns, D), target_features (Nt, D): the same feature
    space, e.g. one network's features of both datasets."""
    from fgtf.transfer import sinkhorn

    xs, ys, _ = _features_and_labels(source_features, source_labels, "source_features", "source_labels")
    xt, yt, _ = _features_and_labels(target_features, target_labels, "target_features", "target_labels")
    if xs.shape[1] != xt.shape[1]:
        raise TransferabilityInputError(f"source features are {xs.shape[1]}-d but target features are "
                                        f"{xt.shape[1]}-d; OTDD compares two sets in one feature space")
    if label_distance not in LABEL_DISTANCES:
        raise TransferabilityInputError(f"label_distance must be one of {', '.join(LABEL_DISTANCES)}, "
                                        f"got {label_distance!r}")
    if not (np.isfinite(entreg) and entreg > 0):
        raise TransferabilityInputError(f"entreg must be a positive number, got {entreg}")
    max_samples = _positive_int(max_samples, "max_samples")
    xs, ys = _classes_with_two_images(xs, ys, "source")
    xt, yt = _classes_with_two_images(xt, yt, "target")
    source_classes = int(ys.max()) + 1
    distances = LABEL_DISTANCES[label_distance]
    across = distances(xs, ys, xt, yt, entreg)
    label_costs = np.block([[distances(xs, ys, xs, ys, entreg, within=True), across],
                            [across.T, distances(xt, yt, xt, yt, entreg, within=True)]])
    draw = np.random.default_rng(seed)
    xs, ys = _subsample(xs, ys, max_samples, draw)
    xt, yt = _subsample(xt, yt + source_classes, max_samples, draw)

    def cost(x1, y1, x2, y2):
        return _squared_distances(x1, x2) / 2 + label_costs[y1][:, y2] / 2

    points = np.concatenate([np.column_stack([xs, ys]), np.column_stack([xt, yt])])
    diameter = sinkhorn.bounding_box_diameter(points.min(axis=0), points.max(axis=0))
    eps = sinkhorn.epsilon_schedule(diameter, np.sqrt(entreg))
    source_weights, target_weights = np.full(len(xs), -np.log(len(xs))), np.full(len(xt), -np.log(len(xt)))
    return float(sinkhorn.sinkhorn_divergence(cost(xs, ys, xt, yt), cost(xs, ys, xs, ys), cost(xt, yt, xt, yt),
                                              source_weights, target_weights, eps))


def emd_similarity(source_features: ArrayLike, source_labels: ArrayLike, target_features: ArrayLike,
                   target_labels: ArrayLike, *, min_images: int = 200, gamma: float = 0.01) -> float:
    """The domain similarity exp(−γ·EMD) of Cui et al. (CVPR 2018), through
    this module's interface: `fgtf.transfer.domain_similarity`'s class means,
    EMD (source classes with fewer than `min_images` images left out) and
    similarity. Higher is closer."""
    from fgtf.transfer import domain_similarity as ds

    xs, ys, _ = _features_and_labels(source_features, source_labels, "source_features", "source_labels")
    xt, yt, _ = _features_and_labels(target_features, target_labels, "target_features", "target_labels")
    try:
        distance = ds.emd(*ds.class_features(xs, ys), *ds.class_features(xt, yt), min_images=min_images)
        return float(ds.similarity(distance, gamma))
    except ValueError as error:
        raise TransferabilityInputError(str(error)) from None


# ---------------------------------------------------------------- the scores


@dataclasses.dataclass(frozen=True)
class Metric:
    """A score of this module: its function, what it reads ('features',
    'probabilities', or 'source_target': features of the source and target
    datasets), and its direction."""
    function: object
    inputs: str
    higher_is_better: bool = True


METRICS = {
    "logme": Metric(logme, "features"),
    "leep": Metric(leep, "probabilities"),
    "nce": Metric(nce, "probabilities"),
    "nleep": Metric(nleep, "features"),
    "hscore": Metric(hscore, "features"),
    "regularized_hscore": Metric(regularized_hscore, "features"),
    "transrate": Metric(transrate, "features"),
    "gbc": Metric(gbc, "features"),
    "sfda": Metric(sfda, "features"),
    "otdd": Metric(otdd, "source_target", higher_is_better=False),
    "emd_similarity": Metric(emd_similarity, "source_target"),
}


# ------------------------------------------------------------------- helpers


def _features_and_labels(features, labels, features_name="features", labels_name="labels"):
    """(features float64 (N, D), labels int64 (N,), class count), or a
    TransferabilityInputError naming what is wrong."""
    features = _matrix(features, features_name)
    if not np.isfinite(features).all():
        raise TransferabilityInputError(f"{features_name} contain NaN or infinite values")
    return features.astype(np.float64), *_labels(np.asarray(labels), len(features), labels_name)


def _matrix(array, name):
    array = np.asarray(array)
    if array.ndim != 2 or array.shape[1] == 0 or array.dtype.kind not in "iuf":
        raise TransferabilityInputError(f"{name} must be a 2-d array of numbers (images, dimensions), got "
                                        f"{array.dtype} of shape {array.shape}")
    return array


def _labels(labels, rows, name="labels"):
    """(labels int64, class count): integers 0..K-1, K >= 2, each present."""
    if labels.ndim != 1 or len(labels) != rows:
        raise TransferabilityInputError(f"{name} must be one integer per image: {rows} images but {name} of "
                                        f"shape {labels.shape}")
    if labels.dtype.kind not in "iu":
        raise TransferabilityInputError(f"{name} must be integers 0..K-1, got {labels.dtype}")
    if rows == 0:
        raise TransferabilityInputError("no images given")
    if labels.min() < 0:
        raise TransferabilityInputError(f"{name} must be 0..K-1, found {labels.min()}")
    counts = np.bincount(labels)
    empty = np.flatnonzero(counts == 0)
    if len(empty):
        raise TransferabilityInputError(f"{name} must be 0..K-1 with every class present, but {len(empty)} of "
                                        f"0..{len(counts) - 1} have no image (first: {empty[0]}); number the "
                                        f"classes consecutively")
    if len(counts) < 2:
        raise TransferabilityInputError(f"every image has the same label: a transferability score needs at least "
                                        f"two classes")
    return labels.astype(np.int64), len(counts)


def _probabilities_and_labels(probabilities, labels):
    """(probabilities (N, Z) as given, labels, class count); rows must be
    distributions (non-negative, summing to 1 within 1e-3). Two passes over
    the matrix: NaN and infinity show in the row sums."""
    probabilities = _matrix(probabilities, "probabilities")
    labels, classes = _labels(np.asarray(labels), len(probabilities))
    sums = probabilities.sum(axis=1)  # float32 sums are good to 1e-5, inside the 1e-3 asked
    if not np.isfinite(sums).all():
        raise TransferabilityInputError("probabilities contain NaN or infinite values")
    if probabilities.min() < 0:
        raise TransferabilityInputError(f"probabilities must be non-negative, found {probabilities.min():.4g}: "
                                        f"pass the source classifier's softmax, not its logits")
    worst = int(np.argmax(np.abs(sums - 1)))
    if abs(sums[worst] - 1) > 1e-3:
        raise TransferabilityInputError(f"each row of probabilities must sum to 1, but row {worst} sums to "
                                        f"{sums[worst]:.6g}: pass the source classifier's softmax outputs")
    return probabilities, labels, classes


def _positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise TransferabilityInputError(f"{name} must be an integer of at least 1, got {value!r}")
    return int(value)


def _class_sums(x, labels, classes):
    """Σ of the rows of `x` per class, (classes, D)."""
    from scipy.sparse import csr_matrix

    one_hot = csr_matrix((np.ones(len(labels)), (labels, np.arange(len(labels)))), shape=(classes, len(labels)))
    return np.asarray(one_hot @ x)


def _leep(probabilities, labels, classes):
    joint = _class_sums(probabilities, labels, classes) / len(labels)  # (classes, source classes)
    marginal = joint.sum(axis=0)
    conditional = np.divide(joint, marginal, out=np.zeros_like(joint), where=marginal > 0)
    expected = np.einsum("nz,nz->n", probabilities, conditional[labels])
    return float(np.mean(np.log(expected)))


def _logme_spectrum(x, labels, classes):
    """(σ² (k,), the one-hot targets' coordinates on the k left singular
    vectors (k, classes)) of features `x`, from the eigendecomposition of the
    smaller Gram matrix, keeping singular values above 1e-10 (as thuml's
    truncated SVD)."""
    n, dim = x.shape
    if n > dim:
        eigenvalues, right = np.linalg.eigh(x.T @ x)
    else:
        eigenvalues, left = np.linalg.eigh(x @ x.T)
    order = np.argsort(eigenvalues)[::-1]
    singular = np.sqrt(np.maximum(eigenvalues[order], 0.0))
    kept = order[singular > 1e-10]
    singular = singular[singular > 1e-10]
    if n > dim:  # u = x v / s, so uᵀy = (yᵀ x) v / s: the class sums of x, no (N, D) product
        projections = (_class_sums(x, labels, classes) @ right[:, kept] / singular).T
    else:
        projections = _class_sums(left[:, kept], labels, classes).T
    return singular ** 2, projections


def _between_over_total(centred, labels, classes, total):
    """tr(total⁺ · Σ_c n_c (μ_c − μ)(μ_c − μ)ᵀ) for centred features (μ = 0),
    with numpy.linalg.pinv's cut at 1e-15 of the largest eigenvalue."""
    counts = np.bincount(labels)
    shifts = _class_sums(centred, labels, classes) / np.sqrt(counts)[:, None]  # √n_c · μ_c
    eigenvalues, vectors = np.linalg.eigh(total)
    kept = np.abs(eigenvalues) > 1e-15 * np.abs(eigenvalues).max()
    coordinates = shifts @ vectors[:, kept]
    return float(np.sum(coordinates ** 2 / eigenvalues[kept]))


def _ledoit_wolf_shrinkage(centred, covariance):
    """scikit-learn's `ledoit_wolf_shrinkage` of centred data whose
    covariance (1/N) is given, without its (D, D) product of squares: the sum
    of ⟨X²ᵀ, X²⟩ is Σ_i |x_i|⁴."""
    n, dim = centred.shape
    squared_norms = np.einsum("nd,nd->n", centred, centred)
    trace = squared_norms.sum() / n
    scale = trace / dim
    sum_fourth = np.sum(squared_norms ** 2)
    sum_covariance_squared = np.sum(covariance ** 2)
    beta = (sum_fourth / n - sum_covariance_squared) / (dim * n)
    delta = (sum_covariance_squared - 2.0 * scale * trace + dim * scale ** 2) / dim
    beta = min(beta, delta)
    return 0.0 if beta == 0 else beta / delta


def _coding_rate(z, eps):
    """½ log det(I + zᵀz / (n·eps)), through the smaller Gram matrix
    (det(I + AᵀA) = det(I + AAᵀ))."""
    n, dim = z.shape
    gram = z @ z.T if n < dim else z.T @ z
    gram /= n * eps
    gram.flat[::len(gram) + 1] += 1.0
    return float(np.sum(np.log(np.diag(np.linalg.cholesky(gram)))))


def _principal_components(x, k):
    """`x` centred and projected on its `k` leading principal axes (all
    when k >= min(N, D)), from the smaller Gram matrix's top eigenvectors."""
    from scipy.linalg import eigh

    centred = x - x.mean(axis=0)
    wide = x.shape[0] < x.shape[1]
    gram = centred @ centred.T if wide else centred.T @ centred
    k = min(k, len(gram))
    eigenvalues, vectors = eigh(gram, subset_by_index=[len(gram) - k, len(gram) - 1])
    eigenvalues, vectors = eigenvalues[::-1], vectors[:, ::-1]
    if wide:  # the projections are u·s
        return vectors * np.sqrt(np.maximum(eigenvalues, 0.0))
    return centred @ vectors


def _shrunk_discriminant(x, labels, classes, priors, shrinkage):
    """(class probabilities (N, classes), shrinkage) of SFDA's discriminant
    fitted on `x`; `shrinkage` None picks it as the original does."""
    from scipy.linalg import cho_factor, cho_solve
    from scipy.special import softmax

    dim = x.shape[1]
    means = _class_sums(x, labels, classes) / np.bincount(labels)[:, None]
    within = x - means[labels]
    scatter = within.T @ within / len(x)  # Σ_c prior_c · cov_c (1/n_c)
    if shrinkage is None:
        shrinkage = max(np.exp(-5 * _power_iteration(scatter, 3)), 1e-10)
    shrunk = (1.0 - shrinkage) * scatter
    shrunk.flat[::dim + 1] += shrinkage * np.trace(scatter) / dim
    coefficients = cho_solve(cho_factor(shrunk), means.T).T
    intercepts = -0.5 * np.sum(means * coefficients, axis=1) + np.log(priors)
    return softmax(x @ coefficients.T + intercepts, axis=1), shrinkage


def _power_iteration(matrix, steps):
    """SFDA's estimate of the largest eigenvalue: `steps` double power steps
    from the row sums."""
    x = matrix.sum(axis=1)
    for _ in range(steps):
        y = matrix @ x
        y /= np.linalg.norm(y)
        x = matrix @ y
        x /= np.linalg.norm(x)
    return float(x @ matrix @ y)


def _squared_distances(a, b):
    return np.maximum((a * a).sum(axis=1)[:, None] + (b * b).sum(axis=1)[None, :] - 2.0 * a @ b.T, 0.0)


def _classes_with_two_images(x, labels, what):
    """otdd's min_labelcount=2: classes with one image are left out and the
    others renumbered."""
    counts = np.bincount(labels)
    kept = counts >= 2
    if kept.sum() == 0:
        raise TransferabilityInputError(f"OTDD needs classes of at least 2 images, and no {what} class has two")
    rows = kept[labels]
    return x[rows], (np.cumsum(kept) - 1)[labels[rows]]


def _subsample(x, labels, max_samples, draw):
    if len(x) <= max_samples:
        return x, labels
    rows = np.sort(draw.choice(len(x), max_samples, replace=False))
    return x[rows], labels[rows]


def _exact_label_distances(x1, y1, x2, y2, entreg, within=False):
    """(C1, C2) entropic OT costs OT_ε (not debiased; cost |x − x'|², ε =
    `entreg`) between the images of each class of set 1 and each of set 2,
    as otdd's `pwdist_exact`. `within` (set 2 is set 1): only the pairs a < b
    are solved, the diagonal stays 0, as otdd's. In float32, as otdd (its
    default precision), on features centred first; the distances of a block
    of classes of set 1 to set 2 are one matrix product, and the problems of
    one class of set 1 with every class of set 2 one padded batch."""
    from fgtf.transfer import sinkhorn

    blur = np.sqrt(entreg)
    centre = np.concatenate([x1, x2]).mean(axis=0)
    x1, starts1 = _by_class(x1 - centre, y1)
    x2, starts2 = _by_class(x2 - centre, y2)
    classes2 = len(starts2) - 1
    lows2, highs2 = np.minimum.reduceat(x2, starts2[:-1]), np.maximum.reduceat(x2, starts2[:-1])
    distances = np.zeros((len(starts1) - 1, classes2))
    for block in _class_blocks(starts1, rows=512):
        offset = starts2[block[0] + 1] if within else 0
        if offset == len(x2):
            continue
        squared = _squared_distances(x1[starts1[block[0]]:starts1[block[-1] + 1]], x2[offset:])
        for a in block:
            others = np.arange(a + 1, classes2) if within else np.arange(classes2)
            if not len(others):
                continue
            rows = x1[starts1[a]:starts1[a + 1]]
            columns, padding = _padded([np.arange(starts2[b], starts2[b + 1]) - offset for b in others])
            cost = squared[starts1[a] - starts1[block[0]]:starts1[a + 1] - starts1[block[0]]][:, columns]
            cost = cost.transpose(1, 0, 2)  # (pairs, n_a, most)
            cost[np.broadcast_to(padding[:, None, :], cost.shape)] = 0.0
            row_weights = np.full((len(others), len(rows)), -np.log(len(rows)))
            column_weights = np.where(padding, -np.inf, -np.log(np.diff(starts2)[others])[:, None])
            diameter = sinkhorn.bounding_box_diameter(
                np.minimum(rows.min(axis=0), lows2[others]).astype(np.float64),
                np.maximum(rows.max(axis=0), highs2[others]).astype(np.float64))
            lengths = sinkhorn.schedule_length(diameter, blur)
            for length in np.unique(lengths):
                batch = lengths == length
                eps = sinkhorn.epsilon_schedule(diameter[batch], blur)
                distances[a, others[batch]] = sinkhorn.entropic_ot(cost[batch], row_weights[batch],
                                                                   column_weights[batch], eps)
    if within:
        distances = distances + distances.T
    return distances


def _gaussian_label_distances(x1, y1, x2, y2, entreg, within=False):
    """(C1, C2) squared 2-Wasserstein distances between the classes'
    Gaussians, |μ_a − μ_b|² + tr Σ_a + tr Σ_b − 2 tr (Σ_a^½ Σ_b Σ_a^½)^½
    (covariances with 1/(n − 1)), each part clipped at 0, as otdd's
    `efficient_pwdist_gauss`; `within`: diagonal 0, as otdd's. The cross
    term is the nuclear norm of F_a F_bᵀ for factors FᵀF = Σ (the square
    roots of the eigenvalues of Σ_a Σ_b are its singular values): the same
    number without a D × D matrix square root. `entreg` is unused (the
    distance is closed-form)."""
    means1, factors1 = _gaussian_factors(x1, y1)
    means2, factors2 = _gaussian_factors(x2, y2)
    traces1 = np.array([np.sum(f ** 2) for f in factors1])
    traces2 = np.array([np.sum(f ** 2) for f in factors2])
    stacked2 = np.concatenate(factors2)
    columns, padding = _padded(np.split(np.arange(len(stacked2)), np.cumsum([len(f) for f in factors2])[:-1]))
    distances = np.zeros((len(factors1), len(factors2)))
    for a, factor in enumerate(factors1):
        others = np.arange(a + 1, len(factors2)) if within else np.arange(len(factors2))
        if not len(others):
            continue
        products = (factor @ stacked2.T)[:, columns[others]].transpose(1, 0, 2)
        products[np.broadcast_to(padding[others][:, None, :], products.shape)] = 0.0  # zero columns: same norm
        singular = np.linalg.svd(products, compute_uv=False)
        # otdd's float32 matrix square root drops eigenvalues below max · D · ε_float32; so does fgtf
        # (keeping them lowers the reference distances by 0.3 %).
        singular[singular ** 2 <= (singular ** 2).max(axis=1, keepdims=True) * x1.shape[1] * _FLOAT32_EPS] = 0.0
        nuclear = singular.sum(axis=1)
        bures = np.maximum(traces1[a] + traces2[others] - 2 * nuclear, 0.0)
        distances[a, others] = np.maximum(np.sum((means1[a] - means2[others]) ** 2, axis=1) + bures, 0.0)
    if within:
        distances = distances + distances.T
    return distances


_FLOAT32_EPS = float(np.finfo(np.float32).eps)
LABEL_DISTANCES = {"exact": _exact_label_distances, "gaussian": _gaussian_label_distances}


def _gaussian_factors(x, labels):
    """(class means, per class a factor F with FᵀF = its covariance (1/(n − 1)),
    of at most D rows)."""
    classes = int(labels.max()) + 1
    means, factors = [], []
    for c in range(classes):
        members = x[labels == c]
        means.append(members.mean(axis=0))
        factor = (members - means[-1]) / np.sqrt(len(members) - 1)
        factors.append(np.linalg.qr(factor, mode="r") if len(factor) > x.shape[1] else factor)
    return np.array(means), factors


def _by_class(x, labels):
    """(rows of `x` ordered by class, in float32; where each class starts, and the end)."""
    order = np.argsort(labels, kind="stable")
    return x[order].astype(np.float32), np.concatenate([[0], np.cumsum(np.bincount(labels))])


def _class_blocks(starts, rows):
    """Runs of consecutive classes holding at least `rows` images each (the
    last may hold fewer), from where each class starts."""
    blocks, current = [], []
    for c in range(len(starts) - 1):
        current.append(c)
        if starts[c + 1] - starts[current[0]] >= rows:
            blocks.append(current)
            current = []
    return blocks + ([current] if current else [])


def _padded(groups):
    """(indices (len(groups), longest), padding mask) of index arrays of
    different lengths, padded with the group's first index."""
    longest = max(len(g) for g in groups)
    indices = np.array([np.concatenate([g, np.full(longest - len(g), g[0])]) for g in groups])
    padding = np.arange(longest)[None, :] >= np.array([len(g) for g in groups])[:, None]
    return indices, padding

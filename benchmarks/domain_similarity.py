"""EMD domain similarity: the original formulation vs fgtf, in one run.

Original (DomainSimilarity notebook): one square (S+T)x(S+T) Euclidean matrix
over all class features, zero-padded histograms, and `pyemd.emd` (FastEMD,
C++: `backend='cpp'` in pyemd 1.1). fgtf: the rectangular (S, T) cost and
POT's exact network simplex (`ot.emd2`).

Checks on realistic sizes (a 1,000-class source, the seven FGVC target sizes,
2048-d post-ReLU-like features) that fgtf equals the exact optimum of the
square formulation (POT on the square matrix) to 1e-6 and pyemd's FastEMD to
about 1e-3 (FastEMD quantises masses and costs to integers), then prints the
speed-up and how time grows with the source class count.

    pip install 'pyemd==1.1.*'   # for this benchmark only
    python benchmarks/domain_similarity.py [--dim 2048] [--growth 500,1000,2000,4000]
"""
import argparse
import time

import numpy as np
from sklearn.metrics.pairwise import euclidean_distances

from fgtf.transfer import domain_similarity as ds

TARGET_SIZES = {"cub_200": 200, "flower_102": 102, "stanford_cars": 196, "stanford_dogs": 120,
                "aircraft": 100, "nabirds": 555, "food_101": 101}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dim", type=int, default=2048)
    parser.add_argument("--source_classes", type=int, default=1000)
    parser.add_argument("--growth", default="500,1000,2000,4000", help="source class counts for the scaling table")
    parser.add_argument("--parts", default="targets,growth", help="which tables to run: targets, growth")
    parser.add_argument("--original_growth_limit", type=int, default=1000,
                        help="largest source size the (slow) original is run on in the scaling table")
    args = parser.parse_args()
    import ot
    from pyemd import emd as pyemd_emd

    rng = np.random.default_rng(0)
    parts = args.parts.split(",")
    if "targets" in parts:
        compare_targets(args, rng, ot, pyemd_emd)
    if "growth" in parts:
        scaling(args, rng, pyemd_emd)


def compare_targets(args, rng, ot, pyemd_emd):
    """fgtf vs the original on the seven target sizes: values and times."""
    source = class_domain(rng, args.source_classes, args.dim, (200, 1000))
    print(f"source: {args.source_classes} classes, {args.dim}-d; targets: {TARGET_SIZES}")
    print(f"{'target':<14} {'fgtf EMD':>10} {'rel. err vs exact square':>25} {'rel. err vs pyemd cpp':>22} "
          f"{'fgtf s':>8} {'original s':>11}")
    fgtf_total = original_total = 0.0
    for name, size in TARGET_SIZES.items():
        target = class_domain(rng, size, args.dim, (20, 120), shift=0.2)
        fgtf_value, fgtf_time = timed(ds.emd, *source, *target)
        square, a, b = square_problem(source, target)
        exact_square = ot.emd2(a, b, square, numItermax=100_000_000)
        original_value, original_time = timed(original_emd, pyemd_emd, source, target)
        fgtf_total += fgtf_time
        original_total += original_time
        print(f"{name:<14} {fgtf_value:>10.4f} {abs(fgtf_value - exact_square) / exact_square:>25.2e} "
              f"{abs(fgtf_value - original_value) / original_value:>22.2e} {fgtf_time:>8.3f} {original_time:>11.3f}")
    print(f"total: fgtf {fgtf_total:.3f} s, original {original_total:.3f} s, speed-up {original_total / fgtf_total:.0f}x")


def scaling(args, rng, pyemd_emd):
    """Time of both against the source class count."""
    print("\nscaling with the source class count (target: nabirds, 555 classes)")
    print(f"{'source classes':>14} {'fgtf s':>8} {'original s':>11} {'speed-up':>9}")
    target = class_domain(rng, TARGET_SIZES["nabirds"], args.dim, (20, 120), shift=0.2)
    for count in [int(c) for c in args.growth.split(",")]:
        grown = class_domain(rng, count, args.dim, (200, 1000))
        _, fgtf_time = timed(ds.emd, *grown, *target)
        if count <= args.original_growth_limit:
            _, original_time = timed(original_emd, pyemd_emd, grown, target)
            print(f"{count:>14} {fgtf_time:>8.3f} {original_time:>11.3f} {original_time / fgtf_time:>8.0f}x")
        else:
            print(f"{count:>14} {fgtf_time:>8.3f} {'(skipped)':>11}")


def class_domain(rng, classes, dim, count_range, shift=0.0):
    """Per-class mean features of post-ReLU magnitudes (mostly 0-2, some zeros)
    and image counts."""
    base = np.maximum(rng.normal(0.3 + shift, 0.5, (1, dim)), 0)
    feats = np.maximum(base + rng.normal(0, 0.35, (classes, dim)), 0)
    return feats, rng.integers(*count_range, size=classes)


def square_problem(source, target):
    """The original's (S+T)x(S+T) cost and zero-padded weights."""
    (s_feats, s_counts), (t_feats, t_counts) = source, target
    keep = s_counts >= 200
    s_feats, s_counts = s_feats[keep], s_counts[keep]
    both = np.concatenate([s_feats, t_feats])
    square = euclidean_distances(both, both)
    a = np.concatenate([s_counts / s_counts.sum(), np.zeros(len(t_feats))])
    b = np.concatenate([np.zeros(len(s_feats)), t_counts / t_counts.sum()])
    return square, a, b


def original_emd(pyemd_emd, source, target):
    square, a, b = square_problem(source, target)
    return pyemd_emd(a, b, square, backend="cpp")


def timed(function, *args):
    start = time.perf_counter()
    value = function(*args)
    return value, time.perf_counter() - start


if __name__ == "__main__":
    main()

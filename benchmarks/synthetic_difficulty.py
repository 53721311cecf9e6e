"""How hard is the synthetic default? Shortcut classifiers against chance.

Generates the default dataset (20 classes, 30 + 30 images per class, 160 px,
seed 0) of each family into a temporary folder, then trains a logistic
regression on (a) 8x8 grayscale thumbnails and (b) a global RGB colour
histogram, and prints their validation accuracy and its ratio to chance
(1 / classes). Both should stay near chance: the classes differ only in small
local parts, never in global colour or layout. As a control, (c) the same
regression on position-pooled random local filters ('local', see
`fgtf.datasets.synthetic.probe_accuracy`) should beat them: the class is in
the local detail.

    .venv/bin/python benchmarks/synthetic_difficulty.py [--families birds planes] [--workers N]
"""
import argparse
import os
import tempfile
import time

from fgtf.datasets import synthetic


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--families", nargs="+", default=list(synthetic.FAMILIES), choices=synthetic.FAMILIES)
    parser.add_argument("--workers", type=int, default=None, help="drawing processes (default: one per CPU)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as root:
        print(f"{'family':<8} {'features':<10} {'accuracy':>9} {'chance':>7} {'ratio':>6}")
        for family in args.families:
            out = os.path.join(root, family)
            start = time.perf_counter()
            metadata = synthetic.generate(out, family=family, workers=args.workers)
            seconds = time.perf_counter() - start
            chance = 1.0 / metadata["arguments"]["classes"]
            for features in ("thumbnail", "histogram", "local"):
                accuracy = synthetic.probe_accuracy(out, features)
                print(f"{family:<8} {features:<10} {accuracy:>9.3f} {chance:>7.3f} {accuracy / chance:>6.2f}")
            images = sum(metadata["num_images"].values())
            print(f"{family:<8} generated {images} images in {seconds:.1f} s "
                  f"({images / seconds:.0f} images/s, {os.cpu_count()} CPUs)")


if __name__ == "__main__":
    main()

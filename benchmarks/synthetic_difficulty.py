"""How hard is the synthetic world? Shortcut classifiers against chance.

Generates the transfer world (`fgtf.datasets.synthetic.generate_world`, 64 px,
seed 0; reused when `--world` already holds it), then on each target (20
classes, 30 + 30 images per class, one per family) trains a logistic
regression on (a) 8x8 grayscale thumbnails and (b) a global RGB colour
histogram, and prints their validation accuracy and its ratio to chance
(1 / classes). Both should stay near chance (the issue asks within 2x): the
classes differ only in local parts, never in global colour or layout. As a
control, (c) the same regression on position-pooled random local filters
('local', see `probe_accuracy`) should beat them: the class is in the local
detail. `--sheet PNG` also writes a picture sheet of the targets: a row per
family, a few classes side by side, a few validation images of each
(docs/world_families.png, shown in docs/world.md).

    .venv/bin/python benchmarks/synthetic_difficulty.py [--world data/world] [--seed 0] [--num_workers N] \\
        [--sheet docs/world_families.png]
"""
import argparse
import os
import time

import numpy as np
from PIL import Image
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from fgtf.datasets import read_split, synthetic


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--world", default="data/world", help="world folder (generated when missing)")
    parser.add_argument("--seed", type=int, default=0, help="world seed")
    parser.add_argument("--families", nargs="+", default=list(synthetic.FAMILIES), choices=synthetic.FAMILIES,
                        help="targets to measure")
    parser.add_argument("--num_workers", "--workers", type=int, default=None, help="drawing processes (default: one per CPU)")
    parser.add_argument("--sheet", default=None, help="also write a picture sheet of the targets to this PNG")
    args = parser.parse_args()
    start = time.perf_counter()
    world = synthetic.generate_world(args.world, seed=args.seed, num_workers=args.num_workers)
    print(f"world {args.world} (seed {args.seed}, {world['arguments']['image_size']} px) ready in "
          f"{time.perf_counter() - start:.0f} s")
    if args.sheet:
        folders = [os.path.join(args.world, target["dataset_dir"]) for target in world["targets"]]
        picture_sheet(folders).save(args.sheet, optimize=True)
        print(f"wrote {args.sheet}")
    print(f"{'target':<12} {'features':<10} {'accuracy':>9} {'chance':>7} {'ratio':>6}")
    for target in world["targets"]:
        if target["family"] not in args.families:
            continue
        chance = 1.0 / target["classes"]
        for features in ("thumbnail", "histogram", "local"):
            accuracy = probe_accuracy(os.path.join(args.world, target["dataset_dir"]), features)
            print(f"{target['name']:<12} {features:<10} {accuracy:>9.3f} {chance:>7.3f} {accuracy / chance:>6.2f}",
                  flush=True)


def probe_accuracy(dataset_dir, features):
    """Validation accuracy of a logistic regression trained on the training
    split of the dataset in `dataset_dir` on one kind of fixed `features`:

    - 'thumbnail': 8x8 grayscale image (64 values), the coarse layout;
    - 'histogram': global RGB colour histogram, 4 bins per channel (64 values);
    - 'local': 256 fixed random 7x7 colour filters over the image at 96 px,
      rectified, max- and mean-pooled over positions (512 values): local
      detail wherever it is, the kind of evidence the classes differ in.

    Near chance for the first two means global colour and layout do not give
    the class away; the third beating them shows the local parts do carry it.
    """
    describe = {"thumbnail": _thumbnail, "histogram": _colour_histogram, "local": _local_responses}[features]
    splits = {}
    for split in ("train", "validation"):
        records = read_split("synthetic", dataset_dir, split)
        splits[split] = (np.stack([describe(Image.open(r.path)) for r in records]),
                         np.array([r.label for r in records]))
    # the 512 local responses overfit 600 images without a stronger penalty
    classifier = make_pipeline(StandardScaler(),
                               LogisticRegression(C=0.1 if features == "local" else 1.0, max_iter=3000))
    classifier.fit(*splits["train"])
    return float(classifier.score(*splits["validation"]))


def _thumbnail(image):
    return np.asarray(image.convert("L").resize((8, 8), Image.BOX), np.float32).ravel() / 255


def _colour_histogram(image):
    bins = np.asarray(image.convert("RGB"), np.int64) // 64
    counts = np.bincount((bins[..., 0] * 16 + bins[..., 1] * 4 + bins[..., 2]).ravel(), minlength=64)
    return counts / counts.sum()


def _local_responses(image, size=96, kernel=7, filters=256):
    pixels = np.asarray(image.convert("RGB").resize((size, size), Image.BILINEAR), np.float32) / 255
    pixels -= pixels.mean(axis=(0, 1))
    windows = np.lib.stride_tricks.sliding_window_view(pixels, (kernel, kernel), axis=(0, 1))[::2, ::2]
    windows = windows.reshape(-1, kernel * kernel * 3)
    bank = np.random.default_rng(0).standard_normal((kernel * kernel * 3, filters)).astype(np.float32)
    responses = np.maximum(windows @ bank, 0.0)
    return np.concatenate([responses.max(axis=0), responses.mean(axis=0)])


def picture_sheet(folders, classes=4, images=3, zoom=2):
    """One row per dataset folder: `images` validation images of each of its
    first `classes` classes, side by side, enlarged `zoom` times (PIL image)."""
    rows = []
    for folder in folders:
        records = read_split("synthetic", folder, "validation")
        tiles = [np.asarray(Image.open(r.path).convert("RGB")) for label in range(classes)
                 for r in [r for r in records if r.label == label][:images]]
        rows.append(np.concatenate(tiles, axis=1))
    sheet = Image.fromarray(np.concatenate(rows, axis=0))
    return sheet.resize((sheet.width * zoom, sheet.height * zoom), Image.NEAREST)


if __name__ == "__main__":
    main()

"""Reference outputs of the PyTorch seeds' input pipelines (torchvision + PIL)
for fgtf's `--preprocessing` pipelines.

Run in a side environment with torch (never an fgtf dependency), from this folder
(the transforms themselves, as each seed composes them, are seed_transforms.py):

    /work/sidevenvs/torch/bin/python make_pipeline_reference.py [--full DIR]

(the environment of make_resnet_reference.py; Pillow 13.0). Writes next to itself:
* `portrait.jpg` (333x500), `landscape.jpg` (517x389), `small.jpg` (150x97,
  smaller than every crop): drawn from a seeded numpy generator, saved by
  PIL (quality 90, 4:2:0);
* `pipelines.npz`, all 8-bit images as PIL gives them before ToTensor
  (normalising is exact arithmetic on them), stored at the flat positions
  `index_<S>` (4096 positions of an S x S x 3 array, drawn with seed 0):
  - `test_<pipeline>_<image>`: the seed's test transform;
  - `views_sam_<image>`: SAM's ten test views (10, ...), at `index_224`;
  - `train_<pipeline>_<image>` and the draws that made it
    (`draws_<pipeline>_<image>_<name>`), each drawn by torchvision's own
    `get_params` from torch seed 23 (crop boxes, angles, brightness) or a
    numpy generator (SAM's RandAugment choices, as its code draws them);
  - `op_<name>_<v>_<sign>`: each of SAM's 14 RandAugment operations on
    `op_input` (a 44x56 crop of landscape.jpg) at magnitudes 1, 5 and 9, both
    directions where it has one, whole images.

--full DIR also writes each whole 8-bit output as DIR/<key>.npy, to measure
the differences over every pixel rather than the stored positions.
"""
import argparse
import os
import random
import sys

import numpy as np
import PIL
import torch
import torchvision
from PIL import Image, ImageDraw

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from seed_transforms import DIRECTED, DRAWS, OPERATIONS, TESTS, TRAINS, apply_operation, sam_views  # noqa: E402
IMAGES = {"portrait": (333, 500), "landscape": (517, 389), "small": (150, 97)}  # (width, height)
SAMPLES = 4096
# pipeline -> its output side
SIDES = {"sef": 448, "sef_squash": 448, "sam": 224, "cle": 448, "simtrans": 224}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--full", help="also write every whole output here as .npy")
    args = parser.parse_args()
    out = {"index_224": _index(224), "index_448": _index(448)}
    images = {name: _write_jpeg(name, size, seed) for seed, (name, size) in enumerate(IMAGES.items())}
    full = {}
    torch.manual_seed(23)
    draws_rng = np.random.default_rng(23)
    for name, image in images.items():
        for pipeline, side in SIDES.items():
            full[f"test_{pipeline}_{name}"] = np.asarray(TESTS[pipeline](image))
            draws = DRAWS[pipeline](image, draws_rng)
            full[f"train_{pipeline}_{name}"] = np.asarray(TRAINS[pipeline](image, draws))
            for key, value in draws.items():
                out[f"draws_{pipeline}_{name}_{key}"] = np.asarray(value)
        full[f"views_sam_{name}"] = np.stack([np.asarray(view) for view in sam_views(image)])
    for key, value in full.items():
        side = value.shape[-2]
        flat = value.reshape(-1, side * side * 3) if value.ndim == 4 else value.reshape(-1)
        out[key] = flat[..., out[f"index_{side}"]]
    op_input = images["landscape"].crop((200, 150, 256, 194))
    out["op_input"] = np.asarray(op_input)
    for op in OPERATIONS:
        for v in (1, 5, 9):
            for sign in ((1, -1) if op in DIRECTED else (1,)):
                out[f"op_{op}_{v}_{sign}"] = np.asarray(apply_operation(op_input, op, v, sign))
    np.savez_compressed(os.path.join(HERE, "pipelines.npz"), **out)
    if args.full:
        os.makedirs(args.full, exist_ok=True)
        for key, value in full.items():
            np.save(os.path.join(args.full, f"{key}.npy"), value)
    print(f"wrote {len(out)} arrays")


def _index(side):
    return np.random.default_rng(0).choice(side * side * 3, SAMPLES, replace=False).astype(np.int32)


def _write_jpeg(name, size, seed):
    """A textured test picture: a colour gradient, soft blobs and hard-edged shapes."""
    width, height = size
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width] / max(size)
    picture = np.stack([128 + 100 * np.sin(2 * np.pi * (f * x + g * y) + p) for f, g, p in
                        rng.uniform(0.3, 3.0, (3, 3))], axis=-1)
    for _ in range(12):
        cx, cy, r = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.03, 0.2)
        blob = np.exp(-((x - cx * width / max(size)) ** 2 + (y - cy * height / max(size)) ** 2) / r ** 2)
        picture += blob[..., None] * rng.uniform(-80, 80, 3)
    image = Image.fromarray(np.clip(picture, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(25):
        x0, y0 = rng.uniform(0, width), rng.uniform(0, height)
        box = [x0, y0, x0 + rng.uniform(5, width / 4), y0 + rng.uniform(5, height / 4)]
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        (draw.ellipse if rng.uniform() < 0.5 else draw.rectangle)(box, fill=colour)
        draw.line([tuple(rng.uniform(0, width, 2)), tuple(rng.uniform(0, height, 2))], fill=colour, width=2)
    path = os.path.join(HERE, f"{name}.jpg")
    image.save(path, quality=90)
    return Image.open(path).convert("RGB")


if __name__ == "__main__":
    print(f"torch {torch.__version__}, torchvision {torchvision.__version__}, Pillow {PIL.__version__}")
    random.seed(23)
    main()

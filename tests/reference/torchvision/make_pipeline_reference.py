"""Reference outputs of the PyTorch seeds' input pipelines (torchvision + PIL)
for fgtf's `--preprocessing` pipelines.

Run in a side environment with torch (never an fgtf dependency), from this folder:

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

import numpy as np
import PIL
import torch
import torchvision
import torchvision.transforms.functional as F
from PIL import Image, ImageDraw, ImageEnhance, ImageOps
from torchvision import transforms
from torchvision.transforms import InterpolationMode

HERE = os.path.dirname(os.path.abspath(__file__))
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


# --- each seed's transforms, as its code composes torchvision's ---------------------------------------------

def squash(image, side):
    """SAM's ResizeImage: PIL's resize without a filter (bicubic in Pillow >= 7)."""
    return image.resize((side, side))


TESTS = {
    "sef": transforms.Compose([transforms.Resize((600, 600)), transforms.CenterCrop(448)]),
    "sef_squash": transforms.Resize((448, 448)),
    "sam": lambda image: squash(image, 256).crop((15.5, 15.5, 15.5 + 224, 15.5 + 224)),
    "cle": transforms.Compose([transforms.Resize(512, interpolation=InterpolationMode.BICUBIC),
                               transforms.CenterCrop(448)]),
    "simtrans": transforms.Compose([transforms.Resize(255), transforms.CenterCrop(224)]),
}


def sam_views(image):
    """SAM's TransformTest: flipped views 0-4, then unflipped 5-9, crops at (x, y) as PlaceCrop takes them."""
    first, last = 0, 256 - 224 - 1
    centre = (256 - 224 - 1) / 2
    corners = ((first, first), (last, last), (last, first), (first, last), (centre, centre))
    resized = squash(image, 256)
    return [source.crop((x, y, x + 224, y + 224))
            for source in (resized.transpose(Image.FLIP_LEFT_RIGHT), resized) for x, y in corners]


def _flip_draw():
    return bool(torch.rand(1) < 0.5)


DRAWS = {
    "sef": lambda image, rng: {"corner": transforms.RandomCrop.get_params(
        image.resize((600, 600), Image.BILINEAR), (448, 448))[:2], "flip": _flip_draw()},
    "sef_squash": lambda image, rng: {"flip": _flip_draw()},
    "sam": lambda image, rng: {"box": transforms.RandomResizedCrop.get_params(squash(image, 256), (0.08, 1.0),
                                                                              (3 / 4, 4 / 3)),
                               "flip": _flip_draw(), **_rand_augment_draws(rng)},
    "cle": lambda image, rng: {"box": transforms.RandomResizedCrop.get_params(image, (0.67, 1.0), (3 / 4, 4 / 3)),
                               "brightness": float(torch.empty(1).uniform_(0.7, 1.3)),
                               "angle": transforms.RandomRotation.get_params((-15.0, 15.0)), "flip": _flip_draw()},
    "simtrans": lambda image, rng: _simtrans_draws(image),
}


def _simtrans_draws(image):
    angle = transforms.RandomRotation.get_params((-30.0, 30.0))
    rotated = F.rotate(image, angle, InterpolationMode.NEAREST, fill=0)
    return {"angle": angle, "box": transforms.RandomResizedCrop.get_params(rotated, (0.5, 1.0), (3 / 4, 4 / 3)),
            "flip": _flip_draw()}


def _rand_augment_draws(rng):
    """RandAugmentMC(2, 10)'s choices as SAM's code draws them (ops with
    replacement, v in 1..9, applied with p 1/2, a direction, the cutout centre)."""
    return {"ops": rng.integers(0, len(OPERATIONS), 2), "magnitudes": rng.integers(1, 10, 2),
            "applied": rng.uniform(size=2) < 0.5, "signs": np.where(rng.uniform(size=2) < 0.5, -1, 1),
            "cutout": rng.uniform(size=2)}


def _maybe_flip(image, flipped):
    return F.hflip(image) if flipped else image


TRAINS = {
    "sef": lambda image, d: _maybe_flip(F.crop(F.resize(image, [600, 600]), *d["corner"], 448, 448), d["flip"]),
    "sef_squash": lambda image, d: _maybe_flip(F.resize(image, [448, 448]), d["flip"]),
    "sam": lambda image, d: _rand_augment(_maybe_flip(F.resized_crop(squash(image, 256), *d["box"], [224, 224]),
                                                      d["flip"]), d),
    "cle": lambda image, d: _maybe_flip(F.rotate(F.adjust_brightness(F.resized_crop(image, *d["box"], [448, 448]),
                                                                     d["brightness"]),
                                                 d["angle"], InterpolationMode.NEAREST, fill=0), d["flip"]),
    "simtrans": lambda image, d: _maybe_flip(F.resized_crop(F.rotate(image, d["angle"], InterpolationMode.NEAREST,
                                                                     fill=0), *d["box"], [224, 224]), d["flip"]),
}


# --- SAM's RandAugmentMC pool: PIL calls with FixMatch's magnitudes (PARAMETER_MAX 10) -----------------------

OPERATIONS = ("AutoContrast", "Brightness", "Color", "Contrast", "Equalize", "Identity", "Posterize", "Rotate",
              "Sharpness", "ShearX", "ShearY", "Solarize", "TranslateX", "TranslateY")
DIRECTED = ("Rotate", "ShearX", "ShearY", "TranslateX", "TranslateY")


def apply_operation(image, op, v, sign):
    factor = v * 0.9 / 10 + 0.05
    if op == "AutoContrast":
        return ImageOps.autocontrast(image)
    if op in ("Brightness", "Color", "Contrast", "Sharpness"):
        return getattr(ImageEnhance, op)(image).enhance(factor)
    if op == "Equalize":
        return ImageOps.equalize(image)
    if op == "Identity":
        return image
    if op == "Posterize":
        return ImageOps.posterize(image, int(v * 4 / 10) + 4)
    if op == "Rotate":
        return image.rotate(sign * int(v * 30 / 10))
    if op == "ShearX":
        return image.transform(image.size, Image.AFFINE, (1, sign * v * 0.3 / 10, 0, 0, 1, 0))
    if op == "ShearY":
        return image.transform(image.size, Image.AFFINE, (1, 0, 0, sign * v * 0.3 / 10, 1, 0))
    if op == "Solarize":
        return ImageOps.solarize(image, 256 - int(v * 256 / 10))
    shift = sign * v * 0.3 / 10
    if op == "TranslateX":
        return image.transform(image.size, Image.AFFINE, (1, 0, int(shift * image.size[0]), 0, 1, 0))
    assert op == "TranslateY"
    return image.transform(image.size, Image.AFFINE, (1, 0, 0, 0, 1, int(shift * image.size[1])))


def _rand_augment(image, draws):
    for op, v, applied, sign in zip(draws["ops"], draws["magnitudes"], draws["applied"], draws["signs"]):
        if applied:
            image = apply_operation(image, OPERATIONS[op], int(v), int(sign))
    width, height = image.size
    x0 = int(max(0, draws["cutout"][0] * width - 16 / 2.0))
    y0 = int(max(0, draws["cutout"][1] * height - 16 / 2.0))
    image = image.copy()
    ImageDraw.Draw(image).rectangle((x0, y0, int(min(width, x0 + 16)), int(min(height, y0 + 16))), (127, 127, 127))
    return image


if __name__ == "__main__":
    print(f"torch {torch.__version__}, torchvision {torchvision.__version__}, Pillow {PIL.__version__}")
    random.seed(23)
    main()

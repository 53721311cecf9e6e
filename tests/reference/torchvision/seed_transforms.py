"""The PyTorch seeds' image transforms as their code composes torchvision's
(Pillow images in, Pillow images out, before ToTensor / Normalize), for the
side environment with torch: make_pipeline_reference.py's references and
benchmarks/seed_pipelines.py's torchvision side.

* `TESTS[name](image)`: each seed's test transform; `sam_views(image)` SAM's ten;
* `TRAINS[name](image, draws)`: each train transform with its random draws
  given, `DRAWS[name](image, rng)` drawing them as torchvision does;
* `RANDOM_TRAINS[name]`: each train transform as the seed runs it, drawing
  inside (torchvision's random transforms, SAM's RandAugmentMC);
* `apply_operation` / `OPERATIONS`: SAM's RandAugment pool, Pillow calls
  with FixMatch's magnitudes.
"""
import random

import numpy as np
import torch
import torchvision.transforms.functional as F
from PIL import Image, ImageDraw, ImageEnhance, ImageOps
from torchvision import transforms
from torchvision.transforms import InterpolationMode

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


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


class RandAugmentMC:
    """SAM's RandAugmentMC(n=2, m=10) drawing as its code does (Python's and numpy's global generators)."""

    def __call__(self, image):
        draws = {"ops": [random.randrange(len(OPERATIONS)) for _ in range(2)],
                 "magnitudes": [int(np.random.randint(1, 10)) for _ in range(2)],
                 "applied": [random.random() < 0.5 for _ in range(2)],
                 "signs": [-1 if random.random() < 0.5 else 1 for _ in range(2)],
                 "cutout": [np.random.uniform(), np.random.uniform()]}
        return _rand_augment(image, draws)


RANDOM_TRAINS = {
    "sef": transforms.Compose([transforms.Resize((600, 600)), transforms.RandomCrop(448),
                               transforms.RandomHorizontalFlip()]),
    "sef_squash": transforms.Compose([transforms.Resize((448, 448)), transforms.RandomHorizontalFlip()]),
    "sam": transforms.Compose([lambda image: squash(image, 256), transforms.RandomResizedCrop(224),
                               transforms.RandomHorizontalFlip(), RandAugmentMC()]),
    "cle": transforms.Compose([transforms.RandomResizedCrop(448, scale=(0.67, 1.0)), transforms.ColorJitter(0.3),
                               transforms.RandomRotation(15), transforms.RandomHorizontalFlip()]),
    "simtrans": transforms.Compose([transforms.RandomRotation(30), transforms.RandomResizedCrop(224, scale=(0.5, 1.0)),
                                    transforms.RandomHorizontalFlip()]),
}
# ToTensor and Normalize, which every seed ends with
TO_TENSOR = transforms.Compose([transforms.ToTensor(), transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)])

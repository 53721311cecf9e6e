"""The embedded default: a procedurally generated fine-grained dataset.

    python -m fgtf.datasets.synthetic --out data/synthetic --classes 20 \\
        --train_per_class 30 --val_per_class 30 --image_size 160 --seed 0 \\
        [--family birds|planes] [--label_noise 0.4 --novel_classes 5] [--workers N]

Every class of a family shares one object shape (a bird seen from the side:
body, head, wing, tail, beak, legs; or an aircraft seen from above: fuselage,
wings, tailplane, fin, engines) and differs only in small local parts. A class
is a combination of five local attributes (birds: wing-bar colour, beak shape,
breast pattern, head pattern, tail shape; planes: engine count, wingtip colour,
wing insignia, nose shape, canopy), drawn so that every attribute value is
shared by many classes: no single part decides the class. Pose (rotation,
flip), scale, position, body colour, background clutter, lighting (brightness,
contrast, colour cast, a light gradient), pixel noise and JPEG quality are
drawn per image, so colour histograms and thumbnails carry almost no class
information (benchmarks/synthetic_difficulty.py measures it).

Written into `--out` (all paths relative to it):

    images/<class name>/<split>_<n>.jpg    the JPEGs (split is train or val)
    train.txt, val.txt                     seed-style lists `relative/path.jpg: <label>`
    classes.txt                            class names in label order
    train_clean_labels.txt                 train.txt with every image's true label
    synthetic.json                         the arguments, the attributes of every
                                           class, the novel classes; written last,
                                           so its presence marks a complete dataset

Web-like label noise (`--label_noise p --novel_classes N`): the last N classes
are "novel". For each of them round(p * train_per_class) of its training
images show another class (80 % of them one of the classes most similar to it,
i.e. sharing the most attributes; the rest any other class) but are listed,
and stored in the folder of, the novel class, as images found by a web search
for it would be. `train_clean_labels.txt` gives their true labels (an image is
mislabelled when its two labels differ); validation stays clean. Every other
image is byte-identical to the one the same seed writes without noise.

Each image is drawn from its own seed (derived from `--seed`, the family, the
split, its listed class and its index), so the output is byte-identical for a
seed whatever `--workers` is. The dataset is built in `<out>.partial` and
renamed into place when complete; rerunning with the same arguments into a
complete folder returns at once, other arguments replace it.
"""
import argparse
import colorsys
import functools
import io
import json
import math
import multiprocessing
import os
import shutil
import time
from collections import Counter

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from tfrecord_tools.cli import UserError, cli_main

FAMILIES = ("birds", "planes")
METADATA_FILE = "synthetic.json"
CLEAN_LABELS_FILE = "train_clean_labels.txt"
FORMAT_VERSION = 1

# Attributes of each family: (attribute, its values). Value names are unique
# within a family so that a class name (values joined) reads unambiguously.
ATTRIBUTES = {
    "birds": (
        ("wing_bar", ("red_bar", "yellow_bar", "white_bar", "blue_bar")),
        ("beak", ("short_beak", "long_beak", "hooked_beak", "thick_beak")),
        ("breast", ("plain_breast", "spotted_breast", "streaked_breast", "bib")),
        ("head", ("plain_head", "capped", "eyestriped", "cheek_patch")),
        ("tail", ("forked_tail", "round_tail", "pointed_tail", "square_tail")),
    ),
    "planes": (
        ("engines", ("no_engines", "two_engines", "four_engines")),
        ("wingtips", ("red_tips", "yellow_tips", "blue_tips", "green_tips")),
        ("insignia", ("no_insignia", "roundel", "triangle", "cross")),
        ("nose", ("pointed_nose", "round_nose", "blunt_nose", "probe_nose")),
        ("canopy", ("bubble_canopy", "long_canopy", "twin_canopy", "no_canopy")),
    ),
}

# Fraction of a novel class's mislabelled images taken from its most similar classes.
_SIMILAR_NOISE_FRACTION = 0.8
# Drawing happens at this multiple of the image size, then a box filter
# downsamples: cheap antialiasing for PIL's aliased polygons.
_SUPERSAMPLE = 2
_SPLIT_INDEX = {"train": 0, "val": 1}


def generate(out_dir, classes=20, train_per_class=30, val_per_class=30, image_size=160,
             seed=0, family="birds", label_noise=0.0, novel_classes=0, workers=None):
    """Write the dataset into `out_dir` (see the module docstring) and return its
    metadata (the dict stored in `synthetic.json`).

    `workers` processes draw the images (None: one per CPU; 1: in this process).
    Returns at once when `out_dir` already holds a complete dataset made with the
    same arguments; replaces a synthetic dataset made with other arguments;
    refuses (UserError) to touch a non-empty folder that is not one.
    """
    arguments = _check_arguments(classes=classes, train_per_class=train_per_class,
                                 val_per_class=val_per_class, image_size=image_size, seed=seed,
                                 family=family, label_noise=label_noise, novel_classes=novel_classes)
    out_dir = os.path.abspath(out_dir)
    existing = _existing_metadata(out_dir)
    if existing is not None and existing["arguments"] == arguments and _files_present(out_dir):
        return existing

    definitions = class_definitions(family, classes, seed)
    names = [class_name(family, label, values) for label, values in enumerate(definitions)]
    train, clean, val = _plan_images(arguments, definitions, names)

    partial = out_dir + ".partial"
    _remove(partial)
    try:
        os.makedirs(partial)
        for name in names:
            os.makedirs(os.path.join(partial, "images", name))
    except OSError as error:
        raise UserError(f"cannot write the dataset next to {out_dir}: {error.strerror}") from error
    jobs = [(os.path.join(partial, path), family, definitions[true_label], image_seed, image_size)
            for path, true_label, image_seed in clean + val]
    metadata = _metadata(arguments, definitions, names, train, clean)
    try:
        _run_jobs(jobs, workers)
        _write_lines(os.path.join(partial, "train.txt"), [f"{path}: {label}" for path, label, _ in train])
        _write_lines(os.path.join(partial, "val.txt"), [f"{path}: {label}" for path, label, _ in val])
        _write_lines(os.path.join(partial, CLEAN_LABELS_FILE), [f"{path}: {label}" for path, label, _ in clean])
        _write_lines(os.path.join(partial, "classes.txt"), names)
        _write_lines(os.path.join(partial, METADATA_FILE), [json.dumps(metadata, indent=1)])
        _swap_into_place(partial, out_dir)
    except BaseException:  # interrupted or failed: leave no half-written folder behind
        _remove(partial)
        raise
    return metadata


def class_definitions(family, num_classes, seed):
    """The classes of `family`: a list of `num_classes` distinct tuples of value
    indices, one per attribute of `ATTRIBUTES[family]`.

    Each attribute's values are spread evenly over the classes (counts differ by
    at most one), so with at least twice as many classes as values every value
    is shared by several classes and only a combination identifies a class.
    """
    sizes = [len(values) for _, values in ATTRIBUTES[family]]
    rng = np.random.default_rng(np.random.SeedSequence([seed, FAMILIES.index(family), 1]))
    columns = np.stack([rng.permutation(np.arange(num_classes) % size) for size in sizes], axis=1)
    rows = [tuple(int(v) for v in row) for row in columns]
    counts = Counter(rows)
    # Swapping one attribute between two classes keeps every value count, so
    # duplicates are broken up by swaps that leave both classes unique.
    for i in range(num_classes):
        while counts[rows[i]] > 1:
            attribute, j = int(rng.integers(len(sizes))), int(rng.integers(num_classes))
            new_i = rows[i][:attribute] + rows[j][attribute:attribute + 1] + rows[i][attribute + 1:]
            new_j = rows[j][:attribute] + rows[i][attribute:attribute + 1] + rows[j][attribute + 1:]
            counts[rows[i]] -= 1
            counts[rows[j]] -= 1
            if new_i != new_j and counts[new_i] == 0 and counts[new_j] == 0:
                rows[i], rows[j] = new_i, new_j
            counts[rows[i]] += 1
            counts[rows[j]] += 1
    return rows


def max_classes(family):
    """The most classes `family` offers: half of all attribute combinations, so
    that classes stay spread over the combinations (and are quick to draw)."""
    return math.prod(len(values) for _, values in ATTRIBUTES[family]) // 2


def class_name(family, label, values):
    """`(family, 3, (0, 2, 1, 1, 0))` -> `'003.red_bar-hooked_beak-spotted_breast-capped-forked_tail'`."""
    parts = [ATTRIBUTES[family][a][1][v] for a, v in enumerate(values)]
    return f"{label:03d}." + "-".join(parts)


def render_image(family, values, image_seed, image_size=160):
    """Draw one `image_size` x `image_size` RGB image (PIL) of the class with
    attribute value indices `values`; `image_seed` (an int or a tuple of ints)
    fixes everything else (pose, colours, background, lighting, noise)."""
    rng = np.random.default_rng(np.random.SeedSequence(image_seed))
    canvas_size = image_size * _SUPERSAMPLE
    draw_scene = _draw_bird_scene if family == "birds" else _draw_plane_scene
    parts = {attribute: names[v] for (attribute, names), v in zip(ATTRIBUTES[family], values)}
    canvas = draw_scene(rng, parts, canvas_size)
    image = canvas.resize((image_size, image_size), Image.BOX)
    return _apply_lighting(rng, image)


def read_clean_labels(dataset_dir):
    """{absolute image path: true label} for the training images of a synthetic
    dataset (compare with the listed labels of `read_split(..., 'train')` to
    find the mislabelled ones)."""
    path = os.path.join(dataset_dir, CLEAN_LABELS_FILE)
    if not os.path.isfile(path):
        raise UserError(f"{path} is missing; is {dataset_dir} a synthetic dataset?")
    root = os.path.abspath(dataset_dir)
    labels = {}
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            relative, _, label = line.rstrip("\n").rpartition(": ")
            labels[os.path.join(root, relative)] = int(label)
    return labels


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
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from fgtf.datasets.registry import read_split

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


@cli_main
def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m fgtf.datasets.synthetic",
        description="Generate the synthetic fine-grained dataset (JPEGs + seed-style train.txt/val.txt/"
                    "classes.txt). Classes share one object shape and differ only in combinations of "
                    "small local parts; pose, scale, background, lighting and JPEG quality vary per image. "
                    "Byte-identical for a seed.")
    parser.add_argument("--out", default="data/synthetic", help="output folder (default: %(default)s)")
    parser.add_argument("--classes", type=int, default=20, help="number of classes (default: %(default)s)")
    parser.add_argument("--train_per_class", type=int, default=30,
                        help="training images per class (default: %(default)s)")
    parser.add_argument("--val_per_class", type=int, default=30,
                        help="validation images per class (default: %(default)s)")
    parser.add_argument("--image_size", type=int, default=160, help="image side in pixels (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    parser.add_argument("--family", default="birds", choices=FAMILIES,
                        help="object family: birds (side view) or planes (top view) (default: %(default)s)")
    parser.add_argument("--label_noise", type=float, default=0.0,
                        help="fraction of each novel class's training images that show another class "
                             "(web-like noise; default: %(default)s)")
    parser.add_argument("--novel_classes", type=int, default=0,
                        help="the last N classes are novel: they get the label noise (default: %(default)s)")
    parser.add_argument("--workers", type=int, default=None,
                        help="drawing processes (default: one per CPU; 1 draws in this process)")
    args = parser.parse_args(argv)
    if args.workers is not None and args.workers < 1:
        raise UserError(f"--workers must be at least 1, got {args.workers}")
    start = time.perf_counter()
    metadata = generate(args.out, classes=args.classes, train_per_class=args.train_per_class,
                        val_per_class=args.val_per_class, image_size=args.image_size, seed=args.seed,
                        family=args.family, label_noise=args.label_noise, novel_classes=args.novel_classes,
                        workers=args.workers)
    seconds = time.perf_counter() - start
    count = metadata["num_images"]
    noisy = metadata["num_mislabelled_train_images"]
    print(f"{args.out}: {metadata['arguments']['classes']} {args.family} classes, "
          f"{count['train']} train + {count['val']} val images"
          + (f", {noisy} mislabelled training images in {len(metadata['novel_classes'])} novel classes"
             if metadata["novel_classes"] else "")
          + f" ({seconds:.1f} s)")


# ----------------------------------------------------------------------------
# Planning and writing


def _check_arguments(**arguments):
    """Return the generation arguments as stored in the metadata, or raise UserError."""
    family, classes = arguments["family"], arguments["classes"]
    if family not in FAMILIES:
        raise UserError(f"unknown family {family!r}; families are {', '.join(FAMILIES)}")
    if not 2 <= classes <= max_classes(family):
        raise UserError(f"--classes must be between 2 and {max_classes(family)} for {family}, got {classes}")
    if arguments["train_per_class"] < 1:
        raise UserError(f"--train_per_class must be at least 1, got {arguments['train_per_class']}")
    if arguments["val_per_class"] < 0:
        raise UserError(f"--val_per_class must be at least 0, got {arguments['val_per_class']}")
    if not 32 <= arguments["image_size"] <= 1024:
        raise UserError(f"--image_size must be between 32 and 1024, got {arguments['image_size']}")
    if arguments["seed"] < 0:
        raise UserError(f"--seed must be non-negative, got {arguments['seed']}")
    if not 0.0 <= arguments["label_noise"] < 1.0:
        raise UserError(f"--label_noise must be in [0, 1), got {arguments['label_noise']}")
    if not 0 <= arguments["novel_classes"] < classes:
        raise UserError(f"--novel_classes must be between 0 and {classes - 1} (at least one base class), "
                        f"got {arguments['novel_classes']}")
    if arguments["label_noise"] > 0 and arguments["novel_classes"] == 0:
        raise UserError("--label_noise applies to novel classes only; give --novel_classes N as well")
    arguments["label_noise"] = float(arguments["label_noise"])
    arguments["format_version"] = FORMAT_VERSION
    return arguments


def _plan_images(arguments, definitions, names):
    """Lists of (relative path, label, image seed): `train` with the listed labels,
    `clean` (same images and order) with the true labels, and `val`."""
    seed, family_index = arguments["seed"], FAMILIES.index(arguments["family"])
    num_classes = len(definitions)
    first_novel = num_classes - arguments["novel_classes"]
    train, clean, val = [], [], []
    for label, name in enumerate(names):
        shown = [label] * arguments["train_per_class"]
        if label >= first_novel:
            _add_label_noise(shown, label, definitions, arguments["label_noise"],
                             np.random.default_rng(np.random.SeedSequence([seed, family_index, 2, label])))
        for index, true_label in enumerate(shown):
            path = f"images/{name}/train_{index:04d}.jpg"
            image_seed = (seed, family_index, _SPLIT_INDEX["train"], label, index)
            train.append((path, label, image_seed))
            clean.append((path, true_label, image_seed))
        for index in range(arguments["val_per_class"]):
            image_seed = (seed, family_index, _SPLIT_INDEX["val"], label, index)
            val.append((f"images/{name}/val_{index:04d}.jpg", label, image_seed))
    return train, clean, val


def _add_label_noise(shown, label, definitions, rate, rng):
    """Replace round(rate * len(shown)) entries of `shown` (the classes the
    images of novel class `label` really show) by other classes, mostly the
    ones sharing the most attributes with `label`."""
    others = [c for c in range(len(definitions)) if c != label]
    distance = np.array([sum(a != b for a, b in zip(definitions[c], definitions[label])) for c in others])
    nearest = [c for c, d in zip(others, distance) if d == distance.min()]
    count = int(round(rate * len(shown)))
    for slot in rng.choice(len(shown), size=count, replace=False):
        pool = nearest if rng.random() < _SIMILAR_NOISE_FRACTION else others
        shown[slot] = int(pool[rng.integers(len(pool))])


def _metadata(arguments, definitions, names, train, clean):
    attributes = ATTRIBUTES[arguments["family"]]
    first_novel = len(names) - arguments["novel_classes"]
    return {
        "generator": "fgtf.datasets.synthetic",
        "arguments": arguments,
        "attributes": {attribute: list(values) for attribute, values in attributes},
        "classes": [{"label": label, "name": name,
                     "attributes": {a: attributes[i][1][v] for i, (a, _) in enumerate(attributes)
                                    for v in [definitions[label][i]]}}
                    for label, name in enumerate(names)],
        "novel_classes": list(range(first_novel, len(names))),
        "num_images": {"train": len(train), "val": len(names) * arguments["val_per_class"]},
        "num_mislabelled_train_images": sum(t[1] != c[1] for t, c in zip(train, clean)),
    }


def _run_jobs(jobs, workers):
    workers = os.cpu_count() if workers is None else workers
    workers = max(1, min(workers, len(jobs) // 16 or 1))
    if workers == 1:
        for job in jobs:
            _write_image(job)
        return
    # spawn: workers start clean even when the caller has TensorFlow's threads running
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        for _ in pool.imap_unordered(_write_image, jobs, chunksize=16):
            pass


def _write_image(job):
    path, family, values, image_seed, image_size = job
    image = render_image(family, values, image_seed, image_size)
    # the JPEG quality has its own stream so that it varies per image too
    quality = np.random.default_rng(np.random.SeedSequence(list(image_seed) + [1])).integers(60, 96)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=int(quality))
    with open(path, "wb") as handle:
        handle.write(buffer.getvalue())


def _write_lines(path, lines):
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("".join(line + "\n" for line in lines))


def _existing_metadata(out_dir):
    """The metadata of the synthetic dataset in `out_dir`, None when there is no
    folder or an empty one; UserError when it holds something else."""
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise UserError(f"--out {out_dir} is a file, not a folder")
    if not os.path.isdir(out_dir) or not os.listdir(out_dir):
        return None
    try:
        with open(os.path.join(out_dir, METADATA_FILE), encoding="utf-8") as handle:
            metadata = json.load(handle)
    except (OSError, ValueError):
        metadata = None
    if not isinstance(metadata, dict) or metadata.get("generator") != "fgtf.datasets.synthetic":
        raise UserError(f"--out {out_dir} is a non-empty folder that is not a synthetic dataset; "
                        "choose another folder or empty it")
    return metadata


def _files_present(out_dir):
    """Whether every listed image is still there (the lists exist when the metadata does)."""
    for list_name in ("train.txt", "val.txt"):
        with open(os.path.join(out_dir, list_name), encoding="utf-8") as handle:
            for line in handle:
                if not os.path.isfile(os.path.join(out_dir, line.rpartition(": ")[0])):
                    return False
    return True


def _swap_into_place(partial, out_dir):
    """Rename the finished `partial` folder to `out_dir`, replacing what was there."""
    retired = out_dir + ".old"
    _remove(retired)
    if os.path.isdir(out_dir):
        os.rename(out_dir, retired)
    os.rename(partial, out_dir)
    _remove(retired)


def _remove(path):
    if os.path.isdir(path):
        shutil.rmtree(path)


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


# ----------------------------------------------------------------------------
# Drawing. Shapes are polygons in a canonical object frame (x forward, y down,
# the object about 2 units long), mapped to the canvas by a per-image pose.


class _Pose:
    """Canonical object coordinates -> canvas pixels: flip, rotate, scale, shift."""

    def __init__(self, scale, angle, flip, centre):
        cos, sin = math.cos(angle), math.sin(angle)
        self.matrix = scale * np.array([[cos, -sin], [sin, cos]]) @ np.diag([-1.0 if flip else 1.0, 1.0])
        self.centre = np.asarray(centre, dtype=float)

    def moved(self, offset):
        """The same pose shifted by `offset` pixels."""
        moved = _Pose.__new__(_Pose)
        moved.matrix, moved.centre = self.matrix, self.centre + offset
        return moved

    def __call__(self, points):
        mapped = np.asarray(points, dtype=float) @ self.matrix.T + self.centre
        return [tuple(p) for p in mapped]


def _random_pose(rng, canvas_size, length, max_angle, allow_flip):
    """A pose putting an object `length` canonical units long at 45-80 % of the
    canvas width, rotated up to `max_angle` degrees, somewhere inside the canvas."""
    fraction = rng.uniform(0.45, 0.8)
    scale = fraction * canvas_size / length
    slack = (1.0 - fraction) * canvas_size / 2
    centre = canvas_size / 2 + rng.uniform(-slack, slack, size=2)
    angle = math.radians(rng.uniform(-max_angle, max_angle))
    return _Pose(scale, angle, allow_flip and rng.random() < 0.5, centre)


def _ellipse(cx, cy, rx, ry, angle=0.0, n=28):
    """Polygon of an ellipse centred at (cx, cy), radii rx, ry, turned by `angle` degrees."""
    a = math.radians(angle)
    cos, sin = math.cos(a), math.sin(a)
    return _unit_circle(n) @ np.array([[rx * cos, rx * sin], [-ry * sin, ry * cos]]) + (cx, cy)


@functools.lru_cache(maxsize=None)
def _unit_circle(n):
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([np.cos(t), np.sin(t)], axis=1)


def _bar(start, end, width):
    """Polygon of a straight bar of `width` from `start` to `end`."""
    start, end = np.asarray(start, float), np.asarray(end, float)
    direction = end - start
    normal = np.array([-direction[1], direction[0]]) / (np.linalg.norm(direction) + 1e-9) * width / 2
    return np.stack([start + normal, end + normal, end - normal, start - normal])


def _mirror(points):
    """The same polygon reflected across the object's long axis (y -> -y)."""
    return np.asarray(points, float) * [1.0, -1.0]


def _colour(rng, hue=None, saturation=(0.2, 0.8), value=(0.3, 0.95)):
    """A random RGB colour (ints); `hue` in [0, 1) fixes the hue, tuples are ranges."""
    h = rng.random() if hue is None else hue % 1.0
    r, g, b = colorsys.hsv_to_rgb(h, rng.uniform(*saturation), rng.uniform(*value))
    return (int(r * 255), int(g * 255), int(b * 255))


def _jitter(rng, colour, amount=18):
    """`colour` with each channel moved by up to `amount` (a part's colour is never exact)."""
    return tuple(min(255, max(0, int(c + rng.integers(-amount, amount + 1)))) for c in colour)


def _contrasting(rng, colour):
    """A random colour much darker than `colour`, or much lighter when `colour` is dark."""
    luminance = (0.299 * colour[0] + 0.587 * colour[1] + 0.114 * colour[2]) / 255
    if luminance > 0.45:
        return _colour(rng, saturation=(0.0, 0.6), value=(0.03, max(0.05, luminance - 0.3)))
    return _colour(rng, saturation=(0.0, 0.3), value=(min(0.95, luminance + 0.4), 1.0))


def _shade(colour, factor):
    return tuple(min(255, max(0, int(c * factor))) for c in colour)


# Colours of the colour-valued attributes; every value is also a colour the
# background clutter and body colours can take, so no pixel colour is a giveaway.
_PART_COLOURS = {
    "red_bar": (205, 40, 35), "yellow_bar": (240, 205, 40), "white_bar": (240, 240, 232), "blue_bar": (45, 95, 215),
    "red_tips": (205, 40, 35), "yellow_tips": (240, 205, 40), "blue_tips": (45, 95, 215), "green_tips": (40, 170, 70),
}


def _background(rng, canvas_size, base_colours, texture):
    """Canvas with a vertical gradient between `base_colours` plus low-frequency
    colour texture of strength `texture` (0..255)."""
    top, bottom = (np.array(c, dtype=np.float32) for c in base_colours)
    t = np.linspace(0.0, 1.0, canvas_size, dtype=np.float32)[:, None, None]
    pixels = np.broadcast_to(top * (1 - t) + bottom * t, (canvas_size, canvas_size, 3)).copy()
    grid = rng.integers(0, 256, size=(int(rng.integers(3, 9)),) * 2 + (3,), dtype=np.uint8)
    blotches = np.asarray(Image.fromarray(grid).resize((canvas_size, canvas_size), Image.BICUBIC), np.float32)
    pixels += (blotches - 128.0) * (texture / 128.0)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def _enlarge(image, size):
    return image.resize((size, size), Image.BILINEAR)


def _clutter_colour(rng, theme_hue):
    """Mostly near the scene's theme hue, sometimes any colour at all (including
    the attribute colours, so they are not unique to the object)."""
    if rng.random() < 0.3:
        return _colour(rng, saturation=(0.3, 1.0))
    return _colour(rng, hue=theme_hue + rng.normal(0, 0.06))


def _draw_bird_scene(rng, attributes, canvas_size):
    theme = rng.random()
    size = canvas_size // _SUPERSAMPLE  # the background is blurry anyway: draw it at image size
    canvas = _background(rng, size, (_colour(rng, hue=theme + 0.5, value=(0.5, 1.0)),
                                     _colour(rng, hue=theme)), texture=rng.uniform(10, 50))
    draw = ImageDraw.Draw(canvas)
    for _ in range(int(rng.integers(8, 30))):  # foliage
        draw.polygon([tuple(p) for p in _ellipse(*rng.uniform(0, size, 2), *rng.uniform(0.02, 0.12, 2) * size,
                                                 angle=rng.uniform(0, 180))],
                     fill=_clutter_colour(rng, theme))
    for _ in range(int(rng.integers(0, 4))):  # twigs
        draw.polygon([tuple(p) for p in _bar(rng.uniform(-0.2, 1.2, 2) * size, rng.uniform(-0.2, 1.2, 2) * size,
                                             rng.uniform(0.01, 0.04) * size)],
                     fill=_colour(rng, hue=rng.uniform(0.02, 0.12), value=(0.15, 0.6)))
    canvas = _enlarge(canvas.filter(ImageFilter.GaussianBlur(rng.uniform(0.0, 3.0))), canvas_size)
    draw = ImageDraw.Draw(canvas)
    size = canvas_size

    pose = _random_pose(rng, canvas_size, length=2.2, max_angle=25, allow_flip=True)
    pose.centre += pose.matrix @ np.array([0.0, -0.05])
    # the perch passes under the feet, roughly along the bird's axis
    feet = np.array(pose([(0.03, 0.52)])[0])
    perch_angle = math.atan2(pose.matrix[1, 0], pose.matrix[0, 0]) + rng.normal(0, 0.25)
    reach = np.array([math.cos(perch_angle), math.sin(perch_angle)]) * size * 1.5
    draw.polygon([tuple(p) for p in _bar(feet - reach, feet + reach, rng.uniform(0.025, 0.05) * size)],
                 fill=_colour(rng, hue=rng.uniform(0.02, 0.12), value=(0.2, 0.6)))
    _draw_bird(draw, rng, pose, attributes)
    return canvas


def _draw_bird(draw, rng, pose, attributes):
    """A perched songbird facing +x (before the pose): tail, legs, body, breast
    pattern, wing with its bar, head with its pattern, beak, eye."""
    def fill(points, colour):
        draw.polygon(pose(points), fill=colour)

    body = _colour(rng, saturation=(0.1, 0.7), value=(0.25, 0.9))
    wing = _shade(_jitter(rng, body, 30), rng.uniform(0.55, 1.25))
    head = body if rng.random() < 0.6 else _colour(rng, saturation=(0.1, 0.7), value=(0.25, 0.9))
    mark = _contrasting(rng, body)  # spots, streaks, bib, cap, eye stripe
    width = rng.uniform(0.9, 1.1)  # plumpness

    tail = {
        "forked_tail": [(-0.45, -0.06), (-1.05, -0.26), (-0.86, 0.0), (-1.05, 0.2), (-0.45, 0.1)],
        "round_tail": [(-0.45, -0.07)] + [tuple(p) for p in _ellipse(-0.78, 0.02, 0.25, 0.17, n=16)[4:13]]
                      + [(-0.45, 0.1)],
        "pointed_tail": [(-0.45, -0.07), (-1.1, 0.03), (-0.45, 0.1)],
        "square_tail": [(-0.45, -0.07), (-0.98, -0.14), (-0.98, 0.18), (-0.45, 0.1)],
    }[attributes["tail"]]
    fill(tail, wing)
    leg_colour = _colour(rng, saturation=(0.0, 0.5), value=(0.2, 0.7))
    for x in (-0.05, 0.08):
        fill(_bar((x, 0.2), (x + 0.02, 0.52), 0.035), leg_colour)
        fill(_bar((x - 0.06, 0.52), (x + 0.1, 0.52), 0.03), leg_colour)
    fill(_ellipse(0.0, 0.0, 0.55, 0.3 * width, angle=-12), body)
    if rng.random() < 0.5:  # paler belly, a nuisance shared by all classes
        fill(_ellipse(0.12, 0.12, 0.35, 0.15 * width, angle=-12), _shade(body, rng.uniform(1.1, 1.5)))

    breast = attributes["breast"]
    if breast == "spotted_breast":
        for x, y in zip(rng.uniform(0.1, 0.45, 9), rng.uniform(0.0, 0.2, 9)):
            fill(_ellipse(x, y, 0.035, 0.035, n=10), mark)
    elif breast == "streaked_breast":
        for x, y in zip(rng.uniform(0.08, 0.42, 7), rng.uniform(-0.02, 0.18, 7)):
            fill(_ellipse(x, y, 0.06, 0.016, angle=-20, n=12), mark)
    elif breast == "bib":
        fill(_ellipse(0.4, -0.04, 0.14, 0.13, n=20), mark)

    fill(_ellipse(-0.08, -0.07, 0.4, 0.16 * width, angle=-14), wing)
    bar = _jitter(rng, _PART_COLOURS[attributes["wing_bar"]])
    fill(_ellipse(0.0, -0.07, 0.05, 0.15 * width, angle=-14), bar)
    if rng.random() < 0.5:  # a second bar sometimes: the bar count is not a class cue
        fill(_ellipse(-0.14, -0.05, 0.04, 0.13 * width, angle=-14), bar)

    head_x, head_y, head_r = 0.52, -0.3, 0.19
    fill(_ellipse(head_x, head_y, head_r, head_r), head)
    pattern = attributes["head"]
    if pattern == "capped":
        t = np.linspace(math.radians(200), math.radians(340), 12)
        fill(np.stack([head_x + head_r * np.cos(t), head_y + head_r * np.sin(t)], axis=1), mark)
    elif pattern == "eyestriped":
        fill(_ellipse(head_x + 0.03, head_y - 0.03, 0.19, 0.035), mark)
    elif pattern == "cheek_patch":
        fill(_ellipse(head_x - 0.02, head_y + 0.06, 0.1, 0.065), _contrasting(rng, head))

    beak_colour = _colour(rng, hue=rng.uniform(0.0, 0.15), saturation=(0.0, 0.8), value=(0.15, 0.9))
    base = head_x + head_r - 0.02
    beak = {
        "short_beak": [(base, head_y - 0.05), (base + 0.17, head_y + 0.01), (base, head_y + 0.06)],
        "long_beak": [(base, head_y - 0.035), (base + 0.42, head_y + 0.03), (base, head_y + 0.035)],
        "hooked_beak": [(base, head_y - 0.06), (base + 0.16, head_y - 0.06), (base + 0.24, head_y + 0.0),
                        (base + 0.22, head_y + 0.09), (base + 0.16, head_y + 0.03), (base, head_y + 0.06)],
        "thick_beak": [(base - 0.02, head_y - 0.11), (base + 0.2, head_y + 0.0), (base - 0.02, head_y + 0.11)],
    }[attributes["beak"]]
    fill(beak, beak_colour)
    fill(_ellipse(head_x + 0.07, head_y - 0.04, 0.04, 0.04, n=12), (15, 12, 10))
    fill(_ellipse(head_x + 0.08, head_y - 0.05, 0.012, 0.012, n=8), (235, 235, 235))


def _draw_plane_scene(rng, attributes, canvas_size):
    size = canvas_size // _SUPERSAMPLE
    ground = rng.choice(["tarmac", "grass", "sand", "any"])
    theme = {"tarmac": rng.random(), "grass": rng.uniform(0.2, 0.4), "sand": rng.uniform(0.07, 0.14),
             "any": rng.random()}[ground]
    saturation = (0.0, 0.15) if ground == "tarmac" else (0.2, 0.8)
    canvas = _background(rng, size, (_colour(rng, hue=theme, saturation=saturation),
                                     _colour(rng, hue=theme, saturation=saturation)), texture=rng.uniform(10, 45))
    draw = ImageDraw.Draw(canvas)
    for _ in range(int(rng.integers(2, 9))):  # buildings, fields, parked vehicles
        centre = rng.uniform(0, size, 2)
        half = rng.uniform(0.03, 0.2, 2) * size
        corners = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * half
        turn = rng.uniform(0, np.pi)
        rotation = np.array([[math.cos(turn), -math.sin(turn)], [math.sin(turn), math.cos(turn)]])
        draw.polygon([tuple(p) for p in corners @ rotation.T + centre], fill=_clutter_colour(rng, theme))
    for _ in range(int(rng.integers(1, 6))):  # runway and taxiway markings
        draw.polygon([tuple(p) for p in _bar(rng.uniform(-0.2, 1.2, 2) * size, rng.uniform(-0.2, 1.2, 2) * size,
                                             rng.uniform(0.005, 0.03) * size)],
                     fill=_jitter(rng, [(235, 235, 230), (230, 195, 40)][int(rng.integers(2))], 15))
    canvas = _enlarge(canvas.filter(ImageFilter.GaussianBlur(rng.uniform(0.0, 1.5))), canvas_size)
    size = canvas_size

    pose = _random_pose(rng, size, length=2.1, max_angle=180, allow_flip=False)
    sweep = rng.uniform(-0.06, 0.06)  # wing sweep differs a little per aircraft, not per class
    shadow = ImageDraw.Draw(canvas, "RGBA")
    offset = rng.uniform(0.02, 0.07, 2) * size
    for part in _plane_silhouette(sweep):
        shadow.polygon(pose.moved(offset)(part), fill=(0, 0, 0, int(rng.integers(60, 130))))
    _draw_plane(ImageDraw.Draw(canvas), rng, pose, attributes, sweep)
    return canvas


def _plane_silhouette(sweep):
    """Polygons of the parts every aircraft shares: fuselage, wings, tailplanes."""
    fuselage = [(0.72, -0.09), (-0.6, -0.09), (-0.98, -0.035), (-0.98, 0.035), (-0.6, 0.09), (0.72, 0.09)]
    wing = [(0.22, -0.08), (-0.22 - sweep, -0.88), (-0.4 - sweep, -0.88), (-0.24, -0.08)]
    tailplane = [(-0.7, -0.04), (-0.86 - sweep / 2, -0.32), (-0.96 - sweep / 2, -0.32), (-0.92, -0.04)]
    return [fuselage, wing, _mirror(wing), tailplane, _mirror(tailplane)]


def _wing_point(sweep, span, chord_fraction):
    """Canonical point on the (upper) wing at `span` (0.08..0.88 across) and
    `chord_fraction` (0 leading edge .. 1 trailing edge)."""
    t = (span - 0.08) / 0.8
    leading = 0.22 + t * (-0.44 - sweep)
    trailing = -0.24 + t * (-0.16 - sweep)
    return np.array([leading + chord_fraction * (trailing - leading), -span])


def _draw_plane(draw, rng, pose, attributes, sweep):
    """An aircraft seen from above, nose towards +x (before the pose)."""
    def fill(points, colour):
        draw.polygon(pose(points), fill=colour)

    paint = _colour(rng, saturation=(0.0, 0.6), value=(0.35, 0.97))
    fuselage, wing, wing_mirrored, tailplane, tailplane_mirrored = _plane_silhouette(sweep)
    wing_paint = _shade(paint, rng.uniform(0.8, 1.05))

    tips = _jitter(rng, _PART_COLOURS[attributes["wingtips"]])
    engine = _colour(rng, saturation=(0.0, 0.5), value=(0.15, 0.75))
    spans = {"no_engines": (), "two_engines": (0.32,), "four_engines": (0.26, 0.55)}[attributes["engines"]]
    for side in (wing, wing_mirrored):
        fill(side, wing_paint)
    for reflect in (lambda p: p, _mirror):
        tip = [_wing_point(sweep, 0.74, 0.0), _wing_point(sweep, 0.88, 0.0), _wing_point(sweep, 0.88, 1.0),
               _wing_point(sweep, 0.74, 1.0)]
        fill(reflect(tip), tips)
        for span in spans:
            front = _wing_point(sweep, span, 0.0)
            fill(reflect(_ellipse(front[0] - 0.02, front[1], 0.13, 0.045, n=16)), engine)
        _draw_insignia(fill, rng, attributes["insignia"], reflect(_wing_point(sweep, 0.56, 0.5)[None])[0])
    for side in (tailplane, tailplane_mirrored):
        fill(side, wing_paint)
    fill(fuselage, paint)

    nose = {
        "pointed_nose": [(0.72, -0.09), (1.05, 0.0), (0.72, 0.09)],
        "round_nose": [tuple(p) for p in _ellipse(0.72, 0.0, 0.16, 0.09, n=24) if p[0] >= 0.72],
        "blunt_nose": [(0.72, -0.09), (0.82, -0.07), (0.82, 0.07), (0.72, 0.09)],
        "probe_nose": [(0.72, -0.09), (0.86, -0.03), (1.08, -0.008), (1.08, 0.008), (0.86, 0.03), (0.72, 0.09)],
    }[attributes["nose"]]
    fill(nose, paint)
    fill(_bar((-0.72, 0.0), (-0.98, 0.0), 0.03), _shade(paint, 0.6))  # the fin, seen edge-on

    glass = _colour(rng, hue=rng.uniform(0.5, 0.7), saturation=(0.2, 0.7), value=(0.1, 0.4))
    canopy = attributes["canopy"]
    if canopy == "bubble_canopy":
        fill(_ellipse(0.55, 0.0, 0.11, 0.055, n=20), glass)
    elif canopy == "long_canopy":
        fill(_ellipse(0.38, 0.0, 0.3, 0.04, n=24), glass)
    elif canopy == "twin_canopy":
        fill(_ellipse(0.6, 0.0, 0.07, 0.045, n=16), glass)
        fill(_ellipse(0.38, 0.0, 0.07, 0.045, n=16), glass)


def _draw_insignia(fill, rng, kind, centre):
    if kind == "no_insignia":
        return
    x, y = centre
    colour = _colour(rng, saturation=(0.3, 1.0), value=(0.1, 0.9))
    if kind == "roundel":
        fill(_ellipse(x, y, 0.075, 0.075, n=20), colour)
        fill(_ellipse(x, y, 0.035, 0.035, n=14), (238, 238, 235))
    elif kind == "triangle":
        fill([(x + 0.08, y), (x - 0.06, y - 0.08), (x - 0.06, y + 0.08)], colour)
    else:
        fill(_bar((x - 0.08, y), (x + 0.08, y), 0.04), colour)
        fill(_bar((x, y - 0.08), (x, y + 0.08), 0.04), colour)


def _apply_lighting(rng, image):
    """Brightness, contrast, colour cast, a light gradient and sensor noise."""
    pixels = np.asarray(image, dtype=np.float32)
    size = pixels.shape[0]
    mean = pixels.mean()
    pixels = (pixels - mean) * rng.uniform(0.65, 1.3) + mean * rng.uniform(0.7, 1.25)
    pixels *= rng.uniform(0.82, 1.18, size=3)
    direction = rng.uniform(0, 2 * np.pi)
    ramp = np.linspace(-1.0, 1.0, size, dtype=np.float32)
    gradient = 1.0 + rng.uniform(0.0, 0.3) * (math.cos(direction) * ramp[None, :] + math.sin(direction) * ramp[:, None])
    pixels *= gradient[:, :, None]
    pixels += rng.standard_normal(size=pixels.shape, dtype=np.float32) * rng.uniform(0.0, 8.0)
    return Image.fromarray(np.clip(pixels + 0.5, 0, 255).astype(np.uint8))


if __name__ == "__main__":
    main()

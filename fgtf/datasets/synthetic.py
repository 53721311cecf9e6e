"""The embedded default: a procedurally generated fine-grained world.

    python -m fgtf.datasets.synthetic --out data/synthetic --classes 20 \\
        --train_per_class 30 --val_per_class 30 --image_size 160 --seed 0 \\
        [--family birds|planes|fish|butterflies] [--label_noise 0.4 --novel_classes 5] [--workers N]
    python -m fgtf.datasets.synthetic world --out data/world [--seed 0] [--image_size 64] [--workers N]

Every class of a family shares one object shape (a bird or a fish seen from
the side, an aircraft or a butterfly seen from above) and differs only in
local parts. A class is a combination of five local attributes (birds:
wing-bar colour, beak shape, breast pattern, head pattern, tail shape; planes:
engine count, wingtip colour, wing insignia, nose shape, canopy; fish: gill
patch colour, tail fin, dorsal fin, body pattern, snout; butterflies: forewing
spot colour, forewing shape, hindwing shape, forewing tip marking, hindwing
eyespot), drawn so that every attribute value is shared by many classes: no
single part decides the class. Parts are at least ~6 pixels across at 64 px
and always contrast with the surface they sit on. Pose (rotation, flip),
scale (the object spans 60-85 % of the frame), position, body colour,
background clutter, lighting (brightness, contrast, colour cast, a light
gradient), pixel noise and JPEG quality are drawn per image; the clutter
takes the part colours only away from the object. So colour histograms and
thumbnails carry almost no class information
(benchmarks/synthetic_difficulty.py measures it), while a small network can
learn the parts (benchmarks/world_learnability.py).

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

The transfer world (`world`, `generate_world`): the paper's setting from one
seed. All paths relative to `--out`:

    source/                the long-tailed source pool (iNat-like): 250 classes
                           shared out by SOURCE_SHARES (birds 140, planes 70,
                           fish 40, butterflies none), training images per class
                           falling exponentially with a random rank from 200 to
                           4 (about 12,600 in all), 5 validation images per class
    targets/<family>/      one small CUB-like target per family: 20 classes that
                           are not in the source (other combinations of the same
                           attributes), 30 train + 30 val images per class
    world.json             the arguments and, per folder, its classes and image
                           counts (see `generate_world`); written last, so its
                           presence marks a complete world

Each folder is a seed-style dataset (images/<class>/<split>_<n>.jpg,
train.txt, val.txt, classes.txt and a synthetic.json with every class's
family and attributes) that `python -m fgtf.convert --dataset synthetic
--dataset_dir <folder>` reads. Class names are the family and the attribute
values, `birds.red_bar-hooked_beak-spotted_breast-capped-forked_tail`, unique
over the world, so `grep '^birds\\.' source/classes.txt` is a `--class_list`
of the pool's birds.

Each image is drawn from its own seed (derived from `--seed`, the family, the
split, its class and its index), so the output is byte-identical for a seed
whatever `--workers` is. A dataset or world is built in `<out>.partial` and
renamed into place when complete; rerunning with the same arguments into a
complete folder returns at once, other arguments replace it.
"""
import argparse
import colorsys
import functools
import inspect
import io
import json
import math
import multiprocessing
import os
import shutil
import sys
import time
from collections import Counter

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from tfrecord_tools.cli import HelpFormatter, UserError, cli_main

FAMILIES = ("birds", "planes", "fish", "butterflies")
METADATA_FILE = "synthetic.json"
WORLD_FILE = "world.json"
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
    "fish": (
        ("gill", ("red_gill", "yellow_gill", "blue_gill", "white_gill")),
        ("tail_fin", ("forked_fin", "fan_fin", "square_fin", "pointed_fin")),
        ("dorsal", ("low_dorsal", "sail_dorsal", "spiny_dorsal", "twin_dorsal")),
        ("pattern", ("plain_body", "barred_body", "spotted_body", "striped_body")),
        ("snout", ("blunt_snout", "long_snout", "upturned_jaw", "thick_lips")),
    ),
    "butterflies": (
        ("spot_colour", ("red_spots", "yellow_spots", "blue_spots", "white_spots")),
        ("forewing", ("round_forewing", "pointed_forewing", "square_forewing")),
        ("hindwing", ("round_hindwing", "tailed_hindwing", "scalloped_hindwing", "pointed_hindwing")),
        ("forewing_tip", ("plain_tip", "dark_tip", "banded_tip", "dotted_tip")),
        ("eyespot", ("no_eyespot", "ringed_eyespot", "twin_eyespots", "hindwing_band")),
    ),
}

# Each family's share of the world's source classes: like iNat's many birds
# and few cars, with one family absent (it is met only as a target).
SOURCE_SHARES = {"birds": 0.56, "planes": 0.28, "fish": 0.16, "butterflies": 0.0}

# Fraction of a novel class's mislabelled images taken from its most similar classes.
_SIMILAR_NOISE_FRACTION = 0.8
# Drawing happens at this multiple of the image size, then a box filter
# downsamples: cheap antialiasing for PIL's aliased polygons.
_SUPERSAMPLE = 2
_SPLIT_INDEX = {"train": 0, "val": 1}
_PROG = "python -m fgtf.datasets.synthetic"
# Sub-streams of a seed: the single dataset's classes (1) and noise (2), the
# world's target classes (3), source classes (4), source counts (5) and images (7).
_TARGET_CLASSES, _SOURCE_CLASSES, _SOURCE_COUNTS, _WORLD_IMAGES = 3, 4, 5, 7


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


def generate_world(out_dir, seed=0, image_size=64, workers=None, source_classes=250, max_source_per_class=200,
                   min_source_per_class=4, source_val_per_class=5, target_classes=20, target_train_per_class=30,
                   target_val_per_class=30):
    """Write the transfer world into `out_dir` and return its description (the
    dict stored in `<out_dir>/world.json`, see the module docstring).

    The source pool has `source_classes` classes shared out over the families
    by `SOURCE_SHARES`; its per-class training counts fall off exponentially
    (a straight line on a log scale, as iNat's do) from `max_source_per_class`
    to `min_source_per_class` over the classes in a random order, plus
    `source_val_per_class` validation images each. Each family gets a target
    of `target_classes` classes, none of them in the source, with
    `target_train_per_class` + `target_val_per_class` images each.

    `workers` processes draw the images (None: one per CPU; 1: in this process);
    the bytes do not depend on it. Returns at once when `out_dir` holds a
    complete world made with the same arguments; replaces a world made with
    other arguments; refuses (UserError) a non-empty folder that is not a world.
    """
    arguments = _check_world_arguments(
        seed=seed, image_size=image_size, source_classes=source_classes, max_source_per_class=max_source_per_class,
        min_source_per_class=min_source_per_class, source_val_per_class=source_val_per_class,
        target_classes=target_classes, target_train_per_class=target_train_per_class,
        target_val_per_class=target_val_per_class)
    out_dir = os.path.abspath(out_dir)
    existing = _existing_metadata(out_dir, WORLD_FILE, "synthetic world")
    if existing is not None and existing["arguments"] == arguments and all(
            _files_present(os.path.join(out_dir, folder)) for folder in _world_folders(existing)):
        return existing

    source, targets = _world_classes(arguments)
    counts = _source_train_counts(arguments, len(source))
    folders = [("source", source, counts, [source_val_per_class] * len(source))]
    folders += [(f"targets/{family}", classes, [target_train_per_class] * len(classes),
                 [target_val_per_class] * len(classes)) for family, classes in targets.items()]
    partial = out_dir + ".partial"
    _remove(partial)
    jobs, writes = [], []
    try:
        for folder, classes, train_counts, val_counts in folders:
            plan = _plan_world_images(classes, train_counts, val_counts, seed)
            for family, values in classes:
                os.makedirs(os.path.join(partial, folder, "images", world_class_name(family, values)))
            jobs += [(os.path.join(partial, folder, path), family, values, image_seed, image_size)
                     for split in plan.values() for path, _, family, values, image_seed in split]
            writes.append((folder, classes, plan))
    except OSError as error:
        raise UserError(f"cannot write the world next to {out_dir}: {error.strerror}") from error
    world = _world_description(arguments, writes)
    try:
        _run_jobs(jobs, workers)
        for folder, classes, plan in writes:
            _write_world_folder(os.path.join(partial, folder), arguments, classes, plan)
        _write_lines(os.path.join(partial, WORLD_FILE), [json.dumps(world, indent=1)])
        _swap_into_place(partial, out_dir)
    except BaseException:  # interrupted or failed: leave no half-written folder behind
        _remove(partial)
        raise
    return world


def class_definitions(family, num_classes, seed, stream=1):
    """The classes of `family`: a list of `num_classes` distinct tuples of value
    indices, one per attribute of `ATTRIBUTES[family]`, drawn from sub-stream
    `stream` of `seed` (the world draws its source and its targets from two).

    Each attribute's values are spread evenly over the classes (counts differ by
    at most one), so with at least twice as many classes as values every value
    is shared by several classes and only a combination identifies a class.
    """
    sizes = [len(values) for _, values in ATTRIBUTES[family]]
    rng = np.random.default_rng(np.random.SeedSequence([seed, FAMILIES.index(family), stream]))
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
    return f"{label:03d}." + _value_names(family, values)


def world_class_name(family, values):
    """`('birds', (0, 2, 1, 1, 0))` -> `'birds.red_bar-hooked_beak-spotted_breast-capped-forked_tail'`:
    the world's class names, unique over all its datasets."""
    return f"{family}." + _value_names(family, values)


def render_image(family, values, image_seed, image_size=160):
    """Draw one `image_size` x `image_size` RGB image (PIL) of the class with
    attribute value indices `values`; `image_seed` (an int or a tuple of ints)
    fixes everything else (pose, colours, background, lighting, noise)."""
    rng = np.random.default_rng(np.random.SeedSequence(image_seed))
    canvas_size = image_size * _SUPERSAMPLE
    canvas = _draw_scene(rng, family, _attribute_values(family, values), canvas_size)
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
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["world"]:
        return _world_main(argv[1:])
    parser = argparse.ArgumentParser(
        prog=_PROG,
        description="Generate the synthetic fine-grained dataset (JPEGs + seed-style train.txt/val.txt/"
                    "classes.txt). Classes share one object shape and differ only in combinations of "
                    "small local parts; pose, scale, background, lighting and JPEG quality vary per image. "
                    "Byte-identical for a seed. `world` as the first argument writes the transfer world instead "
                    "(a long-tailed source pool and one small target per family; see `world --help`).")
    parser.add_argument("--out", default="data/synthetic", help="output folder (default: %(default)s)")
    parser.add_argument("--classes", type=int, default=20, help="number of classes (default: %(default)s)")
    parser.add_argument("--train_per_class", type=int, default=30,
                        help="training images per class (default: %(default)s)")
    parser.add_argument("--val_per_class", type=int, default=30,
                        help="validation images per class (default: %(default)s)")
    parser.add_argument("--image_size", type=int, default=160, help="image side in pixels (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    parser.add_argument("--family", default="birds", choices=FAMILIES,
                        help="object family: birds or fish (side view), planes or butterflies (top view) "
                             "(default: %(default)s)")
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


# (size knob of generate_world, its help)
_WORLD_KNOBS = (
    ("source_classes", "classes in the source pool, shared out over the families by SOURCE_SHARES"),
    ("max_source_per_class", "training images of the source's most common class"),
    ("min_source_per_class", "training images of the source's rarest class"),
    ("source_val_per_class", "validation images per source class"),
    ("target_classes", "classes of each family's target, none of them in the source"),
    ("target_train_per_class", "training images per target class"),
    ("target_val_per_class", "validation images per target class"),
)


def _world_main(argv):
    # named after the main parser's program, which `fgtf synthetic` renames
    prog = argparse.ArgumentParser(prog=_PROG, add_help=False).prog + " world"
    parser = argparse.ArgumentParser(
        prog=prog, formatter_class=HelpFormatter,
        description="Generate the transfer world: a long-tailed source pool over the families in unequal shares "
                    "(butterflies absent) and one small target per family with classes not in the pool, each a "
                    "seed-style dataset folder (source/, targets/<family>/), described by world.json. "
                    "Byte-identical for a seed.")
    parser.add_argument("--out", default="data/world", help="output folder")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the whole world")
    parser.add_argument("--image_size", type=int, default=64, help="image side in pixels")
    parser.add_argument("--workers", type=int, default=None,
                        help="drawing processes (default: one per CPU; 1 draws in this process)")
    defaults = inspect.signature(generate_world).parameters
    for knob, help_text in _WORLD_KNOBS:
        parser.add_argument(f"--{knob}", type=int, default=defaults[knob].default, help=help_text)
    args = parser.parse_args(argv)
    if args.workers is not None and args.workers < 1:
        raise UserError(f"--workers must be at least 1, got {args.workers}")
    start = time.perf_counter()
    world = generate_world(args.out, seed=args.seed, image_size=args.image_size, workers=args.workers,
                           **{knob: getattr(args, knob) for knob, _ in _WORLD_KNOBS})
    source = world["source"]
    shares = ", ".join(f"{family} {count}" for family, count in source["family_classes"].items())
    targets = world["targets"]
    print(f"{args.out}: source {source['classes']} classes ({shares}), {source['train_images']} train + "
          f"{source['val_images']} val images; targets {', '.join(t['name'] for t in targets)}, "
          f"{targets[0]['classes']} classes and {targets[0]['train_images']} train + {targets[0]['val_images']} "
          f"val images each ({time.perf_counter() - start:.1f} s)")


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


def _check_world_arguments(**arguments):
    """Return the world's arguments as stored in world.json, or raise UserError."""
    if arguments["seed"] < 0:
        raise UserError(f"--seed must be non-negative, got {arguments['seed']}")
    if not 32 <= arguments["image_size"] <= 1024:
        raise UserError(f"--image_size must be between 32 and 1024, got {arguments['image_size']}")
    for knob in ("source_classes", "min_source_per_class", "source_val_per_class", "target_train_per_class",
                 "target_val_per_class"):
        if arguments[knob] < 1:
            raise UserError(f"--{knob} must be at least 1, got {arguments[knob]}")
    if arguments["max_source_per_class"] < arguments["min_source_per_class"]:
        raise UserError(f"--max_source_per_class must be at least --min_source_per_class "
                        f"({arguments['min_source_per_class']}), got {arguments['max_source_per_class']}")
    if arguments["target_classes"] < 2:
        raise UserError(f"--target_classes must be at least 2, got {arguments['target_classes']}")
    for family, count in _source_family_classes(arguments["source_classes"]).items():
        if count + arguments["target_classes"] > max_classes(family):
            raise UserError(f"--source_classes {arguments['source_classes']} and --target_classes "
                            f"{arguments['target_classes']} need {count + arguments['target_classes']} {family} "
                            f"classes, more than the {max_classes(family)} it offers; choose fewer")
    return dict(arguments, source_shares=dict(SOURCE_SHARES), format_version=FORMAT_VERSION)


def _source_family_classes(source_classes):
    """{family: its number of source classes}: `source_classes` shared out by
    `SOURCE_SHARES` (largest remainders get the classes rounding leaves over)."""
    exact = {family: source_classes * SOURCE_SHARES[family] for family in FAMILIES}
    counts = {family: int(math.floor(share)) for family, share in exact.items()}
    for family in sorted(FAMILIES, key=lambda f: counts[f] - exact[f])[:source_classes - sum(counts.values())]:
        counts[family] += 1
    return counts


def _world_classes(arguments):
    """(source classes, {family: target classes}), each class a (family, value
    indices) pair; a family's target classes are never among its source classes."""
    seed, target_classes = arguments["seed"], arguments["target_classes"]
    source, targets = [], {}
    for family, count in _source_family_classes(arguments["source_classes"]).items():
        target = class_definitions(family, target_classes, seed, stream=_TARGET_CLASSES)
        pool = class_definitions(family, count + target_classes, seed, stream=_SOURCE_CLASSES) if count else []
        taken = set(target)
        source += [(family, values) for values in pool if values not in taken][:count]
        targets[family] = [(family, values) for values in target]
    return source, targets


def _source_train_counts(arguments, num_classes):
    """Training images per source class: falling exponentially with a random
    rank from `max_source_per_class` to `min_source_per_class`."""
    high, low = arguments["max_source_per_class"], arguments["min_source_per_class"]
    ranks = np.random.default_rng(np.random.SeedSequence([arguments["seed"], _SOURCE_COUNTS])).permutation(num_classes)
    return [int(round(high * (low / high) ** (rank / max(num_classes - 1, 1)))) for rank in ranks]


def _plan_world_images(classes, train_counts, val_counts, seed):
    """{split: [(relative path, label, family, values, image seed)]} of one world
    folder. An image's seed names its class by family and attribute values, so
    every image of the world is drawn from a seed of its own."""
    plan = {"train": [], "val": []}
    for label, ((family, values), counts) in enumerate(zip(classes, zip(train_counts, val_counts))):
        name = world_class_name(family, values)
        for split, count in zip(plan, counts):
            for index in range(count):
                image_seed = (seed, _WORLD_IMAGES, FAMILIES.index(family), *values, _SPLIT_INDEX[split], index)
                plan[split].append((f"images/{name}/{split}_{index:04d}.jpg", label, family, values, image_seed))
    return plan


def _write_world_folder(folder, arguments, classes, plan):
    """The lists and the metadata of one world folder (its images are drawn)."""
    names = [world_class_name(family, values) for family, values in classes]
    for split, list_name in (("train", "train.txt"), ("val", "val.txt")):
        _write_lines(os.path.join(folder, list_name), [f"{path}: {label}" for path, label, *_ in plan[split]])
    _write_lines(os.path.join(folder, "classes.txt"), names)
    images = {split: Counter(label for _, label, *_ in plan[split]) for split in plan}
    families = [family for family in FAMILIES if any(f == family for f, _ in classes)]
    metadata = {
        "generator": "fgtf.datasets.synthetic",
        "world_arguments": arguments,
        "family_attributes": {family: {attribute: list(values) for attribute, values in ATTRIBUTES[family]}
                              for family in families},
        "classes": [{"label": label, "name": name, "family": family,
                     "attributes": _attribute_values(family, values),
                     "train_images": images["train"][label], "val_images": images["val"][label]}
                    for label, (name, (family, values)) in enumerate(zip(names, classes))],
        "novel_classes": [],
        "num_images": {split: len(plan[split]) for split in plan},
        "num_mislabelled_train_images": 0,
    }
    _write_lines(os.path.join(folder, METADATA_FILE), [json.dumps(metadata, indent=1)])


def _world_description(arguments, folders):
    """The content of world.json, from the (folder, classes, plan) of each
    world folder, the source first."""
    (source_dir, source_classes, source_plan), targets = folders[0], folders[1:]
    family_classes = Counter(family for family, _ in source_classes)
    family_train_images = Counter(family for _, _, family, _, _ in source_plan["train"])
    return {
        "format_version": FORMAT_VERSION,
        "generator": "fgtf.datasets.synthetic",
        "arguments": arguments,
        "families": list(FAMILIES),
        "source": {"dataset_dir": source_dir, "classes": len(source_classes),
                   "train_images": len(source_plan["train"]), "val_images": len(source_plan["val"]),
                   "family_classes": {family: family_classes[family] for family in FAMILIES},
                   "family_train_images": {family: family_train_images[family] for family in FAMILIES}},
        "targets": [{"name": classes[0][0], "family": classes[0][0], "dataset_dir": folder, "classes": len(classes),
                     "train_images": len(plan["train"]), "val_images": len(plan["val"])}
                    for folder, classes, plan in targets],
    }


def _world_folders(world):
    """The dataset folders of a world, relative to it."""
    return [world["source"]["dataset_dir"]] + [target["dataset_dir"] for target in world["targets"]]


def _attribute_values(family, values):
    """{attribute: value name} of a class of `family` with value indices `values`."""
    return {attribute: names[v] for (attribute, names), v in zip(ATTRIBUTES[family], values)}


def _value_names(family, values):
    return "-".join(_attribute_values(family, values).values())


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


def _existing_metadata(out_dir, file_name=METADATA_FILE, kind="synthetic dataset"):
    """The metadata (`file_name`) of the synthetic dataset or world (`kind`) in
    `out_dir`, None when there is no folder or an empty one; UserError when it
    holds something else."""
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise UserError(f"--out {out_dir} is a file, not a folder")
    if not os.path.isdir(out_dir) or not os.listdir(out_dir):
        return None
    try:
        with open(os.path.join(out_dir, file_name), encoding="utf-8") as handle:
            metadata = json.load(handle)
    except (OSError, ValueError):
        metadata = None
    if not isinstance(metadata, dict) or metadata.get("generator") != "fgtf.datasets.synthetic":
        raise UserError(f"--out {out_dir} is a non-empty folder that is not a {kind}; "
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
# the object about 2.5 units long), mapped to the canvas by a per-image pose.
# Parts are drawn at least ~0.25 units wide: 6 pixels or more at 64 px.


def _draw_scene(rng, family, attributes, canvas_size):
    """Scenery of the family's habitat with the object on top, on a canvas of
    `canvas_size` pixels. The pose comes first so that the clutter near the
    object can be kept grey-ish: part colours appear in the clutter only away
    from the object, where they cannot be mistaken for a part."""
    length, max_angle, allow_flip, scenery, draw_object = _FAMILY_DRAWING[family]
    pose = _random_pose(rng, canvas_size, length, max_angle, allow_flip)
    size = canvas_size // _SUPERSAMPLE  # the background is blurry anyway: draw it at image size
    keep_out = (pose.centre / _SUPERSAMPLE, pose.scale * length * 0.6 / _SUPERSAMPLE)
    canvas = _enlarge(scenery(rng, size, keep_out), canvas_size)
    draw_object(canvas, rng, pose, attributes)
    return canvas


class _Pose:
    """Canonical object coordinates -> canvas pixels: flip, rotate, scale, shift."""

    def __init__(self, scale, angle, flip, centre):
        cos, sin = math.cos(angle), math.sin(angle)
        self.scale = scale
        self.matrix = scale * np.array([[cos, -sin], [sin, cos]]) @ np.diag([-1.0 if flip else 1.0, 1.0])
        self.centre = np.asarray(centre, dtype=float)

    def moved(self, offset):
        """The same pose shifted by `offset` pixels."""
        moved = _Pose.__new__(_Pose)
        moved.scale, moved.matrix, moved.centre = self.scale, self.matrix, self.centre + offset
        return moved

    def __call__(self, points):
        mapped = np.asarray(points, dtype=float) @ self.matrix.T + self.centre
        return [tuple(p) for p in mapped]


def _random_pose(rng, canvas_size, length, max_angle, allow_flip):
    """A pose putting an object `length` canonical units long at 68-85 % of the
    canvas width, rotated up to `max_angle` degrees, somewhere inside the canvas."""
    fraction = rng.uniform(0.68, 0.85)
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


def _arc(cx, cy, radius, start, stop, n=10):
    """Points on a circle from angle `start` to `stop` (degrees, y down)."""
    t = np.radians(np.linspace(start, stop, n))
    return np.stack([cx + radius * np.cos(t), cy + radius * np.sin(t)], axis=1)


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


def _distinct_colour(rng, avoid, **ranges):
    """A random colour (as `_colour`) at least some way from each colour in
    `avoid`, so that a coloured part stands out from the surface it sits on."""
    for _ in range(30):
        colour = _colour(rng, **ranges)
        if all(sum((a - b) ** 2 for a, b in zip(colour, other)) >= 110 ** 2 for other in avoid):
            return colour
    return colour


def _jitter(rng, colour, amount=18):
    """`colour` with each channel moved by up to `amount` (a part's colour is never exact)."""
    return tuple(min(255, max(0, int(c + rng.integers(-amount, amount + 1)))) for c in colour)


def _contrasting(rng, colour):
    """A random colour much darker than `colour`, or much lighter when `colour` is dark."""
    luminance = (0.299 * colour[0] + 0.587 * colour[1] + 0.114 * colour[2]) / 255
    if luminance > 0.45:
        return _colour(rng, saturation=(0.0, 0.6), value=(0.03, max(0.05, luminance - 0.35)))
    return _colour(rng, saturation=(0.0, 0.3), value=(min(0.95, luminance + 0.45), 1.0))


def _shade(colour, factor):
    return tuple(min(255, max(0, int(c * factor))) for c in colour)


# Colours of the colour-valued attributes. Body colours take any hue and the
# clutter away from the object takes these colours too, so no pixel colour
# gives a class away; on the object a part always contrasts with its surface.
_RED, _YELLOW, _WHITE, _BLUE, _GREEN = (205, 40, 35), (240, 205, 40), (240, 240, 232), (45, 95, 215), (40, 170, 70)
_PART_COLOURS = {
    "red_bar": _RED, "yellow_bar": _YELLOW, "white_bar": _WHITE, "blue_bar": _BLUE,
    "red_tips": _RED, "yellow_tips": _YELLOW, "blue_tips": _BLUE, "green_tips": _GREEN,
    "red_gill": _RED, "yellow_gill": _YELLOW, "blue_gill": _BLUE, "white_gill": _WHITE,
    "red_spots": _RED, "yellow_spots": _YELLOW, "blue_spots": _BLUE, "white_spots": _WHITE,
}
_PALETTE = (_RED, _YELLOW, _WHITE, _BLUE, _GREEN)


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


def _clutter_colour(rng, theme_hue, point, keep_out):
    """Near the object (`keep_out`: its centre and radius), a greyish colour of
    the scene's theme hue; elsewhere often one of the part colours (so that
    a colour histogram cannot tell which one the object carries), sometimes
    any colour, else one near the theme hue."""
    centre, radius = keep_out
    if np.hypot(*(np.asarray(point, float) - centre)) < radius:
        return _colour(rng, hue=theme_hue + rng.normal(0, 0.06), saturation=(0.0, 0.25))
    draw = rng.random()
    if draw < 0.4:
        return _jitter(rng, _PALETTE[int(rng.integers(len(_PALETTE)))], 30)
    if draw < 0.55:
        return _colour(rng, saturation=(0.3, 1.0))
    return _colour(rng, hue=theme_hue + rng.normal(0, 0.06))


def _blobs(draw, rng, size, theme, keep_out, count, radius):
    """`count` random ellipses of radius `radius` (a range, in canvas fractions)."""
    for _ in range(int(rng.integers(*count))):
        centre = rng.uniform(0, size, 2)
        draw.polygon([tuple(p) for p in _ellipse(*centre, *rng.uniform(*radius, 2) * size, angle=rng.uniform(0, 180))],
                     fill=_clutter_colour(rng, theme, centre, keep_out))


def _strokes(draw, rng, size, count, width, colour):
    """`count` straight bars across the canvas, each coloured by `colour(rng)`."""
    for _ in range(int(rng.integers(*count))):
        draw.polygon([tuple(p) for p in _bar(rng.uniform(-0.2, 1.2, 2) * size, rng.uniform(-0.2, 1.2, 2) * size,
                                             rng.uniform(*width) * size)], fill=colour(rng))


def _brown(rng):
    return _colour(rng, hue=rng.uniform(0.02, 0.12), value=(0.15, 0.6))


def _woodland(rng, size, keep_out):
    """Birds' scenery: sky-to-foliage gradient, leaves, twigs."""
    theme = rng.random()
    canvas = _background(rng, size, (_colour(rng, hue=theme + 0.5, value=(0.5, 1.0)), _colour(rng, hue=theme)),
                         texture=rng.uniform(5, 30))
    draw = ImageDraw.Draw(canvas)
    _blobs(draw, rng, size, theme, keep_out, (6, 22), (0.02, 0.1))
    _strokes(draw, rng, size, (0, 4), (0.01, 0.03), _brown)
    return canvas.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 2.5)))


def _airfield(rng, size, keep_out):
    """Planes' scenery, seen from above: tarmac, grass or sand, buildings, markings."""
    ground = rng.choice(["tarmac", "grass", "sand", "any"])
    theme = {"tarmac": rng.random(), "grass": rng.uniform(0.2, 0.4), "sand": rng.uniform(0.07, 0.14),
             "any": rng.random()}[ground]
    saturation = (0.0, 0.15) if ground == "tarmac" else (0.2, 0.7)
    canvas = _background(rng, size, (_colour(rng, hue=theme, saturation=saturation),
                                     _colour(rng, hue=theme, saturation=saturation)), texture=rng.uniform(10, 40))
    draw = ImageDraw.Draw(canvas)
    for _ in range(int(rng.integers(2, 9))):  # buildings, fields, parked vehicles
        centre = rng.uniform(0, size, 2)
        corners = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * rng.uniform(0.03, 0.18, 2) * size
        turn = rng.uniform(0, np.pi)
        rotation = np.array([[math.cos(turn), -math.sin(turn)], [math.sin(turn), math.cos(turn)]])
        draw.polygon([tuple(p) for p in corners @ rotation.T + centre], fill=_clutter_colour(rng, theme, centre, keep_out))
    _strokes(draw, rng, size, (1, 5), (0.005, 0.025),  # runway and taxiway markings
             lambda rng: _jitter(rng, [(235, 235, 230), (230, 195, 40)][int(rng.integers(2))], 15))
    return canvas.filter(ImageFilter.GaussianBlur(rng.uniform(0.0, 1.5)))


def _underwater(rng, size, keep_out):
    """Fish's scenery: blue-green water, rocks, weed, bubbles."""
    theme = rng.uniform(0.3, 0.7) if rng.random() < 0.7 else rng.random()
    canvas = _background(rng, size, (_colour(rng, hue=theme, value=(0.5, 0.95)),
                                     _colour(rng, hue=theme + rng.normal(0, 0.05), value=(0.15, 0.6))),
                         texture=rng.uniform(10, 40))
    draw = ImageDraw.Draw(canvas)
    _blobs(draw, rng, size, theme, keep_out, (3, 12), (0.04, 0.14))  # rocks and coral
    _strokes(draw, rng, size, (1, 6), (0.01, 0.03),  # weed
             lambda rng: _colour(rng, hue=rng.uniform(0.2, 0.45), value=(0.2, 0.7)))
    for _ in range(int(rng.integers(0, 8))):  # bubbles
        centre, radius = rng.uniform(0, size, 2), rng.uniform(0.006, 0.02) * size
        draw.polygon([tuple(p) for p in _ellipse(*centre, radius, radius, n=10)], fill=(225, 235, 240))
    return canvas.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 2.5)))


def _meadow(rng, size, keep_out):
    """Butterflies' scenery, seen from above: grass and leaves with blossoms."""
    theme = rng.uniform(0.15, 0.45) if rng.random() < 0.7 else rng.random()
    canvas = _background(rng, size, (_colour(rng, hue=theme), _colour(rng, hue=theme + rng.normal(0, 0.05))),
                         texture=rng.uniform(10, 40))
    draw = ImageDraw.Draw(canvas)
    _strokes(draw, rng, size, (2, 9), (0.01, 0.03),  # grass blades and stems
             lambda rng: _colour(rng, hue=rng.uniform(0.18, 0.4), value=(0.2, 0.8)))
    _blobs(draw, rng, size, theme, keep_out, (4, 14), (0.02, 0.08))  # leaves and blossoms
    return canvas.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 2.5)))


def _draw_bird(canvas, rng, pose, attributes):
    """A perched songbird facing +x (before the pose) on a branch: tail, legs,
    body, breast pattern, wing with its bar, head with its pattern, beak, eye."""
    draw = ImageDraw.Draw(canvas)

    def fill(points, colour):
        draw.polygon(pose(points), fill=colour)

    size = canvas.size[0]
    feet = np.array(pose([(0.03, 0.55)])[0])  # the perch passes under the feet, roughly along the bird's axis
    perch_angle = math.atan2(pose.matrix[1, 0], pose.matrix[0, 0]) + rng.normal(0, 0.25)
    reach = np.array([math.cos(perch_angle), math.sin(perch_angle)]) * size * 1.5
    draw.polygon([tuple(p) for p in _bar(feet - reach, feet + reach, rng.uniform(0.025, 0.05) * size)],
                 fill=_brown(rng))

    bar = _jitter(rng, _PART_COLOURS[attributes["wing_bar"]])
    body = _distinct_colour(rng, [bar], saturation=(0.1, 0.7), value=(0.25, 0.9))
    wing = _shade(_jitter(rng, body, 20), rng.uniform(0.7, 1.15))
    head = body if rng.random() < 0.6 else _distinct_colour(rng, [bar], saturation=(0.1, 0.7), value=(0.25, 0.9))
    mark = _contrasting(rng, body)  # spots, streaks, bib, cap, eye stripe
    width = rng.uniform(0.92, 1.08)  # plumpness

    tail = {
        "forked_tail": [(-0.5, -0.08), (-1.1, -0.32), (-0.9, 0.0), (-1.1, 0.26), (-0.5, 0.12)],
        "round_tail": [(-0.5, -0.09)] + [tuple(p) for p in _ellipse(-0.8, 0.02, 0.28, 0.21, n=16)[12:3:-1]]
                      + [(-0.5, 0.12)],
        "pointed_tail": [(-0.5, -0.09), (-1.12, 0.03), (-0.5, 0.12)],
        "square_tail": [(-0.5, -0.09), (-1.0, -0.19), (-1.0, 0.23), (-0.5, 0.12)],
    }[attributes["tail"]]
    fill(tail, wing)
    leg_colour = _colour(rng, saturation=(0.0, 0.5), value=(0.2, 0.7))
    for x in (-0.05, 0.1):
        fill(_bar((x, 0.2), (x + 0.02, 0.55), 0.045), leg_colour)
    fill(_ellipse(0.0, 0.0, 0.58, 0.33 * width, angle=-12), body)
    if rng.random() < 0.5:  # paler belly, a nuisance shared by all classes
        fill(_ellipse(0.12, 0.13, 0.36, 0.15 * width, angle=-12), _shade(body, rng.uniform(1.1, 1.4)))

    breast = attributes["breast"]
    if breast == "spotted_breast":
        for x, y in zip(rng.uniform(0.1, 0.42, 4), rng.uniform(0.04, 0.2, 4)):
            fill(_ellipse(x, y, 0.1, 0.1, n=12), mark)
    elif breast == "streaked_breast":
        for x, y in zip(rng.uniform(0.1, 0.4, 4), rng.uniform(0.0, 0.2, 4)):
            fill(_ellipse(x, y, 0.16, 0.06, angle=-20, n=12), mark)
    elif breast == "bib":
        fill(_ellipse(0.4, -0.02, 0.22, 0.2, n=20), mark)

    fill(_ellipse(-0.1, -0.07, 0.44, 0.19 * width, angle=-14), wing)
    fill(_ellipse(-0.02, -0.07, 0.18, 0.2 * width, angle=-14), bar)

    head_x, head_y, head_r = 0.55, -0.33, 0.3
    fill(_ellipse(head_x, head_y, head_r, head_r), head)
    pattern = attributes["head"]
    if pattern == "capped":
        fill(_arc(head_x, head_y, head_r, 195, 345, 12), mark)
    elif pattern == "eyestriped":
        fill(_ellipse(head_x + 0.04, head_y - 0.04, 0.3, 0.1), mark)
    elif pattern == "cheek_patch":
        fill(_ellipse(head_x - 0.03, head_y + 0.09, 0.17, 0.12), _contrasting(rng, head))

    if rng.random() < 0.5:  # a beak in a part colour half of the time: the bar's colour is not alone on the bird
        beak_colour = _jitter(rng, _PALETTE[int(rng.integers(len(_PALETTE)))])
    else:
        beak_colour = _distinct_colour(rng, [head], hue=rng.uniform(0.0, 0.15), saturation=(0.0, 0.8),
                                       value=(0.1, 0.9))
    base = head_x + head_r - 0.03
    beak = {
        "short_beak": [(base, head_y - 0.07), (base + 0.2, head_y + 0.01), (base, head_y + 0.08)],
        "long_beak": [(base, head_y - 0.05), (base + 0.42, head_y + 0.04), (base, head_y + 0.05)],
        "hooked_beak": [(base, head_y - 0.08), (base + 0.2, head_y - 0.08), (base + 0.3, head_y + 0.0),
                        (base + 0.27, head_y + 0.12), (base + 0.2, head_y + 0.04), (base, head_y + 0.08)],
        "thick_beak": [(base - 0.03, head_y - 0.14), (base + 0.24, head_y + 0.0), (base - 0.03, head_y + 0.14)],
    }[attributes["beak"]]
    fill(beak, beak_colour)
    fill(_ellipse(head_x + 0.09, head_y - 0.05, 0.05, 0.05, n=12), (15, 12, 10))
    fill(_ellipse(head_x + 0.1, head_y - 0.06, 0.015, 0.015, n=8), (235, 235, 235))


def _plane_silhouette(sweep):
    """Polygons of the parts every aircraft shares: fuselage, wings, tailplanes."""
    fuselage = [(0.72, -0.12), (-0.6, -0.12), (-0.98, -0.05), (-0.98, 0.05), (-0.6, 0.12), (0.72, 0.12)]
    wing = [(0.22, -0.1), (-0.22 - sweep, -0.88), (-0.42 - sweep, -0.88), (-0.26, -0.1)]
    tailplane = [(-0.68, -0.05), (-0.86 - sweep / 2, -0.34), (-0.98 - sweep / 2, -0.34), (-0.92, -0.05)]
    return [fuselage, wing, _mirror(wing), tailplane, _mirror(tailplane)]


def _wing_point(sweep, span, chord_fraction):
    """Canonical point on the (upper) wing at `span` (0.1..0.88 across) and
    `chord_fraction` (0 leading edge .. 1 trailing edge)."""
    t = (span - 0.1) / 0.78
    leading = 0.22 + t * (-0.44 - sweep)
    trailing = -0.26 + t * (-0.16 - sweep)
    return np.array([leading + chord_fraction * (trailing - leading), -span])


def _draw_plane(canvas, rng, pose, attributes):
    """An aircraft seen from above, nose towards +x (before the pose), and its shadow."""
    sweep = rng.uniform(-0.06, 0.06)  # wing sweep differs a little per aircraft, not per class
    shadow = ImageDraw.Draw(canvas, "RGBA")
    offset = rng.uniform(0.02, 0.06, 2) * canvas.size[0]
    for part in _plane_silhouette(sweep):
        shadow.polygon(pose.moved(offset)(part), fill=(0, 0, 0, int(rng.integers(60, 130))))
    draw = ImageDraw.Draw(canvas)

    def fill(points, colour):
        draw.polygon(pose(points), fill=colour)

    tips = _jitter(rng, _PART_COLOURS[attributes["wingtips"]])
    paint = _distinct_colour(rng, [tips], saturation=(0.0, 0.6), value=(0.35, 0.97))
    fuselage, wing, wing_mirrored, tailplane, tailplane_mirrored = _plane_silhouette(sweep)
    wing_paint = _shade(paint, rng.uniform(0.8, 1.05))
    engine = _distinct_colour(rng, [wing_paint], saturation=(0.0, 0.5), value=(0.1, 0.75))
    insignia = _distinct_colour(rng, [wing_paint], saturation=(0.3, 1.0), value=(0.1, 0.9))
    spans = {"no_engines": (), "two_engines": (0.34,), "four_engines": (0.26, 0.5)}[attributes["engines"]]
    for side in (wing, wing_mirrored):
        fill(side, wing_paint)
    for reflect in (lambda p: p, _mirror):
        tip = [_wing_point(sweep, 0.64, 0.0), _wing_point(sweep, 0.88, 0.0), _wing_point(sweep, 0.88, 1.0),
               _wing_point(sweep, 0.64, 1.0)]
        fill(reflect(tip), tips)
        for span in spans:
            front = _wing_point(sweep, span, 0.0)
            fill(reflect(_ellipse(front[0] - 0.02, front[1], 0.15, 0.065, n=16)), engine)
        _draw_insignia(fill, attributes["insignia"], reflect(_wing_point(sweep, 0.42, 0.55)[None])[0], insignia)
    for side in (tailplane, tailplane_mirrored):
        fill(side, wing_paint)
    fill(fuselage, paint)

    nose = {
        "pointed_nose": [(0.72, -0.12), (1.12, 0.0), (0.72, 0.12)],
        "round_nose": [tuple(p) for p in _ellipse(0.72, 0.0, 0.2, 0.12, n=24) if p[0] >= 0.72],
        "blunt_nose": [(0.72, -0.12), (0.84, -0.1), (0.84, 0.1), (0.72, 0.12)],
        "probe_nose": [(0.72, -0.12), (0.88, -0.05), (1.16, -0.025), (1.16, 0.025), (0.88, 0.05), (0.72, 0.12)],
    }[attributes["nose"]]
    fill(nose, paint)
    fill(_bar((-0.72, 0.0), (-0.98, 0.0), 0.04), _shade(paint, 0.6))  # the fin, seen edge-on

    glass = _colour(rng, hue=rng.uniform(0.5, 0.7), saturation=(0.2, 0.7), value=(0.05, 0.3))
    canopy = attributes["canopy"]
    if canopy == "bubble_canopy":
        fill(_ellipse(0.52, 0.0, 0.15, 0.085, n=20), glass)
    elif canopy == "long_canopy":
        fill(_ellipse(0.3, 0.0, 0.36, 0.07, n=24), glass)
    elif canopy == "twin_canopy":
        fill(_ellipse(0.6, 0.0, 0.09, 0.075, n=16), glass)
        fill(_ellipse(0.32, 0.0, 0.09, 0.075, n=16), glass)


def _draw_insignia(fill, kind, centre, colour):
    if kind == "no_insignia":
        return
    x, y = centre
    if kind == "roundel":
        fill(_ellipse(x, y, 0.11, 0.11, n=20), colour)
        fill(_ellipse(x, y, 0.05, 0.05, n=14), (238, 238, 235))
    elif kind == "triangle":
        fill([(x + 0.12, y), (x - 0.09, y - 0.12), (x - 0.09, y + 0.12)], colour)
    else:
        fill(_bar((x - 0.12, y), (x + 0.12, y), 0.06), colour)
        fill(_bar((x, y - 0.12), (x, y + 0.12), 0.06), colour)


def _draw_fish(canvas, rng, pose, attributes):
    """A fish seen from the side, facing +x (before the pose): tail fin, dorsal
    fin, body with its pattern, gill patch, snout, eye."""
    draw = ImageDraw.Draw(canvas)

    def fill(points, colour):
        draw.polygon(pose(points), fill=colour)

    gill = _jitter(rng, _PART_COLOURS[attributes["gill"]])
    body = _distinct_colour(rng, [gill], saturation=(0.1, 0.8), value=(0.3, 0.95))
    fin = _shade(_jitter(rng, body, 25), rng.uniform(0.6, 1.2))
    mark = _contrasting(rng, body)
    width = rng.uniform(0.9, 1.1)  # deep or slim body, a nuisance

    tail = {
        "forked_fin": [(-0.62, -0.06), (-1.12, -0.45), (-0.92, 0.0), (-1.12, 0.45), (-0.62, 0.06)],
        "fan_fin": [(-0.58, 0.0)] + [tuple(p) for p in _arc(-0.58, 0.0, 0.55, 145, 215, 9)],
        "square_fin": [(-0.62, -0.1), (-1.02, -0.36), (-1.02, 0.36), (-0.62, 0.1)],
        "pointed_fin": [(-0.6, -0.2), (-1.2, 0.0), (-0.6, 0.2)],
    }[attributes["tail_fin"]]
    fill(tail, fin)
    top = -0.3 * width
    dorsal = {
        "low_dorsal": [[(-0.35, top), (0.15, top), (-0.15, top - 0.22)]],
        "sail_dorsal": [[(-0.5, top + 0.05), (0.3, top), (0.0, top - 0.55), (-0.35, top - 0.5)]],
        "spiny_dorsal": [[(-0.45, top + 0.03)] + [(x, top - (0.34 if i % 2 else 0.04))
                                                  for i, x in enumerate(np.linspace(-0.38, 0.25, 7))]
                         + [(0.3, top)]],
        "twin_dorsal": [[(-0.5, top + 0.05), (-0.2, top), (-0.4, top - 0.3)],
                        [(0.0, top), (0.3, top + 0.02), (0.1, top - 0.3)]],
    }[attributes["dorsal"]]
    for part in dorsal:
        fill(part, fin)
    fill([(0.05, 0.28 * width), (-0.2, 0.5 * width), (-0.25, 0.25 * width)], fin)  # pelvic fin, shared

    fill(_ellipse(0.0, 0.0, 0.72, 0.36 * width), body)
    pattern = attributes["pattern"]
    if pattern == "barred_body":
        for x in (-0.42, -0.14, 0.14):
            fill(_ellipse(x, 0.0, 0.08, 0.34 * width * math.sqrt(1 - (x / 0.72) ** 2), n=16), mark)
    elif pattern == "spotted_body":
        for x, y in zip(rng.uniform(-0.48, 0.18, 5), rng.uniform(-0.16, 0.16, 5)):
            fill(_ellipse(x, y * width, 0.09, 0.09, n=12), mark)
    elif pattern == "striped_body":
        fill(_ellipse(-0.1, 0.0, 0.56, 0.09, n=24), mark)

    fill(_ellipse(0.36, 0.03, 0.1, 0.24 * width, n=20), gill)
    snout = attributes["snout"]
    if snout == "long_snout":
        fill([(0.6, -0.1), (1.12, -0.02), (1.12, 0.04), (0.6, 0.12)], _shade(body, 0.75))
    elif snout == "upturned_jaw":
        fill([(0.5, 0.14), (0.95, -0.14), (0.8, 0.24)], _shade(body, 0.6))
    elif snout == "thick_lips":
        fill(_ellipse(0.72, 0.05, 0.11, 0.1, n=16), mark)
    fill(_ellipse(0.5, -0.1, 0.065, 0.065, n=12), (15, 12, 10))
    fill(_ellipse(0.51, -0.11, 0.02, 0.02, n=8), (235, 235, 235))


# The upper forewing of each shape, from its root at the body, and its tip.
_FOREWINGS = {
    "round_forewing": (_ellipse(0.4, -0.5, 0.58, 0.36, angle=-55), (0.72, -0.96)),
    "pointed_forewing": ([(0.14, -0.04), (0.5, -0.35), (0.98, -1.0), (0.45, -0.86), (0.0, -0.45), (-0.02, -0.08)],
                         (0.98, -1.0)),
    "square_forewing": ([(0.14, -0.04), (0.72, -0.5), (0.76, -0.96), (0.28, -0.96), (-0.02, -0.3), (-0.02, -0.06)],
                        (0.74, -0.94)),
}
_WING_ROOT = np.array([0.08, -0.08])


def _draw_butterfly(canvas, rng, pose, attributes):
    """A butterfly seen from above, head towards +x (before the pose), wings
    spread: hindwings, forewings with their spot and tip markings, eyespots, body."""
    draw = ImageDraw.Draw(canvas)

    def fill(points, colour):
        draw.polygon(pose(points), fill=colour)

    spot = _jitter(rng, _PART_COLOURS[attributes["spot_colour"]])
    wing = _distinct_colour(rng, [spot], saturation=(0.1, 0.9), value=(0.25, 0.95))
    hind = _shade(_jitter(rng, wing, 20), rng.uniform(0.75, 1.1))
    dark = _contrasting(rng, wing)
    light = _contrasting(rng, dark)
    body = _colour(rng, saturation=(0.0, 0.4), value=(0.05, 0.35))

    hindwing = attributes["hindwing"]
    round_hindwing = _ellipse(-0.32, -0.42, 0.46, 0.34, angle=52)
    hind_parts = {
        "round_hindwing": [round_hindwing],
        "tailed_hindwing": [round_hindwing, _bar((-0.55, -0.55), (-1.05, -0.7), 0.13)],
        "scalloped_hindwing": [np.stack([-0.34 + (0.44 + 0.07 * np.cos(6 * t)) * np.cos(t),
                                         -0.4 + (0.4 + 0.07 * np.cos(6 * t)) * np.sin(t)], axis=1)
                               for t in [np.linspace(0, 2 * np.pi, 48, endpoint=False)]],
        "pointed_hindwing": [[(0.0, -0.08), (-0.1, -0.72), (-0.5, -0.82), (-0.98, -0.3), (-0.4, -0.04)]],
    }[hindwing]
    forewing, tip = _FOREWINGS[attributes["forewing"]]
    axis = np.array(tip) - _WING_ROOT

    def along(fraction):  # a point on the forewing's axis, root (0) to tip (1)
        return _WING_ROOT + fraction * axis

    for reflect in (lambda p: np.asarray(p, float), _mirror):
        for part in hind_parts:
            fill(reflect(part), hind)
        fill(reflect(forewing), wing)
        marking = attributes["forewing_tip"]
        if marking == "dark_tip":
            fill(reflect(_ellipse(*along(0.84), 0.2, 0.16, angle=math.degrees(math.atan2(axis[1], axis[0])))), dark)
        elif marking == "banded_tip":
            normal = np.array([-axis[1], axis[0]]) / np.linalg.norm(axis)
            fill(reflect(_bar(along(0.7) - 0.24 * normal, along(0.7) + 0.24 * normal, 0.11)), light)
        elif marking == "dotted_tip":
            for fraction, side in ((0.88, 0.0), (0.74, 0.12), (0.74, -0.12)):
                centre = along(fraction) + side * np.array([axis[1], -axis[0]]) / np.linalg.norm(axis)
                fill(reflect(_ellipse(*centre, 0.08, 0.08, n=10)), light)
        fill(reflect(_ellipse(*along(0.45), 0.14, 0.14, n=16)), spot)
        eyespot = attributes["eyespot"]
        if eyespot == "ringed_eyespot":
            fill(reflect(_ellipse(-0.38, -0.44, 0.14, 0.14, n=16)), dark)
            fill(reflect(_ellipse(-0.38, -0.44, 0.065, 0.065, n=12)), light)
        elif eyespot == "twin_eyespots":
            for x, y in ((-0.24, -0.52), (-0.52, -0.32)):
                fill(reflect(_ellipse(x, y, 0.09, 0.09, n=12)), dark)
        elif eyespot == "hindwing_band":
            fill(reflect(_bar((-0.05, -0.3), (-0.68, -0.6), 0.12)), light)
    fill(_ellipse(0.0, 0.0, 0.55, 0.09, n=20), body)
    fill(_ellipse(0.6, 0.0, 0.1, 0.1, n=12), body)
    for reflect in (lambda p: np.asarray(p, float), _mirror):  # antennae, shared by all
        fill(reflect(_bar((0.65, -0.03), (1.0, -0.28), 0.03)), body)


# family -> (object length in canonical units, largest rotation in degrees,
# whether it is mirrored half of the time, scenery, object drawer)
_FAMILY_DRAWING = {
    "birds": (2.35, 15, True, _woodland, _draw_bird),
    "planes": (2.5, 180, False, _airfield, _draw_plane),
    "fish": (2.4, 20, True, _underwater, _draw_fish),
    "butterflies": (2.3, 180, False, _meadow, _draw_butterfly),
}


def _apply_lighting(rng, image):
    """Brightness, contrast, colour cast, a light gradient and sensor noise."""
    pixels = np.asarray(image, dtype=np.float32)
    size = pixels.shape[0]
    mean = pixels.mean()
    pixels = (pixels - mean) * rng.uniform(0.7, 1.3) + mean * rng.uniform(0.75, 1.2)
    pixels *= rng.uniform(0.85, 1.15, size=3)
    direction = rng.uniform(0, 2 * np.pi)
    ramp = np.linspace(-1.0, 1.0, size, dtype=np.float32)
    gradient = 1.0 + rng.uniform(0.0, 0.3) * (math.cos(direction) * ramp[None, :] + math.sin(direction) * ramp[:, None])
    pixels *= gradient[:, :, None]
    pixels += rng.standard_normal(size=pixels.shape, dtype=np.float32) * rng.uniform(0.0, 6.0)
    return Image.fromarray(np.clip(pixels + 0.5, 0, 255).astype(np.uint8))


if __name__ == "__main__":
    main()

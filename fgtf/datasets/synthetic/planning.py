"""What a synthetic dataset or world holds, before anything is written: the
checked arguments, every image's path, label and seed, and the metadata
(synthetic.json, world.json) that describes them. No file is touched here.
"""
from collections import Counter

import numpy as np

from fgtf.datasets.synthetic.classes import (ATTRIBUTES, FAMILIES, SOURCE_SHARES, WORLD_IMAGES_STREAM,
                                             attribute_values, max_classes, source_family_classes, world_class_name)
from fgtf.errors import ParameterError, UserError

# Recorded in every metadata file; raised whenever the same arguments would
# draw other images or lists, so that folders (and the study runs made from
# them, `fgtf.study.start`) of an older fgtf are made again, not reused.
# 2: each family its own part colours, planes and fish turn at most 35 degrees,
# planes' parts larger, fish's gill and body marks smaller.
# 3: butterflies' spots take the planes' wingtip colours (the family absent
# from the pool is near planes in looks and in parts alike), fish's body marks
# a tone of the body rather than a contrasting colour.
FORMAT_VERSION = 3
# the "generator" of every metadata file: how a folder is recognised as synthetic
GENERATOR = "fgtf.datasets.synthetic"
# Fraction of a novel class's mislabelled images taken from its most similar classes.
_SIMILAR_NOISE_FRACTION = 0.8
_SPLIT_INDEX = {"train": 0, "val": 1}


def check_arguments(**arguments):
    """Return the generation arguments as stored in the metadata, or raise UserError."""
    family, classes = arguments["family"], arguments["classes"]
    if family not in FAMILIES:
        raise UserError(f"unknown family {family!r}; families are {', '.join(FAMILIES)}")
    if not 2 <= classes <= max_classes(family):
        raise ParameterError(f"`classes` must be between 2 and {max_classes(family)} for {family}, got {classes}")
    if arguments["train_per_class"] < 1:
        raise ParameterError(f"`train_per_class` must be at least 1, got {arguments['train_per_class']}")
    if arguments["val_per_class"] < 0:
        raise ParameterError(f"`val_per_class` must be at least 0, got {arguments['val_per_class']}")
    if not 32 <= arguments["image_size"] <= 1024:
        raise ParameterError(f"`image_size` must be between 32 and 1024, got {arguments['image_size']}")
    if arguments["seed"] < 0:
        raise ParameterError(f"`seed` must be non-negative, got {arguments['seed']}")
    if not 0.0 <= arguments["label_noise"] < 1.0:
        raise ParameterError(f"`label_noise` must be in [0, 1), got {arguments['label_noise']}")
    if not 0 <= arguments["novel_classes"] < classes:
        raise ParameterError(f"`novel_classes` must be between 0 and {classes - 1} (at least one base class), "
                             f"got {arguments['novel_classes']}")
    if arguments["label_noise"] > 0 and arguments["novel_classes"] == 0:
        raise ParameterError("`label_noise` applies to novel classes only; give `novel_classes` N as well")
    arguments["label_noise"] = float(arguments["label_noise"])
    arguments["format_version"] = FORMAT_VERSION
    return arguments


def plan_images(arguments, definitions, names):
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


def dataset_metadata(arguments, definitions, names, train, clean):
    """The content of a single dataset's synthetic.json."""
    attributes = ATTRIBUTES[arguments["family"]]
    first_novel = len(names) - arguments["novel_classes"]
    return {
        "generator": GENERATOR,
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


def check_world_arguments(**arguments):
    """Return the world's arguments as stored in world.json, or raise UserError."""
    if arguments["seed"] < 0:
        raise ParameterError(f"`seed` must be non-negative, got {arguments['seed']}")
    if not 32 <= arguments["image_size"] <= 1024:
        raise ParameterError(f"`image_size` must be between 32 and 1024, got {arguments['image_size']}")
    for knob in ("source_classes", "min_source_per_class", "source_val_per_class", "target_train_per_class",
                 "target_val_per_class"):
        if arguments[knob] < 1:
            raise UserError(f"--{knob} must be at least 1, got {arguments[knob]}")
    if arguments["max_source_per_class"] < arguments["min_source_per_class"]:
        raise ParameterError(f"`max_source_per_class` must be at least `min_source_per_class` "
                             f"({arguments['min_source_per_class']}), got {arguments['max_source_per_class']}")
    if arguments["target_classes"] < 2:
        raise ParameterError(f"`target_classes` must be at least 2, got {arguments['target_classes']}")
    for family, count in source_family_classes(arguments["source_classes"]).items():
        if count + arguments["target_classes"] > max_classes(family):
            raise ParameterError(f"`source_classes` {arguments['source_classes']} and `target_classes` "
                                 f"{arguments['target_classes']} need {count + arguments['target_classes']} {family} "
                                 f"classes, more than the {max_classes(family)} it offers; choose fewer")
    return dict(arguments, source_shares=dict(SOURCE_SHARES), format_version=FORMAT_VERSION)


def plan_world_images(classes, train_counts, val_counts, seed):
    """{split: [(relative path, label, family, values, image seed)]} of one world
    folder. An image's seed names its class by family and attribute values, so
    every image of the world is drawn from a seed of its own."""
    plan = {"train": [], "val": []}
    for label, ((family, values), counts) in enumerate(zip(classes, zip(train_counts, val_counts))):
        name = world_class_name(family, values)
        for split, count in zip(plan, counts):
            for index in range(count):
                image_seed = (seed, WORLD_IMAGES_STREAM, FAMILIES.index(family), *values, _SPLIT_INDEX[split], index)
                plan[split].append((f"images/{name}/{split}_{index:04d}.jpg", label, family, values, image_seed))
    return plan


def world_folder_metadata(arguments, classes, plan):
    """The content of one world folder's synthetic.json."""
    names = [world_class_name(family, values) for family, values in classes]
    images = {split: Counter(label for _, label, *_ in plan[split]) for split in plan}
    families = [family for family in FAMILIES if any(f == family for f, _ in classes)]
    return {
        "generator": GENERATOR,
        "world_arguments": arguments,
        "family_attributes": {family: {attribute: list(values) for attribute, values in ATTRIBUTES[family]}
                              for family in families},
        "classes": [{"label": label, "name": name, "family": family,
                     "attributes": attribute_values(family, values),
                     "train_images": images["train"][label], "val_images": images["val"][label]}
                    for label, (name, (family, values)) in enumerate(zip(names, classes))],
        "novel_classes": [],
        "num_images": {split: len(plan[split]) for split in plan},
        "num_mislabelled_train_images": 0,
    }


def world_description(arguments, folders):
    """The content of world.json, from the (folder, classes, plan) of each
    world folder, the source first."""
    (source_dir, source_classes, source_plan), targets = folders[0], folders[1:]
    family_classes = Counter(family for family, _ in source_classes)
    family_train_images = Counter(family for _, _, family, _, _ in source_plan["train"])
    return {
        "format_version": FORMAT_VERSION,
        "generator": GENERATOR,
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


def world_folders(world):
    """The dataset folders of a world, relative to it."""
    return [world["source"]["dataset_dir"]] + [target["dataset_dir"] for target in world["targets"]]


"""Class design of the synthetic world: the families and their attributes,
classes as combinations of attribute values, class names, and how the world
shares its classes out over the source pool and the targets.
"""
import math
from collections import Counter

import numpy as np

FAMILIES = ("birds", "planes", "fish", "butterflies")

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
        ("wingtips", ("orange_tips", "green_tips", "black_tips", "magenta_tips")),
        ("insignia", ("no_insignia", "roundel", "triangle", "cross")),
        ("nose", ("pointed_nose", "round_nose", "blunt_nose", "probe_nose")),
        ("canopy", ("bubble_canopy", "long_canopy", "twin_canopy", "no_canopy")),
    ),
    "fish": (
        ("gill", ("purple_gill", "cyan_gill", "pink_gill", "lime_gill")),
        ("tail_fin", ("forked_fin", "fan_fin", "square_fin", "pointed_fin")),
        ("dorsal", ("low_dorsal", "sail_dorsal", "spiny_dorsal", "twin_dorsal")),
        ("pattern", ("plain_body", "barred_body", "spotted_body", "striped_body")),
        ("snout", ("blunt_snout", "long_snout", "upturned_jaw", "thick_lips")),
    ),
    "butterflies": (
        ("spot_colour", ("orange_spots", "green_spots", "black_spots", "magenta_spots")),
        ("forewing", ("round_forewing", "pointed_forewing", "square_forewing")),
        ("hindwing", ("round_hindwing", "tailed_hindwing", "scalloped_hindwing", "pointed_hindwing")),
        ("forewing_tip", ("plain_tip", "dark_tip", "banded_tip", "dotted_tip")),
        ("eyespot", ("no_eyespot", "ringed_eyespot", "twin_eyespots", "hindwing_band")),
    ),
}

# Each family's share of the world's source classes: like iNat's many birds
# and few cars, with one family absent (it is met only as a target).
SOURCE_SHARES = {"birds": 0.56, "planes": 0.28, "fish": 0.16, "butterflies": 0.0}

# Sub-streams of a seed: the single dataset's classes (1) and noise (2), the
# world's target classes (3), source classes (4), source counts (5) and images (7).
TARGET_CLASSES_STREAM, SOURCE_CLASSES_STREAM, SOURCE_COUNTS_STREAM, WORLD_IMAGES_STREAM = 3, 4, 5, 7


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


def attribute_values(family, values):
    """{attribute: value name} of a class of `family` with value indices `values`."""
    return {attribute: names[v] for (attribute, names), v in zip(ATTRIBUTES[family], values)}


def _value_names(family, values):
    return "-".join(attribute_values(family, values).values())


def source_family_classes(source_classes):
    """{family: its number of source classes}: `source_classes` shared out by
    `SOURCE_SHARES` (largest remainders get the classes rounding leaves over)."""
    exact = {family: source_classes * SOURCE_SHARES[family] for family in FAMILIES}
    counts = {family: int(math.floor(share)) for family, share in exact.items()}
    for family in sorted(FAMILIES, key=lambda f: counts[f] - exact[f])[:source_classes - sum(counts.values())]:
        counts[family] += 1
    return counts


def world_classes(arguments):
    """(source classes, {family: target classes}), each class a (family, value
    indices) pair; a family's target classes are never among its source classes."""
    seed, target_classes = arguments["seed"], arguments["target_classes"]
    source, targets = [], {}
    for family, count in source_family_classes(arguments["source_classes"]).items():
        target = class_definitions(family, target_classes, seed, stream=TARGET_CLASSES_STREAM)
        pool = class_definitions(family, count + target_classes, seed, stream=SOURCE_CLASSES_STREAM) if count else []
        taken = set(target)
        source += [(family, values) for values in pool if values not in taken][:count]
        targets[family] = [(family, values) for values in target]
    return source, targets


def source_train_counts(arguments, num_classes):
    """Training images per source class: falling exponentially with a random
    rank from `max_source_per_class` to `min_source_per_class`."""
    high, low = arguments["max_source_per_class"], arguments["min_source_per_class"]
    rng = np.random.default_rng(np.random.SeedSequence([arguments["seed"], SOURCE_COUNTS_STREAM]))
    ranks = rng.permutation(num_classes)
    return [int(round(high * (low / high) ** (rank / max(num_classes - 1, 1)))) for rank in ranks]


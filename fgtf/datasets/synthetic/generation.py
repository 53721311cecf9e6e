"""Writing a synthetic dataset or world: `generate` and `generate_world` plan
the images, draw them (in worker processes), write the lists and the
metadata into `<out>.partial` and swap it into place when complete;
`read_clean_labels` reads a dataset's true training labels back.
"""
import io
import json
import multiprocessing
import os
import shutil

import numpy as np

from fgtf.datasets.synthetic.classes import (class_definitions, class_name, source_train_counts, world_class_name,
                                             world_classes)
from fgtf.datasets.synthetic.draw import render_image
from fgtf.datasets.synthetic.planning import (GENERATOR, check_arguments, check_world_arguments, dataset_metadata,
                                              plan_images, plan_world_images, world_description,
                                              world_folder_metadata, world_folders)
from fgtf.errors import ParameterError, UserError

METADATA_FILE = "synthetic.json"
WORLD_FILE = "world.json"
CLEAN_LABELS_FILE = "train_clean_labels.txt"


def generate(out_dir: str, classes: int = 20, train_per_class: int = 30, val_per_class: int = 30, image_size: int = 160,
             seed: int = 0, family: str = "birds", label_noise: float = 0.0, novel_classes: int = 0,
             num_workers: int | None = None) -> dict:
    """Write the dataset into `out_dir` (see the package docstring) and return its
    metadata (the dict stored in `synthetic.json`).

    `num_workers` processes draw the images (None: one per CPU; 1: in this process).
    Returns at once when `out_dir` already holds a complete dataset made with the
    same arguments; replaces a synthetic dataset made with other arguments;
    refuses (UserError) to touch a non-empty folder that is not one.
    """
    arguments = check_arguments(classes=classes, train_per_class=train_per_class,
                                 val_per_class=val_per_class, image_size=image_size, seed=seed,
                                 family=family, label_noise=label_noise, novel_classes=novel_classes)
    out_dir = os.path.abspath(out_dir)
    existing = _existing_metadata(out_dir)
    if existing is not None and existing["arguments"] == arguments and _files_present(out_dir):
        return existing

    definitions = class_definitions(family, classes, seed)
    names = [class_name(family, label, values) for label, values in enumerate(definitions)]
    train, clean, val = plan_images(arguments, definitions, names)

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
    metadata = dataset_metadata(arguments, definitions, names, train, clean)
    def write():
        _run_jobs(jobs, num_workers)
        _write_lines(os.path.join(partial, "train.txt"), [f"{path}: {label}" for path, label, _ in train])
        _write_lines(os.path.join(partial, "val.txt"), [f"{path}: {label}" for path, label, _ in val])
        _write_lines(os.path.join(partial, CLEAN_LABELS_FILE), [f"{path}: {label}" for path, label, _ in clean])
        _write_lines(os.path.join(partial, "classes.txt"), names)
        _write_lines(os.path.join(partial, METADATA_FILE), [json.dumps(metadata, indent=1)])

    _complete(partial, out_dir, write)
    return metadata


def generate_world(out_dir: str, seed: int = 0, image_size: int = 64, num_workers: int | None = None,
                   source_classes: int = 250, max_source_per_class: int = 200, min_source_per_class: int = 4,
                   source_val_per_class: int = 5, target_classes: int = 20, target_train_per_class: int = 30,
                   target_val_per_class: int = 30) -> dict:
    """Write the transfer world into `out_dir` and return its description (the
    dict stored in `<out_dir>/world.json`, see the package docstring).

    The source pool has `source_classes` classes shared out over the families
    by `SOURCE_SHARES`; its per-class training counts fall off exponentially
    (a straight line on a log scale, as iNat's do) from `max_source_per_class`
    to `min_source_per_class` over the classes in a random order, plus
    `source_val_per_class` validation images each. Each family gets a target
    of `target_classes` classes, none of them in the source, with
    `target_train_per_class` + `target_val_per_class` images each.

    `num_workers` processes draw the images (None: one per CPU; 1: in this process);
    the bytes do not depend on it. Returns at once when `out_dir` holds a
    complete world made with the same arguments; replaces a world made with
    other arguments; refuses (UserError) a non-empty folder that is not a world.
    """
    arguments = check_world_arguments(
        seed=seed, image_size=image_size, source_classes=source_classes, max_source_per_class=max_source_per_class,
        min_source_per_class=min_source_per_class, source_val_per_class=source_val_per_class,
        target_classes=target_classes, target_train_per_class=target_train_per_class,
        target_val_per_class=target_val_per_class)
    out_dir = os.path.abspath(out_dir)
    existing = _existing_metadata(out_dir, WORLD_FILE, "synthetic world")
    if existing is not None and existing["arguments"] == arguments and all(
            _files_present(os.path.join(out_dir, folder)) for folder in world_folders(existing)):
        return existing

    source, targets = world_classes(arguments)
    counts = source_train_counts(arguments, len(source))
    folders = [("source", source, counts, [source_val_per_class] * len(source))]
    folders += [(f"targets/{family}", classes, [target_train_per_class] * len(classes),
                 [target_val_per_class] * len(classes)) for family, classes in targets.items()]
    partial = out_dir + ".partial"
    _remove(partial)
    jobs, writes = [], []
    try:
        for folder, classes, train_counts, val_counts in folders:
            plan = plan_world_images(classes, train_counts, val_counts, seed)
            for family, values in classes:
                os.makedirs(os.path.join(partial, folder, "images", world_class_name(family, values)))
            jobs += [(os.path.join(partial, folder, path), family, values, image_seed, image_size)
                     for split in plan.values() for path, _, family, values, image_seed in split]
            writes.append((folder, classes, plan))
    except OSError as error:
        raise UserError(f"cannot write the world next to {out_dir}: {error.strerror}") from error
    world = world_description(arguments, writes)
    def write():
        _run_jobs(jobs, num_workers)
        for folder, classes, plan in writes:
            _write_world_folder(os.path.join(partial, folder), arguments, classes, plan)
        _write_lines(os.path.join(partial, WORLD_FILE), [json.dumps(world, indent=1)])

    _complete(partial, out_dir, write)
    return world


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



# ----------------------------------------------------------------------------
# Writing: every file goes into `<out>.partial`, which replaces `<out>` only
# when complete, so an interrupted run never leaves a half-written dataset.


def _write_world_folder(folder, arguments, classes, plan):
    """The lists and the metadata of one world folder (its images are drawn)."""
    for split, list_name in (("train", "train.txt"), ("val", "val.txt")):
        _write_lines(os.path.join(folder, list_name), [f"{path}: {label}" for path, label, *_ in plan[split]])
    _write_lines(os.path.join(folder, "classes.txt"), [world_class_name(family, values) for family, values in classes])
    metadata = world_folder_metadata(arguments, classes, plan)
    _write_lines(os.path.join(folder, METADATA_FILE), [json.dumps(metadata, indent=1)])


def _run_jobs(jobs, num_workers):
    workers = os.cpu_count() if num_workers is None else num_workers
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
        raise ParameterError(f"`out` {out_dir} is a file, not a folder")
    if not os.path.isdir(out_dir) or not os.listdir(out_dir):
        return None
    try:
        with open(os.path.join(out_dir, file_name), encoding="utf-8") as handle:
            metadata = json.load(handle)
    except (OSError, ValueError):
        metadata = None
    if not isinstance(metadata, dict) or metadata.get("generator") != GENERATOR:
        raise ParameterError(f"`out` {out_dir} is a non-empty folder that is not a {kind}; "
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


def _complete(partial, out_dir, write):
    """`write()` the rest of the prepared folder `partial`, then swap it into
    place as `out_dir`; interrupted or failed, no half-written folder is left."""
    try:
        write()
        _swap_into_place(partial, out_dir)
    except BaseException:
        _remove(partial)
        raise


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

"""The SimTrans steps (Chen et al., NeurIPS 2021) as library functions over one
run folder (`fgtf.simtrans.run_folder`), in the order they run:

    pretrain(run_dir, PretrainOptions(dataset_dir=...))   backbone + classifier on the base classes, run.json
    train_simnet(run_dir, SimNetOptions(...))             SimNet with the adversarial domain discriminator
    compute_weights(run_dir, ...)                         per-image sample weights of the novel training images
    train_classifier(run_dir, ClassifierOptions(...))     weighted CE, then alternating graph / CE epochs
    evaluate(run_dir, ...)                                top-1 accuracy on the novel, base and all test images

The fields of the options (frozen dataclasses: `dataclasses.replace`
varies them), and the keyword arguments of the two short steps, are the
command's flag destinations (`python -m fgtf.simtrans STEP --help` says
what each means; its defaults are these).
A mistake in the input is a `UserError` (a ValueError); the CLI turns it
into one sentence and exit code 2.
"""
import dataclasses
import json
import os
import time
from typing import Optional, Sequence

import numpy as np

from fgtf.simtrans.networks import build_classifier, build_simnet, load_simnet, start_network
from fgtf.simtrans.run_folder import (BACKBONE_WEIGHTS, CLASSIFIER_WEIGHTS, SIMNET_WEIGHTS, current_step,
                                      finish_step, forget_step, load_run, read_weights, save_weights,
                                      weights_file, write_run)
from fgtf.errors import UserError

STEPS = ("pretrain", "simnet", "weights", "train", "eval")
WEIGHT_FORMULAS = ("savg1", "avg1")
PRETRAIN_DATA = ("clean_base", "noisy_novel")
LABEL_SPACES = ("all", "novel")
# --augment: the test transform of the run's --preprocessing plus a random flip, or that pipeline's own training
# transform ("inception", its former name, when inception was the only pipeline)
AUGMENTATIONS = ("flip", "train")
FORMER_AUGMENTATIONS = {"inception": "train"}


@dataclasses.dataclass(frozen=True, kw_only=True)
class Schedule:
    """How a step trains, the settings every training step shares: SGD
    (momentum 0.9) for `epochs`, lr halved every `lr_interval` epochs,
    coupled L2 `weight_decay`, the `augment` preprocessing, `batch_size`
    images per batch, `seed`. Each training step's options extend it, with
    their own defaults where they differ from these (the train step's)."""
    epochs: int = 8
    lr: float = 0.02
    lr_interval: int = 20
    weight_decay: float = 1e-4
    augment: str = "flip"
    batch_size: Optional[int] = 16
    seed: int = 0


@dataclasses.dataclass(frozen=True, kw_only=True)
class PretrainOptions(Schedule):
    """The settings of `pretrain` (step 0): `python -m fgtf.simtrans
    pretrain`'s flags, each field named as its destination (`--learning_rate`
    is `lr`, `--num_epochs_per_decay` `lr_interval`). `model`, `image_size`
    and `preprocessing` left None: those of a `checkpoint` run (see
    `fgtf.simtrans.networks.start_network`), else small_cnn at 64 px, then
    the network's pipeline."""
    dataset_dir: str
    dataset: str = "synthetic"
    novel_classes: Optional[Sequence[int]] = None
    num_novel: Optional[int] = None
    model: Optional[str] = None
    image_size: Optional[int] = None
    preprocessing: Optional[str] = None
    checkpoint: Optional[str] = None
    pretrain_data: str = "clean_base"
    epochs: int = 15
    batch_size: int = 32


@dataclasses.dataclass(frozen=True, kw_only=True)
class SimNetOptions(Schedule):
    """The settings of `train_simnet` (step 1), named as `python -m
    fgtf.simtrans simnet`'s flag destinations. `beta` 0.1 is the method's
    adversarial weight (0: the released script's, which leaves the term
    out). `batch_size` None: fitted to the data (`fitted_pair_batch`);
    `batch_classes` None: the original's 20 at 50 images or more, else one
    class per 5 images."""
    beta: float = 0.1
    domain_lr: float = 0.01
    batch_classes: Optional[int] = None
    batch_classes_novel: int = 2
    eval_batches: int = 10
    eval_classes: int = 10
    eval_images: int = 10
    lr: float = 0.01
    batch_size: Optional[int] = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class ClassifierOptions(Schedule):
    """The settings of `train_classifier` (step 3), named as `python -m
    fgtf.simtrans train`'s flag destinations: `epochs` weighted-CE epochs
    (`weighting`), then `graph_epochs` alternating graph (weight `alpha`,
    batch `graph_batch_size`) and CE epochs (`graph_weighting`)."""
    classes: str = "all"
    init: str = "pretrain"
    weighting: str = "savg1"
    graph_epochs: int = 0
    graph_weighting: str = "avg1"
    graph_batch_size: int = 128
    alpha: float = 0.1
    mu: float = -4.0
    eye: int = 1


def pretrain(run_dir: str, options: PretrainOptions) -> None:
    """Step 0: train backbone + classifier with plain CE, save the backbone and
    write run.json (the class split, network and input pipeline every later
    step uses)."""
    from fgtf.datasets import weak_shot_split
    from fgtf.models import list_models

    model, image_size, preprocessing, taken = start_network(options.checkpoint, options.model, options.image_size,
                                                            options.preprocessing)
    if model not in list_models():
        raise UserError(f"unknown model {model!r}; choose one of {', '.join(list_models())}")
    if options.pretrain_data not in PRETRAIN_DATA:
        raise UserError(f"pretrain_data must be clean_base or noisy_novel, got {options.pretrain_data!r}")
    novel = _novel_classes(options.dataset, options.dataset_dir, options.novel_classes, options.num_novel,
                           options.seed)
    data = weak_shot_split(options.dataset, options.dataset_dir, novel)
    run = {"dataset": options.dataset, "dataset_dir": os.path.abspath(options.dataset_dir), "model": model,
           "image_size": image_size, "preprocessing": preprocessing, "base_classes": data.base_classes,
           "novel_classes": data.novel_classes}
    settings = {**run, "checkpoint": options.checkpoint and os.path.abspath(options.checkpoint),
                "pretrain_data": options.pretrain_data,
                **{field.name: getattr(options, field.name) for field in dataclasses.fields(Schedule)}}
    _set_seed(options.seed)
    clean_base = options.pretrain_data == "clean_base"
    train_records, test_sets = ((data.base_train, {"base": data.base_test}) if clean_base
                                else (data.novel_train, {"novel": data.novel_test}))
    classes = len(data.base_classes) if clean_base else len(data.novel_classes)
    classifier = build_classifier(run, classes, backbone_weights=options.checkpoint, taken=taken)
    history = _fit_classifier(classifier, run, train_records, [1.0] * len(train_records), test_sets, options,
                              step="pretrain")
    forget_step(run_dir, "pretrain")
    save_weights(classifier.backbone, run_dir, BACKBONE_WEIGHTS)
    write_run(run_dir, run)
    finish_step(run_dir, "pretrain", {"data": options.pretrain_data, "epochs": history}, settings, {})


def train_simnet(run_dir: str, options: SimNetOptions = SimNetOptions()) -> None:
    """Step 1: SimNet + discriminator on zipped base / novel class-grouped
    batches."""
    import keras

    run, data = load_run(run_dir)
    inputs = {"pretrain": current_step(run_dir, "pretrain")}
    batch_size = options.batch_size or fitted_pair_batch(len(data.base_train), len(data.novel_train))
    batch_classes = options.batch_classes or (20 if batch_size >= 50 else max(2, batch_size // 5))
    settings = {**dataclasses.asdict(options), "batch_classes": batch_classes, "batch_size": batch_size}
    _set_seed(options.seed)
    simnet = build_simnet(run, os.path.join(run_dir, BACKBONE_WEIGHTS), beta=options.beta,
                          weight_decay=options.weight_decay)
    rng = np.random.default_rng(options.seed)
    history = []
    for epoch in range(options.epochs):
        epoch_lr = options.lr * 0.5 ** (epoch // options.lr_interval)
        simnet.compile(keras.optimizers.SGD(epoch_lr, momentum=0.9),
                       discriminator_optimizer=keras.optimizers.SGD(options.domain_lr * epoch_lr / options.lr,
                                                                    momentum=0.9),
                       jit_compile=False)
        iterations = _pair_batch_plan(data, batch_size, batch_classes, options.batch_classes_novel, rng)
        if not iterations:
            raise UserError(f"no SimNet iteration fits: --batch_size {batch_size} is larger than the base or "
                            f"novel training set; lower it")
        started = time.time()
        logs = simnet.fit(_pair_dataset(data, iterations, run, batch_size, options.augment, options.seed, epoch),
                          epochs=1, verbose=0, shuffle=False)
        scores = {split: _pair_f1(simnet, records, run, options.eval_batches, options.eval_classes,
                                  options.eval_images, rng)
                  for split, records in (("base_test", data.base_test), ("novel_test", data.novel_test))}
        record = {"epoch": epoch + 1, "lr": epoch_lr, **{k: float(v[-1]) for k, v in logs.history.items()},
                  **{f"f1_{k}": v for k, v in scores.items()}}
        history.append(record)
        print(f"[simnet] epoch {epoch + 1}/{options.epochs} ({len(iterations)} iterations, "
              f"{time.time() - started:.0f} s): "
              f"sim_loss {record['sim_loss']:.4f} pair_acc {record['pair_accuracy']:.3f} "
              f"domain_loss {record['domain_loss']:.4f} domain_acc {record['domain_accuracy']:.3f} "
              f"F1 base {scores['base_test']:.3f} novel {scores['novel_test']:.3f}", flush=True)
    inference = build_simnet(run)
    inference.set_weights(simnet.get_weights())
    forget_step(run_dir, "simnet")
    save_weights(inference, run_dir, SIMNET_WEIGHTS)
    finish_step(run_dir, "simnet", {"beta": options.beta, "epochs": history}, settings, inputs)


def compute_weights(run_dir: str, *, figure_images: int = 4, batch_size: int = 64) -> None:
    """Step 2: per novel class, SimNet similarities of its training images -> sample weights."""
    from fgtf.datasets import class_names_of
    from fgtf.fileio import atomic_path, write_json
    from fgtf.plots import sample_weights_png
    from fgtf.simtrans.model import sample_weights

    run, data = load_run(run_dir)
    inputs = {"simnet": current_step(run_dir, "simnet")}
    simnet = load_simnet(run_dir, run)
    records = sorted(data.novel_train, key=lambda r: (r.label, r.path))
    features = _features(simnet, [r.path for r in records], run, batch_size)
    labels = np.array([r.label for r in records])
    paths = np.array([r.path for r in records])
    weights = {formula: np.zeros(len(records), np.float32) for formula in WEIGHT_FORMULAS}
    matrices = {}
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        matrix = np.asarray(simnet.head.similarity_matrix(features[members], features[members]))
        matrices[f"S_{label}"], matrices[f"paths_{label}"] = matrix, paths[members]
        for formula in WEIGHT_FORMULAS:
            weights[formula][members] = sample_weights(matrix, formula, "one_mean")
        print(f"[weights] novel class {label}: {len(members)} images, mean similarity {matrix.mean():.3f}", flush=True)
    mislabelled = _mislabelled(records, run)
    summary = {formula: _weight_summary(values, mislabelled) for formula, values in weights.items()}
    names = class_names_of(data.novel_train)
    classes = np.unique(labels)
    forget_step(run_dir, "weights")
    with atomic_path(os.path.join(run_dir, "weights", "similarities.npz")) as tmp:
        np.savez(tmp, **matrices)
    for formula, values in weights.items():
        write_json(weights_file(run_dir, formula), {path: float(w) for path, w in zip(paths, values)})
    sample_weights_png([list(paths[labels == c]) for c in classes],
                       [weights[WEIGHT_FORMULAS[0]][labels == c] for c in classes],
                       os.path.join(run_dir, "weights", "sample_weights.png"),
                       class_names=[names.get(c, str(c)) for c in classes], count=figure_images,
                       title=f"SimTrans sample weights ({WEIGHT_FORMULAS[0]}): highest and lowest per novel class",
                       mislabelled_by_class=None if mislabelled is None else [mislabelled[labels == c]
                                                                              for c in classes])
    for formula, stats in summary.items():
        line = f"[weights] {formula}: min {stats['min']:.4g} max {stats['max']:.4g}"
        if "mean_clean" in stats:
            line += f"; mean weight clean {stats['mean_clean']:.4g}, mislabelled {stats['mean_mislabelled']:.4g}"
        print(line, flush=True)
    finish_step(run_dir, "weights", summary, {"figure_images": figure_images, "batch_size": batch_size}, inputs)


def train_classifier(run_dir: str, options: ClassifierOptions = ClassifierOptions()) -> None:
    """Step 3: weighted-CE epochs, then alternating graph / CE epochs."""
    run, data = load_run(run_dir)
    uses_graph = bool(options.graph_epochs and options.alpha)
    used_steps = ["pretrain"]  # run.json's class split, and the backbone unless --init scratch
    if {options.weighting, options.graph_weighting} - {"none"}:
        used_steps.append("weights")
    if uses_graph:
        used_steps.append("simnet")
    inputs = {step: current_step(run_dir, step) for step in used_steps}
    _set_seed(options.seed)
    records, num_classes, test_sets = _label_space(data, options.classes)
    weights = {formula: read_weights(run_dir, formula)
               for formula in dict.fromkeys([options.weighting, options.graph_weighting]) if formula != "none"}
    simnet = load_simnet(run_dir, run) if uses_graph else None
    model = build_classifier(run, num_classes, backbone_weights=os.path.join(run_dir, BACKBONE_WEIGHTS)
                             if options.init == "pretrain" else None, simnet=simnet)

    def weights_for(formula):
        return [weights[formula].get(r.path, 1.0) if formula != "none" else 1.0 for r in records]

    history = _fit_classifier(model, run, records, weights_for(options.weighting), test_sets, options, step="train")
    for epoch in range(options.graph_epochs):
        graph_epoch = epoch % 2 == 0
        graph = {"graph_weight": options.alpha if graph_epoch else 0.0, "mu": options.mu, "eye": options.eye}
        history += _fit_classifier(model, run, records, weights_for(options.graph_weighting), test_sets,
                                   dataclasses.replace(options, epochs=1, batch_size=options.graph_batch_size
                                                       if graph_epoch else options.batch_size),
                                   step="train/graph" if graph_epoch else "train/ce",
                                   first_epoch=options.epochs + epoch, schedule_start=options.epochs, graph=graph)
    # saved without the SimNet of the graph term and without the optimizer
    inference = build_classifier(run, num_classes)
    inference.backbone.set_weights(model.backbone.get_weights())
    inference.classifier.set_weights(model.classifier.get_weights())
    forget_step(run_dir, "train")
    save_weights(inference, run_dir, CLASSIFIER_WEIGHTS)
    finish_step(run_dir, "train", {"classes": options.classes, "num_classes": num_classes,
                                   "weighting": options.weighting, "graph_weighting": options.graph_weighting,
                                   "alpha": options.alpha, "mu": options.mu, "eye": options.eye,
                                   "epochs": history}, dataclasses.asdict(options), inputs)


def evaluate(run_dir: str, *, batch_size: int = 64) -> None:
    """Top-1 accuracy of the trained classifier on the test sets of its label space."""
    run, data = load_run(run_dir)
    trained = current_step(run_dir, "train")
    classes = trained["settings"]["classes"]
    _, num_classes, test_sets = _label_space(data, classes)
    model = build_classifier(run, num_classes)
    model.load_weights(os.path.join(run_dir, CLASSIFIER_WEIGHTS))
    metrics = {name: _accuracy(model, records, run, batch_size)
               for name, records in test_sets.items()}
    for name, value in metrics.items():
        print(f"[eval] {name}: top-1 accuracy {value:.4f} ({len(test_sets[name])} images)", flush=True)
    forget_step(run_dir, "eval")
    finish_step(run_dir, "eval", {"classes": classes, "accuracy": metrics}, {"batch_size": batch_size},
                {"train": trained})


def fitted_pair_batch(base_images, novel_images):
    """The images of a SimNet batch for a base and a novel training set of
    these sizes: the original's 50 when each set holds 7 such batches or
    more, else the largest multiple of 5 (at least 10) that each holds 7
    times. The original's 50 give 150 novel images (5 classes of 30) 3
    iterations an epoch, too few for SimNet to learn anything; 20 (over 4
    classes), as fitted there, learn (benchmarks/simtrans_defaults.py)."""
    smaller = min(base_images, novel_images)
    return 50 if smaller >= 7 * 50 else max(10, smaller // 7 // 5 * 5)


def class_grouped_batches(labels, batch_size, classes_per_batch, rng):
    """The original's pair batches (spec §5.1): floor(N / batch_size) batches,
    each from at most `classes_per_batch` classes picked at random among those
    with unused images; each slot takes a random unused image of a uniformly
    chosen picked class, a class that runs out leaves the pick (the batch may
    then be shorter). Every image is used at most once. Returns index lists."""
    labels = np.asarray(labels)
    unused = {int(c): list(rng.permutation(np.flatnonzero(labels == c))) for c in np.unique(labels)}
    batches = []
    for _ in range(len(labels) // batch_size):
        available = [c for c, members in unused.items() if members]
        if not available:
            break
        picked = [int(c) for c in rng.permutation(available)[:classes_per_batch]]
        batch = []
        while len(batch) < batch_size and picked:
            label = picked[rng.integers(len(picked))]
            batch.append(int(unused[label].pop()))
            if not unused[label]:
                picked.remove(label)
        batches.append(batch)
    return batches


# ---------------------------------------------------------------- classes and labels

def _novel_classes(dataset, dataset_dir, novel_classes, num_novel, seed):
    """The novel labels: given, drawn (`num_novel` with `seed`), or a synthetic
    dataset's recorded ones; checked against the dataset's class count."""
    from fgtf.datasets import base_novel_split, get_num_classes

    num_classes = get_num_classes(dataset, dataset_dir)
    if novel_classes:
        outside = sorted({label for label in novel_classes if not 0 <= label < num_classes})
        if outside:
            raise UserError(f"--novel_classes {','.join(map(str, outside))}: the {num_classes}-class dataset "
                            f"{dataset_dir} has labels 0 to {num_classes - 1}")
        novel = sorted(set(novel_classes))
    elif num_novel:
        novel = base_novel_split(num_classes, num_novel, seed)[1]
    else:
        metadata = os.path.join(dataset_dir, "synthetic.json")
        novel = []
        if os.path.isfile(metadata):
            with open(metadata, encoding="utf-8") as handle:
                novel = json.load(handle).get("novel_classes") or []
        if not novel:
            raise UserError("give the novel classes with --novel_classes or --num_novel (only a synthetic dataset "
                            "generated with --novel_classes records them)")
    if num_classes - len(novel) < 2:
        raise UserError(f"{len(novel)} novel classes of {num_classes} leave fewer than 2 base classes for "
                        f"pretraining and SimNet; choose fewer novel classes")
    return novel


def _label_space(data, classes):
    """(training records, num_classes, {test name: records}) of `classes`:
    `novel` keeps the novel labels; `all` puts the base classes first and
    shifts the novel labels after them."""
    if classes not in LABEL_SPACES:
        raise UserError(f"classes must be all or novel, got {classes!r}")
    if classes == "novel":
        return list(data.novel_train), len(data.novel_classes), {"novel": list(data.novel_test)}
    offset = len(data.base_classes)
    novel_train = [r._replace(label=r.label + offset) for r in data.novel_train]
    novel_test = [r._replace(label=r.label + offset) for r in data.novel_test]
    return (list(data.base_train) + novel_train, offset + len(data.novel_classes),
            {"novel": novel_test, "base": list(data.base_test), "all": list(data.base_test) + novel_test})


def _weight_summary(weights, mislabelled):
    """min/max/mean of the weights; when `mislabelled` (bool per image) is
    known, also the mean weight of correctly labelled and mislabelled images."""
    summary = {"min": float(weights.min()), "max": float(weights.max()), "mean": float(weights.mean())}
    if mislabelled is not None:
        summary.update(mislabelled=int(mislabelled.sum()), clean=int((~mislabelled).sum()),
                       mean_clean=float(weights[~mislabelled].mean()) if (~mislabelled).any() else None,
                       mean_mislabelled=float(weights[mislabelled].mean()) if mislabelled.any() else None)
    return summary


def _mislabelled(records, run):
    """Per novel training record, whether its listed label is wrong, from a
    synthetic dataset's `train_clean_labels.txt`; None when unknown."""
    if run["dataset"] != "synthetic" or not os.path.isfile(
            os.path.join(run["dataset_dir"], "train_clean_labels.txt")):
        return None
    from fgtf.datasets.synthetic import read_clean_labels

    true = read_clean_labels(run["dataset_dir"])
    novel = run["novel_classes"]
    return np.array([true[os.path.abspath(r.path)] != novel[r.label] for r in records])


# ---------------------------------------------------------------- training and measuring

def _fit_classifier(model, run, records, weights, test_sets, schedule, step, first_epoch=0, schedule_start=0,
                    graph=None):
    """`schedule.epochs` epochs (`schedule`: a `Schedule`, the step's
    options) of (1/B) sum w CE (+ graph term when `graph` sets a weight),
    numbered from `first_epoch`, the optimiser rebuilt every epoch with lr
    halved every `lr_interval` epochs since `schedule_start`; logs test
    accuracy per epoch."""
    import keras

    history = []
    for epoch in range(first_epoch, first_epoch + schedule.epochs):
        for name, value in (graph or {"graph_weight": 0.0}).items():
            setattr(model, name, value)
        model.weight_decay = schedule.weight_decay
        lr = schedule.lr * 0.5 ** ((epoch - schedule_start) // schedule.lr_interval)
        model.compile(keras.optimizers.SGD(lr, momentum=0.9),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      metrics=["accuracy"], jit_compile=False)
        started = time.time()
        dataset = _training_dataset(records, weights, run, schedule, epoch)
        logs = {k: float(v[-1]) for k, v in model.fit(dataset, epochs=1, verbose=0, shuffle=False).history.items()}
        accuracy = {name: _accuracy(model, test, run, 64) for name, test in test_sets.items()}
        history.append({"epoch": epoch + 1, "lr": lr, **logs, **{f"test_{k}": v for k, v in accuracy.items()}})
        extra = f" graph_loss {logs['graph_loss']:.4f}" if model.graph_weight else ""
        print(f"[{step}] epoch {epoch + 1} ({time.time() - started:.0f} s): loss {logs['loss']:.4f}{extra} "
              f"train_acc {logs.get('accuracy', float('nan')):.3f} "
              + " ".join(f"test_{k} {v:.3f}" for k, v in accuracy.items()), flush=True)
    return history


def _training_dataset(records, weights, run, schedule, epoch):
    """(images, labels, weights) batches of one epoch: shuffled with (seed,
    epoch), each image augmented with its own stateless seed."""
    from fgtf.input_pipeline import image_file_dataset

    order = np.random.default_rng([schedule.seed, epoch]).permutation(len(records))
    seeds = np.stack([np.full(len(records), schedule.seed * 100003 + epoch), order], axis=1)
    return image_file_dataset([records[i].path for i in order],
                              (np.array([records[i].label for i in order], np.int32),
                               np.asarray(weights, np.float32)[order]),
                              image_size=run["image_size"], batch_size=schedule.batch_size,
                              preprocessing=_augmentation(schedule.augment, run), seeds=seeds)


def _augmentation(augment, run):
    """The training preprocessing `--augment` names for the run's pipeline:
    its own training transform, or its test transform with a random flip."""
    import tensorflow as tf

    from fgtf.preprocessing import get_pipeline

    augment = FORMER_AUGMENTATIONS.get(augment, augment)
    if augment not in AUGMENTATIONS:
        raise UserError(f"augment must be one of {', '.join(AUGMENTATIONS)}, got {augment!r}")
    pipeline = get_pipeline(_preprocessing(run))
    if augment == "train":
        return pipeline

    def flip(encoded, image_size, training, seed):
        return tf.image.stateless_random_flip_left_right(pipeline(encoded, image_size, training=False), seed)

    return flip


def _preprocessing(run):
    """The run's input pipeline (run.json of fgtf before pipelines had names: inception)."""
    return run.get("preprocessing", "inception")


def _pair_batch_plan(data, batch_size, classes_base, classes_novel, rng):
    """One epoch of SimNet iterations: (base indices, novel indices) pairs of
    full `batch_size` batches, each stream in shuffled order (spec §5.1)."""
    base = class_grouped_batches([r.label for r in data.base_train], batch_size, classes_base, rng)
    novel = class_grouped_batches([r.label for r in data.novel_train], batch_size, classes_novel, rng)
    base = [base[i] for i in rng.permutation(len(base))]
    novel = [novel[i] for i in rng.permutation(len(novel))]
    return [(a, b) for a, b in zip(base, novel) if len(a) == len(b) == batch_size]


def _pair_dataset(data, iterations, run, batch_size, augment, seed, epoch):
    """tf.data of ((base images, novel images), base labels), one batch per iteration."""
    import tensorflow as tf

    from fgtf.input_pipeline import image_file_dataset

    base_index = np.concatenate([a for a, _ in iterations])
    novel_index = np.concatenate([b for _, b in iterations])
    labels = np.array([data.base_train[i].label for i in base_index], np.int32)
    seeds = np.stack([np.full(len(base_index), seed * 100003 + epoch), np.arange(len(base_index))], axis=1)

    def images(records, index, seeds):
        return image_file_dataset([records[i].path for i in index], image_size=run["image_size"],
                                  batch_size=batch_size, preprocessing=_augmentation(augment, run), seeds=seeds)

    return tf.data.Dataset.zip(((images(data.base_train, base_index, seeds),
                                 images(data.novel_train, novel_index, seeds + [0, 1 << 20])),
                                tf.data.Dataset.from_tensor_slices(labels).batch(batch_size)))


def _pair_f1(simnet, records, run, batches, classes_per_batch, images_per_class, rng):
    """F1 of "similar" over `batches` batches of `classes_per_batch` random
    classes x `images_per_class` images (with replacement only for small classes),
    all pairs of each batch scored by SimNet in eval mode (spec §5.4)."""
    from fgtf.input_pipeline import image_file_dataset
    from fgtf.simtrans.model import pair_targets, similar_f1

    labels = np.array([r.label for r in records])
    classes = np.unique(labels)
    predicted, targets = [], []
    for _ in range(batches):
        picked = rng.permutation(classes)[:classes_per_batch]
        index = np.concatenate([rng.choice(np.flatnonzero(labels == c), images_per_class,
                                           replace=np.sum(labels == c) < images_per_class) for c in picked])
        images = next(iter(image_file_dataset([records[i].path for i in index], image_size=run["image_size"],
                                              batch_size=len(index), preprocessing=_preprocessing(run))))
        similarity = np.asarray(simnet(images, training=False)).ravel()
        predicted.append((similarity > 0.5).astype(int))
        targets.append(np.asarray(pair_targets(labels[index])))
    return similar_f1(np.concatenate(predicted), np.concatenate(targets))


def _features(simnet, paths, run, batch_size):
    from fgtf.input_pipeline import image_file_dataset

    chunks = [np.asarray(simnet.features(images, training=False))
              for images in image_file_dataset(paths, image_size=run["image_size"], batch_size=batch_size,
                                               preprocessing=_preprocessing(run))]
    return np.concatenate(chunks).astype(np.float32)


def _accuracy(model, records, run, batch_size):
    from fgtf.input_pipeline import image_file_dataset

    correct = 0
    for images, labels in image_file_dataset([r.path for r in records], (np.array([r.label for r in records], np.int32),),
                                             image_size=run["image_size"], batch_size=batch_size,
                                             preprocessing=_preprocessing(run)):
        correct += int(np.sum(np.argmax(np.asarray(model(images, training=False)), axis=-1) == labels.numpy()))
    return correct / max(len(records), 1)


def _set_seed(seed):
    import keras

    keras.utils.set_random_seed(seed)

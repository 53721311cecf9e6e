"""SimTrans weak-shot pipeline: the original's steps as subcommands over one run folder.

    python -m fgtf.datasets.synthetic --out data/synthetic_noisy --label_noise 0.4 --novel_classes 5
    python -m fgtf.simtrans pretrain --dataset_dir data/synthetic_noisy --run_dir runs/simtrans
    python -m fgtf.simtrans simnet   --run_dir runs/simtrans [--beta 0.1]
    python -m fgtf.simtrans weights  --run_dir runs/simtrans
    python -m fgtf.simtrans train    --run_dir runs/simtrans [--graph_epochs 4]
    python -m fgtf.simtrans eval     --run_dir runs/simtrans

Steps (shared/spec/simtrans.md):
  pretrain  backbone + linear classifier, plain CE on the clean base classes
            (`--pretrain_data noisy_novel`: the released script's choice, §12.1)
  simnet    SimNet on pairs of class-grouped base batches, with the adversarial
            domain discriminator on novel batches (`--beta`; 0 = released script)
  weights   transferred similarities of every novel class's noisy training
            images -> per-image sample weights (`savg1` for train's CE epochs,
            `avg1` for its graph epochs, both `one_mean`), and a PNG of each
            novel class's highest- and lowest-weighted images
  train     the main classifier: sample-weighted CE for `--epochs`, then
            `--graph_epochs` alternating graph epochs (weighted CE +
            alpha * graph regularisation on SimNet similarities, batch
            `--graph_batch_size`) and CE epochs (step 3b, its own lr schedule)
  eval      top-1 accuracy on the novel, base and all test images

Run folder:
  run.json                      dataset, class split, backbone, image size (written by pretrain)
  <step>/step.json              the settings the step ran with and which outputs of earlier steps it used
  pretrain/backbone.weights.h5  pretrain/metrics.json
  simnet/simnet.weights.h5      simnet/metrics.json (pair F1 on base/novel test per epoch)
  weights/<formula>.json        {image path: weight} of the novel training images
  weights/similarities.npz      per novel class c: `S_<c>` (N_c, N_c), row = first slot; `paths_<c>`
  weights/metrics.json          weight statistics (clean vs mislabelled when the dataset knows)
  weights/sample_weights.png    the qualitative figure
  train/classifier.weights.h5   train/metrics.json
  eval/metrics.json

A step reads only outputs that are current: when an earlier step is run
again (e.g. pretrain with other novel classes), every later step whose
outputs came from the earlier run is refused, naming the changed settings,
until it is run again.

The default backbone is the registry's `small_cnn` (six conv layers,
128-d features) at 64x64 pixels, so the whole pipeline runs on a CPU in
minutes; the original is `--model resnet_v2_50 --image_size 224` (fgtf's
ResNet-v2, not torchvision's v1.5). Any fgtf registry backbone works,
optionally initialised from `--checkpoint` (alias `--init_weights`): a
TF-Slim checkpoint, a `.weights.h5`, an fgtf training run folder or another
SimTrans run folder of the same network (a run gives `--model` and
`--image_size` when they are left out), read by `fgtf.checkpoints.load_into`
like every command's weights. Images go through
fgtf.preprocessing: evaluation crop for testing and features; for training
the same crop with a random flip (`--augment flip`, default: short CPU
schedules) or slim's inception training preprocessing (`--augment inception`).

Kept from the original: SGD momentum 0.9 rebuilt every epoch (momentum reset),
lr halved every `--lr_interval` epochs, coupled L2 weight decay on every
weight, class-grouped pair batches, weights (1/B) sum w CE, dense graph over
the batch with relaxation mu and mask eye. Changed: no test-set model
selection or early stopping (the last epoch is kept; the test metrics of
every epoch are logged); a SimNet iteration uses only full-size batch pairs.
"""
import argparse
import inspect
import json
import os
import time
import uuid
from typing import NamedTuple

import numpy as np

from tfrecord_tools.cli import (HelpFormatter, UserError, cli_main, non_negative_float, non_negative_int,
                                positive_float, positive_int)

STEPS = ("pretrain", "simnet", "weights", "train", "eval")
RUN_FILE = "run.json"
STEP_FILE = "step.json"
DEFAULT_MODEL = "small_cnn"
DEFAULT_IMAGE_SIZE = 64
BACKBONE_WEIGHTS = os.path.join("pretrain", "backbone.weights.h5")
SIMNET_WEIGHTS = os.path.join("simnet", "simnet.weights.h5")
CLASSIFIER_WEIGHTS = os.path.join("train", "classifier.weights.h5")
WEIGHT_FORMULAS = ("savg1", "avg1")


class Schedule(NamedTuple):
    """How a step trains: SGD (momentum 0.9) for `epochs`, lr halved every `lr_interval` epochs."""
    epochs: int
    lr: float
    lr_interval: int
    weight_decay: float
    augment: str
    batch_size: int
    seed: int


@cli_main
def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m fgtf.simtrans", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    steps = parser.add_subparsers(dest="step", metavar="STEP", required=True)
    for step in STEPS:
        _STEP_ARGUMENTS[step](steps.add_parser(step, help=_STEP_HELP[step], description=_STEP_HELP[step],
                                               formatter_class=HelpFormatter))
    options = vars(parser.parse_args(argv))
    step = options.pop("step")
    _STEP_FUNCTIONS[step](**options)


def pretrain(run_dir, dataset_dir, *, dataset="synthetic", novel_classes=None, num_novel=None,
             model=None, image_size=None, checkpoint=None, pretrain_data="clean_base", epochs=15, lr=0.02,
             lr_interval=20, weight_decay=1e-4, augment="flip", batch_size=32, seed=0):
    """Step 0: train backbone + classifier with plain CE, save the backbone and
    write run.json (the class split every later step uses). `model` and
    `image_size` left out: those of a `checkpoint` run (see `_start_network`),
    else small_cnn at 64 px."""
    from fgtf.datasets import weak_shot_split
    from fgtf.fileio import write_json
    from fgtf.models import list_models

    model, image_size, taken = _start_network(checkpoint, model, image_size)
    if model not in list_models():
        raise UserError(f"unknown model {model!r}; choose one of {', '.join(list_models())}")
    if pretrain_data not in ("clean_base", "noisy_novel"):
        raise UserError(f"pretrain_data must be clean_base or noisy_novel, got {pretrain_data!r}")
    novel = _novel_classes(dataset, dataset_dir, novel_classes, num_novel, seed)
    data = weak_shot_split(dataset, dataset_dir, novel)
    run = {"dataset": dataset, "dataset_dir": os.path.abspath(dataset_dir), "model": model,
           "image_size": image_size, "base_classes": data.base_classes, "novel_classes": data.novel_classes}
    settings = {**run, "checkpoint": checkpoint and os.path.abspath(checkpoint), "pretrain_data": pretrain_data,
                "epochs": epochs, "lr": lr, "lr_interval": lr_interval, "weight_decay": weight_decay,
                "augment": augment, "batch_size": batch_size, "seed": seed}
    _set_seed(seed)
    train_records, test_sets = ((data.base_train, {"base": data.base_test}) if pretrain_data == "clean_base"
                                else (data.novel_train, {"novel": data.novel_test}))
    classes = len(data.base_classes) if pretrain_data == "clean_base" else len(data.novel_classes)
    classifier = _classifier(run, classes, backbone_weights=checkpoint, taken=taken)
    schedule = Schedule(epochs, lr, lr_interval, weight_decay, augment, batch_size, seed)
    history = _fit_classifier(classifier, run, train_records, [1.0] * len(train_records), test_sets, schedule,
                              step="pretrain")
    _forget_step(run_dir, "pretrain")
    _save_weights(classifier.backbone, run_dir, BACKBONE_WEIGHTS)
    write_json(os.path.join(run_dir, RUN_FILE), run)
    _finish(run_dir, "pretrain", {"data": pretrain_data, "epochs": history}, settings, {})


def train_simnet(run_dir, *, beta=0.0, domain_lr=0.01, batch_classes=20, batch_classes_novel=2, eval_batches=10,
                 eval_classes=10, eval_images=10, epochs=8, lr=0.01, lr_interval=20, weight_decay=1e-4,
                 augment="flip", batch_size=50, seed=0):
    """Step 1: SimNet + discriminator on zipped base / novel class-grouped batches."""
    import keras

    run, data = _load_run(run_dir)
    inputs = {"pretrain": _current_step(run_dir, "pretrain")}
    settings = {"beta": beta, "domain_lr": domain_lr, "batch_classes": batch_classes,
                "batch_classes_novel": batch_classes_novel, "eval_batches": eval_batches,
                "eval_classes": eval_classes, "eval_images": eval_images, "epochs": epochs, "lr": lr,
                "lr_interval": lr_interval, "weight_decay": weight_decay, "augment": augment,
                "batch_size": batch_size, "seed": seed}
    _set_seed(seed)
    simnet = _simnet(run, os.path.join(run_dir, BACKBONE_WEIGHTS), beta=beta, weight_decay=weight_decay)
    rng = np.random.default_rng(seed)
    history = []
    for epoch in range(epochs):
        epoch_lr = lr * 0.5 ** (epoch // lr_interval)
        simnet.compile(keras.optimizers.SGD(epoch_lr, momentum=0.9),
                       discriminator_optimizer=keras.optimizers.SGD(domain_lr * epoch_lr / lr, momentum=0.9),
                       jit_compile=False)
        iterations = _pair_batch_plan(data, batch_size, batch_classes, batch_classes_novel, rng)
        if not iterations:
            raise UserError(f"no SimNet iteration fits: --batch_size {batch_size} is larger than the base or "
                            f"novel training set; lower it")
        started = time.time()
        logs = simnet.fit(_pair_dataset(data, iterations, run["image_size"], batch_size, augment, seed, epoch),
                          epochs=1, verbose=0, shuffle=False)
        scores = {split: _pair_f1(simnet, records, run["image_size"], eval_batches, eval_classes, eval_images, rng)
                  for split, records in (("base_test", data.base_test), ("novel_test", data.novel_test))}
        record = {"epoch": epoch + 1, "lr": epoch_lr, **{k: float(v[-1]) for k, v in logs.history.items()},
                  **{f"f1_{k}": v for k, v in scores.items()}}
        history.append(record)
        print(f"[simnet] epoch {epoch + 1}/{epochs} ({len(iterations)} iterations, {time.time() - started:.0f} s): "
              f"sim_loss {record['sim_loss']:.4f} pair_acc {record['pair_accuracy']:.3f} "
              f"domain_loss {record['domain_loss']:.4f} domain_acc {record['domain_accuracy']:.3f} "
              f"F1 base {scores['base_test']:.3f} novel {scores['novel_test']:.3f}", flush=True)
    inference = _simnet(run)
    inference.set_weights(simnet.get_weights())
    _forget_step(run_dir, "simnet")
    _save_weights(inference, run_dir, SIMNET_WEIGHTS)
    _finish(run_dir, "simnet", {"beta": beta, "epochs": history}, settings, inputs)


def compute_weights(run_dir, *, figure_images=4, batch_size=64):
    """Step 2: per novel class, SimNet similarities of its training images -> sample weights."""
    from fgtf.fileio import atomic_path, write_json
    from fgtf.models.heads.simtrans import sample_weights
    from fgtf.plots import sample_weights_png

    run, data = _load_run(run_dir)
    inputs = {"simnet": _current_step(run_dir, "simnet")}
    simnet = _load_simnet(run_dir, run)
    records = sorted(data.novel_train, key=lambda r: (r.label, r.path))
    features = _features(simnet, [r.path for r in records], run["image_size"], batch_size)
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
    names = _class_names(data.novel_train)
    classes = np.unique(labels)
    _forget_step(run_dir, "weights")
    with atomic_path(os.path.join(run_dir, "weights", "similarities.npz")) as tmp:
        np.savez(tmp, **matrices)
    for formula, values in weights.items():
        write_json(os.path.join(run_dir, "weights", f"{formula}.json"),
                   {path: float(w) for path, w in zip(paths, values)})
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
    _finish(run_dir, "weights", summary, {"figure_images": figure_images, "batch_size": batch_size}, inputs)


def train_classifier(run_dir, *, classes="all", init="pretrain", weighting="savg1", graph_epochs=0,
                     graph_weighting="avg1", graph_batch_size=128, alpha=0.1, mu=-4.0, eye=1, epochs=8, lr=0.02,
                     lr_interval=20, weight_decay=1e-4, augment="flip", batch_size=16, seed=0):
    """Step 3: weighted-CE epochs, then alternating graph / CE epochs."""
    run, data = _load_run(run_dir)
    uses_graph = bool(graph_epochs and alpha)
    used_steps = ["pretrain"]  # run.json's class split, and the backbone unless --init scratch
    if {weighting, graph_weighting} - {"none"}:
        used_steps.append("weights")
    if uses_graph:
        used_steps.append("simnet")
    inputs = {step: _current_step(run_dir, step) for step in used_steps}
    settings = {"classes": classes, "init": init, "weighting": weighting, "graph_epochs": graph_epochs,
                "graph_weighting": graph_weighting, "graph_batch_size": graph_batch_size, "alpha": alpha, "mu": mu,
                "eye": eye, "epochs": epochs, "lr": lr, "lr_interval": lr_interval, "weight_decay": weight_decay,
                "augment": augment, "batch_size": batch_size, "seed": seed}
    _set_seed(seed)
    records, num_classes, test_sets = _label_space(data, classes)
    weights = {formula: _read_weights(run_dir, formula)
               for formula in dict.fromkeys([weighting, graph_weighting]) if formula != "none"}
    simnet = _load_simnet(run_dir, run) if uses_graph else None
    model = _classifier(run, num_classes, backbone_weights=os.path.join(run_dir, BACKBONE_WEIGHTS)
                        if init == "pretrain" else None, simnet=simnet)

    def weights_for(formula):
        return [weights[formula].get(r.path, 1.0) if formula != "none" else 1.0 for r in records]

    schedule = Schedule(epochs, lr, lr_interval, weight_decay, augment, batch_size, seed)
    history = _fit_classifier(model, run, records, weights_for(weighting), test_sets, schedule, step="train")
    for epoch in range(graph_epochs):
        graph_epoch = epoch % 2 == 0
        graph = {"graph_weight": alpha if graph_epoch else 0.0, "mu": mu, "eye": eye}
        history += _fit_classifier(model, run, records, weights_for(graph_weighting), test_sets,
                                   schedule._replace(epochs=1, batch_size=graph_batch_size if graph_epoch
                                                     else batch_size),
                                   step="train/graph" if graph_epoch else "train/ce",
                                   first_epoch=epochs + epoch, schedule_start=epochs, graph=graph)
    # saved without the SimNet of the graph term and without the optimizer
    inference = _classifier(run, num_classes)
    inference.backbone.set_weights(model.backbone.get_weights())
    inference.classifier.set_weights(model.classifier.get_weights())
    _forget_step(run_dir, "train")
    _save_weights(inference, run_dir, CLASSIFIER_WEIGHTS)
    _finish(run_dir, "train", {"classes": classes, "num_classes": num_classes, "weighting": weighting,
                               "graph_weighting": graph_weighting, "alpha": alpha, "mu": mu, "eye": eye,
                               "epochs": history}, settings, inputs)


def evaluate(run_dir, *, batch_size=64):
    """Top-1 accuracy of the trained classifier on the test sets of its label space."""
    run, data = _load_run(run_dir)
    trained = _current_step(run_dir, "train")
    classes = trained["settings"]["classes"]
    _, num_classes, test_sets = _label_space(data, classes)
    model = _classifier(run, num_classes)
    model.load_weights(os.path.join(run_dir, CLASSIFIER_WEIGHTS))
    metrics = {name: _accuracy(model, records, run["image_size"], batch_size)
               for name, records in test_sets.items()}
    for name, value in metrics.items():
        print(f"[eval] {name}: top-1 accuracy {value:.4f} ({len(test_sets[name])} images)", flush=True)
    _forget_step(run_dir, "eval")
    _finish(run_dir, "eval", {"classes": classes, "accuracy": metrics}, {"batch_size": batch_size},
            {"train": trained})


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


# ---------------------------------------------------------------- arguments

_STEP_HELP = {
    "pretrain": "train the backbone on the base classes (writes run.json)",
    "simnet": "train SimNet with the adversarial domain discriminator",
    "weights": "transferred similarities and per-image sample weights of the novel training images",
    "train": "train the main classifier with sample weights and optional graph regularisation",
    "eval": "top-1 accuracy on the novel, base and all test images",
}


def _label_list(text):
    """--novel_classes: comma-separated integer labels."""
    try:
        labels = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integer labels, got {text!r}") from None
    if not labels:
        raise argparse.ArgumentTypeError("expected at least one label")
    return labels


def _add(parser, function, name, help, *flags, **options):
    """`--name` (plus alias `flags`) with its default taken from `function`'s signature."""
    parser.add_argument(f"--{name}", *flags, dest=name, default=inspect.signature(function).parameters[name].default,
                        help=help, **options)


def _schedule_arguments(parser, function):
    _add(parser, function, "epochs", "training epochs", type=positive_int)
    _add(parser, function, "lr", "SGD learning rate (momentum 0.9)", type=positive_float)
    _add(parser, function, "lr_interval", "halve the learning rate every this many epochs", type=positive_int)
    _add(parser, function, "weight_decay", "coupled L2 on every weight, as PyTorch SGD", type=non_negative_float)
    _add(parser, function, "augment", "training preprocessing: evaluation crop + random flip, or slim's "
         "inception training preprocessing", choices=("flip", "inception"))
    _add(parser, function, "batch_size", "images per training batch", type=positive_int)
    _add(parser, function, "seed", "random seed of initialisation, order and augmentation", type=non_negative_int)


def _run_dir_argument(parser):
    parser.add_argument("--run_dir", default="runs/simtrans", help="the SimTrans run folder")


def _pretrain_arguments(parser):
    from fgtf.models import list_models

    _run_dir_argument(parser)
    parser.add_argument("--dataset_dir", default="data/synthetic_noisy",
                        help="dataset folder; its noisy web images: web.txt or web/<class>/, or for synthetic "
                             "the noisy training list")
    _add(parser, pretrain, "dataset", "dataset registry name")
    _add(parser, pretrain, "novel_classes", "comma-separated novel labels; none given: the novel classes "
         "recorded in a synthetic dataset's synthetic.json", type=_label_list)
    _add(parser, pretrain, "num_novel", "instead of --novel_classes: this many novel classes drawn with --seed",
         type=positive_int)
    _add(parser, pretrain, "model", f"backbone, an fgtf registry name: {', '.join(list_models())}; none given: "
         f"a --checkpoint run's or fgtf .weights.h5's network, else {DEFAULT_MODEL}")
    _add(parser, pretrain, "image_size", f"image side in pixels; none given: a --checkpoint run's, else "
         f"{DEFAULT_IMAGE_SIZE}", type=positive_int)
    _add(parser, pretrain, "checkpoint", "initial backbone weights: TF-Slim checkpoint, .weights.h5, fgtf run "
         "folder or SimTrans run folder of the same --model; none given: random initialisation", "--init_weights")
    _add(parser, pretrain, "pretrain_data", "train on the clean base classes (the authors' stated init) or on the "
         "noisy novel images (the released script)", choices=("clean_base", "noisy_novel"))
    _schedule_arguments(parser, pretrain)


def _simnet_arguments(parser):
    _run_dir_argument(parser)
    _add(parser, train_simnet, "batch_classes", "at most this many classes per base batch", type=positive_int)
    _add(parser, train_simnet, "batch_classes_novel", "at most this many classes per novel batch",
         type=positive_int)
    _add(parser, train_simnet, "beta", "adversarial weight: SimNet minimises L_sim - beta L_dom; 0 = the "
         "released script, 0.1 = the method", type=non_negative_float)
    _add(parser, train_simnet, "domain_lr", "discriminator learning rate", type=positive_float)
    _add(parser, train_simnet, "eval_batches", "pair-F1 evaluation: batches of --eval_classes x --eval_images "
         "test images", type=positive_int)
    _add(parser, train_simnet, "eval_classes", "classes per pair-F1 evaluation batch", type=positive_int)
    _add(parser, train_simnet, "eval_images", "images per class in a pair-F1 evaluation batch", type=positive_int)
    _schedule_arguments(parser, train_simnet)


def _weights_arguments(parser):
    _run_dir_argument(parser)
    _add(parser, compute_weights, "figure_images", "highest and lowest weighted images shown per class",
         type=positive_int)
    _add(parser, compute_weights, "batch_size", "images per feature batch", type=positive_int)


def _train_arguments(parser):
    _run_dir_argument(parser)
    _add(parser, train_classifier, "classes", "label space: base + novel classes, or the novel classes only as "
         "the released script", choices=("all", "novel"))
    _add(parser, train_classifier, "init", "start from the pretrained backbone or from scratch",
         choices=("pretrain", "scratch"))
    _add(parser, train_classifier, "weighting", "sample weights of the weighted-CE epochs",
         choices=("savg1", "avg1", "none"))
    _add(parser, train_classifier, "graph_epochs", "alternating epochs after --epochs: even = graph (weighted CE + "
         "alpha L_graph, batch --graph_batch_size), odd = weighted CE", type=non_negative_int)
    _add(parser, train_classifier, "graph_weighting", "sample weights of the alternating epochs",
         choices=("savg1", "avg1", "none"))
    _add(parser, train_classifier, "graph_batch_size", "batch size of the graph epochs", type=positive_int)
    _add(parser, train_classifier, "alpha", "graph loss weight", type=non_negative_float)
    _add(parser, train_classifier, "mu", "similarity relaxation of the graph", type=float)
    _add(parser, train_classifier, "eye", "1: graph over all pairs (the script); 0: same-label pairs only",
         type=int, choices=(0, 1))
    _schedule_arguments(parser, train_classifier)


def _eval_arguments(parser):
    _run_dir_argument(parser)
    _add(parser, evaluate, "batch_size", "images per evaluation batch", type=positive_int)


_STEP_ARGUMENTS = {"pretrain": _pretrain_arguments, "simnet": _simnet_arguments, "weights": _weights_arguments,
                   "train": _train_arguments, "eval": _eval_arguments}
_STEP_FUNCTIONS = {"pretrain": pretrain, "simnet": train_simnet, "weights": compute_weights,
                   "train": train_classifier, "eval": evaluate}


# ---------------------------------------------------------------- run folder

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


def _load_run(run_dir):
    """run.json and the dataset's weak-shot split it names."""
    from fgtf.datasets import weak_shot_split

    path = os.path.join(run_dir, RUN_FILE)
    if not os.path.isfile(path):
        raise UserError(f"{path} is missing; run `python -m fgtf.simtrans pretrain --run_dir {run_dir}` first")
    with open(path, encoding="utf-8") as handle:
        run = json.load(handle)
    return run, weak_shot_split(run["dataset"], run["dataset_dir"], run["novel_classes"], run["base_classes"])


def _current_step(run_dir, step):
    """The record (step.json) of `step`'s finished outputs, refused when the
    step has not finished or when an earlier step it used was run again since
    (its outputs are then stale)."""
    path = os.path.join(run_dir, step, STEP_FILE)
    if not os.path.isfile(path):
        raise UserError(f"{path} is missing (the {step} step has not finished in this run folder); run "
                        f"`python -m fgtf.simtrans {step} --run_dir {run_dir}` first")
    with open(path, encoding="utf-8") as handle:
        record = json.load(handle)
    for earlier, used in record["inputs"].items():
        current = _current_step(run_dir, earlier)
        if current["id"] != used["id"]:
            changed = sorted(k for k in set(used["settings"]) | set(current["settings"])
                             if used["settings"].get(k) != current["settings"].get(k))
            reason = f"its settings changed ({', '.join(changed)})" if changed else "it was run again"
            raise UserError(f"the {step} outputs in {run_dir} are stale: they were computed from an earlier "
                            f"{earlier} step and {reason}; run `python -m fgtf.simtrans {step} --run_dir "
                            f"{run_dir}` again")
    return record


def _forget_step(run_dir, step):
    """Drop `step`'s record before its outputs are replaced, so that an
    interrupted step never passes for finished."""
    path = os.path.join(run_dir, step, STEP_FILE)
    if os.path.exists(path):
        os.remove(path)


def _finish(run_dir, step, metrics, settings, inputs):
    """Write `step`'s metrics, then its record: a new id, the settings it ran
    with and the records of the earlier steps whose outputs it used."""
    from fgtf.fileio import write_json

    write_json(os.path.join(run_dir, step, "metrics.json"), metrics)
    write_json(os.path.join(run_dir, step, STEP_FILE),
               {"id": uuid.uuid4().hex, "settings": settings,
                "inputs": {name: {"id": record["id"], "settings": record["settings"]}
                           for name, record in inputs.items()}})
    print(f"[{step}] done -> {os.path.join(run_dir, step)}", flush=True)


def _read_weights(run_dir, formula):
    with open(os.path.join(run_dir, "weights", f"{formula}.json"), encoding="utf-8") as handle:
        return json.load(handle)


def _save_weights(model, run_dir, relative):
    """model.save_weights to a temporary name, renamed into place on success.
    Pass an uncompiled model: a compiled one would also store its optimizer."""
    from fgtf.fileio import atomic_path

    with atomic_path(os.path.join(run_dir, relative)) as tmp:
        model.save_weights(tmp)


def _label_space(data, classes):
    """(training records, num_classes, {test name: records}) of `classes`:
    `novel` keeps the novel labels; `all` puts the base classes first and
    shifts the novel labels after them."""
    if classes not in ("all", "novel"):
        raise UserError(f"classes must be all or novel, got {classes!r}")
    if classes == "novel":
        return list(data.novel_train), len(data.novel_classes), {"novel": list(data.novel_test)}
    offset = len(data.base_classes)
    novel_train = [r._replace(label=r.label + offset) for r in data.novel_train]
    novel_test = [r._replace(label=r.label + offset) for r in data.novel_test]
    return (list(data.base_train) + novel_train, offset + len(data.novel_classes),
            {"novel": novel_test, "base": list(data.base_test), "all": list(data.base_test) + novel_test})


def _class_names(records):
    return {r.label: r.class_name for r in records if r.class_name}


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


# ---------------------------------------------------------------- models

def _start_network(checkpoint, model, image_size):
    """(model, image_size, names of those taken from the checkpoint): the
    given ones, else those of a `checkpoint` run (a SimTrans run's run.json,
    a training run's run_config.json) or the network an fgtf .weights.h5
    records, else small_cnn at 64 px."""
    from fgtf.checkpoints import recorded_network

    source = {}
    if checkpoint and os.path.isfile(os.path.join(checkpoint, RUN_FILE)):
        with open(os.path.join(checkpoint, RUN_FILE), encoding="utf-8") as handle:
            source = json.load(handle)
    elif checkpoint:
        source = recorded_network(checkpoint)
    taken = [name for name, given, key in (("model", model, "model"), ("image size", image_size, "image_size"))
             if given is None and source.get(key)]
    model = model or source.get("model") or DEFAULT_MODEL
    return model, image_size or source.get("image_size") or DEFAULT_IMAGE_SIZE, taken


def _backbone(run, weights=None, taken=()):
    """The run's registry backbone without its classifier: a model (B, S, S, 3)
    -> 4-D feature map, started from `weights` when given (`taken`: the
    settings pretrain took from them, for the line saying what was loaded)."""
    from fgtf.models import build_model

    size = run["image_size"]
    try:
        backbone = build_model(run["model"], include_top=False, input_shape=(size, size, 3))
    except ValueError as error:
        if isinstance(error, UserError):
            raise
        raise UserError(f"--image_size {size} does not suit {run['model']}: {error}") from None
    if weights:
        _load_backbone_weights(backbone, weights, run["model"], taken)
    return backbone


def _load_backbone_weights(backbone, path, model, taken=()):
    """Load `path` into the top-less `backbone` of network `model` and print
    what was loaded: a SimTrans run folder (its current pretrained backbone),
    else any kind `fgtf.checkpoints.load_into` takes but a SavedModel (an fgtf
    training run folder, a .weights.h5, a TF-Slim checkpoint). Weights of
    another network are a UserError."""
    from fgtf.checkpoints import describe, load_into

    given, source = path, "its run_config.json"
    if os.path.isfile(os.path.join(path, RUN_FILE)):
        with open(os.path.join(path, RUN_FILE), encoding="utf-8") as handle:
            other = json.load(handle)["model"]
        if other != model:
            raise UserError(f"{path} is a SimTrans run of {other}, not of --model {model}")
        _current_step(path, "pretrain")  # its backbone is finished and current
        path, source = os.path.join(path, BACKBONE_WEIGHTS), f"its {RUN_FILE}"
    used = load_into(backbone, path, model_name=model, exclude_scopes=("Logits", "logits", "AuxLogits"),
                     saved_model_use="a SimTrans backbone's start weights")
    print(f"backbone initialised from {given}: {describe(used, taken, source)}")


def _pooled(backbone):
    """The backbone's globally average-pooled features (B, C) as a model sharing its layers."""
    import keras

    pooled = keras.layers.GlobalAveragePooling2D(name="features")(backbone.outputs[0])
    return keras.Model(backbone.inputs, pooled, name=f"{backbone.name}_features")


def _classifier(run, num_classes, backbone_weights=None, simnet=None, taken=()):
    import keras

    from fgtf.models.heads.simtrans import WeakShotClassifier

    model = WeakShotClassifier(_backbone(run, backbone_weights, taken), num_classes, simnet=simnet,
                               name="classifier")
    size = run["image_size"]
    model(keras.ops.zeros((1, size, size, 3)))  # build, so .weights.h5 files load
    return model


def _load_simnet(run_dir, run):
    simnet = _simnet(run)
    simnet.load_weights(os.path.join(run_dir, SIMNET_WEIGHTS))
    simnet.trainable = False
    return simnet


def _simnet(run, backbone_weights=None, **options):
    """A SimNet on the run's backbone (initialised from `backbone_weights` when given)."""
    from fgtf.models.heads.simtrans import SimNet

    return SimNet(_pooled(_backbone(run, backbone_weights)), name="simnet", **options)


def _fit_classifier(model, run, records, weights, test_sets, schedule, step, first_epoch=0, schedule_start=0,
                    graph=None):
    """`schedule.epochs` epochs of (1/B) sum w CE (+ graph term when `graph`
    sets a weight), numbered from `first_epoch`, the optimiser rebuilt every
    epoch with lr halved every `lr_interval` epochs since `schedule_start`;
    logs test accuracy per epoch."""
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
        dataset = _image_dataset([r.path for r in records], [r.label for r in records], run["image_size"],
                                 schedule.batch_size, training=True, weights=weights, seed=(schedule.seed, epoch),
                                 augment=schedule.augment)
        logs = {k: float(v[-1]) for k, v in model.fit(dataset, epochs=1, verbose=0, shuffle=False).history.items()}
        accuracy = {name: _accuracy(model, test, run["image_size"], 64) for name, test in test_sets.items()}
        history.append({"epoch": epoch + 1, "lr": lr, **logs, **{f"test_{k}": v for k, v in accuracy.items()}})
        extra = f" graph_loss {logs['graph_loss']:.4f}" if model.graph_weight else ""
        print(f"[{step}] epoch {epoch + 1} ({time.time() - started:.0f} s): loss {logs['loss']:.4f}{extra} "
              f"train_acc {logs.get('accuracy', float('nan')):.3f} "
              + " ".join(f"test_{k} {v:.3f}" for k, v in accuracy.items()), flush=True)
    return history


# ---------------------------------------------------------------- data

def _image_dataset(paths, labels, image_size, batch_size, training=False, weights=None, seed=(0, 0),
                   augment="flip"):
    """tf.data of (images, labels[, weights]) batches from image files:
    training shuffles with `seed` and augments each image with its own
    stateless seed; evaluation keeps the order."""
    import tensorflow as tf

    from fgtf.preprocessing import preprocess_image

    _check_files(paths)
    columns = (np.asarray(paths), np.asarray(labels, np.int32))
    if weights is not None:
        columns += (np.asarray(weights, np.float32),)
    if training:
        order = np.random.default_rng(list(seed)).permutation(len(paths))
        image_seeds = np.stack([np.full(len(paths), seed[0] * 100003 + seed[1]), order], axis=1)
        columns = tuple(c[order] for c in columns) + (image_seeds,)

    def load(path, *rest):
        if training:
            return (_train_image(path, image_size, rest[-1], augment),) + rest[:-1]
        return (preprocess_image(tf.io.read_file(path), image_size, training=False),) + rest

    return (tf.data.Dataset.from_tensor_slices(columns)
            .map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
            .batch(batch_size).prefetch(tf.data.AUTOTUNE))


def _train_image(path, image_size, seed, augment):
    import tensorflow as tf

    from fgtf.preprocessing import preprocess_image

    encoded = tf.io.read_file(path)
    if augment == "inception":
        return preprocess_image(encoded, image_size, training=True, seed=seed)
    image = preprocess_image(encoded, image_size, training=False)
    return tf.image.stateless_random_flip_left_right(image, seed)


def _pair_batch_plan(data, batch_size, classes_base, classes_novel, rng):
    """One epoch of SimNet iterations: (base indices, novel indices) pairs of
    full `batch_size` batches, each stream in shuffled order (spec §5.1)."""
    base = class_grouped_batches([r.label for r in data.base_train], batch_size, classes_base, rng)
    novel = class_grouped_batches([r.label for r in data.novel_train], batch_size, classes_novel, rng)
    base = [base[i] for i in rng.permutation(len(base))]
    novel = [novel[i] for i in rng.permutation(len(novel))]
    return [(a, b) for a, b in zip(base, novel) if len(a) == len(b) == batch_size]


def _pair_dataset(data, iterations, image_size, batch_size, augment, seed, epoch):
    """tf.data of ((base images, novel images), base labels), one batch per iteration."""
    import tensorflow as tf

    base_index = np.concatenate([a for a, _ in iterations])
    novel_index = np.concatenate([b for _, b in iterations])
    base_paths = [data.base_train[i].path for i in base_index]
    novel_paths = [data.novel_train[i].path for i in novel_index]
    _check_files(base_paths + novel_paths)
    labels = np.array([data.base_train[i].label for i in base_index], np.int32)
    seeds = np.stack([np.full(len(base_index), seed * 100003 + epoch), np.arange(len(base_index))], axis=1)
    dataset = tf.data.Dataset.from_tensor_slices((base_paths, novel_paths, labels, seeds))

    def load(base_path, novel_path, label, seed):
        return ((_train_image(base_path, image_size, seed, augment),
                 _train_image(novel_path, image_size, seed + [0, 1 << 20], augment)), label)

    return (dataset.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
            .batch(batch_size).prefetch(tf.data.AUTOTUNE))


def _pair_f1(simnet, records, image_size, batches, classes_per_batch, images_per_class, rng):
    """F1 of "similar" over `batches` batches of `classes_per_batch` random
    classes x `images_per_class` images (with replacement only for small classes),
    all pairs of each batch scored by SimNet in eval mode (spec §5.4)."""
    from fgtf.models.heads.simtrans import pair_targets, similar_f1

    labels = np.array([r.label for r in records])
    classes = np.unique(labels)
    predicted, targets = [], []
    for _ in range(batches):
        picked = rng.permutation(classes)[:classes_per_batch]
        index = np.concatenate([rng.choice(np.flatnonzero(labels == c), images_per_class,
                                           replace=np.sum(labels == c) < images_per_class) for c in picked])
        images = next(iter(_image_dataset([records[i].path for i in index], labels[index], image_size,
                                          len(index))))[0]
        similarity = np.asarray(simnet(images, training=False)).ravel()
        predicted.append((similarity > 0.5).astype(int))
        targets.append(np.asarray(pair_targets(labels[index])))
    return similar_f1(np.concatenate(predicted), np.concatenate(targets))


def _features(simnet, paths, image_size, batch_size):
    chunks = [np.asarray(simnet.features(images, training=False))
              for images, _ in _image_dataset(paths, np.zeros(len(paths)), image_size, batch_size)]
    return np.concatenate(chunks).astype(np.float32)


def _accuracy(model, records, image_size, batch_size):
    correct = 0
    for images, labels in _image_dataset([r.path for r in records], [r.label for r in records], image_size,
                                         batch_size):
        correct += int(np.sum(np.argmax(np.asarray(model(images, training=False)), axis=-1) == labels.numpy()))
    return correct / max(len(records), 1)


def _check_files(paths):
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        raise UserError(f"{len(missing)} images are missing, e.g. {missing[0]}")


def _set_seed(seed):
    import keras

    keras.utils.set_random_seed(seed)


if __name__ == "__main__":
    main()

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
  pretrain/backbone.weights.h5  pretrain/metrics.json
  simnet/simnet.weights.h5      simnet/metrics.json (pair F1 on base/novel test per epoch)
  weights/<formula>.json        {image path: weight} of the novel training images
  weights/similarities.npz      per novel class c: `S_<c>` (N_c, N_c), row = first slot; `paths_<c>`
  weights/summary.json          weight statistics (clean vs mislabelled when the dataset knows)
  weights/sample_weights.png    the qualitative figure
  train/classifier.weights.h5   train/metrics.json
  eval/metrics.json

The default backbone `small_convnet` (four conv stages, 128-d features) at
64x64 pixels makes the whole pipeline run on a CPU in minutes; the original
is `--model resnet_v2_50 --image_size 224` (fgtf's ResNet-v2, not
torchvision's v1.5). Any fgtf backbone name works, optionally initialised
from `--init_weights` (a slim checkpoint or .weights.h5). Images go through
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
import json
import os
import time

import numpy as np

from tfrecord_tools.cli import UserError, cli_main

STEPS = ("pretrain", "simnet", "weights", "train", "eval")
RUN_FILE = "run.json"
SMALL_CONVNET = "small_convnet"
BACKBONE_WEIGHTS = os.path.join("pretrain", "backbone.weights.h5")
SIMNET_WEIGHTS = os.path.join("simnet", "simnet.weights.h5")
CLASSIFIER_WEIGHTS = os.path.join("train", "classifier.weights.h5")
WEIGHT_FORMULAS = ("savg1", "avg1")


@cli_main
def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m fgtf.simtrans", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    steps = parser.add_subparsers(dest="step", metavar="STEP", required=True)
    for step in STEPS:
        _STEP_ARGUMENTS[step](steps.add_parser(step, help=_STEP_HELP[step], description=_STEP_HELP[step]))
    args = parser.parse_args(argv)
    for name in ("epochs", "batch_size", "graph_batch_size", "image_size", "lr_interval", "batch_classes",
                 "batch_classes_novel", "eval_batches", "eval_classes", "eval_images", "figure_images"):
        if getattr(args, name, 1) < 1:
            raise UserError(f"--{name} must be >= 1, got {getattr(args, name)}")
    if getattr(args, "graph_epochs", 0) < 0:
        raise UserError(f"--graph_epochs must be >= 0, got {args.graph_epochs}")
    if getattr(args, "lr", 1.0) <= 0:
        raise UserError(f"--lr must be positive, got {args.lr}")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    _STEP_FUNCTIONS[args.step](args)


def pretrain(args):
    """Step 0: write run.json, train backbone + classifier with plain CE, save the backbone."""
    from fgtf.datasets import weak_shot_split

    novel = _novel_classes(args)
    data = weak_shot_split(args.dataset, args.dataset_dir, novel)
    if args.model != SMALL_CONVNET:
        from fgtf.models import list_models
        if args.model not in list_models():
            raise UserError(f"unknown model {args.model!r}; choose {SMALL_CONVNET} or one of {', '.join(list_models())}")
    run = {"dataset": args.dataset, "dataset_dir": os.path.abspath(args.dataset_dir), "model": args.model,
           "image_size": args.image_size, "base_classes": data.base_classes, "novel_classes": data.novel_classes}
    _set_seed(args.seed)
    from fgtf.fileio import write_json

    write_json(os.path.join(args.run_dir, RUN_FILE), run)
    train_records, test_sets = ((data.base_train, {"base": data.base_test}) if args.pretrain_data == "clean_base"
                                else (data.novel_train, {"novel": data.novel_test}))
    classes = len(data.base_classes) if args.pretrain_data == "clean_base" else len(data.novel_classes)
    model = _classifier(run, classes, backbone_weights=args.init_weights)
    history = _fit_classifier(model, run, train_records, [1.0] * len(train_records), test_sets, args,
                              step="pretrain")
    _save_weights(model.backbone, args.run_dir, BACKBONE_WEIGHTS)
    _finish(args.run_dir, "pretrain", {"data": args.pretrain_data, "epochs": history})


def train_simnet(args):
    """Step 1: SimNet + discriminator on zipped base / novel class-grouped batches."""
    import keras

    run, data = _load_run(args.run_dir)
    _require(args.run_dir, BACKBONE_WEIGHTS, "pretrain")
    _set_seed(args.seed)
    simnet = _simnet(run, os.path.join(args.run_dir, BACKBONE_WEIGHTS), beta=args.beta,
                     weight_decay=args.weight_decay)
    rng = np.random.default_rng(args.seed)
    history = []
    for epoch in range(args.epochs):
        lr = args.lr * 0.5 ** (epoch // args.lr_interval)
        simnet.compile(keras.optimizers.SGD(lr, momentum=0.9),
                       discriminator_optimizer=keras.optimizers.SGD(args.domain_lr * lr / args.lr, momentum=0.9),
                       jit_compile=False)
        iterations = _pair_batch_plan(data, args.batch_size, args.batch_classes, args.batch_classes_novel, rng)
        if not iterations:
            raise UserError(f"no SimNet iteration fits: --batch_size {args.batch_size} is larger than the base or "
                            f"novel training set; lower it")
        started = time.time()
        logs = simnet.fit(_pair_dataset(data, iterations, run["image_size"], args, epoch), epochs=1, verbose=0,
                          shuffle=False)
        scores = {split: _pair_f1(simnet, records, run["image_size"], args, rng)
                  for split, records in (("base_test", data.base_test), ("novel_test", data.novel_test))}
        record = {"epoch": epoch + 1, "lr": lr, **{k: float(v[-1]) for k, v in logs.history.items()},
                  **{f"f1_{k}": v for k, v in scores.items()}}
        history.append(record)
        print(f"[simnet] epoch {epoch + 1}/{args.epochs} ({len(iterations)} iterations, {time.time() - started:.0f} s): "
              f"sim_loss {record['sim_loss']:.4f} pair_acc {record['pair_accuracy']:.3f} "
              f"domain_loss {record['domain_loss']:.4f} domain_acc {record['domain_accuracy']:.3f} "
              f"F1 base {scores['base_test']:.3f} novel {scores['novel_test']:.3f}", flush=True)
    inference = _simnet(run)
    inference.set_weights(simnet.get_weights())
    _save_weights(inference, args.run_dir, SIMNET_WEIGHTS)
    _finish(args.run_dir, "simnet", {"beta": args.beta, "epochs": history})


def compute_weights(args):
    """Step 2: per novel class, SimNet similarities of its training images -> sample weights."""
    from fgtf.fileio import atomic_path, write_json
    from fgtf.models.heads.simtrans import sample_weights
    from fgtf.plots import sample_weights_png

    run, data = _load_run(args.run_dir)
    simnet = _load_simnet(args.run_dir, run)
    records = sorted(data.novel_train, key=lambda r: (r.label, r.path))
    features = _features(simnet, [r.path for r in records], run["image_size"], args.batch_size)
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
    with atomic_path(os.path.join(args.run_dir, "weights", "similarities.npz")) as tmp:
        np.savez(tmp, **matrices)
    for formula, values in weights.items():
        write_json(os.path.join(args.run_dir, "weights", f"{formula}.json"),
                   {path: float(w) for path, w in zip(paths, values)})
    mislabelled = _mislabelled(records, run)
    summary = {formula: _weight_summary(values, mislabelled) for formula, values in weights.items()}
    names = _class_names(data.novel_train)
    classes = np.unique(labels)
    sample_weights_png([list(paths[labels == c]) for c in classes],
                       [weights[WEIGHT_FORMULAS[0]][labels == c] for c in classes],
                       os.path.join(args.run_dir, "weights", "sample_weights.png"),
                       class_names=[names.get(c, str(c)) for c in classes], count=args.figure_images,
                       title=f"SimTrans sample weights ({WEIGHT_FORMULAS[0]}): highest and lowest per novel class",
                       mislabelled_by_class=None if mislabelled is None else [mislabelled[labels == c]
                                                                              for c in classes])
    for formula, stats in summary.items():
        line = f"[weights] {formula}: min {stats['min']:.3f} max {stats['max']:.3f}"
        if "mean_clean" in stats:
            line += f"; mean weight clean {stats['mean_clean']:.3f}, mislabelled {stats['mean_mislabelled']:.3f}"
        print(line, flush=True)
    _finish(args.run_dir, "weights", summary)


def train_classifier(args):
    """Step 3: weighted-CE epochs, then alternating graph / CE epochs."""
    run, data = _load_run(args.run_dir)
    _set_seed(args.seed)
    records, num_classes, test_sets = _label_space(data, args.classes)
    weights = {}
    for formula in dict.fromkeys([args.weighting, args.graph_weighting]):
        if formula != "none":
            weights[formula] = _read_weights(args.run_dir, formula)
    if args.init == "pretrain":
        _require(args.run_dir, BACKBONE_WEIGHTS, "pretrain")
    simnet = _load_simnet(args.run_dir, run) if args.graph_epochs and args.alpha else None
    model = _classifier(run, num_classes, backbone_weights=os.path.join(args.run_dir, BACKBONE_WEIGHTS)
                        if args.init == "pretrain" else None, simnet=simnet)

    def weights_for(formula):
        return [weights[formula].get(r.path, 1.0) if formula != "none" else 1.0 for r in records]

    history = _fit_classifier(model, run, records, weights_for(args.weighting), test_sets, args, step="train")
    for epoch in range(args.graph_epochs):
        graph_epoch = epoch % 2 == 0
        graph = {"graph_weight": args.alpha if graph_epoch else 0.0, "mu": args.mu, "eye": args.eye}
        history += _fit_classifier(model, run, records, weights_for(args.graph_weighting), test_sets, args,
                                   step="train/graph" if graph_epoch else "train/ce", epochs=1,
                                   batch_size=args.graph_batch_size if graph_epoch else args.batch_size,
                                   first_epoch=args.epochs + epoch, schedule_start=args.epochs, graph=graph)
    # saved without the SimNet of the graph term and without the optimizer
    inference = _classifier(run, num_classes)
    inference.backbone.set_weights(model.backbone.get_weights())
    inference.classifier.set_weights(model.classifier.get_weights())
    _save_weights(inference, args.run_dir, CLASSIFIER_WEIGHTS)
    _finish(args.run_dir, "train", {"classes": args.classes, "num_classes": num_classes,
                                     "weighting": args.weighting, "graph_weighting": args.graph_weighting,
                                     "alpha": args.alpha, "mu": args.mu, "eye": args.eye, "epochs": history})


def evaluate(args):
    """Top-1 accuracy of the trained classifier on the test sets of its label space."""
    run, data = _load_run(args.run_dir)
    config = _read_step_metrics(args.run_dir, "train")
    _require(args.run_dir, CLASSIFIER_WEIGHTS, "train")
    _, num_classes, test_sets = _label_space(data, config["classes"])
    model = _classifier(run, num_classes)
    model.load_weights(os.path.join(args.run_dir, CLASSIFIER_WEIGHTS))
    metrics = {name: _accuracy(model, records, run["image_size"], args.batch_size)
               for name, records in test_sets.items()}
    for name, value in metrics.items():
        print(f"[eval] {name}: top-1 accuracy {value:.4f} ({len(test_sets[name])} images)", flush=True)
    _finish(args.run_dir, "eval", {"classes": config["classes"], "accuracy": metrics})


def small_convnet(image_size, widths=(16, 32, 64, 128)):
    """A CPU-sized backbone: per stage two 3x3 conv -> BN -> ReLU, then 2x2 max
    pooling (none after the last stage). Returns a Keras model (B, S, S, 3) ->
    feature map (B, S/8, S/8, widths[-1])."""
    import keras
    from keras import layers

    inputs = keras.Input((image_size, image_size, 3))
    x = inputs
    for stage, width in enumerate(widths):
        for index in (1, 2):
            name = f"stage{stage + 1}.conv{index}"
            x = layers.Conv2D(width, 3, padding="same", use_bias=False, name=name)(x)
            x = layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name=f"{name}.bn")(x)
            x = layers.ReLU(name=f"{name}.relu")(x)
        if stage < len(widths) - 1:
            x = layers.MaxPooling2D(2, name=f"stage{stage + 1}.pool")(x)
    return keras.Model(inputs, x, name=SMALL_CONVNET)


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


def _common(parser, batch_size=None):
    parser.add_argument("--run_dir", default="runs/simtrans", help="the run folder (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    if batch_size is not None:
        parser.add_argument("--batch_size", type=int, default=batch_size, help="batch size (default: %(default)s)")


def _optimisation(parser, epochs, lr, lr_interval=20):
    parser.add_argument("--epochs", type=int, default=epochs, help="epochs (default: %(default)s)")
    parser.add_argument("--lr", type=float, default=lr, help="SGD learning rate, momentum 0.9 (default: %(default)s)")
    parser.add_argument("--lr_interval", type=int, default=lr_interval,
                        help="halve the learning rate every this many epochs (default: %(default)s)")
    parser.add_argument("--weight_decay", type=float, default=1e-4,
                        help="coupled L2 on every weight, as PyTorch SGD (default: %(default)s)")
    parser.add_argument("--augment", choices=("flip", "inception"), default="flip",
                        help="training preprocessing: evaluation crop + random flip, or slim's inception "
                             "training preprocessing (default: %(default)s)")


def _pretrain_arguments(parser):
    _common(parser, batch_size=32)
    parser.add_argument("--dataset", default="synthetic", help="dataset registry name (default: %(default)s)")
    parser.add_argument("--dataset_dir", default="data/synthetic_noisy",
                        help="dataset folder; its noisy web images: web.txt or web/<class>/, or for synthetic "
                             "the noisy training list (default: %(default)s)")
    parser.add_argument("--novel_classes",
                        help="comma-separated novel labels (default: synthetic.json's novel classes)")
    parser.add_argument("--num_novel", type=int, help="instead: this many novel classes drawn with --seed")
    parser.add_argument("--model", default=SMALL_CONVNET,
                        help="backbone: small_convnet or an fgtf model name (default: %(default)s)")
    parser.add_argument("--image_size", type=int, default=64, help="image side in pixels (default: %(default)s)")
    parser.add_argument("--init_weights", help="initial backbone weights: slim checkpoint or .weights.h5")
    parser.add_argument("--pretrain_data", choices=("clean_base", "noisy_novel"), default="clean_base",
                        help="train on the clean base classes (the authors' stated init) or on the noisy novel "
                             "images (the released script) (default: %(default)s)")
    _optimisation(parser, epochs=15, lr=0.02)


def _simnet_arguments(parser):
    _common(parser, batch_size=50)
    parser.add_argument("--batch_classes", type=int, default=20,
                        help="at most this many classes per base batch (default: %(default)s)")
    parser.add_argument("--batch_classes_novel", type=int, default=2,
                        help="at most this many classes per novel batch (default: %(default)s)")
    parser.add_argument("--beta", type=float, default=0.0,
                        help="adversarial weight: SimNet minimises L_sim - beta L_dom; 0 = the released "
                             "script, 0.1 = the method (default: %(default)s)")
    parser.add_argument("--domain_lr", type=float, default=0.01,
                        help="discriminator learning rate (default: %(default)s)")
    parser.add_argument("--eval_batches", type=int, default=10,
                        help="pair-F1 evaluation: batches of --eval_classes x --eval_images test images "
                             "(default: %(default)s)")
    parser.add_argument("--eval_classes", type=int, default=10, help="(default: %(default)s)")
    parser.add_argument("--eval_images", type=int, default=10, help="(default: %(default)s)")
    _optimisation(parser, epochs=8, lr=0.01)


def _weights_arguments(parser):
    _common(parser, batch_size=64)
    parser.add_argument("--figure_images", type=int, default=4,
                        help="highest and lowest weighted images shown per class (default: %(default)s)")


def _train_arguments(parser):
    _common(parser, batch_size=16)
    parser.add_argument("--classes", choices=("all", "novel"), default="all",
                        help="label space: base + novel classes, or the novel classes only as the released "
                             "script (default: %(default)s)")
    parser.add_argument("--init", choices=("pretrain", "scratch"), default="pretrain",
                        help="start from the pretrained backbone or from scratch (default: %(default)s)")
    parser.add_argument("--weighting", choices=("savg1", "avg1", "none"), default="savg1",
                        help="sample weights of the weighted-CE epochs (default: %(default)s)")
    parser.add_argument("--graph_epochs", type=int, default=0,
                        help="alternating epochs after --epochs: even = graph (weighted CE + alpha L_graph, "
                             "batch --graph_batch_size), odd = weighted CE (default: %(default)s)")
    parser.add_argument("--graph_weighting", choices=("savg1", "avg1", "none"), default="avg1",
                        help="sample weights of the alternating epochs (default: %(default)s)")
    parser.add_argument("--graph_batch_size", type=int, default=128, help="(default: %(default)s)")
    parser.add_argument("--alpha", type=float, default=0.1, help="graph loss weight (default: %(default)s)")
    parser.add_argument("--mu", type=float, default=-4.0, help="similarity relaxation (default: %(default)s)")
    parser.add_argument("--eye", type=int, choices=(0, 1), default=1,
                        help="1: graph over all pairs (the script); 0: same-label pairs only (default: %(default)s)")
    _optimisation(parser, epochs=8, lr=0.02)


def _eval_arguments(parser):
    _common(parser, batch_size=64)


_STEP_ARGUMENTS = {"pretrain": _pretrain_arguments, "simnet": _simnet_arguments, "weights": _weights_arguments,
                   "train": _train_arguments, "eval": _eval_arguments}
_STEP_FUNCTIONS = {"pretrain": pretrain, "simnet": train_simnet, "weights": compute_weights,
                   "train": train_classifier, "eval": evaluate}


# ---------------------------------------------------------------- run folder

def _novel_classes(args):
    from fgtf.datasets import base_novel_split, get_num_classes

    if args.novel_classes:
        try:
            return [int(v) for v in args.novel_classes.split(",") if v.strip()]
        except ValueError:
            raise UserError(f"--novel_classes must be comma-separated integer labels, got {args.novel_classes!r}") \
                from None
    if args.num_novel:
        return base_novel_split(get_num_classes(args.dataset, args.dataset_dir), args.num_novel, args.seed)[1]
    metadata = os.path.join(args.dataset_dir, "synthetic.json")
    if os.path.isfile(metadata):
        with open(metadata, encoding="utf-8") as handle:
            novel = json.load(handle).get("novel_classes") or []
        if novel:
            return novel
    raise UserError("give the novel classes with --novel_classes or --num_novel (only a synthetic dataset "
                    "generated with --novel_classes records them)")


def _load_run(run_dir):
    """run.json and the dataset's weak-shot split it names."""
    from fgtf.datasets import weak_shot_split

    path = os.path.join(run_dir, RUN_FILE)
    if not os.path.isfile(path):
        raise UserError(f"{path} is missing; run `python -m fgtf.simtrans pretrain --run_dir {run_dir}` first")
    with open(path, encoding="utf-8") as handle:
        run = json.load(handle)
    return run, weak_shot_split(run["dataset"], run["dataset_dir"], run["novel_classes"], run["base_classes"])


def _require(run_dir, relative, step):
    if not os.path.isfile(os.path.join(run_dir, relative)):
        raise UserError(f"{os.path.join(run_dir, relative)} is missing; run `python -m fgtf.simtrans {step} "
                        f"--run_dir {run_dir}` first")


def _read_step_metrics(run_dir, step):
    _require(run_dir, os.path.join(step, "metrics.json"), step)
    with open(os.path.join(run_dir, step, "metrics.json"), encoding="utf-8") as handle:
        return json.load(handle)


def _read_weights(run_dir, formula):
    relative = os.path.join("weights", f"{formula}.json")
    _require(run_dir, relative, "weights")
    with open(os.path.join(run_dir, relative), encoding="utf-8") as handle:
        return json.load(handle)


def _finish(run_dir, step, metrics):
    from fgtf.fileio import write_json

    write_json(os.path.join(run_dir, step, "metrics.json"), metrics)
    print(f"[{step}] done -> {os.path.join(run_dir, step)}", flush=True)


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

def _backbone(run, weights=None):
    """The run's backbone: a model (B, S, S, 3) -> 4-D feature map."""
    size = run["image_size"]
    if run["model"] == SMALL_CONVNET:
        backbone = small_convnet(size)
        if weights:
            backbone.load_weights(weights)
        return backbone
    from fgtf.models import build_model

    return build_model(run["model"], include_top=False, weights=weights, input_shape=(size, size, 3))


def _pooled(backbone):
    """The backbone's globally average-pooled features (B, C) as a model sharing its layers."""
    import keras

    pooled = keras.layers.GlobalAveragePooling2D(name="features")(backbone.outputs[0])
    return keras.Model(backbone.inputs, pooled, name=f"{backbone.name}_features")


def _classifier(run, num_classes, backbone_weights=None, simnet=None):
    import keras

    from fgtf.models.heads.simtrans import WeakShotClassifier

    if backbone_weights and not os.path.exists(backbone_weights) and not os.path.exists(backbone_weights + ".index"):
        raise UserError(f"backbone weights {backbone_weights} not found")
    model = WeakShotClassifier(_backbone(run, backbone_weights), num_classes, simnet=simnet, name="classifier")
    size = run["image_size"]
    model(keras.ops.zeros((1, size, size, 3)))  # build, so .weights.h5 files load
    return model


def _load_simnet(run_dir, run):
    _require(run_dir, SIMNET_WEIGHTS, "simnet")
    simnet = _simnet(run)
    simnet.load_weights(os.path.join(run_dir, SIMNET_WEIGHTS))
    simnet.trainable = False
    return simnet


def _simnet(run, backbone_weights=None, **options):
    """A SimNet on the run's backbone (initialised from `backbone_weights` when given)."""
    from fgtf.models.heads.simtrans import SimNet

    return SimNet(_pooled(_backbone(run, backbone_weights)), name="simnet", **options)


def _fit_classifier(model, run, records, weights, test_sets, args, step, epochs=None, batch_size=None,
                    first_epoch=0, schedule_start=0, graph=None):
    """`epochs` epochs of (1/B) sum w CE (+ graph term when `graph` sets a
    weight), numbered from `first_epoch`, the optimiser rebuilt every epoch
    with lr halved every `lr_interval` epochs since `schedule_start`; logs
    test accuracy per epoch."""
    import keras

    history = []
    for epoch in range(first_epoch, first_epoch + (args.epochs if epochs is None else epochs)):
        for name, value in (graph or {"graph_weight": 0.0}).items():
            setattr(model, name, value)
        model.weight_decay = args.weight_decay
        lr = args.lr * 0.5 ** ((epoch - schedule_start) // args.lr_interval)
        model.compile(keras.optimizers.SGD(lr, momentum=0.9),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      metrics=["accuracy"], jit_compile=False)
        started = time.time()
        dataset = _image_dataset([r.path for r in records], [r.label for r in records], run["image_size"],
                                 batch_size or args.batch_size, training=True, weights=weights,
                                 seed=(args.seed, epoch), augment=args.augment)
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


def _pair_dataset(data, iterations, image_size, args, epoch):
    """tf.data of ((base images, novel images), base labels), one batch per iteration."""
    import tensorflow as tf

    base_index = np.concatenate([a for a, _ in iterations])
    novel_index = np.concatenate([b for _, b in iterations])
    base_paths = [data.base_train[i].path for i in base_index]
    novel_paths = [data.novel_train[i].path for i in novel_index]
    _check_files(base_paths + novel_paths)
    labels = np.array([data.base_train[i].label for i in base_index], np.int32)
    seeds = np.stack([np.full(len(base_index), args.seed * 100003 + epoch), np.arange(len(base_index))], axis=1)
    dataset = tf.data.Dataset.from_tensor_slices((base_paths, novel_paths, labels, seeds))

    def load(base_path, novel_path, label, seed):
        return ((_train_image(base_path, image_size, seed, args.augment),
                 _train_image(novel_path, image_size, seed + [0, 1 << 20], args.augment)), label)

    return (dataset.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
            .batch(args.batch_size).prefetch(tf.data.AUTOTUNE))


def _pair_f1(simnet, records, image_size, args, rng):
    """F1 of "similar" over `eval_batches` batches of `eval_classes` random
    classes x `eval_images` images (with replacement only for small classes),
    all pairs of each batch scored by SimNet in eval mode (spec §5.4)."""
    from fgtf.models.heads.simtrans import pair_targets, similar_f1

    labels = np.array([r.label for r in records])
    classes = np.unique(labels)
    predicted, targets = [], []
    for _ in range(args.eval_batches):
        picked = rng.permutation(classes)[:args.eval_classes]
        index = np.concatenate([rng.choice(np.flatnonzero(labels == c), args.eval_images,
                                           replace=np.sum(labels == c) < args.eval_images) for c in picked])
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

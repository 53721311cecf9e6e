"""SimTrans weak-shot pipeline: the original's steps as subcommands over one run folder.

    python -m fgtf.datasets.synthetic --out data/synthetic_noisy --label_noise 0.4 --novel_classes 5
    python -m fgtf.simtrans pretrain --dataset_dir data/synthetic_noisy --run_dir runs/simtrans
    python -m fgtf.simtrans simnet   --run_dir runs/simtrans [--beta 0.1]
    python -m fgtf.simtrans weights  --run_dir runs/simtrans
    python -m fgtf.simtrans train    --run_dir runs/simtrans [--graph_epochs 4]
    python -m fgtf.simtrans eval     --run_dir runs/simtrans

Steps (Chen et al., "Semantic Transfer for Weak-Shot Learning", NeurIPS 2021):
  pretrain  backbone + linear classifier, plain CE on the clean base classes
            (`--pretrain_data noisy_novel`: the released script's choice)
  simnet    SimNet on pairs of class-grouped base batches, with the adversarial
            domain discriminator on novel batches (`--beta`, the method's 0.1
            by default; 0: the released script, which leaves it out); batches
            fitted to small base sets unless `--batch_size` is given
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
minutes; the original is `--model resnet50` (torchvision's ResNet-50, 224 px, from
torchvision's ImageNet `.pth` with `--checkpoint`). Any fgtf registry backbone works,
optionally initialised from `--checkpoint`: a
TF-Slim checkpoint, a `.weights.h5`, an fgtf training run folder or another
SimTrans run folder of the same network (a run gives `--model` and
`--image_size` when they are left out), read by `fgtf.checkpoints.load_into`
like every command's weights. Images go through the run's `--preprocessing`
pipeline (recorded in run.json; default: a --checkpoint run's, else the
network's): its test transform for testing and features; for training the
same with a random flip (`--augment flip`, default: short CPU schedules) or
the pipeline's own training transform (`--augment train`; the original's is
`--model resnet50 --preprocessing simtrans --augment train`).

Kept from the original: SGD momentum 0.9 rebuilt every epoch (momentum reset),
learning rate halved every `--num_epochs_per_decay` epochs, coupled L2 weight decay on every
weight, class-grouped pair batches, weights (1/B) sum w CE, dense graph over
the batch with relaxation mu and mask eye. Changed: no test-set model
selection or early stopping (the last epoch is kept; the test metrics of
every epoch are logged); a SimNet iteration uses only full-size batch pairs.
"""
import argparse
import inspect
import os

from fgtf.recipes import Plan, RecipeCommand, check_start, recipe_requested, run_recipe
from fgtf.simtrans.networks import SIMTRANS_DEFAULT_MODEL
from fgtf.simtrans.steps import (AUGMENTATIONS, FORMER_AUGMENTATIONS, LABEL_SPACES, PRETRAIN_DATA, STEPS,
                                 WEIGHT_FORMULAS, ClassifierOptions, PretrainOptions, SimNetOptions, compute_weights,
                                 evaluate, pretrain, train_classifier, train_simnet)
from fgtf.command_line import (HelpFormatter, cli_main, command_parser, non_negative_float, non_negative_int,
                               positive_float, positive_int, program_name)
from fgtf.errors import UserError


@cli_main
def main(argv=None):
    if recipe_requested(argv):
        run_recipe(RECIPE_COMMAND, argv)
        return
    flags = vars(build_parser().parse_args(argv))
    run_step(flags.pop("step"), flags)


def run_step(step, flags):
    """Run step `step` with its parsed flags ({destination: value}, the run
    folder's `run_dir` among them): the fields of its options, or the
    keyword arguments of a step without any."""
    values = dict(flags)
    run_dir = values.pop("run_dir")
    function, options = STEP_FUNCTIONS[step]
    return function(run_dir, **values) if options is None else function(run_dir, options(**values))


def build_parser():
    """The parser of `python -m fgtf.simtrans STEP ...`."""
    parser = command_parser(__name__, __doc__)
    parser.add_argument("--recipe", metavar="NAME_OR_PATH", default=argparse.SUPPRESS,
                        help="run every step of a published experiment's recipe in order (fgtf recipes lists "
                             "them; a step that finished with the same settings is skipped): fgtf simtrans --recipe "
                             "simtrans_cub --dataset_dir DIR --run_dir DIR --checkpoint FILE [flags]; each step takes "
                             "the flags it has from the command line over the recipe's")
    steps = parser.add_subparsers(dest="step", metavar="STEP", required=True)
    for step in STEPS:
        _STEP_ARGUMENTS[step](steps.add_parser(step, help=_STEP_HELP[step], description=_STEP_HELP[step],
                                               formatter_class=HelpFormatter))
    return parser


def step_parser(step):
    """The parser of one step's flags (as `python -m fgtf.simtrans STEP` parses them)."""
    parser = argparse.ArgumentParser(prog=f"{program_name(__name__)} {step}", description=_STEP_HELP[step],
                                     formatter_class=HelpFormatter)
    _STEP_ARGUMENTS[step](parser)
    return parser


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


def _add(parser, settings, name, help, *flags, flag=None, **options):
    """`--name` (or `--flag`, the vocabulary's name, with `--name` kept as an
    alias; plus alias `flags`) setting field or parameter `name` of
    `settings` (a step's options class, or a step function), whose default
    it takes from its signature."""
    names = (f"--{flag}", f"--{name}") if flag else (f"--{name}",)
    if flag:
        options.setdefault("metavar", flag.upper())
    parser.add_argument(*names, *flags, dest=name, default=inspect.signature(settings).parameters[name].default,
                        help=help, **options)


def _schedule_arguments(parser, settings):
    _add(parser, settings, "epochs", "training epochs", type=positive_int)
    _add(parser, settings, "lr", "SGD learning rate (momentum 0.9)", flag="learning_rate", type=positive_float)
    _add(parser, settings, "lr_interval", "halve the learning rate every this many epochs",
         flag="num_epochs_per_decay", type=positive_int)
    _add(parser, settings, "weight_decay", "coupled L2 on every weight, as PyTorch SGD", type=non_negative_float)
    _add(parser, settings, "augment", "training preprocessing: the test transform of the run's --preprocessing + "
         "a random flip, or that pipeline's own training transform (former name: inception)",
         type=lambda text: FORMER_AUGMENTATIONS.get(text, text), choices=AUGMENTATIONS)
    default = inspect.signature(settings).parameters["batch_size"].default
    _add(parser, settings, "batch_size", "images per training batch" + (
        "; none given: the original's 50 when the base and the novel training sets hold 7 batches of 50 each, "
        "else the largest multiple of 5 they hold 7 times" if default is None else ""), type=positive_int)
    _add(parser, settings, "seed", "random seed of initialisation, order and augmentation", type=non_negative_int)


def _run_dir_argument(parser):
    parser.add_argument("--run_dir", default="runs/simtrans", help="the SimTrans run folder")


def _pretrain_arguments(parser):
    from fgtf.models import list_models
    from fgtf.preprocessing import PIPELINE_NAMES

    _run_dir_argument(parser)
    parser.add_argument("--dataset_dir", default="data/synthetic_noisy",
                        help="dataset folder; its noisy web images: web.txt or web/<class>/, or for synthetic "
                             "the noisy training list")
    _add(parser, PretrainOptions, "dataset", "dataset registry name")
    _add(parser, PretrainOptions, "novel_classes", "comma-separated novel labels; none given: the novel classes "
         "recorded in a synthetic dataset's synthetic.json", type=_label_list)
    _add(parser, PretrainOptions, "num_novel", "instead of --novel_classes: this many novel classes drawn with --seed",
         type=positive_int)
    _add(parser, PretrainOptions, "model", f"backbone, an fgtf registry name: {', '.join(list_models())}; none given: "
         f"a --checkpoint run's, fgtf .weights.h5's or torchvision .pth's network, else {SIMTRANS_DEFAULT_MODEL}")
    _add(parser, PretrainOptions, "image_size", "image side in pixels; none given: a --checkpoint run's, else the "
         "network's default size (small_cnn 64, torchvision's ResNets 224)", type=positive_int)
    _add(parser, PretrainOptions, "preprocessing", "input pipeline of every step (recorded in run.json); none "
         "given: a --checkpoint run's, else the network's", choices=PIPELINE_NAMES)
    _add(parser, PretrainOptions, "checkpoint", "initial backbone weights: TF-Slim checkpoint, .weights.h5, "
         "torchvision .pth, fgtf run folder or SimTrans run folder of the same --model; none given: random "
         "initialisation", "--init_weights")
    _add(parser, PretrainOptions, "pretrain_data", "train on the clean base classes (the authors' stated init) or "
         "on the noisy novel images (the released script)", choices=PRETRAIN_DATA)
    _schedule_arguments(parser, PretrainOptions)


def _simnet_arguments(parser):
    _run_dir_argument(parser)
    _add(parser, SimNetOptions, "batch_classes", "at most this many classes per base batch; none given: the "
         "original's 20 with batches of 50 or more, else one per 5 images", type=positive_int)
    _add(parser, SimNetOptions, "batch_classes_novel", "at most this many classes per novel batch",
         type=positive_int)
    _add(parser, SimNetOptions, "beta", "adversarial weight: SimNet minimises L_sim - beta L_dom; 0.1 is the "
         "method's, 0 the released script's (the term left out)", type=non_negative_float)
    _add(parser, SimNetOptions, "domain_lr", "discriminator learning rate", type=positive_float)
    _add(parser, SimNetOptions, "eval_batches", "pair-F1 evaluation: batches of --eval_classes x --eval_images "
         "test images", type=positive_int)
    _add(parser, SimNetOptions, "eval_classes", "classes per pair-F1 evaluation batch", type=positive_int)
    _add(parser, SimNetOptions, "eval_images", "images per class in a pair-F1 evaluation batch", type=positive_int)
    _schedule_arguments(parser, SimNetOptions)


def _weights_arguments(parser):
    _run_dir_argument(parser)
    _add(parser, compute_weights, "figure_images", "highest and lowest weighted images shown per class",
         type=positive_int)
    _add(parser, compute_weights, "batch_size", "images per feature batch", type=positive_int)


def _train_arguments(parser):
    _run_dir_argument(parser)
    _add(parser, ClassifierOptions, "classes", "label space: base + novel classes, or the novel classes only as "
         "the released script", choices=LABEL_SPACES)
    _add(parser, ClassifierOptions, "init", "start from the pretrained backbone or from scratch",
         choices=("pretrain", "scratch"))
    _add(parser, ClassifierOptions, "weighting", "sample weights of the weighted-CE epochs",
         choices=(*WEIGHT_FORMULAS, "none"))
    _add(parser, ClassifierOptions, "graph_epochs", "alternating epochs after --epochs: even = graph (weighted CE + "
         "alpha L_graph, batch --graph_batch_size), odd = weighted CE", type=non_negative_int)
    _add(parser, ClassifierOptions, "graph_weighting", "sample weights of the alternating epochs",
         choices=(*WEIGHT_FORMULAS, "none"))
    _add(parser, ClassifierOptions, "graph_batch_size", "batch size of the graph epochs", type=positive_int)
    _add(parser, ClassifierOptions, "alpha", "graph loss weight", type=non_negative_float)
    _add(parser, ClassifierOptions, "mu", "similarity relaxation of the graph", type=float)
    _add(parser, ClassifierOptions, "eye", "1: graph over all pairs (the script); 0: same-label pairs only",
         type=int, choices=(0, 1))
    _schedule_arguments(parser, ClassifierOptions)


def _eval_arguments(parser):
    _run_dir_argument(parser)
    _add(parser, evaluate, "batch_size", "images per evaluation batch", type=positive_int)


_STEP_ARGUMENTS = {"pretrain": _pretrain_arguments, "simnet": _simnet_arguments, "weights": _weights_arguments,
                   "train": _train_arguments, "eval": _eval_arguments}
# Each step's function and the options class its flags fill (None: they are the function's keyword arguments).
STEP_FUNCTIONS = {"pretrain": (pretrain, PretrainOptions), "simnet": (train_simnet, SimNetOptions),
                  "weights": (compute_weights, None), "train": (train_classifier, ClassifierOptions),
                  "eval": (evaluate, None)}


def _recipe_plan(recipe, stage, flags, dests):
    """A recipe stage's `fgtf.recipes.Plan`: its step in the one run folder."""
    from fgtf.simtrans.run_folder import current_step

    if "--checkpoint" in dests:
        check_start(recipe, flags, dests)

    def finished():
        try:
            current_step(flags.run_dir, stage.step)
        except UserError:
            return False
        return True

    return Plan(stage, flags, flags.run_dir, os.path.join(flags.run_dir, stage.step),
                run=lambda: run_step(stage.step, vars(flags)), finished=finished)


# How `fgtf simtrans --recipe` and `fgtf recipes` run a recipe's steps with this command.
RECIPE_COMMAND = RecipeCommand("simtrans", parser=lambda stage: step_parser(stage.step), plan=_recipe_plan,
                               step_names=tuple(STEPS))


if __name__ == "__main__":
    main()

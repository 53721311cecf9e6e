"""Train a backbone (optionally with an FGVC head) on TFRecords under tf.distribute.

    python -m fgtf.train --dataset cub_200 --dataset_dir data/cub_200 --model inception_v3 \\
        --checkpoint checkpoints/inception_v3_iNat_299.ckpt \\
        --checkpoint_exclude_scopes InceptionV3/Logits,InceptionV3/AuxLogits \\
        --run_dir runs/cub_v3 --max_number_of_steps 20000
    python -m fgtf.train --dataset_dir my_images --checkpoint runs/cub_v3 \\
        --checkpoint_exclude_scopes InceptionV3/Logits,InceptionV3/AuxLogits --run_dir runs/mine --epochs 30

The flags mirror the original TF-Slim `train_image_classifier.py` (train.sh sets
them from its environment variables). Each step is Keras's own compiled
`train_step` (so every `keras.Model` head trains unchanged) on every replica; the loop around it
checkpoints the model, the optimizer (with its weight EMA) and the step every
`--save_interval_secs`. The input stream is deterministic for `--seed`, so a
run killed at any moment and started again with the same command resumes at
the same step, optimizer state and data position (finished passes over the
data are skipped without reading them), and a finished run is not trained
again. One process trains in a run folder at a time (a second is turned
away naming the first); a latest checkpoint cut short by a crash or a full
disk is removed and the one before it resumed.
"""
import argparse
import os
import sys

from fgtf.optimizer_choices import (DECAY_TYPES, FROZEN_BATCH_NORM, OPTIMIZERS, SCOPE_MATCHING,
                                    WEIGHT_DECAY_MODES)
from fgtf.recipes import Plan, RecipeCommand, check_start, recipe_requested, run_recipe
from fgtf.train_config import TrainConfig, config_defaults, head_flags
from fgtf.command_line import (cli_main, command_parser, non_negative_float, positive_float, positive_int, program_name,
                               split_name)
from fgtf.errors import TrainingDiverged

EXIT_DIVERGED = 3


def main(argv=None):
    try:
        _main(argv)
    except TrainingDiverged as error:
        print(f"{program_name(__name__)}: error: {error}", file=sys.stderr)
        sys.exit(EXIT_DIVERGED)


@cli_main
def _main(argv=None):
    if recipe_requested(argv):
        run_recipe(RECIPE_COMMAND, argv)
        return
    run_training(TrainConfig.from_flags(build_parser().parse_args(argv)))


def run_training(config):
    """`fgtf.training.train(config)`, imported only here: parsing the flags
    (and --help) does not load TensorFlow."""
    from fgtf.training import train

    return train(config)


def decay(text):
    """A moving-average decay or probability in [0, 1)."""
    value = float(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
    return value


def crop_area(text):
    """A share of the image in (0, 1]."""
    value = float(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be a share of the image in (0, 1], got {text}")
    return value


def scope_factors(text):
    """`Logits=10,AuxLogits=10` -> (("Logits", 10.0), ("AuxLogits", 10.0))."""
    pairs = []
    for item in (part.strip() for part in text.split(",")):
        scope, _, factor = item.partition("=")
        if not item or not scope.strip() or not factor:
            raise argparse.ArgumentTypeError(f"give SCOPE=FACTOR pairs separated by commas (e.g. Logits=10), "
                                             f"got {text!r}")
        pairs.append((scope.strip(), positive_float(factor)))
    return tuple(pairs)


def epochs_list(text):
    """`20,40` -> (20.0, 40.0): increasing epochs."""
    return _increasing(text, positive_float)


def steps_list(text):
    """`6000,12000` -> (6000, 12000): increasing steps."""
    return _increasing(text, positive_int)


def _increasing(text, number):
    values = tuple(number(part) for part in text.split(","))
    if list(values) != sorted(set(values)):
        raise argparse.ArgumentTypeError(f"must increase, got {text}")
    return values


def percent(text):
    value = float(text)
    if not 0 < value <= 100:
        raise argparse.ArgumentTypeError(f"must be a percentage in (0, 100], got {text}")
    return value


def build_parser():
    from fgtf.distribute import STRATEGIES
    from fgtf.models.heads import HEAD_CHOICES
    from fgtf.preprocessing import EVAL_VIEWS, PIPELINE_NAMES

    p = command_parser(__name__, __doc__)
    p.add_argument("--recipe", metavar="NAME_OR_PATH", default=argparse.SUPPRESS,
                   help="run a published experiment's recipe (fgtf recipes lists them): its settings are the defaults "
                        "of these flags, flags given override them; a recipe of stages runs each into "
                        "<run_dir>/<stage>, skipping a stage that finished with the same settings")
    g = p.add_argument_group("data")
    g.add_argument("--dataset", "--dataset_name", dest="dataset", metavar="NAME",
                   help="dataset registry name, for its class count and CLE's loss weights (default: folder, "
                        "a dataset of your own: classes counted from the data)")
    g.add_argument("--dataset_dir", required=True,
                   help="folder of the TFRecord shards (fgtf.convert's or the original tool's), or the dataset "
                        "folder whose tfrecords/ subfolder holds them")
    g.add_argument("--num_classes", type=positive_int,
                   help="class count (default: the registry's, else the data's labels)")
    g.add_argument("--image_size", "--train_image_size", dest="image_size", type=positive_int, metavar="N",
                   help="training image side in pixels (default: the run being resumed's, or a --checkpoint run's, "
                        "else the network's default size: 299 for the slim networks, 224 for torchvision's and Swin)")
    g.add_argument("--preprocessing", choices=PIPELINE_NAMES,
                   help="input pipeline, recorded in the run and used by every later command on it (default: the "
                        "run being resumed's, or a --checkpoint run's, else the network's: inception for the slim "
                        "networks, simtrans for torchvision's ResNets, cle for Swin; docs/preprocessing.md)")
    g.add_argument("--label_ratio", type=percent, help="train on this percent of each class's images (10, 15, 30, 50)")
    g.add_argument("--min_crop_area", type=crop_area,
                   help="smallest share of the image a random training crop of the inception preprocessing covers "
                        "(default: slim's 0.05); larger keeps small parts in view on small images, e.g. 0.5")
    g.add_argument("--skip_bad_records", action="store_true",
                   help="leave out records that do not parse or decode (each is logged) instead of stopping")
    g = p.add_argument_group("model")
    g.add_argument("--model", "--model_name", dest="model", metavar="NAME",
                   help="backbone (fgtf.models.list_models(); default: the network of the run being resumed, of a "
                        "--checkpoint run or fgtf .weights.h5, else inception_v3)")
    g.add_argument("--drop_path_rate", type=decay,
                   help="stochastic depth of the last block of a Swin backbone, linear from 0 over the blocks "
                        "(CLE-ViT: 0.5)")
    g.add_argument("--batch_norm_decay", type=decay,
                   help="moving-average decay of batch-norm statistics (default: the network's, 0.9997 for "
                        "Inception, 0.997 for ResNet; use ~0.9 for runs of a few hundred steps)")
    g = p.add_argument_group("head", "an FGVC head and its own options")
    g.add_argument("--head", choices=HEAD_CHOICES,
                   help="FGVC head on the backbone's feature map (none: the slim classifier)")
    for name in HEAD_CHOICES:
        for flag in head_flags(name):
            g.add_argument(f"--{flag.dest}", type=flag.type, choices=flag.choices, help=f"{flag.help} (--head {name})")
    g = p.add_argument_group("fine-tuning")
    g.add_argument("--checkpoint", "--checkpoint_path", dest="checkpoint", metavar="PATH",
                   help="weights to start a new run from: TF-Slim checkpoint, Keras .weights.h5, torchvision .pth "
                        "(its network from its keys; its fc left out for another class count), or a previous "
                        "fgtf run folder (its model weights only: fresh optimizer, step 0; its network and image "
                        "size unless given); a SavedModel is refused (an opaque graph)")
    g.add_argument("--checkpoint_exclude_scopes",
                   help="comma-separated slim scopes not restored, e.g. InceptionV3/Logits,InceptionV3/AuxLogits")
    g.add_argument("--no_ema", action="store_true",
                   help="from a run folder, take its raw weights even when it kept an EMA of them")
    g.add_argument("--trainable_scopes", help="comma-separated slim scopes to train (empty: all)")
    g.add_argument("--scope_matching", choices=SCOPE_MATCHING,
                   help="how --trainable_scopes, --checkpoint_exclude_scopes and --learning_rate_multipliers name "
                        "weights: substring (the CVPR 2018 trainer's: Logits also names AuxLogits) or prefix "
                        "(Logits names Logits/...)")
    g.add_argument("--frozen_batch_norm", choices=FROZEN_BATCH_NORM,
                   help="batch norm outside --trainable_scopes: train (slim's is_training=True and PyTorch's "
                        "model.train(): batch statistics, moving averages updated) or inference (moving statistics, "
                        "left as they are)")
    g = p.add_argument_group("optimization")
    g.add_argument("--optimizer", choices=OPTIMIZERS,
                   help="optimizer: momentum, sgd, rmsprop and adam as TF1's (the slim trainer's; momentum is also "
                        "PyTorch's SGD), adamw as PyTorch's AdamW")
    g.add_argument("--learning_rate_multipliers", type=scope_factors, metavar="SCOPE=FACTOR,...",
                   help="parameter groups: the weights under each scope train at FACTOR x the learning rate, weight "
                        "decay included (e.g. Logits=10 for the slim networks, fc=10 for torchvision's ResNets, "
                        "head=5 for CLE) (default: none, one rate for every weight)")
    g.add_argument("--momentum", type=decay,
                   help="momentum of the momentum optimizer: v <- momentum v + g, w <- w - lr v (TF1 and PyTorch)")
    g.add_argument("--nesterov", action="store_true", help="Nesterov momentum (the momentum optimizer)")
    g.add_argument("--rmsprop_decay", type=decay, help="RMSProp's decay of the squared gradients")
    g.add_argument("--rmsprop_momentum", type=decay, help="RMSProp's momentum")
    g.add_argument("--rmsprop_initial_mean_square", type=non_negative_float,
                   help="where RMSProp's mean square starts (TF1: 1; Keras and PyTorch: 0)")
    g.add_argument("--opt_epsilon", type=positive_float,
                   help="epsilon of RMSProp and Adam (default: the slim trainer's 1.0; adamw: 1e-8)")
    g.add_argument("--adam_beta1", type=decay, help="Adam's first-moment decay")
    g.add_argument("--adam_beta2", type=decay, help="Adam's second-moment decay")
    g.add_argument("--weight_decay", type=non_negative_float,
                   help="weight decay (default: 0.00004 slim, 0.0001 coupled, 0.05 decoupled)")
    g.add_argument("--weight_decay_mode", choices=WEIGHT_DECAY_MODES,
                   help="slim (L2 on conv and dense kernels in the loss; default), coupled (wd x weight added to "
                        "every trained weight's gradient, biases and batch norm included: PyTorch's SGD) or "
                        "decoupled (weights shrunk by lr x wd, 1-D weights left alone: AdamW; default of adamw)")
    g.add_argument("--clip_gradient_norm", type=positive_float,
                   help="clip the gradients to this global norm before each step (CLE-ViT: 5)")
    g.add_argument("--label_smoothing", type=decay, help="label smoothing of the cross-entropy")
    g.add_argument("--aux_loss_weight", type=non_negative_float,
                   help="weight of the aux-logits loss (0 disables)")
    g.add_argument("--moving_average_decay", type=decay,
                   help="keep TF1's moving average of the weights (e.g. 0.9999; the decay capped by "
                        "(1 + n) / (10 + n) at update n), used by evaluate, extract_features and export")
    g = p.add_argument_group("schedule")
    g.add_argument("--learning_rate", type=positive_float, help="initial learning rate")
    g.add_argument("--learning_rate_decay_type", choices=DECAY_TYPES,
                   help="learning-rate schedule: exponential (x factor every --num_epochs_per_decay, stepwise: "
                        "TF1's staircase, PyTorch's StepLR), polynomial (linear to --end_learning_rate), fixed, "
                        "multistep (x factor at each milestone: PyTorch's MultiStepLR), cosine (half a cosine over "
                        "the run), warmup_linear (CLE-ViT's: from lr/1000 over the warm-up, then linear)")
    g.add_argument("--learning_rate_decay_factor", type=positive_float,
                   help="factor of each exponential or multistep decay")
    per_decay = g.add_mutually_exclusive_group()
    per_decay.add_argument("--num_epochs_per_decay", type=positive_float, help="epochs between exponential decays")
    per_decay.add_argument("--num_steps_per_decay", type=positive_int, help="or steps between them")
    milestones = g.add_mutually_exclusive_group()
    milestones.add_argument("--milestone_epochs", type=epochs_list, metavar="E1,E2,...",
                            help="epochs at which multistep decays (default: none)")
    milestones.add_argument("--milestone_steps", type=steps_list, metavar="S1,S2,...", help="or steps (default: none)")
    g.add_argument("--end_learning_rate", type=non_negative_float,
                   help="end of the polynomial (default 0.0001), cosine (0) and warmup_linear (1 %% of the rate) "
                        "schedules; floor of the exponential when given (TF1 has none)")
    warmup = g.add_mutually_exclusive_group()
    warmup.add_argument("--warmup_epochs", type=non_negative_float,
                        help="warm-up epochs of --learning_rate_decay_type warmup_linear")
    warmup.add_argument("--warmup_steps", type=positive_int, help="or warm-up steps")
    g.add_argument("--batch_size", type=positive_int, help="global batch size over all replicas")
    g.add_argument("--max_number_of_steps", type=positive_int, help="train this many steps")
    g.add_argument("--epochs", type=positive_float, help="or this many epochs (steps from the global batch)")
    g = p.add_argument_group("evaluation during training")
    g.add_argument("--eval_every_epochs", type=positive_float, metavar="N",
                   help="evaluate the weights (their EMA when kept) on --eval_split every N epochs and at the end: "
                        "eval_history.csv, eval_summary.json, the best checkpoint in <run_dir>/best")
    g.add_argument("--eval_every_steps", type=positive_int, metavar="N", help="or every N steps and at the end")
    g.add_argument("--eval_split", type=split_name, metavar="SPLIT",
                   help="split evaluated during training: validation (or val), train")
    g.add_argument("--eval_views", type=int, choices=EVAL_VIEWS,
                   help="test views per image whose logits are summed in those evaluations: 1, or SAM's 10 (needs "
                        "--preprocessing sam), as python -m fgtf.evaluate --eval_views")
    g.add_argument("--eval_batch_size", type=positive_int, metavar="N",
                   help="global batch of those evaluations (default: --batch_size); a replica's share is what "
                        "python -m fgtf.evaluate --batch_size must be to give the same numbers for a head that "
                        "normalises over its batch (SAM-Bilinear)")
    run = g = p.add_argument_group("run", "the run folder, the seed, logging, checkpoints and devices")
    g.add_argument("--run_dir", "--train_dir", "--model_dir", dest="run_dir", required=True, metavar="DIR",
                   help="run folder for checkpoints, summaries and run_config.json; resumes when it is a run "
                        "with the same settings")
    g.add_argument("--seed", type=int, help="seed of initialisation, data order and augmentation")
    g.add_argument("--log_every_n_steps", type=positive_int, help="print the metrics this often")
    g.add_argument("--save_summaries_secs", type=non_negative_float,
                   help="write TensorBoard summaries at most this often")
    g.add_argument("--save_interval_secs", type=non_negative_float, help="checkpoint this often")
    g.add_argument("--max_checkpoints_to_keep", type=positive_int, help="checkpoints kept in the run")
    g.add_argument("--strategy", choices=STRATEGIES, help="tf.distribute strategy")
    g.add_argument("--tpu", help="TPU address for --strategy tpu")
    g.add_argument("--mixed_precision", action="store_true", help="mixed_float16 compute (GPU), float32 losses")
    g.add_argument("--jit_compile", action="store_true", help="compile the train step with XLA")
    p.set_defaults(**config_defaults())
    return p


def _recipe_plan(recipe, stage, flags, dests):
    """A recipe stage's `fgtf.recipes.Plan`: into <run_dir>/<stage> for a
    recipe of stages, starting from an earlier stage's run when it says so."""
    from fgtf import runs

    run_dir = getattr(flags, dests["--run_dir"])
    stage_dir = os.path.join(run_dir, stage.name) if recipe.staged else run_dir
    setattr(flags, dests["--run_dir"], stage_dir)
    if stage.start_from:
        setattr(flags, dests["--checkpoint"], os.path.join(run_dir, stage.start_from))
    else:
        check_start(recipe, flags, dests)
    return Plan(stage, flags, run_dir, stage_dir, run=lambda: run_training(TrainConfig.from_flags(flags)),
                finished=lambda: os.path.isfile(os.path.join(stage_dir, runs.DONE)))


# How `fgtf train --recipe` and `fgtf recipes` run a recipe's stages with this command.
RECIPE_COMMAND = RecipeCommand("train", parser=lambda stage: build_parser(), plan=_recipe_plan)


if __name__ == "__main__":
    main()

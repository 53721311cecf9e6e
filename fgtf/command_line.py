"""What every fgtf command shares: the wrapper that turns a mistake into one
sentence and an exit code (`cli_main`, from `tfrecord_tools.cli`, whose
docstring lists the exit codes), the parser every command starts from
(`command_parser`: named as the user typed the command, one help format),
argparse types that check values where they are parsed, and the flags of
the commands that load a network, declared once (`add_network_flags`).

Library code raises `fgtf.errors.UserError` and never imports this module;
commands do."""
import argparse

from tfrecord_tools.cli import (EXIT_ENVIRONMENT, SPLITS, VERBOSE_HELP, HelpFormatter, cli_main, command_parser,
                                non_negative_float, non_negative_int, positive_float, positive_int, program_name,
                                split_name)

__all__ = ["EXIT_ENVIRONMENT", "SPLITS", "VERBOSE_HELP", "HelpFormatter", "cli_main", "command_parser",
           "non_negative_float", "non_negative_int", "positive_float", "positive_int", "program_name", "split_name",
           "model_name", "add_network_flags"]

WEIGHT_KINDS = "fgtf run folder, .weights.h5, torchvision .pth or TF-Slim .ckpt prefix"


def add_network_flags(parser: argparse.ArgumentParser, *, saved_model: str, num_classes: str | None = None,
                      image_size: bool = True, ema: bool = True, slim_model: str | None = "inception_v3",
                      checkpoint_aliases: tuple[str, ...] = (), image_size_aliases: tuple[str, ...] = ()) -> None:
    """Declare --checkpoint, --model, --image_size, --preprocessing and
    --no_ema as every command that loads a network (`fgtf.checkpoints.
    load_network`) takes them. `saved_model` ends the --checkpoint help: what
    the command does with a SavedModel folder. `num_classes`, when given, is
    the help of a --num_classes flag; `image_size` / `ema` False leave out
    those that do not apply (a weights file has no input size and picks its
    moving averages its own way). `slim_model` is the network a TF-Slim
    checkpoint is read as when --model is left out; None: --model is
    required for one. `checkpoint_aliases`, `image_size_aliases`: former
    names of --checkpoint and --image_size the command still takes (TF-Slim's
    evaluation flag names)."""
    from fgtf.preprocessing import PIPELINE_NAMES

    parser.add_argument("--checkpoint", *checkpoint_aliases, dest="checkpoint", required=True,
                        help=f"weights: {WEIGHT_KINDS}{saved_model}")
    parser.add_argument("--model", type=model_name,
                        help="backbone of a TF-Slim checkpoint or of a .weights.h5 not written by fgtf (default: a "
                             "run's or fgtf .weights.h5's own network, a torchvision .pth's from its keys, "
                             + (f"else {slim_model}" if slim_model else "required for a TF-Slim checkpoint")
                             + "; not used for SavedModel folders)")
    if num_classes:
        parser.add_argument("--num_classes", type=positive_int, help=num_classes)
    if image_size:
        parser.add_argument("--image_size", *image_size_aliases, dest="image_size", type=positive_int, metavar="N",
                            help="image side in pixels (default: a run's training size, a SavedModel's model card's, "
                                 "else the network's default)")
        parser.add_argument("--preprocessing", choices=PIPELINE_NAMES,
                            help="input pipeline, its test transform (default: a run's, a SavedModel's model card's, "
                                 "else the network's)")
    if ema:
        parser.add_argument("--no_ema", dest="use_ema", action="store_false",
                            help="use the raw weights even when the run or checkpoint kept moving averages of them")


def model_name(text: str) -> str:
    """argparse type of `--model`: a name the registry knows, plugins
    included (see `fgtf.models`); anything else is refused where it is parsed."""
    from fgtf.errors import UserError
    from fgtf.models import list_models

    try:
        known = list_models()
    except UserError as error:  # a plugin failed to load: argparse shows ValueErrors as "invalid value"
        raise argparse.ArgumentTypeError(str(error)) from None
    if text not in known:
        raise argparse.ArgumentTypeError(f"unknown model {text!r}; known models: {', '.join(known)}")
    return text

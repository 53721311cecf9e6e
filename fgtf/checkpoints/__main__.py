"""`python -m fgtf.checkpoints` (`fgtf checkpoints convert`): the command of
`fgtf.checkpoints.weights_file.convert_checkpoint`."""
from fgtf.checkpoints.weights_file import convert_checkpoint
from fgtf.command_line import HelpFormatter, add_network_flags, cli_main, command_parser
from fgtf.errors import UserError

COMMAND_HELP = """Convert weights once to a Keras .weights.h5 that records its network.

    python -m fgtf.checkpoints convert --checkpoint X.ckpt --model inception_v3 --out X.weights.h5
    python -m fgtf.checkpoints convert --checkpoint runs/cub --out cub.weights.h5

`convert` maps a TF-Slim checkpoint (or the plain network of an fgtf
training run, its EMA weights when it kept them, or a Keras .weights.h5
of --model) onto the fgtf network and writes a .weights.h5 that records
which network and how many classes it holds; it then loads into any build
of that network (e.g. without its classifier) without name mapping. Every
command that takes --checkpoint reads the same kinds of weights (TF-Slim
checkpoint, .weights.h5, fgtf run folder, SavedModel) and prints what it
loaded."""


@cli_main
def main(argv=None):
    parser = command_parser(__name__, COMMAND_HELP)
    commands = parser.add_subparsers(dest="command", required=True, metavar="convert")
    convert = commands.add_parser("convert", formatter_class=HelpFormatter,
                                  help="TF-Slim checkpoint, fgtf run or .weights.h5 -> fgtf .weights.h5",
                                  description="Write the Keras .weights.h5, recording its network, of a TF-Slim "
                                              "checkpoint, of the plain network of an fgtf training run folder, or "
                                              "of a Keras .weights.h5 (which gains the record).")
    add_network_flags(convert, saved_model=" (or a folder holding a .ckpt; a SavedModel is refused: it holds no "
                                           "fgtf network)",
                      num_classes="classifier size (default: the size of a TF-Slim checkpoint's logits, a run's or "
                                  "fgtf .weights.h5's class count; required for other .weights.h5 files)",
                      image_size=False, ema=False, slim_model=None)
    convert.add_argument("--out", required=True, help="the .weights.h5 file to write")
    convert.add_argument("--use_ema", choices=["auto", "true", "false"], default="auto",
                         help="take the weights' moving averages (slim ExponentialMovingAverage shadows, a run's "
                              "EMA); auto: when present")
    args = parser.parse_args(argv)
    if not args.out.endswith(".weights.h5"):
        raise UserError("--out must end in .weights.h5 (the Keras weights-file suffix)")
    convert_checkpoint(args.model, args.checkpoint, args.out, num_classes=args.num_classes,
                       use_ema={"auto": "auto", "true": True, "false": False}[args.use_ema])


if __name__ == "__main__":
    main()

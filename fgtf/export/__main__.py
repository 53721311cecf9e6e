"""`python -m fgtf.export` (`fgtf export`): the command of `fgtf.export.export`."""
from fgtf.command_line import add_network_flags, cli_main, command_parser
from fgtf.export import FORMATS, OUTPUTS, export
from fgtf.export import __doc__ as EXPORT_HELP
from fgtf.export.formats import CALIBRATION_IMAGES


@cli_main
def main(argv=None):
    p = command_parser(__name__, EXPORT_HELP)
    add_network_flags(p, saved_model=", or SavedModel folder (a program that runs in this process: only one you "
                                     "trust); a run's EMA weights when it kept them",
                      num_classes="export the classifier, of this many classes (it must be the checkpoint's); "
                                  "without it only features, except for run folders, which keep their classifier",
                      ema=False)
    p.add_argument("--format", required=True, choices=FORMATS, help="artifact to write")
    p.add_argument("--outputs", choices=OUTPUTS, help="what the artifact returns (default: both with a "
                                                      "classifier, else features)")
    p.add_argument("--calibration_dir", help="dataset or TFRecord folder whose images (train split, else "
                                             f"validation; {CALIBRATION_IMAGES} of them) calibrate litert_int8")
    p.add_argument("--labels", help="class names in label order, one per line (default: a run's classes.txt, else "
                                    "the one beside --calibration_dir's shards, else class numbers)")
    p.add_argument("--out", required=True, help="output folder; must not exist or be empty")
    args = p.parse_args(argv)
    export(args.checkpoint, args.out, format=args.format, model=args.model, num_classes=args.num_classes,
           image_size=args.image_size, outputs=args.outputs, calibration_dir=args.calibration_dir,
           labels=args.labels, preprocessing=args.preprocessing)


if __name__ == "__main__":
    main()

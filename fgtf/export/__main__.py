"""`python -m fgtf.export` (`fgtf export`): the command of `fgtf.export.export`."""
import argparse

from fgtf.export import FORMATS, OUTPUTS, export
from fgtf.export import __doc__ as EXPORT_HELP
from fgtf.export.formats import CALIBRATION_IMAGES
from tfrecord_tools.cli import cli_main, positive_int


@cli_main
def main(argv=None):
    from fgtf.cli import DocHelpFormatter, model_name
    from fgtf.preprocessing import PIPELINE_NAMES

    p = argparse.ArgumentParser(prog="python -m fgtf.export", description=EXPORT_HELP, formatter_class=DocHelpFormatter)
    p.add_argument("--checkpoint", required=True,
                   help="weights: TF-Slim .ckpt prefix, .weights.h5, torchvision .pth, fgtf run folder (EMA weights "
                        "when kept) or SavedModel folder (a program that runs in this process: only one you trust)")
    p.add_argument("--model", type=model_name, help="backbone name (default: a run's or .weights.h5's own network, "
                                                    "else inception_v3; not used for SavedModel folders)")
    p.add_argument("--num_classes", type=positive_int,
                   help="export the classifier, of this many classes (it must be the checkpoint's); without it "
                        "only features, except for run folders, which keep their classifier")
    p.add_argument("--image_size", type=positive_int,
                   help="input side in pixels (default: a run's training size, else the network's default size, "
                        "299 for SavedModels)")
    p.add_argument("--preprocessing", choices=PIPELINE_NAMES,
                   help="input pipeline whose normalisation the artifact bakes in (default: a run's, a SavedModel's "
                        "model card's, else the network's)")
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

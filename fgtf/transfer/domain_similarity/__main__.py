"""python -m fgtf.transfer.domain_similarity --features feature/inception_v3/ \
    --sources inat2017,ILSVRC2012 --targets cub_200,stanford_cars

prints the EMD and similarity of every source x target pair and writes
domain_similarity.csv/.json/.png (`fgtf.transfer.domain_similarity.table`).
"""
import os

from fgtf.transfer.domain_similarity import TooFewImages
from fgtf.transfer.domain_similarity.table import format_table, similarity_table, write_table
from fgtf.command_line import cli_main, command_parser, positive_float, positive_int, split_name
from fgtf.errors import UserError


@cli_main
def main(argv=None):
    parser = command_parser(__name__, "EMD domain similarity between source and target datasets from extracted features "
                    "(feature/<model>/<dataset>_feature_<split>.npy and _label_<split>.npy).")
    parser.add_argument("--features", required=True, help="folder of one model's features, e.g. feature/inception_v3/")
    parser.add_argument("--sources", required=True, help="comma-separated source datasets; A+B combines two into one domain")
    parser.add_argument("--targets", required=True, help="comma-separated target datasets")
    parser.add_argument("--min_images", type=positive_int, default=200,
                        help="drop source classes with fewer images than this (at least 1)")
    parser.add_argument("--gamma", type=positive_float, default=0.01,
                        help="similarity = exp(-gamma * EMD); must be > 0, so similarity is in (0, 1]")
    parser.add_argument("--split", type=split_name, default="train",
                        help="feature split to compare: train or validation (val accepted)")
    parser.add_argument("--out", help="output folder for domain_similarity.{csv,json,png} (default: the --features folder)")
    args = parser.parse_args(argv)
    sources = [s for s in args.sources.split(",") if s]
    targets = [t for t in args.targets.split(",") if t]
    if not sources or not targets:
        raise UserError("give at least one source and one target dataset")
    try:
        rows = similarity_table(args.features, sources, targets, min_images=args.min_images,
                                gamma=args.gamma, split=args.split)
    except TooFewImages as error:
        raise UserError(f"no source class has --min_images {error.min_images} images (the largest has "
                        f"{error.largest}); lower --min_images, e.g. --min_images {error.largest}") from None
    except UserError:
        raise
    except ValueError as error:  # scikit-learn's and POT's say what is wrong with the data
        raise UserError(str(error)) from None
    print(format_table(rows))
    print(f"(gamma {args.gamma}, min_images {args.min_images}, {args.split} features of {args.features})")
    out = args.out or args.features
    write_table(rows, out, sources, targets)
    print(f"wrote {os.path.join(out, 'domain_similarity')}.csv/.json/.png")


if __name__ == "__main__":
    main()

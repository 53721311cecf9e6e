"""Domain-specific source selection: the K source classes most similar to a
target, to pretrain on the subset of a large source most like the target
(Cui et al., CVPR 2018, the use of the domain similarity of Sec. 4).

    selected = select_classes(source_features, source_labels, target_features, target_labels, 50)

CLI: python -m fgtf.transfer.select_source --features feature/small_cnn --source pool \\
         --target birds --num_classes 50 --out classes.txt [--source_dir data/world/pool]
     python -m fgtf.convert --dataset synthetic --dataset_dir data/world/pool \\
         --num_shards 8 --class_list classes.txt

The rule. Classes are represented as `domain_similarity` represents them:
per-class mean features (`class_features`), the Euclidean distance between
class means as ground cost, and the target's classes weighted by their share
of the target images. The target's mass is transported onto the source
classes at the least total cost (POT's exact `ot.emd`, as the EMD), where each
source class can take at most 1/K of it; the K source classes that receive the
most mass are selected (ties, and the order among classes that receive none,
by the distance to the nearest target class; then the lower class index).
Source classes with fewer than `min_images` images take no part.

Why this rule: it is the EMD's own optimal transport between target and
source classes, asked to serve the whole target with K source classes. With
the EMD's balanced weights the plan cannot rank classes (every source class
sends all of its mass), so the source side gets equal capacities instead: a
class near a target class is chosen, and every target class gets source
classes near it in proportion to its share of the images (K = 50 for a
5-class target gives each class the 10 source classes that serve it best),
which pure nearest-distance ranking does not ensure (it can spend all K on the
neighbours of one target class), while ranking by the mean distance to the
target prefers classes near the target's centre over those that match its
classes. One transport problem of (source classes x target classes) is
solved, the size the EMD itself solves. The JSON written beside the class list
records the exact EMD and similarity (with image-count weights, as
`domain_similarity`) of the selected subset and of the whole pool after
`min_images`, to check that the subset is the nearer domain.

Class names in the output (one per line, the format of a dataset's
classes.txt, which `fgtf.convert --class_list` reads) come from
`--source_dir` when given: the names fgtf.datasets gives the images of that
folder (its classes.txt, or an official release's names), exactly what the
converter matches. Without it, from the image paths the features were
extracted from (`<source>_path_<split>.txt`): each class's parent folder
(`images/<class name>/...` of seed-style and synthetic folders, the class
folders of most releases).
"""
import os
from collections import namedtuple

import numpy as np
from numpy.typing import ArrayLike
from sklearn.metrics.pairwise import euclidean_distances

from fgtf.transfer.domain_similarity import class_features, emd, import_pot, similarity
from fgtf.transfer.feature_store import load_features
from fgtf.command_line import cli_main, command_parser, positive_int, split_name
from fgtf.errors import UserError

GAMMA = 0.01  # the paper's (and domain_similarity's default) similarity scale, for the report

Ranking = namedtuple("Ranking", "labels mass nearest")
Ranking.__doc__ = ("Eligible source classes, most similar first: `labels` (int64), the share of the target's "
                   "mass each receives (`mass`) and its distance to the nearest target class (`nearest`).")


def select_classes(source_features: ArrayLike, source_labels: ArrayLike, target_features: ArrayLike,
                   target_labels: ArrayLike, num_classes: int, *, min_images: int = 1) -> np.ndarray:
    """Indices (labels) of the `num_classes` source classes most similar to the
    target, most similar first, as an int64 array (the rule: module docstring).

    source_features: (N, D), source_labels: (N,) in [0, S); the target likewise.
    Source classes with fewer than `min_images` images are not eligible; asking
    for more classes than are eligible is a `UserError`."""
    ranking = rank_class_features(*class_features(source_features, source_labels),
                                  *class_features(target_features, target_labels), num_classes,
                                  min_images=min_images)
    return ranking.labels[:num_classes]


def rank_class_features(source_feats, source_counts, target_feats, target_counts, num_classes, *,
                        min_images=1):
    """The rule on class features and counts (`domain_similarity.class_features`):
    a `Ranking` of every eligible source class, most similar first."""
    source_feats = np.asarray(source_feats, dtype=np.float64)
    target_feats = np.asarray(target_feats, dtype=np.float64)
    if source_feats.shape[1] != target_feats.shape[1]:
        raise UserError(f"source features are {source_feats.shape[1]}-d but target features are "
                        f"{target_feats.shape[1]}-d; extract both with the same network")
    eligible = np.flatnonzero(np.asarray(source_counts) >= min_images)
    _check_count(num_classes, len(eligible), min_images)
    cost = euclidean_distances(source_feats[eligible], target_feats)
    mass = transported_mass(cost, target_counts, num_classes)
    nearest = cost.min(axis=1)
    # Rounded, so that classes holding the same share (e.g. full ones, 1/K) tie despite float noise.
    order = np.lexsort((eligible, nearest, -np.round(mass * num_classes, 9)))
    return Ranking(eligible[order].astype(np.int64), mass[order], nearest[order])


def transported_mass(cost, target_counts, num_classes):
    """(S,) the share of the target's mass each source class receives when the
    target (class weights = image shares) is transported onto the S source
    classes of `cost` (S, T), each taking at most 1/num_classes, at the least
    total cost. The surplus capacity goes to a dummy target at no cost, which
    makes it the balanced problem `ot.emd` solves exactly."""
    ot = import_pot()

    target_weights = np.asarray(target_counts, dtype=np.float64)
    target_weights = target_weights / target_weights.sum()
    capacity = np.full(len(cost), 1.0 / num_classes)
    surplus = max(capacity.sum() - 1.0, 0.0)
    plan = ot.emd(capacity, np.append(target_weights, surplus), np.hstack([cost, np.zeros((len(cost), 1))]),
                  numItermax=10_000_000)
    return plan[:, :-1].sum(axis=1)


def select_source(features_dir: str, source: str, target: str, num_classes: int, *, min_images: int = 1,
                  split: str = "train", source_dir: str | None = None, source_dataset: str | None = None) -> dict:
    """Select from the features stored in `features_dir` (`fgtf.extract_features`'
    layout); returns the report written as JSON by the CLI: settings, the
    selected classes (rank, label, name, images, target share, nearest
    distance) and the EMD and similarity of the selected subset and of the
    whole pool to the target."""
    source_features, source_labels, source_paths = load_features(features_dir, source, split)
    target_features, target_labels, _ = load_features(features_dir, target, split)
    source_feats, counts = class_features(source_features, source_labels)
    target_domain = class_features(target_features, target_labels)
    ranking = rank_class_features(source_feats, counts, *target_domain, num_classes, min_images=min_images)
    selected = ranking.labels[:num_classes]
    names, names_from = _source_class_names(source_labels, source_paths, source_dir,
                                            source_dataset or _dataset_of(source), split)
    distances = {name: emd(source_feats[labels], counts[labels], *target_domain, min_images=1)
                 for name, labels in (("subset", selected), ("pool", ranking.labels))}
    return {
        "rule": "the target's mass (image shares) transported onto the source classes at least Euclidean cost "
                "between class means, each source class taking at most 1/num_classes; the num_classes "
                "receiving the most are selected (ties by distance to the nearest target class)",
        "features": features_dir, "source": source, "target": target, "split": split,
        "num_classes": int(num_classes), "min_images": int(min_images), "class_names_from": names_from,
        "source_classes": int(len(counts)), "eligible_classes": int(len(ranking.labels)),
        "selected": [{"rank": rank, "label": int(label), "name": names[label], "images": int(counts[label]),
                      "target_share": float(ranking.mass[rank - 1]),
                      "nearest_target_distance": float(ranking.nearest[rank - 1])}
                     for rank, label in enumerate(selected, 1)],
        "gamma": GAMMA,
        "subset_emd": distances["subset"], "subset_similarity": float(similarity(distances["subset"], GAMMA)),
        "pool_emd": distances["pool"], "pool_similarity": float(similarity(distances["pool"], GAMMA)),
        "subset_images": int(counts[selected].sum()), "pool_images": int(counts[ranking.labels].sum()),
    }


@cli_main
def main(argv=None):
    parser = command_parser(__name__, "Pick the K source classes most similar to a target dataset by the features and "
                    "distance of the EMD domain similarity (the K source classes that receive most of the "
                    "target in its optimal transport, each taking at most 1/K), and "
                    "write them as a class list for python -m fgtf.convert --class_list, with a JSON "
                    "of scores and settings beside it.")
    parser.add_argument("--features", required=True,
                        help="folder of one network's features (fgtf.extract_features --out), holding "
                             "<name>_feature_<split>.npy, _label_ and _path_ files of source and target "
                             "(required)")
    parser.add_argument("--source", required=True,
                        help="feature name of the source pool (the extract_features --name; required)")
    parser.add_argument("--target", required=True, help="feature name of the target dataset (required)")
    parser.add_argument("--num_classes", type=positive_int, required=True,
                        help="source classes to select (K; required)")
    parser.add_argument("--out", required=True,
                        help="class list to write, one name per line (e.g. classes.txt); the report goes "
                             "beside it with the extension .json (required)")
    parser.add_argument("--min_images", type=positive_int, default=1,
                        help="source classes with fewer images are not selected "
                             "(default: %(default)s; domain_similarity's default is 200)")
    parser.add_argument("--split", default="train", type=split_name,
                        help="feature split to use: train or validation (val) (default: %(default)s)")
    parser.add_argument("--source_dir",
                        help="the source dataset's folder: class names as fgtf.convert reads them there "
                             "(default: each class's image folder name from <source>_path_<split>.txt)")
    parser.add_argument("--source_dataset",
                        help="registry name of the source dataset, for --source_dir in a release layout "
                             "(default: --source when the registry knows it, else synthetic: seed-style lists)")
    args = parser.parse_args(argv)
    report_path = os.path.splitext(args.out)[0] + ".json"
    if os.path.abspath(report_path) == os.path.abspath(args.out):
        raise UserError(f"--out {args.out} would be overwritten by the JSON report; name the class list *.txt")
    if os.path.isdir(args.out):
        raise UserError(f"--out {args.out} is a folder; give the class list's file name, e.g. {args.out}/classes.txt")
    try:
        report = select_source(args.features, args.source, args.target, args.num_classes,
                               min_images=args.min_images, split=args.split, source_dir=args.source_dir,
                               source_dataset=args.source_dataset)
    except UserError:
        raise
    except ValueError as error:  # scikit-learn's and POT's say what is wrong with the data
        raise UserError(str(error)) from None
    write_selection(report, args.out, report_path)
    print(format_selection(report))
    print(f"wrote {args.out} ({len(report['selected'])} classes) and {report_path}")


def write_selection(report, class_list_path, report_path):
    """The class list (one name per line, rank order) and the JSON report, each atomically."""
    from fgtf.fileio import write_json, write_text

    write_text(class_list_path, "".join(f"{entry['name']}\n" for entry in report["selected"]))
    write_json(report_path, report)


def format_selection(report, shown=10):
    lines = [f"{'rank':>4} {'class':<32} {'images':>7} {'target share':>12} {'nearest':>10}"]
    lines += [f"{e['rank']:>4} {e['name']:<32} {e['images']:>7} {e['target_share']:>12.4f} "
              f"{e['nearest_target_distance']:>10.4f}" for e in report["selected"][:shown]]
    if len(report["selected"]) > shown:
        lines.append(f"     ... {len(report['selected']) - shown} more")
    lines.append(f"EMD to {report['target']}: selected {report['subset_emd']:.4f} "
                 f"(similarity {report['subset_similarity']:.4f}, {report['subset_images']} images) vs whole pool "
                 f"{report['pool_emd']:.4f} (similarity {report['pool_similarity']:.4f}, "
                 f"{report['pool_images']} images)")
    return "\n".join(lines)


def _check_count(num_classes, eligible, min_images):
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
        raise UserError(f"the number of classes to select must be a positive integer, got {num_classes!r}")
    if num_classes > eligible:
        raise UserError(f"cannot select {num_classes} source classes: only {eligible} have at least "
                        f"min_images={min_images} images; lower --num_classes" + (" or --min_images" if min_images > 1
                                                                                  else ""))


def _source_class_names(labels, paths, source_dir, source_dataset, split):
    """(names by label, where they came from) for the labels of the source features."""
    num_classes = int(np.max(labels)) + 1
    if source_dir is not None:
        from fgtf.datasets import read_split
        from fgtf.datasets.splits import class_names_of

        known = class_names_of(read_split(source_dataset, source_dir, split, allow_outside_paths=True))  # names only
        missing = [label for label in range(num_classes) if label not in known]
        if missing:
            raise UserError(f"{source_dir} names no class for labels {missing[:5]} of the source features "
                            f"(a seed-style folder needs classes.txt, or one image folder per class)")
        return [known[label] for label in range(num_classes)], f"{source_dir} ({source_dataset})"
    if paths is None:
        raise UserError("the source features have no _path_ file to read class folders from; pass --source_dir")
    from fgtf.datasets.lists import folder_class_names

    folders = folder_class_names(paths, labels)
    if folders is None or set(folders) != set(range(num_classes)):
        raise UserError("the source images are not in one folder per class, so their folders do not name "
                        "the classes; pass --source_dir (the source dataset's folder)")
    return [folders[label] for label in range(num_classes)], "image folders"


def _dataset_of(name):
    from fgtf.datasets import list_datasets

    return name if name in list_datasets() else "folder"


if __name__ == "__main__":
    main()

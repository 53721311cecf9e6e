"""Rank backbones (or source datasets) for one target with the
transferability scores of `fgtf.transfer.transferability`, before training
any of them.

    python -m fgtf.transfer.rank --target cub_200 \\
        --features feature/inception_v3_iNat,feature/resnet_v2_50_imagenet [--metrics logme,leep,sfda]
    python -m fgtf.transfer.rank --target cub_200 --features feature/inception_v3_iNat \\
        --sources inat2017,ILSVRC2012 [--metrics otdd,emd_similarity]

Without --sources the candidates are the feature folders, each one
network's features of the target's training images (`fgtf.extract_features`;
features of different sizes are fine: every score reads one candidate at a
time); LEEP and NCE read the softmax written beside them by `--outputs
features,probabilities`, and are left out by default where a folder has
none. With --sources the candidates are source datasets, compared with the
target in the one feature folder by OTDD and the EMD similarity.

Prints a table of every metric × candidate, each score with the
candidate's rank in brackets (1 = predicted to transfer best: the highest
score, the lowest OTDD), and writes rank.csv, rank.json (scores, ranks and
every setting) and rank.png into --out (default: the first features folder).
"""
import argparse
import os

import numpy as np

from fgtf.transfer.transferability import METRICS, TransferabilityInputError
from fgtf.command_line import cli_main, command_parser, positive_float, positive_int, split_name
from fgtf.errors import UserError

# the scores of one network on the target, and those comparing a source dataset with it
TARGET_METRICS = tuple(name for name, metric in METRICS.items() if metric.inputs != "source_target")
SOURCE_METRICS = tuple(name for name, metric in METRICS.items() if metric.inputs == "source_target")


@cli_main
def main(argv=None):
    args = build_parser().parse_args(argv)
    folders = [f for f in args.features.split(",") if f]
    sources = [s for s in (args.sources or "").split(",") if s]
    if not folders:
        raise UserError("give at least one features folder")
    if sources and len(folders) != 1:
        raise UserError(f"--sources compares source datasets in one feature space: give one --features folder, "
                        f"not {len(folders)}")
    metrics = args.metrics or (SOURCE_METRICS if sources else None)
    settings = {"target": args.target, "split": args.split, "features": [os.path.abspath(f) for f in folders],
                "sources": sources or None, "min_images": args.min_images, "gamma": args.gamma,
                "max_samples": args.max_samples, "seed": args.seed}
    if sources:
        table = rank_sources(folders[0], sources, args.target, metrics, split=args.split,
                             min_images=args.min_images, gamma=args.gamma, max_samples=args.max_samples,
                             seed=args.seed)
    else:
        table = rank_backbones(folders, args.target, metrics, split=args.split)
    table["settings"] = settings
    print(format_table(table))
    out = args.out or folders[0]
    write_table(table, out)
    print(f"wrote {os.path.join(out, 'rank')}.csv/.json/.png")


def build_parser():
    p = command_parser(__name__, __doc__)
    p.add_argument("--target", required=True, help="the target dataset's name in the feature file names")
    p.add_argument("--features", required=True,
                   help="comma-separated feature folders, one per candidate network (with --sources: one folder "
                        "holding the target's and every source's features)")
    p.add_argument("--sources", help="comma-separated source datasets to rank instead of networks (OTDD, EMD)")
    p.add_argument("--metrics", type=_metric_list,
                   help=f"comma-separated scores (default: all that apply: {', '.join(TARGET_METRICS)}; with "
                        f"--sources {', '.join(SOURCE_METRICS)})")
    p.add_argument("--split", type=split_name, default="train",
                   help="feature split to score: train or validation (val accepted)")
    p.add_argument("--min_images", type=positive_int, default=200,
                   help="EMD: leave out source classes with fewer images than this")
    p.add_argument("--gamma", type=positive_float, default=0.01, help="EMD similarity = exp(-gamma * EMD)")
    p.add_argument("--max_samples", type=positive_int, default=1000,
                   help="OTDD: images of each set in the outer transport problem (drawn with --seed)")
    p.add_argument("--seed", type=int, default=0, help="OTDD: seed of that draw")
    p.add_argument("--out", help="folder for rank.{csv,json,png} (default: the first --features folder)")
    return p


def rank_backbones(folders, target, metrics=None, *, split="train"):
    """{'candidates', 'metrics', 'scores' {metric: [score per candidate]},
    'ranks', 'notes'} for the networks whose features of `target` are in
    `folders`. `metrics` None: every target metric, LEEP and NCE only where
    every folder has probabilities."""
    from fgtf.transfer.feature_store import has_probabilities, load_features, load_probabilities

    chosen = metrics or TARGET_METRICS
    wrong = [m for m in chosen if m not in TARGET_METRICS]
    if wrong:
        raise UserError(f"{', '.join(wrong)} compare a source dataset with the target: pass --sources (and one "
                        f"--features folder holding both)")
    notes = []
    reading = [m for m in chosen if METRICS[m].inputs == "probabilities"]
    lacking = [f for f in folders if not has_probabilities(f, target, split)]
    if reading and lacking:
        if metrics:
            raise UserError(f"{', '.join(reading)} read the source classifier's softmax, which {lacking[0]} does "
                            f"not hold for {target}; extract it with python -m fgtf.extract_features --outputs "
                            f"features,probabilities")
        notes.append(f"left out {', '.join(reading)}: {lacking[0]} holds no {target} probabilities (extract them "
                     f"with --outputs features,probabilities)")
        chosen, reading = [m for m in chosen if m not in reading], []
    scores = {m: [] for m in chosen}
    for folder in folders:
        features, labels, _ = load_features(folder, target, split)
        probabilities = load_probabilities(folder, target, split) if reading else None
        for metric in chosen:
            inputs = probabilities if metric in reading else features
            scores[metric].append(_score(metric, folder, inputs, labels))
    return _ranked(_candidate_names(folders), scores, notes)


def rank_sources(folder, sources, target, metrics=None, *, split="train", min_images=200, gamma=0.01,
                 max_samples=1000, seed=0):
    """As `rank_backbones`, for source datasets whose features (as the
    target's) are in `folder`, by OTDD and the EMD similarity."""
    from fgtf.transfer.feature_store import load_features

    chosen = metrics or SOURCE_METRICS
    wrong = [m for m in chosen if m not in SOURCE_METRICS]
    if wrong:
        raise UserError(f"with --sources the candidates are source datasets in one feature space, scored by "
                        f"{', '.join(SOURCE_METRICS)}; {', '.join(wrong)} score networks: leave --sources out and "
                        f"give each network's features folder")
    target_features, target_labels, _ = load_features(folder, target, split)
    options = {"otdd": {"max_samples": max_samples, "seed": seed},
               "emd_similarity": {"min_images": min_images, "gamma": gamma}}
    scores = {m: [] for m in chosen}
    for source in sources:
        source_features, source_labels, _ = load_features(folder, source, split)
        for metric in chosen:
            scores[metric].append(_score(metric, source, source_features, source_labels, target_features,
                                         target_labels, **options[metric]))
    return _ranked(list(sources), scores, [])


def format_table(table):
    """The metric × candidate table, each score with its rank in brackets."""
    names = table["candidates"]
    width = max(14, *(len(n) + 2 for n in names))
    lines = [f"{'metric':<20}" + "".join(f"{n:>{width}}" for n in names)]
    for metric in table["metrics"]:
        cells = [f"{_short(s)} ({r})" for s, r in zip(table["scores"][metric], table["ranks"][metric])]
        arrow = "" if METRICS[metric].higher_is_better else " (lower)"
        lines.append(f"{metric + arrow:<20}" + "".join(f"{c:>{width}}" for c in cells))
    settings = table.get("settings", {})
    lines.append(f"(rank 1 = predicted to transfer best; {settings.get('target')} {settings.get('split')} split)")
    lines += table["notes"]
    return "\n".join(lines)


def write_table(table, out):
    """rank.csv (one row per metric and candidate), rank.json (the table
    and its settings) and rank.png."""
    import csv
    import io

    from fgtf.fileio import write_json, write_text
    from fgtf.plots import ranking_png

    base = os.path.join(out, "rank")
    text = io.StringIO()
    rows = csv.writer(text, lineterminator="\n")
    rows.writerow(["metric", "candidate", "score", "rank", "higher_is_better"])
    for metric in table["metrics"]:
        for name, score, rank in zip(table["candidates"], table["scores"][metric], table["ranks"][metric]):
            rows.writerow([metric, name, repr(score), rank, METRICS[metric].higher_is_better])
    write_text(base + ".csv", text.getvalue())
    write_json(base + ".json", table)
    ranking_png(np.array([table["scores"][m] for m in table["metrics"]]),
                np.array([table["ranks"][m] for m in table["metrics"]]), table["metrics"], table["candidates"],
                base + ".png", title=f"Transferability to {table.get('settings', {}).get('target', 'the target')}")


def _ranked(names, scores, notes):
    ranks = {}
    for metric, values in scores.items():
        order = np.asarray(values) * (1 if METRICS[metric].higher_is_better else -1)
        ranks[metric] = (1 + np.argsort(np.argsort(-order, kind="stable"), kind="stable")).tolist()
    return {"candidates": names, "metrics": list(scores), "scores": scores, "ranks": ranks, "notes": notes,
            "higher_is_better": {m: METRICS[m].higher_is_better for m in scores}}


def _score(metric, candidate, *arrays, **options):
    try:
        return float(METRICS[metric].function(*arrays, **options))
    except TransferabilityInputError as error:
        raise UserError(f"{metric} of {candidate}: {error}") from None


def _candidate_names(folders):
    """Each folder's own name, or its path where two share a name."""
    names = [os.path.basename(os.path.normpath(f)) for f in folders]
    return [n if names.count(n) == 1 else os.path.normpath(f) for n, f in zip(names, folders)]


def _short(score):
    return f"{score:.4g}" if abs(score) < 1e4 else f"{score:.3e}"


def _metric_list(text):
    """`logme,leep` -> ('logme', 'leep') (argparse type)."""
    names = list(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    known = TARGET_METRICS + SOURCE_METRICS
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown metric {unknown[0]!r}; choose from {', '.join(known)}"
                                         if unknown else "name at least one metric")
    return tuple(names)


if __name__ == "__main__":
    main()

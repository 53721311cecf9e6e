"""The paper's transfer study on the synthetic world: which pretraining source
transfers best to each target, and does the EMD domain similarity predict it?

    python benchmarks/transfer_study.py [--seed 0] [--data_dir data] [--run_dir runs/transfer_study]
        [--pretrain_steps N] [--selection_targets birds] [--subset_classes K]

Sources, all pretrained from scratch for the same number of steps with the
recipe of `fgtf.demo` (`fgtf.study.Recipe`), each K classes of the
pool (`--subset_classes`, default 30) but the first:

  pool             the whole long-tailed source pool
  <family>         that family's K best-populated pool classes (`--class_list`)
  selected_<T>     the K pool classes `fgtf.transfer.select_source` picks for
                   target T, in the features of the pool network
  random_<n>       K pool classes drawn at random (draw n of `--random_draws`)

Why a family's K best-populated classes rather than all of its pool classes:
measured (world format 1, seed 0, 700 steps, 3,000 images each), the long
tail's thin classes make a poor source at a CPU budget: the birds' 140
classes gave a birds probe of 0.32, their 40 best-populated classes 0.69.
The paper, too, kept the well-populated classes of its sources.

For every source x target pair: linear-probe (and, without `--probe_only`,
fine-tune) top-1 on the target's validation split, the EMD similarity of
source and target computed in one fixed feature space, the pool network's
(as the paper computes every similarity with one network), and every
transferability score of `fgtf.transfer.transferability` (`study.transferability`:
the source network's features and softmax of the target's training images;
OTDD, like the EMD, in the pool network's features). Prints the table,
the Spearman correlation of similarity with each transfer accuracy over all
pairs and within each target (over its sources: the paper's use, choosing a
source for a given target), per target the matching family's source against
the others and the selected subset against the random ones, and writes
`<run_dir>/results.json` and `<run_dir>/transfer_vs_similarity.png` (the
paper's Fig. 5, one point per pair). Every run resumes, so an interrupted
study continues.

Which score predicts transfer: for each target, over its sources, the
weighted Kendall tau (scipy's `weightedtau`, hyperbolic weights on the top
ranks, as the transferability papers report it) and the Spearman rho of each
score with each top-1 (OTDD negated: a distance), each with a 95 % bootstrap
interval over the sources; and their mean over the targets. `--combine 0,1,2`
pools the results.json of those world seeds into one table (the mean over
every seed x target, the bootstrap resampling the sources of each).
"""
import argparse
import os
import random
import sys
import time
from collections import Counter

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import numpy as np  # noqa: E402

from fgtf.datasets.lists import read_seed_list  # noqa: E402
from fgtf.datasets.splits import read_name_list  # noqa: E402
from fgtf.fileio import write_json, write_text  # noqa: E402
from fgtf import study  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seed", type=int, default=0, help="world seed, and seed of every run")
    p.add_argument("--data_dir", default="data", help="where the world is (generated when missing)")
    p.add_argument("--run_dir", default=os.path.join("runs", "transfer_study"), help="where runs and results go")
    p.add_argument("--pretrain_steps", type=int, default=700, help="steps of every pretraining")
    p.add_argument("--subset_classes", type=int, default=30,
                   help="classes of each family, selected and random source")
    p.add_argument("--selection_targets",
                   help="comma-separated targets that get a selected source (default: every target whose family "
                        "is in the pool)")
    p.add_argument("--random_draws", type=int, default=2, help="random sources, each its own draw of classes")
    p.add_argument("--probe_only", action="store_true",
                   help="linear probe only, no fine-tuning (a quicker pass: about a minute less per pair)")
    p.add_argument("--combine", help="comma-separated world seeds whose finished results.json (under --run_dir) "
                                     "to pool into one table of how well each score predicts transfer")
    args = p.parse_args(argv)
    if args.combine:
        return combine([int(seed) for seed in args.combine.split(",")], args.run_dir)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    started = time.monotonic()
    from fgtf.datasets.synthetic import generate_world
    from fgtf.demo import world_folder

    recipe = study.Recipe()
    world_dir = world_folder(args.data_dir, args.seed)
    world = generate_world(world_dir, seed=args.seed, image_size=recipe.image_size)
    pool_dir = os.path.join(world_dir, world["source"]["dataset_dir"])
    targets = {t["name"]: os.path.join(world_dir, t["dataset_dir"]) for t in world["targets"]}
    family_of = {t["name"]: t["family"] for t in world["targets"]}
    run_dir = os.path.join(args.run_dir, f"seed{args.seed}")
    study.start(run_dir, world)
    features = os.path.join(run_dir, "features")
    k = args.subset_classes

    pool_run = study.pretrain_source(study.convert(pool_dir, recipe), os.path.join(run_dir, "pool"), recipe,
                              args.seed, args.pretrain_steps)
    pool_names = read_name_list(os.path.join(pool_dir, "classes.txt"))
    train_images = Counter(record.label for record in read_seed_list(pool_dir, "train"))
    sources = {"pool": None}
    in_pool = [family for family, count in world["source"]["family_classes"].items() if count]
    for family in in_pool:
        members = [i for i, name in enumerate(pool_names) if name.startswith(f"{family}.")]
        best = sorted(members, key=lambda i: (-train_images[i], i))[:k]
        sources[family] = [pool_names[i] for i in sorted(best)]
    selection_targets = (args.selection_targets.split(",") if args.selection_targets
                         else [t for t in targets if family_of[t] in in_pool])
    for target in selection_targets:
        study.domain_similarity(pool_run, pool_dir, targets[target], features, recipe, target_name=target)
        sources[f"selected_{target}"] = _selected(features, target, k, pool_dir)
    draws = random.Random(args.seed)
    for draw in range(1, args.random_draws + 1):
        sources[f"random_{draw}"] = sorted(draws.sample(pool_names, k))

    rows = []
    scratch = {name: study.from_scratch(folder, os.path.join(run_dir, "scratch", name), recipe, args.seed)
               for name, folder in targets.items()}
    for source, names in sources.items():
        if names is None:
            source_run, images = pool_run, sum(train_images.values())
        else:
            class_list = os.path.join(run_dir, "class_lists", f"{source}.txt")
            write_text(class_list, "".join(f"{n}\n" for n in names))
            shards = study.convert(pool_dir, recipe, class_list=class_list)
            source_run = study.pretrain_source(shards, os.path.join(run_dir, "sources", source), recipe, args.seed,
                                        args.pretrain_steps)
            images = sum(train_images[pool_names.index(n)] for n in names)
        for target, folder in targets.items():
            print(f"--- {source} -> {target}")
            result = study.transfer(source_run, folder, os.path.join(run_dir, "transfer", source, target), recipe,
                                    args.seed, finetune=not args.probe_only)
            result.update(study.domain_similarity(pool_run, pool_dir, folder, features, recipe, source_classes=names,
                                                  target_name=target))
            result["scores"] = study.transferability(source_run, folder, os.path.join(run_dir, "transfer", source, target),
                                                     recipe, pool_run, pool_dir, features, source_classes=names,
                                                     target_name=target)
            rows.append({"source": source, "source_classes": len(names or pool_names), "source_images": images,
                         "target": target, "family": family_of[target], "pair": f"{source}>{target}",
                         "scratch_top1": scratch[target], **result})

    summary = {"seed": args.seed, "pretrain_steps": args.pretrain_steps, "subset_classes": k,
               "recipe": recipe.as_dict(), "rows": rows,
               "spearman": {key: _spearman(rows, key) for key in ("finetune_top1", "probe_top1") if key in rows[0]},
               # the paper's use: for one target, does the similarity rank the sources as transfer does?
               "spearman_per_target": {target: {key: _spearman([r for r in rows if r["target"] == target], key)
                                                for key in ("finetune_top1", "probe_top1") if key in rows[0]}
                                       for target in targets},
               "agreement": agreement([("", rows)]),
               "wall_seconds": round(time.monotonic() - started, 1)}
    write_json(os.path.join(run_dir, "results.json"), summary)
    from fgtf.plots import transfer_vs_similarity_png

    transfer_vs_similarity_png(rows, os.path.join(run_dir, "transfer_vs_similarity.png"),
                               label="source", group="target",
                               title=f"Every source x target pair (world seed {args.seed})")
    print(format_study(summary, family_of))
    print(format_agreement(summary["agreement"], f"world seed {args.seed}"))


def combine(seeds, run_dir):
    """Pool the finished studies of `seeds` into one agreement table, written
    to `<run_dir>/agreement_seeds<...>.json`."""
    import json

    studies = []
    for seed in seeds:
        path = os.path.join(run_dir, f"seed{seed}", "results.json")
        if not os.path.isfile(path):
            raise SystemExit(f"{path} is missing: run the study with --seed {seed} first")
        with open(path, encoding="utf-8") as handle:
            studies.append((f" s{seed}", json.load(handle)["rows"]))
    pooled = agreement(studies)
    write_json(os.path.join(run_dir, f"agreement_seeds{'_'.join(map(str, seeds))}.json"),
               {"seeds": seeds, "agreement": pooled})
    print(format_agreement(pooled, "world seeds " + ", ".join(map(str, seeds)), per_target=False))


BOOTSTRAP_DRAWS = 1000


def agreement(studies, draws=BOOTSTRAP_DRAWS, seed=0):
    """How well each score ranks the sources of a target as each top-1 does,
    over `studies`, (label, rows) pairs (one per world seed):
    {top1: {score: {'per_target': {'<target><label>': {'tau', 'rho'}}, 'tau',
    'rho', 'tau_interval', 'rho_interval'}}}: per target of each study the
    weighted Kendall tau and Spearman rho over its sources, their mean over
    every study x target, and its 95 % bootstrap interval (the sources of
    each target drawn again with replacement, `draws` times)."""
    from fgtf.transfer.transferability import METRICS

    groups, names = [], []
    for label, rows in studies:
        for target in dict.fromkeys(r["target"] for r in rows):
            groups.append([r for r in rows if r["target"] == target])
            names.append(f"{target}{label}")
    truths = [k for k in ("finetune_top1", "probe_top1") if all(k in r for g in groups for r in g)]
    rng = np.random.default_rng(seed)
    resamples = [[rng.integers(0, len(g), len(g)) for g in groups] for _ in range(draws)]
    result = {}
    for truth in truths:
        result[truth] = {}
        for score, metric in METRICS.items():
            sign = 1.0 if metric.higher_is_better else -1.0
            pairs = [(sign * np.array([r["scores"][score] for r in g]), np.array([r[truth] for r in g]))
                     for g in groups]
            per_group = [_correlations(x, y) for x, y in pairs]
            drawn = np.array([np.nanmean([_correlations(x[i], y[i]) for (x, y), i in zip(pairs, draw)], axis=0)
                              for draw in resamples])
            mean = np.nanmean(per_group, axis=0)
            result[truth][score] = {
                "per_target": {n: {"tau": t, "rho": r} for n, (t, r) in zip(names, per_group)},
                "tau": float(mean[0]), "rho": float(mean[1]),
                "tau_interval": np.nanpercentile(drawn[:, 0], [2.5, 97.5]).tolist(),
                "rho_interval": np.nanpercentile(drawn[:, 1], [2.5, 97.5]).tolist()}
    return result


def _correlations(x, y):
    """(weighted Kendall tau, Spearman rho) of scores `x` against top-1s `y`;
    NaN when either is constant (a bootstrap draw of one source)."""
    from scipy.stats import spearmanr, weightedtau

    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return np.nan, np.nan
    return float(weightedtau(x, y).statistic), float(spearmanr(x, y).statistic)


def format_agreement(result, what, per_target=True):
    lines = []
    for truth, scores in result.items():
        targets = list(next(iter(scores.values()))["per_target"]) if per_target else []
        lines.append(f"How each score ranks the sources of a target as {truth} does ({what}): "
                     + ("weighted Kendall tau per target, then " if per_target else "")
                     + "the mean weighted Kendall tau and Spearman rho over every target [95 % bootstrap]")
        lines.append(f"{'score':<20}" + "".join(f"{t[:14]:>15}" for t in targets) + f"{'mean tau':>24}{'mean rho':>24}")
        for score, entry in sorted(scores.items(), key=lambda item: -item[1]["tau"]):
            lines.append(f"{score:<20}" + "".join(f"{entry['per_target'][t]['tau']:>15.3f}" for t in targets)
                         + "".join(f"{entry[k]:>9.3f} [{entry[k + '_interval'][0]:>5.2f}, "
                                   f"{entry[k + '_interval'][1]:>5.2f}]" for k in ("tau", "rho")))
    return "\n".join(lines)


def format_study(summary, family_of):
    rows = summary["rows"]
    key = "finetune_top1" if "finetune_top1" in rows[0] else "probe_top1"
    lines = [f"{'source':<20} {'classes':>7} {'images':>6} {'target':<12} {'similarity':>10} {'EMD':>8} "
             f"{'probe':>6} {'finetune':>8} {'scratch':>7}"]
    for r in rows:
        finetuned = f"{r['finetune_top1']:>8.3f}" if "finetune_top1" in r else f"{'-':>8}"
        lines.append(f"{r['source']:<20} {r['source_classes']:>7} {r['source_images']:>6} {r['target']:<12} "
                     f"{r['similarity']:>10.4f} {r['emd']:>8.3f} {r['probe_top1']:>6.3f} {finetuned} "
                     f"{r['scratch_top1']:>7.3f}")
    for measure, rho in summary["spearman"].items():
        lines.append(f"Spearman rho(similarity, {measure}) over {len(rows)} pairs: {rho:.3f}")
    for target, rhos in summary["spearman_per_target"].items():
        count = sum(r["target"] == target for r in rows)
        lines.append(f"{target}: Spearman rho over its {count} sources: "
                     + ", ".join(f"{measure} {rho:.3f}" for measure, rho in rhos.items()))
    for target, family in family_of.items():
        by_source = {r["source"]: r for r in rows if r["target"] == target}
        if family in by_source:
            others = [s for s in by_source if s in family_of.values() and s != family]
            beaten = [s for s in others if by_source[family][key] > by_source[s][key]]
            ranked = [s for s in others if by_source[family]["similarity"] > by_source[s]["similarity"]]
            lines.append(f"{target}: its family's source beats {len(beaten)}/{len(others)} other families' "
                         f"({key}), and is the more similar of {len(ranked)}/{len(others)}")
        if f"selected_{target}" in by_source:
            chosen = by_source[f"selected_{target}"]
            drawn = [r for s, r in by_source.items() if s.startswith("random_")]
            lines.append(f"{target}: selected subset {key} {chosen[key]:.3f} ({chosen['source_images']} images) vs "
                         f"random subsets " + ", ".join(f"{r[key]:.3f} ({r['source_images']} images)" for r in drawn))
    lines.append(f"wall {summary['wall_seconds']:.0f} s")
    return "\n".join(lines)


def _selected(features, target, k, pool_dir):
    from fgtf.transfer.select_source import select_source

    report = select_source(features, "source", target, k, source_dir=pool_dir, source_dataset="synthetic")
    return [entry["name"] for entry in report["selected"]]


def _spearman(rows, key):
    from scipy.stats import spearmanr

    return float(spearmanr([r["similarity"] for r in rows], [r[key] for r in rows]).statistic)


if __name__ == "__main__":
    main()

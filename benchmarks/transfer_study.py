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
fine-tune) top-1 on the target's validation split, and the EMD similarity of
source and target computed in one fixed feature space, the pool network's
(as the paper computes every similarity with one network). Prints the table,
the Spearman correlation of similarity with each transfer accuracy over all
pairs and within each target (over its sources: the paper's use, choosing a
source for a given target), per target the matching family's source against
the others and the selected subset against the random ones, and writes
`<run_dir>/results.json` and `<run_dir>/transfer_vs_similarity.png` (the
paper's Fig. 5, one point per pair). Every run resumes, so an interrupted
study continues.
"""
import argparse
import os
import random
import sys
import time
from collections import Counter

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

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
    args = p.parse_args(argv)
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

    pool_run = study.pretrain(study.convert(pool_dir, recipe), os.path.join(run_dir, "pool"), recipe,
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
            source_run = study.pretrain(shards, os.path.join(run_dir, "sources", source), recipe, args.seed,
                                        args.pretrain_steps)
            images = sum(train_images[pool_names.index(n)] for n in names)
        for target, folder in targets.items():
            print(f"--- {source} -> {target}")
            result = study.transfer(source_run, folder, os.path.join(run_dir, "transfer", source, target), recipe,
                                    args.seed, finetune=not args.probe_only)
            result.update(study.domain_similarity(pool_run, pool_dir, folder, features, recipe, source_classes=names,
                                                  target_name=target))
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
               "wall_seconds": round(time.monotonic() - started, 1)}
    write_json(os.path.join(run_dir, "results.json"), summary)
    from fgtf.plots import transfer_vs_similarity_png

    transfer_vs_similarity_png(rows, os.path.join(run_dir, "transfer_vs_similarity.png"),
                               label="source", group="target",
                               title=f"Every source x target pair (world seed {args.seed})")
    print(format_study(summary, family_of))


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

"""Does each family's recipe learn? One recipe per family, scaled down to the
synthetic world (small_cnn at 64 px instead of the paper's backbone and
images), run through `fgtf train --recipe` / `fgtf simtrans --recipe` with
the recipe's own optimiser, schedule, batch and head:

    nice -n 10 python benchmarks/recipes_world.py [--families cvpr18,sef,sam,cle,simtrans]
        [--seeds 0,1,2] [--world data/world] [--work_dir runs/recipes_world]

As the papers start from pre-trained weights (iNat2017, ImageNet), every run
starts from small_cnn pre-trained on the world's source pool
(`<work_dir>/source`: fgtf.study's pretraining, 7 epochs over the 250-class
pool, made when missing, as the world is) and trains on the world's birds
target (20 classes new to the pool, 30 training and 30 validation images
each; chance 0.050). The recipes of SEF, SAM and CLE-ViT evaluate during
training, as their papers did (600 validation images; SAM with ten views):
the table gives the last evaluation's top-1 (`eval_summary.json`) and the
best one, the number those papers report; cvpr18's runs are evaluated
once, at the end, with `fgtf evaluate`. SimTrans, a weak-shot pipeline, trains on the
noisy dataset of its benchmarks instead (`fgtf.datasets.synthetic
--label_noise 0.4 --novel_classes 5` at 64 px: 15 clean base classes, 5
novel classes whose training images are 40 % mislabelled; novel test top-1,
chance 0.200). The seed sets the new layers, the data order and
augmentation. Finished runs are reused, so an interrupted benchmark resumes.

What each family overrides, beyond `--model small_cnn --image_size 64
--num_classes 20` (the dataset name stays the recipe's: CLE's loss weights
are chosen by it):

  cvpr18    cvpr18_cub_inception_v3: both stages, 280 steps each (30 epochs of the
            target's 600 images at batch 64, as train.sh's 2810 are 30 of CUB's)
  sef       sef_cub: nothing else (50 epochs, StepLR every 20, batch 32)
  sam       sam_bilinear_cub_10: 1,000 steps with the milestones scaled alike
            (200, 400, 600, 800 for the recipe's 30,000 and 6k-24k), evaluated
            every 100 (10 evaluations, the recipe's 30 every 1,000); 10 % labels,
            60 images
  cle       cle_cub: --drop_path_rate 0 (small_cnn has no stochastic depth); 40
            epochs, batch 12, AdamW at the recipe's scaled 2.34e-5 (head x5)
  simtrans  simtrans_cub: --dataset synthetic with the dataset's novel classes,
            --model small_cnn --image_size 64; every step's epochs as the recipe's
"""
import argparse
import json
import os
import sys
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

SMALL = ["--model", "small_cnn", "--image_size", "64"]
# family -> (recipe, overrides beyond SMALL)
FAMILIES = {
    "cvpr18": ("cvpr18_cub_inception_v3", ["--num_classes", "20", "--max_number_of_steps", "280"]),
    "sef": ("sef_cub", ["--num_classes", "20"]),
    "sam": ("sam_bilinear_cub_10", ["--num_classes", "20", "--max_number_of_steps", "1000",
                                    "--milestone_steps", "200,400,600,800", "--eval_every_steps", "100"]),
    "cle": ("cle_cub", ["--num_classes", "20", "--drop_path_rate", "0"]),
    "simtrans": ("simtrans_cub", ["--dataset", "synthetic"]),
}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--families", default=",".join(FAMILIES), help="comma-separated families to run")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds")
    parser.add_argument("--world", default="data/world", help="the synthetic world (made when missing)")
    parser.add_argument("--work_dir", default="runs/recipes_world", help="run folders (finished runs reused)")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    families = args.families.split(",")
    unknown = sorted(set(families) - set(FAMILIES))
    if unknown:
        parser.error(f"unknown families {', '.join(unknown)}; choose from {', '.join(FAMILIES)}")
    started = time.time()
    source, target = prepare_world(args.world, args.work_dir)
    rows = []
    for family in families:
        family_started = time.time()
        recipe, overrides = FAMILIES[family]
        if family == "simtrans":
            scores, chance = simtrans_scores(recipe, overrides, source, args.work_dir, seeds)
        else:
            scores, chance = train_scores(recipe, overrides, source, target, args.work_dir, family, seeds)
        rows.append((family, recipe, scores, chance, time.time() - family_started))
        print(f"[{family}] {recipe}: last top-1 {_spread(scores, 0)}, best {_spread(scores, 1)} over seeds {seeds}, "
              f"chance {chance:.3f}", flush=True)
    print(f"\n{'family':<9} {'recipe':<26} {'last top-1':<15} {'best top-1':<15} {'chance':<7} minutes")
    for family, recipe, scores, chance, seconds in rows:
        print(f"{family:<9} {recipe:<26} {_spread(scores, 0):<15} {_spread(scores, 1):<15} {chance:.3f}   "
              f"{seconds / 60:.1f}")
    print(f"\n{(time.time() - started) / 60:.1f} min in all")


def _spread(scores, column):
    """'mean +- std' of one column of (last, best) pairs; '-' when the column is empty."""
    values = [pair[column] for pair in scores if pair[column] is not None]
    return f"{np.mean(values):.3f} +- {np.std(values):.3f}" if values else "-"


def prepare_world(world, work_dir):
    """(the pre-trained source run, the birds target's shards), made when missing."""
    from fgtf import study
    from fgtf.datasets.synthetic import generate_world

    generate_world(world, seed=0)
    recipe = study.Recipe()
    source = study.pretrain_source(study.convert(os.path.join(world, "source"), recipe),
                                   os.path.join(work_dir, "source"), recipe)
    return source, study.convert(os.path.join(world, "targets", "birds"), recipe)


def train_scores(recipe_name, overrides, source, target, work_dir, family, seeds):
    """(last, best) validation top-1 of the recipe's last stage per seed (best None where the recipe
    does not evaluate during training); and chance."""
    from fgtf import recipes, study, train
    from fgtf.train_eval import eval_summary

    recipe = recipes.load_recipe(recipe_name)
    scores = []
    for seed in seeds:
        run = os.path.join(work_dir, family, f"seed{seed}")
        train.main(["--recipe", recipe_name, "--dataset_dir", target, "--run_dir", run, "--checkpoint", source,
                    "--seed", str(seed), *SMALL, *overrides])
        last = os.path.join(run, recipe.stages[-1].name) if recipe.staged else run
        summary = eval_summary(last)
        scores.append((summary["last"]["top1"], summary["best"]["top1"]) if summary else
                      (study.top1(last, target), None))
    return scores, 1 / 20


def simtrans_scores(recipe_name, overrides, source, work_dir, seeds):
    """(novel-class test top-1 of the recipe's final classifier, None) per seed; and chance."""
    from fgtf.datasets.synthetic import generate
    from fgtf.simtrans.__main__ import main as simtrans

    data = os.path.join(work_dir, "simtrans_data")
    novel = generate(data, classes=20, label_noise=0.4, novel_classes=5, image_size=64)["novel_classes"]
    scores = []
    for seed in seeds:
        run = os.path.join(work_dir, "simtrans", f"seed{seed}")
        simtrans(["--recipe", recipe_name, "--dataset_dir", data, "--run_dir", run, "--checkpoint", source,
                  "--novel_classes", ",".join(map(str, novel)), "--seed", str(seed), *SMALL, *overrides])
        with open(os.path.join(run, "eval", "metrics.json"), encoding="utf-8") as handle:
            scores.append((json.load(handle)["accuracy"]["novel"], None))
        with open(os.path.join(run, "simnet", "metrics.json"), encoding="utf-8") as handle:
            last = json.load(handle)["epochs"][-1]
        print(f"[simtrans] seed {seed}: SimNet pair F1 base {last['f1_base_test']:.3f} novel "
              f"{last['f1_novel_test']:.3f} after {last['epoch']} epochs", flush=True)
    return scores, 1 / len(novel)


if __name__ == "__main__":
    main()

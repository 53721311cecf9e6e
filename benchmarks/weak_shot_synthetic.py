"""SimTrans on the synthetic default with web-like label noise: does similarity
transfer help? Plain training vs sample weighting vs weighting + graph
regularisation, and the sample weights of clean vs mislabelled images.

    python benchmarks/weak_shot_synthetic.py [--seeds 0,1,2] [--epochs 6 --graph_epochs 4]

Runs in one process, through the same steps as `python -m fgtf.simtrans`:
the dataset (20 classes, the last 5 novel, 40 % of each novel class's
training images showing another class) is generated when missing; then
`pretrain` (base classes), `simnet` and `weights` once, and for every seed
three `train` + `eval` runs that share that schedule (`--epochs` weighted-CE
epochs, then `--graph_epochs` alternating epochs with batch
`--graph_batch_size` on even ones):

  plain           no sample weights, alpha 0
  weighting       savg1 weights, then avg1 weights (the original 3a / 3b), alpha 0
  weighting+graph the same weights, alpha 0.1 on the graph epochs (mu -4, eye 1)

As in the released script, the classifier is trained on the 5 novel classes
only (initialised from the base-class backbone); the figure is its top-1
accuracy on their clean test images (mean +- std over seeds), printed with
the ratio to plain training. The seeds vary the classifier's
initialisation, order and augmentation; SimNet and the weights come from one
run (seed 0). Mislabelled images are found from `train_clean_labels.txt`.
"""
import argparse
import json
import os
import shutil
import sys
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

CONFIGS = {
    "plain": ["--weighting", "none", "--graph_weighting", "none", "--alpha", "0"],
    "weighting": ["--weighting", "savg1", "--graph_weighting", "avg1", "--alpha", "0"],
    "weighting+graph": ["--weighting", "savg1", "--graph_weighting", "avg1", "--alpha", "0.1"],
}
SHARED_STEPS = ("pretrain", "simnet", "weights")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset_dir", default="data/synthetic_noisy")
    parser.add_argument("--work_dir", default="runs/weak_shot_benchmark")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--image_size", type=int, default=64)
    parser.add_argument("--pretrain_epochs", type=int, default=15)
    parser.add_argument("--simnet_epochs", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=6, help="weighted-CE epochs of each classifier")
    parser.add_argument("--graph_epochs", type=int, default=4, help="alternating graph / CE epochs after them")
    parser.add_argument("--graph_batch_size", type=int, default=64)
    parser.add_argument("--batch_size", type=int, default=16)
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from fgtf.datasets.synthetic import generate
    from fgtf.simtrans import main as simtrans

    started = time.time()
    seeds = [int(s) for s in args.seeds.split(",")]
    generate(args.dataset_dir, classes=20, label_noise=0.4, novel_classes=5)
    shared = os.path.join(args.work_dir, "shared")
    if not os.path.isfile(os.path.join(shared, "weights", "step.json")):  # the shared steps finished
        simtrans(["pretrain", "--dataset_dir", args.dataset_dir, "--run_dir", shared, "--image_size",
                  str(args.image_size), "--epochs", str(args.pretrain_epochs)])
        simtrans(["simnet", "--run_dir", shared, "--epochs", str(args.simnet_epochs)])
        simtrans(["weights", "--run_dir", shared])
    results = {name: [] for name in CONFIGS}
    for seed in seeds:
        for name, options in CONFIGS.items():
            run = os.path.join(args.work_dir, f"{name}_seed{seed}")
            _share(shared, run)
            simtrans(["train", "--run_dir", run, "--classes", "novel", "--seed", str(seed),
                      "--epochs", str(args.epochs), "--graph_epochs", str(args.graph_epochs),
                      "--graph_batch_size", str(args.graph_batch_size), "--batch_size", str(args.batch_size),
                      *options])
            simtrans(["eval", "--run_dir", run])
            with open(os.path.join(run, "eval", "metrics.json"), encoding="utf-8") as handle:
                results[name].append(json.load(handle)["accuracy"])
    with open(os.path.join(shared, "weights", "metrics.json"), encoding="utf-8") as handle:
        weights = json.load(handle)
    _report(results, weights, seeds, time.time() - started)


def _share(shared, run):
    """A run folder for one config that reuses the shared pretrain/simnet/weights."""
    os.makedirs(run, exist_ok=True)
    shutil.copy(os.path.join(shared, "run.json"), os.path.join(run, "run.json"))
    for step in SHARED_STEPS:
        link = os.path.join(run, step)
        if not os.path.exists(link):
            os.symlink(os.path.abspath(os.path.join(shared, step)), link)


def _report(results, weights, seeds, seconds):
    print(f"\nSimTrans on the synthetic default, 40 % label noise on 5 novel classes; seeds {seeds}")
    print(f"{'config':<18}{'novel top-1 (5-way)':>22}   per seed")
    plain = np.mean([r["novel"] for r in results["plain"]])
    for name, runs in results.items():
        values = np.array([r["novel"] for r in runs])
        print(f"{name:<18}{values.mean():>14.3f} +- {values.std():.3f}   "
              + " ".join(f"{v:.3f}" for v in values))
    for name in ("weighting", "weighting+graph"):
        novel = np.mean([r["novel"] for r in results[name]])
        print(f"ratio novel accuracy {name} / plain: {novel / plain:.3f}" if plain else
              f"plain novel accuracy is 0; {name}: {novel:.3f}")
    for formula, stats in weights.items():
        print(f"mean sample weight ({formula}): clean {stats['mean_clean']:.3f} ({stats['clean']} images), "
              f"mislabelled {stats['mean_mislabelled']:.3f} ({stats['mislabelled']} images), "
              f"ratio {stats['mean_mislabelled'] / stats['mean_clean']:.3f}")
    print(f"total time {seconds / 60:.1f} min")


if __name__ == "__main__":
    main()

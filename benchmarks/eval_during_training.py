"""Evaluation during training on the synthetic default: `./train.sh` with
its defaults (`small_cnn` from scratch at 64 px, 300 steps of 32 = 16
epochs of the 600 training images, Adam 1e-3) plus `--eval_every_epochs 1`,
once per seed. Prints each run's eval_history.csv, checks that its best and
last rows are what `fgtf.evaluate` reports for `RUN/best` and `RUN`, and
prints best and last top-1 (mean +- std over the seeds, and the gap), with a
figure of the histories.

    python benchmarks/eval_during_training.py [--seeds 0,1,2] [--max_steps 300] [--work_dir runs/eval_during_training]
        [--figure docs/eval_during_training.png]

`--max_steps` is train.sh's MAX_STEPS (its default 300; 800 = 42.7 epochs
trains past the best epoch).

Finished runs are reused (a finished run evaluates nothing again).

Measured 2026-12-07 on the loaded 2-core machine, seeds 0, 1, 2 (chance
0.050), every best and last row equal to fgtf.evaluate's: 300 steps (8.3
min): best 0.217 +- 0.016, last 0.214 +- 0.021 (0.223, 0.233, 0.185: train.sh's
figure without evaluation), best - last 0.003 +- 0.005; 800 steps (29.2
min): best 0.361 +- 0.033 (epochs 38, 41, 40), last 0.337 +- 0.023, best -
last 0.024 +- 0.014 (docs/eval_during_training.png).
"""
import argparse
import contextlib
import csv
import io
import json
import os
import sys
import time

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train_sh_defaults import prepare_synthetic, run_command  # noqa: E402

CHANCE = 0.05  # 20 classes


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds of the runs (train.sh --seed)")
    parser.add_argument("--max_steps", type=int, default=300, help="train.sh's MAX_STEPS")
    parser.add_argument("--work_dir", default="runs/eval_during_training", help="data and runs go here")
    parser.add_argument("--figure", default=os.path.join(REPO, "docs", "eval_during_training.png"),
                        help="the histories' figure")
    args = parser.parse_args()
    work = os.path.abspath(args.work_dir)
    os.makedirs(work, exist_ok=True)
    environment = {**os.environ, "PYTHON": sys.executable, "PYTHONPATH": REPO, "TF_CPP_MIN_LOG_LEVEL": "3"}
    started = time.time()
    prepare_synthetic(work, environment)
    histories, best, last, best_epoch = {}, [], [], []
    for seed in (int(s) for s in args.seeds.split(",")):
        run = os.path.join(work, "runs", f"steps{args.max_steps}_seed{seed}")
        run_command([os.path.join(REPO, "train.sh"), "--seed", str(seed), "--eval_every_epochs", "1"], work,
                    {**environment, "MODEL_DIR": run, "MAX_STEPS": str(args.max_steps)})
        with open(os.path.join(run, "eval_history.csv"), encoding="utf-8", newline="") as handle:
            rows = list(csv.DictReader(handle))
        with open(os.path.join(run, "eval_summary.json"), encoding="utf-8") as handle:
            summary = json.load(handle)
        print(f"\nseed {seed}: {os.path.join(run, 'eval_history.csv')}")
        print("  step  epoch   top-1   top-5  mean/class  loss")
        for row in rows:
            print(f"  {row['step']:>4}  {float(row['epoch']):5.2f}  {float(row['top1']):.3f}   "
                  f"{float(row['top5']):.3f}  {float(row['mean_per_class_accuracy']):.3f}       "
                  f"{float(row['loss']):.3f}")
        for name, checkpoint in (("best", os.path.join(run, "best")), ("last", run)):
            reported = _evaluate(checkpoint, work)
            recorded = summary[name]
            agree = abs(reported["top1"] - recorded["top1"]) < 1e-6 and reported["step"] == recorded["step"]
            print(f"  {name}: step {recorded['step']} top-1 {recorded['top1']:.4f}; fgtf.evaluate --checkpoint "
                  f"{os.path.relpath(checkpoint, work)}: step {reported['step']} top-1 {reported['top1']:.4f} "
                  f"({'equal' if agree else 'DIFFERENT'})")
            if not agree:
                sys.exit("the recorded evaluation differs from fgtf.evaluate's")
        histories[f"seed {seed}"] = rows
        best.append(summary["best"]["top1"])
        last.append(summary["last"]["top1"])
        best_epoch.append(summary["best"]["epoch"])
        print(f"[{time.time() - started:6.0f} s]", flush=True)
    from fgtf.plots import eval_history_png

    eval_history_png(histories, args.figure, chance=CHANCE,
                     title=f"train.sh, MAX_STEPS={args.max_steps}, --eval_every_epochs 1 (20 synthetic birds)")
    best, last = np.array(best), np.array(last)
    print(f"\nvalidation top-1 over seeds {args.seeds} (chance {CHANCE:.3f}): best {best.mean():.3f} +- "
          f"{best.std():.3f} ({' '.join(f'{v:.3f}' for v in best)}; at epochs "
          f"{' '.join(f'{e:.1f}' for e in best_epoch)}), last {last.mean():.3f} +- {last.std():.3f} "
          f"({' '.join(f'{v:.3f}' for v in last)}); best - last {np.mean(best - last):.3f} +- "
          f"{np.std(best - last):.3f}; figure {args.figure}; {(time.time() - started) / 60:.1f} min")


def _evaluate(checkpoint, work):
    """What `fgtf.evaluate` reports for `checkpoint` on train.sh's dataset
    (its results kept under `work`/eval, its printed lines left out)."""
    from fgtf.evaluate import evaluate_checkpoint

    out = os.path.join(work, "eval", os.path.relpath(checkpoint, work).replace(os.sep, "_"))
    with contextlib.redirect_stdout(io.StringIO()):
        return evaluate_checkpoint(checkpoint, os.path.join(work, "data", "synthetic"), eval_dir=out)


if __name__ == "__main__":
    main()

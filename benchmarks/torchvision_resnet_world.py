"""Shown to learn: torchvision's resnet18 with SimTrans's pipeline
(`--preprocessing simtrans`) trained by `fgtf.train` on a synthetic world
target, from scratch and from a resnet18 pretrained on the world's source
pool, over several seeds; prints validation top-1 (mean +- std) against chance.

    nice -n 10 python benchmarks/torchvision_resnet_world.py [--work_dir DIR] [--seeds 0 1 2]

Everything goes through the library calls under `fgtf.train` and
`fgtf.evaluate` (`train(config)`, `evaluate_checkpoint`): the world
(`fgtf.datasets.synthetic world`, seed 0, 64 px) converted to shards, one
pretraining run on the pool, then per seed one run from scratch and one
fine-tuning run from the pool run (its classifier `fc` left out) on the
target. The pipeline at 64 px is SimTrans's scaled (train: rotation +-30
deg, random resized crop of 50-100 % to 64, flip; test: shorter side 72,
centre 64). Runs resume, so an interrupted benchmark continues where it
stopped; `--work_dir` keeps them.
"""
import argparse
import json
import os
import statistics
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work_dir", help="keep the world and the runs here (default: a temporary folder)")
    parser.add_argument("--target", default="birds", help="the world's target family")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--pretrain_steps", type=int, default=800)
    parser.add_argument("--target_steps", type=int, default=200)
    parser.add_argument("--learning_rate", type=float, default=1e-3, help="pretraining and from scratch")
    parser.add_argument("--finetune_learning_rate", type=float, default=3e-4)
    args = parser.parse_args()

    from fgtf.convert import ConvertOptions, convert
    from fgtf.datasets.synthetic import generate_world

    work = args.work_dir or tempfile.mkdtemp(prefix="fgtf_resnet_world_")
    started = time.time()
    world = os.path.join(work, "world")
    generate_world(world, seed=0, image_size=64)
    pool = convert(ConvertOptions(dataset="synthetic", num_shards=2, dataset_dir=os.path.join(world, "source"),
                                  progress=False)).output_dir
    target = convert(ConvertOptions(dataset="synthetic", num_shards=2,
                                    dataset_dir=os.path.join(world, "targets", args.target), progress=False)).output_dir
    print(f"world ready in {time.time() - started:.0f} s", flush=True)

    pretrained = os.path.join(work, "runs", "pool")
    _train(pool, pretrained, args.learning_rate, args.pretrain_steps, seed=0)
    results = {"scratch": [], "pretrained": []}
    for seed in args.seeds:
        scratch = os.path.join(work, "runs", f"scratch_{seed}")
        _train(target, scratch, args.learning_rate, args.target_steps, seed)
        results["scratch"].append(_top1(scratch, target))
        tuned = os.path.join(work, "runs", f"finetune_{seed}")
        _train(target, tuned, args.finetune_learning_rate, args.target_steps, seed,
               fine_tuning__checkpoint=pretrained, fine_tuning__checkpoint_exclude_scopes="fc")
        results["pretrained"].append(_top1(tuned, target))
        print(json.dumps({"seed": seed, **{k: v[-1] for k, v in results.items()}}), flush=True)

    with open(os.path.join(world, "targets", args.target, "classes.txt"), encoding="utf-8") as handle:
        classes = sum(1 for line in handle if line.strip())
    print(f"\nresnet18, --preprocessing simtrans, 64 px, target {args.target} ({classes} classes, chance "
          f"{1 / classes:.3f}); pool pretraining {args.pretrain_steps} steps, target runs {args.target_steps} "
          f"steps of batch 32; seeds {args.seeds}; {time.time() - started:.0f} s in all")
    for name, values in results.items():
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        print(f"{name:<11} top-1 {statistics.mean(values):.3f} +- {spread:.3f}  "
              f"({', '.join(f'{v:.3f}' for v in values)})")


def _train(shards, run_dir, learning_rate, steps, seed, **changes):
    """One fgtf.train run of resnet18 with the benchmark's settings;
    `changes`: `TrainConfig.replace`'s (where it starts from)."""
    from fgtf.training import train

    train(train_config(shards, run_dir, learning_rate, steps, seed).replace(**changes))


def train_config(shards, run_dir, learning_rate, steps, seed):
    """The benchmark's `fgtf.train_config.TrainConfig` of a run from scratch."""
    from fgtf.train_config import (DataSettings, ModelSettings, OptimizationSettings, RunSettings, ScheduleSettings,
                                   TrainConfig)

    return TrainConfig(
        data=DataSettings(dataset_dir=shards, dataset="synthetic", image_size=64, preprocessing="simtrans"),
        run=RunSettings(run_dir=run_dir, seed=seed, log_every_n_steps=50, save_interval_secs=120.0,
                        max_checkpoints_to_keep=1),
        model=ModelSettings(model="resnet18", batch_norm_decay=0.9),
        optimization=OptimizationSettings(optimizer="adam", opt_epsilon=1e-7, weight_decay=4e-5),
        schedule=ScheduleSettings(learning_rate=learning_rate, learning_rate_decay_type="fixed", batch_size=32,
                                  max_number_of_steps=steps))


def _top1(run_dir, shards):
    from fgtf import evaluate

    return evaluate.evaluate_checkpoint(run_dir, shards)["top1"]


if __name__ == "__main__":
    main()

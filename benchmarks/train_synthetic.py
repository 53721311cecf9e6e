"""Accuracy and CPU throughput of training on the synthetic default.

Trains the same randomly initialised backbone twice through `fgtf.train` /
`fgtf.evaluate` (the code train.sh and eval.sh run: `train(config)` and
`evaluate_checkpoint`, in this process), on the same converted synthetic
dataset and budget: (i) only the last layer (`--trainable_scopes Logits`),
(ii) the whole network. Prints validation top-1 of each against chance, and
the training images/s of the full run.

    python benchmarks/train_synthetic.py [--model inception_v3] [--image_size 96] [--steps 200]
"""
import argparse
import contextlib
import io
import os
import re
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="inception_v3")
    parser.add_argument("--image_size", type=int, default=96)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--learning_rate", type=float, default=0.01)
    parser.add_argument("--work_dir", help="keep data and runs here (default: a temporary folder)")
    args = parser.parse_args()
    import keras

    from fgtf.convert import ConvertOptions, convert
    from fgtf.datasets.synthetic import generate
    from fgtf.evaluate import evaluate_checkpoint
    from fgtf.training import train

    work = args.work_dir or tempfile.mkdtemp(prefix="fgtf_train_bench_")
    raw, records = os.path.join(work, "synthetic"), os.path.join(work, "synthetic", "tfrecords")
    generate(raw, seed=0)
    convert(ConvertOptions(dataset="synthetic", dataset_dir=raw, output_dir=records, num_shards=4, progress=False))
    with open(os.path.join(raw, "classes.txt")) as handle:
        classes = sum(1 for line in handle if line.strip())
    results = {}
    for name, changes in RUNS.items():
        train_dir = os.path.join(work, "runs", name.replace(" ", "_"))
        print(f"training {name} into {train_dir}", flush=True)
        log = io.StringIO()
        with contextlib.redirect_stdout(log):
            train(train_config(args, records, train_dir).replace(**changes))
            evaluation = evaluate_checkpoint(train_dir, records)
        keras.backend.clear_session()
        speeds = [float(s) for s in re.findall(r"([\d.]+) images/s", log.getvalue())][1:]  # the first window traces
        results[name] = (evaluation["top1"], sum(speeds) / max(len(speeds), 1))
    print(f"\n{args.model} at {args.image_size} px, random init, {args.steps} steps of batch {args.batch_size}, "
          f"{classes} classes (chance {1 / classes:.3f})")
    print(f"{'trained':<18} {'val top-1':>10} {'train images/s':>15}")
    for name, (top1, speed) in results.items():
        print(f"{name:<18} {top1:>10.3f} {speed:>15.1f}")


# run -> its changes to `train_config` (`TrainConfig.replace`'s)
RUNS = {"last layer only": {"fine_tuning__trainable_scopes": "Logits"}, "full network": {}}


def train_config(args, records, train_dir):
    """The `fgtf.train_config.TrainConfig` of a run from random initialisation."""
    from fgtf.train_config import (DataSettings, ModelSettings, OptimizationSettings, RunSettings, ScheduleSettings,
                                   TrainConfig)

    return TrainConfig(
        data=DataSettings(dataset_dir=records, image_size=args.image_size),
        run=RunSettings(run_dir=train_dir, log_every_n_steps=20),
        model=ModelSettings(model=args.model, batch_norm_decay=0.9),
        optimization=OptimizationSettings(optimizer="momentum"),
        schedule=ScheduleSettings(learning_rate=args.learning_rate, learning_rate_decay_factor=0.5,
                                  num_epochs_per_decay=4.0, batch_size=args.batch_size,
                                  max_number_of_steps=args.steps))


if __name__ == "__main__":
    main()

"""Accuracy and CPU throughput of training on the synthetic default.

Trains the same randomly initialised backbone twice through `fgtf.train` /
`fgtf.evaluate` (the code train.sh and eval.sh run), on the same converted
synthetic dataset and budget: (i) only the last layer (`--trainable_scopes
Logits`), (ii) the whole network. Prints validation top-1 of each against
chance, and the training images/s of the full run.

    python benchmarks/train_synthetic.py [--model inception_v3] [--image_size 96] [--steps 200]
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="inception_v3")
    parser.add_argument("--image_size", type=int, default=96)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--learning_rate", type=float, default=0.01)
    parser.add_argument("--work_dir", help="keep data and runs here (default: a temporary folder)")
    args = parser.parse_args()
    work = args.work_dir or tempfile.mkdtemp(prefix="fgtf_train_bench_")
    raw, records = os.path.join(work, "synthetic"), os.path.join(work, "synthetic", "tfrecords")
    run([sys.executable, "-m", "fgtf.datasets.synthetic", "--out", raw, "--seed", "0"])
    run([sys.executable, "-m", "fgtf.convert", "--dataset", "synthetic", "--dataset_dir", raw,
         "--output_dir", records, "--num_shards", "4"])
    with open(os.path.join(raw, "classes.txt")) as handle:
        classes = sum(1 for line in handle if line.strip())
    results = {}
    for name, extra in (("last layer only", ["--trainable_scopes", "Logits"]), ("full network", [])):
        train_dir = os.path.join(work, "runs", name.replace(" ", "_"))
        log = run([sys.executable, "-m", "fgtf.train", "--dataset_dir", records, "--train_dir", train_dir,
                   "--model_name", args.model, "--train_image_size", str(args.image_size),
                   "--batch_size", str(args.batch_size), "--max_number_of_steps", str(args.steps),
                   "--optimizer", "momentum", "--learning_rate", str(args.learning_rate),
                   "--learning_rate_decay_factor", "0.5", "--num_epochs_per_decay", "4",
                   "--batch_norm_decay", "0.9", "--log_every_n_steps", "20", *extra])
        speeds = [float(s) for s in re.findall(r"([\d.]+) images/s", log)][1:]  # the first window traces
        run([sys.executable, "-m", "fgtf.evaluate", "--checkpoint_path", train_dir, "--dataset_dir", records])
        with open(os.path.join(train_dir, "eval", "eval_results.json")) as handle:
            evaluation = json.load(handle)
        results[name] = (evaluation["top1"], sum(speeds) / max(len(speeds), 1))
    print(f"\n{args.model} at {args.image_size} px, random init, {args.steps} steps of batch {args.batch_size}, "
          f"{classes} classes (chance {1 / classes:.3f})")
    print(f"{'trained':<18} {'val top-1':>10} {'train images/s':>15}")
    for name, (top1, speed) in results.items():
        print(f"{name:<18} {top1:>10.3f} {speed:>15.1f}")


def run(command):
    print("$", " ".join(command), flush=True)
    completed = subprocess.run(command, cwd=REPO, capture_output=True, text=True,
                               env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    if completed.returncode != 0:
        sys.exit(f"failed: {' '.join(command)}\n{completed.stderr[-3000:]}")
    return completed.stdout


if __name__ == "__main__":
    main()

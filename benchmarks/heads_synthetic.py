"""SEF and SAM on the synthetic fine-grained dataset: do the heads help over
plain training of the same backbone, with all labels and with 10 % of them?

    python benchmarks/heads_synthetic.py [--seeds 0,1,2] [--steps 300] [--ratios 100,10]
        [--methods plain,sef,sam,sam_bilinear] [--model_name small_cnn --image_size 64]

Runs in one process through the real pipeline: the synthetic default
(`fgtf.datasets.synthetic.generate` with its default arguments: 20 bird
classes, 30 training and 30 validation images each, 160 px) is generated and
converted once when missing; then for every label ratio, seed and method one
`fgtf.train` run and one `fgtf.evaluate` of its last checkpoint (validation
top-1, all 600 validation images). Every run of a cell has the same backbone,
image size, optimiser, step budget and seed; only `--head` differs:

  plain         --head none (the backbone's own slim classifier)
  sef           --head sef --sef_groups 4
  sam           --head sam --sam_target cam --sam_bilinear none
  sam_bilinear  --head sam --sam_target cam --sam_bilinear single

The backbone starts from random weights (nothing may be downloaded here),
so this measures the heads as regularisers of training from scratch on a
small budget, not ImageNet fine-tuning as in the papers. The seed sets the
initialisation, the input order and augmentation, and (at 10 %) which
images of each class are kept (`--label_ratio`, chosen by the run's seed).
Finished runs are reused, so an interrupted benchmark resumes. Prints
top-1 mean +- std over seeds per method and ratio, with the difference to
plain training and the final training accuracy.

Measured 2026-11-22 with the defaults (small_cnn, 64 px, 300 steps x 16,
momentum lr 0.05, BN decay 0.9, seeds 0,1,2; ~40 min on the shared 2-core
CPU), validation top-1, chance 0.050:

  | method       | 100 % labels          | 10 % labels           |
  | plain        | 0.049 ± 0.005         | 0.046 ± 0.006         |
  | sef          | 0.052 ± 0.004 (+.003) | 0.048 ± 0.011 (+.002) |
  | sam          | 0.044 ± 0.008 (-.005) | 0.046 ± 0.005 (-.001) |
  | sam_bilinear | 0.044 ± 0.004 (-.004) | 0.044 ± 0.002 (-.002) |

Every cell is at chance: at this budget no network learns the classes
from scratch (training accuracy 0.04-0.06 with all labels; 0.40-0.52 at
10 %, i.e. memorising 60 images), so the table cannot rank the heads. A
4x longer, 96 px check (`--image_size 96 --steps 1200 --seeds 0 --ratios
100 --methods plain,sam_bilinear`) stays at chance too (0.053 and 0.042,
training accuracy 0.08). A meaningful comparison needs a pretrained
backbone or a much larger budget.
"""
import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

METHODS = {
    "plain": ["--head", "none"],
    "sef": ["--head", "sef", "--sef_groups", "4"],
    "sam": ["--head", "sam", "--sam_target", "cam", "--sam_bilinear", "none"],
    "sam_bilinear": ["--head", "sam", "--sam_target", "cam", "--sam_bilinear", "single"],
}


def main():
    parser = build_parser(__doc__, default_work_dir="runs/heads_benchmark", default_ratios="100,10",
                          default_methods=",".join(METHODS))
    args = parser.parse_args()
    run_benchmark(args, METHODS)


def build_parser(description, default_work_dir, default_ratios, default_methods):
    """The arguments every synthetic head benchmark shares."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset_dir", default="data/synthetic", help="synthetic default (made when missing)")
    parser.add_argument("--tfrecord_dir", default="data/synthetic_tfrecords")
    parser.add_argument("--work_dir", default=default_work_dir, help="run folders (finished runs are reused)")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--ratios", default=default_ratios, help="label ratios in percent")
    parser.add_argument("--methods", default=default_methods)
    parser.add_argument("--model_name", default="small_cnn", help="an fgtf model (default small_cnn, the CPU-sized one)")
    parser.add_argument("--image_size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--optimizer", default="momentum", help="fgtf.train --optimizer")
    parser.add_argument("--learning_rate", type=float, default=0.05)
    parser.add_argument("--batch_norm_decay", type=float, default=0.9)
    return parser


def run_benchmark(args, methods):
    """Train and evaluate every (ratio, seed, method) of `args`, `methods`
    name -> fgtf.train options; print the table; return {(ratio, method):
    [(validation top-1, final training accuracy) per seed]}."""
    started = time.time()
    seeds = [int(s) for s in args.seeds.split(",")]
    ratios = [float(r) for r in args.ratios.split(",")]
    names = args.methods.split(",")
    unknown = sorted(set(names) - set(methods))
    if unknown:
        sys.exit(f"unknown methods {unknown}; choose from {sorted(methods)}")
    tfrecords, num_classes = prepare_dataset(args.dataset_dir, args.tfrecord_dir)
    results = {}
    for seed in seeds:  # seed-major: an interrupted benchmark has every cell for its first seeds
        for ratio in ratios:
            for name in names:
                top1, train_accuracy = train_and_evaluate(args, tfrecords, ratio, seed, methods[name])
                results.setdefault((ratio, name), []).append((top1, train_accuracy))
                print(f"[{time.time() - started:7.0f} s] ratio {ratio:g} % seed {seed} {name}: top-1 {top1:.4f} "
                      f"(training accuracy {train_accuracy:.4f})", flush=True)
    print(format_table(results, ratios, names, seeds, args, chance=1.0 / num_classes))
    return results


def prepare_dataset(dataset_dir, tfrecord_dir):
    """Generate the synthetic default and convert it once; returns (the
    TFRecord folder, the number of classes)."""
    from fgtf.convert import convert
    from fgtf.datasets.synthetic import generate

    metadata = generate(dataset_dir)
    if not os.path.isfile(os.path.join(tfrecord_dir, "manifest.json")):
        convert("synthetic", 2, dataset_dir=dataset_dir, output_dir=tfrecord_dir, progress=False)
    return tfrecord_dir, metadata["arguments"]["classes"]


def train_and_evaluate(args, tfrecords, ratio, seed, options):
    """One `fgtf.train` run (reused when finished) and `fgtf.evaluate` of its
    last checkpoint; returns (validation top-1, training accuracy of the last
    logged third of the run, on augmented training batches)."""
    from fgtf import evaluate, train

    run_dir = os.path.join(args.work_dir, run_name(args, ratio, seed, options))
    results_path = os.path.join(run_dir, "eval", "eval_results.json")
    if not os.path.isfile(results_path):
        keras.backend.clear_session()
        ratio_args = [] if ratio >= 100 else ["--label_ratio", f"{ratio:g}"]
        train.main(["--dataset_dir", tfrecords, "--train_dir", run_dir, "--model_name", args.model_name,
                    "--train_image_size", str(args.image_size), "--batch_size", str(args.batch_size),
                    "--max_number_of_steps", str(args.steps), "--optimizer", args.optimizer,
                    "--learning_rate", str(args.learning_rate), "--batch_norm_decay", str(args.batch_norm_decay),
                    "--seed", str(seed), "--log_every_n_steps", str(max(args.steps // 3, 1)),
                    "--save_interval_secs", "1e9", *ratio_args, *options])
        keras.backend.clear_session()
        evaluate.main(["--checkpoint_path", run_dir, "--dataset_dir", tfrecords, "--batch_size", "100"])
    with open(results_path, encoding="utf-8") as handle:
        top1 = json.load(handle)["top1"]
    with open(os.path.join(run_dir, "train_done.json"), encoding="utf-8") as handle:
        return top1, json.load(handle)["metrics"]["accuracy"]


def run_name(args, ratio, seed, options):
    """Folder name that changes with everything a run depends on, so a
    changed budget never reuses an old run."""
    head = "_".join(o.lstrip("-") for o in options).replace("head_", "")
    return (f"{head}_{args.model_name}_{args.image_size}px_{args.steps}steps_bs{args.batch_size}"
            f"_{args.optimizer}{args.learning_rate:g}_bn{args.batch_norm_decay:g}_r{ratio:g}_s{seed}")


def format_table(results, ratios, names, seeds, args, chance):
    """Markdown table: validation top-1 mean +- std (population std over
    seeds), the difference of the means to `plain` when it was run, and the
    mean final training accuracy in brackets (fit vs generalisation)."""
    lines = [f"{args.model_name} from scratch, {args.image_size} px, {args.steps} steps x batch "
             f"{args.batch_size}, {args.optimizer} lr {args.learning_rate:g}, BN decay {args.batch_norm_decay:g}; "
             f"validation top-1 over seeds {','.join(map(str, seeds))} (chance {chance:.3f}), "
             "[final training accuracy]", "",
             "| method | " + " | ".join(f"{r:g} % labels" for r in ratios) + " |",
             "|---|" + "---|" * len(ratios)]
    for name in names:
        cells = []
        for ratio in ratios:
            top1, train_accuracy = np.asarray(results[(ratio, name)]).T
            cell = f"{top1.mean():.3f} ± {top1.std():.3f}"
            if name != "plain" and (ratio, "plain") in results:
                cell += f" ({top1.mean() - np.asarray(results[(ratio, 'plain')])[:, 0].mean():+.3f})"
            cells.append(f"{cell} [train {train_accuracy.mean():.2f}]")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()

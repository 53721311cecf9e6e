"""CLE fine-tuned from the world-pretrained backbone: does the
self-shuffling-and-masking contrastive module help over plain fine-tuning of
the same backbone, with all labels and with 10 % of them?

    python benchmarks/cle_synthetic.py [--checkpoint runs/demo/seed0/source]
        [--dataset_dir data/world/targets/birds] [--seeds 0,1,2] [--ratios 100,10]

The same protocol, pretrained start, schedule and defaults as
benchmarks/heads_synthetic.py (whose helpers it runs, and whose run folder
it shares, so the plain runs of one are reused by the other): only `--head`
differs between

  plain  --head none (a new slim classifier on the backbone)
  cle    --head cle (both views of every image in one pass; loss weights
         (1, 1, 1) as the original for datasets without their own, label
         smoothing 0.1 and the 0.4-margin contrastive loss)

Same optimiser and step budget for both, so a CLE step puts twice the
images through the backbone. Prints top-1 mean +- std over seeds.

MEASURED
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from heads_synthetic import build_parser, run_benchmark  # noqa: E402

METHODS = {"plain": ["--head", "none"], "cle": ["--head", "cle"]}


def main():
    parser = build_parser(__doc__, default_work_dir="runs/heads_benchmark", default_methods=",".join(METHODS))
    run_benchmark(parser.parse_args(), METHODS)


if __name__ == "__main__":
    main()

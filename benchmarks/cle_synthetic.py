"""CLE on the synthetic fine-grained dataset at 10 % labels: does the
self-shuffling-and-masking contrastive module help over plain training of
the same backbone?

    python benchmarks/cle_synthetic.py [--seeds 0,1,2] [--steps 300] [--ratios 10]

The same protocol, backbone and defaults as benchmarks/heads_synthetic.py
(whose helpers it runs: the synthetic default generated and converted once,
one `fgtf.train` run and one `fgtf.evaluate` per seed and method, finished
runs reused): only `--head` differs between

  plain  --head none (the backbone's own classifier)
  cle    --head cle (both views of every image in one pass; loss weights
         (1, 1, 1) as the original for datasets without their own, label
         smoothing 0.1 and the 0.4-margin contrastive loss)

Same optimiser and step budget for both, so a CLE step puts twice the
images through the backbone. Prints top-1 mean +- std over seeds.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from heads_synthetic import build_parser, run_benchmark  # noqa: E402

METHODS = {"plain": ["--head", "none"], "cle": ["--head", "cle"]}


def main():
    parser = build_parser(__doc__, default_work_dir="runs/cle_benchmark", default_ratios="10",
                          default_methods=",".join(METHODS))
    run_benchmark(parser.parse_args(), METHODS)


if __name__ == "__main__":
    main()

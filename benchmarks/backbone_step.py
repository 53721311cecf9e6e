"""Training-step time: fgtf's Inception-v3 vs keras.applications.InceptionV3, in one run.

Both are built with random weights, 1000 classes and a softmax top at 299x299,
compiled alike (SGD, sparse categorical cross-entropy, no XLA unless asked)
and stepped with `train_on_batch` (Keras's compiled `train_step`: forward,
backward, one optimizer update) on the same batch. After one warm-up step
each, the two are timed alternately, `--steps` steps per turn for `--rounds`
rounds, switching which goes first every round, so that load from other
processes on a shared CPU hits both alike. Prints the median seconds per step
of each and the median over rounds of the per-round ratio fgtf/keras (target:
<= 1.05; fgtf's net has the same layers, only named after the slim scopes and
with the logits as a 1x1 conv).

    python benchmarks/backbone_step.py [--batch 8] [--rounds 5] [--steps 2] [--jit_compile]
"""
import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from fgtf.models.inception_v3 import InceptionV3  # noqa: E402

SIZE = 299
CLASSES = 1000


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=8, help="images per training step")
    parser.add_argument("--rounds", type=int, default=5, help="alternating timing rounds")
    parser.add_argument("--steps", type=int, default=2, help="training steps per model per round")
    parser.add_argument("--jit_compile", action="store_true", help="compile both train steps with XLA")
    args = parser.parse_args(argv)

    rng = np.random.default_rng(0)
    images = rng.uniform(-1, 1, (args.batch, SIZE, SIZE, 3)).astype(np.float32)
    labels = rng.integers(0, CLASSES, args.batch)
    models = {"fgtf": InceptionV3(weights=None, classes=CLASSES),
              "keras": keras.applications.InceptionV3(weights=None, classes=CLASSES)}
    for model in models.values():
        model.compile(optimizer=keras.optimizers.SGD(0.01), loss="sparse_categorical_crossentropy",
                      jit_compile=args.jit_compile)
        model.train_on_batch(images, labels)  # trace and build the optimizer outside the timing

    seconds = {name: [] for name in models}
    ratios = []
    for round_index in range(args.rounds):
        order = list(models) if round_index % 2 == 0 else list(models)[::-1]
        for name in order:
            start = time.perf_counter()
            for _ in range(args.steps):
                models[name].train_on_batch(images, labels)
            seconds[name].append((time.perf_counter() - start) / args.steps)
        ratios.append(seconds["fgtf"][-1] / seconds["keras"][-1])
        print(f"round {round_index + 1}: fgtf {seconds['fgtf'][-1]:.3f} s/step, "
              f"keras {seconds['keras'][-1]:.3f} s/step, ratio {ratios[-1]:.3f}", flush=True)

    print(f"batch {args.batch} at {SIZE}x{SIZE}, {args.rounds} rounds x {args.steps} steps, "
          f"jit_compile={args.jit_compile}")
    print(f"fgtf InceptionV3:               {statistics.median(seconds['fgtf']):.3f} s/step (median)")
    print(f"keras.applications.InceptionV3: {statistics.median(seconds['keras']):.3f} s/step (median)")
    print(f"ratio fgtf/keras (median of per-round ratios): {statistics.median(ratios):.3f}")


if __name__ == "__main__":
    main()

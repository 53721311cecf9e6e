"""One training step of torchvision's ResNet-50, fgtf's Keras port against
torchvision itself, on the CPU: seconds per step of batch 8 at 224 px and
their ratio.

    nice -n 10 python benchmarks/resnet_train_step.py --torch_python /work/sidevenvs/torch/bin/python \\
        [--model resnet50] [--batch_size 8] [--steps 10] [--rounds 2]

Each side builds the network with a 1000-class classifier and takes SGD
steps (momentum 0.9, softmax cross-entropy, batch-norm in training mode) on
one random batch: fgtf as `fgtf.train` runs it (Keras `train_step`, the
model compiled without XLA, as `fgtf.train` without --jit_compile), torchvision in
a side environment with torch (`--torch_python`, never an fgtf dependency)
run as a subprocess. Each round times `--steps` steps of each side after
two warm-up steps, the sides one after the other, in wall-clock and in CPU
seconds of the side's process; the figure is each side's fastest round (the
machine's other load only slows a round down). Both compute on `--threads`
threads (default 1: on a shared machine torch's OpenMP threads wait for
each other far longer than they compute, which would measure the load, not
the frameworks); with one thread, CPU seconds hardly depend on how busy the
machine's cores are, so their ratio is the one to read on a loaded machine.
"""
import argparse
import json
import os
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WARM_UP_STEPS = 2
CLOCKS = ("wall", "cpu")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--torch_python", help="python of a side environment with torch and torchvision")
    parser.add_argument("--model", default="resnet50", choices=["resnet18", "resnet34", "resnet50", "resnet101",
                                                                 "resnet152"])
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--image_size", type=int, default=224)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="compute threads of each framework")
    parser.add_argument("--torch_side", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.torch_side:
        print(json.dumps(_torch_seconds_per_step(args)))
        return
    if not args.torch_python:
        parser.error("--torch_python is required (a python with torch and torchvision)")
    step = _fgtf_step(args)
    fgtf_times, torch_times = [], []
    for round_index in range(args.rounds):
        command = [args.torch_python, os.path.abspath(__file__), "--torch_side", "--model", args.model,
                   "--batch_size", str(args.batch_size), "--image_size", str(args.image_size),
                   "--steps", str(args.steps), "--threads", str(args.threads)]
        torch_times.append(json.loads(subprocess.run(command, capture_output=True, text=True, check=True)
                                      .stdout.strip().splitlines()[-1]))
        fgtf_times.append(_time(step, args.steps))
        print(f"round {round_index + 1}: " + ", ".join(
            f"{clock}: fgtf {fgtf_times[-1][clock]:.3f} s/step, torchvision {torch_times[-1][clock]:.3f} s/step"
            for clock in CLOCKS), flush=True)
    print(f"\n{args.model} train step, batch {args.batch_size} at {args.image_size} px, CPU, {args.threads} thread(s), "
          f"fastest of {args.rounds} rounds:")
    for clock in CLOCKS:
        fgtf_best, torch_best = min(t[clock] for t in fgtf_times), min(t[clock] for t in torch_times)
        print(f"{clock:>4}: fgtf {fgtf_best:.3f} s, torchvision {torch_best:.3f} s per step; ratio (torchvision "
              f"time / fgtf time) {torch_best / fgtf_best:.2f}")


def _fgtf_step(args):
    """A function taking one Keras training step of the fgtf network."""
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    import keras
    import numpy as np

    sys.path.insert(0, REPO)
    from fgtf.models import build_model

    model = build_model(args.model, classes=1000, classifier_activation=None,
                        input_shape=(args.image_size, args.image_size, 3))
    model.compile(keras.optimizers.SGD(0.01, momentum=0.9),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), jit_compile=False)
    rng = np.random.default_rng(0)
    images = rng.standard_normal((args.batch_size, args.image_size, args.image_size, 3)).astype(np.float32)
    labels = rng.integers(0, 1000, args.batch_size).astype(np.int32)
    return lambda: model.train_on_batch(images, labels)


def _time(step, steps):
    """Wall-clock and CPU (this process's) seconds per call of `step`, after the warm-up."""
    for _ in range(WARM_UP_STEPS):
        step()
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(steps):
        step()
    return {"wall": (time.perf_counter() - wall) / steps, "cpu": (time.process_time() - cpu) / steps}


def _torch_seconds_per_step(args):
    """(In the side environment.) Wall-clock and CPU seconds per torchvision training step."""
    import torch
    import torchvision

    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(args.threads)
    model = getattr(torchvision.models, args.model)(weights=None)
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loss = torch.nn.CrossEntropyLoss()
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(args.batch_size, 3, args.image_size, args.image_size, generator=generator)
    labels = torch.randint(0, 1000, (args.batch_size,), generator=generator)

    def step():
        optimizer.zero_grad()
        loss(model(images), labels).backward()
        optimizer.step()

    return _time(step, args.steps)


if __name__ == "__main__":
    main()

"""Training and inference throughput of fgtf's backbones, float32 vs mixed precision, in one run.

Meant for one GPU under Keras's JAX backend (it runs on any backend and on
CPU; it never imports TensorFlow itself). For each model in `--models` it
builds one copy per precision policy in `--policies` (random weights, 1000
classes, softmax top, `--image_size` square inputs), compiles each alike (SGD
with momentum 0.9, sparse categorical cross-entropy; on the JAX backend Keras
always jit-compiles the step, so XLA is on by construction) and puts one
synthetic batch on the device once. After warm-up (the first call traces and
compiles; its seconds are printed) the copies are timed alternately,
`--steps` calls per copy per round for `--rounds` rounds, rotating which goes
first: `train_on_batch` (forward, backward, one optimizer update) and then
`predict_on_batch` (forward only). Each call waits for its result, so a call's
time includes Keras's per-call dispatch. Prints images/s (median over rounds)
and, per model, the median per-round ratio of each mixed policy's throughput
to float32's.

With inception_v3 (added when missing unless `--no_pair`), the same rounds also
step `keras.applications.InceptionV3(weights=None)` under every policy, and the
script prints the median per-round train-step time ratio fgtf/keras (target:
<= 1.05).

    KERAS_BACKEND=jax python benchmarks/gpu_throughput.py \\
        [--models inception_v3,inception_v4,inception_resnet_v2,resnet_v2_50,resnet_v2_101] \\
        [--policies float32,mixed_bfloat16] [--batch 64] [--image_size 299] \\
        [--rounds 3] [--steps 10] [--no_pair] [--json results.json]

CPU smoke run: `KERAS_BACKEND=jax python benchmarks/gpu_throughput.py --models small_cnn
--batch 2 --steps 1 --rounds 1 --image_size 160 --no_pair`.
"""
import argparse
import gc
import json
import os
import platform
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from fgtf.models import build_model  # noqa: E402

DEFAULT_MODELS = "inception_v3,inception_v4,inception_resnet_v2,resnet_v2_50,resnet_v2_101"
CLASSES = 1000
PAIR_MODEL = "inception_v3"


def device_description():
    """The accelerator the backend computes on, in words (never imports TensorFlow)."""
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        device = jax.devices()[0]
        return f"jax {jax.__version__}, {device.platform}: {device.device_kind} (x{jax.device_count()})"
    if backend == "torch":
        import torch

        if torch.cuda.is_available():
            return f"torch {torch.__version__}, cuda: {torch.cuda.get_device_name(0)}"
        return f"torch {torch.__version__}, cpu"
    return f"{backend} backend, {platform.processor() or platform.machine()}"


def build(kind, name, policy, image_size, jit_compile):
    """One compiled copy of model `name` (`kind` 'fgtf' or 'keras') under `policy`."""
    keras.mixed_precision.set_global_policy(policy)
    try:
        shape = (image_size, image_size, 3)
        if kind == "keras":
            model = keras.applications.InceptionV3(weights=None, classes=CLASSES, input_shape=shape)
        else:
            model = build_model(name, weights=None, input_shape=shape, classes=CLASSES)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    # mixed_float16 gets Keras's LossScaleOptimizer from compile() by itself.
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
                  loss="sparse_categorical_crossentropy", jit_compile=jit_compile)
    return model


def timed(function, calls):
    start = time.perf_counter()
    for _ in range(calls):
        function()
    return (time.perf_counter() - start) / calls


def measure_group(variants, images, labels, rounds, steps):
    """Warm up, then time every variant alternately; returns per-round seconds per call."""
    first = {}
    for label, model in variants.items():
        train_first = timed(lambda: model.train_on_batch(images, labels), 1)
        model.train_on_batch(images, labels)
        predict_first = timed(lambda: model.predict_on_batch(images), 1)
        model.predict_on_batch(images)
        first[label] = (train_first, predict_first)
        print(f"  warm-up {label}: first train step {train_first:.1f} s, first predict {predict_first:.1f} s "
              f"(jit_compile={model.jit_compile})", flush=True)
    seconds = {label: {"train": [], "predict": []} for label in variants}
    labels_order = list(variants)
    for round_index in range(rounds):
        shift = round_index % len(labels_order)
        order = labels_order[shift:] + labels_order[:shift]
        for label in order:
            model = variants[label]
            seconds[label]["train"].append(timed(lambda: model.train_on_batch(images, labels), steps))
        for label in order:
            model = variants[label]
            seconds[label]["predict"].append(timed(lambda: model.predict_on_batch(images), steps))
        print(f"  round {round_index + 1}: " + ", ".join(
            f"{label} {seconds[label]['train'][-1] * 1e3:.1f}/{seconds[label]['predict'][-1] * 1e3:.1f} ms"
            for label in labels_order) + " (train/predict per batch)", flush=True)
    return seconds, first


def median_ratio(numerator, denominator):
    return statistics.median(a / b for a, b in zip(numerator, denominator))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=DEFAULT_MODELS, help="comma-separated fgtf model names")
    parser.add_argument("--policies", default="float32,mixed_bfloat16",
                        help="comma-separated Keras dtype policies; the first is the ratios' baseline")
    parser.add_argument("--batch", type=int, default=64, help="images per step")
    parser.add_argument("--image_size", type=int, default=299, help="square input size")
    parser.add_argument("--rounds", type=int, default=3, help="alternating timing rounds")
    parser.add_argument("--steps", type=int, default=10, help="calls per copy per round")
    parser.add_argument("--jit_compile", default="auto", choices=["auto", "true", "false"],
                        help="compile() jit_compile (the JAX backend always compiles)")
    parser.add_argument("--no_pair", action="store_true",
                        help="skip the fgtf vs keras.applications InceptionV3 comparison")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args(argv)

    models = [name for name in args.models.split(",") if name]
    policies = [policy for policy in args.policies.split(",") if policy]
    if not args.no_pair and PAIR_MODEL not in models:
        models.insert(0, PAIR_MODEL)
    jit_compile = {"auto": "auto", "true": True, "false": False}[args.jit_compile]

    print(f"backend {keras.backend.backend()} (keras {keras.__version__}); {device_description()}")
    print(f"batch {args.batch} at {args.image_size}x{args.image_size}, {CLASSES} classes; "
          f"{args.rounds} rounds x {args.steps} calls per copy; policies {', '.join(policies)}", flush=True)

    rng = np.random.default_rng(0)
    images = keras.ops.convert_to_tensor(
        rng.uniform(-1, 1, (args.batch, args.image_size, args.image_size, 3)).astype(np.float32))
    labels = keras.ops.convert_to_tensor(rng.integers(0, CLASSES, args.batch).astype(np.int32))

    rows, mixed_ratios, pair_ratios = [], [], []
    for name in models:
        print(f"{name}:", flush=True)
        variants = {}
        for policy in policies:
            variants[("fgtf", policy)] = build("fgtf", name, policy, args.image_size, jit_compile)
            if name == PAIR_MODEL and not args.no_pair:
                variants[("keras", policy)] = build("keras", name, policy, args.image_size, jit_compile)
        labelled = {f"{kind}:{policy}": model for (kind, policy), model in variants.items()}
        seconds, first = measure_group(labelled, images, labels, args.rounds, args.steps)
        for (kind, policy) in variants:
            label = f"{kind}:{policy}"
            rows.append({"model": name if kind == "fgtf" else "keras.applications.InceptionV3",
                         "policy": policy,
                         "train_images_per_s": args.batch / statistics.median(seconds[label]["train"]),
                         "predict_images_per_s": args.batch / statistics.median(seconds[label]["predict"]),
                         "first_train_step_s": first[label][0], "first_predict_s": first[label][1]})
        base = seconds[f"fgtf:{policies[0]}"]
        for policy in policies[1:]:
            other = seconds[f"fgtf:{policy}"]
            mixed_ratios.append({"model": name, "policy": policy, "baseline": policies[0],
                                 "train": median_ratio(base["train"], other["train"]),
                                 "predict": median_ratio(base["predict"], other["predict"])})
        if name == PAIR_MODEL and not args.no_pair:
            for policy in policies:
                pair_ratios.append({"policy": policy, "train_step_ratio_fgtf_over_keras": median_ratio(
                    seconds[f"fgtf:{policy}"]["train"], seconds[f"keras:{policy}"]["train"])})
        del variants, labelled
        keras.backend.clear_session()
        gc.collect()

    print()
    print(f"{'model':<32} {'policy':<16} {'train img/s':>12} {'predict img/s':>14} {'1st train s':>12}")
    for row in rows:
        print(f"{row['model']:<32} {row['policy']:<16} {row['train_images_per_s']:>12.1f} "
              f"{row['predict_images_per_s']:>14.1f} {row['first_train_step_s']:>12.1f}")
    if mixed_ratios:
        print()
        print(f"throughput ratio policy/{policies[0]} (median of per-round ratios)")
        print(f"{'model':<32} {'policy':<16} {'train':>8} {'predict':>8}")
        for ratio in mixed_ratios:
            print(f"{ratio['model']:<32} {ratio['policy']:<16} {ratio['train']:>8.2f} {ratio['predict']:>8.2f}")
    if pair_ratios:
        print()
        for ratio in pair_ratios:
            print(f"train-step time ratio fgtf/keras InceptionV3, {ratio['policy']}: "
                  f"{ratio['train_step_ratio_fgtf_over_keras']:.3f} (target <= 1.05)")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"device": device_description(), "backend": keras.backend.backend(),
                       "keras": keras.__version__, "args": vars(args), "rows": rows,
                       "mixed_ratios": mixed_ratios, "pair_ratios": pair_ratios}, handle, indent=1)


if __name__ == "__main__":
    main()

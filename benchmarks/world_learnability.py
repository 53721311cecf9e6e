"""Does the world teach a CPU-sized network? Pretraining on the source pool
against training from scratch, on every target.

Generates the transfer world (`fgtf.datasets.synthetic.generate_world`; reused
when `--world` already holds it), loads its images into memory, pretrains
the backbone on the long-tailed source pool for `--pretrain_steps` (Keras
fit, Adam, light augmentation: flips and shifts; the default is about 4
minutes on 2 CPU cores), then on
each target (one per family; butterflies are absent from the pool, fish rare)
prints the validation top-1 of

- probe: a logistic regression on the pretrained backbone's pooled features
  of the target's images (`fgtf.transfer.linear`);
- scratch: the same network trained on the target alone, from random
  weights, for `--scratch_steps` (the same number of images seen as about
  30 epochs of the target: more than pretraining's wall time allows it).

`--source_classes` pretrains on part of the pool instead: a family's
classes (`birds`), its K best-populated ones (`birds:40`) or K random pool
classes (`random:40`); `--source_images N` then keeps N of their training
images, drawn uniformly (so sources of different classes can be compared
at one image budget).

The paper's setting holds when the probe on the near target (birds) is high
(the issue asks >= 0.60), scratch is far below it (>= 0.25) and the family
absent from the pool probes clearly lower.

    .venv/bin/python benchmarks/world_learnability.py [--world data/world] [--seed 0] \\
        [--model small_cnn] [--pretrain_steps 1400] [--scratch_steps 300] \\
        [--source_classes birds:40] [--source_images 3000]
"""
import argparse
import os
import time

import numpy as np


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--world", default="data/world", help="world folder (generated when missing)")
    parser.add_argument("--seed", type=int, default=0, help="world seed")
    parser.add_argument("--image_size", type=int, default=64, help="image side of the world and the network")
    parser.add_argument("--model", default="small_cnn", help="registry backbone")
    parser.add_argument("--batch_size", type=int, default=64, help="batch size")
    parser.add_argument("--batch_norm_decay", type=float, default=0.9,
                        help="momentum of the batch-norm moving averages (as fgtf.train's flag): they must "
                             "settle within the few hundred steps of a CPU budget")
    parser.add_argument("--learning_rate", type=float, default=1e-3, help="Adam learning rate")
    parser.add_argument("--pretrain_steps", type=int, default=1400, help="training steps on the source")
    parser.add_argument("--scratch_steps", type=int, default=300,
                        help="training steps of each from-scratch run (0: no from-scratch runs)")
    parser.add_argument("--source_classes", default="all",
                        help="pool classes to pretrain on: all, a family, FAMILY:K (its K best-populated) or "
                             "random:K")
    parser.add_argument("--source_images", type=int, default=0,
                        help="keep this many of their training images, drawn uniformly (0: all)")
    parser.add_argument("--probe_C", type=float, nargs="+", default=[0.1, 1.0],
                        help="inverse L2 strengths of the linear probe (one column each)")
    parser.add_argument("--targets", nargs="+", default=None, help="targets to measure (default: all)")
    parser.add_argument("--num_workers", "--workers", type=int, default=None, help="drawing processes for the world")
    args = parser.parse_args()

    from fgtf.datasets import synthetic

    start = time.perf_counter()
    world = synthetic.generate_world(args.world, seed=args.seed, image_size=args.image_size, num_workers=args.num_workers)
    print(f"world {args.world} (seed {args.seed}): {world['source']['classes']} source classes, "
          f"{world['source']['train_images']} train images ({time.perf_counter() - start:.0f} s)", flush=True)

    import keras

    keras.utils.set_random_seed(0)
    source_dir = os.path.join(args.world, world["source"]["dataset_dir"])
    source = load_folder(source_dir)
    with open(os.path.join(source_dir, "classes.txt"), encoding="utf-8") as handle:
        names = handle.read().split()
    source["train"] = source_subset(*source["train"], names, args.source_classes, args.source_images, args.seed)
    source["val"] = source_subset(*source["val"], names, args.source_classes, 0, args.seed,
                                  classes=source["train"][2])
    num_classes = len(source["train"][2])
    source = {split: data[:2] for split, data in source.items()}
    print(f"source {args.source_classes}: {num_classes} classes, {len(source['train'][1])} train images", flush=True)
    model = classifier(args.model, args.image_size, num_classes, args.batch_norm_decay)
    seconds, epochs = fit_for(model, source["train"], args.pretrain_steps, args.batch_size, args.learning_rate)
    print(f"pretrained {args.model} on the source: {epochs:.1f} epochs in {seconds:.0f} s "
          f"({epochs * len(source['train'][1]) / seconds:.0f} images/s), source top-1 train "
          f"{top1(model, source['train']):.3f}, val {top1(model, source['val']):.3f}", flush=True)
    from fgtf.models.network import pooled_features_model

    extractor = pooled_features_model(model, args.model)

    from fgtf.transfer.linear import evaluate_probe, fit_logistic_regression

    probes = "".join(f"{f'probe C={C:g}':>13}" for C in args.probe_C)
    print(f"{'target':<12} {'in pool':>8} {'chance':>7}{probes} {'scratch':>8} {'scratch epochs':>15} {'seconds':>8}")
    for target in world["targets"]:
        if args.targets and target["name"] not in args.targets:
            continue
        data = load_folder(os.path.join(args.world, target["dataset_dir"]))
        train_features = extractor.predict(data["train"][0], batch_size=256, verbose=0)
        val_features = extractor.predict(data["val"][0], batch_size=256, verbose=0)
        probe_top1 = [evaluate_probe(fit_logistic_regression(train_features, data["train"][1], C=C, standardize=True,
                                                       max_iter=2000), val_features, data["val"][1])["accuracy"]
                      for C in args.probe_C]
        scratch_top1 = scratch_seconds = scratch_epochs = float("nan")
        if args.scratch_steps:
            scratch = classifier(args.model, args.image_size, target["classes"], args.batch_norm_decay)
            scratch_seconds, scratch_epochs = fit_for(scratch, data["train"], args.scratch_steps, args.batch_size,
                                                      args.learning_rate)
            scratch_top1 = top1(scratch, data["val"])
        in_pool = world["source"]["family_classes"][target["family"]]
        print(f"{target['name']:<12} {in_pool:>8} {1 / target['classes']:>7.3f}"
              + "".join(f"{accuracy:>13.3f}" for accuracy in probe_top1)
              + f" {scratch_top1:>8.3f} {scratch_epochs:>15.1f} {scratch_seconds:>8.0f}", flush=True)
    print(f"total {time.perf_counter() - start:.0f} s, {os.cpu_count()} CPUs")


def source_subset(images, labels, names, spec, max_images, seed, classes=None):
    """(images, labels relabelled 0..C-1, the pool labels kept) of the pool
    classes `spec` names (module docstring), or of `classes` when given;
    `max_images` > 0 keeps that many images, drawn uniformly with `seed`."""
    rng = np.random.default_rng(seed)
    if classes is None:
        families = np.array([name.split(".")[0] for name in names])
        kind, _, count = spec.partition(":")
        if kind == "all":
            classes = np.arange(len(names))
        elif kind == "random":
            classes = np.sort(rng.choice(len(names), int(count), replace=False))
        elif kind in set(families):
            members = np.flatnonzero(families == kind)
            if count:  # the K best-populated, ties by label
                members = members[np.argsort(-np.bincount(labels, minlength=len(names))[members], kind="stable")]
                members = np.sort(members[:int(count)])
            classes = members
        else:
            raise SystemExit(f"--source_classes {spec!r}: use all, a family ({', '.join(sorted(set(families)))}), "
                             f"FAMILY:K or random:K")
    keep = np.flatnonzero(np.isin(labels, classes))
    if max_images and len(keep) > max_images:
        keep = np.sort(rng.choice(keep, max_images, replace=False))
    relabel = np.full(len(names), -1)
    relabel[classes] = np.arange(len(classes))
    return images[keep], relabel[labels[keep]], classes


def load_folder(folder):
    """{'train'|'val': (images float32 (N, S, S, 3) in [-1, 1], labels (N,))} of a seed-style folder."""
    from PIL import Image

    from fgtf.datasets.registry import read_split

    splits = {}
    for split, name in (("train", "train"), ("val", "validation")):
        records = read_split("synthetic", folder, name)
        images = np.stack([np.asarray(Image.open(r.path).convert("RGB")) for r in records])
        splits[split] = (images.astype(np.float32) / 127.5 - 1.0, np.array([r.label for r in records]))
    return splits


def classifier(model_name, image_size, classes, batch_norm_decay):
    import keras

    from fgtf.models import build_model

    model = build_model(model_name, classes=classes, input_shape=(image_size, image_size, 3),
                        classifier_activation=None)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = batch_norm_decay
    return model


def fit_for(model, data, steps, batch_size, learning_rate):
    """Train `model` on `data` (images, labels) with Adam for `steps` batches;
    returns (seconds taken, epochs done)."""
    import keras
    import tensorflow as tf

    images, labels = data
    model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    dataset = (tf.data.Dataset.from_tensor_slices((images, labels)).shuffle(len(labels), seed=0)
               .batch(batch_size).map(augment, num_parallel_calls=2).repeat().prefetch(2))
    start = time.perf_counter()
    model.fit(dataset, epochs=1, steps_per_epoch=steps, verbose=0)
    return time.perf_counter() - start, steps * batch_size / len(labels)


def augment(images, labels):
    """Random left-right flips and shifts of up to 4 pixels (reflected borders)."""
    import tensorflow as tf

    images = tf.where(tf.random.uniform([tf.shape(images)[0], 1, 1, 1]) < 0.5, tf.reverse(images, [2]), images)
    size = tf.shape(images)[1]
    padded = tf.pad(images, [[0, 0], [4, 4], [4, 4], [0, 0]], mode="REFLECT")
    shift = tf.random.uniform([2], 0, 9, dtype=tf.int32)
    dy, dx = shift[0], shift[1]
    return padded[:, dy:dy + size, dx:dx + size, :], labels


def top1(model, data):
    images, labels = data
    logits = model.predict(images, batch_size=256, verbose=0)
    return float(np.mean(np.argmax(logits, axis=1) == labels))


if __name__ == "__main__":
    main()

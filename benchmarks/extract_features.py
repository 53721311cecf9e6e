"""Feature extraction throughput: fgtf's batched extraction vs one image per call
vs the model's forward pass alone, in one run.

On the same synthetic JPEGs (`fgtf.datasets.synthetic`) and the same Inception-v3
feature extractor (random init, saved as a Keras weights file and built by
`fgtf.extract_features.load_feature_extractor`, the `Mixed_7c` spatial mean):

- batched:   `fgtf.extract_features.extract_paths` (tf.data parallel decode and
             evaluation preprocessing, prefetch, one `predict_on_batch` per batch);
- per image: the original `feature_extraction.py` scheme, one image at a time
             (read, the same `preprocess_for_eval`, one model call with a batch of 1);
- bound:     `predict_on_batch` alone, same batches, on images already decoded,
             preprocessed and held in memory: no extraction can be faster.

After an untimed warm-up of each (tracing every batch shape), the three are timed
`--rounds` times in a rotating order so that load from other processes on a
shared CPU hits all alike; prints, by wall clock and by this process's CPU
time, the median images/s of each and the median over rounds of the speed
ratios within a round (target: batched >= 0.9 of the bound).

    python benchmarks/extract_features.py [--images 160] [--image_size 128] [--batch_size 32] [--rounds 5]
"""
import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

MODEL = "inception_v3"
CLASSES = 10


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=160, help="images to extract (default 160)")
    parser.add_argument("--image_size", type=int, default=128, help="network input size (default 128)")
    parser.add_argument("--batch_size", type=int, default=32, help="batch size of the batched paths (default 32)")
    parser.add_argument("--rounds", type=int, default=5, help="timing rounds (default 5)")
    parser.add_argument("--data", help="folder for the synthetic images and weights (default: a temporary one)")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as scratch:
        paths, checkpoint = _prepare(args.data or scratch, args.images, args.image_size)
        results = run(paths, checkpoint, args.image_size, args.batch_size, args.rounds)
    print(f"\n{len(paths)} images at {args.image_size} px, batch {args.batch_size}, {MODEL} random init, "
          f"median of {args.rounds} rounds:")
    for clock, (rates, ratios) in results.items():
        label = "wall clock" if clock == "wall" else "CPU time of this process (less sensitive to other load)"
        print(f"{label}:")
        print("  " + ", ".join(f"{name} {rate:.1f} images/s" for name, rate in rates.items()))
        print(f"  batched / bound = {ratios['bound']:.3f} (target >= 0.9), "
              f"batched / per image = {ratios['per image']:.2f}x")


def run(paths, checkpoint, image_size, batch_size, rounds):
    """{'wall' | 'cpu': (rates, ratios)}: for wall-clock and process CPU time,
    rates {'batched', 'per image', 'bound'} in images/s (median over rounds) and
    ratios {'bound', 'per image'}: batched's speed relative to that side, the
    median over rounds of the ratio within a round (load drifts between rounds)."""
    import tensorflow as tf

    from fgtf.extract_features import extract_paths, load_feature_extractor
    from fgtf.preprocessing import preprocess_for_eval

    extractor, _ = load_feature_extractor(checkpoint, model=MODEL, image_size=image_size)

    def per_image():
        rows = []
        for path in paths:
            image = preprocess_for_eval(tf.io.read_file(path), image_size)
            rows.append(np.asarray(extractor.predict_on_batch(image[tf.newaxis]), np.float32)[0])
        return np.stack(rows)

    images = [preprocess_for_eval(tf.io.read_file(path), image_size).numpy() for path in paths]
    preloaded = [np.stack(images[i:i + batch_size]) for i in range(0, len(images), batch_size)]

    def bound():
        return np.concatenate([np.asarray(extractor.predict_on_batch(batch), np.float32) for batch in preloaded])

    sides = {"batched": lambda: extract_paths(extractor, paths, image_size, batch_size),
             "per image": per_image, "bound": bound}
    reference = sides["bound"]()  # warm-up: traces the full and the last partial batch shape
    for name in ("batched", "per image"):
        np.testing.assert_allclose(sides[name](), reference, rtol=1e-3, atol=1e-6 * np.abs(reference).max(),
                                   err_msg=f"{name} features differ from the forward pass on the same images")
    names = list(sides)
    wall = {name: [] for name in names}
    cpu = {name: [] for name in names}
    for round_index in range(rounds):
        order = names[round_index % len(names):] + names[:round_index % len(names)]
        for name in order:
            start_wall, start_cpu = time.perf_counter(), time.process_time()
            sides[name]()
            wall[name].append(time.perf_counter() - start_wall)
            cpu[name].append(time.process_time() - start_cpu)
        print(f"round {round_index + 1}: " + ", ".join(f"{name} {len(paths) / wall[name][-1]:.1f} img/s"
                                                     for name in names), flush=True)
    return {clock: ({name: len(paths) / statistics.median(seconds[name]) for name in names},
                    {other: _median_ratio(seconds[other], seconds["batched"]) for other in ("bound", "per image")})
            for clock, seconds in (("wall", wall), ("cpu", cpu))}


def _median_ratio(other_seconds, batched_seconds):
    return statistics.median(other / batched for other, batched in zip(other_seconds, batched_seconds))


def _prepare(folder, images, image_size):
    """Synthetic JPEGs (at least `images`, first `images` returned) and a random-init
    weights file in `folder`; returns (paths, weights path)."""
    import keras

    from fgtf.datasets import read_split
    from fgtf.datasets.synthetic import generate
    from fgtf.models import build_model

    dataset = os.path.join(folder, "synthetic")
    generate(dataset, classes=CLASSES, train_per_class=-(-images // CLASSES), val_per_class=0,
             image_size=image_size, seed=0)
    paths = [record.path for record in read_split("synthetic", dataset, "train")][:images]
    checkpoint = os.path.join(folder, f"{MODEL}_random.weights.h5")
    if not os.path.exists(checkpoint):
        keras.utils.set_random_seed(0)
        partial = os.path.join(folder, f"partial_{MODEL}_random.weights.h5")
        backbone = build_model(MODEL, include_top=False, weights=None, input_shape=(image_size, image_size, 3))
        backbone.save_weights(partial)
        os.replace(partial, checkpoint)
    return paths, checkpoint


if __name__ == "__main__":
    main()

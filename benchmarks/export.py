"""File size and CPU latency of every fgtf.export format against the Keras model, in one run.

For each network (inception_v3 at 299 px with 1000 classes, small_cnn at 64 px
with 20 classes; random init saved as a `.weights.h5`, since weights' values do
not change size or speed) `fgtf.export.export` writes the five artifacts
(features and logits outputs; litert_int8 calibrated on `--calibration`
uniform random images, which decide its ranges but not its speed), and each
is reloaded with its own runtime:

- keras:       `keras.saving.load_model(model.keras)`, `predict_on_batch`;
- saved_model: `tf.saved_model.load`, the `serving_default` and `logits` signatures' shared graph (`__call__`);
- litert / litert_int8: `ai_edge_litert.interpreter.Interpreter` (input resized to the batch);
- onnx:        `onnxruntime.InferenceSession` on the CPU provider.

Every runtime gets `--threads` CPU threads. Latency is the median wall time
of one call with 1 image and with 32 images, after one untimed warm-up call,
the runtimes timed in turn within each round so that other load on a shared
CPU hits all alike. Prints a table with each figure's ratio to Keras.

    python benchmarks/export.py [--rounds 5] [--threads 2] [--models inception_v3,small_cnn]
"""
import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

NETWORKS = {"inception_v3": (299, 1000), "small_cnn": (64, 20)}  # image size, classes
FORMATS = ("keras", "saved_model", "litert", "litert_int8", "onnx")
BATCHES = (1, 32)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="inception_v3,small_cnn", help="comma-separated networks (default: both)")
    parser.add_argument("--rounds", type=int, default=5, help="timed calls per runtime and batch size (default 5)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads of every runtime (default 2)")
    parser.add_argument("--calibration", type=int, default=32, help="images calibrating litert_int8 (default 32)")
    args = parser.parse_args(argv)

    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for name in args.models.split(","):
            rows += measure(name, scratch, args.rounds, args.threads, args.calibration)
    print(f"\nCPU, {args.threads} threads, median of {args.rounds} calls after a warm-up; ratios to keras")
    print("| network | format | size MB | size ratio | 1 image ms | ratio | 32 images ms | ratio |")
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['network']} | {row['format']} | {row['size'] / 1e6:.2f} | {row['size_ratio']:.2f} | "
              f"{row[1]:.1f} | {row['ratio_1']:.2f} | {row[32]:.1f} | {row['ratio_32']:.2f} |")


def measure(name, scratch, rounds, threads, calibration):
    """Table rows (dicts) of network `name`: size and latencies of every format."""
    import keras

    from fgtf import export
    from fgtf.checkpoints import save_keras_weights
    from fgtf.models import build_model

    size, classes = NETWORKS[name]
    weights = os.path.join(scratch, f"{name}.weights.h5")
    save_keras_weights(build_model(name, classes=classes, classifier_activation=None, input_shape=(size, size, 3)),
                       weights, name, classes, False)
    keras.backend.clear_session()
    rng = np.random.default_rng(0)
    calibration_images = rng.uniform(0, 1, (calibration, size, size, 3)).astype(np.float32)
    artifacts = {}
    for format in FORMATS:
        start = time.perf_counter()
        artifacts[format] = export.export(weights, os.path.join(scratch, f"{name}_{format}"), format=format,
                                          num_classes=classes, calibration_data=calibration_images)
        print(f"{name} {format}: exported in {time.perf_counter() - start:.1f} s", flush=True)
    runners = {format: _runner(format, artifacts[format], threads) for format in FORMATS}
    images = {batch: rng.uniform(0, 1, (batch, size, size, 3)).astype(np.float32) for batch in BATCHES}
    times = {(format, batch): [] for format in FORMATS for batch in BATCHES}
    for batch in BATCHES:
        for run in runners.values():
            run(images[batch])  # warm-up: tracing, allocation
        for _ in range(rounds):
            for format, run in runners.items():
                start = time.perf_counter()
                run(images[batch])
                times[format, batch].append(1000 * (time.perf_counter() - start))
    rows = []
    for format in FORMATS:
        row = {"network": f"{name} {size} px", "format": format, "size": _size(artifacts[format])}
        for batch in BATCHES:
            row[batch] = statistics.median(times[format, batch])
        rows.append(row)
    for row in rows:
        row["size_ratio"] = row["size"] / rows[0]["size"]
        for batch in BATCHES:
            row[f"ratio_{batch}"] = row[batch] / rows[0][batch]
    return rows


def _runner(format, path, threads):
    """A function images -> outputs running the artifact at `path` with its own runtime."""
    if format == "keras":
        import keras

        model = keras.saving.load_model(path)
        return model.predict_on_batch
    if format == "saved_model":
        import tensorflow as tf

        loaded = tf.saved_model.load(path)
        return lambda images: loaded(tf.constant(images))
    if format == "onnx":
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        return lambda images: session.run(None, {name: images})
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=path, num_threads=threads)
    index = interpreter.get_input_details()[0]["index"]
    shape = [None]

    def run(images):
        if shape[0] != images.shape:
            interpreter.resize_tensor_input(index, images.shape)
            interpreter.allocate_tensors()
            shape[0] = images.shape
        interpreter.set_tensor(index, images)
        interpreter.invoke()
        return [interpreter.get_tensor(d["index"]) for d in interpreter.get_output_details()]

    return run


def _size(path):
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(os.path.getsize(os.path.join(root, f)) for root, _, files in os.walk(path) for f in files)


if __name__ == "__main__":
    main()

"""Does int8 quantisation keep a trained model's accuracy? The float and int8
LiteRT exports of a fine-tuned run, scored on its validation split.

    python benchmarks/export_int8_accuracy.py [--checkpoint runs/demo/seed0/birds/finetune_all]
        [--dataset_dir data/world/targets/birds] [--out /tmp/fgtf_int8]

Exports the run with `fgtf.export` as `litert` and as `litert_int8`
(calibrated on the dataset's training shards through fgtf's evaluation
preprocessing), runs both with the LiteRT interpreter on every validation
image (the same [0, 1] images, evaluation preprocessing), and prints each
top-1, the drop, and how often the two agree. The default is `make demo`'s
fine-tuned birds run.

Measured 2026-12-06 on the demo's birds run (world seed 0, world format 3,
600 validation images, 20 classes): float top-1 0.780 (as fgtf.evaluate),
int8 0.783, drop -0.003, top-1 agreement 97.8 %.
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", default="runs/demo/seed0/birds/finetune_all", help="a run with a classifier")
    p.add_argument("--dataset_dir", default="data/world/targets/birds",
                   help="its dataset folder (shards in it or its tfrecords/)")
    p.add_argument("--out", default="/tmp/fgtf_int8", help="where the two exports go (replaced)")
    args = p.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import shutil

    from fgtf.export import export
    from fgtf.input_pipeline import PipelineSettings, make_dataset, shard_folder
    from fgtf.runs import load_run_config

    shards = shard_folder(args.dataset_dir)
    image_size = load_run_config(args.checkpoint).image_size
    artifacts = {}
    for fmt in ("litert", "litert_int8"):
        out = os.path.join(args.out, fmt)
        shutil.rmtree(out, ignore_errors=True)
        export(args.checkpoint, out, format=fmt, outputs="logits",
               calibration_dir=shards if fmt == "litert_int8" else None)
        artifacts[fmt] = next(os.path.join(out, f) for f in os.listdir(out) if f.endswith(".tflite"))
    images, labels = [], []
    evaluation = PipelineSettings(image_size=image_size, batch_size=100, training=False)
    for batch, batch_labels in make_dataset(shards, "validation", evaluation):
        images.append((batch.numpy() + 1.0) / 2.0)  # the exports take [0, 1] images
        labels.append(batch_labels.numpy())
    images, labels = np.concatenate(images), np.concatenate(labels)
    predictions = {fmt: _predict(path, images) for fmt, path in artifacts.items()}
    top1 = {fmt: float(np.mean(p == labels)) for fmt, p in predictions.items()}
    print(f"{args.checkpoint} on {len(labels)} validation images of {shards}:")
    print(f"float top-1 {top1['litert']:.4f}, int8 top-1 {top1['litert_int8']:.4f}, "
          f"drop {top1['litert'] - top1['litert_int8']:.4f}, agreement "
          f"{np.mean(predictions['litert'] == predictions['litert_int8']):.4f}")


def _predict(path, images):
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=path)
    interpreter.allocate_tensors()
    source, result = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    predictions = []
    for image in images:  # the exports have a batch of one
        interpreter.set_tensor(source["index"], image[None].astype(np.float32))
        interpreter.invoke()
        predictions.append(int(interpreter.get_tensor(result["index"])[0].argmax()))
    return np.array(predictions)


if __name__ == "__main__":
    main()

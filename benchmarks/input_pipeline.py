"""Images/s of the training input pipeline against plain decoding.

    python benchmarks/input_pipeline.py [--records 2000] [--image_size 299]

Writes `--records` synthetic photo-like JPEGs of about `--source_size` (default
400x300, width x height) as TFRecord
shards with the converter's keys (into a temporary folder, or `--workdir`),
then times in one process, alternating, `--rounds` full passes of:
  (a) decode-only: the same shard reading, `tf.io.decode_jpeg` of the whole
      image and a resize to image_size, in an AUTOTUNE parallel map, batched;
  (b) the full training pipeline: `fgtf.input_pipeline.make_dataset(...,
      training=True, repeat=1)`: shuffling, crop sampling, crop-window decode,
      resize, flip, colour distortion, bad-record checks;
  (c) the original: TF-Slim's `inception_preprocessing.preprocess_for_train`
      as the original training ran it (whole-image decode, conversion to
      float, sampled crop sliced from the float image, resize, flip,
      `tf.image.random_brightness` / `random_saturation`, clip, scale) in the
      same reading and parallel map as (a).
It prints the best images/s and CPU time per image of each, and the ratios
b/a (target >= 1.0: decoding only the crop window pays for the augmentation)
and b/c (the speed-up over the original preprocessing).
"""
import argparse
import io
import os
import tempfile
import time

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import tensorflow as tf  # noqa: E402
from PIL import Image  # noqa: E402

from fgtf import preprocessing  # noqa: E402
from fgtf.input_pipeline import MAX_PARALLEL_SHARDS, PipelineSettings, list_shards, make_dataset  # noqa: E402
from tfrecord_tools.example import ENCODED, encode_example, parse_example  # noqa: E402
from tfrecord_tools.manifest import shard_name  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=2000, help="synthetic records (default 2000)")
    parser.add_argument("--shards", type=int, default=8, help="TFRecord shards (default 8)")
    parser.add_argument("--image_size", type=int, default=299, help="training size (default 299)")
    parser.add_argument("--batch_size", type=int, default=32, help="batch size (default 32)")
    parser.add_argument("--rounds", type=int, default=3, help="timed passes of each side (default 3)")
    parser.add_argument("--source_size", default="400x300",
                        help="JPEG size WIDTHxHEIGHT, each image within +-7%% (default 400x300)")
    parser.add_argument("--workdir", help="folder for the shards (default: a temporary folder)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as temporary:
        folder = args.workdir or temporary
        width, height = (int(v) for v in args.source_size.lower().split("x"))
        write_synthetic_shards(folder, args.records, args.shards, width, height)
        sides = {
            "a decode-only": lambda: mapped_dataset(folder, decode_only, args.image_size, args.batch_size),
            "b training pipeline": lambda: make_dataset(folder, "train", PipelineSettings(
                image_size=args.image_size, batch_size=args.batch_size, training=True, seed=0, repeat=1)),
            "c original slim": lambda: mapped_dataset(folder, slim_preprocess_for_train, args.image_size,
                                                      args.batch_size),
        }
        for build in sides.values():  # warm-up: graph tracing, file cache
            measure(build())
        best = {name: (0.0, float("inf")) for name in sides}
        for _ in range(args.rounds):
            for name, build in sides.items():
                rate, cpu_ms = measure(build())
                best[name] = (max(best[name][0], rate), min(best[name][1], cpu_ms))
    print(f"{args.records} records of ~{args.source_size} JPEG, {args.shards} shards, output "
          f"{args.image_size}x{args.image_size}, batch {args.batch_size}, {os.cpu_count()} CPUs, "
          f"best of {args.rounds}")
    for name, (rate, cpu_ms) in best.items():
        print(f"  ({name}) {rate:8.1f} images/s   {cpu_ms:6.2f} CPU ms/image")
    (rate_a, cpu_a), (rate_b, cpu_b), (rate_c, cpu_c) = best.values()
    print(f"  ratio b/a: {rate_b / rate_a:.2f} in images/s, {cpu_a / cpu_b:.2f} in images per CPU second"
          " (target >= 1.0)")
    print(f"  ratio b/c: {rate_b / rate_c:.2f} in images/s, {cpu_c / cpu_b:.2f} in images per CPU second"
          " (speed-up over the original preprocessing)")


def write_synthetic_shards(folder, records, shards, width, height):
    """`records` photo-like JPEGs (smooth colour fields with texture, sizes
    within 7 % of width x height) as `train_*-of-*.tfrecord` shards in `folder`."""
    rng = np.random.default_rng(0)
    os.makedirs(folder, exist_ok=True)
    writers = [tf.io.TFRecordWriter(os.path.join(folder, shard_name("train", i, shards))) for i in range(shards)]
    for index in range(records):
        image_height = int(rng.integers(round(height * 0.93), round(height * 1.07) + 1))
        image_width = int(rng.integers(round(width * 0.93), round(width * 1.07) + 1))
        coarse = rng.integers(0, 256, (image_height // 16 + 1, image_width // 16 + 1, 3), dtype=np.uint8)
        image = np.asarray(Image.fromarray(coarse).resize((image_width, image_height), Image.BICUBIC), np.int16)
        image = np.clip(image + rng.integers(-12, 13, image.shape), 0, 255).astype(np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="JPEG", quality=90)
        writers[index % shards].write(encode_example(buffer.getvalue(), index % 100, image_height, image_width))
    for writer in writers:
        writer.close()


def mapped_dataset(folder, preprocess, image_size, batch_size):
    """The shards read as (a) and (c) read them: a parallel interleave, then
    `preprocess(encoded, image_size)` in an AUTOTUNE parallel map, batched."""
    files = tf.data.Dataset.from_tensor_slices(list_shards(folder, "train"))
    records = files.interleave(tf.data.TFRecordDataset, cycle_length=MAX_PARALLEL_SHARDS,
                               num_parallel_calls=tf.data.AUTOTUNE, deterministic=False)
    images = records.map(lambda record: preprocess(parse_example(record)[ENCODED], image_size),
                         num_parallel_calls=tf.data.AUTOTUNE, deterministic=False)
    return images.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def decode_only(encoded, image_size):
    """The baseline: decode the whole image and resize it, nothing else."""
    return tf.image.resize(tf.io.decode_jpeg(encoded, channels=3), [image_size, image_size])


def slim_preprocess_for_train(encoded, image_size):
    """TF-Slim's preprocess_for_train(fast_mode=True) on a whole decoded image,
    with the stateful random ops the original used."""
    image = tf.image.convert_image_dtype(tf.io.decode_jpeg(encoded, channels=3), tf.float32)
    begin, size, _ = tf.image.sample_distorted_bounding_box(
        tf.shape(image), bounding_boxes=tf.constant([[[0.0, 0.0, 1.0, 1.0]]]),
        min_object_covered=preprocessing.MIN_OBJECT_COVERED, aspect_ratio_range=preprocessing.ASPECT_RATIO_RANGE,
        area_range=preprocessing.AREA_RANGE, max_attempts=preprocessing.MAX_ATTEMPTS,
        use_image_if_no_bounding_boxes=True)
    image = tf.slice(image, begin, size)
    image = tf.compat.v1.image.resize_images(image, [image_size, image_size])
    image = tf.image.random_flip_left_right(image)
    image = tf.image.random_brightness(image, preprocessing.BRIGHTNESS_MAX_DELTA)
    image = tf.image.random_saturation(image, *preprocessing.SATURATION_RANGE)
    return (tf.clip_by_value(image, 0.0, 1.0) - 0.5) * 2.0


def measure(dataset):
    """One full pass: (images per wall-clock second, CPU milliseconds of this
    process per image). The CPU figure is what a dedicated machine would see;
    the wall-clock one also counts waiting for a shared CPU."""
    wall, cpu, count = time.perf_counter(), time.process_time(), 0
    for batch in dataset:
        count += int(tf.nest.flatten(batch)[0].shape[0])
    return count / (time.perf_counter() - wall), 1000 * (time.process_time() - cpu) / count


if __name__ == "__main__":
    main()

"""Conversion throughput: the original TF1 converter's method vs fgtf.convert, in one run.

(a) original: one process; every image read, fully decoded by a TensorFlow
    session (`tf.image.decode_jpeg` behind a placeholder, as slim's
    `ImageReader.read_image_dims`) only to learn its size, then one
    tf.train.Example at a time into tf.io.TFRecordWriter, shard after shard.
(b) fgtf.convert with its defaults: worker processes (one per CPU), good JPEGs
    passed through with their size read from the header, no decode.

Both convert the same synthetic dataset (fgtf.datasets.synthetic, >= 2,000
JPEGs) in the same order from a warm page cache; the script prints images/s
of each and the ratio b/a. Memory: the peak resident size of fgtf's workers
when the same shard count holds 1/4 of the images and all of them (it stays
flat: records are streamed, never held).

    python benchmarks/convert_throughput.py [--images 2000] [--image_size 160] [--work_dir DIR]
"""
import argparse
import math
import os
import random
import resource
import shutil
import tempfile
import time

from fgtf import convert, datasets
from fgtf.datasets import synthetic
from tfrecord_tools.writer import ImageItem, write_split

CLASSES = 20
NUM_SHARDS = 10


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=2000, help="total images, train 60 %% + validation 40 %%")
    parser.add_argument("--image_size", type=int, default=160, help="side of the synthetic images in pixels")
    parser.add_argument("--work_dir", help="where the dataset and shards go (default: a temporary folder)")
    args = parser.parse_args()
    work_dir = args.work_dir or tempfile.mkdtemp(prefix="fgtf_convert_bench_")
    dataset_dir = os.path.join(work_dir, "synthetic")

    per_class = math.ceil(args.images / CLASSES)
    train_per_class = math.ceil(per_class * 0.6)
    start = time.perf_counter()
    synthetic.generate(dataset_dir, classes=CLASSES, train_per_class=train_per_class,
                       val_per_class=per_class - train_per_class, image_size=args.image_size, seed=0)
    splits = {split: datasets.read_split("synthetic", dataset_dir, split) for split in ("train", "validation")}
    random.Random(0).shuffle(splits["train"])
    total = sum(len(records) for records in splits.values())
    mean_bytes = sum(os.path.getsize(r.path) for records in splits.values() for r in records) / total
    print(f"dataset: {total} JPEGs, {args.image_size}x{args.image_size}, mean {mean_bytes / 1024:.1f} KiB "
          f"({time.perf_counter() - start:.1f} s to generate or reuse); {os.cpu_count()} CPUs")
    _warm_page_cache(splits)

    # (b) first: this process has not imported TensorFlow yet, as for a user running the CLI.
    fgtf_dir = os.path.join(work_dir, "fgtf")
    shutil.rmtree(fgtf_dir, ignore_errors=True)
    start = time.perf_counter()
    result = convert.convert(convert.ConvertOptions(dataset="synthetic", num_shards=NUM_SHARDS, dataset_dir=dataset_dir,
                                                    output_dir=fgtf_dir))
    fgtf_seconds = time.perf_counter() - start
    peak = max(summary.peak_worker_rss_mb for summary in result.summaries.values())

    quarter, whole = _worker_memory(splits["train"], dataset_dir, os.path.join(work_dir, "memory"))

    original_dir = os.path.join(work_dir, "original")
    shutil.rmtree(original_dir, ignore_errors=True)
    original_seconds = convert_like_original(splits, original_dir)

    original_rate, fgtf_rate = total / original_seconds, total / fgtf_seconds
    print(f"(a) original method (1 process, full decode): {original_rate:8.0f} images/s  "
          f"({original_seconds:.2f} s, peak RSS {_own_peak_mb():.0f} MiB with TensorFlow)")
    print(f"(b) fgtf.convert defaults ({min(os.cpu_count(), NUM_SHARDS)} workers):      {fgtf_rate:8.0f} images/s  "
          f"({fgtf_seconds:.2f} s, peak worker RSS {peak:.0f} MiB)")
    print(f"ratio b/a: {fgtf_rate / original_rate:.1f}x")
    print(f"worker peak RSS with {NUM_SHARDS} shards of {len(splits['train']) // 4} vs "
          f"{len(splits['train'])} train images: {quarter:.0f} MiB vs {whole:.0f} MiB")
    if not args.work_dir:
        shutil.rmtree(work_dir, ignore_errors=True)


def convert_like_original(splits, output_dir):
    """Write `splits` ({split: [Record]}) as the TF1 converter did; returns seconds
    (TensorFlow's import excluded)."""
    import tensorflow as tf

    os.makedirs(output_dir)
    graph = tf.Graph()
    with graph.as_default():
        jpeg_data = tf.compat.v1.placeholder(dtype=tf.string)
        decode_jpeg = tf.image.decode_jpeg(jpeg_data, channels=3)
    with tf.compat.v1.Session(graph=graph) as session:
        session.run(decode_jpeg, {jpeg_data: open(splits["train"][0].path, "rb").read()})  # warm-up
        start = time.perf_counter()
        for split, records in splits.items():
            per_shard = int(math.ceil(len(records) / NUM_SHARDS))
            for shard in range(NUM_SHARDS):
                name = os.path.join(output_dir, f"{split}_{shard:05d}-of-{NUM_SHARDS:05d}.tfrecord")
                with tf.io.TFRecordWriter(name) as writer:
                    for record in records[shard * per_shard:(shard + 1) * per_shard]:
                        image_data = tf.io.gfile.GFile(record.path, "rb").read()
                        height, width = session.run(decode_jpeg, {jpeg_data: image_data}).shape[:2]
                        writer.write(_original_example(tf, image_data, record.label, height, width))
        return time.perf_counter() - start


def _original_example(tf, image_data, label, height, width):
    # slim's dataset_utils.image_to_tfexample
    def bytes_feature(value):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))

    def int64_feature(value):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))

    return tf.train.Example(features=tf.train.Features(feature={
        "image/encoded": bytes_feature(image_data),
        "image/format": bytes_feature(b"jpg"),
        "image/class/label": int64_feature(label),
        "image/height": int64_feature(height),
        "image/width": int64_feature(width),
    })).SerializeToString()


def _worker_memory(records, dataset_dir, output_dir):
    """Peak worker RSS (MiB) writing NUM_SHARDS shards from a quarter of `records`, then all."""
    peaks = []
    for count in (len(records) // 4, len(records)):
        shutil.rmtree(output_dir, ignore_errors=True)
        items = [ImageItem(r.path, r.label, os.path.relpath(r.path, dataset_dir)) for r in records[:count]]
        peaks.append(write_split(items, output_dir, "train", NUM_SHARDS, progress=False).peak_worker_rss_mb)
    return peaks


def _warm_page_cache(splits):
    for records in splits.values():
        for record in records:
            with open(record.path, "rb") as handle:
                handle.read()


def _own_peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


if __name__ == "__main__":
    main()

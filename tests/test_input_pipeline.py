"""fgtf.input_pipeline: TFRecord shards (both converters) and TFDS to batches."""
import io
import json
import math
import os
import time

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import tensorflow as tf  # noqa: E402

from fgtf.datasets.lists import Record  # noqa: E402
from fgtf.datasets.splits import label_ratio_subset  # noqa: E402
from fgtf.input_pipeline import PipelineSettings, ReadSettings, count_records, list_shards, make_dataset  # noqa: E402
from fgtf.errors import UserError  # noqa: E402
from tfrecord_tools.example import encode_example  # noqa: E402

SIZE = 24


def jpeg_of_label(label, height=40, width=52):
    """A JPEG whose flat grey level encodes `label` (readable after preprocessing)."""
    buffer = io.BytesIO()
    Image.fromarray(np.full((height, width, 3), 20 * label, np.uint8)).save(buffer, format="JPEG")
    return buffer.getvalue()


def original_converter_example(jpeg, label, height, width):
    """A record as the original TF1 converter wrote it: exactly its five keys."""
    def feature(value):
        if isinstance(value, bytes):
            return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))
        return tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))

    keys = {"image/encoded": jpeg, "image/format": b"jpg", "image/class/label": label,
            "image/height": height, "image/width": width}
    return tf.train.Example(features=tf.train.Features(
        feature={key: feature(value) for key, value in keys.items()})).SerializeToString()


def write_shards(folder, split, labels_per_shard, original=False):
    """Write one shard per list of labels; returns the shard paths."""
    os.makedirs(folder, exist_ok=True)
    paths, index = [], 0
    for shard, labels in enumerate(labels_per_shard):
        path = os.path.join(folder, f"{split}_{shard:05d}-of-{len(labels_per_shard):05d}.tfrecord")
        with tf.io.TFRecordWriter(path) as writer:
            for label in labels:
                jpeg = jpeg_of_label(label)
                if original:
                    writer.write(original_converter_example(jpeg, label, 40, 52))
                else:
                    writer.write(encode_example(jpeg, label, 40, 52, filename=f"c{label}/{index:04d}.jpg",
                                                class_text=f"class {label}"))
                index += 1
        paths.append(path)
    return paths


def labels_from_images(images):
    """Invert jpeg_of_label: the grey level of the evaluation crop."""
    grey = (np.asarray(images)[:, SIZE // 2, SIZE // 2, 0] + 1) / 2 * 255
    return np.round(grey / 20).astype(int)


def collect(dataset):
    images, labels = zip(*[(x.numpy(), y.numpy()) for x, y in dataset])
    return np.concatenate(images), np.concatenate(labels)


@pytest.fixture
def shards(tmp_path):
    folder = str(tmp_path / "records")
    write_shards(folder, "validation", [[0, 1, 2, 3], [4, 5, 6], [7, 8, 9, 10, 11]])
    write_shards(folder, "train", [[0, 1, 2, 3, 0, 1], [2, 3, 0, 1, 2, 3], [4, 4, 5, 5, 6, 6],
                                   [7, 7, 8, 8, 9, 9]])
    return folder


def test_evaluation_batches_in_record_order(shards):
    dataset = make_dataset(shards, "validation", PipelineSettings(image_size=SIZE, batch_size=5, training=False))
    batches = [(x.numpy(), y.numpy()) for x, y in dataset]
    assert [x.shape for x, _ in batches] == [(5, SIZE, SIZE, 3)] * 2 + [(2, SIZE, SIZE, 3)]
    images, labels = np.concatenate([x for x, _ in batches]), np.concatenate([y for _, y in batches])
    assert images.dtype == np.float32 and labels.dtype == np.int32
    assert images.min() >= -1.0 and images.max() <= 1.0
    np.testing.assert_array_equal(labels, np.arange(12))
    np.testing.assert_array_equal(labels_from_images(images), labels)


def test_glob_source_and_listing(shards):
    files = list_shards(shards, "train")
    assert [os.path.basename(f) for f in files] == [f"train_{i:05d}-of-00004.tfrecord" for i in range(4)]
    dataset = make_dataset(os.path.join(shards, "validation_00001-*"), "validation",
                           PipelineSettings(image_size=SIZE, batch_size=8, training=False))
    np.testing.assert_array_equal(collect(dataset)[1], [4, 5, 6])


def test_training_is_random_and_reproducible_with_seed(shards):
    def first_batches(seed):
        dataset = make_dataset(shards, "train", PipelineSettings(image_size=SIZE, batch_size=5, training=True,
                                                                 seed=seed), ReadSettings(deterministic=True))
        return [(x.numpy(), y.numpy()) for x, y in dataset.take(6)]

    run_a, run_b, other = first_batches(3), first_batches(3), first_batches(4)
    for (xa, ya), (xb, yb) in zip(run_a, run_b):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    assert any(not np.array_equal(xa, xo) for (xa, _), (xo, _) in zip(run_a, other))
    labels = np.concatenate([y for _, y in run_a])
    # 30 labels drawn over 5 passes of 24 records: shuffled, full batches only, repeating.
    assert all(x.shape == (5, SIZE, SIZE, 3) for x, _ in run_a)
    assert not np.array_equal(labels[:24], np.sort(labels[:24]))
    assert sorted(labels[:24]) == sorted([0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9])


def test_training_epochs_with_repeat(shards):
    dataset = make_dataset(shards, "train", PipelineSettings(image_size=SIZE, batch_size=4, training=True, seed=0,
                                                             repeat=2))
    assert sum(1 for _ in dataset) == 2 * 24 // 4


def test_resumed_stream_continues_the_uninterrupted_one_across_passes(shards):
    def stream(start_step=0):
        pipeline = PipelineSettings(image_size=SIZE, batch_size=5, training=True, seed=5, start_step=start_step)
        dataset = make_dataset(shards, "train", pipeline, ReadSettings(deterministic=True))
        return [(x.numpy(), y.numpy()) for x, y in dataset.take(12 - start_step)]

    whole = stream()   # 60 records: two and a half passes of 24
    tf.random.set_seed(0)   # a global seed (as fgtf.train sets) changes nothing
    try:
        for (xa, ya), (xb, yb) in zip(whole, stream(), strict=True):
            np.testing.assert_array_equal(ya, yb)
            np.testing.assert_array_equal(xa, xb)
    finally:
        tf.random.set_seed(None)
    for start_step in (1, 4, 5, 9):   # in pass 0, at 20 of 24, on the boundary at 24 (+1), in pass 1
        for (xa, ya), (xb, yb) in zip(whole[start_step:], stream(start_step=start_step), strict=True):
            np.testing.assert_array_equal(ya, yb)
            np.testing.assert_array_equal(xa, xb)


def test_resuming_late_in_a_long_run_does_not_read_the_passes_before(shards):
    # 10**8 records consumed, 4 million passes: skipped by arithmetic, not by reading
    started = time.monotonic()
    dataset = make_dataset(shards, "train", PipelineSettings(image_size=SIZE, batch_size=5, training=True, seed=5,
                                                             start_step=2 * 10**7), ReadSettings(deterministic=True))
    images, labels = next(iter(dataset))
    assert images.shape == (5, SIZE, SIZE, 3) and set(labels.numpy()) <= set(range(10))
    assert time.monotonic() - started < 60


def test_training_on_no_records_is_a_clear_error(tmp_path):
    write_shards(str(tmp_path), "train", [[]])
    with pytest.raises(UserError, match="holds no train records"):
        make_dataset(str(tmp_path), "train", PipelineSettings(image_size=SIZE, batch_size=2, training=True))


def test_cached_evaluation_repeats_in_order(shards):
    dataset = make_dataset(shards, "validation", PipelineSettings(image_size=SIZE, batch_size=5, training=False,
                                                                  repeat=2), ReadSettings(cache=True))
    np.testing.assert_array_equal(collect(dataset)[1], list(range(12)) * 2)


def test_input_context_gives_disjoint_shards(shards):
    seen = []
    for pipeline in range(2):
        context = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=pipeline,
                                             num_replicas_in_sync=2)
        dataset = make_dataset(shards, "validation", PipelineSettings(image_size=SIZE, batch_size=8, training=False),
                               input_context=context)
        batch_sizes = [len(y) for _, y in dataset]
        assert max(batch_sizes) <= 4  # per-replica batch of the global 8
        seen.append(set(collect(dataset)[1]))
    assert not seen[0] & seen[1]
    assert seen[0] | seen[1] == set(range(12))
    assert seen[0] == {0, 1, 2, 3, 7, 8, 9, 10, 11}  # shards 0 and 2


def test_too_few_shards_for_pipelines(shards):
    context = tf.distribute.InputContext(num_input_pipelines=4, input_pipeline_id=0)
    with pytest.raises(Exception, match="3 shard.*4 input pipelines"):
        make_dataset(shards, "validation", PipelineSettings(image_size=SIZE, batch_size=8, training=False),
                     input_context=context)


def test_original_converter_shards_without_optional_keys(tmp_path):
    folder = str(tmp_path / "tf1")
    write_shards(folder, "train", [[3, 1], [2]], original=True)
    images, labels = collect(make_dataset(folder, "train",
                                          PipelineSettings(image_size=SIZE, batch_size=4, training=False)))
    np.testing.assert_array_equal(labels, [3, 1, 2])
    np.testing.assert_array_equal(labels_from_images(images), labels)
    train = make_dataset(folder, "train", PipelineSettings(image_size=SIZE, batch_size=2, training=True, seed=0,
                                                           label_ratio=50))
    assert next(iter(train))[0].shape == (2, SIZE, SIZE, 3)


def corrupt_image_shard(folder):
    """validation_00001 holds labels 4, <not an image>, 6."""
    path = os.path.join(folder, "validation_00001-of-00003.tfrecord")
    with tf.io.TFRecordWriter(path) as writer:
        writer.write(encode_example(jpeg_of_label(4), 4, 40, 52))
        writer.write(encode_example(b"\xff\xd8 not a jpeg", 5, 40, 52))
        writer.write(encode_example(jpeg_of_label(6), 6, 40, 52))
    return path


def test_undecodable_image_names_the_shard(shards):
    corrupt_image_shard(shards)
    dataset = make_dataset(shards, "validation", PipelineSettings(image_size=SIZE, batch_size=4, training=False))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"record 1 of shard \S*validation_00001-of-00003"):
        collect(dataset)


def test_skip_bad_records_skips_and_logs(shards, capfd):
    corrupt_image_shard(shards)
    dataset = make_dataset(shards, "validation", PipelineSettings(image_size=SIZE, batch_size=4, training=False),
                           ReadSettings(skip_bad_records=True))
    np.testing.assert_array_equal(collect(dataset)[1], [0, 1, 2, 3, 4, 6, 7, 8, 9, 10, 11])
    log = capfd.readouterr().err
    assert f"skipped bad record 1 (record 1 of shard {shards}/validation_00001-of-00003.tfrecord)" in log
    train = make_dataset(shards, "validation", PipelineSettings(image_size=SIZE, batch_size=11, training=True, seed=0),
                         ReadSettings(skip_bad_records=True))
    assert 5 not in next(iter(train))[1].numpy()


def test_truncated_shard(shards):
    path = os.path.join(shards, "validation_00002-of-00003.tfrecord")
    data = open(path, "rb").read()
    with open(path, "wb") as handle:
        handle.write(data[:len(data) * 2 // 3])  # records 0..2 of 5 survive whole
    dataset = make_dataset(shards, "validation", PipelineSettings(image_size=SIZE, batch_size=4, training=False))
    with pytest.raises(tf.errors.InvalidArgumentError, match="validation_00002-of-00003.tfrecord and after"):
        collect(dataset)
    skipping = make_dataset(shards, "validation", PipelineSettings(image_size=SIZE, batch_size=4, training=False),
                            ReadSettings(skip_bad_records=True))
    labels = collect(skipping)[1]
    assert list(labels[:7]) == list(range(7)) and set(labels[7:]) < {7, 8, 9, 10, 11}


def test_count_records_from_manifest_or_by_reading(shards):
    assert count_records(shards, "validation") == 12
    assert count_records(shards, "train") == 24
    name = "validation_00000-of-00003.tfrecord"
    manifest = {"manifest_version": 1, "splits": {"validation": {"num_shards": 3, "shards": {
        name: {"index": 0, "records": 1000, "bytes": os.path.getsize(os.path.join(shards, name)),
               "sha256": "0" * 64, "labels": {"0": 1000}}}}}}
    with open(os.path.join(shards, "manifest.json"), "w") as handle:
        json.dump(manifest, handle)
    assert count_records(shards, "validation") == 1000 + 3 + 5  # the manifest's count is used
    manifest["splits"]["validation"]["shards"][name]["bytes"] += 1  # stale entry: read instead
    with open(os.path.join(shards, "manifest.json"), "w") as handle:
        json.dump(manifest, handle)
    assert count_records(shards, "validation") == 12


def test_label_ratio_keeps_the_converters_subset(shards):
    dataset = make_dataset(shards, "train", PipelineSettings(image_size=SIZE, batch_size=1, training=True, seed=5,
                                                             repeat=1, label_ratio=50))
    images, labels = collect(dataset)
    # train holds 0..3 three times each and 4..9 twice each: ceil(n/2) per class.
    counts = np.bincount(labels, minlength=10)
    np.testing.assert_array_equal(counts, [math.ceil(n / 2) for n in [3, 3, 3, 3, 2, 2, 2, 2, 2, 2]])
    records, index = [], 0
    for labels_of_shard in [[0, 1, 2, 3, 0, 1], [2, 3, 0, 1, 2, 3], [4, 4, 5, 5, 6, 6], [7, 7, 8, 8, 9, 9]]:
        for label in labels_of_shard:
            records.append(Record(f"c{label}/{index:04d}.jpg", label, None))
            index += 1
    expected = label_ratio_subset(records, 50, seed=5)
    assert sorted(r.label for r in expected) == sorted(labels)


def test_preprocessing_hook_and_a_batch_transform(shards):
    """A custom per-example preprocessing (two views), then a batch transform
    mapped by the caller (stacking them as [A; B] with labels [y; y]), the
    shape CLE needs."""
    from fgtf.preprocessing import preprocess_for_train

    def two_views(encoded, image_size, training, seed):
        seeds = tf.random.experimental.stateless_split(seed, 2)
        return preprocess_for_train(encoded, image_size, seeds[0]), preprocess_for_train(encoded, image_size, seeds[1])

    def stack_views(views, labels):
        return tf.concat(views, axis=0), tf.concat([labels, labels], axis=0)

    dataset = make_dataset(shards, "train", PipelineSettings(image_size=SIZE, batch_size=3, training=True,
                                                             preprocessing=two_views, seed=0)).map(stack_views)
    images, labels = next(iter(dataset))
    assert images.shape == (6, SIZE, SIZE, 3)
    np.testing.assert_array_equal(labels[:3], labels[3:])
    assert not np.array_equal(images[:3], images[3:])


def test_tfds_dataset_by_name(tmp_path):
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=10):
        evaluation = make_dataset("cifar10", "validation",
                                  PipelineSettings(image_size=SIZE, batch_size=4, training=False),
                                  ReadSettings(data_dir=str(tmp_path)))
        images, labels = collect(evaluation)
        assert images.shape == (10, SIZE, SIZE, 3) and labels.shape == (10,)
        assert images.min() >= -1.0 and images.max() <= 1.0
        assert labels.min() >= 0 and labels.max() < 10
        train = make_dataset("cifar10", "train", PipelineSettings(image_size=SIZE, batch_size=4, training=True, seed=0),
                             ReadSettings(data_dir=str(tmp_path)))
        assert next(iter(train))[0].shape == (4, SIZE, SIZE, 3)


def test_unknown_source_is_a_clear_error(tmp_path):
    with pytest.raises(Exception, match="no TFRecord files match"):
        make_dataset(str(tmp_path / "missing" / "*.tfrecord"), "train",
                     PipelineSettings(image_size=SIZE, batch_size=2, training=False))
    with pytest.raises(Exception, match="no train shards"):
        make_dataset(str(tmp_path), "train", PipelineSettings(image_size=SIZE, batch_size=2, training=False))

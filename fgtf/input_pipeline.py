"""tf.data input pipelines: batches of preprocessed images and labels from
TFRecord shards (fgtf's converter or the original TF1 tool) or from a TFDS
image-classification dataset prepared locally.

    from fgtf.input_pipeline import PipelineSettings, ReadSettings, make_dataset
    train = make_dataset("data/cub_200/tfrecords", "train",
                         PipelineSettings(image_size=299, batch_size=32, training=True, seed=0))
    for images, labels in train.take(1):
        images.shape, labels.shape     # (32, 299, 299, 3) float32 in [-1, 1], (32,) int32

`PipelineSettings` says what the batches hold and how the stream runs,
`ReadSettings` how the source is read (`ReadSettings(deterministic=True,
skip_bad_records=True)`); `dataclasses.replace` varies either. Under
tf.distribute, build it per input pipeline:

    strategy.distribute_datasets_from_function(
        lambda context: make_dataset(..., PipelineSettings(..., batch_size=global_batch), input_context=context))

The order of work, and why:
1. Shard files are listed (`<split>_*-of-*.tfrecord` in a folder, or a glob),
   split among input pipelines at the file level, and shuffled for training.
2. Shards are read by a parallel interleave; each shard's records are checked
   to cover the whole file, so a truncated or corrupted shard is caught (the
   TFRecord reader cannot resynchronise after a bad frame: the rest of that
   shard is lost).
3. Training reads the data in passes (epochs), each with its own shard order
   and shuffle of the *serialized* records (small) drawn from (seed, pass),
   and gives every record its own stateless seed, so augmentation does not
   depend on which thread decodes it, and a resumed run can start at any
   pass without reading the passes before it.
4. Records are parsed, decoded and preprocessed (training decodes only the
   sampled crop window, see `fgtf.preprocessing`) in groups of
   `fgtf.bad_records.GROUP_SIZE` by a parallel interleave: each group is one
   error barrier, so a bad record is caught and named without paying for a
   barrier per record (`fgtf.bad_records` says what a bad record is, and how
   `ReadSettings(skip_bad_records=True)` drops and logs them). Batches are
   then formed and prefetched, with AUTOTUNE parallelism throughout.

`image_file_dataset` reads image files instead (a split list's paths), for
the commands that work on a dataset's raw images: feature extraction and
SimTrans.
"""
import dataclasses
import os
import random
from typing import Callable, Optional, Tuple, Union

import numpy as np
import tensorflow as tf

from fgtf.bad_records import load_in_groups, origin_text
from fgtf.datasets.lists import SPLITS, Record
from fgtf.datasets.splits import label_ratio_subset
from fgtf.errors import UserError
from tfrecord_tools.example import ENCODED, FILENAME, LABEL, parse_example
from tfrecord_tools.manifest import list_shard_files, load_manifest, parse_shard_name

AUTOTUNE = tf.data.AUTOTUNE
# Serialized records held for shuffling: ~4k records of ~100 KB is ~0.4 GB;
# file shuffling and the interleave mix the stream further.
DEFAULT_SHUFFLE_BUFFER = 4096
# Shards read at once by the interleave.
MAX_PARALLEL_SHARDS = 16
# Stride between the element numbers of successive passes (the augmentation
# seeds): more records than any pass holds.
PASS_STRIDE = 2**40
# Bytes of TFRecord framing around each record: length, its CRC, data CRC.
_FRAME_BYTES = 16


@dataclasses.dataclass(frozen=True)
class PipelineSettings:
    """What `make_dataset` yields: the batches, their preprocessing and the
    course of the stream.

    image_size: output side (int) or (height, width).
    batch_size: the global batch; with an `input_context`, each pipeline
      yields `input_context.get_per_replica_batch_size(batch_size)`.
    training: True: shuffle, augment, repeat, drop the last partial batch.
      False: central-crop evaluation in record order, every record once.
    preprocessing: a pipeline name (`fgtf.preprocessing.PIPELINE_NAMES`:
      'inception', TF-Slim's, or one of the PyTorch seeds') or a callable
      with the same signature `fn(encoded, image_size, training, seed)`:
      encoded image bytes (scalar tf.string) and, for training, a stateless
      seed of shape [2] -> a tensor or nested structure of tensors per
      example (e.g. two augmented views).
    seed: int seed of file order, record order and augmentation; None
      draws one.
    repeat: passes over the data; None: forever for training, once for
      evaluation.
    label_ratio: percentage of each class's records to keep (SAM's low-data
      protocol, `fgtf.datasets.splits.label_ratio_subset` with `seed`,
      default 0): selection by `image/filename`, so it picks what
      `fgtf.convert --label_ratio` picks. Reads all labels once first.
    start_step: global training steps already taken (a resumed run): the
      examples they consumed are skipped, so, with `ReadSettings.deterministic`
      and the same `seed`, the run continues the very stream it was trained
      on (same order, same augmentation seeds). Every pass over the data is
      drawn from its own seeds, so whole passes are skipped without reading
      them: resuming reads one pass to count its records, then at most one
      more up to the resume point, however long the run was.
    """
    image_size: Union[int, Tuple[int, int]]
    batch_size: int
    training: bool
    preprocessing: Union[str, Callable] = "inception"
    seed: Optional[int] = None
    repeat: Optional[int] = None
    label_ratio: Optional[float] = None
    start_step: int = 0


@dataclasses.dataclass(frozen=True)
class ReadSettings:
    """How `make_dataset` reads its source.

    data_dir: the TFDS data folder (TFDS's default when None).
    deterministic: training elements come out in the same order on every
      run (with `PipelineSettings.seed`, the whole training stream is
      reproducible). Evaluation always keeps the record order.
    cache: True caches the serialized records in memory after the first
      pass, a string caches them to that file; decoding and augmentation
      still run every epoch, and the shard order stays that of the first
      pass (records are still shuffled afresh every epoch).
    shuffle_buffer: serialized records held by the training shuffle.
    skip_bad_records: drop and log bad records instead of raising (see
      `fgtf.bad_records`).
    """
    data_dir: Optional[str] = None
    deterministic: bool = False
    cache: Union[bool, str] = False
    shuffle_buffer: int = DEFAULT_SHUFFLE_BUFFER
    skip_bad_records: bool = False


def make_dataset(source: str, split: str, pipeline: PipelineSettings, reading: ReadSettings = ReadSettings(), *,
                 input_context: Optional[tf.distribute.InputContext] = None) -> tf.data.Dataset:
    """A `tf.data.Dataset` of (images, labels) batches.

    Args:
      source: a folder of TFRecord shards (`<split>_*-of-*.tfrecord`), a glob
        of shard files, or the name of a TFDS dataset prepared under
        `reading.data_dir` (nothing is downloaded). An existing path wins
        over a name.
      split: 'train' or 'validation' (a TFDS dataset without 'validation'
        uses 'test'); ignored when `source` is a glob.
      pipeline: what the batches hold and how the stream runs (`PipelineSettings`).
      reading: how the source is read (`ReadSettings`).
      input_context: a `tf.distribute.InputContext`; shards are split between
        its input pipelines at the file level.

    Returns:
      Dataset of (images float32 [B, height, width, 3], labels int32 [B]):
      in [-1, 1] with the inception preprocessing, ImageNet-normalised with
      the seeds', or the structure a `preprocessing` callable produces.
    """
    batch_size = (pipeline.batch_size if input_context is None
                  else input_context.get_per_replica_batch_size(pipeline.batch_size))
    file_seed, shuffle_seed, augment_seed = _pipeline_seeds(pipeline.seed, input_context)
    in_order = bool(reading.deterministic or not pipeline.training)
    preprocess = _preprocessing_function(pipeline.preprocessing)
    read_pass, parse = _read_source(source, split, data_dir=reading.data_dir, training=pipeline.training,
                                    input_context=input_context, file_seed=file_seed, deterministic=in_order,
                                    label_ratio=pipeline.label_ratio, label_ratio_seed=int(pipeline.seed or 0))
    if pipeline.training and _is_empty(read_pass(0)):
        raise UserError(f"{source} holds no {split} records to train on")
    if reading.cache:
        read_pass = _cached(read_pass, reading.cache)
    examples = _numbered_examples(read_pass, pipeline, reading.shuffle_buffer, shuffle_seed,
                                  _examples_per_step(batch_size, input_context))

    def load(payload, index):
        encoded, label = parse(payload)
        example_seed = tf.stack([tf.constant(augment_seed, tf.int64), index]) if pipeline.training else None
        return preprocess(encoded, pipeline.image_size, pipeline.training, example_seed), tf.cast(label, tf.int32)

    dataset = load_in_groups(examples, load, reading.skip_bad_records, deterministic=in_order)
    dataset = dataset.batch(batch_size, drop_remainder=pipeline.training, num_parallel_calls=AUTOTUNE)
    options = tf.data.Options()
    options.deterministic = in_order
    return dataset.with_options(options).prefetch(AUTOTUNE)


def image_file_dataset(paths, columns=(), *, image_size, batch_size, preprocessing="inception", seeds=None):
    """A `tf.data.Dataset` of batches read from the image files `paths`, in
    their order (the caller shuffles), each file read and preprocessed in
    parallel.

    Args:
      paths: image file paths (JPEG, PNG, GIF, BMP).
      columns: arrays with one row per path, batched beside the images
        (labels, sample weights).
      image_size: output side (int) or (height, width).
      batch_size: images per batch; the last batch may be smaller.
      preprocessing: as `PipelineSettings.preprocessing`: a pipeline name or
        `fn(encoded, image_size, training, seed)`.
      seeds: None for the evaluation preprocessing, or one stateless
        training seed per path (shape [len(paths), 2]).

    Returns:
      Dataset of images (float32 [B, height, width, 3] in [-1, 1] with the
      inception preprocessing) when there are no `columns`, else of
      (images, *columns). A missing file is a `UserError`, raised before
      anything is read; an undecodable one raises `InvalidArgumentError`
      when its batch is read.
    """
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        raise UserError(f"{len(missing)} images are missing, e.g. {missing[0]}")
    preprocess = _preprocessing_function(preprocessing)
    training = seeds is not None
    rows = (np.asarray(paths, str), np.asarray(seeds if training else np.zeros((len(paths), 2)), np.int64))

    def load(path, seed, *row):
        images = preprocess(tf.io.read_file(path), image_size, training, seed if training else None)
        return (images, *row) if row else images

    return (tf.data.Dataset.from_tensor_slices(rows + tuple(columns))
            .map(load, num_parallel_calls=AUTOTUNE, deterministic=True)
            .batch(batch_size).prefetch(AUTOTUNE))


def _preprocessing_function(preprocessing):
    """A `preprocessing` setting (`PipelineSettings.preprocessing`) as a function: a callable, or
    the `fgtf.preprocessing.pipelines.Pipeline` a name names."""
    from fgtf.preprocessing import get_pipeline

    return preprocessing if callable(preprocessing) else get_pipeline(preprocessing)


def _pipeline_seeds(seed, input_context):
    """(file order, record shuffle, augmentation) seeds of this input
    pipeline, drawn from `seed` (None: a fresh one) and the pipeline's id, so
    that workers draw different augmentations."""
    seed = random.SystemRandom().randrange(2**31) if seed is None else int(seed)
    pipeline_id = input_context.input_pipeline_id if input_context is not None else 0
    return tuple(int(s) for s in np.random.SeedSequence([seed, pipeline_id]).generate_state(3) % 2**31)


def _cached(read_pass, cache):
    """A `read_pass` whose every pass reads what the first one cached (in
    memory, or in the file `cache` names)."""
    cached = read_pass(0).cache(cache if isinstance(cache, str) else "")
    return lambda epoch: cached


def _numbered_examples(read_pass, pipeline, shuffle_buffer, shuffle_seed, examples_per_step):
    """(number, example) over the stream's passes: element j of pass e is
    numbered e * PASS_STRIDE + j (its augmentation seed); a training pass is
    shuffled; the examples of `pipeline.start_step` steps are skipped."""
    def one_pass(epoch):
        # The shuffles of a pass take their seeds from (seed, epoch) alone, not
        # from a global seed (TF's seed handling also fails on a tensor seed
        # when the global seed is 0).
        tf.compat.v1.set_random_seed(None)
        examples = read_pass(epoch)
        if pipeline.training:
            examples = examples.shuffle(shuffle_buffer, seed=_pass_seed(shuffle_seed, epoch),
                                        reshuffle_each_iteration=False)
        return examples.enumerate().map(lambda j, example: (epoch * PASS_STRIDE + j, example))

    passes = pipeline.repeat if pipeline.repeat is not None else (None if pipeline.training else 1)
    first_pass, skipped = 0, 0
    if pipeline.start_step:
        first_pass, skipped = divmod(pipeline.start_step * examples_per_step, _count(read_pass(0)))
    examples = tf.data.Dataset.range(first_pass, np.iinfo(np.int64).max if passes is None else passes)
    return examples.flat_map(one_pass).skip(skipped)


def _examples_per_step(per_replica_batch, input_context):
    """Examples one input pipeline yields per global step."""
    if input_context is None:
        return per_replica_batch
    return per_replica_batch * input_context.num_replicas_in_sync // input_context.num_input_pipelines


def _pass_seed(seed, epoch):
    """An int64 seed for pass `epoch` (a tensor) of a stream seeded with `seed`."""
    return tf.random.stateless_uniform([], tf.stack([tf.constant(seed, tf.int64), tf.cast(epoch, tf.int64)]),
                                       minval=None, maxval=None, dtype=tf.int64)


def _is_empty(examples):
    return not any(True for _ in examples.take(1))


def _count(examples):
    return int(examples.reduce(np.int64(0), lambda count, *_: count + 1))


def list_shards(source, split):
    """Shard files of `split` in the folder `source`, or the files matching the
    glob `source`, sorted. Raises `UserError` when there are none."""
    if tf.io.gfile.isdir(source):
        if split not in SPLITS:
            raise UserError(f"unknown split {split!r}; splits are {', '.join(SPLITS)}")
        files = [os.path.join(source, name) for name in list_shard_files(source, split)]
        if not files:
            raise UserError(f"no {split} shards ({split}_*-of-*.tfrecord) in {source}")
        return files
    files = sorted(tf.io.gfile.glob(source))
    if not files:
        raise UserError(f"no TFRecord files match {source}")
    return files


def count_records(source, split, data_dir=None):
    """Number of records in `split` of `source` (as `make_dataset` takes it).
    Shards listed in their folder's manifest.json with a matching byte size are
    counted from the manifest; others are read. A TFDS name is counted from its
    dataset info."""
    if not _is_tfrecord_source(source):
        builder = _tfds_builder(source, data_dir)
        return builder.info.splits[_tfds_split(builder, split)].num_examples
    total, manifests = 0, {}
    for path in list_shards(source, split):
        folder, name = os.path.split(path)
        if folder not in manifests:
            manifests[folder] = load_manifest(folder) if os.path.isdir(folder) else None
        shard = _manifest_entry(manifests[folder], name)
        if shard is not None and shard.get("bytes") == tf.io.gfile.stat(path).length:
            total += shard["records"]
        else:
            total += _count(tf.data.TFRecordDataset(path))
    return total


def shard_folder(dataset_dir):
    """The folder of TFRecord shards a `--dataset_dir` names: the folder itself
    when it holds `*.tfrecord` shards (fgtf's, or the original TF1 tool's
    written beside the images), else its `tfrecords/` subfolder (where
    `fgtf.convert` writes by default). Raises `UserError` when neither has shards."""
    for folder in (dataset_dir, os.path.join(dataset_dir, "tfrecords")):
        if os.path.isdir(folder) and list_shard_files(folder):
            return folder
    raise UserError(f"{dataset_dir} holds no TFRecord shards (<split>_NNNNN-of-NNNNN.tfrecord), nor does its "
                    f"tfrecords/ subfolder; convert the dataset first (python -m fgtf.convert)")


def split_labels(folder, split):
    """(records, {label: count}) of `split` in a shard folder. A folder with a
    manifest.json is checked against it (the conversion complete, every shard
    it lists present, with its recorded size) and counted from it; a folder
    without one (the original tool's shards) is read. Raises `UserError` for
    an unfinished conversion or a missing or short shard."""
    split_entry = ((load_manifest(folder) or {}).get("splits") or {}).get(split)
    if split_entry and len(split_entry["shards"]) < split_entry["num_shards"]:
        raise UserError(f"the conversion of the {split} split in {folder} is unfinished ({len(split_entry['shards'])} "
                        f"of {split_entry['num_shards']} shards written); rerun the conversion command to finish "
                        f"it (python -m tfrecord_tools.verify {folder} names the missing shards)")
    if not split_entry:
        histogram = {}
        # Unreadable records are left to the pipeline, which names them (or skips them).
        for label in tf.data.TFRecordDataset(list_shards(folder, split)).map(
                lambda record: parse_example(record)[LABEL]).ignore_errors().as_numpy_iterator():
            histogram[int(label)] = histogram.get(int(label), 0) + 1
        return sum(histogram.values()), histogram
    for name, shard in sorted(split_entry.get("shards", {}).items()):
        path = os.path.join(folder, name)
        if not os.path.isfile(path):
            raise UserError(f"shard {path} is listed in manifest.json but missing; check the folder with "
                            f"python -m tfrecord_tools.verify {folder}")
        if "bytes" in shard and os.path.getsize(path) != shard["bytes"]:
            raise UserError(f"shard {path} has {os.path.getsize(path)} bytes but manifest.json lists "
                            f"{shard['bytes']}; check the folder with python -m tfrecord_tools.verify {folder}")
    return split_entry["records"], {int(k): v for k, v in split_entry["label_histogram"].items()}


# --- sources -----------------------------------------------------------------
# A source's reader(distributed) gives read_pass(epoch): the dataset of pass
# `epoch` (an int64 tensor; the shard order is drawn from it for training),
# whose elements are (payload, where, number, intact): payload is what `parse`
# turns into (encoded image, label); where and number locate the record (a
# shard's path and the record's position in it, or a TFDS record id and -1),
# spelt out by fgtf.bad_records.origin_text only when a message needs it;
# intact is False for the marker that stands for the unreadable tail of a
# corrupted shard.


def _read_source(source, split, *, data_dir, training, input_context, file_seed, deterministic,
                 label_ratio, label_ratio_seed):
    if _is_tfrecord_source(source):
        files = list_shards(source, split)
        reader = _tfrecord_reader(files, training, input_context, file_seed, deterministic)
        parse = _parse_tfrecord
        selection_key = _tfrecord_selection_key
    else:
        builder = _tfds_builder(source, data_dir)
        reader = _tfds_reader(builder, _tfds_split(builder, split), training, input_context,
                              file_seed, deterministic)
        parse = _parse_tfds
        selection_key = None
    read_pass = reader(distributed=True)
    if label_ratio is None:
        return read_pass, parse
    kept = _label_ratio_origins(reader(distributed=False)(None), parse, selection_key, label_ratio,
                                label_ratio_seed)

    def read_kept(epoch):
        return read_pass(epoch).filter(lambda payload, where, number, intact: tf.logical_or(
            tf.logical_not(intact), kept.lookup(origin_text(where, number, intact))))

    return read_kept, parse


def _is_tfrecord_source(source):
    source = os.fspath(source)
    return tf.io.gfile.exists(source) or bool(tf.io.gfile.glob(source)) or any(
        c in source for c in "/*?[")


def _tfrecord_reader(files, training, input_context, file_seed, deterministic):
    def read(distributed):
        shard_files = files
        if distributed and input_context is not None and input_context.num_input_pipelines > 1:
            pipelines = input_context.num_input_pipelines
            if len(files) < pipelines:
                raise UserError(f"{len(files)} shard(s) cannot be split between {pipelines} input "
                                "pipelines; convert with at least as many shards as pipelines")
            shard_files = files[input_context.input_pipeline_id::pipelines]
        sizes = [tf.io.gfile.stat(path).length for path in shard_files]

        def read_pass(epoch):
            paths = tf.data.Dataset.from_tensor_slices((shard_files, tf.constant(sizes, tf.int64)))
            if training and distributed:
                paths = paths.shuffle(len(shard_files), seed=_pass_seed(file_seed, epoch),
                                      reshuffle_each_iteration=False)
            if not training:
                # One shard after another, so evaluation keeps the record order.
                return paths.flat_map(_read_shard)
            return paths.interleave(_read_shard, cycle_length=min(len(shard_files), MAX_PARALLEL_SHARDS),
                                    block_length=1, num_parallel_calls=AUTOTUNE, deterministic=deterministic)

        return read_pass

    return read


def _read_shard(path, size):
    """(payload, where, number, intact) for each record of one shard, then one
    intact=False marker if the records read do not cover the file."""
    records = tf.data.TFRecordDataset(path).ignore_errors()
    tagged = tf.data.Dataset.zip((records, tf.data.Dataset.from_tensors(True).repeat())).concatenate(
        tf.data.Dataset.from_tensors((tf.constant(""), False)))

    def step(state, element):
        number, consumed = state
        record, is_record = element
        intact = tf.logical_or(is_record, tf.equal(consumed, size))
        length = tf.cast(tf.strings.length(record), tf.int64) + _FRAME_BYTES
        return (number + 1, consumed + length), (record, path, number, intact, is_record)

    scanned = tagged.scan((tf.constant(0, tf.int64), tf.constant(0, tf.int64)), step)

    def record_or_bad_tail(record, path, number, intact, is_record):
        return tf.logical_or(is_record, tf.logical_not(intact))

    def drop_is_record(record, path, number, intact, is_record):
        return record, path, number, intact

    return scanned.filter(record_or_bad_tail).map(drop_is_record)


def _parse_tfrecord(record):
    features = parse_example(record)
    return features[ENCODED], features[LABEL]


def _tfrecord_selection_key(record, origin):
    # The converter's label_ratio_subset sorts a class's images by path;
    # shards without image/filename (the original tool) fall back to position.
    filename = parse_example(record)[FILENAME]
    return tf.where(tf.equal(filename, ""), origin, filename)


def _tfds_builder(name, data_dir):
    import tensorflow_datasets as tfds

    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except Exception as error:  # TFDS raises several types for an unknown name
        raise UserError(f"{name} is neither a TFRecord path nor a TFDS dataset ({error})") from error
    if not builder.info.supervised_keys:
        raise UserError(f"TFDS dataset {name} has no (image, label) supervised keys")
    return builder


def _tfds_split(builder, split):
    if split == "validation" and "validation" not in builder.info.splits:
        return "test"
    return split


def _tfds_reader(builder, split, training, input_context, file_seed, deterministic):
    import tensorflow_datasets as tfds

    image_key, label_key = builder.info.supervised_keys[:2]

    def read(distributed):
        # TFDS draws its file order in Python, so it is drawn once per run and
        # every pass reads the files in that order (records are still
        # shuffled afresh every pass).
        read_config = tfds.ReadConfig(
            input_context=input_context if distributed else None, shuffle_seed=file_seed,
            shuffle_reshuffle_each_iteration=False, add_tfds_id=True, try_autocache=False,
            interleave_cycle_length=MAX_PARALLEL_SHARDS)
        read_config.options.deterministic = deterministic
        try:
            examples = builder.as_dataset(
                split=split, shuffle_files=training and distributed, read_config=read_config,
                decoders={image_key: tfds.decode.SkipDecoding()})
        except AssertionError as error:  # TFDS asserts that the dataset was prepared
            raise UserError(f"TFDS dataset {builder.name} is not prepared under "
                            f"{builder.data_dir}; fgtf never downloads ({error})") from error
        examples = examples.map(lambda example: (
            (example[image_key], example[label_key]),
            tf.strings.join(["TFDS record ", example["tfds_id"]]), tf.constant(-1, tf.int64), True))
        return lambda epoch: examples

    return read


def _parse_tfds(payload):
    return payload


def _label_ratio_origins(examples, parse, selection_key, label_ratio, seed):
    """A table origin -> keep (bool) for `label_ratio` % of each class."""
    def key_and_label(payload, where, number, intact):
        origin = origin_text(where, number, intact)
        key = selection_key(payload, origin) if selection_key else origin
        return origin, key, tf.cast(parse(payload)[1], tf.int64)

    origins, records = [], []
    rows = examples.map(key_and_label, num_parallel_calls=AUTOTUNE).batch(4096)
    for origin_batch, key_batch, label_batch in rows.as_numpy_iterator():
        origins.extend(origin_batch)
        records.extend(Record(key.decode("utf-8"), int(label), None)
                       for key, label in zip(key_batch, label_batch))
    kept_paths = {record.path for record in label_ratio_subset(records, label_ratio, seed=seed)}
    keep = [record.path in kept_paths for record in records]
    return tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(tf.constant(origins, tf.string), tf.constant(keep)),
        default_value=False)


def _manifest_entry(manifest, shard_name):
    parsed = parse_shard_name(shard_name)
    if not manifest or not parsed:
        return None
    return manifest.get("splits", {}).get(parsed[0], {}).get("shards", {}).get(shard_name)

"""The bad-record barrier of fgtf's input pipelines: records that fail to
load are named (or skipped and logged) without a barrier per record.

Bad records. A record that is not a tf.train.Example with `image/encoded`
and `image/class/label`, an image that does not decode, or the unreadable
tail of a corrupted shard raises `tf.errors.InvalidArgumentError` whose
message names the shard and the record number (`bad_record_message` turns it
into one sentence for a user). With `skip_bad_records=True` such records are
dropped instead, and each one is logged to stderr as
`fgtf.input_pipeline: skipped bad record <k> (record <i> of shard <path>)`,
where k counts the skipped records of this dataset so far.

tf.data has no per-element error handling inside a pipeline: `load_in_groups`
runs each group of `GROUP_SIZE` records in a dataset whose errors are
dropped, and a record missing from that group's output is the bad one.
"""
import re

import tensorflow as tf

# Records per error barrier (see load_in_groups): large enough to spread the
# barrier's cost, small enough to keep every core busy and little memory held.
GROUP_SIZE = 16


def load_in_groups(examples, load, skip_bad_records, deterministic):
    """(result, label) elements from `examples` - (index, (payload, where,
    number, intact)), where `where` and `number` locate the record (see
    `origin_text`) and `intact` is False for the marker of an unreadable shard
    tail - by `load(payload, index)`, GROUP_SIZE records at a time in a
    parallel interleave. Each group runs in a dataset whose errors are
    dropped (the only error barrier tf.data offers inside a pipeline); a record
    missing from its output failed to load, and is named in an
    InvalidArgumentError, or with `skip_bad_records` logged and left out.
    `deterministic` keeps the order of `examples`."""
    def load_group(indices, sources):
        payloads, wheres, numbers, intacts = sources
        size = tf.size(indices, out_type=tf.int64)

        def attempt(position, index, payload, intact):
            with tf.control_dependencies([tf.debugging.Assert(intact, ["unreadable shard tail"])]):
                result, label = load(payload, index)
                return position, tf.nest.map_structure(tf.identity, result), tf.identity(label)

        attempts = tf.data.Dataset.from_tensor_slices(
            (tf.range(size), indices, payloads, intacts)).map(attempt).ignore_errors()
        _, result_spec, label_spec = attempts.element_spec
        end = tf.data.Dataset.from_tensors(
            (size, tf.nest.map_structure(_zeros_of_spec, result_spec), _zeros_of_spec(label_spec)))

        def find_missing(expected, element):
            position, result, label = element
            missing = tf.range(expected, position)
            missing_text = origin_text(tf.gather(wheres, missing), tf.gather(numbers, missing),
                                       tf.gather(intacts, missing))
            if not skip_bad_records:
                check = tf.debugging.Assert(tf.equal(expected, position), [
                    "fgtf.input_pipeline: bad record (not a tf.train.Example with a decodable image):",
                    tf.strings.reduce_join(missing_text[:1]), "- pass skip_bad_records=True to skip bad records"])
                with tf.control_dependencies([check]):
                    missing_text = tf.identity(missing_text)
            return position + 1, (result, label, missing_text, position < size)

        return attempts.concatenate(end).scan(tf.constant(0, tf.int64), find_missing)

    loaded = examples.batch(GROUP_SIZE).interleave(
        load_group, block_length=GROUP_SIZE + 1, num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic)
    if skip_bad_records:
        loaded = loaded.scan(tf.constant(0, tf.int64), _log_skipped)

    def is_record(result, label, missing_text, loaded_record):
        return loaded_record

    def result_and_label(result, label, missing_text, loaded_record):
        return result, label

    return loaded.filter(is_record).map(result_and_label)


def bad_record_message(error, folder):
    """The one sentence for an InvalidArgumentError raised on a bad record,
    or None when `error` is another error."""
    match = re.search(r"bad record.*?(record \d+ of shard .+?\.tfrecord(?: and after: the file is truncated or "
                      r"corrupted)?)", str(error), re.S)
    if not match:
        return None
    return (f"bad {match.group(1).strip()}; find every bad record with python -m tfrecord_tools.verify {folder}, "
            f"or pass --skip_bad_records to leave them out")


def origin_text(where, number, intact):
    """The words that name a record (scalars or vectors): 'record 3 of shard
    <path>' (TFRecords) or 'TFDS record <id>', and for the marker of an
    unreadable shard tail '... and after: the file is truncated or corrupted'."""
    text = tf.where(number >= 0, tf.strings.join(["record ", tf.strings.as_string(number), " of shard ", where]),
                    where)
    return tf.where(intact, text, tf.strings.join([text, " and after: the file is truncated or corrupted"]))


def _zeros_of_spec(spec):
    return tf.zeros([d if d is not None else 0 for d in spec.shape], spec.dtype)


def _log_skipped(skipped, element):
    """Counts the records an element reports missing and logs each to stderr."""
    result, label, missing_text, loaded_record = element
    count = tf.size(missing_text, out_type=tf.int64)
    lines = tf.strings.join(["fgtf.input_pipeline: skipped bad record ",
                             tf.strings.as_string(skipped + 1 + tf.range(count)), " (", missing_text, ")\n"])
    report = tf.cond(count > 0, lambda: tf.raw_ops.PrintV2(
        input=tf.strings.reduce_join(lines), output_stream="stderr", end=""), tf.no_op)
    with tf.control_dependencies([report]):
        return skipped + count, (result, label, missing_text, tf.identity(loaded_record))

"""Generic, dataset-agnostic TFRecord tools for labelled images.

    example   the tf.train.Example codec (the original TF1 converter's keys);
              `FEATURE_SPEC` / `parse_example` for tf.data
    records   the TFRecord file format: framing, reading with CRC checks
    images    image normaliser: good JPEGs pass through, others become RGB JPEG,
              bad files raise `BadImage` with a reason
    writer    `write_split`: parallel, atomic, resumable sharded writer
    manifest  output-folder layout: shard names, manifest.json, conversion_report.json
    reader    host-side reading and checking of shards

Command lines: `python -m tfrecord_tools.inspect DIR`, `python -m
tfrecord_tools.verify DIR`, `python -m tfrecord_tools.merge OUT PART...`.

This package never imports fgtf, and only `example.FEATURE_SPEC` /
`example.parse_example` import TensorFlow.
"""

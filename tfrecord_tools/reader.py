"""Reading image shards on the host, without TensorFlow.

    for features in read_examples("out/train_00000-of-00010.tfrecord"):
        features["image/class/label"][0], features["image/encoded"][0]

    check = check_shard("out/train_00000-of-00010.tfrecord")
    check.records, check.labels, check.problem   # int, Counter, None or a sentence

In tf.data use `tfrecord_tools.example.parse_example` instead.
"""
from collections import Counter, namedtuple

from PIL import Image

from tfrecord_tools.example import ENCODED, HEIGHT, LABEL, WIDTH, check_image_example, decode_example
from tfrecord_tools.images import DEFAULT_MAX_PIXELS, header_size, pixel_budget_problem
from tfrecord_tools.records import CorruptRecordError, iter_records

ShardCheck = namedtuple("ShardCheck", "records labels problem")
ShardCheck.__doc__ = ("`records`: records read before any problem; `labels`: Counter of labels; "
                      "`problem`: None, or the first problem found as one sentence.")


def read_examples(path, check_crc=True):
    """Yield every record of the shard `path` decoded to {key: list of values}
    (see `tfrecord_tools.example.decode_example`). Raises `CorruptRecordError`
    or `ValueError` on a bad record."""
    for data in iter_records(path, check_crc=check_crc):
        yield decode_example(data)


def check_shard(path, max_pixels=DEFAULT_MAX_PIXELS):
    """Read the whole shard `path`: CRCs, Example structure, the five required
    keys, and that each image's JPEG header matches its stored height/width
    and declares at most `max_pixels` pixels (a header read, no decode).
    Returns a `ShardCheck`."""
    records, labels = 0, Counter()
    try:
        for features in read_examples(path):
            problem = check_image_example(features) or _header_problem(features, max_pixels)
            if problem:
                return ShardCheck(records, labels, f"record {records}: {problem}")
            labels[features[LABEL][0]] += 1
            records += 1
    except CorruptRecordError as error:
        return ShardCheck(records, labels, str(error).split(": ", 1)[-1])
    except ValueError as error:
        return ShardCheck(records, labels, f"record {records}: not a tf.train.Example ({error})")
    return ShardCheck(records, labels, None)


def _header_problem(features, max_pixels):
    try:
        height, width = header_size(features[ENCODED][0])
    except Image.DecompressionBombError as error:
        return f"image/encoded declares more pixels than the budget ({error})"
    except (OSError, SyntaxError, ValueError) as error:
        return f"image/encoded is not a readable image ({error})"
    stored = (features[HEIGHT][0], features[WIDTH][0])
    if stored != (height, width):
        return f"stored size {stored[0]}x{stored[1]} differs from the image's {height}x{width}"
    problem = pixel_budget_problem(height, width, max_pixels)
    return f"image/encoded {problem}" if problem else None

"""The tf.train.Example codec for one labelled image.

Keys are exactly those of the original TF1 converter, so shards written by it
read unchanged, plus two optional ones:

    image/encoded      bytes   JPEG bytes
    image/format       bytes   b'jpg'
    image/class/label  int64   0-based label
    image/height       int64   pixels
    image/width        int64   pixels
    image/filename     bytes   optional: the image's path relative to its dataset folder
    image/class/text   bytes   optional: the class name

Writing and reading on the host (`encode_example`, `decode_example`) speak the
protobuf wire format directly, so conversion workers never import TensorFlow
(an 8 s import and hundreds of MB per process) and the bytes are deterministic
(features in sorted key order). Inside tf.data use `FEATURE_SPEC` /
`parse_example`:

    from tfrecord_tools.example import parse_example
    dataset = tf.data.TFRecordDataset(files).map(parse_example)
    # each element: {'image/encoded': tf.string scalar, 'image/class/label': tf.int64 scalar, ...}
"""
import functools
import struct

ENCODED = "image/encoded"
FORMAT = "image/format"
LABEL = "image/class/label"
HEIGHT = "image/height"
WIDTH = "image/width"
FILENAME = "image/filename"
CLASS_TEXT = "image/class/text"

REQUIRED_KEYS = (ENCODED, FORMAT, LABEL, HEIGHT, WIDTH)
JPEG_FORMAT = b"jpg"


def encode_example(jpeg_bytes, label, height, width, filename=None, class_text=None):
    """Serialise one image to tf.train.Example bytes.

    `jpeg_bytes`: bytes of a JPEG; `label`, `height`, `width`: ints;
    `filename`, `class_text`: optional str (stored UTF-8). Returns bytes that
    `tf.train.Example.FromString` and `tf.io.parse_single_example` accept.
    """
    features = {
        ENCODED: _bytes_feature(jpeg_bytes),
        FORMAT: _bytes_feature(JPEG_FORMAT),
        LABEL: _int64_feature(label),
        HEIGHT: _int64_feature(height),
        WIDTH: _int64_feature(width),
    }
    if filename is not None:
        features[FILENAME] = _bytes_feature(filename.encode("utf-8"))
    if class_text is not None:
        features[CLASS_TEXT] = _bytes_feature(class_text.encode("utf-8"))
    # Features.feature is map<string, Feature>: each entry is a message {1: key, 2: value}.
    entries = b"".join(_field(1, _key_field(key) + _field(2, value)) for key, value in sorted(features.items()))
    return _field(1, entries)  # Example.features = 1


def decode_example(serialized):
    """Parse tf.train.Example bytes into {key: list of bytes | ints | floats}.

    Reads any Example (not only ours). Raises `ValueError` on malformed bytes.
    """
    features = {}
    for number, value in _fields(serialized):
        if number != 1 or not isinstance(value, bytes):
            continue
        for entry_number, entry in _fields(value):
            if entry_number != 1 or not isinstance(entry, bytes):
                continue
            key, feature = None, b""
            for field_number, field_value in _fields(entry):
                if field_number == 1:
                    key = field_value.decode("utf-8")
                elif field_number == 2:
                    feature = field_value
            if key is None:
                raise ValueError("feature map entry without a key")
            features[key] = _decode_feature(feature)
    return features


def check_image_example(features):
    """Return the problem with decoded `features` as one sentence, or None when
    every required key is present with one value of the right type."""
    for key in REQUIRED_KEYS:
        values = features.get(key)
        if values is None or len(values) != 1:
            return f"key {key} is missing or not a single value"
        wanted = bytes if key in (ENCODED, FORMAT) else int
        if not isinstance(values[0], wanted):
            return f"key {key} holds {type(values[0]).__name__}, expected {wanted.__name__}"
    return None


def __getattr__(name):
    # FEATURE_SPEC needs TensorFlow; build it on first use so host-side code stays TF-free.
    if name == "FEATURE_SPEC":
        import tensorflow as tf

        spec = {
            ENCODED: tf.io.FixedLenFeature([], tf.string),
            FORMAT: tf.io.FixedLenFeature([], tf.string, default_value="jpg"),
            LABEL: tf.io.FixedLenFeature([], tf.int64),
            HEIGHT: tf.io.FixedLenFeature([], tf.int64, default_value=0),
            WIDTH: tf.io.FixedLenFeature([], tf.int64, default_value=0),
            FILENAME: tf.io.FixedLenFeature([], tf.string, default_value=""),
            CLASS_TEXT: tf.io.FixedLenFeature([], tf.string, default_value=""),
        }
        globals()["FEATURE_SPEC"] = spec
        return spec
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def parse_example(serialized):
    """tf.data map function: a scalar tf.string (one serialized Example) ->
    dict of scalar tensors keyed as `FEATURE_SPEC`. Optional keys absent from
    a record (e.g. shards of the original TF1 tool) come back as ''. For a
    batch of records use `tf.io.parse_example(batch, FEATURE_SPEC)`."""
    import tensorflow as tf

    return tf.io.parse_single_example(serialized, __getattr__("FEATURE_SPEC"))


# --- protobuf wire format -------------------------------------------------

_VARINT, _FIXED64, _LENGTH, _FIXED32 = 0, 1, 2, 5


def _bytes_feature(value):
    return _field(1, _field(1, value))  # Feature.bytes_list = 1, BytesList.value = 1


def _int64_feature(value):
    return _field(3, _field(1, _varint(value)))  # Feature.int64_list = 3, packed Int64List.value = 1


def _field(number, payload):
    """A length-delimited field."""
    return _varint(number << 3 | _LENGTH) + _varint(len(payload)) + payload


@functools.lru_cache(maxsize=64)
def _key_field(key):
    return _field(1, key.encode("utf-8"))


_ONE_BYTE = [bytes((value,)) for value in range(0x80)]


def _varint(value):
    if 0 <= value < 0x80:  # the common case (tags, labels, short lengths), kept cheap
        return _ONE_BYTE[value]
    value &= (1 << 64) - 1  # negative int64 is encoded as its two's complement
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _read_varint(data, position):
    result = shift = 0
    while True:
        if position >= len(data) or shift > 63:
            raise ValueError("truncated or overlong varint")
        byte = data[position]
        position += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, position
        shift += 7


def _fields(data):
    """Yield (field number, value) of a message: int for varints, bytes otherwise."""
    position = 0
    while position < len(data):
        key, position = _read_varint(data, position)
        number, wire_type = key >> 3, key & 7
        if wire_type == _VARINT:
            value, position = _read_varint(data, position)
        elif wire_type == _LENGTH:
            length, position = _read_varint(data, position)
            value, position = data[position:position + length], position + length
            if len(value) != length:
                raise ValueError("length-delimited field runs past the end")
        elif wire_type in (_FIXED64, _FIXED32):
            size = 8 if wire_type == _FIXED64 else 4
            value, position = data[position:position + size], position + size
            if len(value) != size:
                raise ValueError("fixed-size field runs past the end")
        else:
            raise ValueError(f"unsupported wire type {wire_type}")
        yield number, value


def _decode_feature(feature):
    """Feature bytes -> list of bytes (bytes_list), floats (float_list) or ints (int64_list)."""
    values = []
    for kind, payload in _fields(feature):
        for number, value in _fields(payload):
            if number != 1:
                continue
            if kind == 1:
                values.append(value)
            elif kind == 2:
                # float_list: packed (one length-delimited run) or one fixed32 per value
                values.extend(struct.unpack(f"<{len(value) // 4}f", value))
            elif kind == 3:
                values.extend(_int64_values(value))
    return values


def _int64_values(value):
    if isinstance(value, int):  # unpacked: one varint per value
        numbers = [value]
    else:  # packed: a run of varints
        numbers, position = [], 0
        while position < len(value):
            number, position = _read_varint(value, position)
            numbers.append(number)
    return [n - (1 << 64) if n >= 1 << 63 else n for n in numbers]

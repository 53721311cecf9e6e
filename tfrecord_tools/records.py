"""The TFRecord file format: framing records and reading them back with CRC checks.

Each record on disk is

    uint64 length | uint32 masked_crc32c(length) | data | uint32 masked_crc32c(data)

(little-endian), the format tf.io.TFRecordWriter writes and
tf.data.TFRecordDataset reads, uncompressed.
"""
import struct

import google_crc32c

_LENGTH = struct.Struct("<Q")
_CRC = struct.Struct("<I")


class CorruptRecordError(ValueError):
    """A shard whose bytes are not a valid TFRecord file; the message names the
    file, the record index and the byte offset."""


def frame_record(data):
    """Bytes of one record (`data`: the serialized payload) as it goes on disk."""
    length = _LENGTH.pack(len(data))
    return length + _CRC.pack(_masked_crc(length)) + data + _CRC.pack(_masked_crc(data))


def iter_records(path, check_crc=True):
    """Yield the payload bytes of every record in the TFRecord file `path`.

    Raises `CorruptRecordError` on a truncated record or (with `check_crc`) a
    CRC mismatch.
    """
    with open(path, "rb") as handle:
        index, offset = 0, 0
        while True:
            header = handle.read(12)
            if not header:
                return
            if len(header) < 12:
                raise CorruptRecordError(f"{path}: record {index} at byte {offset}: truncated header")
            length_bytes, length_crc = header[:8], _CRC.unpack(header[8:])[0]
            if check_crc and length_crc != _masked_crc(length_bytes):
                raise CorruptRecordError(f"{path}: record {index} at byte {offset}: length CRC mismatch")
            (length,) = _LENGTH.unpack(length_bytes)
            data = handle.read(length)
            footer = handle.read(4)
            if len(data) < length or len(footer) < 4:
                raise CorruptRecordError(f"{path}: record {index} at byte {offset}: truncated data")
            if check_crc and _CRC.unpack(footer)[0] != _masked_crc(data):
                raise CorruptRecordError(f"{path}: record {index} at byte {offset}: data CRC mismatch")
            yield data
            index += 1
            offset += 16 + length


def _masked_crc(data):
    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF

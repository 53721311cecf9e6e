"""tfrecord_tools: Example codec, TFRecord framing, image normaliser, sharded
writer (resume, shard ranges, reports), reader, inspect and verify."""
import io
import json
import multiprocessing
import os

import numpy as np
import pytest
from PIL import Image, ImageOps

from tfrecord_tools import example, images, inspect, manifest, merge, verify, writer
from tfrecord_tools.errors import UserError
from tfrecord_tools.reader import check_shard, read_examples
from tfrecord_tools.records import CorruptRecordError, frame_record, iter_records
from tfrecord_tools.writer import ImageItem, write_split
from cli_helpers import frameworks_imported, run_cli


# --- helpers ----------------------------------------------------------------

def _pattern(height=48, width=64, seed=0):
    """An RGB uint8 array with structure (so JPEG sizes and orientation are testable)."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 256, (height // 8 + 1, width // 8 + 1, 3), dtype=np.uint8)
    pixels = blocks.repeat(8, axis=0).repeat(8, axis=1)[:height, :width].copy()  # blocky: JPEG keeps it
    pixels[:, : width // 2] = (220, 30, 30)  # left half red: orientation is visible
    return pixels


def _save(path, image, format=None, **options):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    image.save(path, format=format, **options)
    return path


def _jpeg(path, height=48, width=64, seed=0, **options):
    return _save(path, Image.fromarray(_pattern(height, width, seed)), "JPEG", quality=90, **options)


def _items(folder, count, labels=3):
    """`count` good JPEGs as ImageItems with labels 0..labels-1."""
    return [ImageItem(_jpeg(os.path.join(folder, f"{index}.jpg"), seed=index), index % labels,
                      f"{index}.jpg", f"class{index % labels}") for index in range(count)]


def _shard_bytes(output_dir):
    return {name: open(os.path.join(output_dir, name), "rb").read()
            for name in manifest.list_shard_files(output_dir)}


def _decoded(jpeg_bytes):
    return np.asarray(Image.open(io.BytesIO(jpeg_bytes)).convert("RGB"), dtype=np.float64)


# --- Example codec and record framing ---------------------------------------

@pytest.mark.slow  # imports TensorFlow
def test_example_round_trips_through_tensorflow(tmp_path):
    tf = pytest.importorskip("tensorflow")
    jpeg = open(_jpeg(str(tmp_path / "a.jpg")), "rb").read()
    ours = example.encode_example(jpeg, 7, 48, 64, filename="birds/a.jpg", class_text="Albatross")

    parsed = tf.train.Example.FromString(ours).features.feature
    assert parsed["image/encoded"].bytes_list.value == [jpeg]
    assert parsed["image/format"].bytes_list.value == [b"jpg"]
    assert parsed["image/class/label"].int64_list.value == [7]
    assert (parsed["image/height"].int64_list.value, parsed["image/width"].int64_list.value) == ([48], [64])
    assert parsed["image/filename"].bytes_list.value == [b"birds/a.jpg"]
    assert parsed["image/class/text"].bytes_list.value == [b"Albatross"]

    path = str(tmp_path / "ours.tfrecord")
    with open(path, "wb") as out:
        out.write(frame_record(ours))
    record = next(iter(tf.data.TFRecordDataset(path).map(example.parse_example)))
    assert record["image/encoded"].numpy() == jpeg
    assert record["image/class/label"].numpy() == 7
    assert record["image/class/text"].numpy() == b"Albatross"

    # A record as the original TF1 converter wrote it (TF's own serializer and
    # writer, no optional keys) reads through our reader and parse spec alike.
    original = tf.train.Example(features=tf.train.Features(feature={
        "image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(value=[jpeg])),
        "image/format": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"jpg"])),
        "image/class/label": tf.train.Feature(int64_list=tf.train.Int64List(value=[3])),
        "image/height": tf.train.Feature(int64_list=tf.train.Int64List(value=[48])),
        "image/width": tf.train.Feature(int64_list=tf.train.Int64List(value=[64])),
    }))
    tf_path = str(tmp_path / "tf.tfrecord")
    with tf.io.TFRecordWriter(tf_path) as writer:
        writer.write(original.SerializeToString())
    (features,) = list(read_examples(tf_path))
    assert example.check_image_example(features) is None
    assert features["image/class/label"] == [3] and features["image/encoded"] == [jpeg]
    record = next(iter(tf.data.TFRecordDataset(tf_path).map(example.parse_example)))
    assert record["image/class/label"].numpy() == 3 and record["image/filename"].numpy() == b""
    assert set(example.FEATURE_SPEC) >= set(example.REQUIRED_KEYS)


def test_decode_example_reads_every_feature_kind():
    data = example.encode_example(b"\xff\xd8x", -5, 1, 2)
    assert example.decode_example(data)["image/class/label"] == [-5]
    # float_list, packed and one fixed32 per value
    feature = example._field(2, example._field(1, np.array([0.5, 2.0], "<f4").tobytes()))
    entry = example._field(1, example._field(1, b"f") + example._field(2, feature))
    assert example.decode_example(example._field(1, entry)) == {"f": [0.5, 2.0]}
    with pytest.raises(ValueError):
        example.decode_example(data[:-3])


def test_iter_records_names_truncation_and_crc_errors(tmp_path):
    path = str(tmp_path / "x.tfrecord")
    payloads = [b"first", b"second record"]
    with open(path, "wb") as out:
        out.write(b"".join(frame_record(payload) for payload in payloads))
    assert list(iter_records(path)) == payloads

    data = bytearray(open(path, "rb").read())
    data[len(frame_record(b"first")) + 14] ^= 1  # a byte inside the second payload
    open(path, "wb").write(bytes(data))
    with pytest.raises(CorruptRecordError, match="record 1 at byte 21: data CRC mismatch"):
        list(iter_records(path))
    open(path, "wb").write(bytes(data[:-3]))
    with pytest.raises(CorruptRecordError, match="truncated data"):
        list(iter_records(path, check_crc=False))


# --- image normaliser -------------------------------------------------------

@pytest.mark.parametrize("options", [{}, {"progressive": True}, {"subsampling": 0}],
                         ids=["baseline", "progressive", "4:4:4"])
def test_good_jpeg_passes_through_byte_identical(tmp_path, options):
    path = _jpeg(str(tmp_path / "good.jpg"), height=37, width=53, **options)
    result = images.normalize_image(path)
    assert result.jpeg == open(path, "rb").read()
    assert (result.height, result.width, result.conversion) == (37, 53, None)


def _exif(tags):
    exif = Image.Exif()
    exif.update(tags)
    return exif.tobytes()


@pytest.mark.parametrize("options", [
    {}, {"progressive": True}, {"subsampling": 0}, {"exif": _exif({})}, {"exif": _exif({0x0112: 1})},
    {"exif": _exif({0x0112: 3})}, {"exif": _exif({0x010F: "Camera", 0x0112: 8})}, {"comment": b"hello"},
    {"icc_profile": b"\0" * 300}, {"mode": "L"}, {"mode": "CMYK"},
], ids=["baseline", "progressive", "4:4:4", "empty-exif", "orientation1", "orientation3", "orientation8",
        "comment", "icc", "grayscale", "cmyk"])
def test_marker_scan_agrees_with_pil(tmp_path, options):
    options = dict(options)
    image = Image.fromarray(_pattern(30, 50)).convert(options.pop("mode", "RGB"))
    path = _save(str(tmp_path / "x.jpg"), image, "JPEG", **options)
    with Image.open(path) as opened:
        plain = opened.mode == "RGB" and opened.getexif().get(0x0112, 1) == 1
        expected = (opened.height, opened.width) if plain else None
    assert images._plain_jpeg_size(open(path, "rb").read()) == expected


def test_jpeg_with_bytes_after_its_end_marker_passes_through(tmp_path):
    path = _jpeg(str(tmp_path / "trailer.jpg"))
    with open(path, "ab") as out:
        out.write(b"camera maker notes")
    result = images.normalize_image(path)
    assert result.jpeg == open(path, "rb").read() and result.conversion is None


def _cmyk(path):
    return _save(path, Image.fromarray(_pattern()).convert("CMYK"), "JPEG", quality=95)


def _grayscale(path):
    return _save(path, Image.fromarray(_pattern()).convert("L"), "JPEG", quality=95)


def _palette_png(path):
    image = Image.fromarray(_pattern()).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    return _save(path, image, "PNG")


def _png_named_jpg(path):
    return _save(path, Image.fromarray(_pattern()), "PNG")


def _gif(path):
    return _save(path, Image.fromarray(_pattern()).convert("P", palette=Image.Palette.ADAPTIVE, colors=16), "GIF")


_CONVERSIONS = {
    "cmyk_jpeg": (_cmyk, "CMYK pixels"),
    "grayscale_jpeg": (_grayscale, "grayscale pixels"),
    "palette_png": (_palette_png, "PNG data, palette pixels"),
    "png_named_jpg": (_png_named_jpg, "PNG data"),
    "gif_named_jpg": (_gif, "GIF data, palette pixels"),
}


@pytest.mark.parametrize("kind", sorted(_CONVERSIONS))
def test_other_images_are_reencoded_to_rgb_jpeg(tmp_path, kind):
    make, reason = _CONVERSIONS[kind]
    path = make(str(tmp_path / f"{kind}.jpg"))
    result = images.normalize_image(path)
    assert result.conversion == reason
    with Image.open(io.BytesIO(result.jpeg)) as decoded:
        assert (decoded.format, decoded.mode, decoded.size) == ("JPEG", "RGB", (64, 48))
    assert (result.height, result.width) == (48, 64)
    # same picture as PIL shows for the source file (JPEG loss aside)
    expected = np.asarray(Image.open(path).convert("RGB"), dtype=np.float64)
    assert np.abs(_decoded(result.jpeg) - expected).mean() < 12


def test_sixteen_bit_png_is_scaled_not_clipped(tmp_path):
    levels = np.tile(np.array([0, 16384, 32768, 65535], np.uint16).repeat(16), (32, 1))
    path = _save(str(tmp_path / "deep.jpg"), Image.fromarray(levels), "PNG")
    result = images.normalize_image(path)
    assert result.conversion == "PNG data, 16-bit pixels"
    means = _decoded(result.jpeg)[:, :, 0].reshape(32, 4, 16).mean(axis=(0, 2))
    np.testing.assert_allclose(means, [0, 64, 128, 255], atol=3)


def test_transparent_png_is_composited_on_white(tmp_path):
    rgba = np.zeros((20, 20, 4), np.uint8)
    rgba[:, :10] = (0, 0, 255, 255)  # opaque blue | fully transparent black
    path = _save(str(tmp_path / "alpha.png"), Image.fromarray(rgba), "PNG")
    pixels = _decoded(images.normalize_image(path).jpeg)
    assert pixels[:, 12:].mean() > 245 and pixels[:, :8, 2].mean() > 240


def test_exif_orientation_is_applied_and_reencoded(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: shown rotated 90 degrees clockwise
    path = _jpeg(str(tmp_path / "rotated.jpg"), height=48, width=64, exif=exif.tobytes())
    result = images.normalize_image(path)
    assert result.conversion == "EXIF orientation 6"
    assert (result.height, result.width) == (64, 48)  # upright size
    upright = np.asarray(ImageOps.exif_transpose(Image.open(path)), dtype=np.float64)
    assert np.abs(_decoded(result.jpeg) - upright).mean() < 12
    assert Image.open(io.BytesIO(result.jpeg)).getexif().get(0x0112) is None


def _truncated(path):
    data = open(_jpeg(path, height=120, width=160), "rb").read()
    open(path, "wb").write(data[: len(data) // 2])
    return path


def _empty(path):
    open(path, "wb").close()
    return path


def _text(path):
    open(path, "w").write("not an image at all\n")
    return path


_BAD = {
    "truncated_jpeg": (_truncated, "truncated image data"),
    "empty_file": (_empty, "empty file"),
    "missing_file": (lambda path: path, "missing file"),
    "text_named_jpg": (_text, "not an image format PIL can read"),
    "directory": (lambda path: os.makedirs(path) or path, "cannot read file (Is a directory)"),
}


@pytest.mark.parametrize("kind", sorted(_BAD))
def test_bad_files_raise_with_a_reason(tmp_path, kind):
    make, reason = _BAD[kind]
    path = make(str(tmp_path / f"{kind}.jpg"))
    with pytest.raises(images.BadImage) as raised:
        images.normalize_image(path)
    assert raised.value.reason == reason and raised.value.path == path


# --- writer -----------------------------------------------------------------

def test_parallel_and_inline_writers_agree_and_skip_bad_files(tmp_path):
    items = _items(str(tmp_path / "img"), 10)
    items[3] = ImageItem(str(tmp_path / "img" / "gone.jpg"), 0, "gone.jpg")
    items[7] = ImageItem(_cmyk(str(tmp_path / "img" / "cmyk.jpg")), 1, "cmyk.jpg")
    inline = write_split(items, str(tmp_path / "inline"), "train", 3, num_workers=1, progress=False)
    parallel = write_split(items, str(tmp_path / "parallel"), "train", 3, num_workers=2, progress=False)

    assert _shard_bytes(tmp_path / "inline") == _shard_bytes(tmp_path / "parallel")
    assert list(_shard_bytes(tmp_path / "inline")) == [f"train_0000{i}-of-00003.tfrecord" for i in range(3)]
    for summary in (inline, parallel):
        assert (summary.records, summary.skipped, summary.reencoded) == (9, 1, 1)
        assert summary.peak_worker_rss_mb > 0
    assert json.load(open(tmp_path / "inline" / "manifest.json")) == \
        json.load(open(tmp_path / "parallel" / "manifest.json"))

    # records in input order, contiguous per shard: items 0-2 | 3-5 | 6-9, minus the missing one
    labels = [f["image/class/label"][0] for name in sorted(_shard_bytes(tmp_path / "inline"))
              for f in read_examples(str(tmp_path / "inline" / name))]
    assert labels == [item.label for index, item in enumerate(items) if index != 3]
    report = manifest.load_report(str(tmp_path / "inline"))["train"]
    assert [(line["path"], line["reason"], line["shard"]) for line in report["skipped"]] == \
        [(items[3].path, "missing file", "train_00001-of-00003.tfrecord")]
    assert [line["conversion"] for line in report["reencoded"]] == ["CMYK pixels"]
    entry = manifest.load_manifest(str(tmp_path / "inline"))["splits"]["train"]
    assert entry["complete"] and entry["records"] == 9 and entry["num_inputs"] == 10
    assert entry["label_histogram"] == {"0": 3, "1": 3, "2": 3}


def test_strict_mode_stops_at_the_first_bad_file_and_leaves_no_partial_shard(tmp_path):
    items = _items(str(tmp_path / "img"), 6)
    items[4] = ImageItem(_empty(str(tmp_path / "img" / "empty.jpg")), 0)
    out = str(tmp_path / "out")
    with pytest.raises(UserError, match="empty.jpg: empty file"):
        write_split(items, out, "train", 2, num_workers=2, strict=True, progress=False)
    assert manifest.list_shard_files(out) in ([], ["train_00000-of-00002.tfrecord"])
    assert not [name for name in os.listdir(out) if ".tmp-" in name]


def test_a_worker_that_dies_stops_the_run_with_a_clear_error(tmp_path, monkeypatch):
    def die(path, quality, max_pixels):
        os._exit(9)  # as if killed for memory

    # fork, so the children inherit the patched function
    monkeypatch.setattr(writer, "_process_context", lambda: multiprocessing.get_context("fork"))
    monkeypatch.setattr(writer, "normalize_image", die)
    with pytest.raises(UserError, match="a worker process died"):
        write_split(_items(str(tmp_path / "img"), 4), str(tmp_path / "out"), "train", 2, num_workers=2,
                    progress=False)


def test_rerun_keeps_verified_shards_and_rewrites_the_rest(tmp_path):
    items = _items(str(tmp_path / "img"), 8)
    out = str(tmp_path / "out")
    write_split(items, out, "train", 4, num_workers=1, progress=False)
    reference = _shard_bytes(out)

    names = sorted(reference)
    os.remove(os.path.join(out, names[0]))
    with open(os.path.join(out, names[2]), "r+b") as shard:  # same size, one bit flipped
        shard.seek(100)
        byte = shard.read(1)
        shard.seek(100)
        shard.write(bytes([byte[0] ^ 1]))
    stem, _, suffix = names[3].partition(".")  # a killed writer's temporary (tfrecord_tools.atomic)
    open(os.path.join(out, f".{stem}.tmp-12345.{suffix}"), "wb").write(b"half a shard")

    summary = write_split(items, out, "train", 4, num_workers=1, progress=False)
    assert summary.shards_written == [names[0], names[2]]
    assert summary.shards_kept == [names[1], names[3]]
    assert _shard_bytes(out) == reference
    assert not [name for name in os.listdir(out) if ".tmp-" in name]


def test_a_different_conversion_of_a_split_starts_over(tmp_path):
    items = _items(str(tmp_path / "img"), 8)
    out = str(tmp_path / "out")
    write_split(items, out, "train", 4, num_workers=1, progress=False)
    write_split(items, out, "validation", 2, num_workers=1, progress=False)
    summary = write_split(items[:6], out, "train", 3, num_workers=1, progress=False)
    assert len(summary.shards_written) == 3
    assert manifest.list_shard_files(out, "train") == [f"train_0000{i}-of-00003.tfrecord" for i in range(3)]
    splits = manifest.load_manifest(out)["splits"]
    assert splits["train"]["records"] == 6 and splits["validation"]["records"] == 8
    assert verify.verify_dir(out) == ([], 14)


def test_shard_ranges_merge_into_one_manifest(tmp_path):
    items = _items(str(tmp_path / "img"), 9)
    whole, split = str(tmp_path / "whole"), str(tmp_path / "split")
    write_split(items, whole, "train", 3, num_workers=1, metadata={"run": 1}, progress=False)
    write_split(items, split, "train", 3, shard_range=(2, 3), num_workers=1, metadata={"run": 1}, progress=False)
    entry = manifest.load_manifest(split)["splits"]["train"]
    assert not entry["complete"] and list(entry["shards"]) == ["train_00002-of-00003.tfrecord"]
    problems, _ = verify.verify_dir(split)
    assert [name for name, _ in problems] == ["train_00000-of-00003.tfrecord", "train_00001-of-00003.tfrecord"]

    write_split(items, split, "train", 3, shard_range=(0, 2), num_workers=2, metadata={"run": 1}, progress=False)
    assert _shard_bytes(split) == _shard_bytes(whole)
    assert open(os.path.join(split, "manifest.json")).read() == open(os.path.join(whole, "manifest.json")).read()


def test_parts_written_on_separate_machines_merge(tmp_path, capsys):
    items = _items(str(tmp_path / "img"), 9)
    whole, first, second = (str(tmp_path / name) for name in ("whole", "first", "second"))
    items[4] = ImageItem(str(tmp_path / "img" / "gone.jpg"), 1, "gone.jpg")
    write_split(items, whole, "train", 3, num_workers=1, progress=False)
    write_split(items, first, "train", 3, shard_range=(0, 2), num_workers=1, progress=False)
    write_split(items, second, "train", 3, shard_range=(2, 3), num_workers=1, progress=False)

    assert merge.main([str(tmp_path / "merged"), first, second]) == 0
    assert capsys.readouterr().out == "train: 3 of 3 shards (complete)\n"
    merged = str(tmp_path / "merged")
    for name in ("manifest.json", "conversion_report.json"):
        assert open(os.path.join(merged, name)).read() == open(os.path.join(whole, name)).read()
    assert _shard_bytes(merged) == _shard_bytes(whole)

    assert merge.merge_dirs(second, [first, second]) == {"train": 3}  # into one of the parts
    assert _shard_bytes(second) == _shard_bytes(whole)

    other = str(tmp_path / "other")
    write_split(items[:6], other, "train", 3, num_workers=1, progress=False)
    with pytest.raises(UserError, match="comes from a different conversion"):
        merge.merge_dirs(merged, [other])
    with open(os.path.join(first, "train_00000-of-00003.tfrecord"), "ab") as shard:
        shard.write(b"junk")
    with pytest.raises(UserError, match="train_00000-of-00003.tfrecord is missing or does not match"):
        merge.merge_dirs(str(tmp_path / "again"), [first])


def test_an_unreadable_manifest_is_a_user_error(tmp_path):
    items = _items(str(tmp_path / "img"), 2)
    out = str(tmp_path / "out")
    write_split(items, out, "train", 1, num_workers=1, progress=False)
    open(os.path.join(out, "manifest.json"), "w").write("{not json")
    with pytest.raises(UserError, match="manifest.json is not valid JSON"):
        write_split(items, out, "train", 1, num_workers=1, progress=False)


@pytest.mark.parametrize("num_shards, shard_range, message", [
    (0, None, "at least 1"),
    (5, None, "cannot write 5 shards from 4 images"),
    (2, (1, 1), "shard range 1:1"),
    (2, (0, 3), "shard range 0:3"),
])
def test_impossible_requests_are_user_errors(tmp_path, num_shards, shard_range, message):
    with pytest.raises(UserError, match=message):
        write_split(_items(str(tmp_path / "img"), 4), str(tmp_path / "out"), "train", num_shards,
                    shard_range=shard_range, progress=False)


def test_unwritable_output_is_a_user_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(UserError, match="cannot write to output folder"):
        write_split(_items(str(tmp_path / "img"), 2), str(blocker / "out"), "train", 1, progress=False)


# --- verify and inspect -----------------------------------------------------

@pytest.fixture
def written(tmp_path):
    """A folder with 2 train shards (6 images, 2 classes) and 1 validation shard."""
    items = _items(str(tmp_path / "img"), 6, labels=2)
    out = str(tmp_path / "out")
    write_split(items, out, "train", 2, num_workers=1, progress=False)
    write_split(items[:3], out, "validation", 1, num_workers=1, progress=False)
    return out


def test_verify_accepts_a_sound_folder(written, capsys):
    assert verify.main([written]) == 0
    assert capsys.readouterr().out.strip() == f"OK {written}: 9 records"


def test_verify_names_a_corrupted_shard_and_exits_nonzero(written, capsys):
    name = "train_00001-of-00002.tfrecord"
    path = os.path.join(written, name)
    data = bytearray(open(path, "rb").read())
    data[len(data) // 2] ^= 0x40
    open(path, "wb").write(bytes(data))
    with pytest.raises(SystemExit) as exited:
        verify.main([written])
    assert exited.value.code == 1
    assert capsys.readouterr().out.splitlines() == [
        f"BAD {name}: record 1 at byte {_record_offset(path, 1)}: data CRC mismatch",
        f"NOT OK {written}: 1 problem(s), 7 records read"]


def _record_offset(path, index):
    sizes = [16 + len(data) for data in iter_records(path, check_crc=False)]
    return sum(sizes[:index])


def test_verify_reports_missing_and_unlisted_shards(written, capsys):
    os.remove(os.path.join(written, "validation_00000-of-00001.tfrecord"))
    _jpeg(os.path.join(written, "extra.jpg"))
    os.replace(os.path.join(written, "extra.jpg"), os.path.join(written, "train_00000-of-00009.tfrecord"))
    problems, _ = verify.verify_dir(written)
    assert dict(problems) == {"validation_00000-of-00001.tfrecord": "file is missing",
                              "train_00000-of-00009.tfrecord": "shard file not listed in the manifest"}


def test_verify_without_manifest_checks_records(written):
    os.remove(os.path.join(written, "manifest.json"))
    assert verify.verify_dir(written) == ([], 9)
    assert check_shard(os.path.join(written, "train_00000-of-00002.tfrecord")).records == 3


def test_verify_and_inspect_reject_a_missing_folder(tmp_path):
    for command in (verify.main, inspect.main):
        with pytest.raises(SystemExit) as exited:
            command([str(tmp_path / "nowhere")])
        assert exited.value.code == 2


def test_inspect_prints_counts_histogram_and_samples(written, capsys):
    assert inspect.main([written, "--samples", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == (f"{written}  (counts from manifest.json, trusted: shard sizes checked, not their bytes; "
                        f"python -m tfrecord_tools.verify reads every byte)")
    assert lines[1] == "train: 2 shard files, 6 records, 2 classes"
    assert lines[2] == "  labels: 0: 3, 1: 3"
    assert lines[3] == ("  sample train_00000-of-00002.tfrecord[0]: label 0 (class0), 0.jpg, "
                        "stored 64x48, decodes to 64x48 RGB")
    assert lines[4] == "validation: 1 shard files, 3 records, 2 classes"
    os.remove(os.path.join(written, "manifest.json"))
    text = inspect.inspect_dir(written, samples=0)
    assert "reading every record, each checked" in text and "train: 2 shard files, 6 records, 2 classes" in text


def test_inspect_says_what_it_trusts_and_checks_what_it_reads(written, capsys):
    """A flipped byte in a record the manifest vouches for and inspect does not read passes (the first line
    says the counts are trusted); once the manifest is gone inspect reads, and names, it."""
    name = "train_00000-of-00002.tfrecord"
    data = bytearray(open(os.path.join(written, name), "rb").read())
    data[len(data) - 100] ^= 0x40  # inside the shard's last record
    open(os.path.join(written, name), "wb").write(bytes(data))
    assert inspect.main([written, "--samples", "1"]) == 0
    assert "trusted: shard sizes checked, not their bytes" in capsys.readouterr().out.splitlines()[0]
    os.remove(os.path.join(written, "manifest.json"))
    with pytest.raises(SystemExit) as exited:
        inspect.main([written, "--samples", "1"])
    assert exited.value.code == 1
    assert f"BAD {name}: record 2 at byte " in capsys.readouterr().out


def _folder_state(folder):
    """{relative path: bytes} of every file under `folder` (to show a command left it untouched)."""
    state = {}
    for root, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(root, name)
            state[os.path.relpath(path, folder)] = open(path, "rb").read()
    return state


def _truncate(path, keep=0.6):
    data = open(path, "rb").read()
    open(path, "wb").write(data[:int(len(data) * keep)])


def test_verify_without_manifest_flags_an_incomplete_shard_set(written, capsys):
    os.remove(os.path.join(written, "manifest.json"))
    os.remove(os.path.join(written, "train_00001-of-00002.tfrecord"))
    before = _folder_state(written)
    problems, records = verify.verify_dir(written)
    assert problems == [("train_00001-of-00002.tfrecord",
                         "file is missing: only 1 of the 2 train shards are here (no manifest.json to say more)")]
    assert records == 6
    with pytest.raises(SystemExit) as exited:
        verify.main([written])
    assert exited.value.code == 1
    assert capsys.readouterr().out.splitlines()[-1].startswith(f"NOT OK {written}: 1 problem(s)")
    assert _folder_state(written) == before
    assert "(incomplete: 1 of 2 present)" in inspect.inspect_dir(written, samples=0)


def test_verify_says_not_ok_when_every_image_was_skipped(tmp_path, capsys):
    bad = [ImageItem(_save(str(tmp_path / "img" / f"{i}.jpg"), Image.new("RGB", (4, 4)), "PNG")[:-4] + ".txt", 0)
           for i in range(2)]
    for item in bad:
        open(item.path, "w").write("not an image")
    out = str(tmp_path / "out")
    summary = write_split(bad, out, "train", 2, num_workers=1, progress=False)
    assert (summary.records, summary.skipped, summary.split_records) == (0, 2, 0)
    assert verify.verify_dir(out)[0] == [
        ("train", "no records in its shards: every image was skipped (reasons in conversion_report.json)")]
    with pytest.raises(SystemExit) as exited:
        verify.main([out])
    assert exited.value.code == 1 and "NOT OK" in capsys.readouterr().out
    os.remove(os.path.join(out, "manifest.json"))
    assert verify.verify_dir(out) == ([("train", "no records in its shards")], 0)


def test_split_records_counts_the_whole_split(tmp_path):
    items = _items(str(tmp_path / "img"), 6)
    out = str(tmp_path / "out")
    write_split(items, out, "train", 3, shard_range=(0, 1), num_workers=1, progress=False)
    summary = write_split(items, out, "train", 3, shard_range=(1, 3), num_workers=1, progress=False)
    assert (summary.records, summary.split_records) == (4, 6)


def _flip_first_record_byte(path):
    data = bytearray(open(path, "rb").read())
    data[40] ^= 0x40
    open(path, "wb").write(bytes(data))


@pytest.mark.parametrize("with_manifest, damage, expected", [
    (False, _truncate, "record 1 at byte 1168: truncated data"),
    (True, _truncate, "size "),
    (True, _flip_first_record_byte, "record 0 at byte 0: data CRC mismatch"),
])
def test_inspect_reports_a_bad_shard_as_verify_does(written, capsys, with_manifest, damage, expected):
    if not with_manifest:
        os.remove(os.path.join(written, "manifest.json"))
    name = "train_00000-of-00002.tfrecord"
    damage(os.path.join(written, name))
    before = _folder_state(written)
    bad_line = next(f"BAD {shard}: {problem}" for shard, problem in verify.verify_dir(written)[0] if shard == name)
    with pytest.raises(SystemExit) as exited:
        inspect.main([written])
    assert exited.value.code == 1
    out = capsys.readouterr().out.splitlines()
    assert bad_line in out and bad_line.startswith(f"BAD {name}: {expected}")
    assert out[-1].startswith(f"NOT OK {written}: 1 unreadable shard(s)")
    assert _folder_state(written) == before


def test_a_failed_merge_writes_nothing(tmp_path, monkeypatch):
    items = _items(str(tmp_path / "img"), 9)
    first, second = str(tmp_path / "first"), str(tmp_path / "second")
    write_split(items, first, "train", 3, shard_range=(0, 2), num_workers=1, progress=False)
    write_split(items, second, "train", 3, shard_range=(2, 3), num_workers=1, progress=False)
    with open(os.path.join(second, "train_00002-of-00003.tfrecord"), "ab") as shard:
        shard.write(b"junk")
    new = str(tmp_path / "merged")
    with pytest.raises(UserError, match="train_00002-of-00003.tfrecord is missing or does not match"):
        merge.merge_dirs(new, [first, second])
    assert sorted(os.listdir(tmp_path)) == ["first", "img", "second"]  # no output, no temporary

    before = _folder_state(first)
    with pytest.raises(UserError, match="does not match"):
        merge.merge_dirs(first, [second])  # into an existing folder
    assert _folder_state(first) == before

    write_split(items, second, "train", 3, shard_range=(2, 3), num_workers=1, progress=False)  # repaired
    copies = []

    def copy_then_fail(source, destination):
        if copies:
            raise OSError(28, "No space left on device")
        copies.append(destination)
        open(destination, "wb").write(open(source, "rb").read())

    monkeypatch.setattr(merge.shutil, "copyfile", copy_then_fail)
    with pytest.raises(OSError, match="No space left on device"):  # a fault of the machine: exit 75 in the CLI
        merge.merge_dirs(new, [first, second])
    assert copies and sorted(os.listdir(tmp_path)) == ["first", "img", "second"]

    monkeypatch.undo()
    monkeypatch.setattr(manifest, "save_manifest", lambda *args: copy_then_fail(None, None))
    with pytest.raises(OSError, match="No space left"):
        merge.merge_dirs(first, [second])  # a shard and the report written, the manifest fails
    assert _folder_state(first) == before



@pytest.mark.parametrize("args, message", [
    (["tfrecord_tools.inspect", "{out}", "--samples", "-1"], "--samples: must be an integer of at least 0"),
    (["tfrecord_tools.inspect", "{out}", "--samples", "two"], "--samples: invalid non_negative_int value"),
    (["tfrecord_tools.verify", "{out}/nowhere"], "does not exist"),
    (["tfrecord_tools.merge", "{out}/merged", "{out}/nowhere"], "folder {out}/nowhere does not exist"),
    (["tfrecord_tools.merge", "{out}/merged", "{out}"], "has no manifest.json"),
])
def test_tool_misuse_is_one_line_and_exit_2(tmp_path, args, message):
    out = str(tmp_path)
    open(tmp_path / "train_00000-of-00001.tfrecord", "wb").close()
    before = _folder_state(out)
    code, stdout, stderr, _ = run_cli(*[arg.format(out=out) for arg in args])
    assert code == 2 and stdout == ""
    *usage, error = stderr.strip().splitlines()  # argparse's usage block, then the one error line
    assert "Traceback" not in stderr and all(line.startswith(("usage:", " ")) for line in usage)
    assert ": error: " in error
    assert message.format(out=out) in error
    assert _folder_state(out) == before


@pytest.mark.parametrize("module", ["tfrecord_tools.inspect", "tfrecord_tools.verify", "tfrecord_tools.merge"])
def test_help_is_fast_quiet_and_shows_defaults(module):
    code, stdout, stderr, _ = run_cli(module, "--help")
    assert code == 0 and stderr == "", stderr
    assert frameworks_imported(module, "--help") == set()
    assert "usage:" in stdout
    if module == "tfrecord_tools.inspect":
        assert "(default: 2)" in " ".join(stdout.split())

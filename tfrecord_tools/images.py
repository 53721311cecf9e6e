"""Image normaliser: any image file -> RGB JPEG bytes plus its height and width.

    image = normalize_image("birds/0001.jpg")
    image.jpeg, image.height, image.width   # bytes, int, int
    image.conversion                        # None: bytes passed through untouched;
                                            # else why it was re-encoded, e.g. 'CMYK JPEG'

Rules, in order:

- A missing, unreadable or empty file, data that is not an image, or image data
  that is truncated or corrupt raises `BadImage` with a short `reason`; the
  writer skips and reports such files (or stops, in strict mode). So does an
  image whose header declares more pixels (width x height) than the budget
  `max_pixels` (`DEFAULT_MAX_PIXELS`, 100 million: ten times the largest
  photographs of the FGVC datasets), checked before anything is decoded or
  passed through: a header that claims 50,000 x 50,000 pixels costs no
  memory here, and none later in a reader that would decode it.
- A JPEG whose pixels are 8-bit RGB (baseline or progressive, any chroma
  subsampling) and whose EXIF orientation is absent or 1 passes through
  byte for byte. Its size comes from the JPEG header (a scan of its markers;
  PIL's lazy header read for anything unusual), so it is never decoded. The
  one exception: a file that does not end with the JPEG end-of-image marker
  is decoded once to tell a truncated file (bad) from one with trailing bytes
  (kept as is).
- Everything else is decoded and re-encoded as RGB JPEG at `quality` (95):
  CMYK and grayscale JPEG; PNG, GIF, BMP, TIFF, WebP ... whatever the file
  name says; palette images; 16-bit images (scaled from 0..65535 to 0..255,
  not clipped); images with transparency (composited on white, because
  dropping alpha exposes the arbitrary colour of transparent pixels).
- EXIF orientation: an image whose EXIF orientation tag is 2..8 is rotated /
  flipped to its upright view and re-encoded without the tag. TensorFlow's
  JPEG decoder ignores EXIF, PIL users usually apply it, browsers do; after
  this step every reader sees the same upright pixels and the stored
  height/width are those of what is shown.

Corruption inside the entropy-coded data of a JPEG that still ends with its
end-of-image marker is not detected: that would need a full decode of every
image, which is what this module exists to avoid.
"""
import io
import warnings
from collections import namedtuple

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

NormalizedImage = namedtuple("NormalizedImage", "jpeg height width conversion")
NormalizedImage.__doc__ = ("`jpeg`: RGB JPEG bytes; `height`, `width`: pixels; `conversion`: None when "
                           "the file's bytes passed through, else why they were re-encoded.")

DEFAULT_QUALITY = 95
DEFAULT_MAX_PIXELS = 100_000_000
_EXIF_ORIENTATION = 0x0112
_PLAIN_SOF = (0xC0, 0xC1, 0xC2)  # baseline, extended sequential, progressive (Huffman)
_OTHER_SOF = (0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF)
_JPEG_FORMATS = ("JPEG", "MPO")  # MPO: camera multi-picture files, a JPEG followed by extra frames
_SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")
_ALPHA_MODES = ("RGBA", "LA", "PA", "La", "RGBa")
_MODE_NAMES = {"L": "grayscale", "1": "1-bit", "P": "palette", "CMYK": "CMYK", "LA": "grayscale+alpha",
               "RGBA": "RGBA", "I;16": "16-bit", "I;16B": "16-bit", "I;16L": "16-bit", "I": "16/32-bit",
               "F": "float", "YCbCr": "YCbCr", "LAB": "Lab", "HSV": "HSV"}


class BadImage(Exception):
    """A file that cannot become a training image; `reason` says why in a few words."""

    def __init__(self, path, reason):
        super().__init__(path, reason)  # both in args, so it pickles across processes
        self.path = path
        self.reason = reason

    def __str__(self):
        return f"{self.path}: {self.reason}"


def normalize_image(path, quality=DEFAULT_QUALITY, max_pixels=DEFAULT_MAX_PIXELS):
    """Read the image file `path` and return a `NormalizedImage` (see the module
    docstring for what passes through and what is re-encoded). Raises
    `BadImage` for files that cannot be used."""
    data = _read_bytes(path)
    size = _plain_jpeg_size(data) if _ends_with_jpeg_eoi(data) else None
    if size is not None:
        _check_budget(path, *size, max_pixels)
        return NormalizedImage(data, size[0], size[1], None)
    with warnings.catch_warnings():
        # PIL warns about odd EXIF or metadata; the image itself is judged below.
        warnings.simplefilter("ignore")
        try:
            image = Image.open(io.BytesIO(data))
        except UnidentifiedImageError:
            raise BadImage(path, "not an image format PIL can read") from None
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
            raise BadImage(path, f"unreadable image header ({error})") from None
        with image:
            _check_budget(path, image.height, image.width, max_pixels)
            conversion = _conversion_needed(image)
            if conversion is None:
                if not _ends_with_jpeg_eoi(data):
                    _decode(path, image)
                return NormalizedImage(data, image.height, image.width, None)
            rgb = _to_rgb(path, image)
            out = io.BytesIO()
            rgb.save(out, "JPEG", quality=quality)
            return NormalizedImage(out.getvalue(), rgb.height, rgb.width, conversion)


def pixel_budget_problem(height, width, max_pixels=DEFAULT_MAX_PIXELS):
    """None when an image of `height` x `width` fits the budget, else why not (a few words)."""
    if height * width <= max_pixels:
        return None
    return f"declares {width}x{height} pixels, more than the budget of {max_pixels:,} (--max_pixels)"


def header_size(data):
    """(height, width) that the header of the image bytes `data` declares,
    read without decoding (a marker scan for plain JPEGs, else PIL's lazy
    open). Raises OSError, SyntaxError or ValueError when unreadable, and
    PIL's `Image.DecompressionBombError` for sizes far beyond PIL's limit."""
    size = _plain_jpeg_size(data)
    if size is not None:
        return size
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with Image.open(io.BytesIO(data)) as image:
            return image.height, image.width


def _check_budget(path, height, width, max_pixels):
    problem = pixel_budget_problem(height, width, max_pixels)
    if problem:
        raise BadImage(path, problem)


def _read_bytes(path):
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        raise BadImage(path, "missing file") from None
    except OSError as error:
        raise BadImage(path, f"cannot read file ({error.strerror or error})") from None
    if not data:
        raise BadImage(path, "empty file")
    return data


def _plain_jpeg_size(data):
    """(height, width) of `data` when its markers alone show an 8-bit,
    3-component baseline or progressive JPEG with no EXIF orientation other
    than 1 (it can pass through); None for anything else or anything unusual,
    which then goes the PIL way. Several times faster than PIL's header parse,
    and this runs once per image."""
    if not data.startswith(b"\xff\xd8"):
        return None
    position, size = 2, None
    while position + 4 <= len(data):
        if data[position] != 0xFF:
            return None
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte before a marker
            position += 1
            continue
        if marker == 0xDA:  # start of scan: every header segment has been seen
            return size
        length = int.from_bytes(data[position + 2:position + 4], "big")
        segment = data[position + 4:position + 2 + length]
        if length < 2 or len(segment) != length - 2:
            return None
        if marker in _PLAIN_SOF:
            if length != 17 or segment[0] != 8 or segment[5] != 3:  # 8-bit, 3 components
                return None
            size = (int.from_bytes(segment[1:3], "big"), int.from_bytes(segment[3:5], "big"))
            if 0 in size:
                return None
        elif marker in _OTHER_SOF:  # lossless, hierarchical, arithmetic: let PIL judge
            return None
        elif marker == 0xE1 and segment.startswith(b"Exif\x00\x00") and _tiff_orientation(segment[6:]) != 1:
            return None
        position += 2 + length
    return None


def _tiff_orientation(tiff):
    """The orientation tag of a TIFF (EXIF) block's first directory: 1 when
    absent, None when the block cannot be read."""
    order = {b"II": "little", b"MM": "big"}.get(tiff[:2])
    if order is None or len(tiff) < 8:
        return None
    directory = int.from_bytes(tiff[4:8], order)
    count = int.from_bytes(tiff[directory:directory + 2], order)
    entries = tiff[directory + 2:directory + 2 + 12 * count]
    if len(entries) != 12 * count:
        return None
    for start in range(0, len(entries), 12):
        if int.from_bytes(entries[start:start + 2], order) == _EXIF_ORIENTATION:
            return int.from_bytes(entries[start + 8:start + 10], order)  # SHORT, left-aligned
    return 1


def _conversion_needed(image):
    """None when `image` (opened, not decoded) can pass through as it is, else
    a few words saying why it must be re-encoded."""
    reasons = []
    if image.format not in _JPEG_FORMATS:
        reasons.append(f"{image.format or 'unknown'} data")
    if image.mode != "RGB":
        reasons.append(f"{_MODE_NAMES.get(image.mode, image.mode)} pixels")
    orientation = _exif_orientation(image)
    if orientation not in (None, 1):
        reasons.append(f"EXIF orientation {orientation}")
    return ", ".join(reasons) or None


def _exif_orientation(image):
    if "exif" not in image.info:  # PIL keeps a JPEG's raw EXIF block here: no block, no tag to parse
        return None
    try:
        return image.getexif().get(_EXIF_ORIENTATION)
    except Exception:  # noqa: BLE001 -- corrupt EXIF must not drop an otherwise good image
        return None


def _ends_with_jpeg_eoi(data):
    # Some encoders pad after the end-of-image marker with zeros or newlines.
    return data.rstrip(b"\x00\r\n ").endswith(b"\xff\xd9")


def _decode(path, image):
    try:
        image.load()
    except OSError as error:
        message = str(error)
        reason = "truncated image data" if "truncated" in message else f"corrupt image data ({message})"
        raise BadImage(path, reason) from None
    except (SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise BadImage(path, f"corrupt image data ({error})") from None


def _to_rgb(path, image):
    """Decode `image` and return it as an upright 8-bit RGB PIL image."""
    _decode(path, image)
    image = ImageOps.exif_transpose(image)
    if image.mode in _SIXTEEN_BIT_MODES:
        pixels = np.asarray(image, dtype=np.float64) * (255.0 / 65535.0)
        return Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8), "L").convert("RGB")
    if image.mode in _ALPHA_MODES or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")

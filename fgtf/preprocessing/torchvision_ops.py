"""torchvision's transforms of PIL images as TensorFlow ops: the pieces the
seeds' pipelines (`fgtf.preprocessing.seeds`) are made of.

Images are [height, width, 3] tensors of 8-bit values (0..255): uint8 as
decoded, float32 after a resize. PIL works on 8-bit images, so every op
that makes new values rounds (or, where PIL truncates, floors) them as PIL
does, and the next op sees what it would have seen. `finish` (brightness,
flip, normalisation in one XLA-fused pass) ends a pipeline.

What was matched, and how (tests/test_seed_preprocessing.py compares each
op with torchvision + PIL on JPEGs of odd sizes):
* decoding: libjpeg's accurate integer IDCT (`dct_method="INTEGER_ACCURATE"`),
  PIL's; TF's default (fast IDCT) differs by about one grey level;
* resizing: PIL's own resampling (`resize`), its coefficients and its
  8-bit rounding after each pass, as banded matrix products (TF's
  `tf.image.resize(antialias=True)` computes the same filters two to four
  times slower); crops after a resize compute only the crop;
* output sizes and crop offsets as torchvision computes them in Python
  (`int()` truncation, `round()` half to even);
* rotation and shears: PIL's affine transform with nearest-neighbour
  sampling reads input pixel floor(M (x + 1/2, y + 1/2)) for output pixel
  (x, y), and black outside the image;
* random draws: the same distributions as torchvision's (10 tries of
  RandomResizedCrop before its centre fallback, ...), drawn from a
  stateless seed; every draw can be given instead, which is how the ops are
  compared with the original.
"""
import math

import tensorflow as tf

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# torchvision RandomResizedCrop's defaults
RESIZED_CROP_RATIO = (3.0 / 4.0, 4.0 / 3.0)
RESIZED_CROP_TRIES = 10


def decode_rgb(encoded):
    """Encoded JPEG/PNG/GIF/BMP bytes -> uint8 [H, W, 3], as
    `PIL.Image.open(f).convert("RGB")` gives them."""
    def jpeg():
        return tf.io.decode_jpeg(encoded, channels=3, dct_method="INTEGER_ACCURATE")

    def other():
        return tf.io.decode_image(encoded, channels=3, expand_animations=False)

    image = tf.cond(tf.io.is_jpeg(encoded), jpeg, other)
    image.set_shape([None, None, 3])
    return image


def resize(image, height, width, method="bilinear", window=None):
    """PIL's `image.resize((width, height), method)` (torchvision's Resize of
    a PIL image), or only its `window` (top, left, rows, columns): float32
    8-bit values.

    As Pillow 13 computes it: per axis, output sample i reads the input
    around (i + 1/2) * scale with the filter (bilinear: triangle, bicubic:
    cubic a = -0.5) widened by the scale when shrinking (antialiasing), its
    weights cut at the borders, renormalised and held in fixed point; one
    pass per axis, each rounded to 8 bits, the horizontal one first unless
    the height shrinks by more than twice as many pixels as the width. Each
    pass is a matrix product: outputs in blocks of `_BLOCK`, each block a
    dense (block, span) band of weights times the input lines it spans; a
    bilinear axis that grows is TF's own resize, which weighs the same."""
    shape = tf.shape(image)
    in_height, in_width = shape[0], shape[1]
    window = window if window is not None else (0, 0, height, width)
    static_shape = [size if isinstance(size, int) else None for size in window[2:]] + [3]
    top, left, rows, columns = (tf.cast(v, tf.int32) for v in window)
    row_band = _band(in_height, height, top, rows, method)
    column_band = _band(in_width, width, left, columns, method)

    def horizontal_first():
        # only the input rows the vertical pass reads go through the horizontal one
        part, row_band_of_part = _lines_read(image, row_band)
        wide = _transposed(_resample_lines(_transposed(part), column_band, columns))
        return _resample_lines(wide, row_band_of_part, rows)

    def vertical_first():
        # only the input columns the horizontal pass reads go through the vertical one
        part, column_band_of_part = _lines_read(_transposed(image), column_band)
        tall = _transposed(_resample_lines(_transposed(part), row_band, rows))
        return _transposed(_resample_lines(tall, column_band_of_part, columns))

    # Growing, PIL's bilinear triangle is not widened: TF's bilinear resize weighs the same two pixels alike and
    # clamps at the borders as PIL renormalises. Both axes growing, it rounds once, not after each pass (at most
    # 1 grey level); one axis growing, PIL shrinks the other first, as here.
    def grown():
        full = _grown_bilinear(image, height, width)
        return _eight_bit(full[top:top + rows, left:left + columns])

    def wider_after_rows():
        tall = _resample_lines(image, row_band, rows)
        return _transposed(_eight_bit(_grown_bilinear(_transposed(tall), width, rows)[left:left + columns]))

    def taller_after_columns():
        wide = _transposed(_resample_lines(_transposed(image), column_band, columns))
        return _eight_bit(_grown_bilinear(wide, height, columns)[top:top + rows])

    def resampled():
        shrink = in_height - height
        return tf.cond((shrink > 0) & (shrink > 2 * (in_width - width)), vertical_first, horizontal_first)

    if method == "bilinear":
        taller, wider = height >= in_height, width >= in_width
        out = tf.case([(taller & wider, grown), (wider, wider_after_rows), (taller, taller_after_columns)],
                      default=resampled, exclusive=False)
    else:
        out = resampled()
    return tf.ensure_shape(out, static_shape)


def shorter_side_size(height, width, size):
    """(new height, new width) of torchvision's `Resize(size)`: the shorter
    side becomes `size`, the longer `int(size * longer / shorter)`."""
    short, long = tf.minimum(height, width), tf.maximum(height, width)
    new_long = tf.cast(tf.math.floor(tf.cast(size * long, tf.float64) / tf.cast(short, tf.float64)), tf.int32)
    portrait = width <= height
    return tf.where(portrait, new_long, size), tf.where(portrait, size, new_long)


def center_window(height, width, size):
    """(top, left, size, size) of torchvision's `CenterCrop(size)` of a height x
    width image at least `size` on each side: the corner at `round((side -
    size) / 2)` (half to even, as Python's round)."""
    top = tf.cast(tf.round(tf.cast(height - size, tf.float64) / 2.0), tf.int32)
    left = tf.cast(tf.round(tf.cast(width - size, tf.float64) / 2.0), tf.int32)
    return top, left, size, size


def resize_shorter_side_center_crop(image, size, crop_size, method="bilinear"):
    """torchvision's `Resize(size)` then `CenterCrop(crop_size)`, computing only the crop."""
    shape = tf.shape(image)
    height, width = shorter_side_size(shape[0], shape[1], size)
    return resize(image, height, width, method, window=center_window(height, width, crop_size))


def crop(image, top, left, height, width):
    """`image[top:top + height, left:left + width]` (PIL's `crop` box (left, top, right, bottom))."""
    begin = tf.cast(tf.stack([top, left, 0]), tf.int32)
    return tf.slice(image, begin, tf.cast(tf.stack([height, width, 3]), tf.int32))


def flip(image, flipped):
    """Mirror left-right when the boolean tensor `flipped` is true (RandomHorizontalFlip)."""
    return tf.where(flipped, tf.reverse(image, axis=[1]), image)


def normalize(image, mean=IMAGENET_MEAN, std=IMAGENET_STD):
    """torchvision's ToTensor then Normalize(mean, std), channels last: (x / 255 - mean) / std."""
    scale = 1.0 / (255.0 * tf.constant(std, tf.float32))
    return tf.cast(image, tf.float32) * scale - tf.constant(mean, tf.float32) / tf.constant(std, tf.float32)


@tf.function(jit_compile=True)
def finish(image, flipped, brightness):
    """The elementwise end of a seed's pipeline in one XLA-fused pass: PIL's
    brightness blend (`adjust_brightness`; a factor of 1 changes nothing),
    the flip when `flipped`, ImageNet normalisation. Brightness commutes
    with the flip and with nearest-neighbour rotation (black stays black),
    so it may come after them."""
    return normalize(flip(adjust_brightness(image, brightness), flipped))


def random_crop_corner(height, width, size, seed):
    """(top, left) of torchvision's `RandomCrop(size)`: uniform integers in
    [0, height - size] and [0, width - size]."""
    top_seed, left_seed = _split(seed, 2)
    return _uniform_int(height - size + 1, top_seed), _uniform_int(width - size + 1, left_seed)


def resized_crop_box(height, width, scale, ratio=RESIZED_CROP_RATIO, seed=None, draws=None):
    """(top, left, box height, box width) int32 of torchvision's
    `RandomResizedCrop.get_params`: per try an area share ~ U(scale) and log
    aspect (width / height) ~ U(log ratio), w = round(sqrt(area * aspect)),
    h = round(sqrt(area / aspect)); the first try that fits is placed
    uniformly; when none of the 10 fits, the centre crop of the image clamped
    to the ratio range. `draws`: (area shares [10], log aspects [10], top and
    left uniforms in [0, 1)) given instead of drawing them from `seed`."""
    from fgtf.preprocessing.cle import erase_box_size

    if draws is None:
        area_seed, aspect_seed, top_seed, left_seed = _split(seed, 4)
        draws = (tf.random.stateless_uniform([RESIZED_CROP_TRIES], area_seed, *scale),
                 tf.random.stateless_uniform([RESIZED_CROP_TRIES], aspect_seed, math.log(ratio[0]),
                                             math.log(ratio[1])),
                 tf.random.stateless_uniform([], top_seed), tf.random.stateless_uniform([], left_seed))
    shares, log_aspects, top_draw, left_draw = draws
    # RandomErasing's box size is the same arithmetic with the aspect read as height / width
    box_w, box_h = erase_box_size(height, width, shares, log_aspects)
    fits = (box_w > 0) & (box_w <= width) & (box_h > 0) & (box_h <= height)
    first = tf.argmax(tf.cast(fits, tf.int32), output_type=tf.int32)
    found = tf.reduce_any(fits)
    fallback_h, fallback_w = _ratio_clamped_size(height, width, ratio)
    box_h = tf.where(found, box_h[first], fallback_h)
    box_w = tf.where(found, box_w[first], fallback_w)
    top = tf.where(found, _scaled_int(top_draw, height - box_h + 1), (height - box_h) // 2)
    left = tf.where(found, _scaled_int(left_draw, width - box_w + 1), (width - box_w) // 2)
    return top, left, box_h, box_w


def resized_crop(image, box, size, method="bilinear"):
    """The `box` (top, left, height, width) of `image` resized to size x size
    (torchvision's `resized_crop`)."""
    return resize(crop(image, *box), size, size, method)


def rotate(image, degrees, fill=0, window=None):
    """PIL's `image.rotate(degrees)` (counter-clockwise, about the centre
    (width / 2, height / 2), same size, nearest neighbour, `fill` outside),
    as torchvision's RandomRotation and SAM's Rotate call it; or only its
    `window` (top, left, rows, columns)."""
    shape = tf.shape(image)
    angle = -tf.cast(degrees, tf.float64) * (math.pi / 180.0)
    # PIL rounds the matrix to 15 decimals
    cos, sin = _round15(tf.cos(angle)), _round15(tf.sin(angle))
    center_x, center_y = tf.cast(shape[1], tf.float64) / 2.0, tf.cast(shape[0], tf.float64) / 2.0
    matrix = [cos, sin, center_x - cos * center_x - sin * center_y,
              -sin, cos, center_y + sin * center_x - cos * center_y]
    return affine(image, matrix, fill, window)


def affine(image, matrix, fill=0, window=None):
    """PIL's `image.transform(size, AFFINE, matrix)` with nearest-neighbour
    sampling: output pixel (x, y) is input pixel floor(a (x + 1/2) + b (y + 1/2)
    + c), floor(d (x + 1/2) + e (y + 1/2) + f) for `matrix` (a, b, c, d, e, f),
    `fill` where that lies outside; or only the `window` (top, left, rows,
    columns) of the output. A gather of the input's pixels."""
    shape = tf.shape(image)
    height, width = shape[0], shape[1]
    top, left, rows, columns = (tf.cast(v, tf.int32) for v in (window if window is not None else (0, 0, height, width)))
    # in double precision, as PIL: float32 coordinates land on the other side of a pixel edge now and then
    a, b, c, d, e, f = (tf.cast(v, tf.float64) for v in matrix)
    y = tf.cast(top + tf.range(rows), tf.float64)[:, None] + 0.5
    x = tf.cast(left + tf.range(columns), tf.float64)[None, :] + 0.5
    # the image framed by one `fill` pixel on every side: a source outside reads the frame
    framed = tf.pad(image, [[1, 1], [1, 1], [0, 0]], constant_values=tf.cast(fill, image.dtype))
    source_x = _framed_coordinate(a * x + b * y + c, width)
    source_y = _framed_coordinate(d * x + e * y + f, height)
    index = source_y * (width + 2) + source_x
    return tf.gather(tf.reshape(framed, (-1, 3)), index)


def _framed_coordinate(coordinate, length):
    """PIL's source pixel along one axis (the floor; -1 or `length` outside) in the framed image (+1)."""
    return tf.cast(tf.clip_by_value(tf.math.floor(coordinate), -1.0, tf.cast(length, tf.float64)), tf.int32) + 1


def blend(degenerate, image, factor):
    """PIL's `Image.blend(degenerate, image, factor)` (every ImageEnhance op,
    torchvision's adjust_brightness): degenerate + factor (image - degenerate)
    in float32, truncated to 8 bits and clipped."""
    mixed = degenerate + tf.cast(factor, tf.float32) * (image - degenerate)
    return tf.clip_by_value(tf.math.floor(mixed), 0.0, 255.0)


def adjust_brightness(image, factor):
    """torchvision's adjust_brightness of a PIL image: a blend with black."""
    return blend(tf.zeros_like(image), image, factor)


# Output samples per matrix product of `resize` (measured fastest on 500x375 JPEGs; 8 and 32 within 20 %).
_BLOCK = 16
# PIL's filter supports (its filters' `support`), in input pixels at scale 1
_SUPPORT = {"bilinear": 1.0, "bicubic": 2.0}
_FIXED_POINT = 2.0 ** 22


def _band(in_size, out_size, start, count, method):
    """The resampling of one axis from `in_size` to `out_size` samples, for
    outputs start .. start + count - 1, padded to whole blocks of `_BLOCK`:
    (input indices (blocks, span) int32, weights (blocks, _BLOCK, span))."""
    in_size_f = tf.cast(in_size, tf.float64)
    scale = in_size_f / tf.cast(out_size, tf.float64)
    filter_scale = tf.maximum(scale, 1.0)
    support = _SUPPORT[method] * filter_scale
    blocks = (count + _BLOCK - 1) // _BLOCK
    centers = (tf.cast(start + tf.range(blocks * _BLOCK), tf.float64) + 0.5) * scale
    low = tf.maximum(tf.math.floor(centers - support + 0.5), 0.0)
    high = tf.maximum(tf.minimum(tf.math.floor(centers + support + 0.5), in_size_f), low + 1.0)
    block_low = tf.reshape(low, (blocks, _BLOCK))[:, 0]
    span = tf.cast(tf.reduce_max(tf.reduce_max(tf.reshape(high, (blocks, _BLOCK)), axis=1) - block_low), tf.int32)
    positions = block_low[:, None] + tf.cast(tf.range(span), tf.float64)[None, :]
    per_output = tf.repeat(positions, _BLOCK, axis=0)
    weights = _filter(method, (per_output - centers[:, None] + 0.5) / filter_scale)
    weights = tf.where((per_output >= low[:, None]) & (per_output < high[:, None]), weights, 0.0)
    weights /= tf.reduce_sum(weights, axis=1, keepdims=True)
    # PIL's 8-bit path holds the weights in fixed point, 22 fractional bits, rounded half away from zero
    weights = tf.sign(weights) * tf.math.floor(tf.abs(weights) * _FIXED_POINT + 0.5) / _FIXED_POINT
    indices = tf.cast(tf.minimum(positions, in_size_f - 1.0), tf.int32)
    return indices, tf.reshape(tf.cast(weights, tf.float32), (blocks, _BLOCK, span))


def _resample_lines(image, band, count):
    """The rows of `image` (N, M, 3) resampled by `band` (`_band`) -> (count,
    M, 3), rounded to 8 bits: only the rows the band reads are gathered."""
    indices, weights = band
    matrix = tf.reshape(image, (tf.shape(image)[0], -1))
    gathered = tf.cast(tf.gather(matrix, indices), tf.float32)  # (blocks, span, M * 3)
    out = _eight_bit(tf.reshape(tf.matmul(weights, gathered), (-1, tf.shape(matrix)[1]))[:count])
    return tf.reshape(out, (count, tf.shape(image)[1], 3))


def _grown_bilinear(image, height, width):
    """TF's bilinear resize (half-pixel centres) of `image` to height x width, float32."""
    resized = tf.raw_ops.ResizeBilinear(images=tf.cast(image, tf.float32)[tf.newaxis],
                                        size=tf.stack([height, width]), half_pixel_centers=True)
    return resized[0]


def _eight_bit(image):
    """Rounded half up to 8-bit values, as PIL stores a pass."""
    return tf.clip_by_value(tf.math.floor(image + 0.5), 0.0, 255.0)


def _lines_read(image, band):
    """(the rows of `image` that `band` reads, `band` shifted to them)."""
    indices, weights = band
    first, last = indices[0, 0], indices[-1, -1]
    return image[first:last + 1], (indices - first, weights)


def _transposed(image):
    return tf.transpose(image, (1, 0, 2))


def _filter(method, x):
    """PIL's bilinear (triangle) or bicubic (a = -0.5) filter at offsets `x`."""
    x = tf.abs(x)
    if method == "bilinear":
        return tf.maximum(1.0 - x, 0.0)
    a = -0.5
    near = ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
    far = (((x - 5.0) * x + 8.0) * x - 4.0) * a
    return tf.where(x < 1.0, near, tf.where(x < 2.0, far, tf.zeros_like(x)))


def _ratio_clamped_size(height, width, ratio):
    """RandomResizedCrop's fallback box: the whole image, its aspect clamped to `ratio`."""
    in_ratio = tf.cast(width, tf.float64) / tf.cast(height, tf.float64)
    narrow_h = tf.cast(tf.round(tf.cast(width, tf.float64) / ratio[0]), tf.int32)
    wide_w = tf.cast(tf.round(tf.cast(height, tf.float64) * ratio[1]), tf.int32)
    box_h = tf.where(in_ratio < ratio[0], narrow_h, height)
    box_w = tf.where(in_ratio > ratio[1], wide_w, width)
    return box_h, box_w


def _round15(value):
    scale = tf.constant(1e15, tf.float64)
    return tf.round(value * scale) / scale


def _scaled_int(uniform, upper):
    """floor(uniform * upper) for a uniform in [0, 1): a uniform integer in [0, upper)."""
    draw = tf.cast(tf.math.floor(tf.cast(uniform, tf.float64) * tf.cast(upper, tf.float64)), tf.int32)
    return tf.minimum(draw, upper - 1)


def _uniform_int(upper, seed):
    return _scaled_int(tf.random.stateless_uniform([], seed), upper)


def _split(seed, count):
    return tf.unstack(tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=count))

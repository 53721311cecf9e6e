"""SAM's training augmentation `RandAugmentMC(n=2, m=10)` (FixMatch's pool
of 14 PIL operations, then a grey cutout) as TensorFlow ops.

Per image, as SAM's `data/randaugment.py` runs it: two operations drawn
with replacement from `OPERATIONS`; each gets a magnitude v uniform in
{1, ..., 9} and is applied with probability 1/2 (those that have a
direction draw its sign, each way with probability 1/2); then, always, a
grey (127) square of side 16 + 1 (PIL's rectangle includes both corners)
centred on a uniform point, clipped at the borders. Magnitudes, with
PARAMETER_MAX = 10:

| operation | effect at magnitude v |
|---|---|
| AutoContrast, Equalize, Identity | PIL's ImageOps (no magnitude) |
| Brightness, Color, Contrast, Sharpness | ImageEnhance factor 0.05 + 0.09 v (they can only weaken) |
| Posterize | keep 4 + int(0.4 v) bits |
| Rotate | +-int(3 v) degrees |
| ShearX, ShearY | +-0.03 v |
| Solarize | invert values >= 256 - int(25.6 v) |
| TranslateX, TranslateY | +-int(0.03 v * side) pixels |

Every op takes and gives float32 [H, W, 3] tensors of 8-bit values and
computes as PIL does (integer look-up tables in float64 where PIL computes
them in Python doubles, float32 blends truncated as PIL's C code).
"""
import tensorflow as tf

from fgtf.preprocessing.torchvision_ops import affine, blend, rotate

PARAMETER_MAX = 10
OPERATIONS = ("AutoContrast", "Brightness", "Color", "Contrast", "Equalize", "Identity", "Posterize", "Rotate",
              "Sharpness", "ShearX", "ShearY", "Solarize", "TranslateX", "TranslateY")
# operation -> (max_v, bias) of FixMatch's pool
_RANGES = {"Brightness": (0.9, 0.05), "Color": (0.9, 0.05), "Contrast": (0.9, 0.05), "Posterize": (4, 4),
           "Rotate": (30, 0), "Sharpness": (0.9, 0.05), "ShearX": (0.3, 0), "ShearY": (0.3, 0),
           "Solarize": (256, 0), "TranslateX": (0.3, 0), "TranslateY": (0.3, 0)}
# operations whose magnitude is an int (`_int_parameter`), the others' a float
_INTEGER_MAGNITUDES = ("Posterize", "Rotate", "Solarize")
OPERATIONS_PER_IMAGE = 2
MAX_MAGNITUDE = 10  # m: v is drawn from {1, ..., m - 1}
CUTOUT_SIZE = 16
CUTOUT_GREY = 127.0


def rand_augment(image, seed=None, draws=None):
    """RandAugmentMC(2, 10) of an 8-bit float image. `draws`: a dict given
    instead of drawing from `seed`: `ops` (2 indices into OPERATIONS),
    `magnitudes` (2 ints in 1..9), `applied` (2 bools), `signs` (2 values
    +-1), `cutout` (the centre's x, y as uniforms in [0, 1))."""
    if draws is None:
        draws = draw(seed)
    for k in range(OPERATIONS_PER_IMAGE):
        augmented = apply_operation(image, draws["ops"][k], draws["magnitudes"][k], draws["signs"][k])
        image = tf.where(draws["applied"][k], augmented, image)
    return cutout(image, draws["cutout"][0], draws["cutout"][1])


def draw(seed):
    """The random draws of `rand_augment` from a stateless seed [2]."""
    op_seed, magnitude_seed, applied_seed, sign_seed, cutout_seed = tf.unstack(
        tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=5))
    return {"ops": tf.random.stateless_uniform([OPERATIONS_PER_IMAGE], op_seed, 0, len(OPERATIONS), tf.int32),
            "magnitudes": tf.random.stateless_uniform([OPERATIONS_PER_IMAGE], magnitude_seed, 1, MAX_MAGNITUDE,
                                                      tf.int32),
            "applied": tf.random.stateless_uniform([OPERATIONS_PER_IMAGE], applied_seed) < 0.5,
            "signs": tf.where(tf.random.stateless_uniform([OPERATIONS_PER_IMAGE], sign_seed) < 0.5, -1, 1),
            "cutout": tf.random.stateless_uniform([2], cutout_seed)}


def apply_operation(image, index, magnitude, sign=1.0):
    """Operation `OPERATIONS[index]` at magnitude `magnitude` (1..9), in
    direction `sign` (+-1) for those that have one."""
    sign = tf.cast(sign, tf.float64)
    branches = [lambda name=name: _OPS[name](image, _magnitude(name, magnitude), sign) for name in OPERATIONS]
    out = tf.switch_case(tf.cast(index, tf.int32), branches)
    return tf.ensure_shape(out, image.shape)


def cutout(image, x_draw, y_draw, size=CUTOUT_SIZE):
    """SAM's CutoutAbs: a grey square from (x0, y0) = (int(max(0, x - size / 2)),
    ...) for a centre x = x_draw * width, to min(side, x0 + size), both ends included."""
    shape = tf.shape(image)
    height, width = tf.cast(shape[0], tf.float64), tf.cast(shape[1], tf.float64)
    x0 = tf.math.floor(tf.maximum(tf.cast(x_draw, tf.float64) * width - size / 2.0, 0.0))
    y0 = tf.math.floor(tf.maximum(tf.cast(y_draw, tf.float64) * height - size / 2.0, 0.0))
    x1, y1 = tf.minimum(width, x0 + size), tf.minimum(height, y0 + size)
    rows = tf.cast(tf.range(shape[0]), tf.float64)[:, None]
    cols = tf.cast(tf.range(shape[1]), tf.float64)[None, :]
    inside = (rows >= y0) & (rows <= y1) & (cols >= x0) & (cols <= x1)
    return tf.where(inside[..., None], CUTOUT_GREY, image)


def _magnitude(name, v):
    """`_float_parameter` / `_int_parameter` of FixMatch's code, plus the op's bias, in float64."""
    max_v, bias = _RANGES.get(name, (0, 0))
    value = tf.cast(v, tf.float64) * max_v / PARAMETER_MAX
    if name in _INTEGER_MAGNITUDES:
        value = tf.math.floor(value)  # int() of a non-negative value
    return value + bias


def _autocontrast(image, _magnitude, _sign):
    def channel(values):
        low, high = tf.reduce_min(values), tf.reduce_max(values)
        scale = 255.0 / tf.cast(tf.maximum(high - low, 1.0), tf.float64)
        offset = -tf.cast(low, tf.float64) * scale
        table = tf.clip_by_value(tf.math.floor(tf.range(256, dtype=tf.float64) * scale + offset), 0.0, 255.0)
        table = tf.where(high > low, table, tf.range(256, dtype=tf.float64))
        return tf.gather(tf.cast(table, tf.float32), tf.cast(values, tf.int32))

    return _per_channel(image, channel)


def _equalize(image, _magnitude, _sign):
    def channel(values):
        indices = tf.reshape(tf.cast(values, tf.int32), [-1])
        histogram = tf.math.unsorted_segment_sum(tf.ones_like(indices), indices, 256)
        # PIL: step = (pixels - the count of the last used value) // 255; identity when one value or no step
        step = (tf.size(indices) - tf.gather(histogram, tf.reduce_max(indices))) // 255
        cumulative = tf.cumsum(histogram, exclusive=True)
        table = tf.minimum((step // 2 + cumulative) // tf.maximum(step, 1), 255)
        used_values = tf.reduce_sum(tf.cast(histogram > 0, tf.int32))
        table = tf.where((used_values > 1) & (step > 0), table, tf.range(256))
        return tf.gather(tf.cast(table, tf.float32), tf.cast(values, tf.int32))

    return _per_channel(image, channel)


def _grey(image):
    """PIL's convert("L") of an RGB image: (19595 R + 38470 G + 7471 B + 2^15) >> 16."""
    weights = tf.constant([19595.0, 38470.0, 7471.0], tf.float32)
    return tf.math.floor((tf.reduce_sum(image * weights, axis=-1, keepdims=True) + 32768.0) / 65536.0)


def _color(image, factor, _sign):
    return blend(tf.broadcast_to(_grey(image), tf.shape(image)), image, factor)


def _contrast(image, factor, _sign):
    mean = tf.math.floor(tf.reduce_mean(tf.cast(_grey(image), tf.float64)) + 0.5)
    return blend(tf.fill(tf.shape(image), tf.cast(mean, tf.float32)), image, factor)


def _sharpness(image, factor, _sign):
    """Blend with PIL's SMOOTH filter (3x3 kernel 1 1 1 / 1 5 1 / 1 1 1 over 13,
    rounded; the border rows and columns keep their values)."""
    # the 3x3 sum as nine shifted slices (XLA runs a depthwise convolution far slower on the CPU)
    height, width = tf.shape(image)[0], tf.shape(image)[1]
    total = sum(image[dy:height - 2 + dy, dx:width - 2 + dx] for dy in range(3) for dx in range(3))
    smooth = (total + 4.0 * image[1:-1, 1:-1]) * (1.0 / 13.0)
    smooth = tf.clip_by_value(tf.math.floor(smooth + 0.5), 0.0, 255.0)
    interior = tf.pad(tf.ones_like(smooth[..., :1], tf.bool), [[1, 1], [1, 1], [0, 0]])
    degenerate = tf.where(interior, tf.pad(smooth, [[1, 1], [1, 1], [0, 0]]), image)
    return blend(degenerate, image, factor)


def _brightness(image, factor, _sign):
    return blend(tf.zeros_like(image), image, factor)


def _posterize(image, bits, _sign):
    mask = 256 - tf.bitwise.left_shift(1, 8 - tf.cast(bits, tf.int32))  # ~(2^(8 - bits) - 1) on 8 bits
    return tf.cast(tf.bitwise.bitwise_and(tf.cast(image, tf.int32), mask), tf.float32)


def _rotate(image, degrees, sign):
    return rotate(image, sign * degrees)


def _shear_x(image, shear, sign):
    return affine(image, (1.0, sign * shear, 0.0, 0.0, 1.0, 0.0))


def _shear_y(image, shear, sign):
    return affine(image, (1.0, 0.0, 0.0, sign * shear, 1.0, 0.0))


def _solarize(image, level, _sign):
    threshold = tf.cast(256.0 - level, tf.float32)
    return tf.where(image >= threshold, 255.0 - image, image)


def _translate(axis):
    def translate(image, share, sign):
        side = tf.cast(tf.shape(image)[1 - axis], tf.float64)
        pixels = sign * share * side
        pixels = tf.where(pixels < 0, tf.math.ceil(pixels), tf.math.floor(pixels))  # int(): toward zero
        zero = tf.constant(0.0, tf.float64)
        return affine(image, (1.0, 0.0, pixels, 0.0, 1.0, zero) if axis == 0 else (1.0, 0.0, zero, 0.0, 1.0, pixels))

    return translate


def _identity(image, _magnitude, _sign):
    return image


def _per_channel(image, function):
    return tf.stack([function(image[..., c]) for c in range(3)], axis=-1)


_OPS = {"AutoContrast": _autocontrast, "Brightness": _brightness, "Color": _color, "Contrast": _contrast,
        "Equalize": _equalize, "Identity": _identity, "Posterize": _posterize, "Rotate": _rotate,
        "Sharpness": _sharpness, "ShearX": _shear_x, "ShearY": _shear_y, "Solarize": _solarize,
        "TranslateX": _translate(0), "TranslateY": _translate(1)}

"""torchvision's transforms of PIL images as TensorFlow ops: the pieces the
seeds' pipelines (`fgtf.preprocessing.seeds`) are made of.

Images are float32 [height, width, 3] tensors holding 8-bit values
(0..255): PIL works on 8-bit images, so every op that makes new values
rounds (or, where PIL truncates, floors) them as PIL does, and the next op
sees what it would have seen. `normalize` ends a pipeline.

What was matched, and how (tests/test_seed_preprocessing.py compares each
op with torchvision + PIL on JPEGs of odd sizes):
* decoding: libjpeg's accurate integer IDCT (`dct_method="INTEGER_ACCURATE"`),
  PIL's; TF's default (fast IDCT) differs by about one grey level;
* resizing: PIL's resampling filters (bilinear = triangle, bicubic = cubic
  a = -0.5) widened by the scale when shrinking, i.e. antialiased:
  `tf.image.resize(antialias=True)`, then rounded and clipped to 8 bits
  (PIL keeps an 8-bit image between its horizontal and vertical passes,
  fgtf does not: within half a grey level);
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
    """Encoded JPEG/PNG/GIF/BMP bytes -> float32 [H, W, 3] of 8-bit values, as
    `PIL.Image.open(f).convert("RGB")` gives them."""
    def jpeg():
        return tf.io.decode_jpeg(encoded, channels=3, dct_method="INTEGER_ACCURATE")

    def other():
        return tf.io.decode_image(encoded, channels=3, expand_animations=False)

    image = tf.cond(tf.io.is_jpeg(encoded), jpeg, other)
    image.set_shape([None, None, 3])
    return tf.cast(image, tf.float32)


def resize(image, height, width, method="bilinear"):
    """PIL's `image.resize((width, height), method)` (torchvision's Resize
    of a PIL image): antialiased when shrinking, 8-bit result."""
    resized = tf.image.resize(image, tf.stack([height, width]), method=method, antialias=True)
    return tf.round(tf.clip_by_value(resized, 0.0, 255.0))


def shorter_side_size(height, width, size):
    """(new height, new width) of torchvision's `Resize(size)`: the shorter
    side becomes `size`, the longer `int(size * longer / shorter)`."""
    short, long = tf.minimum(height, width), tf.maximum(height, width)
    new_long = tf.cast(tf.math.floor(tf.cast(size * long, tf.float64) / tf.cast(short, tf.float64)), tf.int32)
    portrait = width <= height
    return tf.where(portrait, new_long, size), tf.where(portrait, size, new_long)


def resize_shorter_side(image, size, method="bilinear"):
    """torchvision's `Resize(size)` with an int: the shorter side to `size`, aspect kept."""
    shape = tf.shape(image)
    height, width = shorter_side_size(shape[0], shape[1], size)
    return resize(image, height, width, method)


def center_crop(image, size):
    """torchvision's `CenterCrop(size)` of an image at least `size` on each side:
    the top-left corner at `round((side - size) / 2)` (half to even, as Python's round)."""
    shape = tf.shape(image)
    top = tf.cast(tf.round(tf.cast(shape[0] - size, tf.float64) / 2.0), tf.int32)
    left = tf.cast(tf.round(tf.cast(shape[1] - size, tf.float64) / 2.0), tf.int32)
    return crop(image, top, left, size, size)


def crop(image, top, left, height, width):
    """`image[top:top + height, left:left + width]` (PIL's `crop` box (left, top, right, bottom))."""
    begin = tf.cast(tf.stack([top, left, 0]), tf.int32)
    return tf.slice(image, begin, tf.cast(tf.stack([height, width, 3]), tf.int32))


def flip(image, flipped):
    """Mirror left-right when the boolean tensor `flipped` is true (RandomHorizontalFlip)."""
    return tf.where(flipped, tf.reverse(image, axis=[1]), image)


def normalize(image, mean=IMAGENET_MEAN, std=IMAGENET_STD):
    """torchvision's ToTensor then Normalize(mean, std), channels last: (x / 255 - mean) / std."""
    return (image * (1.0 / 255.0) - tf.constant(mean, tf.float32)) / tf.constant(std, tf.float32)


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


def rotate(image, degrees, fill=0.0):
    """PIL's `image.rotate(degrees)` (counter-clockwise, about the centre
    (width / 2, height / 2), same size, nearest neighbour, `fill` outside),
    as torchvision's RandomRotation and SAM's Rotate call it."""
    shape = tf.shape(image)
    angle = -tf.cast(degrees, tf.float64) * (math.pi / 180.0)
    # PIL rounds the matrix to 15 decimals
    cos, sin = _round15(tf.cos(angle)), _round15(tf.sin(angle))
    center_x, center_y = tf.cast(shape[1], tf.float64) / 2.0, tf.cast(shape[0], tf.float64) / 2.0
    matrix = [cos, sin, center_x - cos * center_x - sin * center_y,
              -sin, cos, center_y + sin * center_x - cos * center_y]
    return affine(image, matrix, fill)


def affine(image, matrix, fill=0.0):
    """PIL's `image.transform(size, AFFINE, matrix)` with nearest-neighbour
    sampling: output pixel (x, y) is input pixel floor(a (x + 1/2) + b (y + 1/2)
    + c), floor(d (x + 1/2) + e (y + 1/2) + f) for `matrix` (a, b, c, d, e, f),
    `fill` where that lies outside."""
    a, b, c, d, e, f = (tf.cast(v, tf.float64) for v in matrix)
    # TF's projective transform samples round(M (x, y)): shift by half a pixel to read PIL's floor
    transform = tf.cast(tf.stack([a, b, c + 0.5 * (a + b) - 0.5, d, e, f + 0.5 * (d + e) - 0.5,
                                  tf.constant(0.0, tf.float64), tf.constant(0.0, tf.float64)]), tf.float32)
    out = tf.raw_ops.ImageProjectiveTransformV3(
        images=image[tf.newaxis], transforms=transform[tf.newaxis], output_shape=tf.shape(image)[:2],
        fill_value=tf.cast(fill, tf.float32), interpolation="NEAREST", fill_mode="CONSTANT")
    return tf.ensure_shape(out[0], image.shape)


def blend(degenerate, image, factor):
    """PIL's `Image.blend(degenerate, image, factor)` (every ImageEnhance op,
    torchvision's adjust_brightness): degenerate + factor (image - degenerate)
    in float32, truncated to 8 bits and clipped."""
    mixed = degenerate + tf.cast(factor, tf.float32) * (image - degenerate)
    return tf.clip_by_value(tf.math.floor(mixed), 0.0, 255.0)


def adjust_brightness(image, factor):
    """torchvision's adjust_brightness of a PIL image: a blend with black."""
    return blend(tf.zeros_like(image), image, factor)


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

"""Inception-style image preprocessing as TensorFlow ops: TF-Slim's
`inception_preprocessing` (the preprocessing the original iNat2017 checkpoints
were trained and evaluated with), taking encoded image bytes.

Training (`preprocess_for_train`), per image, with one stateless seed:
1. `stateless_sample_distorted_bounding_box` over the whole image
   (min_object_covered 0.1, aspect ratio (0.75, 1.33), area (0.05, 1.0),
   100 attempts; the whole image when no attempt succeeds), as slim's
   `distorted_bounding_box_crop`;
2. decode only that window (`tf.io.decode_and_crop_jpeg`);
3. bilinear resize to `image_size` (slim's `tf.image.resize_images`: the legacy
   sampling, align_corners=False and no half-pixel centres);
4. random left-right flip;
5. colour distortion as slim's `distort_color(fast_mode=True)`: random
   brightness (max delta 32/255) then random saturation (0.5 to 1.5),
   clipped to [0, 1]. Slim's `preprocess_image` defaults to fast_mode=True:
   one resize method (bilinear) and one colour ordering (brightness first).
   The four random orderings and hue/contrast belong to fast_mode=False,
   which the original training did not use, so they are not offered here;
6. scale to [-1, 1]: (x - 0.5) * 2.
Steps 4-6 run as one XLA-compiled pass (`flip_and_distort_color`), with the
same random draws as tf.image's stateless flip/brightness/saturation ops and
equal to them within float rounding; they cost about half of what the
separate ops cost (`benchmarks/input_pipeline.py`).

Evaluation (`preprocess_for_eval`), exactly as slim's `preprocess_for_eval`:
decode the whole image, `tf.image.central_crop` (0.875), the same legacy
bilinear resize, [0, 1] floats, then (x - 0.5) * 2 (slim converts to float
before cropping; cropping and resizing commute with the division by 255).

Where the training path differs from slim, and why it does not matter:
- Slim decodes the whole JPEG and then slices the sampled window; here only
  the window is decoded. libjpeg decodes the window's blocks with the same
  IDCT, so its pixels are identical, except that chroma upsampling of 4:2:0
  JPEGs may differ at the window's border, whose pixels are interpolated
  without their neighbours outside the window. Measured on random windows
  of 4:2:0 test JPEGs (tests/test_preprocessing.py::
  test_crop_window_decode_matches_full_decode):
  every pixel inside the window's one-pixel border is identical, and border
  pixels differ by at most 22 grey levels of 255 (about half the windows
  show any difference); 4:4:4 JPEGs decode identically. Only the outermost
  output rows and columns can show it, and the same pipeline shifts every
  pixel by up to 32 grey levels of brightness jitter, so it does not change
  training materially. Evaluation decodes the whole image: exactly slim's.
- The random draws come from stateless ops seeded per example
  (`tf.image.stateless_*`), not from slim's stateful ops: the distributions
  are the same, and a seed makes a pipeline reproducible.
- Bytes that are not JPEG (PNG, GIF, BMP, as some TFDS datasets store) are
  decoded whole with `tf.io.decode_image` and then cropped to the same
  sampled window, i.e. exactly slim's order.
"""
import tensorflow as tf

CENTRAL_FRACTION = 0.875
# slim's distorted_bounding_box_crop defaults
MIN_OBJECT_COVERED = 0.1
ASPECT_RATIO_RANGE = (0.75, 1.33)
AREA_RANGE = (0.05, 1.0)
MAX_ATTEMPTS = 100
# slim's distort_color(fast_mode=True)
BRIGHTNESS_MAX_DELTA = 32.0 / 255.0
SATURATION_RANGE = (0.5, 1.5)


def preprocess_image(encoded, image_size, training, seed=None, min_crop_area=AREA_RANGE[0]):
    """Encoded image bytes (scalar string tensor) -> float32 [H, W, 3] in
    [-1, 1]. `image_size` is an int or (height, width). Training needs a
    stateless `seed` (int32/int64 tensor of shape [2]); evaluation ignores it
    and `min_crop_area` (see `preprocess_for_train`)."""
    if training:
        if seed is None:
            raise ValueError("training preprocessing needs a stateless seed of shape [2]")
        return preprocess_for_train(encoded, image_size, seed, min_crop_area=min_crop_area)
    return preprocess_for_eval(encoded, image_size)


def preprocess_for_train(encoded, image_size, seed, min_crop_area=AREA_RANGE[0]):
    """Slim's training preprocessing (see the module docstring) of one encoded
    image -> float32 [height, width, 3] in [-1, 1]. `seed`: shape [2] int
    tensor; the same seed gives the same crop, flip and colour.
    `min_crop_area`: the smallest share of the image a random crop covers
    (slim's 0.05); small images whose classes hang on small parts train
    better with larger crops (e.g. 0.5), which keep the parts in view."""
    crop_seed, flip_seed, brightness_seed, saturation_seed = tf.unstack(
        tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=4))

    def sample_window(image_shape):
        begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
            image_shape, bounding_boxes=tf.constant([[[0.0, 0.0, 1.0, 1.0]]]), seed=crop_seed,
            min_object_covered=MIN_OBJECT_COVERED, aspect_ratio_range=ASPECT_RATIO_RANGE,
            area_range=(min_crop_area, AREA_RANGE[1]), max_attempts=MAX_ATTEMPTS,
            use_image_if_no_bounding_boxes=True)
        return tf.stack([begin[0], begin[1], size[0], size[1]])

    # The same draws as tf.image.stateless_random_flip_left_right,
    # stateless_random_brightness and stateless_random_saturation make.
    flip = tf.random.stateless_uniform([], flip_seed) < 0.5
    brightness_delta = tf.random.stateless_uniform(
        [], brightness_seed, -BRIGHTNESS_MAX_DELTA, BRIGHTNESS_MAX_DELTA)
    saturation_factor = tf.random.stateless_uniform([], saturation_seed, *SATURATION_RANGE)
    resized = _resize_bilinear_legacy(decode_window(encoded, sample_window), image_size)
    return flip_and_distort_color(resized, flip, brightness_delta, saturation_factor)


@tf.function(jit_compile=True)
def flip_and_distort_color(image, flip, brightness_delta, saturation_factor):
    """Steps 4-6 of the training preprocessing in one XLA-fused pass: float32
    [H, W, 3] in [0, 255] -> [-1, 1], flipped left-right when `flip`, then
    slim's `distort_color(fast_mode=True)` with the given brightness delta
    (of [0, 1] units) and saturation factor, clipped, scaled.

    Saturation is written out rather than taken from `tf.image.adjust_saturation`
    (whose kernel converts every pixel to HSV and back, the pipeline's single
    most expensive step): scaling a pixel's HSV saturation s = (max - min) / max
    by f, clamped to [0, 1], keeps hue and value and moves every channel c to
    max - (max - c) * min(f, max / (max - min)); a pixel whose max is <= 0 has
    saturation 0 there and becomes grey at its max. Equal to the kernel within
    float rounding (tests/test_preprocessing.py)."""
    image = image * (1.0 / 255.0)
    image = tf.where(flip, tf.reverse(image, axis=[1]), image)
    # Channel-wise maximum/minimum of slices: XLA's CPU reduction over an axis
    # of 3 is far slower.
    red, green, blue = image[..., 0:1], image[..., 1:2], image[..., 2:3]
    top = tf.maximum(tf.maximum(red, green), blue)
    bottom = tf.minimum(tf.minimum(red, green), blue)
    bright_top = top + brightness_delta
    scale = tf.where(bright_top > 0.0,
                     tf.minimum(saturation_factor, tf.math.divide_no_nan(bright_top, top - bottom)), 0.0)
    image = bright_top - (top - image) * scale
    return _to_signed_unit(tf.clip_by_value(image, 0.0, 1.0))


def preprocess_for_eval(encoded, image_size, central_fraction=CENTRAL_FRACTION):
    """Slim's evaluation preprocessing of one encoded image -> float32
    [height, width, 3] in [-1, 1]: whole-image decode, central crop of
    `central_fraction`, legacy bilinear resize, (x - 0.5) * 2."""
    image = tf.image.central_crop(decode_image(encoded), central_fraction)
    return _to_signed_unit(_resize_bilinear_legacy(image, image_size) * (1.0 / 255.0))


def decode_image(encoded):
    """Encoded JPEG/PNG/GIF/BMP bytes -> uint8 [H, W, 3] (grey is expanded,
    alpha dropped, an animated GIF gives its first frame)."""
    image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
    image.set_shape([None, None, 3])
    return image


def decode_window(encoded, window_fn):
    """Decode only a window of an encoded image -> uint8 [h, w, 3].

    `window_fn(image_shape)` maps the image's [height, width, channels] (int32)
    to the window [offset_y, offset_x, h, w] (int32). JPEG bytes read their
    shape from the header and decode just the window; other formats are
    decoded whole and sliced."""

    def jpeg_window():
        window = window_fn(tf.io.extract_jpeg_shape(encoded))
        return tf.io.decode_and_crop_jpeg(encoded, window, channels=3)

    def other_window():
        image = decode_image(encoded)
        window = window_fn(tf.shape(image))
        return tf.slice(image, [window[0], window[1], 0], [window[2], window[3], 3])

    image = tf.cond(tf.io.is_jpeg(encoded), jpeg_window, other_window)
    image.set_shape([None, None, 3])
    return image


def _resize_bilinear_legacy(image, image_size):
    """uint8 [h, w, 3] -> float32 [height, width, 3] in [0, 255], resized as
    slim's tf.image.resize_images / resize_bilinear did: align_corners=False
    and no half-pixel centres (TF2's tf.image.resize samples half a pixel
    apart). Slim converted to [0, 1] floats before resizing; the resize is
    linear, so resizing the uint8 pixels and dividing by 255 afterwards gives
    the same values within float rounding, with one float pass less."""
    height, width = _pair(image_size)
    resized = tf.raw_ops.ResizeBilinear(images=image[tf.newaxis], size=[height, width],
                                        align_corners=False, half_pixel_centers=False)
    return resized[0]


def _to_signed_unit(image):
    return (image - 0.5) * 2.0


def _pair(image_size):
    if isinstance(image_size, int):
        return image_size, image_size
    height, width = image_size
    return int(height), int(width)

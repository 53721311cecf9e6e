"""fgtf.preprocessing: slim's inception preprocessing on encoded images."""
import io
import os

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import tensorflow as tf  # noqa: E402

from fgtf import preprocessing  # noqa: E402
from fgtf.preprocessing import (  # noqa: E402
    BRIGHTNESS_MAX_DELTA, SATURATION_RANGE, decode_window, flip_and_distort_color, preprocess_for_eval,
    preprocess_for_train, preprocess_image)


def smooth_image(rng, height, width):
    """A photo-like uint8 image: upsampled coarse colours plus fine noise."""
    coarse = rng.integers(0, 256, (height // 8 + 1, width // 8 + 1, 3), dtype=np.uint8)
    image = np.asarray(Image.fromarray(coarse).resize((width, height), Image.BILINEAR), np.int16)
    return np.clip(image + rng.integers(-20, 21, image.shape), 0, 255).astype(np.uint8)


def encode(image, fmt="JPEG", **options):
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format=fmt, **options)
    return buffer.getvalue()


def numpy_eval_preprocessing(pixels, size, central_fraction=0.875):
    """Slim's preprocess_for_eval re-written in numpy: [0, 1] floats,
    tf.image.central_crop's window, legacy bilinear resize (source coordinate
    = output index * input/output, no half-pixel offset), (x - 0.5) * 2."""
    image = pixels.astype(np.float64) / 255.0
    height, width = image.shape[:2]
    top, left = int((height - height * central_fraction) / 2), int((width - width * central_fraction) / 2)
    image = image[top:height - top, left:width - left]

    def axis_weights(in_size, out_size):
        source = np.arange(out_size) * (in_size / out_size)
        low = np.floor(source).astype(int)
        return low, np.minimum(low + 1, in_size - 1), (source - low)

    y0, y1, fy = axis_weights(image.shape[0], size)
    x0, x1, fx = axis_weights(image.shape[1], size)
    rows = image[y0] * (1 - fy)[:, None, None] + image[y1] * fy[:, None, None]
    resized = rows[:, x0] * (1 - fx)[None, :, None] + rows[:, x1] * fx[None, :, None]
    return (resized - 0.5) * 2.0


@pytest.mark.parametrize("height,width,size", [(61, 75, 32), (120, 90, 299), (40, 40, 40)])
def test_eval_matches_numpy_reimplementation_png(height, width, size):
    pixels = smooth_image(np.random.default_rng(height), height, width)
    actual = preprocess_for_eval(tf.constant(encode(pixels, "PNG")), size).numpy()
    assert actual.shape == (size, size, 3) and actual.dtype == np.float32
    np.testing.assert_allclose(actual, numpy_eval_preprocessing(pixels, size), atol=1e-5)


def test_eval_matches_numpy_reimplementation_jpeg():
    # PIL's and TF's JPEG decoders differ by a few grey levels, so the numpy
    # side starts from TF's decoded pixels; everything after decoding is checked.
    encoded = encode(smooth_image(np.random.default_rng(1), 97, 130), quality=90)
    pixels = tf.io.decode_jpeg(encoded, channels=3).numpy()
    actual = preprocess_for_eval(tf.constant(encoded), (64, 64)).numpy()
    np.testing.assert_allclose(actual, numpy_eval_preprocessing(pixels, 64), atol=1e-5)


def test_grey_png_decodes_to_three_channels():
    grey = np.random.default_rng(2).integers(0, 256, (30, 40), dtype=np.uint8)
    image = preprocess_for_eval(tf.constant(encode(grey, "PNG")), 16).numpy()
    assert image.shape == (16, 16, 3)
    np.testing.assert_array_equal(image[..., 0], image[..., 2])


def test_crop_window_decode_matches_full_decode():
    """Decoding only a window equals decoding everything and slicing, except
    on the window's one-pixel border for 4:2:0 chroma (bound measured: 22)."""
    rng = np.random.default_rng(0)
    worst_border = {0: 0, 2: 0}
    for _ in range(12):
        height, width = (int(v) for v in rng.integers(60, 300, 2))
        pixels = smooth_image(rng, height, width)
        for subsampling in (0, 2):  # PIL: 0 = 4:4:4, 2 = 4:2:0
            encoded = tf.constant(encode(pixels, quality=int(rng.integers(60, 96)), subsampling=subsampling))
            full = tf.io.decode_jpeg(encoded, channels=3).numpy().astype(int)
            for _ in range(4):
                top, left = int(rng.integers(0, height - 8)), int(rng.integers(0, width - 8))
                h, w = int(rng.integers(3, height - top + 1)), int(rng.integers(3, width - left + 1))
                window = decode_window(encoded, lambda shape: tf.constant([top, left, h, w])).numpy()
                difference = np.abs(window.astype(int) - full[top:top + h, left:left + w])
                assert difference[1:-1, 1:-1].max() == 0
                worst_border[subsampling] = max(worst_border[subsampling], difference.max())
    assert worst_border[0] == 0
    assert worst_border[2] <= 22


def test_decode_window_png_slices_the_window():
    pixels = smooth_image(np.random.default_rng(3), 50, 60)
    window = decode_window(tf.constant(encode(pixels, "PNG")), lambda shape: tf.constant([5, 7, 20, 30]))
    np.testing.assert_array_equal(window.numpy(), pixels[5:25, 7:37])


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_train_output_and_seed(fmt):
    encoded = tf.constant(encode(smooth_image(np.random.default_rng(4), 90, 120), fmt))
    first = preprocess_for_train(encoded, (48, 40), tf.constant([7, 1])).numpy()
    assert first.shape == (48, 40, 3) and first.dtype == np.float32
    assert first.min() >= -1.0 and first.max() <= 1.0
    np.testing.assert_array_equal(first, preprocess_for_train(encoded, (48, 40), tf.constant([7, 1])).numpy())
    others = [preprocess_for_train(encoded, (48, 40), tf.constant([7, s])).numpy() for s in range(2, 6)]
    assert all(np.abs(other - first).mean() > 1e-3 for other in others)


def tf_image_flip_and_distort_color(resized, flip_seed, brightness_seed, saturation_seed):
    """Steps 4-6 as slim wrote them, with tf.image's stateless ops."""
    image = tf.image.stateless_random_flip_left_right(resized / 255.0, flip_seed)
    image = tf.image.stateless_random_brightness(image, BRIGHTNESS_MAX_DELTA, brightness_seed)
    image = tf.image.stateless_random_saturation(image, *SATURATION_RANGE, saturation_seed)
    return (tf.clip_by_value(image, 0.0, 1.0) - 0.5) * 2.0


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_train_colour_equals_tf_image_ops(fmt):
    """preprocess_for_train's fused flip/brightness/saturation equals
    tf.image's stateless ops with the same seeds on the same crop."""
    encoded = tf.constant(encode(smooth_image(np.random.default_rng(6), 90, 120), fmt))
    for index in range(8):
        seed = tf.constant([3, index])
        crop_seed, *colour_seeds = tf.unstack(tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 4))
        begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
            [90, 120, 3], tf.constant([[[0.0, 0.0, 1.0, 1.0]]]), seed=crop_seed,
            min_object_covered=preprocessing.MIN_OBJECT_COVERED, aspect_ratio_range=preprocessing.ASPECT_RATIO_RANGE,
            area_range=preprocessing.AREA_RANGE, max_attempts=preprocessing.MAX_ATTEMPTS,
            use_image_if_no_bounding_boxes=True)
        window = decode_window(encoded, lambda shape: tf.stack([begin[0], begin[1], size[0], size[1]]))
        resized = tf.raw_ops.ResizeBilinear(images=window[None], size=[40, 48], align_corners=False,
                                            half_pixel_centers=False)[0]
        expected = tf_image_flip_and_distort_color(resized, *colour_seeds)
        np.testing.assert_allclose(preprocess_for_train(encoded, (40, 48), seed), expected, atol=2e-6)


def test_saturation_formula_equals_adjust_saturation_kernel():
    """Including pixels that brightness pushed below 0 or above 1, greys and
    blacks, which the HSV kernel treats specially."""
    rng = np.random.default_rng(7)
    image = rng.uniform(-40, 300, (64, 64, 3)).astype(np.float32)
    image[0, :8] = [[v, v, v] for v in (-20, 0, 1, 128, 255, 280, 0.5, 254.5)]
    image[1, :4] = [[0, 0, 255], [-10, 5, 0], [-10, -5, -1], [255, 300, 0]]
    for flip in (False, True):
        for delta in (-BRIGHTNESS_MAX_DELTA, 0.0, 0.07):
            for factor in (SATURATION_RANGE[0], 1.0, 1.21, SATURATION_RANGE[1]):
                unit = tf.reverse(image, [1]) / 255.0 if flip else image / 255.0
                saturated = tf.image.adjust_saturation(unit + delta, factor)
                expected = (tf.clip_by_value(saturated, 0.0, 1.0) - 0.5) * 2.0
                np.testing.assert_allclose(flip_and_distort_color(image, flip, delta, factor), expected, atol=3e-6)


def test_train_flips_about_half_the_images():
    # Columns are a ramp, so a flipped output has a decreasing red channel.
    ramp = np.tile(np.linspace(0, 255, 160).astype(np.uint8)[None, :, None], (120, 1, 3))
    encoded = tf.constant(encode(ramp, "PNG"))
    flipped = 0
    for s in range(40):
        image = preprocess_for_train(encoded, 32, tf.constant([0, s])).numpy()
        flipped += image[16, 0, 0] > image[16, -1, 0]
    assert 5 <= flipped <= 35


def test_preprocess_image_dispatch():
    encoded = tf.constant(encode(smooth_image(np.random.default_rng(5), 40, 50), "PNG"))
    np.testing.assert_array_equal(preprocess_image(encoded, 24, training=False).numpy(),
                                  preprocess_for_eval(encoded, 24).numpy())
    with pytest.raises(ValueError, match="seed"):
        preprocess_image(encoded, 24, training=True)


def test_min_crop_area_one_keeps_the_whole_image_in_every_crop():
    """Black and white quadrants: a crop of the whole image shows both in its
    corners whatever the seed; slim's smallest crops (5 %) often fall in one."""
    pixels = np.zeros((64, 64, 3), np.uint8)
    pixels[:32, 32:] = pixels[32:, :32] = 255
    encoded = tf.constant(encode(pixels, "PNG"))

    def corner_contrast(min_crop_area, seed):
        image = preprocess_for_train(encoded, 32, tf.constant([3, seed]), min_crop_area=min_crop_area).numpy()
        return abs(float(image[0, 0].mean()) - float(image[0, -1].mean()))

    assert all(corner_contrast(1.0, seed) > 1.0 for seed in range(20))
    assert sum(corner_contrast(0.05, seed) < 0.5 for seed in range(100)) >= 5

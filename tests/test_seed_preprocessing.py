"""The seeds' pipelines (`--preprocessing sef|sef_squash|sam|cle|simtrans`)
against torchvision + PIL (tests/reference/torchvision/make_pipeline_reference.py):
test transforms from the JPEG bytes to the normalised tensor, train
transforms with torchvision's own random draws injected, each RandAugment
operation of SAM, SAM's ten test views; and the draws fgtf makes itself."""
import numpy as np
import pytest
import tensorflow as tf

from conftest import reference_dir
from fgtf.preprocessing import PIPELINE_NAMES, get_pipeline, randaugment, seeds
from fgtf.preprocessing.torchvision_ops import (IMAGENET_MEAN, IMAGENET_STD, decode_rgb, normalize,
                                                resized_crop_box)
from fgtf.errors import ParameterError, UserError

IMAGES = ("portrait", "landscape", "small")
SIDES = {"sef": 448, "sef_squash": 448, "sam": 224, "cle": 448, "simtrans": 224}
# the bar: within one grey level (of 255) on average
MEAN_GREY_LEVELS = 1.0


@pytest.fixture(scope="module")
def reference():
    return np.load(reference_dir() / "torchvision" / "pipelines.npz")


def _encoded(name):
    return tf.io.read_file(str(reference_dir() / "torchvision" / f"{name}.jpg"))


def _grey_levels(normalised):
    """A pipeline's ImageNet-normalised output back to 0..255."""
    return (np.asarray(normalised, np.float64) * IMAGENET_STD + IMAGENET_MEAN) * 255.0


def _sampled(image, reference, side):
    flat = np.asarray(image).reshape(-1, side * side * 3) if np.ndim(image) == 4 else np.asarray(image).reshape(-1)
    return flat[..., reference[f"index_{side}"]]


def _mean_difference(actual, expected):
    return float(np.mean(np.abs(np.asarray(actual, np.float64) - expected)))


@pytest.mark.reference
@pytest.mark.parametrize("image", IMAGES)
@pytest.mark.parametrize("pipeline", sorted(SIDES))
def test_test_transform_equals_torchvision(pipeline, image, reference, capsys):
    side = SIDES[pipeline]
    normalised = get_pipeline(pipeline)(_encoded(image), side, training=False)
    assert normalised.shape == (side, side, 3) and normalised.dtype == tf.float32
    difference = _mean_difference(_sampled(_grey_levels(normalised), reference, side),
                                  reference[f"test_{pipeline}_{image}"])
    _report(capsys, f"{pipeline} test, {image}", difference)
    assert difference < MEAN_GREY_LEVELS, difference


@pytest.mark.reference
@pytest.mark.parametrize("image", IMAGES)
def test_sams_ten_views_equal_its_test_transforms(image, reference, capsys):
    views = get_pipeline("sam").ten_views()(_encoded(image), 224)
    assert views.shape == (10, 224, 224, 3)
    sampled = _sampled(_grey_levels(views), reference, 224)
    expected = reference[f"views_sam_{image}"]
    differences = [_mean_difference(sampled[k], expected[k]) for k in range(10)]
    _report(capsys, f"sam ten views (the largest), {image}", max(differences))
    assert max(differences) < MEAN_GREY_LEVELS, differences
    # the single test view is the last (centre, unflipped) one
    single = _grey_levels(get_pipeline("sam")(_encoded(image), 224, training=False))
    np.testing.assert_allclose(single, _grey_levels(views[9]), atol=1e-3)


def _draws(reference, pipeline, image):
    prefix = f"draws_{pipeline}_{image}_"
    draws = {key[len(prefix):]: tf.constant(reference[key]) for key in reference.files if key.startswith(prefix)}
    if pipeline == "sam":
        draws["augment"] = {key: draws.pop(key) for key in ("ops", "magnitudes", "applied", "signs", "cutout")}
    return draws


@pytest.mark.reference
@pytest.mark.parametrize("image", IMAGES)
@pytest.mark.parametrize("pipeline", sorted(SIDES))
def test_train_transform_with_torchvisions_draws_equals_torchvision(pipeline, image, reference, capsys):
    side = SIDES[pipeline]
    train = getattr(seeds, f"{pipeline}_train")
    transformed = train(decode_rgb(_encoded(image)), side, _draws(reference, pipeline, image))
    difference = _mean_difference(_sampled(_grey_levels(transformed), reference, side),
                                  reference[f"train_{pipeline}_{image}"])
    _report(capsys, f"{pipeline} train, {image}", difference)
    assert difference < MEAN_GREY_LEVELS, difference


def _report(capsys, what, difference):
    """The measured difference on the console (docs/preprocessing.md quotes them)."""
    with capsys.disabled():
        print(f"\n{what}: {difference:.4f} grey levels on average")


@pytest.mark.reference
@pytest.mark.parametrize("operation", randaugment.OPERATIONS)
def test_each_randaugment_operation_is_pils(operation, reference):
    image = tf.constant(reference["op_input"], tf.float32)
    keys = [key for key in reference.files if key.startswith(f"op_{operation}_")]
    assert len(keys) == (6 if operation in ("Rotate", "ShearX", "ShearY", "TranslateX", "TranslateY") else 3)
    for key in keys:
        _, _, magnitude, sign = key.split("_")
        out = randaugment.apply_operation(image, randaugment.OPERATIONS.index(operation), int(magnitude), int(sign))
        np.testing.assert_array_equal(np.asarray(out), reference[key], err_msg=key)


def test_pipelines_are_named_and_normalise_as_they_say():
    assert tuple(PIPELINE_NAMES) == ("inception", "sef", "sef_squash", "sam", "cle", "simtrans")
    encoded = _encoded("small")
    for name in PIPELINE_NAMES:
        pipeline = get_pipeline(name)
        side = SIDES.get(name, 64)
        train = pipeline(encoded, side, training=True, seed=tf.constant([1, 2]))
        again = pipeline(encoded, side, training=True, seed=tf.constant([1, 2]))
        assert train.shape == (side, side, 3)
        np.testing.assert_array_equal(train, again)  # the seed decides every draw
        rgb = pipeline.denormalize(pipeline(encoded, side, training=False))
        assert -1e-5 <= float(tf.reduce_min(rgb)) and float(tf.reduce_max(rgb)) <= 1 + 1e-5, name
    np.testing.assert_allclose(normalize(tf.fill([1, 1, 3], 255.0))[0, 0],
                               (1 - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD), rtol=1e-6)
    with pytest.raises(UserError, match="unknown preprocessing 'imagenet'"):
        get_pipeline("imagenet")
    with pytest.raises(ParameterError, match="^eval_views 10 needs .* \\(sam\\)"):
        get_pipeline("cle").ten_views()


def test_resized_crop_draws_follow_torchvision():
    # the first try that fits is taken; its size is round(sqrt(area * aspect)) x round(sqrt(area / aspect))
    shares = tf.constant([2.0, 0.25] + [0.5] * 8)   # the first cannot fit
    aspects = tf.math.log(tf.constant([1.0, 4 / 3] + [1.0] * 8))
    top, left, height, width = (int(v) for v in resized_crop_box(300, 400, (0.08, 1.0),
                                                                 draws=(shares, aspects, 0.5, 0.999)))
    assert (width, height) == (round(np.sqrt(30000 * 4 / 3)), round(np.sqrt(30000 * 3 / 4)))
    assert top == int(0.5 * (300 - height + 1)) and left == 400 - width
    # no try fits: the whole image, its aspect clamped to 3/4 .. 4/3, centred
    never = tf.fill([10], 2.0), tf.zeros([10]), 0.0, 0.0
    assert [int(v) for v in resized_crop_box(100, 400, (0.08, 1.0), draws=never)] == [0, 133, 100, 133]
    # drawn boxes lie in the image and cover the scale range's share of it
    for seed in range(20):
        top, left, height, width = (int(v) for v in resized_crop_box(375, 500, (0.5, 1.0), seed=[seed, 0]))
        assert 0 <= top <= 375 - height and 0 <= left <= 500 - width
        assert 0.45 <= height * width / (375 * 500) <= 1.0


def test_randaugment_draws_as_sams_code():
    draws = [randaugment.draw(tf.constant([seed, 7])) for seed in range(200)]
    ops = np.concatenate([d["ops"] for d in draws])
    magnitudes = np.concatenate([d["magnitudes"] for d in draws])
    applied = np.concatenate([d["applied"] for d in draws])
    assert set(ops) == set(range(14)) and set(magnitudes) == set(range(1, 10))
    assert 0.4 < applied.mean() < 0.6
    image = tf.fill([40, 50, 3], 200.0)
    out = randaugment.rand_augment(image, draws={"ops": [5, 5], "magnitudes": [1, 1], "applied": [True, True],
                                                 "signs": [1, 1], "cutout": [0.0, 0.999]})
    grey = np.asarray(out)[..., 0] == 127.0
    # the cutout: x from 0 to 16 inclusive, y from int(39.96 - 8) = 31 to the last row
    assert grey.sum() == 17 * (40 - 31) and grey[31:, :17].all()


def test_every_pipeline_inside_tf_data_gives_its_own_eager_output():
    # tf.data traces the pipelines into graphs, all in one process (the seeds' pipelines share their
    # code objects): each must give, batch for batch, what it gives eagerly, train draws included
    from fgtf.input_pipeline import image_file_dataset

    paths = [str(reference_dir() / "torchvision" / f"{image}.jpg") for image in IMAGES]
    seeds_ = np.stack([np.full(len(paths), 7), np.arange(len(paths))], axis=1)
    side = 96  # every resize scales with the side: a small one runs the same code
    for name in PIPELINE_NAMES:
        pipeline = get_pipeline(name)
        train = next(iter(image_file_dataset(paths, image_size=side, batch_size=3, preprocessing=name, seeds=seeds_)))
        test = next(iter(image_file_dataset(paths, image_size=side, batch_size=3, preprocessing=name)))
        assert train.shape == test.shape == (3, side, side, 3), name
        for k, path in enumerate(paths):
            encoded = tf.io.read_file(path)
            np.testing.assert_allclose(train[k], pipeline(encoded, side, True, tf.constant(seeds_[k], tf.int64)),
                                       atol=1e-4, err_msg=f"{name} train {path}")
            np.testing.assert_allclose(test[k], pipeline(encoded, side, False), atol=1e-4,
                                       err_msg=f"{name} test {path}")

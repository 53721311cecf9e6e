"""The named input pipelines every command takes as `--preprocessing NAME`:
decode, the train or test transform, normalisation.

    pipeline = get_pipeline("sam")
    images = pipeline(encoded, 224, training=False)        # (224, 224, 3) float32, ImageNet-normalised
    train = fgtf.input_pipeline.make_dataset(..., PipelineSettings(..., preprocessing="sam"))

`inception` is TF-Slim's (`fgtf.preprocessing.inception`, values in
[-1, 1]), what the slim networks' weights were trained with; the others are
the PyTorch seeds' (`fgtf.preprocessing.seeds`), normalised with the
ImageNet mean and std as torchvision's weights expect. A pipeline's `mean`
and `std` say how its output relates to RGB in [0, 1] (`(x - mean) / std`),
which is what an export bakes into its artifact.
"""
from __future__ import annotations
import dataclasses
from typing import Callable, Optional

import tensorflow as tf

from fgtf.preprocessing import PIPELINE_NAMES, inception, seeds
from fgtf.preprocessing.torchvision_ops import IMAGENET_MEAN, IMAGENET_STD, decode_rgb
from fgtf.errors import ParameterError, UserError

INCEPTION_MEAN = (0.5, 0.5, 0.5)
INCEPTION_STD = (0.5, 0.5, 0.5)


@dataclasses.dataclass(frozen=True)
class Pipeline:
    """One named pipeline. Called as `pipeline(encoded, image_size, training,
    seed=None)` (the `preprocessing` callable of `fgtf.input_pipeline`):
    encoded image bytes -> float32 (S, S, 3), normalised; training needs a
    stateless seed [2].

    name: its `--preprocessing` name.
    train, test: `(encoded, image_size, seed)` and `(encoded, image_size)` -> the image.
    mean, std: per RGB channel: the output is (rgb - mean) / std for rgb in [0, 1].
    views: `(encoded, image_size)` -> (10, S, S, 3) SAM's ten test views
        (see `fgtf.preprocessing.seeds.sam_views`), None where the test
        transform does not crop from a larger resize.
    train_text, test_text, origin: what docs/preprocessing.md's table says of it.
    """
    name: str
    train: Callable
    test: Callable
    mean: tuple
    std: tuple
    views: Optional[Callable]
    train_text: str
    test_text: str
    origin: str

    def __call__(self, encoded, image_size, training, seed=None):
        size = _side(image_size, self.name)
        if training:
            if seed is None:
                raise ValueError("training preprocessing needs a stateless seed of shape [2]")
            return self.train(encoded, size, seed)
        return self.test(encoded, size)

    def ten_views(self):
        """The preprocessing of `fgtf.evaluate --eval_views 10`: a callable
        with this pipeline's signature giving the (10, S, S, 3) test views.
        UserError for a pipeline that has none."""
        if self.views is None:
            raise ParameterError(f"`eval_views` 10 needs a pipeline with SAM's ten test views "
                                 f"({', '.join(n for n in PIPELINE_NAMES if PIPELINES[n].views)}); `preprocessing` "
                                 f"{self.name} has none")

        def views(encoded, image_size, training=False, seed=None):
            return self.views(encoded, _side(image_size, self.name))

        return views

    def denormalize(self, images):
        """Pipeline output -> RGB in [0, 1] (for drawing, and for models that take [0, 1])."""
        return images * tf.constant(self.std, images.dtype) + tf.constant(self.mean, images.dtype)


def get_pipeline(name: str | Pipeline) -> Pipeline:
    """The `Pipeline` named `name`; UserError naming the known ones for another name."""
    if isinstance(name, Pipeline):
        return name
    if name not in PIPELINES:
        raise UserError(f"unknown preprocessing {name!r}; known: {', '.join(PIPELINE_NAMES)}")
    return PIPELINES[name]


def _seed(train_draws, train, test, views=None, **text):
    """A seed's pipeline: decode, then its transform (`fgtf.preprocessing.seeds`, normalising)."""

    def train_pipeline(encoded, size, seed):
        image = decode_rgb(encoded)
        shape = tf.shape(image)
        return train(image, size, train_draws(seed, shape[0], shape[1], size))

    def test_pipeline(encoded, size):
        return test(decode_rgb(encoded), size)

    def view_pipeline(encoded, size):
        return views(decode_rgb(encoded), size)

    return dict(train=train_pipeline, test=test_pipeline, views=view_pipeline if views else None,
                mean=IMAGENET_MEAN, std=IMAGENET_STD, **text)


def _side(image_size, name):
    if isinstance(image_size, int):
        return image_size
    height, width = (int(s) for s in image_size)
    if height != width and name != "inception":
        raise ParameterError(f"`preprocessing` {name} makes square images; got {height}x{width}")
    return height if name != "inception" else (height, width)


PIPELINES = {
    "inception": Pipeline(
        "inception", train=inception.preprocess_for_train, test=inception.preprocess_for_eval,
        mean=INCEPTION_MEAN, std=INCEPTION_STD, views=None,
        train_text="random crop of 5-100 % of the area (aspect 3/4-4/3), resize S, flip, brightness +-32/255, "
                   "saturation x0.5-1.5, x 2 - 1",
        test_text="central 87.5 %, resize S, x 2 - 1", origin="TF-Slim `inception_preprocessing.py`"),
    "sef": Pipeline("sef", **_seed(
        seeds.sef_draws, seeds.sef_train, seeds.sef_test,
        train_text="squash to 600x600, random 448 crop, flip", test_text="squash to 600x600, centre 448 crop",
        origin="SEF `main.py` (CUB, Aircraft)")),
    "sef_squash": Pipeline("sef_squash", **_seed(
        seeds.sef_squash_draws, seeds.sef_squash_train, seeds.sef_squash_test,
        train_text="squash to 448x448, flip", test_text="squash to 448x448", origin="SEF `main.py` (Cars, Dogs)")),
    "sam": Pipeline("sam", **_seed(
        seeds.sam_draws, seeds.sam_train, seeds.sam_test, views=seeds.sam_views,
        train_text="squash to 256x256 (bicubic), RandomResizedCrop 224 (8-100 %), flip, RandAugmentMC(2, 10), "
                   "16-px grey cutout",
        test_text="squash to 256x256 (bicubic), 224 crop at 16, 16 (`--eval_views 10`: SAM's five crops and "
                  "their flips)",
        origin="SAM `data/tranforms.py`, `data/randaugment.py`")),
    "cle": Pipeline("cle", **_seed(
        seeds.cle_draws, seeds.cle_train, seeds.cle_test,
        train_text="RandomResizedCrop 448 (67-100 %), brightness x0.7-1.3, rotation +-15 deg (black corners), "
                   "flip",
        test_text="shorter side 512 (bicubic), centre 448 crop", origin="CLE-ViT `data/build.py`")),
    "simtrans": Pipeline("simtrans", **_seed(
        seeds.simtrans_draws, seeds.simtrans_train, seeds.simtrans_test,
        train_text="rotation +-30 deg (black corners), RandomResizedCrop 224 (50-100 %), flip",
        test_text="shorter side 255, centre 224 crop", origin="SimTrans `data/helper.py`")),
}
assert tuple(PIPELINES) == PIPELINE_NAMES

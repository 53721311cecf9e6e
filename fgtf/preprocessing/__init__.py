"""Image preprocessing as TensorFlow ops, for the input pipeline:

    pipelines.py        the named pipelines of `--preprocessing` (PIPELINE_NAMES):
                        decode, train or test transform, normalisation
    inception.py        TF-Slim's inception preprocessing (training and
                        evaluation), the slim networks'; exported here
    seeds.py            the PyTorch seeds' torchvision transforms (SEF, SAM,
                        CLE-ViT, SimTrans) ...
    torchvision_ops.py  ... made of torchvision's PIL ops as TF ops,
    randaugment.py      ... and SAM's RandAugmentMC
    cle.py              CLE-ViT's two training views (a base view and its erased,
                        tile-shuffled twin), `fgtf.models.heads.HEADS["cle"]`'s

Importing this package imports no TensorFlow (the names below load their
modules on first use), so the commands' `--help` stays instant.
"""
import importlib

# --preprocessing names, in the order of docs/preprocessing.md's table (`fgtf.preprocessing.pipelines.PIPELINES`)
PIPELINE_NAMES = ("inception", "sef", "sef_squash", "sam", "cle", "simtrans")
# --eval_views: one test view, or SAM's ten
EVAL_VIEWS = (1, 10)

_INCEPTION_NAMES = ("AREA_RANGE", "ASPECT_RATIO_RANGE", "BRIGHTNESS_MAX_DELTA", "CENTRAL_FRACTION", "MAX_ATTEMPTS",
                    "MIN_OBJECT_COVERED", "SATURATION_RANGE", "decode_image", "decode_window",
                    "flip_and_distort_color", "preprocess_for_eval", "preprocess_for_train", "preprocess_image")
_PIPELINE_NAMES = ("PIPELINES", "Pipeline", "get_pipeline")

__all__ = ["EVAL_VIEWS", "PIPELINE_NAMES", *_INCEPTION_NAMES, *_PIPELINE_NAMES]


def __getattr__(name):
    if name in _INCEPTION_NAMES:
        return getattr(importlib.import_module("fgtf.preprocessing.inception"), name)
    if name in _PIPELINE_NAMES:
        return getattr(importlib.import_module("fgtf.preprocessing.pipelines"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

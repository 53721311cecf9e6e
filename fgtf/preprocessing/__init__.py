"""Image preprocessing as TensorFlow ops, for the input pipeline:

    inception.py   TF-Slim's inception preprocessing (training and evaluation),
                   the preprocessing of every network; exported here
    cle.py         CLE-ViT's two training views (a base view and its erased,
                   tile-shuffled twin), `fgtf.models.heads.HEADS["cle"]`'s
"""
from fgtf.preprocessing.inception import (AREA_RANGE, ASPECT_RATIO_RANGE, BRIGHTNESS_MAX_DELTA, CENTRAL_FRACTION,
                                          MAX_ATTEMPTS, MIN_OBJECT_COVERED, SATURATION_RANGE, decode_image,
                                          decode_window, flip_and_distort_color, preprocess_for_eval,
                                          preprocess_for_train, preprocess_image)

__all__ = ["AREA_RANGE", "ASPECT_RATIO_RANGE", "BRIGHTNESS_MAX_DELTA", "CENTRAL_FRACTION", "MAX_ATTEMPTS",
           "MIN_OBJECT_COVERED", "SATURATION_RANGE", "decode_image", "decode_window", "flip_and_distort_color",
           "preprocess_for_eval", "preprocess_for_train", "preprocess_image"]

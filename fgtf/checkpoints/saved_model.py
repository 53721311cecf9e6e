"""SavedModel / TF-Hub folders as opaque Keras models: told apart from the
other kinds of weights (`is_saved_model`), wrapped for their features or
their logits, and fed at the image size and pipeline their fgtf model card
records. A SavedModel is a program: loading one runs its graph (see
docs/safety.md)."""
import os

from fgtf.errors import UserError

# The side a SavedModel / TF-Hub folder is fed at unless --image_size or its fgtf model card says otherwise.
SAVED_MODEL_IMAGE_SIZE = 299


def is_saved_model(path):
    """True for a SavedModel / TF-Hub folder (it holds `saved_model.pb`)."""
    path = os.fspath(path)
    return os.path.isdir(path) and os.path.isfile(os.path.join(path, "saved_model.pb"))


def hub_feature_model(path, image_size, preprocessing="inception"):
    """A Keras model around a local SavedModel / TF-Hub image feature-vector
    folder, taking images (B, S, S, 3) as the `preprocessing` pipeline gives
    them (inception's [-1, 1] by default) and returning (B, D).

    TF-Hub image modules take RGB in [0, 1], so the pipeline's normalisation
    is undone first. The folder is loaded with `tensorflow_hub.load` (Keras 3
    cannot use `hub.KerasLayer`, which belongs to Keras 2); nothing is downloaded."""
    import keras
    import tensorflow_hub as hub

    if not is_saved_model(path):
        raise UserError(f"{path} is not a SavedModel folder (no saved_model.pb)")
    module = hub.load(os.fspath(path))
    inputs = keras.Input((image_size, image_size, 3))
    features = _hub_features_layer()(module, preprocessing, name="hub_features")(inputs)
    return keras.Model(inputs, features, name=os.path.basename(os.path.normpath(path)))


def saved_model_classifier(path, image_size, preprocessing="inception"):
    """A Keras model around a local SavedModel classifier, taking images
    (B, S, S, 3) of the `preprocessing` pipeline and returning its logits (B, K): the `logits`
    signature that `python -m fgtf.export` writes (or a `serving_default`
    that returns `logits`). Other SavedModels (feature vectors) are a
    UserError: their output is no classifier."""
    import keras
    import tensorflow_hub as hub

    module = hub.load(os.fspath(path))
    signatures = getattr(module, "signatures", {})
    for name in ("logits", "serving_default"):
        signature = signatures[name] if name in signatures else None
        if signature is not None and "logits" in signature.structured_outputs:
            break
    else:
        raise UserError(f"{path} is a SavedModel without a classifier (no signature returns logits, as python -m "
                        f"fgtf.export writes with a classifier); pass the weights it was exported from")
    inputs = keras.Input((image_size, image_size, 3))
    logits = _hub_features_layer()(module, preprocessing, signature=name, name="hub_logits")(inputs)
    return keras.Model(inputs, logits, name=os.path.basename(os.path.normpath(path)))


def saved_model_image_size(path):
    """The input side a SavedModel folder is fed at: the one the fgtf model
    card beside it (`python -m fgtf.export`'s model_card.json) says, else 299."""
    shape = _model_card(path).get("input", {}).get("shape") or []
    return int(shape[1]) if len(shape) == 4 and shape[1] else SAVED_MODEL_IMAGE_SIZE


def saved_model_preprocessing(path):
    """The pipeline a SavedModel folder's images go through: the one its fgtf
    model card names, else inception (fgtf's only one before cards named it)."""
    recorded = _model_card(path).get("preprocessing")
    return recorded.get("name", "inception") if isinstance(recorded, dict) else "inception"


def _model_card(path):
    """The fgtf model card beside a SavedModel folder (`python -m fgtf.export`'s model_card.json), {} without one."""
    import json

    card = os.path.join(os.path.dirname(os.path.abspath(path)), "model_card.json")
    if not os.path.isfile(card):
        return {}
    with open(card, encoding="utf-8") as handle:
        return json.load(handle)


def _hub_features_layer():
    """The Keras layer class that calls a loaded SavedModel / TF-Hub module (or
    the logits of one of its signatures) on images of a pipeline, taken back
    to RGB in [0, 1]. TensorFlow backend only (the module is a TF graph).
    Defined on first use so that importing this module (e.g. for `--help`)
    does not import Keras and TensorFlow."""
    import keras

    from fgtf.preprocessing import get_pipeline

    class HubFeatures(keras.layers.Layer):
        def __init__(self, module, preprocessing="inception", signature=None, **kwargs):
            super().__init__(trainable=False, **kwargs)
            self.module = module  # kept: its signatures need its variables alive
            self.pipeline = get_pipeline(preprocessing)
            self.signature = signature

        def call(self, images):
            images = self.pipeline.denormalize(images)
            if self.signature is None:
                return self.module(images)
            function = self.module.signatures[self.signature]
            (key,) = function.structured_input_signature[1]
            return function(**{key: images})["logits"]

    return HubFeatures


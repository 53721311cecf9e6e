"""The network of a training run: a registry backbone with its TF-Slim
classifier, or its feature map wrapped by a head of the head table
(`fgtf.models.heads.HEADS`). Training builds it, and every command that
loads a run rebuilds it the same way (`fgtf.models.weights.load_run_network`).
A `NetworkSpec` says which network; a run folder's `fgtf.runs.RunConfig` is one.
"""
import dataclasses
from typing import Optional

import keras

from fgtf.errors import InputSizeError, ParameterError
from fgtf.models import build_model
from fgtf.models.heads import NO_HEAD, build_head, head_record


@dataclasses.dataclass(frozen=True)
class NetworkSpec:
    """Which network a run trains.

    model_name: the backbone (`fgtf.models.list_models()`).
    num_classes: the classifier's classes.
    image_size: the input side in pixels.
    head: a name of `fgtf.models.heads.HEADS`, or `NO_HEAD` for the
        backbone's slim classifier.
    head_options: the head builder's keyword arguments.
    aux_logits: with the slim classifier, also the Inception aux logits.
    drop_path_rate: the stochastic depth of a backbone that has it (Swin's
        `drop_path_rate`; the rest of fgtf's networks have none); None: none.
    """
    model_name: str
    num_classes: int
    image_size: int
    head: str = NO_HEAD
    head_options: dict = dataclasses.field(default_factory=dict)
    aux_logits: bool = False
    drop_path_rate: Optional[float] = None


def build_network(spec):
    """The Keras model a run trains (`spec` a `NetworkSpec`): backbone
    `spec.model_name` with the slim classifier (plus aux logits when
    `spec.aux_logits`), or its feature map wrapped by the head `spec.head`
    (sef, sam, cle) built with `spec.head_options`. At inference it outputs
    logits."""
    try:
        return _build_network(spec)
    except InputSizeError as error:
        raise image_size_mistake(error, spec.model_name, spec.image_size) from None


def image_size_mistake(error, model_name, image_size):
    """The `ParameterError` of an `InputSizeError` from building `model_name`
    at `image_size`: the builders say it Keras-applications style; for the
    caller it is a mistake in its `image_size`."""
    fault = "is too small for" if error.smallest is not None else "does not suit"
    return ParameterError(f"`image_size` {image_size} {fault} {model_name}: {error}")


def backbone_of(model):
    """The slim-named backbone: the model itself, or the backbone a head wraps
    (the first nested keras.Model)."""
    nested = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    return nested[0] if nested else model


def _build_network(spec):
    size = spec.image_size
    extra = {"drop_path_rate": spec.drop_path_rate} if spec.drop_path_rate else {}
    if spec.head == NO_HEAD:
        if spec.aux_logits:
            extra["aux_logits"] = True
        return build_model(spec.model_name, classes=spec.num_classes, classifier_activation=None,
                           input_shape=(size, size, 3), **extra)
    head_record(spec.head)  # an unknown head is refused before the backbone is built
    backbone = build_model(spec.model_name, include_top=False, input_shape=(size, size, 3), **extra)
    return build_head(spec.head, backbone, spec.num_classes, **spec.head_options)

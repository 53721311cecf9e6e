"""The networks built from the registry for training and loading, and the
graph of their pooled features.

* `build_network`: the network of a training run, a registry backbone with
  its TF-Slim classifier, or its feature map wrapped by a head of the head
  table (`fgtf.models.heads.HEADS`). Training builds it, and every command
  that loads a run rebuilds it the same way (`fgtf.checkpoints.load_network`).
  A `NetworkSpec` says which network; a run folder's `fgtf.runs.RunConfig` is one.
* `build_plain_network`: a registry network with or without its classifier,
  image sizes it cannot take said as a user's mistake.
* `pooled_features_model`: a network's pooled features (and logits), as
  every command that extracts, exports or compares features uses them.
"""
import dataclasses
from typing import Optional, Sequence

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


def build_network(spec: NetworkSpec) -> keras.Model:
    """The Keras model a run trains (`spec` a `NetworkSpec`): backbone
    `spec.model_name` with the slim classifier (plus aux logits when
    `spec.aux_logits`), or its feature map wrapped by the head `spec.head`
    (sef, sam, cle) built with `spec.head_options`. At inference it outputs
    logits."""
    extra = {"drop_path_rate": spec.drop_path_rate} if spec.drop_path_rate else {}
    if spec.head == NO_HEAD:
        return build_plain_network(spec.model_name, spec.image_size, classes=spec.num_classes,
                                   aux_logits=spec.aux_logits, **extra)
    head_record(spec.head)  # an unknown head is refused before the backbone is built
    backbone = build_plain_network(spec.model_name, spec.image_size, **extra)
    return build_head(spec.head, backbone, spec.num_classes, **spec.head_options)


def build_plain_network(model_name: str, image_size: int | None = None, *, classes: int | None = None,
                        aux_logits: bool = False, **options) -> keras.Model:
    """Registry network `model_name` at `image_size` (default: the network's
    own) with its TF-Slim classifier of `classes` (logits; plus the Inception
    aux logits with `aux_logits`), or without a classifier (`classes` None),
    its output the feature map. `options`: more keywords of its builder (e.g.
    `drop_path_rate`). An image size it cannot take is a UserError (see
    `image_size_mistake`)."""
    top = {"include_top": True, "classes": int(classes), "classifier_activation": None} if classes else \
        {"include_top": False}
    if aux_logits:
        top["aux_logits"] = True
    try:
        return build_model(model_name, input_shape=(image_size, image_size, 3) if image_size else None, **top,
                           **options)
    except InputSizeError as error:
        raise image_size_mistake(error, model_name, image_size) from None


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


def pooled_features_model(network: keras.Model, model_name: str,
                          outputs: Sequence[str] = ("features",)) -> keras.Model:
    """One Keras graph from `network`'s input to `outputs`, in that order (one
    output: a tensor, else a list): "features", the spatial mean of the
    feature end point of `model_name` (`fgtf.models.feature_endpoint`) in
    the network's backbone, named `features`, and "logits", the network's
    classifier (aux logits left out; a head's inference path traced into
    the graph). Plain Keras layers sharing `network`'s, so no fgtf class is
    needed to run or load it and the backbone runs once for both outputs.
    The features `fgtf.extract_features` writes, `fgtf.export` exports and
    SimTrans's SimNet compares."""
    from fgtf.models import feature_endpoint
    from fgtf.models.heads.base import HeadModel

    backbone = backbone_of(network)
    tensors = {"features": keras.layers.GlobalAveragePooling2D(name="features")(
        backbone.get_layer(feature_endpoint(model_name)).output)}
    if "logits" in outputs:
        if backbone is network:
            tensors["logits"] = network.outputs[0]  # the classifier (aux logits, if any, left out)
        elif isinstance(network, HeadModel):
            tensors["logits"] = network.head(keras.ops.cast(backbone.output, "float32"), training=False)["logits"]
        else:
            raise ParameterError(f"cannot export the classifier of {type(network).__name__} networks; use `outputs` "
                                 f"features")
    result = [tensors[name] for name in outputs]
    return keras.Model(backbone.inputs, result if len(result) > 1 else result[0], name=f"{model_name}_features")

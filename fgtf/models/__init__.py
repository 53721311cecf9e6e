"""Keras 3 backbones that mirror the TF-Slim networks, and their registry.

    model = fgtf.models.build_model("inception_v3", include_top=False, pooling="avg")

Each family lives in its own module with one public builder per variant
(keras.applications style); `build_model` looks a name up here.

Your own backbones reach every fgtf command (train, evaluate,
extract_features, visualize_attention, export, simtrans) through a module
that calls `register_model` when it is imported, named in either place:

* the environment variable `FGTF_MODEL_MODULES=my_nets,lab.backbones`
  (comma-separated importable modules), or
* the entry-point group `fgtf.models` of an installed package, e.g. in its
  setup.py `entry_points={"fgtf.models": ["my_nets = my_nets"]}`; an entry
  that names a function (`my_nets:register`) is called with no arguments.

They are loaded once, the first time the registry is asked for a name.
"""
from __future__ import annotations

import importlib
import inspect
import os
from collections import namedtuple
from typing import TYPE_CHECKING, Callable

from fgtf.errors import UserError

if TYPE_CHECKING:
    import keras


# The Inception aux heads end in a 5x5 VALID conv on a 5x5 pooled map, which
# exists only from 299x299 inputs up.
MIN_AUX_LOGITS_SIZE = 299

# The input pipeline of networks whose record names none (`fgtf.preprocessing.PIPELINES`).
DEFAULT_PREPROCESSING = "inception"
# The input side of networks whose record names none.
DEFAULT_IMAGE_SIZE = 299

ModelRecord = namedtuple("ModelRecord", "builder feature_endpoint aux_logits min_size default_size preprocessing",
                         defaults=(DEFAULT_IMAGE_SIZE, DEFAULT_PREPROCESSING))
ModelRecord.__doc__ = """One network of the registry.

builder: its public builder, or `(module, function)` imported on first use so
    that `import fgtf.models` stays cheap.
feature_endpoint: the layer whose spatial mean the original feature extraction
    used (Swin: the final LayerNorm's (batch, H/32, W/32, C) map).
aux_logits: whether the builder can add the Inception auxiliary classifier.
min_size: the smallest input side it builds at (None: not recorded); the
    Inceptions' stride-2 VALID reductions need 75, Swin's windows a 56x56
    token grid (224).
default_size: the input side every command uses when `--image_size` is
    left out (the builder's own default).
preprocessing: the `--preprocessing` pipeline every command uses when it
    is left out: the one the network's weights were trained with
    (`inception`: slim's [-1, 1]; the torchvision-style pipelines normalise
    with the ImageNet mean and std, as torchvision's and Swin's weights
    expect).
"""


def _record(module, function, feature_endpoint, *, min_size, aux_logits=False, default_size=DEFAULT_IMAGE_SIZE,
            preprocessing=DEFAULT_PREPROCESSING):
    return ModelRecord((f"fgtf.models.{module}", function), feature_endpoint, aux_logits, min_size, default_size,
                       preprocessing)


def _torchvision_resnet(function):
    # simtrans's pipeline is the nearest of the seeds' to torchvision's own ImageNet recipe
    # (random resized crop and flip; shorter side 255, centre crop 224)
    return _record("resnet", function, "layer4", min_size=32, default_size=224, preprocessing="simtrans")


_MODELS = {
    "inception_v3": _record("inception_v3", "InceptionV3", "Mixed_7c", min_size=75, aux_logits=True),
    "inception_v3_se": _record("inception_v3", "InceptionV3SE", "Mixed_7c", min_size=75, aux_logits=True),
    "inception_v4": _record("inception_v4", "InceptionV4", "Mixed_7d", min_size=75, aux_logits=True),
    "inception_resnet_v2": _record("inception_resnet_v2", "InceptionResNetV2", "Conv2d_7b_1x1.Relu", min_size=75,
                                   aux_logits=True),
    "inception_resnet_v2_se": _record("inception_resnet_v2", "InceptionResNetV2SE", "Conv2d_7b_1x1.Relu",
                                      min_size=75, aux_logits=True),
    "resnet_v2_50": _record("resnet_v2", "ResNet50V2", "postnorm.Relu", min_size=32),
    "resnet_v2_101": _record("resnet_v2", "ResNet101V2", "postnorm.Relu", min_size=32),
    "resnet_v2_152": _record("resnet_v2", "ResNet152V2", "postnorm.Relu", min_size=32),
    "resnet18": _torchvision_resnet("ResNet18"),
    "resnet34": _torchvision_resnet("ResNet34"),
    "resnet50": _torchvision_resnet("ResNet50"),
    "resnet101": _torchvision_resnet("ResNet101"),
    "resnet152": _torchvision_resnet("ResNet152"),
    # CLE-ViT's pipeline: its Swin-B 22k weights were trained on ImageNet-normalised inputs
    "swin_tiny": _record("swin", "SwinTiny", "norm", min_size=224, default_size=224, preprocessing="cle"),
    "swin_small": _record("swin", "SwinSmall", "norm", min_size=224, default_size=224, preprocessing="cle"),
    "swin_base": _record("swin", "SwinBase", "norm", min_size=224, default_size=224, preprocessing="cle"),
    "small_cnn": _record("small_cnn", "SmallCNN", "Conv2d_6.Relu", min_size=32, default_size=64),
}

PLUGIN_MODULES_VARIABLE = "FGTF_MODEL_MODULES"
PLUGIN_ENTRY_POINT_GROUP = "fgtf.models"
_plugins_loaded = False


def list_models() -> list[str]:
    """Names accepted by `build_model`."""
    load_plugins()
    return sorted(_MODELS)


def get_builder(name):
    """The public builder function of network `name`."""
    builder = model_record(name).builder
    if callable(builder):
        return builder
    module, function = builder
    return getattr(importlib.import_module(module), function)


def model_record(name: str) -> ModelRecord:
    """The `ModelRecord` of network `name`; an unknown name is a UserError listing the known ones."""
    load_plugins()
    if name not in _MODELS:
        raise UserError(f"unknown model {name!r}; known models: {', '.join(list_models())}")
    return _MODELS[name]


def has_aux_logits(name: str, image_size: int | None = None) -> bool:
    """Whether network `name` gets the Inception auxiliary classifier at
    `image_size` (None: at some size): its aux head ends in a 5x5 VALID conv on
    a 5x5 pooled map, which exists only from `MIN_AUX_LOGITS_SIZE` up."""
    return model_record(name).aux_logits and (image_size is None or image_size >= MIN_AUX_LOGITS_SIZE)


def register_model(name: str, builder: Callable[..., keras.Model], feature_endpoint: str, *,
                   aux_logits: bool | None = None, min_size: int | None = None,
                   default_size: int = DEFAULT_IMAGE_SIZE, preprocessing: str = DEFAULT_PREPROCESSING) -> None:
    """Make your own backbone available by `name` to `build_model` and every
    fgtf command run in this process. For the command-line tools, call it in
    a module named by `FGTF_MODEL_MODULES` or the `fgtf.models` entry-point
    group (see the module docstring).

    builder: a function with the keras.applications-style arguments
        (`include_top`, `weights`, `input_shape`, `pooling`, `classes`,
        `classifier_activation`) returning a functional `keras.Model`.
    feature_endpoint: name of the layer whose spatial mean is the image feature.
    aux_logits: whether the builder can add an Inception auxiliary classifier
        (None: when it takes an `aux_logits` argument).
    min_size: the smallest input side the builder accepts, when you know it.
    default_size: the input side commands use when `--image_size` is left out.
    preprocessing: the input pipeline commands use when `--preprocessing`
        is left out (a name of `fgtf.preprocessing.PIPELINES`).
    """
    if not callable(builder):
        raise TypeError("builder must be a function returning a keras.Model")
    if aux_logits is None:
        aux_logits = "aux_logits" in inspect.signature(builder).parameters
    _MODELS[name] = ModelRecord(builder, feature_endpoint, bool(aux_logits), min_size, int(default_size),
                                preprocessing)


def feature_endpoint(name: str) -> str:
    """Layer name of network `name`'s feature end point (`Mixed_7c`, `Mixed_7d`,
    the ReLU `Conv2d_7b_1x1.Relu` of Inception-ResNet-v2, whose conv holds the
    name `Conv2d_7b_1x1`, the slim ResNets' post-norm ReLU `postnorm.Relu`,
    torchvision's `layer4`)."""
    return model_record(name).feature_endpoint


def default_image_size(name: str) -> int:
    """The input side of network `name` when no `--image_size` is given."""
    return model_record(name).default_size


def default_preprocessing(name: str) -> str:
    """The `--preprocessing` pipeline of network `name` when none is given."""
    return model_record(name).preprocessing


def build_model(name: str, **kwargs) -> keras.Model:
    """Build network `name` with the keras.applications-style arguments of its
    builder (`include_top`, `weights`, `input_shape`, `pooling`, `classes`,
    `classifier_activation`, `aux_logits`, `dropout`)."""
    return get_builder(name)(**kwargs)


def load_plugins():
    """Import the modules of `FGTF_MODEL_MODULES` and load the `fgtf.models`
    entry points (calling those that name a function), once per process, so
    the backbones they register are known. A plugin that cannot be loaded is
    a UserError naming it."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True  # set first: a plugin may itself call into the registry
    from importlib.metadata import entry_points

    names = [n.strip() for n in os.environ.get(PLUGIN_MODULES_VARIABLE, "").split(",") if n.strip()]
    for name in names:
        _load_plugin(f"{PLUGIN_MODULES_VARIABLE} names module {name!r}", lambda name=name: importlib.import_module(name))
    for entry in entry_points(group=PLUGIN_ENTRY_POINT_GROUP):
        _load_plugin(f"entry point {entry.name!r} ({entry.value}) of group {PLUGIN_ENTRY_POINT_GROUP}", entry.load)


def _load_plugin(what, load):
    try:
        loaded = load()
        if callable(loaded):
            loaded()
    except Exception as error:  # any failure of the user's code: say which plugin, in one line
        first_line = (str(error).splitlines() or [""])[0]
        raise UserError(f"{what}, which failed to load: {type(error).__name__}: {first_line}") from None


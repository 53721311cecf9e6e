"""Heads that wrap an fgtf backbone's feature map into a trainable
`keras.Model` with the method's own losses (computed in the model, so
`compile` + `fit`, `evaluate`, `predict`, `.keras` saving and tf.distribute
work unchanged):

    backbone = fgtf.models.build_model("resnet_v2_50", include_top=False)
    model = build_sef(backbone, num_classes=200, groups=4)
    model = build_sam(backbone, num_classes=200, target="cam", bilinear="single")

`HEADS` is the one table of the heads `fgtf.train --head` offers: for each
name, how a run builds it from its flags, what its training batches hold, how
it is compiled and how its class activation map is drawn. Importing this
package does not import Keras (a CLI lists the names before it needs Keras);
the head classes and builders load on first use.
"""
import importlib
from typing import Callable, NamedTuple, Optional

from tfrecord_tools.cli import positive_int  # an argparse type, from the ground floor: models sit below the commands
from fgtf.errors import UserError

NO_HEAD = "none"  # the backbone's own (slim) classifier


class Head(NamedTuple):
    """One head of `HEADS`. `builder`, `model_class` and
    `training_preprocessing` are `(module, attribute)`, imported on first use.

    builder: `f(backbone, num_classes, **options)` -> the head's model.
    model_class: the class of the models `builder` makes.
    options: `f(flag_values, dataset)` -> the builder's keyword arguments
        (JSON-able: a run folder records them) from the values of the head's
        `flags` ({destination: value}) and the run's `--dataset`.
    flags: the head's own `HeadFlag`s, which `fgtf.train` offers.
    views: images per training example (CLE: the base and the altered view).
    training_preprocessing: the function turning the image
        preprocessing `fn(encoded, image_size, training, seed)` into the
        head's (one that gives `views` images in training), or None.
    loss_built_in: the model computes its whole loss (compile without `loss`).
    cam_source: `f(model)` -> (images -> feature map (N, h, w, C), classifier
        kernel (C, K) on its spatial mean), the pieces of its class
        activation map; None when the model draws its own maps
        (`model.attention_maps(images, labels)`).
    """
    builder: tuple
    model_class: tuple
    options: Callable
    flags: tuple = ()
    views: int = 1
    training_preprocessing: Optional[tuple] = None
    loss_built_in: bool = False
    cam_source: Optional[Callable] = None


class HeadFlag(NamedTuple):
    """A command-line option of one head: `--<dest>`, its default, help,
    and `type` or `choices` as argparse takes them."""
    dest: str
    default: object
    help: str
    type: Optional[Callable] = None
    choices: Optional[tuple] = None


def _sef_options(values, dataset):
    return {"groups": values["sef_groups"]}


def _sam_options(values, dataset):
    bilinear = values["sam_bilinear"]
    return {"target": values["sam_target"], "bilinear": None if bilinear == "none" else bilinear}


def _cle_options(values, dataset):
    from fgtf.models.heads.cle import cle_loss_weights

    return {"loss_weights": list(cle_loss_weights(dataset))}


_SEF_FLAGS = (HeadFlag("sef_groups", 4, "SEF channel groups (CUB 4, Aircraft 3, Cars/Dogs 2)", type=positive_int),)
_SAM_FLAGS = (HeadFlag("sam_target", "cam", "SAM pseudo-attention", choices=("cam", "gradcam")),
              HeadFlag("sam_bilinear", "single", "SAM-Bilinear pooling form (none: plain SAM)",
                       choices=("none", "single", "multi", "compact")))


def _sef_cam(model):
    return model.feature_map, model.global_classifier.kernel


def _cle_cam(model):
    if model.feature_pool is None:
        raise UserError(f"no CAM for CLE on {model.backbone.name}: its backbone outputs pooled vectors, "
                        "not a feature map")
    return (lambda images: model.backbone(images, training=False)), model.head.kernel


HEADS = {
    "sef": Head(("fgtf.models.heads.sef", "build_sef"), ("fgtf.models.heads.sef", "SEF"), _sef_options,
                flags=_SEF_FLAGS, cam_source=_sef_cam),
    "sam": Head(("fgtf.models.heads.sam", "build_sam"), ("fgtf.models.heads.sam", "SAM"), _sam_options,
                flags=_SAM_FLAGS),
    "cle": Head(("fgtf.models.heads.cle", "build_cle"), ("fgtf.models.heads.cle", "CLEModel"), _cle_options,
                views=2, training_preprocessing=("fgtf.preprocessing.cle", "cle_preprocessing"), loss_built_in=True,
                cam_source=_cle_cam),
}
HEAD_CHOICES = (NO_HEAD, *HEADS)


def head_record(name):
    """The `Head` of `name`; an unknown name is a UserError listing the known ones."""
    if name not in HEADS:
        raise UserError(f"unknown head {name!r}; choose one of {', '.join(HEAD_CHOICES)}")
    return HEADS[name]


def head_options(head, flag_values, dataset):
    """The builder's keyword arguments of head `head` (none: {}) from the
    values of its flags ({destination: value}) and the run's dataset name."""
    return {} if head == NO_HEAD else head_record(head).options(flag_values, dataset)


def build_head(name, backbone, num_classes, **options):
    """Head `name` on `backbone` (a Keras model with one 4-D output)."""
    return imported(head_record(name).builder)(backbone, num_classes, **options)


def head_of(model):
    """The `Head` whose model class `model` is, or None (a plain network)."""
    for head in HEADS.values():
        if isinstance(model, imported(head.model_class)):
            return head
    return None


def imported(reference):
    """The attribute a `(module, attribute)` reference of a `Head` names."""
    module, attribute = reference
    return getattr(importlib.import_module(module), attribute)


# The head classes and builders, imported from their modules on first use.
_EXPORTS = {
    "HeadModel": "fgtf.models.heads.base", "SAM": "fgtf.models.heads.sam", "build_sam": "fgtf.models.heads.sam",
    "SEF": "fgtf.models.heads.sef", "build_sef": "fgtf.models.heads.sef",
    "CLEModel": "fgtf.models.heads.cle", "build_cle": "fgtf.models.heads.cle",
    "cle_loss_weights": "fgtf.models.heads.cle",
}
__all__ = ["HEADS", "HEAD_CHOICES", "NO_HEAD", "Head", "HeadFlag", "build_head", "head_of", "head_options", "head_record",
           "imported", *_EXPORTS]


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

"""TF-Slim checkpoints, Keras weights files, fgtf runs and SavedModels -> Keras networks.

    network, used = fgtf.checkpoints.load_network("runs/cub")   # any kind of --checkpoint

    python -m fgtf.checkpoints convert --checkpoint X.ckpt --model inception_v3 --out X.weights.h5
    python -m fgtf.checkpoints convert --checkpoint runs/cub --out cub.weights.h5

A `--checkpoint` path is told apart here (`checkpoint_kind`), the network it
needs is built, and its weights go in through the loaders of
`fgtf.models.weights` (slim name mapping, Keras files, run checkpoints); a
SavedModel / TF-Hub folder is wrapped as an opaque Keras model. `convert`
maps a TF-Slim checkpoint (or the plain network of an fgtf training run, its EMA weights
when it kept them, or a Keras `.weights.h5` of `--model`) onto the fgtf
network once and writes a Keras `.weights.h5` that records which network
it holds. Every command that takes weights reads them through
`load_network` (to run a network) or `load_into` (to start one) and prints
what it loaded with `describe`.

    __init__.py       telling kinds apart and loading them (this module)
    saved_model.py    SavedModel / TF-Hub folders as opaque Keras models
    weights_file.py   weights -> a .weights.h5 recording its network (convert_checkpoint)
    __main__.py       the command: python -m fgtf.checkpoints convert
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Sequence

from fgtf.models import default_preprocessing
from fgtf.models.weights import (  # noqa: F401  (load_weights: re-exported for callers of fgtf.checkpoints)
    CLASSIFIER_SCOPES, EMA_SUFFIX, TORCH_SUFFIXES, checkpoint_prefix, keras_weights_record, load_keras_weights,
    load_run_network, load_run_weights, load_slim_checkpoint, load_torch_weights, load_weights, save_keras_weights,
    torch_classes, torch_state_dict)
from fgtf.checkpoints.saved_model import (hub_feature_model, is_saved_model, saved_model_classifier,
                                          saved_model_image_size, saved_model_preprocessing)
from fgtf.errors import ParameterError, UserError

if TYPE_CHECKING:
    import keras


# The backbone a TF-Slim checkpoint or unrecorded weights file is taken for when --model is not given.
DEFAULT_MODEL = "inception_v3"


def checkpoint_kind(path: str) -> str:
    """What a `--checkpoint` path holds: 'run' (an fgtf training run folder or
    one of its checkpoint prefixes), 'saved_model' (a SavedModel / TF-Hub
    folder), 'keras' (a `.weights.h5` file), 'torch' (a torch state dict:
    `.pth`, `.pt`, `.pth.tar`) or 'slim' (a TF-Slim checkpoint prefix, or a
    folder holding one). UserError when nothing is there."""
    from fgtf import runs

    path = os.fspath(path)
    if not os.path.exists(path) and not os.path.exists(path + ".index"):
        raise UserError(f"checkpoint {path} not found (a TF-Slim .ckpt prefix, a .weights.h5 file, a torchvision "
                        f".pth, an fgtf run folder or a SavedModel folder)")
    if is_saved_model(path):
        return "saved_model"
    if path.endswith(".h5"):
        return "keras"
    if path.endswith(TORCH_SUFFIXES):
        return "torch"
    return "run" if runs.is_run_checkpoint(path) else "slim"


def load_network(checkpoint: str, *, model: str | None = None, image_size: int | None = None,
                 include_top: bool = True, use_ema: bool = True, num_classes: int | None = None,
                 saved_model_use: str | None = None, preprocessing: str | None = None) -> tuple[keras.Model, dict]:
    """Build the network that `checkpoint` holds and load it, for inference,
    whatever its kind (see `checkpoint_kind`):

    * an fgtf run: the network of its run_config.json (with its head) from
      its latest checkpoint, EMA weights when it kept them and `use_ema`;
      its image size unless `image_size` is given; `model`, when given, must
      be the run's (see `fgtf.models.weights.load_run_network`);
    * a `.weights.h5`: the network it records (fgtf writes the name and class
      count), else `model` with a classifier of `num_classes`;
    * a TF-Slim checkpoint: `model` (default inception_v3), EMA shadows when
      present and `use_ema`, with the classifier sized from the checkpoint
      (or `num_classes`);
    * a torch state dict: `model`, default the network its keys say
      (torchvision's ResNets, Swin), with the classifier sized from the
      checkpoint (or `num_classes`: the checkpoint's is then skipped);
    * a SavedModel / TF-Hub folder (an opaque graph): its classifier (see
      `saved_model_classifier`), or without `include_top` its feature vector
      (see `hub_feature_model`), at `image_size`, else the size its fgtf
      model card says, else 299, fed through `preprocessing`, else the
      pipeline its card says, else inception; refused instead, saying it
      cannot be `saved_model_use`, when that is given (e.g. a CAM needs the
      layers).

    `include_top=False` builds plain backbones without their classifier
    (runs keep theirs). Returns (network, used): `used` says what was loaded,
    as `describe` prints it and the commands record it: kind, weights (the
    file or checkpoint prefix read), model, head, image_size, num_classes
    (None without a classifier), ema (True/False, None when a weights
    file does not say) and preprocessing (the `--preprocessing` pipeline
    of its inputs: `preprocessing` when given, else a run's own, a
    SavedModel card's, or the network's registry default)."""
    kind = checkpoint_kind(checkpoint)
    if kind == "saved_model":
        if saved_model_use:
            raise UserError(saved_model_refusal(checkpoint, saved_model_use))
        size = image_size or saved_model_image_size(checkpoint)
        preprocessing = preprocessing or saved_model_preprocessing(checkpoint)
        network = (saved_model_classifier if include_top else hub_feature_model)(checkpoint, size, preprocessing)
        return network, {"kind": kind, "weights": os.path.abspath(checkpoint), "model": "saved_model", "head": "none",
                         "image_size": size, "num_classes": int(network.output_shape[-1]) if include_top else None,
                         "ema": None, "preprocessing": preprocessing}
    if kind == "run":
        from fgtf import runs

        _, prefix, config = runs.run_checkpoint(checkpoint, model)
        network, used = load_run_network(config, prefix, image_size=image_size, use_ema=use_ema)
        return network, {**used, "preprocessing": preprocessing or used["preprocessing"]}
    if kind == "keras":
        record = keras_weights_record(checkpoint)
        recorded = record.get("model")
        if model and recorded and model != recorded:
            raise ParameterError(f"{checkpoint} holds {recorded} weights, not `model` {model}; leave `model` out to "
                                 f"use the file's network")
        name = model or recorded or DEFAULT_MODEL
        classes = (record.get("classes") or num_classes) if include_top else None
        if include_top and classes is None:
            raise UserError(f"{checkpoint} does not record its class count (it was not written by fgtf), so its "
                            f"classifier cannot be built; give it its record with python -m fgtf.checkpoints "
                            f"convert --checkpoint {checkpoint} --model NAME --num_classes N --out NEW.weights.h5")
        network = build_backbone(name, image_size, classes=classes, aux_logits=record.get("aux_logits", False))
    elif kind == "torch":
        state = torch_state_dict(checkpoint)
        name = model or _torch_network_name(state, checkpoint)
        classes = (num_classes or torch_classes(state)) if include_top else None
        if include_top and classes is None:
            raise ParameterError(f"{checkpoint} holds no classifier (fc or head); pass `num_classes`, or use it for "
                                 f"features")
        network = build_backbone(name, image_size, classes=classes)
    else:
        name = model or DEFAULT_MODEL
        network = _slim_network(name, checkpoint_prefix(checkpoint), image_size, include_top=include_top,
                                num_classes=num_classes)
    used = load_into(network, checkpoint, model_name=name, use_ema=use_ema,
                     exclude_scopes=() if include_top else CLASSIFIER_SCOPES)
    return network, {**used, "preprocessing": preprocessing or default_preprocessing(name)}


def load_into(model: keras.Model, checkpoint: str, *, model_name: str | None = None,
              exclude_scopes: Sequence[str] = (), use_ema: bool = True,
              saved_model_use: str = "loaded into a network") -> dict:
    """Load the weights `checkpoint` holds into the built network `model`
    (training's and SimTrans's start weights; `load_network` for the files):

    * an fgtf run: its network's layers copied by name (EMA weights when it
      kept them and `use_ema`; not its optimizer or step; `model_name`, when
      given, must be the run's), see `fgtf.models.weights.load_run_weights`;
    * a `.weights.h5`, torch state dict or TF-Slim checkpoint: into the
      backbone of `model` (the model itself, or the backbone its head
      wraps), see `load_keras_weights`, `load_torch_weights` and
      `load_slim_checkpoint`;
    * a SavedModel: refused, saying it cannot be `saved_model_use`.

    `exclude_scopes` (slim scopes, a list or comma-separated) are left as they
    are. Weights of another network are a UserError. Returns what was used,
    as `load_network` does (model: the run's, else `model_name` or the
    network's name; image_size: the run's or the network's input side)."""
    from fgtf import runs
    from fgtf.models.network import backbone_of

    kind = checkpoint_kind(checkpoint)
    if kind == "saved_model":
        raise UserError(saved_model_refusal(checkpoint, saved_model_use))
    if kind == "run":
        _, prefix, config = runs.run_checkpoint(checkpoint, model_name)
        return load_run_weights(model, config, prefix, exclude_scopes=exclude_scopes, use_ema=use_ema)
    backbone = backbone_of(model)
    if kind == "keras":
        load_keras_weights(backbone, checkpoint, exclude_scopes=exclude_scopes)
        weights, ema = checkpoint, keras_weights_record(checkpoint).get("ema")
    elif kind == "torch":
        load_torch_weights(backbone, checkpoint, exclude_scopes=exclude_scopes)
        weights, ema = checkpoint, None
    else:
        weights = checkpoint_prefix(checkpoint)
        read = load_slim_checkpoint(backbone, weights, exclude_scopes=exclude_scopes,
                                    use_ema="auto" if use_ema else False)
        ema = any(name.endswith(EMA_SUFFIX) for name in read)
    head = "none" if backbone is model else model.name
    outputs = model.outputs[0].shape if getattr(model, "outputs", None) else ()
    classes = int(outputs[-1]) if len(outputs) == 2 else None  # logits (B, K); a feature map is 4-D
    return {"kind": kind, "weights": os.path.abspath(weights), "model": model_name or model.name, "head": head,
            "image_size": int(model.input_shape[1]), "num_classes": classes, "ema": ema}


def recorded_network(checkpoint):
    """What `checkpoint` says about its network without loading it: {'model',
    'image_size', 'num_classes', 'preprocessing'} of a run's run_config.json,
    {'model', 'num_classes'} of an fgtf `.weights.h5` or a torch state dict
    whose network fgtf knows, else {} (a TF-Slim checkpoint or SavedModel
    does not say). Commands take the settings they were not given from it."""
    kind = checkpoint_kind(checkpoint)
    if kind == "run":
        from fgtf import runs

        config = runs.load_run_config(checkpoint if os.path.isdir(checkpoint) else os.path.dirname(checkpoint))
        return {"model": config.model_name, "image_size": config.image_size, "num_classes": config.num_classes,
                "preprocessing": config.preprocessing}
    if kind == "keras":
        record = keras_weights_record(checkpoint)
        return {key: record[name] for key, name in (("model", "model"), ("num_classes", "classes")) if name in record}
    if kind == "torch":
        state = torch_state_dict(checkpoint)
        recorded = {"model": torch_network(state), "num_classes": torch_classes(state)}
        return {key: value for key, value in recorded.items() if value is not None}
    return {}


KIND_NAMES = {"run": "fgtf run", "slim": "TF-Slim checkpoint", "keras": "Keras weights", "torch": "torch state dict",
              "saved_model": "SavedModel"}


def describe(used, from_run=(), source="its run_config.json"):
    """The line each command prints about the weights it loaded, e.g.
    `small_cnn, 64 px, 4 classes, EMA weights (fgtf run: /abs/runs/demo/ckpt-300);
    inception preprocessing; image size, preprocessing and classes from its
    run_config.json`; `from_run` names the
    settings taken from the run (or from another `source`) rather than from
    flags, said for runs and for a `source` given."""
    parts = [used["model"] + (f" with a {used['head']} head" if used.get("head", "none") != "none" else ""),
             f"{used['image_size']} px"]
    if used.get("num_classes"):
        parts.append(f"{used['num_classes']} classes")
    if used.get("ema") is not None:
        parts.append("EMA weights" if used["ema"] else "raw weights")
    line = f"{', '.join(parts)} ({KIND_NAMES[used['kind']]}: {used['weights']})"
    if used.get("preprocessing"):
        line += f"; {used['preprocessing']} preprocessing"
    if from_run and (used["kind"] == "run" or source != "its run_config.json"):
        names = list(from_run)
        spoken = " and ".join(names) if len(names) < 3 else f"{', '.join(names[:-1])} and {names[-1]}"
        line += f"; {spoken} from {source}"
    return line


def saved_model_refusal(path, use):
    """The sentence refusing a SavedModel where it cannot be `use`d."""
    return (f"{path} is a SavedModel, an opaque graph that cannot be {use}; pass a TF-Slim checkpoint, a "
            f".weights.h5 or an fgtf run folder (SavedModels serve python -m fgtf.extract_features)")


def build_backbone(model, image_size=None, *, classes=None, aux_logits=False):
    """fgtf network `model` at `image_size` (default: the network's own),
    with a classifier of `classes` (logits) or without one (None). An image
    size below the network's smallest is a UserError naming --image_size."""
    from fgtf.errors import InputSizeError
    from fgtf.models import build_model
    from fgtf.models.network import image_size_mistake

    top = {"include_top": True, "classes": int(classes), "classifier_activation": None} if classes else \
        {"include_top": False}
    if aux_logits:
        top["aux_logits"] = True
    try:
        return build_model(model, input_shape=(image_size, image_size, 3) if image_size else None, **top)
    except InputSizeError as error:
        raise image_size_mistake(error, model, image_size) from None


def torch_network(state: dict) -> str | None:
    """The registry name of the network a torch state dict holds (a
    torchvision ResNet or an official Swin), from its keys and shapes; None
    when it is neither."""
    from fgtf.models.resnet import network_of_state_dict
    from fgtf.models.swin import swin_of_state_dict

    return network_of_state_dict(state) or swin_of_state_dict(state)


def _torch_network_name(state, checkpoint):
    """The network of a torch state dict, by its keys; UserError when fgtf knows none that fits."""
    name = torch_network(state)
    if name is None:
        raise ParameterError(f"{checkpoint} is not the state dict of a network fgtf knows by its keys (torchvision's "
                             f"resnet18 ... resnet152, Swin); pass `model`")
    return name


def _slim_network(model, prefix, image_size=None, *, include_top=True, num_classes=None):
    """fgtf network `model` shaped for the TF-Slim checkpoint `prefix`: with
    its classifier (of `num_classes`, default the checkpoint's) and aux
    logits when the checkpoint has them and the network offers them, or
    without a classifier when not `include_top`."""
    import tensorflow as tf

    from fgtf.models import has_aux_logits

    if not include_top:
        return build_backbone(model, image_size)
    shapes = tf.train.load_checkpoint(prefix).get_variable_to_shape_map()
    classes = num_classes or _checkpoint_classes(shapes, prefix)
    # Below the aux head's smallest input the network is built without it and
    # loading skips the checkpoint's AuxLogits variables (a classifier scope).
    aux = has_aux_logits(model, image_size) and any("/AuxLogits/" in name for name in shapes)
    return build_backbone(model, image_size, classes=classes, aux_logits=aux)


def _checkpoint_classes(shapes, checkpoint):
    """The class count of a slim checkpoint: the size of its logits biases."""
    for name, shape in shapes.items():
        scopes = name.split("/")
        if scopes[-1] == "biases" and ("Logits" in scopes or "logits" in scopes) and "AuxLogits" not in scopes:
            return int(shape[-1])
    raise ParameterError(f"cannot tell the class count of {checkpoint}; pass `num_classes`")


def main(argv=None):
    """`python -m fgtf.checkpoints` (`fgtf checkpoints convert`)."""
    # Imported here: `python -m fgtf.checkpoints` runs __main__ itself, after importing this package.
    from fgtf.checkpoints.__main__ import main as command

    command(argv)

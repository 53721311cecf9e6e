"""TF-Slim checkpoints, Keras weights files, fgtf runs and SavedModels -> Keras networks.

    loaded = fgtf.checkpoints.load_network("runs/cub")   # any kind of --checkpoint
    loaded.network, loaded.image_size, loaded.preprocessing  # the network, and what was loaded

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
`load_network` (to run a network: a `LoadedNetwork`) or `load_into` (to
start one: a `LoadedWeights`) and prints what it loaded with `describe`.

    __init__.py       telling kinds apart and loading them (this module)
    saved_model.py    SavedModel / TF-Hub folders as opaque Keras models
    weights_file.py   weights -> a .weights.h5 recording its network (convert_checkpoint)
    __main__.py       the command: python -m fgtf.checkpoints convert
"""
from __future__ import annotations

import dataclasses
import os
from typing import TYPE_CHECKING, Sequence

from fgtf.models import default_preprocessing
from fgtf.models.weights import (  # noqa: F401  (load_weights: re-exported for callers of fgtf.checkpoints)
    CLASSIFIER_SCOPES, EMA_SUFFIX, TORCH_SUFFIXES, checkpoint_prefix, keras_weights_record, load_keras_weights,
    load_run_weights, load_slim_checkpoint, load_torch_weights, load_weights, restore_for_inference,
    save_keras_weights, torch_classes, torch_state_dict)
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


@dataclasses.dataclass(frozen=True)
class LoadedWeights:
    """What was loaded from a checkpoint, as `describe` prints it and the
    commands record it (`to_dict`).

    kind: the checkpoint's kind (`checkpoint_kind`).
    weights: the file or checkpoint prefix read (absolute).
    model: the network's registry name (`saved_model` for a SavedModel).
    head: the head on it (`fgtf.models.heads.HEADS`), or `none`.
    image_size: the input side in pixels.
    num_classes: the classifier's classes; None without a classifier.
    ema: True when moving averages of the weights were read, False when
        the raw weights were, None when a weights file does not say.
    preprocessing: the `--preprocessing` pipeline of the network's inputs;
        None where the loader does not choose one (weights loaded into a
        network built elsewhere, other than a run's).
    """
    kind: str
    weights: str
    model: str
    head: str
    image_size: int
    num_classes: int | None
    ema: bool | None
    preprocessing: str | None = None

    def to_dict(self) -> dict:
        """The fields by name, as the commands write them to JSON."""
        return {field.name: getattr(self, field.name) for field in dataclasses.fields(LoadedWeights)}


@dataclasses.dataclass(frozen=True, kw_only=True)
class LoadedNetwork(LoadedWeights):
    """A network built and loaded by `load_network`, with what was loaded
    (the fields of `LoadedWeights`).

    network: the Keras model; at inference it outputs logits (a classifier),
        a feature map (a plain network without its classifier) or a
        feature vector (a SavedModel without its classifier).
    """
    network: keras.Model

    def features_model(self, outputs: Sequence[str] = ("features",)) -> keras.Model:
        """The graph from the network's input to its pooled `outputs`
        ("features", "logits"; see `fgtf.models.network.pooled_features_model`).
        A SavedModel loaded without its classifier is already one, of its
        features only."""
        from fgtf.models.network import pooled_features_model

        if self.kind != "saved_model":
            return pooled_features_model(self.network, self.model, outputs)
        if tuple(outputs) != ("features",) or self.num_classes is not None:
            raise ValueError("a SavedModel gives its features (load it with include_top=False), nothing else")
        return self.network


def load_network(checkpoint: str, *, model: str | None = None, image_size: int | None = None,
                 include_top: bool = True, use_ema: bool = True, num_classes: int | None = None,
                 saved_model_use: str | None = None, preprocessing: str | None = None) -> LoadedNetwork:
    """Build the network that `checkpoint` holds and load it, for inference,
    whatever its kind (see `checkpoint_kind`):

    * an fgtf run: the network of its run_config.json (with its head) from
      its latest checkpoint, EMA weights when it kept them and `use_ema`;
      its image size unless `image_size` is given; `model`, when given, must
      be the run's;
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
    (runs keep theirs). Returns the network with what was loaded (see
    `LoadedWeights`): its preprocessing is `preprocessing` when given, else a
    run's own, a SavedModel card's, or the network's registry default."""
    from fgtf.models.network import build_network, build_plain_network

    kind = checkpoint_kind(checkpoint)
    if kind == "saved_model":
        if saved_model_use:
            raise UserError(saved_model_refusal(checkpoint, saved_model_use))
        size = image_size or saved_model_image_size(checkpoint)
        preprocessing = preprocessing or saved_model_preprocessing(checkpoint)
        network = (saved_model_classifier if include_top else hub_feature_model)(checkpoint, size, preprocessing)
        return LoadedNetwork(kind=kind, weights=os.path.abspath(checkpoint), model="saved_model", head="none",
                             image_size=size, num_classes=int(network.output_shape[-1]) if include_top else None,
                             ema=None, preprocessing=preprocessing, network=network)
    if kind == "run":
        from fgtf import runs

        _, prefix, config = runs.run_checkpoint(checkpoint, model)
        size = image_size or config.image_size
        network = build_network(dataclasses.replace(config, image_size=size))
        loaded = _run_loaded(prefix, config, restore_for_inference(network, prefix, use_ema=use_ema), size)
        return _with_network(loaded, network, preprocessing or loaded.preprocessing)
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
        network = build_plain_network(name, image_size, classes=classes, aux_logits=record.get("aux_logits", False))
    elif kind == "torch":
        state = torch_state_dict(checkpoint)
        name = model or _torch_network_name(state, checkpoint)
        classes = (num_classes or torch_classes(state)) if include_top else None
        if include_top and classes is None:
            raise ParameterError(f"{checkpoint} holds no classifier (fc or head); pass `num_classes`, or use it for "
                                 f"features")
        network = build_plain_network(name, image_size, classes=classes)
    else:
        name = model or DEFAULT_MODEL
        network = _slim_network(name, checkpoint_prefix(checkpoint), image_size, include_top=include_top,
                                num_classes=num_classes)
    loaded = load_into(network, checkpoint, model_name=name, use_ema=use_ema,
                       exclude_scopes=() if include_top else CLASSIFIER_SCOPES)
    return _with_network(loaded, network, preprocessing or default_preprocessing(name))


def load_into(model: keras.Model, checkpoint: str, *, model_name: str | None = None,
              exclude_scopes: Sequence[str] = (), use_ema: bool = True,
              saved_model_use: str = "loaded into a network") -> LoadedWeights:
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
    are. Weights of another network are a UserError. Returns what was
    loaded (model: the run's, else `model_name` or the network's name;
    image_size: the run's or the network's input side; preprocessing: a
    run's, else None)."""
    from fgtf import runs
    from fgtf.models.network import backbone_of

    kind = checkpoint_kind(checkpoint)
    if kind == "saved_model":
        raise UserError(saved_model_refusal(checkpoint, saved_model_use))
    if kind == "run":
        _, prefix, config = runs.run_checkpoint(checkpoint, model_name)
        ema = load_run_weights(model, config, prefix, exclude_scopes=exclude_scopes, use_ema=use_ema)
        return _run_loaded(prefix, config, ema, config.image_size)
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
    return LoadedWeights(kind=kind, weights=os.path.abspath(weights), model=model_name or model.name, head=head,
                         image_size=int(model.input_shape[1]), num_classes=classes, ema=ema)


@dataclasses.dataclass(frozen=True)
class RecordedNetwork:
    """What a checkpoint says about its network without being loaded
    (`recorded_network`); None: it does not say."""
    model: str | None = None
    image_size: int | None = None
    num_classes: int | None = None
    preprocessing: str | None = None


def recorded_network(checkpoint: str) -> RecordedNetwork:
    """What `checkpoint` says about its network without loading it: the
    model, image size, class count and preprocessing of a run's
    run_config.json, the model and class count of an fgtf `.weights.h5` or
    of a torch state dict whose network fgtf knows, else nothing (a TF-Slim
    checkpoint or SavedModel does not say). Commands take the settings they
    were not given from it."""
    kind = checkpoint_kind(checkpoint)
    if kind == "run":
        from fgtf import runs

        config = runs.load_run_config(checkpoint if os.path.isdir(checkpoint) else os.path.dirname(checkpoint))
        return RecordedNetwork(model=config.model_name, image_size=config.image_size,
                               num_classes=config.num_classes, preprocessing=config.preprocessing)
    if kind == "keras":
        record = keras_weights_record(checkpoint)
        return RecordedNetwork(model=record.get("model"), num_classes=record.get("classes"))
    if kind == "torch":
        state = torch_state_dict(checkpoint)
        return RecordedNetwork(model=torch_network(state), num_classes=torch_classes(state))
    return RecordedNetwork()


KIND_NAMES = {"run": "fgtf run", "slim": "TF-Slim checkpoint", "keras": "Keras weights", "torch": "torch state dict",
              "saved_model": "SavedModel"}


def describe(loaded: LoadedWeights, from_run: Sequence[str] = (), source: str = "its run_config.json") -> str:
    """The line each command prints about the weights it loaded, e.g.
    `small_cnn, 64 px, 4 classes, EMA weights (fgtf run: /abs/runs/demo/ckpt-300);
    inception preprocessing; image size, preprocessing and classes from its
    run_config.json`; `from_run` names the
    settings taken from the run (or from another `source`) rather than from
    flags, said for runs and for a `source` given."""
    parts = [loaded.model + (f" with a {loaded.head} head" if loaded.head != "none" else ""),
             f"{loaded.image_size} px"]
    if loaded.num_classes:
        parts.append(f"{loaded.num_classes} classes")
    if loaded.ema is not None:
        parts.append("EMA weights" if loaded.ema else "raw weights")
    line = f"{', '.join(parts)} ({KIND_NAMES[loaded.kind]}: {loaded.weights})"
    if loaded.preprocessing:
        line += f"; {loaded.preprocessing} preprocessing"
    if from_run and (loaded.kind == "run" or source != "its run_config.json"):
        names = list(from_run)
        spoken = " and ".join(names) if len(names) < 3 else f"{', '.join(names[:-1])} and {names[-1]}"
        line += f"; {spoken} from {source}"
    return line


def saved_model_refusal(path, use):
    """The sentence refusing a SavedModel where it cannot be `use`d."""
    return (f"{path} is a SavedModel, an opaque graph that cannot be {use}; pass a TF-Slim checkpoint, a "
            f".weights.h5 or an fgtf run folder (SavedModels serve python -m fgtf.extract_features)")


def _with_network(loaded, network, preprocessing):
    """The `LoadedNetwork` of `network`, loaded as `loaded` says, fed through `preprocessing`."""
    return LoadedNetwork(**{**loaded.to_dict(), "preprocessing": preprocessing}, network=network)


def _run_loaded(prefix, config, ema, image_size):
    """What was loaded from the checkpoint `prefix` of a run whose run_config.json is `config`, at `image_size`."""
    return LoadedWeights(kind="run", weights=os.path.abspath(prefix), model=config.model_name, head=config.head,
                         image_size=int(image_size), num_classes=int(config.num_classes), ema=ema,
                         preprocessing=config.preprocessing)


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
    from fgtf.models.network import build_plain_network

    if not include_top:
        return build_plain_network(model, image_size)
    shapes = tf.train.load_checkpoint(prefix).get_variable_to_shape_map()
    classes = num_classes or _checkpoint_classes(shapes, prefix)
    # Below the aux head's smallest input the network is built without it and
    # loading skips the checkpoint's AuxLogits variables (a classifier scope).
    aux = has_aux_logits(model, image_size) and any("/AuxLogits/" in name for name in shapes)
    return build_plain_network(model, image_size, classes=classes, aux_logits=aux)


def _checkpoint_classes(shapes, checkpoint):
    """The class count of a slim checkpoint: the size of its logits biases."""
    for name, shape in shapes.items():
        scopes = name.split("/")
        if scopes[-1] == "biases" and ("Logits" in scopes or "logits" in scopes) and "AuxLogits" not in scopes:
            return int(shape[-1])
    raise ParameterError(f"cannot tell the class count of {checkpoint}; pass `num_classes`")

"""A training run's folder (MODEL_DIR): its configuration, its checkpoints and
the network they belong to. Shared by train, evaluate, feature extraction and
the attention visualisation, so a run is rebuilt the same way everywhere.

    <model_dir>/run_config.json      what `build_network` needs (model, classes, head, sizes)
    <model_dir>/ckpt-<n>.index/.data the tf.train.Checkpoint of model, optimizer, input position, EMA
    <model_dir>/checkpoint           the latest checkpoint's name
    <model_dir>/train_done.json      written when the run reached its last step
"""
import json
import os

import keras

from fgtf._keras_internals import moving_average_pairs
from fgtf.fileio import write_json
from fgtf.models.weights import EMA_KEY, ema_variable_key, restore_for_inference  # noqa: F401  (EMA_KEY: for train)
from tfrecord_tools.cli import UserError

RUN_CONFIG = "run_config.json"
DONE = "train_done.json"


def save_run_config(model_dir, config):
    write_json(os.path.join(model_dir, RUN_CONFIG), config)


def load_run_config(model_dir):
    path = os.path.join(model_dir, RUN_CONFIG)
    if not os.path.isfile(path):
        raise UserError(f"{model_dir} is not an fgtf training folder ({RUN_CONFIG} is missing)")
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def build_network(config):
    """The Keras model a run trains: backbone `config['model_name']` with the
    slim classifier (plus aux logits when `config['aux_logits']`), or its
    feature map wrapped by a head (`config['head']`: sef, sam, cle) built with
    `config['head_options']`. At inference it outputs logits."""
    try:
        return _build_network(config)
    except ValueError as error:
        if "input size" not in str(error) or isinstance(error, UserError):
            raise
        # The builders say it Keras-applications style; for a user it is an --image_size mistake.
        raise UserError(f"--image_size {config['image_size']} is too small for {config['model_name']}: "
                        f"{error}") from None


def _build_network(config):
    from fgtf.models import build_model
    from fgtf.models.heads import NO_HEAD, build_head, head_record

    size = config["image_size"]
    head = config.get("head") or NO_HEAD
    if head == NO_HEAD:
        extra = {"aux_logits": True} if config.get("aux_logits") else {}
        return build_model(config["model_name"], classes=config["num_classes"], classifier_activation=None,
                           input_shape=(size, size, 3), **extra)
    head_record(head)  # an unknown head is refused before the backbone is built
    backbone = build_model(config["model_name"], include_top=False, input_shape=(size, size, 3))
    return build_head(head, backbone, config["num_classes"], **config.get("head_options", {}))


def ema_map(optimizer):
    """{key: moving-average variable} for the optimizer's tracked variables
    (empty when the optimizer keeps no EMA). The optimizer must be built."""
    if not getattr(optimizer, "use_ema", False):
        return {}
    # Keras keeps the averages in a list aligned with the variables it was built with.
    return {ema_variable_key(v): average for v, average in
            moving_average_pairs(optimizer)}


def latest_checkpoint(model_dir_or_prefix):
    """The newest checkpoint prefix in a run folder, or the given prefix; None if none."""
    import tensorflow as tf

    if os.path.isdir(model_dir_or_prefix):
        return tf.train.latest_checkpoint(model_dir_or_prefix)
    return model_dir_or_prefix if os.path.exists(model_dir_or_prefix + ".index") else None


def run_checkpoint(path, model=None):
    """(run folder, latest checkpoint prefix, run config) of a run folder or
    one of its checkpoint prefixes; UserError when it holds no checkpoint,
    or when `model` is given and the run trains another network."""
    folder = path if os.path.isdir(path) else os.path.dirname(path)
    config = load_run_config(folder)
    if model and model != config["model_name"]:
        raise UserError(f"{folder} is a run of {config['model_name']}, not of --model {model}; leave --model out "
                        f"to use the run's network, or pass weights of {model}")
    prefix = latest_checkpoint(path)
    if prefix is None:
        raise UserError(f"run folder {folder} holds no checkpoint yet; train it first (python -m fgtf.train "
                        f"--run_dir {folder} ...) or pass a run that has one")
    return folder, prefix, config


def load_run_network(path, *, model=None, image_size=None, use_ema=True):
    """(network, used) of a run folder or checkpoint prefix, for inference:
    the network of its run_config.json (with its head) at its image size
    unless `image_size` is given, restored from its latest checkpoint with
    its EMA weights when it kept them and `use_ema`. `model`, when given,
    must be the run's. `used` is `fgtf.checkpoints.load_network`'s report."""
    _, prefix, config = run_checkpoint(path, model)
    size = image_size or config["image_size"]
    network = build_network({**config, "image_size": size})
    ema = restore_for_inference(network, prefix, use_ema=use_ema)
    return network, _used(prefix, config, ema, image_size=size)


def load_run_weights(model, path, *, model_name=None, exclude_scopes="", use_ema=True):
    """Start `model` from the model weights of a run folder or checkpoint
    prefix (not its optimizer state or step): the run's network is rebuilt
    from its run_config.json, restored (EMA weights when it kept them and
    `use_ema`), and its layers copied into `model` by name, except those
    under `exclude_scopes` (e.g. `Logits` for another class count). `model`
    may be the run's whole network, only its backbone, or (from a run
    without a head) a head's network, of which only the backbone is loaded;
    `model_name`, when given, must be the run's network. Returns what was
    used, as `fgtf.checkpoints.load_network` reports it."""
    from fgtf.optimization import in_scopes, scope_prefixes, weight_layers

    _, prefix, config = run_checkpoint(path, model_name)
    source = build_network(config)
    used_ema = restore_for_inference(source, prefix, use_ema=use_ema)
    excluded = scope_prefixes(model, exclude_scopes)
    stored = {layer.name: layer for layer in weight_layers(source)}
    # A run without a head starts a head's network as a TF-Slim checkpoint
    # does: its backbone; the head's own layers stay newly initialised.
    target = backbone_of(model) if (config.get("head") or "none") == "none" else model
    wanted = [layer for layer in weight_layers(target) if layer.weights and not in_scopes(layer.name, excluded)]
    # Like a slim checkpoint, a run must cover every layer it initialises:
    # a run of another network would otherwise leave this one silently untrained.
    missing = [layer.name for layer in wanted if layer.name not in stored]
    if missing:
        raise UserError(f"{prefix} (a run of {config['model_name']}) has no weights for {len(missing)} "
                        f"layer(s) of this network, e.g. {', '.join(missing[:3])}; start from a run of the same "
                        f"network, or leave those layers out with --checkpoint_exclude_scopes")
    for layer in wanted:
        weights = stored[layer.name].get_weights()
        shapes = [w.shape for w in weights]
        if shapes != [tuple(v.shape) for v in layer.weights]:
            raise UserError(f"layer {layer.name} of {prefix} has weights of shapes {shapes}, this "
                            f"network's {[tuple(v.shape) for v in layer.weights]}; leave it out with "
                            f"--checkpoint_exclude_scopes (e.g. {layer.name.split('.')[0]})")
        layer.set_weights(weights)
    return _used(prefix, config, used_ema)


def _used(prefix, config, ema, image_size=None):
    return {"kind": "run", "weights": os.path.abspath(prefix), "model": config["model_name"],
            "head": config.get("head") or "none", "image_size": int(image_size or config["image_size"]),
            "num_classes": int(config["num_classes"]), "ema": ema}


def checkpoint_step(checkpoint_prefix):
    """The global step stored in a run checkpoint."""
    import tensorflow as tf

    reader = tf.train.load_checkpoint(checkpoint_prefix)
    return int(reader.get_tensor("step/.ATTRIBUTES/VARIABLE_VALUE"))


def is_run_checkpoint(path):
    """True for an fgtf run folder or run checkpoint (rather than a TF-Slim one)."""
    if os.path.isdir(path) and os.path.isfile(os.path.join(path, RUN_CONFIG)):
        return True
    prefix = latest_checkpoint(path) if os.path.isdir(path) else path
    if not prefix or not os.path.exists(prefix + ".index"):
        return False
    import tensorflow as tf

    return "step/.ATTRIBUTES/VARIABLE_VALUE" in tf.train.load_checkpoint(prefix).get_variable_to_shape_map()


def backbone_of(model):
    """The slim-named backbone: the model itself, or the backbone a head wraps
    (the first nested keras.Model)."""
    nested = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    return nested[0] if nested else model


def keras_model_summary_line(model):
    trainable = sum(int(keras.ops.size(v)) for v in model.trainable_weights)
    total = sum(int(keras.ops.size(v)) for v in model.weights)
    return f"{model.name}: {total:,} weights, {trainable:,} trainable"

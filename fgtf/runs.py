"""A training run's folder (MODEL_DIR): its configuration and its checkpoints.
Shared by train, evaluate, feature extraction and the attention
visualisation. The network a run trains is built by
`fgtf.models.network.build_network` (re-exported here) and loaded from its
checkpoint by `fgtf.checkpoints.load_network`.

    <model_dir>/run_config.json      its `RunConfig`: the network `build_network` builds, the training
    <model_dir>/ckpt-<n>.index/.data the tf.train.Checkpoint of model, optimizer, input position, EMA
    <model_dir>/checkpoint           the latest checkpoint's name
    <model_dir>/train_done.json      written when the run reached its last step
    <model_dir>/classes.txt          the class names by label, when the training data named them
"""
import contextlib
import dataclasses
import hashlib
import json
import math
import os
import typing
from typing import Optional

import keras

from fgtf.datasets.lists import CLASSES_FILE, read_class_names
from fgtf.fileio import write_json, write_text
from fgtf.models.network import NetworkSpec, backbone_of, build_network  # noqa: F401  (re-exported for run callers)
from fgtf.models.weights import EMA_KEY, ema_variable_key, restore_for_inference  # noqa: F401  (EMA_KEY: for train)
from fgtf.errors import ParameterError, UserError

RUN_CONFIG = "run_config.json"
DONE = "train_done.json"


@dataclasses.dataclass(frozen=True)
class RunConfig(NetworkSpec):
    """What a run folder's run_config.json records: its network (the fields
    of `NetworkSpec`) and the training it was started with. A field that is
    None was not recorded (runs of older fgtf versions).

    dataset_name: the registry name of the data (`--dataset`).
    num_train_examples: training images per epoch (after `--label_ratio`).
    total_steps: the step the run ends at.
    batch_size: the global batch size.
    label_smoothing: of the cross-entropy.
    optimizer: as slim names it (`--optimizer`).
    preprocessing: the input pipeline it was trained with
        (`fgtf.preprocessing.PIPELINES`; every later command uses it unless
        told otherwise); runs of fgtf before pipelines had names: inception.
    training: the whole `fgtf.train_config.TrainConfig` the run was started
        with, section by section (`TrainConfig.to_dict()`; read it back with
        `training_config`); None for runs of fgtf before it was recorded.
    """
    dataset_name: Optional[str] = None
    num_train_examples: Optional[int] = None
    total_steps: Optional[int] = None
    batch_size: Optional[int] = None
    label_smoothing: Optional[float] = None
    optimizer: Optional[str] = None
    preprocessing: str = "inception"
    training: Optional[dict] = None

    def training_config(self):
        """The `fgtf.train_config.TrainConfig` of `training`, or None when the run did not record it."""
        from fgtf.train_config import TrainConfig

        return None if self.training is None else TrainConfig.from_dict(self.training, source=f"{RUN_CONFIG} training")

    @classmethod
    def from_dict(cls, data, source=RUN_CONFIG):
        """The config of a run_config.json's contents; entries it does not know
        are left out. UserError, naming `source`, when a network field is missing."""
        names = [field.name for field in dataclasses.fields(cls)]
        required = [field.name for field in dataclasses.fields(NetworkSpec)
                    if field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING]
        if not isinstance(data, dict):
            raise UserError(f"{source} is not a run configuration (a JSON object); it was not written by fgtf.train")
        missing = [name for name in required if data.get(name) is None]
        if missing:
            raise UserError(f"{source} does not record {', '.join(missing)}; it was not written by fgtf.train")
        for field in dataclasses.fields(cls):
            value = data.get(field.name)
            if value is not None and not _fits(value, field.type):
                raise UserError(f"{source} records {field.name} {json.dumps(value)[:40]}, not {_KINDS[_base(field.type)]}; "
                                f"it was altered or damaged (a run folder's own file is written by fgtf.train)")
        return cls(**{name: data[name] for name in names if data.get(name) is not None})

    def to_dict(self):
        """The JSON object of run_config.json (unrecorded fields left out)."""
        return {name: value for name, value in dataclasses.asdict(self).items() if value is not None}


_KINDS = {str: "a text", int: "a whole number of at least 1", float: "a number", bool: "true or false",
          dict: "a JSON object"}


def _base(annotation):
    """`Optional[X]` -> X; other annotations as they are."""
    arguments = [a for a in typing.get_args(annotation) if a is not type(None)]
    return arguments[0] if arguments else annotation


def _fits(value, annotation):
    kind = _base(annotation)
    if kind is int:
        return type(value) is int and value >= 1
    if kind is float:
        return type(value) in (int, float) and math.isfinite(value)
    return type(value) is kind


def save_run_config(model_dir, config):
    """Write the `RunConfig` of the run in `model_dir`."""
    write_json(os.path.join(model_dir, RUN_CONFIG), config.to_dict())


def remove_run_config(model_dir):
    """Remove the run_config.json (and classes.txt) of `model_dir` (its first checkpoint failed)."""
    for name in (RUN_CONFIG, CLASSES_FILE):
        with contextlib.suppress(FileNotFoundError):
            os.remove(os.path.join(model_dir, name))


def has_checkpoint(model_dir):
    """True when the run folder `model_dir` holds its config and a checkpoint:
    a run that has started. A config alone is the leftover of a start killed
    while it wrote its first checkpoint, and binds the folder to nothing."""
    return os.path.isfile(os.path.join(model_dir, RUN_CONFIG)) and latest_checkpoint(model_dir) is not None


def load_run_config(model_dir):
    """The `RunConfig` of the run in `model_dir`."""
    path = os.path.join(model_dir, RUN_CONFIG)
    if not os.path.isfile(path):
        raise UserError(f"{model_dir} is not an fgtf training folder ({RUN_CONFIG} is missing)")
    with open(path, encoding="utf-8") as handle:
        try:
            data = json.load(handle)
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise UserError(f"{path} is not valid JSON ({error}); it was altered or damaged") from None
    return RunConfig.from_dict(data, source=path)


def save_class_names(model_dir, class_names):
    """Write the class names of the run in `model_dir` (one per line, label order)."""
    write_text(os.path.join(model_dir, CLASSES_FILE), "".join(f"{name}\n" for name in class_names))


def load_class_names(model_dir, num_classes):
    """The class names the run in `model_dir` recorded when they are
    `num_classes`, else None (runs of older fgtf versions record none)."""
    names = read_class_names(model_dir)
    return names if names is not None and len(names) == num_classes else None


def network_class_names(checkpoint: str, num_classes: int, labels: str | None = None,
                        shard_dir: str | None = None) -> list[str]:
    """The names of the `num_classes` classes of a network loaded from
    `checkpoint`, in label order: the lines of the file `labels` (a
    ParameterError when they name another number of classes), else the
    classes.txt of the run folder that `checkpoint` is or belongs to, else
    the one fgtf.convert wrote beside the TFRecords in `shard_dir`, else the
    class numbers."""
    from fgtf.datasets.lists import shard_class_names
    from fgtf.datasets.splits import read_name_list

    if labels is not None:
        names = read_name_list(labels)
        if len(names) != num_classes:
            raise ParameterError(f"`labels` {labels} names {len(names)} classes; the network has {num_classes}")
        return names
    folder = checkpoint if os.path.isdir(checkpoint) else os.path.dirname(checkpoint)
    names = load_class_names(folder, num_classes) if os.path.isfile(os.path.join(folder, RUN_CONFIG)) else None
    if names is None and shard_dir:
        names = shard_class_names(shard_dir, num_classes)
    return names or [str(label) for label in range(num_classes)]


def ema_map(optimizer):
    """{key: moving-average variable} for the variables a built
    `fgtf.optimization.GroupedOptimizer` trains (empty when it keeps no EMA)."""
    return {ema_variable_key(v): average for v, average in optimizer.moving_averages()}


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
    if model and model != config.model_name:
        raise ParameterError(f"{folder} is a run of {config.model_name}, not of `model` {model}; leave `model` out "
                             f"to use the run's network, or pass weights of {model}")
    prefix = latest_checkpoint(path)
    if prefix is None:
        raise UserError(f"run folder {folder} holds no checkpoint yet; train it first (python -m fgtf.train "
                        f"--run_dir {folder} ...) or pass a run that has one")
    return folder, prefix, config


def finished_run_tag(model_dir):
    """Eight hex digits naming a finished run: they change when the run
    is trained again (its `train_done.json` records the times), so results
    computed from it can be kept under a name of their own."""
    with open(os.path.join(model_dir, DONE), "rb") as handle:
        return hashlib.sha1(os.path.abspath(model_dir).encode() + handle.read()).hexdigest()[:8]


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


def keras_model_summary_line(model):
    trainable = sum(int(keras.ops.size(v)) for v in model.trainable_weights)
    total = sum(int(keras.ops.size(v)) for v in model.weights)
    return f"{model.name}: {total:,} weights, {trainable:,} trainable"

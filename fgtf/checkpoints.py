"""TF-Slim checkpoints -> Keras weights.

    model = fgtf.models.build_model("inception_v3", classes=10, classifier_activation=None)
    fgtf.checkpoints.load_slim_checkpoint(model, "checkpoints/inception_v3_iNat_299.ckpt")

Every Keras weight is matched to exactly one checkpoint variable by the naming
rule of `fgtf.models.layers.slim_variable_name`.
"""
import os

import numpy as np

from fgtf.models.layers import slim_variable_name
from tfrecord_tools.cli import UserError

EMA_SUFFIX = "/ExponentialMovingAverage"
# Variables whose shadow copy the original feature extraction restored; BN
# moving statistics always come from their plain names.
_TRAINABLE = ("kernel", "bias", "gamma", "beta")


def load_weights(model, path, *, exclude_scopes=(), use_ema="auto"):
    """Load `path` into `model` by its kind: a Keras weights file
    (`*.weights.h5`) as saved by Keras, anything else as a TF-Slim checkpoint
    (see `load_slim_checkpoint`)."""
    path = os.fspath(path)
    if path.endswith(".h5"):
        if not os.path.isfile(path):
            raise UserError(f"weights file {path} not found")
        model.load_weights(path)
        return
    load_slim_checkpoint(model, path, exclude_scopes=exclude_scopes, use_ema=use_ema)


def load_slim_checkpoint(model, path, *, exclude_scopes=(), use_ema="auto"):
    """Assign the variables of the TF-Slim checkpoint at `path` (a `.ckpt`
    prefix, or a folder holding one) to `model`, whose name is the slim top
    scope (e.g. `InceptionV3`).

    exclude_scopes: slim scopes (`"Logits"` or `"InceptionV3/Logits"`, a list or
        a comma-separated string) left out on both sides, e.g. the classifier
        when the class count differs.
    use_ema: `"auto"` reads `<var>/ExponentialMovingAverage` for trainable
        variables when the checkpoint has those shadows; `True` requires them;
        `False` reads the plain variables.
    Returns the list of checkpoint variable names that were read.
    Raises UserError naming every shape mismatch, unmatched weight and unused
    checkpoint variable at once.
    """
    import tensorflow as tf

    reader = tf.train.load_checkpoint(_checkpoint_prefix(path))
    shapes = reader.get_variable_to_shape_map()
    top = model.name
    excluded = _absolute_scopes(exclude_scopes, top)
    has_ema = any(name.endswith(EMA_SUFFIX) for name in shapes)
    if use_ema is True and not has_ema:
        raise UserError(f"checkpoint {path} has no ExponentialMovingAverage variables (use_ema=True)")
    read_ema = has_ema and use_ema in ("auto", True)

    assignments, missing, mismatched, used = [], [], [], set()
    for layer, variable in _layer_variables(model):
        short = variable.name.rsplit("/", 1)[-1].split(":")[0]
        name = slim_variable_name(top, layer.name, short)
        if _in_scopes(name, excluded):
            continue
        source = name + EMA_SUFFIX if read_ema and short in _TRAINABLE and name + EMA_SUFFIX in shapes else name
        if source not in shapes:
            missing.append(name)
            continue
        used.add(name)
        if tuple(shapes[source]) != tuple(variable.shape):
            mismatched.append(f"{source} {tuple(shapes[source])} vs Keras {tuple(variable.shape)}")
            continue
        assignments.append((variable, source))

    unused = [n for n in shapes if n not in used and not _in_scopes(n, excluded) and not _is_auxiliary(n, used)]
    problems = []
    if mismatched:
        problems.append(f"{len(mismatched)} shape mismatches ({_few(mismatched)})")
    if missing:
        problems.append(f"{len(missing)} model weights have no checkpoint variable ({_few(missing)})")
    if unused:
        problems.append(f"{len(unused)} checkpoint variables are not used by the model ({_few(sorted(unused))})")
    if problems:
        raise UserError(f"checkpoint {path} does not fit model {top}: " + "; ".join(problems)
                        + "; pass exclude_scopes for parts that are meant to differ")
    for variable, source in assignments:
        variable.assign(np.asarray(reader.get_tensor(source), dtype=variable.dtype))
    return [source for _, source in assignments]


def _checkpoint_prefix(path):
    import tensorflow as tf

    path = os.fspath(path)
    if os.path.isdir(path):
        prefix = tf.train.latest_checkpoint(path)
        if prefix is None:
            candidates = sorted(f[: -len(".index")] for f in os.listdir(path) if f.endswith(".index"))
            if not candidates:
                raise UserError(f"no TF checkpoint (*.index) in folder {path}")
            prefix = os.path.join(path, candidates[-1])
        return prefix
    if not os.path.exists(path + ".index") and not os.path.exists(path):
        raise UserError(f"checkpoint {path} not found (expected {path}.index and its data files)")
    return path


def _layer_variables(model):
    """(layer, variable) for every weight of `model`, descending into nested layers."""
    for layer in model._flatten_layers(include_self=False, recursive=True):
        for variable in layer._trainable_variables + layer._non_trainable_variables:
            yield layer, variable


def _absolute_scopes(scopes, top):
    if isinstance(scopes, str):
        scopes = scopes.split(",")
    scopes = [s.strip().strip("/") for s in scopes if s and s.strip()]
    return tuple(s if s.split("/")[0] == top else f"{top}/{s}" for s in scopes)


def _in_scopes(name, scopes):
    return any(name == s or name.startswith(s + "/") for s in scopes)


def _is_auxiliary(name, used):
    """Checkpoint entries that are not model weights: the step counter, EMA
    shadows and optimizer slots (`<variable>/<slot>`)."""
    if name == "global_step" or name.endswith(EMA_SUFFIX):
        return True
    parent = name.rsplit("/", 1)[0]
    while "/" in parent:
        if parent in used:
            return True
        parent = parent.rsplit("/", 1)[0]
    return False


def _few(names, limit=5):
    shown = ", ".join(names[:limit])
    return shown + (f", ... {len(names) - limit} more" if len(names) > limit else "")

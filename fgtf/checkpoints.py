"""TF-Slim checkpoints -> Keras weights.

    model = fgtf.models.build_model("inception_v3", classes=10, classifier_activation=None)
    fgtf.checkpoints.load_slim_checkpoint(model, "checkpoints/inception_v3_iNat_299.ckpt")

Every Keras weight is matched to exactly one checkpoint variable by the naming
rule of `fgtf.models.layers.slim_variable_name`.
"""
import argparse
import os

import keras
import numpy as np

from fgtf.models.layers import slim_scope, slim_variable_name
from tfrecord_tools.cli import UserError, cli_main

EMA_SUFFIX = "/ExponentialMovingAverage"
# Variables whose shadow copy the original feature extraction restored; BN
# moving statistics always come from their plain names.
_TRAINABLE = ("kernel", "bias", "gamma", "beta")
# Classifier scopes of slim checkpoints (ResNets spell theirs in lower case).
CLASSIFIER_SCOPES = ("Logits", "logits", "AuxLogits")


def load_weights(model, path, *, exclude_scopes=(), use_ema="auto"):
    """Load `path` into `model` by its kind: a Keras weights file
    (`*.weights.h5`, see `load_keras_weights`), anything else as a TF-Slim
    checkpoint (see `load_slim_checkpoint`)."""
    path = os.fspath(path)
    if path.endswith(".h5"):
        load_keras_weights(model, path, exclude_scopes=exclude_scopes)
        return
    load_slim_checkpoint(model, path, exclude_scopes=exclude_scopes, use_ema=use_ema)


def load_keras_weights(model, path, *, exclude_scopes=()):
    """Load a `.weights.h5` file. Files written by `fgtf.checkpoints convert`
    (or by training) record the network they hold (name, classes, aux logits);
    when `model` is built differently (e.g. `include_top=False`, another class
    count with the classifier excluded) the recorded network is rebuilt, loaded,
    and its weights copied to `model` layer by layer, by name."""
    import h5py

    if not os.path.isfile(path):
        raise UserError(f"weights file {path} not found")
    with h5py.File(path, "r") as handle:
        recorded = {k: handle.attrs[k] for k in ("fgtf_model", "fgtf_classes", "fgtf_aux_logits") if k in handle.attrs}
    excluded = _absolute_scopes(exclude_scopes, model.name)
    if not recorded:
        model.load_weights(path)
        return
    from fgtf.models import build_model

    extra = {"aux_logits": True} if bool(recorded.get("fgtf_aux_logits")) else {}
    source = build_model(str(recorded["fgtf_model"]), classes=int(recorded["fgtf_classes"]),
                         classifier_activation=None, **extra)
    if source.name != model.name:
        raise UserError(f"{path} holds {source.name} weights, not {model.name}")
    source.load_weights(path)
    copied, mismatched = 0, []
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if not layer.weights or _in_scopes(slim_scope(model.name, layer.name), excluded):
            continue
        try:
            source_layer = source.get_layer(layer.name)
        except ValueError:
            mismatched.append(f"{layer.name} (not in the file)")
            continue
        shapes = [tuple(w.shape) for w in source_layer.weights]
        if shapes != [tuple(w.shape) for w in layer.weights]:
            mismatched.append(f"{layer.name} {shapes} vs Keras {[tuple(w.shape) for w in layer.weights]}")
            continue
        layer.set_weights(source_layer.get_weights())
        copied += 1
    if mismatched:
        raise UserError(f"{path} does not fit model {model.name}: {len(mismatched)} layers differ "
                        f"({_few(mismatched)}); pass exclude_scopes for parts that are meant to differ")


def save_keras_weights(model, path, model_name, classes, aux_logits):
    """`model.save_weights` to `path` atomically, recording which fgtf network
    it is so `load_keras_weights` can load it into other builds of that network."""
    import h5py

    from fgtf.fileio import atomic_path

    with atomic_path(path) as tmp:
        model.save_weights(tmp)
        with h5py.File(tmp, "a") as handle:
            handle.attrs["fgtf_model"] = model_name
            handle.attrs["fgtf_classes"] = int(classes)
            handle.attrs["fgtf_aux_logits"] = bool(aux_logits)


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
    # A headless build skips the checkpoint's classifier by itself, as
    # keras.applications' include_top=False does (slim: ResNets `logits`,
    # Inception `Logits`/`AuxLogits`); any other unused variable stays an error.
    model_scopes = {slim_scope(top, layer.name) for layer, _ in _layer_variables(model)}
    absent = [f"{top}/{s}" for s in CLASSIFIER_SCOPES
              if not any(_in_scopes(name, (f"{top}/{s}",)) for name in model_scopes)]
    skipped = [n for n in unused if _in_scopes(n, absent)]
    if skipped:
        scopes = sorted({n.split("/")[1] for n in skipped})
        print(f"skipped {len(skipped)} classifier variables of {path} ({', '.join(scopes)}): "
              f"model {top} has no such layers")
        unused = [n for n in unused if n not in skipped]
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


@cli_main
def main(argv=None):
    """python -m fgtf.checkpoints convert --model inception_v3 --checkpoint X.ckpt --out X.weights.h5"""
    parser = argparse.ArgumentParser(prog="python -m fgtf.checkpoints",
                                     description="Checkpoint tools. `convert` maps a TF-Slim checkpoint onto "
                                                 "an fgtf model once and writes a Keras .weights.h5 file.")
    commands = parser.add_subparsers(dest="command", required=True)
    convert = commands.add_parser("convert", help="TF-Slim checkpoint -> Keras .weights.h5")
    convert.add_argument("--model", required=True, help="fgtf model name, e.g. inception_v3")
    convert.add_argument("--checkpoint", required=True, help="slim .ckpt prefix or folder")
    convert.add_argument("--out", required=True, help="output file, must end in .weights.h5")
    convert.add_argument("--num_classes", type=int, help="classifier size (default: read from the checkpoint)")
    convert.add_argument("--use_ema", choices=["auto", "true", "false"], default="auto",
                         help="read ExponentialMovingAverage shadows (auto: when present)")
    args = parser.parse_args(argv)
    if not args.out.endswith(".weights.h5"):
        raise UserError("--out must end in .weights.h5 (the Keras weights-file suffix)")
    convert_checkpoint(args.model, args.checkpoint, args.out, num_classes=args.num_classes,
                       use_ema={"auto": "auto", "true": True, "false": False}[args.use_ema])


def convert_checkpoint(model_name, checkpoint, out, *, num_classes=None, use_ema="auto"):
    """Load a slim checkpoint into fgtf model `model_name` (with its classifier,
    and aux logits when the checkpoint has them) and save it as `out`."""
    import inspect

    import tensorflow as tf

    from fgtf.models import build_model, get_builder

    prefix = _checkpoint_prefix(checkpoint)
    shapes = tf.train.load_checkpoint(prefix).get_variable_to_shape_map()
    classes = num_classes or _checkpoint_classes(shapes, checkpoint)
    aux = ("aux_logits" in inspect.signature(get_builder(model_name)).parameters
           and any("/AuxLogits/" in name for name in shapes))
    model = build_model(model_name, classes=classes, classifier_activation=None, **({"aux_logits": True} if aux else {}))
    load_slim_checkpoint(model, prefix, use_ema=use_ema)
    save_keras_weights(model, out, model_name, classes, aux)
    print(f"wrote {out}: {model.name}, {classes} classes{', aux logits' if aux else ''}")


def _checkpoint_classes(shapes, checkpoint):
    """The class count of a slim checkpoint: the size of its logits biases."""
    for name, shape in shapes.items():
        scopes = name.split("/")
        if scopes[-1] == "biases" and ("Logits" in scopes or "logits" in scopes) and "AuxLogits" not in scopes:
            return int(shape[-1])
    raise UserError(f"cannot tell the class count of {checkpoint}; pass --num_classes")


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


def is_saved_model(path):
    """True for a SavedModel / TF-Hub folder (it holds `saved_model.pb`)."""
    path = os.fspath(path)
    return os.path.isdir(path) and os.path.isfile(os.path.join(path, "saved_model.pb"))


def hub_feature_model(path, image_size):
    """A Keras model around a local SavedModel / TF-Hub image feature-vector
    folder, taking fgtf's [-1, 1] images (B, S, S, 3) and returning (B, D).

    TF-Hub image modules take RGB in [0, 1], so inputs are rescaled first. The
    folder is loaded with `tensorflow_hub.load` (Keras 3 cannot use
    `hub.KerasLayer`, which belongs to Keras 2); nothing is downloaded."""
    import keras
    import tensorflow_hub as hub

    if not is_saved_model(path):
        raise UserError(f"{path} is not a SavedModel folder (no saved_model.pb)")
    module = hub.load(os.fspath(path))
    inputs = keras.Input((image_size, image_size, 3))
    features = HubFeatures(module, name="hub_features")(inputs)
    return keras.Model(inputs, features, name=os.path.basename(os.path.normpath(path)))


class HubFeatures(keras.layers.Layer):
    """Calls a loaded SavedModel / TF-Hub module on [-1, 1] images rescaled to
    [0, 1]. TensorFlow backend only (the module is a TF graph)."""

    def __init__(self, module, **kwargs):
        super().__init__(trainable=False, **kwargs)
        self.module = module

    def call(self, images):
        return self.module((images + 1.0) / 2.0)


if __name__ == "__main__":
    main()

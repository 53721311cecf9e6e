"""Weights into a built fgtf network, one loader per file kind.

    model = fgtf.models.build_model("inception_v3", classes=10, classifier_activation=None)
    fgtf.models.weights.load_slim_checkpoint(model, "checkpoints/inception_v3_iNat_299.ckpt")

* TF-Slim checkpoints (`load_slim_checkpoint`): every Keras weight is matched
  to exactly one checkpoint variable by the naming rule of
  `fgtf.models.layers.slim_variable_name`;
* Keras `.weights.h5` (`load_keras_weights`, `save_keras_weights`): fgtf's
  files record the network they hold, so they load into any build of it;
* an fgtf run's checkpoint (`restore_for_inference`): the network's weights,
  with the moving averages the run kept; `load_run_weights` starts another
  network from it;
* torch state dicts (`load_torch_weights`): torchvision's ResNets and the
  official Swin files, read without torch by `fgtf.models.pth`.

`load_weights` picks one by the file's suffix for a builder's `weights=`.
What a `--checkpoint` path holds, and which network it needs, is decided one
level up, in `fgtf.checkpoints` (with SavedModels); a run folder's
configuration and latest checkpoint are read by `fgtf.runs`.
"""
import os

import numpy as np

from fgtf._keras_internals import flatten_layers, own_variables
from fgtf.errors import ParameterError, UserError

EMA_SUFFIX = "/ExponentialMovingAverage"
# Variables whose shadow copy the original feature extraction restored; BN
# moving statistics always come from their plain names.
_TRAINABLE = ("kernel", "bias", "gamma", "beta")
# Classifier scopes of slim checkpoints (ResNets spell theirs in lower case).
CLASSIFIER_SCOPES = ("Logits", "logits", "AuxLogits")
# The run checkpoint's entry holding the optimizer's moving averages (see `ema_variable_key`).
EMA_KEY = "ema"
# Files read as torch state dicts.
TORCH_SUFFIXES = (".pth", ".pt", ".pth.tar")
# Keras variable name -> torch state-dict name
_TORCH_VARIABLE = {"kernel": "weight", "gamma": "weight", "beta": "bias", "moving_mean": "running_mean",
                   "moving_variance": "running_var"}
# Buffers of torch modules that the Keras layers rebuild or do not keep.
_TORCH_BUFFERS = ("num_batches_tracked", "relative_position_index", "attn_mask")
# torch classifier modules -> what becomes of a model's classifier when the checkpoint's has another
# class count: torchvision's `fc` keeps its initialisation, Swin's `head` is zeroed as CLE-ViT does.
TORCH_CLASSIFIERS = {"fc": "initialised", "head": "zero"}


def load_weights(model, path, *, exclude_scopes=(), use_ema="auto"):
    """Load `path` into `model` by its kind, as a builder's `weights=` does: a
    Keras weights file (`*.weights.h5`, see `load_keras_weights`), a torch
    state dict (`.pth`, `.pt`, `.pth.tar`; see `load_torch_weights`), anything else as a TF-Slim checkpoint
    (see `load_slim_checkpoint`). Returns True when EMA shadows were read,
    False when not, None when the file does not say (Keras weights not
    written by fgtf, torch files)."""
    path = os.fspath(path)
    if path.endswith(".h5"):
        load_keras_weights(model, path, exclude_scopes=exclude_scopes)
        return keras_weights_record(path).get("ema")
    if path.endswith(TORCH_SUFFIXES):
        load_torch_weights(model, path, exclude_scopes=exclude_scopes)
        return None
    read = load_slim_checkpoint(model, path, exclude_scopes=exclude_scopes, use_ema=use_ema)
    return any(name.endswith(EMA_SUFFIX) for name in read)


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

    from fgtf.models.layers import slim_scope, slim_variable_name

    reader = tf.train.load_checkpoint(checkpoint_prefix(path))
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


def checkpoint_prefix(path):
    """The TF checkpoint prefix `path` names: itself, or the latest (else the
    last by name) checkpoint of a folder. UserError when there is none."""
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


def keras_weights_record(path):
    """What an fgtf-written `.weights.h5` says it holds: {'model', 'classes',
    'aux_logits', 'ema'} (those present; empty for other Keras files). The
    class count is checked against the file (some weight, the classifier's
    bias, has that many entries): a network is built from it, so a record
    claiming a billion classes is refused here rather than allocated."""
    import h5py

    if not os.path.isfile(path):
        raise UserError(f"weights file {path} not found")
    try:
        with h5py.File(path, "r") as handle:
            attrs = dict(handle.attrs)
            sizes = _last_dimensions(handle) if "fgtf_classes" in attrs else set()
    except OSError as error:  # h5py's word for a file that is not HDF5
        raise UserError(f"{path} is not a readable Keras weights file ({error})") from None
    record = {}
    if "fgtf_model" in attrs:
        record["model"] = str(attrs["fgtf_model"])
    if "fgtf_classes" in attrs:
        record["classes"] = int(attrs["fgtf_classes"])
        if record["classes"] not in sizes:
            raise UserError(f"{path} records {record['classes']} classes, but none of its weights has that size; "
                            f"the file was altered or damaged: convert its checkpoint again")
    for key in ("aux_logits", "ema"):
        if f"fgtf_{key}" in attrs:
            record[key] = bool(attrs[f"fgtf_{key}"])
    return record


def _last_dimensions(handle):
    """The sizes of the last axis of every array in an open HDF5 file."""
    import h5py

    sizes = set()
    handle.visititems(lambda _, item: sizes.add(item.shape[-1]) if isinstance(item, h5py.Dataset) and item.shape
                      else None)
    return sizes


def load_keras_weights(model, path, *, exclude_scopes=()):
    """Load a `.weights.h5` file. Files written by `fgtf.checkpoints convert`
    (or by training) record the network they hold (name, classes, aux logits);
    when `model` is built differently (e.g. `include_top=False`, another class
    count with the classifier excluded) the recorded network is rebuilt, loaded,
    and its weights copied to `model` layer by layer, by name."""
    record = keras_weights_record(path)
    excluded = _absolute_scopes(exclude_scopes, model.name)
    if "model" not in record:
        _load_unrecorded_weights(model, path)
        return
    from fgtf.models import build_model
    from fgtf.models.layers import slim_scope

    extra = {"aux_logits": True} if record.get("aux_logits") else {}
    source = build_model(record["model"], classes=record["classes"], classifier_activation=None, **extra)
    if source.name != model.name:
        raise UserError(f"{path} holds {source.name} weights, not {model.name}")
    source.load_weights(path)
    copied, mismatched = 0, []
    for layer in flatten_layers(model):
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


def _load_unrecorded_weights(model, path):
    """`model.load_weights` of a Keras file that does not say which network it
    holds; a file of another network is one UserError sentence (Keras would
    warn about each layer it lacks, then raise)."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            model.load_weights(path)
        except (ValueError, KeyError) as error:
            if isinstance(error, UserError):
                raise
            raise ParameterError(f"{path} does not hold weights of {model.name} ({type(error).__name__}); pass weights "
                                 f"of that network, or choose its `model`") from None
    for warning in caught:
        warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)


def save_keras_weights(model, path, model_name, classes, aux_logits, ema=None):
    """`model.save_weights` to `path` atomically, recording which fgtf network
    it is (and, when known, whether they are EMA weights) so
    `load_keras_weights` can load it into other builds of that network."""
    import h5py

    from fgtf.fileio import atomic_path

    with atomic_path(path) as tmp:
        model.save_weights(tmp)
        with h5py.File(tmp, "a") as handle:
            handle.attrs["fgtf_model"] = model_name
            handle.attrs["fgtf_classes"] = int(classes)
            handle.attrs["fgtf_aux_logits"] = bool(aux_logits)
            if ema is not None:
                handle.attrs["fgtf_ema"] = bool(ema)


def restore_for_inference(model, checkpoint_prefix, use_ema=True):
    """Load a run checkpoint's model weights into `model`, then, when the run kept
    an EMA of its weights and `use_ema`, the averages over the trained weights.
    Returns True when EMA weights were used."""
    import tensorflow as tf

    try:
        tf.train.Checkpoint(model=model).restore(checkpoint_prefix).expect_partial()
    except (tf.errors.OpError, IndexError) as error:  # a short data file reads as an IndexError
        raise UserError(f"checkpoint {checkpoint_prefix} is unreadable ({unreadable_reason(error)}): it was cut "
                        f"short or damaged; pass an earlier ckpt-N prefix of its run (training falls back to one "
                        f"by itself)") from None
    if not use_ema:
        return False
    reader = tf.train.load_checkpoint(checkpoint_prefix)
    stored = reader.get_variable_to_shape_map()
    used = False
    for variable in model.weights:
        # tf.train.Checkpoint escapes "." as ".." and "/" as ".S" in object names
        escaped = ema_variable_key(variable).replace(".", "..").replace("/", ".S")
        key = f"{EMA_KEY}/{escaped}/.ATTRIBUTES/VARIABLE_VALUE"
        if key in stored:
            variable.assign(reader.get_tensor(key))
            used = True
    return used


def unreadable_reason(error):
    """A few words from the error of reading a damaged checkpoint."""
    text = " ".join(str(getattr(error, "message", error)).split())
    return text if len(text) <= 160 else text[:157] + "..."


def load_run_weights(model, config, prefix, *, exclude_scopes="", use_ema=True):
    """Start `model` from the model weights of the run checkpoint `prefix`
    (not its optimizer state or step): the run's network is rebuilt from its
    `config` (its run_config.json's `fgtf.runs.RunConfig`), restored (EMA weights when it kept them
    and `use_ema`), and its layers copied into `model` by name, except those
    under `exclude_scopes` (e.g. `Logits` for another class count). `model`
    may be the run's whole network, only its backbone, or (from a run
    without a head) a head's network, of which only the backbone is loaded.
    Returns True when EMA weights were used."""
    from fgtf.models.layers import in_scopes, scope_prefixes, weight_layers
    from fgtf.models.heads import NO_HEAD
    from fgtf.models.network import backbone_of, build_network

    source = build_network(config)
    used_ema = restore_for_inference(source, prefix, use_ema=use_ema)
    excluded = scope_prefixes(model, exclude_scopes)
    stored = {layer.name: layer for layer in weight_layers(source)}
    # A run without a head starts a head's network as a TF-Slim checkpoint
    # does: its backbone; the head's own layers stay newly initialised.
    target = backbone_of(model) if config.head == NO_HEAD else model
    wanted = [layer for layer in weight_layers(target) if layer.weights and not in_scopes(layer.name, excluded)]
    # Like a slim checkpoint, a run must cover every layer it initialises:
    # a run of another network would otherwise leave this one silently untrained.
    missing = [layer.name for layer in wanted if layer.name not in stored]
    if missing:
        raise ParameterError(f"{prefix} (a run of {config.model_name}) has no weights for {len(missing)} "
                             f"layer(s) of this network, e.g. {', '.join(missing[:3])}; start from a run of the same "
                             f"network, or leave those layers out with `checkpoint_exclude_scopes`")
    for layer in wanted:
        weights = stored[layer.name].get_weights()
        shapes = [w.shape for w in weights]
        if shapes != [tuple(v.shape) for v in layer.weights]:
            raise ParameterError(f"layer {layer.name} of {prefix} has weights of shapes {shapes}, this "
                                 f"network's {[tuple(v.shape) for v in layer.weights]}; leave it out with "
                                 f"`checkpoint_exclude_scopes` (e.g. {layer.name.split('.')[0]})")
        layer.set_weights(weights)
    return used_ema


def ema_variable_key(variable):
    """The checkpoint key under `ema/` of a model variable's moving average."""
    return variable.path.replace("/", ".")


def load_torch_weights(model, path, *, exclude_scopes=()):
    """Assign a torch state dict (`.pth`, zip or legacy format; see
    `torch_state_dict`) to a model whose layers carry the torch module names:
    torchvision's ResNets (`fgtf.models.resnet`) and Swin (`fgtf.models.swin`).

    Conv kernels (out, in, kh, kw) become (kh, kw, in, out) and Linear weights
    are transposed; batch norm's `weight`, `bias`, `running_mean`,
    `running_var` are gamma, beta and the moving statistics. Buffers the
    Keras layers rebuild or do not keep (`num_batches_tracked`, Swin's
    `relative_position_index` and `attn_mask`) are dropped. A checkpoint
    classifier (`fc`, Swin's `head`) the model lacks (no top) or holds for
    another class count is skipped, saying so in one line; Swin's `head` is
    then zeroed, as CLE-ViT does. `exclude_scopes`: layer names (or their
    prefixes up to a `.`) left as they are. Reading never needs torch (see
    `fgtf.models.pth`).
    Raises UserError naming every missing key, shape mismatch and unused key.
    """
    from fgtf.models.layers import in_scopes, scope_list

    state = torch_state_dict(path)
    excluded = scope_list(exclude_scopes)
    layer_names = {layer.name for layer in flatten_layers(model)}
    assignments, missing, mismatched, skipped, used = [], [], [], {}, set()
    for variable in model.weights:
        if in_scopes(variable.path.split("/")[0], excluded):
            continue
        key, convert = torch_key(variable.path)
        if key not in state:
            missing.append(key)
            continue
        used.add(key)
        value = convert(np.asarray(state[key]))
        module = key.split(".")[0]
        if module in TORCH_CLASSIFIERS and value.shape != tuple(variable.shape):
            skipped[module] = variable.shape[-1]  # the model's class count
            if TORCH_CLASSIFIERS[module] == "zero":
                assignments.append((variable, np.zeros(variable.shape, np.float32)))
            continue
        if value.shape != tuple(variable.shape):
            mismatched.append(f"{key} {value.shape} vs Keras {tuple(variable.shape)}")
            continue
        assignments.append((variable, value))
    absent = {key.split(".")[0] for key in state if key.split(".")[0] in TORCH_CLASSIFIERS} - layer_names
    unused = [k for k in state if k not in used and not k.endswith(_TORCH_BUFFERS)
              and not in_scopes(k.rsplit(".", 1)[0], excluded) and k.split(".")[0] not in absent]
    problems = [f"{len(items)} {what} ({', '.join(items[:5])}{', ...' if len(items) > 5 else ''})"
                for what, items in (("shape mismatches", mismatched), ("weights missing from the checkpoint", missing),
                                    ("unused checkpoint tensors", unused)) if items]
    if problems:
        raise UserError(f"{path} does not fit model {model.name}: " + "; ".join(problems))
    for variable, value in assignments:
        variable.assign(value.astype(variable.dtype))
    for name, classes in sorted(skipped.items()):
        kept = "zeroed" if TORCH_CLASSIFIERS[name] == "zero" else "left as initialised"
        print(f"skipped the classifier {name} of {path}: it has {torch_classes(state)} classes, model "
              f"{model.name} {classes} (its {name} {kept})")
    for name in sorted(absent):
        print(f"skipped the classifier {name} of {path}: model {model.name} has no such layer")


def torch_state_dict(path):
    """The state dict (parameter name -> numpy array) of a torch checkpoint:
    the saved mapping itself, or the one under `state_dict` or `model` (as
    training scripts save them), with DataParallel's `module.` prefixes
    stripped. UserError when the file holds no such mapping."""
    from fgtf.models.pth import load_pth

    state = load_pth(path)
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
            break
    if not isinstance(state, dict) or not all(isinstance(v, np.ndarray) for v in state.values()):
        raise UserError(f"{path} holds no state dict (a mapping of parameter names to tensors)")
    return {key[len("module."):] if key.startswith("module.") else key: value for key, value in state.items()}


def torch_classes(state):
    """The class count of a torch state dict's classifier (`fc` or Swin's `head`), None without one."""
    for name in TORCH_CLASSIFIERS:
        if f"{name}.weight" in state:
            return int(state[f"{name}.weight"].shape[0])
    return None


def torch_key(variable_path):
    """Keras variable path -> (torch state-dict key, numpy conversion to the
    Keras layout): `layers.0.blocks.1/attn/qkv/kernel` ->
    (`layers.0.blocks.1.attn.qkv.weight`, transpose), `layer1.0.bn1/moving_mean`
    -> (`layer1.0.bn1.running_mean`, identity)."""
    *scopes, short = variable_path.split("/")
    key = ".".join(scopes + [_TORCH_VARIABLE.get(short, short)])
    if short != "kernel":
        return key, lambda value: value
    return key, lambda value: value.transpose(2, 3, 1, 0) if value.ndim == 4 else value.T


def _layer_variables(model):
    """(layer, variable) for every weight of `model`, descending into nested layers."""
    for layer in flatten_layers(model):
        for variable in own_variables(layer):
            yield layer, variable


def _absolute_scopes(scopes, top):
    from fgtf.models.layers import scope_list

    return tuple(s if s.split("/")[0] == top else f"{top}/{s}" for s in scope_list(scopes))


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

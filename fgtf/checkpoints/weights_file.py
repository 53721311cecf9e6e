"""Weights converted once to a Keras `.weights.h5` that records its network
(the job of `fgtf checkpoints convert`)."""
from __future__ import annotations

import os

from fgtf.checkpoints import LoadedWeights, checkpoint_kind, describe, load_network
from fgtf.models.weights import keras_weights_record, save_keras_weights
from fgtf.errors import ParameterError, UserError

def convert_checkpoint(model_name: str | None, checkpoint: str, out: str, *, num_classes: int | None = None,
                       use_ema: bool | str = "auto") -> LoadedWeights:
    """Write the Keras weights file `out`, recording its network, of the
    network `load_network` loads from `checkpoint` (with its classifier, and
    aux logits when the checkpoint has them): a TF-Slim checkpoint of
    `model_name`, the plain network of an fgtf training run folder
    (`model_name` None or the run's), or a `.weights.h5` (an fgtf one is
    written again, e.g. at another place; another Keras file of `model_name`
    with `num_classes` gains the record every command reads). A SavedModel
    holds no fgtf network: a UserError. Returns what was loaded."""
    kind = checkpoint_kind(checkpoint)
    if kind == "saved_model":
        raise UserError(f"{checkpoint} is a SavedModel, an opaque graph with no fgtf network to convert; pass it "
                        f"as --checkpoint to extract_features, or re-export it with python -m fgtf.export")
    if kind == "slim" and not model_name:
        raise ParameterError(f"`model` is required for the TF-Slim checkpoint {checkpoint} (e.g. `model` inception_v3)")
    if kind == "keras" and not model_name and "model" not in keras_weights_record(checkpoint):
        raise ParameterError(f"`model` is required for {checkpoint}, a Keras weights file that does not record its "
                             f"network (e.g. `model` inception_v3 `num_classes` 1000)")
    if os.path.abspath(checkpoint) == os.path.abspath(out):
        raise ParameterError(f"`out` {out} is the `checkpoint` itself; write the converted weights to another file")
    loaded = load_network(checkpoint, model=model_name, num_classes=num_classes, use_ema=use_ema is not False)
    if loaded.head != "none":
        raise UserError(f"{checkpoint} trains a {loaded.head} head on {loaded.model}; only plain networks "
                        f"convert to .weights.h5 (use python -m fgtf.export for a head)")
    if num_classes and num_classes != loaded.num_classes:
        raise ParameterError(f"`num_classes` {num_classes} differs from the {loaded.num_classes} classes that "
                             f"{checkpoint} holds; leave it out")
    if use_ema is True and not loaded.ema:
        raise ParameterError(f"{checkpoint} keeps no moving averages of its weights (`use_ema` true)")
    from_run = [name for name, given in (("model", model_name), ("classes", num_classes)) if not given]
    print(f"{checkpoint}: {describe(loaded, from_run)}")
    network = loaded.network
    aux = len(network.outputs) > 1
    save_keras_weights(network, out, loaded.model, loaded.num_classes, aux, ema=loaded.ema)
    print(f"wrote {out}: {network.name}{' with aux logits' if aux else ''}")
    return loaded

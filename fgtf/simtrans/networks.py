"""The networks of a SimTrans run, built from its run.json: the registry
backbone (optionally started from a checkpoint or another SimTrans run), the
main classifier and SimNet on it (`fgtf.simtrans.model`).

Keras is imported when a network is built, not with this module, so the
command's --help stays instant.
"""
import os

from fgtf.simtrans.run_folder import BACKBONE_WEIGHTS, RUN_FILE, SIMNET_WEIGHTS, current_step, read_run
from fgtf.errors import UserError

SIMTRANS_DEFAULT_MODEL = "small_cnn"


def start_network(checkpoint, model, image_size, preprocessing=None):
    """(model, image_size, preprocessing, names of those taken from the
    checkpoint): the given ones, else those of a `checkpoint` run (a
    SimTrans run's run.json, a training run's run_config.json) or the
    network an fgtf .weights.h5 or torch state dict holds, else small_cnn,
    then the network's default size (small_cnn: 64 px) and pipeline."""
    from fgtf.checkpoints import RecordedNetwork, recorded_network
    from fgtf.models import default_image_size, default_preprocessing

    source = RecordedNetwork()
    if checkpoint:
        run = read_run(checkpoint)
        source = recorded_network(checkpoint) if run is None else RecordedNetwork(
            model=run.get("model"), image_size=run.get("image_size"), preprocessing=run.get("preprocessing"))
    taken = [name for name, given, recorded in (("model", model, source.model),
                                                ("image size", image_size, source.image_size),
                                                ("preprocessing", preprocessing, source.preprocessing))
             if given is None and recorded]
    model = model or source.model or SIMTRANS_DEFAULT_MODEL
    return (model, image_size or source.image_size or default_image_size(model),
            preprocessing or source.preprocessing or default_preprocessing(model), taken)


def build_backbone(run, weights=None, taken=()):
    """The run's registry backbone without its classifier: a model (B, S, S, 3)
    -> 4-D feature map, started from `weights` when given (`taken`: the
    settings pretrain took from them, for the line saying what was loaded)."""
    from fgtf.errors import InputSizeError, ParameterError
    from fgtf.models import build_model

    size = run["image_size"]
    try:
        backbone = build_model(run["model"], include_top=False, input_shape=(size, size, 3))
    except InputSizeError as error:
        raise ParameterError(f"`image_size` {size} does not suit {run['model']}: {error}") from None
    if weights:
        _load_backbone_weights(backbone, weights, run["model"], taken)
    return backbone


def build_classifier(run, num_classes, backbone_weights=None, simnet=None, taken=()):
    """A `WeakShotClassifier` on the run's backbone, built so .weights.h5 files load."""
    import keras

    from fgtf.simtrans.model import WeakShotClassifier

    model = WeakShotClassifier(build_backbone(run, backbone_weights, taken), num_classes, simnet=simnet,
                               name="classifier")
    size = run["image_size"]
    model(keras.ops.zeros((1, size, size, 3)))  # build, so .weights.h5 files load
    return model


def build_simnet(run, backbone_weights=None, **options):
    """A SimNet on the pooled features of the run's backbone (initialised from `backbone_weights` when given)."""
    from fgtf.models.network import pooled_features_model
    from fgtf.simtrans.model import SimNet

    return SimNet(pooled_features_model(build_backbone(run, backbone_weights), run["model"]), name="simnet",
                  **options)


def load_simnet(run_dir, run):
    """The run's trained SimNet, frozen."""
    simnet = build_simnet(run)
    simnet.load_weights(os.path.join(run_dir, SIMNET_WEIGHTS))
    simnet.trainable = False
    return simnet


def _load_backbone_weights(backbone, path, model, taken=()):
    """Load `path` into the top-less `backbone` of network `model` and print
    what was loaded: a SimTrans run folder (its current pretrained backbone),
    else any kind `fgtf.checkpoints.load_into` takes but a SavedModel (an fgtf
    training run folder, a .weights.h5, a TF-Slim checkpoint). Weights of
    another network are a UserError."""
    from fgtf.checkpoints import describe, load_into

    given, source = path, "its run_config.json"
    other_run = read_run(path)
    if other_run is not None:
        if other_run["model"] != model:
            raise UserError(f"{path} is a SimTrans run of {other_run['model']}, not of --model {model}")
        current_step(path, "pretrain")  # its backbone is finished and current
        path, source = os.path.join(path, BACKBONE_WEIGHTS), f"its {RUN_FILE}"
    loaded = load_into(backbone, path, model_name=model, exclude_scopes=("Logits", "logits", "AuxLogits"),
                       saved_model_use="a SimTrans backbone's start weights")
    print(f"backbone initialised from {given}: {describe(loaded, taken, source)}")

"""The network of a training run: a registry backbone with its TF-Slim
classifier, or its feature map wrapped by a head of the head table
(`fgtf.models.heads.HEADS`). Training builds it, and every command that
loads a run rebuilds it the same way (`fgtf.models.weights.load_run_network`).
"""
import keras

from fgtf.models import build_model
from fgtf.models.heads import NO_HEAD, build_head, head_record
from tfrecord_tools.cli import UserError


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


def backbone_of(model):
    """The slim-named backbone: the model itself, or the backbone a head wraps
    (the first nested keras.Model)."""
    nested = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    return nested[0] if nested else model


def _build_network(config):
    size = config["image_size"]
    head = config.get("head") or NO_HEAD
    if head == NO_HEAD:
        extra = {"aux_logits": True} if config.get("aux_logits") else {}
        return build_model(config["model_name"], classes=config["num_classes"], classifier_activation=None,
                           input_shape=(size, size, 3), **extra)
    head_record(head)  # an unknown head is refused before the backbone is built
    backbone = build_model(config["model_name"], include_top=False, input_shape=(size, size, 3))
    return build_head(head, backbone, config["num_classes"], **config.get("head_options", {}))

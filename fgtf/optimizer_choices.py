"""The names fgtf.train's optimisation flags choose from, with the defaults
that depend on a choice.

Keras-free, so that a CLI can offer them as choices before it imports Keras;
`fgtf.optimization` builds what each name means.
"""
# momentum, rmsprop, adam, sgd: TF1's optimizers as the slim trainer names
# them; adamw: PyTorch's AdamW.
OPTIMIZERS = ("momentum", "rmsprop", "adam", "adamw", "sgd")
DECAY_TYPES = ("exponential", "polynomial", "fixed", "multistep", "cosine", "warmup_linear")

# slim: L2 on conv and dense kernels added to the loss (the slim nets' arg
# scope); coupled: wd * weight added to every trained variable's gradient
# (PyTorch's SGD / Adam weight_decay); decoupled: the weight shrunk by
# lr * wd before each step, 1-D variables left alone (AdamW as CLE-ViT runs it).
WEIGHT_DECAY_MODES = ("slim", "coupled", "decoupled")
# The weight decay of each mode when --weight_decay is not given: slim's
# trainer's; the PyTorch seeds' SGD (SAM, SimTrans); AdamW's as CLE-ViT and
# Swin use it.
DEFAULT_WEIGHT_DECAY = {"slim": 0.00004, "coupled": 0.0001, "decoupled": 0.05}
# The epsilon of each optimizer that has one when --opt_epsilon is not given:
# the slim trainer's 1.0, PyTorch's AdamW's 1e-8.
DEFAULT_EPSILON = {"rmsprop": 1.0, "adam": 1.0, "adamw": 1e-8}

# How a scope (--trainable_scopes, --checkpoint_exclude_scopes,
# --learning_rate_multipliers) names variables: substring, as the CVPR 2018
# trainer matched them (`Logits` also names `AuxLogits`), or prefix (`Logits`
# names `Logits` and what lies under it).
SCOPE_MATCHING = ("substring", "prefix")
# How the batch norm of layers outside --trainable_scopes runs: train (slim's
# is_training=True and PyTorch's model.train(): batch statistics, moving
# averages updated) or inference (Keras's frozen layer: moving statistics).
FROZEN_BATCH_NORM = ("train", "inference")


def default_weight_decay_mode(optimizer):
    """The weight decay an optimizer gets when --weight_decay_mode is not given."""
    return "decoupled" if optimizer == "adamw" else "slim"

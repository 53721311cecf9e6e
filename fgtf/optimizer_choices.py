"""The optimizer and learning-rate decay names of the slim trainer.

Keras-free, so that a CLI can offer them as choices before it imports Keras;
`fgtf.optimization` builds what each name means.
"""
OPTIMIZERS = ("momentum", "rmsprop", "adam", "adamw", "sgd")
DECAY_TYPES = ("exponential", "polynomial", "fixed", "warmup_linear")

"""Optimizers, learning-rate schedules and weight decay as the original
TF-Slim trainer (`train_image_classifier.py`) configures them."""
import math

import keras
from keras import ops

from fgtf._keras_internals import flatten_layers
from fgtf.optimizer_choices import DECAY_TYPES, OPTIMIZERS  # noqa: F401  (re-exported)
from tfrecord_tools.cli import UserError


@keras.saving.register_keras_serializable(package="fgtf")
class SlimLearningRate(keras.optimizers.schedules.LearningRateSchedule):
    """The slim trainer's schedules, by global step:

    - `exponential`: `lr * decay_factor ** (step / decay_steps)` (floor of the
      exponent when `staircase`), never below `end_learning_rate`;
    - `polynomial`: linear from `lr` to `end_learning_rate` over `decay_steps`;
    - `fixed`: `lr`;
    - `warmup_linear`: linear warm-up from 0 over `warmup_steps`, then linear
      decay to `end_learning_rate` at `total_steps` (the CLE recipe).
    """

    def __init__(self, learning_rate, decay_type="exponential", decay_steps=1, decay_factor=0.94,
                 end_learning_rate=0.0001, staircase=True, warmup_steps=0, total_steps=1):
        if decay_type not in DECAY_TYPES:
            raise UserError(f"unknown learning-rate decay type {decay_type!r}; choose one of {', '.join(DECAY_TYPES)}")
        self.learning_rate = float(learning_rate)
        self.decay_type = decay_type
        self.decay_steps = max(int(decay_steps), 1)
        self.decay_factor = float(decay_factor)
        self.end_learning_rate = float(end_learning_rate)
        self.staircase = bool(staircase)
        self.warmup_steps = int(warmup_steps)
        self.total_steps = max(int(total_steps), 1)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        if self.decay_type == "fixed":
            return ops.convert_to_tensor(self.learning_rate, "float32")
        if self.decay_type == "exponential":
            exponent = step / self.decay_steps
            if self.staircase:
                exponent = ops.floor(exponent)
            rate = self.learning_rate * ops.power(self.decay_factor, exponent)
            return ops.maximum(rate, self.end_learning_rate)
        if self.decay_type == "polynomial":
            progress = ops.minimum(step, self.decay_steps) / self.decay_steps
            return (self.learning_rate - self.end_learning_rate) * (1.0 - progress) + self.end_learning_rate
        warmup = max(self.warmup_steps, 1)
        rising = self.learning_rate * step / warmup
        remaining = ops.maximum(self.total_steps - step, 0.0) / max(self.total_steps - self.warmup_steps, 1)
        falling = self.end_learning_rate + (self.learning_rate - self.end_learning_rate) * remaining
        return ops.where(step < self.warmup_steps, rising, falling)

    def get_config(self):
        return {"learning_rate": self.learning_rate, "decay_type": self.decay_type,
                "decay_steps": self.decay_steps, "decay_factor": self.decay_factor,
                "end_learning_rate": self.end_learning_rate, "staircase": self.staircase,
                "warmup_steps": self.warmup_steps, "total_steps": self.total_steps}


def decay_steps_for(num_train_examples, global_batch_size, num_epochs_per_decay):
    """Steps between decays, from the global batch: `int(examples * epochs / batch)`."""
    return max(int(num_train_examples * num_epochs_per_decay / global_batch_size), 1)


def steps_per_epoch(num_train_examples, global_batch_size):
    return max(math.floor(num_train_examples / global_batch_size), 1)


def make_optimizer(name, learning_rate, *, momentum=0.9, rmsprop_decay=0.9, rmsprop_momentum=0.9,
                   opt_epsilon=1.0, adam_beta1=0.9, adam_beta2=0.999, adamw_weight_decay=0.05,
                   moving_average_decay=None):
    """A Keras optimizer named as in the slim trainer's `--optimizer`.

    `moving_average_decay` keeps an exponential moving average of the trainable
    weights (Keras's `use_ema`), used for evaluation and feature extraction.
    Note: slim's RMSProp adds `opt_epsilon` inside the square root, Keras
    outside; with the default epsilon 1.0 both damp small second moments."""
    ema = {"use_ema": moving_average_decay is not None}
    if moving_average_decay is not None:
        ema["ema_momentum"] = float(moving_average_decay)
    if name == "momentum":
        return keras.optimizers.SGD(learning_rate, momentum=momentum, **ema)
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate, **ema)
    if name == "rmsprop":
        return keras.optimizers.RMSprop(learning_rate, rho=rmsprop_decay, momentum=rmsprop_momentum,
                                        epsilon=opt_epsilon, **ema)
    if name == "adam":
        return keras.optimizers.Adam(learning_rate, beta_1=adam_beta1, beta_2=adam_beta2,
                                     epsilon=opt_epsilon, **ema)
    if name == "adamw":
        optimizer = keras.optimizers.AdamW(learning_rate, weight_decay=adamw_weight_decay, beta_1=adam_beta1,
                                           beta_2=adam_beta2, epsilon=1e-8, **ema)
        optimizer.exclude_from_weight_decay(var_names=["bias", "beta", "gamma"])
        return optimizer
    raise UserError(f"unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}")


def apply_weight_decay(model, weight_decay):
    """Slim's L2 weight decay, `weight_decay * sum(w ** 2) / 2` on every conv and
    dense kernel (not biases or batch-norm), added to the model's losses."""
    if not weight_decay:
        return
    regularizer = keras.regularizers.L2(weight_decay / 2.0)
    for layer in flatten_layers(model):
        kernel = getattr(layer, "kernel", None)
        if kernel is not None and kernel.trainable:
            kernel.regularizer = regularizer


def freeze_outside_scopes(model, trainable_scopes):
    """Keep only the layers under the given slim scopes trainable (e.g.
    `Logits,AuxLogits` to train the classifier only). Scopes are matched on
    the naming rule of fgtf.models.layers (`Mixed_7c` covers `Mixed_7c.*`)
    and may carry the model's top scope (`InceptionV3/Logits`).
    Returns the names of the layers left trainable."""
    prefixes = scope_prefixes(model, trainable_scopes)
    if not prefixes:
        return [layer.name for layer in model.layers]
    kept = []
    for layer in weight_layers(model):
        keep = in_scopes(layer.name, prefixes)
        layer.trainable = keep
        if keep and layer.weights:
            kept.append(layer.name)
    if not kept:
        raise UserError(f"--trainable_scopes {trainable_scopes} match no layer with weights in {model.name}")
    return kept


def scope_prefixes(model, scopes):
    """Layer-name prefixes of comma-separated slim scopes (a list or a string),
    the model's top scope (`InceptionV3/`) dropped."""
    from fgtf.models.layers import SCOPE_SEPARATOR

    scopes = [s.strip().strip("/") for s in (scopes.split(",") if isinstance(scopes, str) else scopes)
              if s.strip()]
    prefixes = []
    for s in scopes:
        parts = s.split("/")
        if len(parts) > 1 and _has_top_scope(model, parts[0]):
            parts = parts[1:]
        prefixes.append(SCOPE_SEPARATOR.join(parts))
    return prefixes


def in_scopes(layer_name, prefixes):
    from fgtf.models.layers import SCOPE_SEPARATOR

    return any(layer_name == p or layer_name.startswith(p + SCOPE_SEPARATOR) for p in prefixes)


def weight_layers(model):
    """The layers of `model` and of the models nested in it (a head's backbone), models themselves left out."""
    return [layer for layer in flatten_layers(model)
            if not isinstance(layer, keras.Model)]


def _has_top_scope(model, name):
    return model.name == name or any(isinstance(l, keras.Model) and l.name == name
                                     for l in flatten_layers(model))

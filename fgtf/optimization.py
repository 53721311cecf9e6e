"""Optimizers, learning-rate schedules and weight decay as the original
TF-Slim trainer (`train_image_classifier.py`) configures them, and CLE-ViT's
optimizer (`cle_optimizer`: AdamW with the classifier as a second parameter
group) with its warm-up-linear schedule (`WarmupLinearDecay`, also the
trainer's `warmup_linear`)."""
import math

import keras
from keras import ops

from fgtf._keras_internals import flatten_layers, variable_index
from fgtf.optimizer_choices import DECAY_TYPES, OPTIMIZERS  # noqa: F401  (re-exported)
from tfrecord_tools.cli import UserError

# CLE-ViT's warm-up starts at this fraction of the peak rate (its WARMUP_LR =
# lr / 1000), for every parameter group alike.
CLE_WARMUP_START = 1e-3


@keras.saving.register_keras_serializable(package="fgtf")
class SlimLearningRate(keras.optimizers.schedules.LearningRateSchedule):
    """The slim trainer's schedules, by global step:

    - `exponential`: `lr * decay_factor ** (step / decay_steps)` (floor of the
      exponent when `staircase`), never below `end_learning_rate`;
    - `polynomial`: linear from `lr` to `end_learning_rate` over `decay_steps`;
    - `fixed`: `lr`;
    - `warmup_linear`: CLE-ViT's schedule (`WarmupLinearDecay`): linear
      warm-up from lr / 1000 over `warmup_steps` to `lr`, then linear decay to
      `end_learning_rate` at `total_steps`, one step behind as the original.
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
        return WarmupLinearDecay(self.learning_rate, self.learning_rate * CLE_WARMUP_START, self.warmup_steps,
                                 self.total_steps, final_fraction=self.end_learning_rate / self.learning_rate)(step)

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


def cle_optimizer(model, learning_rate, steps_per_epoch, epochs=200, warmup_epochs=20,
                  weight_decay=0.05, global_clipnorm=5.0, head_multiplier=5.0):
    """CLE-ViT's optimiser: AdamW (betas 0.9/0.999, eps 1e-8, decoupled weight
    decay `weight_decay`, none on 1-D variables (norms, biases) or on relative
    position bias tables), global-norm clipping at `global_clipnorm`, and the
    `WarmupLinearDecay` schedule from learning_rate / 1000 over
    `warmup_epochs` to `learning_rate`, then down to 1 % at `epochs`.

    The classifier `head` (kernel and bias) is the original's second parameter
    group: its peak rate is `head_multiplier` x learning_rate (`--head_mul`),
    its warm-up starts from the same learning_rate / 1000, and its weight decay
    is taken at its own rate, as PyTorch's AdamW does per group.

    learning_rate: the batch-scaled rate (the original: lr · batch / 512, e.g.
        1e-3 · 12 / 512 = 2.34375e-5).
    """
    start = learning_rate * CLE_WARMUP_START
    warmup_steps, total_steps = warmup_epochs * steps_per_epoch, epochs * steps_per_epoch
    optimizer = HeadRateAdamW(
        WarmupLinearDecay(learning_rate, start, warmup_steps, total_steps),
        head_learning_rate=WarmupLinearDecay(head_multiplier * learning_rate, start, warmup_steps, total_steps),
        head_variables=[v.path for v in model.head.trainable_variables], weight_decay=weight_decay,
        beta_1=0.9, beta_2=0.999, epsilon=1e-8, global_clipnorm=global_clipnorm)
    optimizer.exclude_from_weight_decay(var_list=[
        v for v in model.trainable_variables
        if len(v.shape) <= 1 or "relative_position_bias_table" in v.path])
    return optimizer


@keras.saving.register_keras_serializable(package="fgtf")
class HeadRateAdamW(keras.optimizers.AdamW):
    """AdamW with a second parameter group: the variables whose paths are in
    `head_variables` follow `head_learning_rate` (a float or a schedule of the
    iteration), for their Adam step and their decoupled weight decay alike;
    every other variable follows `learning_rate`. Other arguments are AdamW's."""

    def __init__(self, learning_rate, head_learning_rate, head_variables=(), **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.head_learning_rate = head_learning_rate
        self.head_variables = tuple(head_variables)
        self._head_indices = frozenset()

    def build(self, var_list):
        super().build(var_list)
        found = {v.path for v in var_list} & set(self.head_variables)
        if found != set(self.head_variables):
            raise ValueError(f"head variables {sorted(set(self.head_variables) - found)} are not among the "
                             f"variables to train")
        self._head_indices = frozenset(variable_index(self, v) for v in var_list
                                       if v.path in self.head_variables)

    def update_step(self, gradient, variable, learning_rate):
        if not self._is_head(variable):
            return super().update_step(gradient, variable, learning_rate)
        head_rate = self.head_learning_rate
        if isinstance(head_rate, keras.optimizers.schedules.LearningRateSchedule):
            head_rate = head_rate(self.iterations)
        head_rate = ops.cast(head_rate, variable.dtype)
        # Skipped by the shared weight-decay pass (see `_use_weight_decay`):
        # decay at the head's own rate, before the Adam step, as AdamW does.
        if super()._use_weight_decay(variable):
            self.assign(variable, variable - variable * ops.cast(self.weight_decay, variable.dtype) * head_rate)
        return super().update_step(gradient, variable, head_rate)

    def _use_weight_decay(self, variable):
        """Whether the shared pass at `learning_rate` decays `variable` (head
        variables are decayed in `update_step` at the head's rate instead).
        Overrides a private Keras method: see `fgtf._keras_internals`."""
        return not self._is_head(variable) and super()._use_weight_decay(variable)

    def _is_head(self, variable):
        return bool(self._head_indices) and variable_index(self, variable) in self._head_indices

    def get_config(self):
        config = super().get_config()
        config.update({"head_learning_rate": keras.saving.serialize_keras_object(self.head_learning_rate),
                       "head_variables": list(self.head_variables)})
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        config["head_learning_rate"] = keras.saving.deserialize_keras_object(config["head_learning_rate"],
                                                                            custom_objects=custom_objects)
        return super().from_config(config, custom_objects=custom_objects)


@keras.saving.register_keras_serializable(package="fgtf")
class WarmupLinearDecay(keras.optimizers.schedules.LearningRateSchedule):
    """The CLE-ViT repository's per-iteration `LinearLRScheduler`:
    `lr(t) = start + t · (peak - start) / warmup_steps` for t < warmup_steps,
    then `peak - (1 - final_fraction) · peak · (t - warmup_steps) /
    (total_steps - warmup_steps)`. As in the original loop, update g (0-based)
    runs at lr(g - 1), so updates 0 and 1 both run at `start`. The one
    warm-up-linear schedule of fgtf: `cle_optimizer`'s and the trainer's
    `--learning_rate_decay_type warmup_linear`."""

    def __init__(self, peak, start, warmup_steps, total_steps, final_fraction=0.01):
        self.peak, self.start, self.final_fraction = float(peak), float(start), float(final_fraction)
        self.warmup_steps, self.total_steps = int(warmup_steps), int(total_steps)

    def __call__(self, step):
        t = ops.maximum(ops.cast(step, "float32") - 1.0, 0.0)
        warmup = self.start + t * (self.peak - self.start) / max(self.warmup_steps, 1)
        decay = self.peak - (1.0 - self.final_fraction) * self.peak * (t - self.warmup_steps) / max(
            self.total_steps - self.warmup_steps, 1)
        return ops.where(t < self.warmup_steps, warmup, decay)

    def get_config(self):
        return {"peak": self.peak, "start": self.start, "warmup_steps": self.warmup_steps,
                "total_steps": self.total_steps, "final_fraction": self.final_fraction}


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

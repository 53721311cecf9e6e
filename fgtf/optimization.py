"""Optimizers, learning-rate schedules and weight decay as the originals ran
them: the TF-Slim trainer (`train_image_classifier.py` on TF1) for the CVPR
2018 study, PyTorch for the seeds (SEF, SAM, SimTrans: SGD; CLE-ViT: AdamW).

    schedule = learning_rate_schedule(0.001, "multistep", decay_factor=0.1, milestones=(6000, 12000))
    optimizer = make_optimizer("momentum", schedule, nesterov=True, weight_decay=1e-4, weight_decay_mode="coupled",
                               learning_rate_multipliers={"fc/kernel": 10.0, "fc/bias": 10.0})

Every optimizer here is a `GroupedOptimizer`: a Keras optimizer whose
variables can run at a multiple of the learning rate (PyTorch's parameter
groups), with PyTorch's coupled or AdamW's decoupled weight decay at each
variable's own rate, and TF1's exponential moving average of the weights.
Their steps are the originals' to float rounding (tests/test_optimizer_steps.py
checks a few steps of each against PyTorch and tf_slim); Keras's own differ:
its SGD folds the learning rate into the velocity (v <- mu v - lr g), which
equals TF1's and PyTorch's momentum (v <- mu v + g; w <- w - lr v) only while
the rate is constant; its RMSprop starts the mean square at 0 (TF1: 1); its
AdamW decays every variable at the base rate and adds epsilon after the bias
correction (PyTorch: before); its weight EMA starts at the first step's weights
at a fixed decay (TF1: at the start weights, the decay capped by (1 + n) / (10 + n)).
"""
import math

import keras
from keras import ops

from fgtf._keras_internals import built_variables, flatten_layers, variable_index
from fgtf.optimizer_choices import (DECAY_TYPES, DEFAULT_EPSILON, OPTIMIZERS,  # noqa: F401  (DECAY_TYPES re-exported)
                                    default_weight_decay_mode)
from fgtf.errors import UserError

# CLE-ViT's warm-up starts at this fraction of the peak rate (its WARMUP_LR =
# lr / 1000), for every parameter group alike.
CLE_WARMUP_START = 1e-3
# Where CLE-ViT's linear decay ends, as a fraction of the peak (its MIN_LR = lr / 100).
CLE_FINAL_FRACTION = 0.01
# The slim trainer's end of the polynomial decay.
SLIM_END_LEARNING_RATE = 0.0001


def make_optimizer(name, learning_rate, *, momentum=0.9, nesterov=False, rmsprop_decay=0.9, rmsprop_momentum=0.9,
                   rmsprop_initial_mean_square=1.0, epsilon=None, adam_beta1=0.9, adam_beta2=0.999,
                   weight_decay=0.0, weight_decay_mode=None, learning_rate_multipliers=None,
                   clip_gradient_norm=None, moving_average_decay=None):
    """The optimizer `name` of `fgtf.optimizer_choices.OPTIMIZERS`: TF1's
    `momentum` (with `nesterov`), `sgd`, `rmsprop` and `adam` as the slim
    trainer configures them, and PyTorch's `adamw`.

    learning_rate: a float or a schedule of the iteration (`learning_rate_schedule`).
    epsilon: of rmsprop, adam and adamw (None: the slim trainer's 1.0; AdamW's 1e-8).
    weight_decay, weight_decay_mode: `coupled` (wd * weight added to every
        gradient, PyTorch's), `decoupled` (AdamW's, 1-D variables left
        alone) or `slim` (none in the optimizer: slim's decay is a loss, see
        `apply_weight_decay`); None: decoupled for adamw, else slim.
    learning_rate_multipliers: {variable path: factor}, the parameter groups.
    clip_gradient_norm: clip the gradients to this global norm before the step.
    moving_average_decay: keep TF1's moving average of the weights (`GroupedOptimizer`).
    """
    if name not in OPTIMIZERS:
        raise UserError(f"unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}")
    if nesterov and name != "momentum":
        raise UserError(f"Nesterov momentum is an option of the momentum optimizer, not of {name}")
    mode = weight_decay_mode or default_weight_decay_mode(name)
    common = {"learning_rate_multipliers": learning_rate_multipliers,
              "weight_decay": 0.0 if mode == "slim" else weight_decay,
              "weight_decay_mode": None if mode == "slim" else mode, "moving_average_decay": moving_average_decay,
              "clip_gradient_norm": clip_gradient_norm}
    epsilon = DEFAULT_EPSILON.get(name) if epsilon is None else epsilon
    if name in ("momentum", "sgd"):
        return Momentum(learning_rate, momentum=momentum if name == "momentum" else 0.0, nesterov=nesterov,
                        name=name, **common)
    if name == "rmsprop":
        return RMSProp(learning_rate, rho=rmsprop_decay, momentum=rmsprop_momentum, epsilon=epsilon,
                       initial_mean_square=rmsprop_initial_mean_square, **common)
    adam = Adam if name == "adam" else AdamW
    return adam(learning_rate, beta_1=adam_beta1, beta_2=adam_beta2, epsilon=epsilon, **common)


def cle_optimizer(model, learning_rate, steps_per_epoch, epochs=200, warmup_epochs=20,
                  weight_decay=0.05, global_clipnorm=5.0, head_multiplier=5.0):
    """CLE-ViT's optimiser: PyTorch's AdamW (betas 0.9/0.999, eps 1e-8,
    decoupled weight decay `weight_decay`, none on 1-D variables (norms,
    biases) or on relative position bias tables), global-norm clipping at
    `global_clipnorm`, and the `WarmupLinearDecay` schedule from
    learning_rate / 1000 over `warmup_epochs` to `learning_rate`, then down
    to 1 % at `epochs`.

    The classifier `head` (kernel and bias) is the original's second parameter
    group: its peak rate is `head_multiplier` x learning_rate (`--head_mul`),
    its warm-up starts from the same learning_rate / 1000, and its weight decay
    is taken at its own rate, as PyTorch's AdamW does per group.

    learning_rate: the batch-scaled rate (the original: lr · batch / 512, e.g.
        1e-3 · 12 / 512 = 2.34375e-5).
    """
    schedule = WarmupLinearDecay(learning_rate, learning_rate * CLE_WARMUP_START, warmup_epochs * steps_per_epoch,
                                 epochs * steps_per_epoch, final_fraction=CLE_FINAL_FRACTION)
    return AdamW(schedule, learning_rate_multipliers={v.path: head_multiplier for v in model.head.trainable_variables},
                 weight_decay=weight_decay, weight_decay_mode="decoupled", beta_1=0.9, beta_2=0.999, epsilon=1e-8,
                 clip_gradient_norm=global_clipnorm)


class GroupedOptimizer(keras.optimizers.Optimizer):
    """A Keras optimizer with what the originals' optimizers add around the
    update rule a subclass gives (`_create_slots`, `_descend`):

    - parameter groups: the variables named in `learning_rate_multipliers`
      ({variable path: factor}) step at factor x the learning rate (a
      schedule's `scaled` curve, see `scaled_learning_rate`), weight decay
      included, as PyTorch's per-group `lr`;
    - `weight_decay` by `weight_decay_mode`: `coupled` adds wd * w to the
      gradient of every variable (PyTorch's SGD and Adam `weight_decay`;
      biases and batch-norm parameters included), `decoupled` shrinks each
      variable of rank >= 2 other than a relative position bias table by
      lr * wd before its step (PyTorch's AdamW with the no-decay group
      timm and CLE-ViT give 1-D variables); None leaves decay to the loss;
    - `moving_average_decay`: TF1's `ExponentialMovingAverage(decay,
      num_updates=global_step)` of each trained variable, taken after its
      update: `average -= (1 - d) (average - w)` with d = min(decay,
      (1 + n) / (10 + n)), n the update's number (1, 2, ...), the average
      starting at the variable's value when the optimizer is built (call
      `reset_moving_averages` after loading start weights);
    - `clip_gradient_norm`: the gradients scaled by min(1, c / (norm + 1e-6))
      before the step, norm their global L2 norm, as PyTorch's
      `clip_grad_norm_` before `step()` (Keras's `global_clipnorm` leaves
      the 1e-6 out).
    """

    def __init__(self, learning_rate, *, learning_rate_multipliers=None, weight_decay=0.0, weight_decay_mode=None,
                 moving_average_decay=None, clip_gradient_norm=None, **kwargs):
        kwargs.pop("use_ema", None)  # Keras's EMA, replaced by TF1's (from a config)
        super().__init__(learning_rate, **kwargs)
        if clip_gradient_norm is not None and not clip_gradient_norm > 0:
            raise ValueError(f"clip_gradient_norm must be greater than 0, not {clip_gradient_norm}")
        self.clip_gradient_norm = clip_gradient_norm
        if weight_decay_mode not in (None, "coupled", "decoupled"):
            raise ValueError(f"weight_decay_mode must be coupled, decoupled or None, not {weight_decay_mode!r}")
        if moving_average_decay is not None and not 0 <= moving_average_decay < 1:
            raise ValueError(f"moving_average_decay must be in [0, 1), not {moving_average_decay}")
        self.learning_rate_multipliers = {str(path): float(factor)
                                          for path, factor in (learning_rate_multipliers or {}).items()}
        self.decay_rate = float(weight_decay or 0.0)
        self.weight_decay_mode = weight_decay_mode if self.decay_rate else None
        self.moving_average_decay = moving_average_decay
        self._group_rates = {factor: scaled_learning_rate(learning_rate, factor)
                             for factor in set(self.learning_rate_multipliers.values()) if factor != 1.0}

    def build(self, variables):
        if self.built:
            return
        # The averages come first, where Keras's use_ema put them, so that runs of older fgtf versions resume.
        averages = [self.add_variable_from_reference(v, "average", initializer=_value_of(v)) for v in variables] \
            if self.moving_average_decay is not None else []
        super().build(variables)
        paths = [v.path for v in variables]
        unknown = sorted(set(self.learning_rate_multipliers) - set(paths))
        if unknown:
            raise ValueError(f"learning-rate multipliers name variables that are not trained: {', '.join(unknown)}")
        repeated = sorted({p for p in paths if paths.count(p) > 1} & set(self.learning_rate_multipliers))
        if repeated:
            raise ValueError(f"learning-rate multipliers name variables whose path repeats: {', '.join(repeated)}")
        self._moving_averages = averages
        self._factors = [self.learning_rate_multipliers.get(p, 1.0) for p in paths]
        self._decayed = [self._decays(v) for v in variables]
        self._create_slots(variables)

    def apply(self, grads, trainable_variables=None):
        if self.clip_gradient_norm is not None:
            present = [g for g in grads if g is not None]
            norm = ops.sqrt(sum(ops.sum(ops.square(_dense(g, "float32"))) for g in present))
            scale = ops.minimum(1.0, self.clip_gradient_norm / (norm + 1e-6))
            grads = [None if g is None else g * ops.cast(scale, g.dtype) for g in grads]
        return super().apply(grads, trainable_variables)

    def update_step(self, gradient, variable, learning_rate):
        index = variable_index(self, variable)
        gradient = _dense(gradient, variable.dtype)
        learning_rate = ops.cast(self._group_rate(index, learning_rate), variable.dtype)
        if self._decayed[index]:
            decay = ops.cast(self.decay_rate, variable.dtype)
            if self.weight_decay_mode == "coupled":
                gradient = gradient + decay * variable
            else:
                self.assign(variable, variable * (1.0 - learning_rate * decay))
        self._descend(gradient, variable, learning_rate, index)
        if self._moving_averages:
            average = self._moving_averages[index]
            updates = ops.cast(self.iterations + 1, "float32")
            decay = ops.minimum(self.moving_average_decay, (1.0 + updates) / (10.0 + updates))
            self.assign_sub(average, (1.0 - ops.cast(decay, average.dtype)) * (average - variable))

    def moving_averages(self):
        """(variable, its moving average) for each variable the built
        optimizer trains; empty without `moving_average_decay`."""
        return list(zip(built_variables(self), self._moving_averages))

    def reset_moving_averages(self):
        """Start every moving average at its variable's present value (the
        start weights, once they are loaded)."""
        for variable, average in self.moving_averages():
            average.assign(variable)

    def decays(self, variable):
        """Whether this optimizer applies weight decay to `variable` (built optimizer)."""
        return self._decayed[variable_index(self, variable)]

    def _decays(self, variable):
        if self.weight_decay_mode == "decoupled":
            return len(variable.shape) >= 2 and "relative_position_bias_table" not in variable.path
        return self.weight_decay_mode == "coupled"

    def _group_rate(self, index, learning_rate):
        factor = self._factors[index]
        if factor == 1.0:
            return learning_rate
        rate = self._group_rates[factor]
        return rate(self.iterations) if callable(rate) else rate

    def _create_slots(self, variables):
        raise NotImplementedError

    def _descend(self, gradient, variable, learning_rate, index):
        """Update `variable` by `gradient` (weight decay folded in) at `learning_rate`."""
        raise NotImplementedError

    def get_config(self):
        config = super().get_config()
        config.update({"learning_rate_multipliers": dict(self.learning_rate_multipliers),
                       "weight_decay": self.decay_rate, "weight_decay_mode": self.weight_decay_mode,
                       "moving_average_decay": self.moving_average_decay,
                       "clip_gradient_norm": self.clip_gradient_norm})
        return config


def _dense(gradient, dtype):
    """`gradient` as a dense tensor of `dtype`: a gathered table (Swin's
    relative position bias) has TF IndexedSlices for a gradient, which
    Python's operators do not take and Keras's ops densify."""
    return ops.add(ops.cast(gradient, dtype), ops.zeros((), dtype))


def _value_of(variable):
    """An initializer giving `variable`'s present value."""
    return lambda shape, dtype=None: ops.cast(ops.convert_to_tensor(variable), dtype or variable.dtype)


@keras.saving.register_keras_serializable(package="fgtf")
class Momentum(GroupedOptimizer):
    """SGD with momentum as TF1's `MomentumOptimizer` and PyTorch's `SGD`
    both apply it (dampening 0): v <- momentum v + g; w <- w - lr v, or with
    `nesterov` w <- w - lr (g + momentum v). Momentum 0 is plain SGD."""

    def __init__(self, learning_rate=0.01, momentum=0.9, nesterov=False, name="momentum", **kwargs):
        super().__init__(learning_rate, name=name, **kwargs)
        if not 0 <= momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), not {momentum}")
        self.momentum, self.nesterov = float(momentum), bool(nesterov)

    def _create_slots(self, variables):
        self._velocities = self.add_optimizer_variables(variables, "momentum") if self.momentum else []

    def _descend(self, gradient, variable, learning_rate, index):
        if not self.momentum:
            self.assign_sub(variable, learning_rate * gradient)
            return
        velocity = self._velocities[index]
        self.assign(velocity, self.momentum * velocity + gradient)
        step = gradient + self.momentum * velocity if self.nesterov else velocity
        self.assign_sub(variable, learning_rate * step)

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}


@keras.saving.register_keras_serializable(package="fgtf")
class RMSProp(GroupedOptimizer):
    """TF1's `RMSPropOptimizer`: ms <- rho ms + (1 - rho) g^2;
    mom <- momentum mom + lr g / sqrt(ms + epsilon); w <- w - mom, with the
    mean square starting at `initial_mean_square` (TF1: 1, which damps the
    first steps; Keras and PyTorch: 0)."""

    def __init__(self, learning_rate=0.01, rho=0.9, momentum=0.9, epsilon=1.0, initial_mean_square=1.0,
                 name="rmsprop", **kwargs):
        super().__init__(learning_rate, name=name, **kwargs)
        self.rho, self.momentum, self.epsilon = float(rho), float(momentum), float(epsilon)
        self.initial_mean_square = float(initial_mean_square)

    def _create_slots(self, variables):
        start = keras.initializers.Constant(self.initial_mean_square)
        self._mean_squares = self.add_optimizer_variables(variables, "velocity", initializer=start)
        self._momentums = self.add_optimizer_variables(variables, "momentum") if self.momentum else []

    def _descend(self, gradient, variable, learning_rate, index):
        mean_square = self._mean_squares[index]
        self.assign(mean_square, self.rho * mean_square + (1.0 - self.rho) * ops.square(gradient))
        increment = learning_rate * gradient / ops.sqrt(mean_square + self.epsilon)
        if self.momentum:
            momentum = self._momentums[index]
            self.assign(momentum, self.momentum * momentum + increment)
            increment = momentum
        self.assign_sub(variable, increment)

    def get_config(self):
        return {**super().get_config(), "rho": self.rho, "momentum": self.momentum, "epsilon": self.epsilon,
                "initial_mean_square": self.initial_mean_square}


@keras.saving.register_keras_serializable(package="fgtf")
class Adam(GroupedOptimizer):
    """TF1's `AdamOptimizer` (Keras's Adam alike): w <- w - lr_t m / (sqrt(v) + epsilon)
    with lr_t = lr sqrt(1 - beta_2^t) / (1 - beta_1^t)."""
    # TF1 keeps its beta powers in float32
    _corrections_in = "float32"

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1.0, name="adam", **kwargs):
        super().__init__(learning_rate, name=name, **kwargs)
        self.beta_1, self.beta_2, self.epsilon = float(beta_1), float(beta_2), float(epsilon)

    def _create_slots(self, variables):
        self._first_moments, self._second_moments = self.add_optimizer_variables(variables, ["momentum", "velocity"])

    def _descend(self, gradient, variable, learning_rate, index):
        first, second = self._first_moments[index], self._second_moments[index]
        self.assign(first, self.beta_1 * first + (1.0 - self.beta_1) * gradient)
        self.assign(second, self.beta_2 * second + (1.0 - self.beta_2) * ops.square(gradient))
        corrections = self._bias_corrections(variable.dtype)
        self.assign_sub(variable, self._step_size(learning_rate, first, second, *corrections))

    def _bias_corrections(self, dtype):
        """(1 - beta_1^t, 1 - beta_2^t) at update t, computed in `_corrections_in`."""
        step = ops.cast(self.iterations + 1, self._corrections_in)
        return tuple(ops.cast(1.0 - ops.power(ops.convert_to_tensor(beta, self._corrections_in), step), dtype)
                     for beta in (self.beta_1, self.beta_2))

    def _step_size(self, learning_rate, first, second, first_correction, second_correction):
        return learning_rate * ops.sqrt(second_correction) / first_correction * first / (ops.sqrt(second)
                                                                                          + self.epsilon)

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon}


@keras.saving.register_keras_serializable(package="fgtf")
class AdamW(Adam):
    """PyTorch's `AdamW`: Adam with epsilon added to the bias-corrected root
    mean square, w <- w - lr / (1 - beta_1^t) m / (sqrt(v) / sqrt(1 - beta_2^t) + epsilon),
    and decoupled weight decay by default."""
    # PyTorch computes 1 - beta^t in float64 (0.999 in float32 is off by 1e-8, 1 - 0.999 so by 1e-5)
    _corrections_in = "float64"

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-8, weight_decay=0.01,
                 weight_decay_mode="decoupled", name="adamw", **kwargs):
        super().__init__(learning_rate, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon, weight_decay=weight_decay,
                         weight_decay_mode=weight_decay_mode, name=name, **kwargs)

    def _step_size(self, learning_rate, first, second, first_correction, second_correction):
        return learning_rate / first_correction * first / (ops.sqrt(second) / ops.sqrt(second_correction)
                                                           + self.epsilon)


def learning_rate_schedule(learning_rate, decay_type="exponential", *, decay_steps=1, decay_factor=0.94,
                           end_learning_rate=None, milestones=(), warmup_steps=0, total_steps=1):
    """The learning rate by global step for fgtf.train's
    `--learning_rate_decay_type` (`fgtf.optimizer_choices.DECAY_TYPES`):
    a `LearningRateDecay`, or CLE-ViT's `WarmupLinearDecay` for
    `warmup_linear` (warm-up from lr / 1000 over `warmup_steps`, then linear
    to `end_learning_rate`, by default 1 % of lr, at `total_steps`)."""
    if decay_type == "warmup_linear":
        final = CLE_FINAL_FRACTION if end_learning_rate is None else end_learning_rate / learning_rate
        return WarmupLinearDecay(learning_rate, learning_rate * CLE_WARMUP_START, warmup_steps, total_steps,
                                 final_fraction=final)
    return LearningRateDecay(learning_rate, decay_type, decay_steps=decay_steps, decay_factor=decay_factor,
                             end_learning_rate=end_learning_rate, milestones=milestones, total_steps=total_steps)


@keras.saving.register_keras_serializable(package="fgtf")
class LearningRateDecay(keras.optimizers.schedules.LearningRateSchedule):
    """A learning rate decayed by global step t:

    - `exponential`: lr * decay_factor ** floor(t / decay_steps) (TF1's
      `exponential_decay` with staircase, as the slim trainer; PyTorch's
      `StepLR` per step), or ** (t / decay_steps) without `staircase`; never
      below `end_learning_rate` when one is given (TF1 has no floor);
    - `polynomial`: linear from lr to `end_learning_rate` (default slim's
      0.0001) over `decay_steps`, then constant;
    - `fixed`: lr;
    - `multistep`: lr * decay_factor ** (number of `milestones` <= t)
      (PyTorch's `MultiStepLR` stepped each iteration);
    - `cosine`: end + (lr - end) (1 + cos(pi t / total_steps)) / 2, end
      `end_learning_rate` (default 0), then constant (PyTorch's
      `CosineAnnealingLR` over the run).
    """

    def __init__(self, learning_rate, decay_type="exponential", decay_steps=1, decay_factor=0.94,
                 end_learning_rate=None, staircase=True, milestones=(), total_steps=1):
        if decay_type not in DECAY_TYPES or decay_type == "warmup_linear":
            raise UserError(f"unknown learning-rate decay type {decay_type!r}; choose one of "
                            f"{', '.join(t for t in DECAY_TYPES if t != 'warmup_linear')} (or learning_rate_schedule)")
        self.learning_rate = float(learning_rate)
        self.decay_type = decay_type
        self.decay_steps = max(int(decay_steps), 1)
        self.decay_factor = float(decay_factor)
        self.end_learning_rate = None if end_learning_rate is None else float(end_learning_rate)
        self.staircase = bool(staircase)
        self.milestones = tuple(sorted(int(m) for m in milestones))
        self.total_steps = max(int(total_steps), 1)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        if self.decay_type == "fixed":
            return ops.convert_to_tensor(self.learning_rate, "float32")
        if self.decay_type == "exponential":
            exponent = step / self.decay_steps
            rate = self.learning_rate * ops.power(self.decay_factor, ops.floor(exponent) if self.staircase
                                                  else exponent)
            return rate if self.end_learning_rate is None else ops.maximum(rate, self.end_learning_rate)
        if self.decay_type == "multistep":
            passed = sum((ops.cast(step >= m, "float32") for m in self.milestones), ops.zeros((), "float32"))
            return self.learning_rate * ops.power(self.decay_factor, passed)
        if self.decay_type == "polynomial":
            end = SLIM_END_LEARNING_RATE if self.end_learning_rate is None else self.end_learning_rate
            progress = ops.minimum(step, self.decay_steps) / self.decay_steps
            return (self.learning_rate - end) * (1.0 - progress) + end
        end = self.end_learning_rate or 0.0
        progress = ops.minimum(step, self.total_steps) / self.total_steps
        return end + (self.learning_rate - end) * (1.0 + ops.cos(math.pi * progress)) / 2.0

    def scaled(self, factor):
        """This schedule for a parameter group at `factor` x the rate."""
        end = None if self.end_learning_rate is None else self.end_learning_rate * factor
        return LearningRateDecay(self.learning_rate * factor, self.decay_type, self.decay_steps, self.decay_factor,
                                 end, self.staircase, self.milestones, self.total_steps)

    def get_config(self):
        return {"learning_rate": self.learning_rate, "decay_type": self.decay_type,
                "decay_steps": self.decay_steps, "decay_factor": self.decay_factor,
                "end_learning_rate": self.end_learning_rate, "staircase": self.staircase,
                "milestones": list(self.milestones), "total_steps": self.total_steps}


@keras.saving.register_keras_serializable(package="fgtf")
class WarmupLinearDecay(keras.optimizers.schedules.LearningRateSchedule):
    """The CLE-ViT repository's per-iteration `LinearLRScheduler`:
    `lr(t) = start + t · (peak - start) / warmup_steps` for t < warmup_steps,
    then `peak - (1 - final_fraction) · peak · (t - warmup_steps) /
    (total_steps - warmup_steps)`. As in the original loop, update g (0-based)
    runs at lr(g - 1), so updates 0 and 1 both run at `start`. The one
    warm-up-linear schedule of fgtf: `cle_optimizer`'s and the trainer's
    `--learning_rate_decay_type warmup_linear`."""

    def __init__(self, peak, start, warmup_steps, total_steps, final_fraction=CLE_FINAL_FRACTION):
        self.peak, self.start, self.final_fraction = float(peak), float(start), float(final_fraction)
        self.warmup_steps, self.total_steps = int(warmup_steps), int(total_steps)

    def __call__(self, step):
        t = ops.maximum(ops.cast(step, "float32") - 1.0, 0.0)
        warmup = self.start + t * (self.peak - self.start) / max(self.warmup_steps, 1)
        decay = self.peak - (1.0 - self.final_fraction) * self.peak * (t - self.warmup_steps) / max(
            self.total_steps - self.warmup_steps, 1)
        return ops.where(t < self.warmup_steps, warmup, decay)

    def scaled(self, factor):
        """This schedule for a parameter group at `factor` x the peak; the
        warm-up starts from the same rate (CLE-ViT gives every group one WARMUP_LR)."""
        return WarmupLinearDecay(self.peak * factor, self.start, self.warmup_steps, self.total_steps,
                                 self.final_fraction)

    def get_config(self):
        return {"peak": self.peak, "start": self.start, "warmup_steps": self.warmup_steps,
                "total_steps": self.total_steps, "final_fraction": self.final_fraction}


def scaled_learning_rate(learning_rate, factor):
    """A parameter group's learning rate at `factor` x `learning_rate` (a
    number, or a schedule: its `scaled` curve when it has one, else factor x
    its value)."""
    if not callable(learning_rate):
        return learning_rate * factor
    if hasattr(learning_rate, "scaled"):
        return learning_rate.scaled(factor)
    return lambda step: factor * learning_rate(step)


def decay_steps_for(num_train_examples, global_batch_size, num_epochs_per_decay):
    """Steps in `num_epochs_per_decay` epochs of the global batch, as the slim
    trainer counts them: `int(examples * epochs / batch)` (at least 1)."""
    return max(int(num_train_examples * num_epochs_per_decay / global_batch_size), 1)


def steps_per_epoch(num_train_examples, global_batch_size):
    return max(math.floor(num_train_examples / global_batch_size), 1)


def apply_weight_decay(model, weight_decay):
    """Slim's L2 weight decay, `weight_decay * sum(w ** 2) / 2` on every conv and
    dense kernel (not biases or batch-norm), added to the model's losses.
    (Slim's total loss also counts the kernels of frozen layers: a constant.)"""
    if not weight_decay:
        return
    regularizer = keras.regularizers.L2(weight_decay / 2.0)
    for layer in flatten_layers(model):
        kernel = getattr(layer, "kernel", None)
        if kernel is not None and kernel.trainable:
            kernel.regularizer = regularizer

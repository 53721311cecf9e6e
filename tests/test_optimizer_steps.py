"""A few training steps of fgtf equal the original frameworks' steps: from
the same weights, on the same fixed batch, each recipe family's optimiser as
fgtf.train's flags express it (through `fgtf.training.prepare_optimization`, the
code a run uses) gives the loss and the updated weights that PyTorch (SEF,
SAM, CLE-ViT) and TF1 + tf_slim (the CVPR 2018 trainer) gave. References:
tests/reference/optimizer_steps (README there)."""
import keras
import numpy as np
import pytest

from conftest import reference_dir
from fgtf import train, training
from fgtf.losses import SparseCrossentropy

pytestmark = pytest.mark.reference

# float32 over a few steps
RTOL, ATOL = 1e-5, 1e-6
# Keras updates the moving variance with the batch's biased variance, PyTorch
# and TF's fused batch norm with the unbiased one (x n/(n-1), n = 8 x 6 x 6 =
# 288 positions here): after these steps they differ by 0.3 %; with n in the
# tens of thousands (a real batch) by less than 1e-4.
MOVING_VARIANCE_RTOL = 5e-3

TORCH_RECIPES = {
    # SEF: SGD 0.9, no weight decay, StepLR (here every 2 steps, x 0.1)
    "sef": ["--optimizer", "momentum", "--momentum", "0.9", "--learning_rate", "0.05", "--weight_decay", "0",
            "--learning_rate_decay_type", "exponential", "--num_steps_per_decay", "2",
            "--learning_rate_decay_factor", "0.1"],
    # SAM: Nesterov, the classifier at 10x, PyTorch's weight decay on every parameter, MultiStepLR
    "sam": ["--optimizer", "momentum", "--nesterov", "--learning_rate", "0.05", "--learning_rate_multipliers",
            "fc=10", "--weight_decay_mode", "coupled", "--weight_decay", "0.01",
            "--learning_rate_decay_type", "multistep", "--milestone_steps", "2,4", "--learning_rate_decay_factor",
            "0.1"],
    # CLE-ViT: AdamW, the head at 5x, warm-up then linear decay, clipping by global norm
    "cle": ["--optimizer", "adamw", "--learning_rate", "0.05", "--learning_rate_multipliers", "fc=5",
            "--weight_decay", "0.05", "--learning_rate_decay_type", "warmup_linear", "--warmup_steps", "3",
            "--clip_gradient_norm", "0.1"],
}
TORCH_RUN_STEPS = 8   # the length of the run the CLE-ViT schedule decays over


def _torch_mirror():
    inputs = keras.Input((6, 6, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", use_bias=False, name="conv")(inputs)
    x = keras.layers.BatchNormalization(epsilon=1e-5, momentum=0.9, name="bn")(x)
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.ReLU()(x))
    return keras.Model(inputs, keras.layers.Dense(3, name="fc")(x), name="TinyNet")


def _prepared(model, flags, start, total_steps, loss_weights=None):
    """`model` at the `start` weights, compiled as fgtf.train compiles it with
    the optimiser those train flags give."""
    settings = train.TrainConfig.from_flags(train.build_parser().parse_args(
        ["--dataset_dir", "unused", "--run_dir", "unused", *flags]))
    optimizer = training.prepare_optimization(model, settings, num_examples=8, total_steps=total_steps)
    loss = SparseCrossentropy()
    model.compile(optimizer, loss=[loss] * len(loss_weights) if loss_weights else loss, loss_weights=loss_weights)
    for variable in model.weights:
        variable.assign(start[variable.path])
    optimizer.build(model.trainable_variables)
    optimizer.reset_moving_averages()
    return optimizer


def _steps(model, reference, count):
    """The loss of `count` steps on the reference batch (the labels for each output, as fgtf.train gives them)."""
    labels = reference["labels"] if len(model.outputs) == 1 else (reference["labels"],) * len(model.outputs)
    return np.array([float(np.ravel(model.train_on_batch(reference["images"], labels))[0]) for _ in range(count)])


def _assert_weights(model, reference, case, names=None):
    for variable in model.weights:
        name = variable.path
        if names is not None and name not in names:
            continue
        rtol = MOVING_VARIANCE_RTOL if name.endswith("moving_variance") else RTOL
        np.testing.assert_allclose(np.asarray(variable), reference[f"{case}/{name}"], rtol=rtol, atol=ATOL,
                                   err_msg=f"{case}: {name}")


def _values(reference, prefix):
    return {key[len(prefix):]: reference[key] for key in reference.files if key.startswith(prefix)}


@pytest.fixture(scope="module")
def torch_steps():
    return np.load(reference_dir() / "optimizer_steps" / "torch_steps.npz")


@pytest.mark.parametrize("case", sorted(TORCH_RECIPES))
def test_steps_equal_pytorch(torch_steps, case):
    model = _torch_mirror()
    start = _values(torch_steps, "start/")
    _prepared(model, TORCH_RECIPES[case], start, TORCH_RUN_STEPS)
    losses = _steps(model, torch_steps, len(torch_steps[f"{case}/loss"]))
    np.testing.assert_allclose(losses, torch_steps[f"{case}/loss"], rtol=RTOL, err_msg=f"{case}: loss")
    _assert_weights(model, torch_steps, case)
    moved = max(np.abs(np.asarray(v) - start[v.path]).max() for v in model.trainable_variables)
    assert moved > 1000 * ATOL   # the steps moved the weights far beyond the tolerance


def test_cle_steps_were_clipped(torch_steps):
    assert (torch_steps["cle/gradient_norm"] > 0.1).all()


TF1_RECIPES = {
    # train.sh's first stage: the classifier only (train.py's substring scopes: Logits also names AuxLogits),
    # the frozen layers' batch norm in training mode, momentum, stepwise exponential decay, slim's L2
    "last_layer_momentum": ["--optimizer", "momentum", "--momentum", "0.9", "--learning_rate", "0.1",
                            "--trainable_scopes", "Logits"],
    # the whole network with the slim trainer's RMSProp
    "all_rmsprop": ["--optimizer", "rmsprop", "--rmsprop_decay", "0.9", "--rmsprop_momentum", "0.9",
                    "--opt_epsilon", "1.0", "--learning_rate", "0.01"],
}
# as make_tf1_steps.py: decay x 0.5 every 2 steps, L2 0.01, the weight EMA at 0.99
TF1_COMMON = ["--learning_rate_decay_type", "exponential", "--num_steps_per_decay", "2",
              "--learning_rate_decay_factor", "0.5", "--weight_decay", "0.01", "--moving_average_decay", "0.99"]


def _slim_mirror():
    inputs = keras.Input((6, 6, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", use_bias=False, name="Conv2d_1a_3x3")(inputs)
    x = keras.layers.BatchNormalization(epsilon=1e-3, momentum=0.9, name="Conv2d_1a_3x3.BatchNorm")(x)
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.ReLU()(x))
    outputs = [keras.layers.Dense(3, name=scope)(x) for scope in ("Logits", "AuxLogits")]
    return keras.Model(inputs, outputs, name="TinyNet")


@pytest.fixture(scope="module")
def tf1_steps():
    return np.load(reference_dir() / "optimizer_steps" / "tf1_steps.npz")


@pytest.mark.parametrize("case", sorted(TF1_RECIPES))
def test_steps_equal_tf_slim(tf1_steps, case):
    model = _slim_mirror()
    start = _values(tf1_steps, "start/")
    optimizer = _prepared(model, TF1_RECIPES[case] + TF1_COMMON, start, 6, loss_weights=[1.0, 0.4])
    trained = {v.path for v in model.trainable_variables}
    assert trained == ({"Logits/kernel", "Logits/bias", "AuxLogits/kernel", "AuxLogits/bias"}
                       if case == "last_layer_momentum" else {v.path for v in model.weights if "moving" not in v.path})
    losses = _steps(model, tf1_steps, len(tf1_steps[f"{case}/loss"]))
    # slim's total loss also holds the L2 of the frozen kernels: a constant
    frozen = sum(0.01 / 2 * np.sum(start[v.path].astype(np.float64) ** 2) for v in model.weights
                 if v.path.endswith("kernel") and v.path not in trained)
    np.testing.assert_allclose(losses + frozen, tf1_steps[f"{case}/loss"], rtol=RTOL, err_msg=f"{case}: loss")
    _assert_weights(model, tf1_steps, case)
    for variable, average in optimizer.moving_averages():
        np.testing.assert_allclose(np.asarray(average), tf1_steps[f"{case}/ema/{variable.path}"], rtol=RTOL,
                                   atol=ATOL, err_msg=f"{case}: moving average of {variable.path}")
    # the frozen batch norm ran on batch statistics: its moving mean moved as slim's did
    assert not np.allclose(tf1_steps[f"{case}/Conv2d_1a_3x3.BatchNorm/moving_mean"],
                           start["Conv2d_1a_3x3.BatchNorm/moving_mean"])

"""fgtf.optimization's schedules and optimizers, and the scopes that pick
weights (fgtf.models.layers): hand-computed values. The steps against the
original frameworks are in test_optimizer_steps.py."""
import keras
import numpy as np
import pytest

from fgtf import optimization
from fgtf.models.layers import freeze_outside_scopes, layer_scopes, variables_in_scopes
from fgtf.errors import UserError


def _rates(schedule, steps):
    return [round(float(schedule(s)), 7) for s in steps]


def test_learning_rate_schedules():
    exponential = optimization.learning_rate_schedule(0.1, "exponential", decay_steps=10, decay_factor=0.5)
    assert _rates(exponential, (0, 9, 10, 25)) == [0.1, 0.1, 0.05, 0.025]
    assert float(exponential(100)) == pytest.approx(0.1 * 0.5 ** 10, rel=1e-6)  # TF1: no floor
    floored = optimization.learning_rate_schedule(0.1, "exponential", decay_steps=10, decay_factor=0.5,
                                                  end_learning_rate=0.01)
    assert _rates(floored, (25, 100)) == [0.025, 0.01]
    smooth = optimization.LearningRateDecay(0.1, "exponential", decay_steps=10, decay_factor=0.5, staircase=False)
    assert float(smooth(5)) == pytest.approx(0.1 * 0.5 ** 0.5, rel=1e-6)
    polynomial = optimization.learning_rate_schedule(0.1, "polynomial", decay_steps=10, end_learning_rate=0.02)
    assert _rates(polynomial, (0, 5, 10, 20)) == [0.1, 0.06, 0.02, 0.02]
    assert float(optimization.learning_rate_schedule(0.1, "polynomial", decay_steps=10)(10)) == pytest.approx(1e-4)
    assert float(optimization.learning_rate_schedule(0.3, "fixed")(1000)) == pytest.approx(0.3)
    # PyTorch's MultiStepLR stepped each iteration: step s runs at lr * gamma ** #(milestones <= s)
    multistep = optimization.learning_rate_schedule(0.1, "multistep", decay_factor=0.1, milestones=(3, 5))
    assert _rates(multistep, (0, 2, 3, 4, 5, 50)) == [0.1, 0.1, 0.01, 0.01, 0.001, 0.001]
    cosine = optimization.learning_rate_schedule(0.1, "cosine", total_steps=10)
    assert _rates(cosine, (0, 5, 10, 20)) == [0.1, 0.05, 0.0, 0.0]
    warmup = optimization.learning_rate_schedule(0.1, "warmup_linear", warmup_steps=10, total_steps=110,
                                                 end_learning_rate=0.0)
    # CLE-ViT's schedule: from lr / 1000, update g at lr(g - 1) (updates 0 and 1 alike)
    assert _rates(warmup, (0, 1, 6, 11, 61, 111)) == [0.0001, 0.0001, 0.05005, 0.1, 0.05, 0.0]
    assert float(optimization.learning_rate_schedule(0.1, "warmup_linear", total_steps=100)(101)) == \
        pytest.approx(0.001, rel=1e-5)  # CLE-ViT's end: 1 % of the peak
    assert optimization.decay_steps_for(5994, 32, 2.0) == 374


def test_a_group_scales_its_schedule_and_a_warmup_keeps_its_start():
    multistep = optimization.LearningRateDecay(0.1, "multistep", decay_factor=0.1, milestones=(3,))
    assert _rates(multistep.scaled(10), (0, 3)) == [1.0, 0.1]
    warmup = optimization.WarmupLinearDecay(0.1, 1e-4, warmup_steps=10, total_steps=20)
    assert _rates(warmup.scaled(5), (0, 11)) == [0.0001, 0.5]
    assert optimization.scaled_learning_rate(0.01, 10) == pytest.approx(0.1)


def _dense_model():
    inputs = keras.Input((3,))
    hidden = keras.layers.Dense(4, name="body")(inputs)
    return keras.Model(inputs, keras.layers.Dense(2, name="fc")(hidden), name="Net")


def _apply(optimizer, model, gradients):
    optimizer.apply([np.asarray(g, np.float32) for g in gradients], model.trainable_variables)


def test_momentum_is_torch_and_tf1s_not_keras_when_the_rate_drops():
    """v <- mu v + g; w <- w - lr v: after a drop of the rate the old velocity
    moves at the new rate (Keras's v <- mu v - lr g keeps the old one)."""
    model = _dense_model()
    start = [np.asarray(v) for v in model.trainable_variables]
    schedule = optimization.learning_rate_schedule(0.1, "multistep", decay_factor=0.1, milestones=(1,))
    optimizer = optimization.make_optimizer("momentum", schedule, momentum=0.9)
    gradients = [np.ones(v.shape) for v in model.trainable_variables]
    for _ in range(2):
        _apply(optimizer, model, gradients)
    # step 0 at 0.1 (v = 1), step 1 at 0.01 (v = 1.9): w0 - 0.1 - 0.019; Keras: w0 - 0.1 - (0.09 + 0.01)
    np.testing.assert_allclose(np.asarray(model.trainable_variables[0]), start[0] - 0.119, rtol=1e-6)


def test_parameter_groups_coupled_decay_and_nesterov():
    model = _dense_model()
    weights = [np.asarray(v, np.float64) for v in model.trainable_variables]
    optimizer = optimization.make_optimizer(
        "momentum", 0.01, momentum=0.9, nesterov=True, weight_decay=0.1, weight_decay_mode="coupled",
        learning_rate_multipliers={"fc/kernel": 10.0, "fc/bias": 10.0})
    rng = np.random.default_rng(0)
    velocities = [np.zeros_like(w) for w in weights]
    for _ in range(3):
        gradients = [rng.standard_normal(w.shape) for w in weights]
        _apply(optimizer, model, gradients)
        for i, (variable, gradient) in enumerate(zip(model.trainable_variables, gradients)):
            gradient = gradient + 0.1 * weights[i]   # every variable decays, biases too
            velocities[i] = 0.9 * velocities[i] + gradient
            weights[i] -= (0.1 if variable.path.startswith("fc/") else 0.01) * (gradient + 0.9 * velocities[i])
    for variable, expected in zip(model.trainable_variables, weights):
        np.testing.assert_allclose(np.asarray(variable), expected, rtol=1e-5, atol=1e-6, err_msg=variable.path)


def test_decoupled_decay_spares_one_dimensional_weights():
    model = _dense_model()
    optimizer = optimization.make_optimizer("adamw", 0.01, weight_decay=0.05)
    optimizer.build(model.trainable_variables)
    assert [v.path for v in model.trainable_variables if optimizer.decays(v)] == ["body/kernel", "fc/kernel"]
    assert optimizer.epsilon == 1e-8
    slim_adam = optimization.make_optimizer("adam", 0.01)
    assert slim_adam.epsilon == 1.0 and slim_adam.weight_decay_mode is None   # slim's decay is a loss


def test_rmsprop_mean_square_starts_as_tf1s():
    model = _dense_model()
    start = np.asarray(model.trainable_variables[0])
    optimizer = optimization.make_optimizer("rmsprop", 0.1, rmsprop_decay=0.9, rmsprop_momentum=0.0, epsilon=1.0)
    _apply(optimizer, model, [np.full(v.shape, 2.0) for v in model.trainable_variables])
    # ms = 0.9 * 1 + 0.1 * 4 = 1.3; step = 0.1 * 2 / sqrt(1.3 + 1)
    np.testing.assert_allclose(np.asarray(model.trainable_variables[0]), start - 0.2 / np.sqrt(2.3), rtol=1e-6)


def test_moving_average_is_tf1s():
    model = _dense_model()
    start = np.asarray(model.trainable_variables[0], np.float64)
    optimizer = optimization.make_optimizer("sgd", 0.1, moving_average_decay=0.99)
    optimizer.build(model.trainable_variables)
    model.trainable_variables[0].assign(start + 1.0)   # new start weights, loaded after the build
    optimizer.reset_moving_averages()
    weights, average = start + 1.0, start + 1.0
    for n in (1, 2, 3):
        _apply(optimizer, model, [np.ones(v.shape) for v in model.trainable_variables])
        weights = weights - 0.1
        decay = min(0.99, (1 + n) / (10 + n))
        average = average - (1 - decay) * (average - weights)
    (variable, found), = [(v, a) for v, a in optimizer.moving_averages() if v.path == "body/kernel"]
    np.testing.assert_allclose(np.asarray(found), average, rtol=1e-6)


def test_optimizer_mistakes_are_refused():
    with pytest.raises(UserError, match="Nesterov"):
        optimization.make_optimizer("adam", 0.1, nesterov=True)
    with pytest.raises(UserError, match="unknown optimizer"):
        optimization.make_optimizer("lion", 0.1)
    optimizer = optimization.make_optimizer("sgd", 0.1, learning_rate_multipliers={"head/kernel": 5.0})
    with pytest.raises(ValueError, match="head/kernel"):
        optimizer.build(_dense_model().trainable_variables)
    with pytest.raises(ValueError, match="weight_decay_mode"):
        optimization.Momentum(0.1, weight_decay=0.1, weight_decay_mode="l2")


def test_optimizer_round_trips_its_config():
    optimizer = optimization.make_optimizer(
        "momentum", optimization.learning_rate_schedule(0.1, "multistep", milestones=(4,)), nesterov=True,
        weight_decay=1e-4, weight_decay_mode="coupled", learning_rate_multipliers={"fc/kernel": 10.0},
        clip_gradient_norm=5.0, moving_average_decay=0.999)
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    assert isinstance(restored, optimization.Momentum)
    assert restored.get_config() == optimizer.get_config()


def _slim_like_model():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(2, 3, use_bias=False, name="Conv2d_1a_3x3")(inputs)
    x = keras.layers.BatchNormalization(name="Conv2d_1a_3x3.BatchNorm")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    aux = keras.layers.Dense(2, name="AuxLogits.Conv2d_2b_1x1")(x)
    return keras.Model(inputs, [keras.layers.Dense(2, name="Logits.Conv2d_1c_1x1")(x), aux], name="InceptionV3")


def test_scopes_match_by_substring_or_by_prefix():
    model = _slim_like_model()

    def paths(scopes, matching):
        return [v.path for v in variables_in_scopes(model, scopes, matching)]

    assert paths("Logits", "substring") == ["Logits.Conv2d_1c_1x1/kernel", "Logits.Conv2d_1c_1x1/bias",
                                            "AuxLogits.Conv2d_2b_1x1/kernel", "AuxLogits.Conv2d_2b_1x1/bias"]
    assert paths("Logits", "prefix") == paths("InceptionV3/Logits", "prefix") == \
        ["Logits.Conv2d_1c_1x1/kernel", "Logits.Conv2d_1c_1x1/bias"]
    assert paths("InceptionV3/Conv2d_1a", "substring") == paths("Conv2d_1a_3x3", "prefix") == \
        ["Conv2d_1a_3x3/kernel", "Conv2d_1a_3x3.BatchNorm/gamma", "Conv2d_1a_3x3.BatchNorm/beta",
         "Conv2d_1a_3x3.BatchNorm/moving_mean", "Conv2d_1a_3x3.BatchNorm/moving_variance"]
    assert paths("Conv2d_1a", "prefix") == []
    assert layer_scopes(model, variables_in_scopes(model, "Logits")) == ["InceptionV3/Logits/Conv2d_1c_1x1",
                                                                       "InceptionV3/AuxLogits/Conv2d_2b_1x1"]


@pytest.mark.parametrize("mode, batch_statistics", [("train", True), ("inference", False)])
def test_frozen_batch_norm_runs_as_told(mode, batch_statistics):
    model = _slim_like_model()
    kept = freeze_outside_scopes(model, "Logits", frozen_batch_norm=mode)
    assert kept == ["Logits.Conv2d_1c_1x1", "AuxLogits.Conv2d_2b_1x1"]
    norm = model.get_layer("Conv2d_1a_3x3.BatchNorm")
    assert not norm.gamma.trainable and norm.trainable == batch_statistics
    images = np.random.default_rng(0).uniform(size=(4, 8, 8, 3)).astype(np.float32)
    model(images, training=True)
    moved = not np.allclose(np.asarray(norm.moving_mean), 0.0)
    assert moved == batch_statistics
    with pytest.raises(UserError, match="match no trainable weight"):
        freeze_outside_scopes(_slim_like_model(), "Mixed_7c")

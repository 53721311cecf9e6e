"""The private Keras members behind fgtf/_keras_internals.py still exist and
behave as relied on. A failure names the member: a Keras release changed it,
and fgtf/_keras_internals.py (and the keras pin in setup.py) must follow."""
import inspect

import numpy as np
import pytest

import keras
from keras import layers

from fgtf import _keras_internals as internals


def _member(owner, name):
    """`owner.name`, or a failure saying which private member Keras dropped."""
    assert hasattr(owner, name), (
        f"Keras {keras.__version__} has no {getattr(owner, '__name__', type(owner).__name__)}.{name}, "
        f"which fgtf/_keras_internals.py relies on")
    return getattr(owner, name)


def _parameters(function):
    return tuple(inspect.signature(function).parameters)


def _nested_model():
    inner = keras.Sequential([keras.Input((4,)), layers.Dense(3, name="inner_dense")], name="inner")
    inputs = keras.Input((4,))
    outputs = layers.Dense(2, name="outer_dense")(inner(inputs))
    return keras.Model(inputs, outputs, name="outer"), inner


@pytest.mark.parametrize("owner, name, parameters", [
    (keras.layers.Layer, "_flatten_layers", ("self", "include_self", "recursive")),
    (keras.Model, "_aggregate_additional_loss", ("self", "loss")),
    (keras.optimizers.Optimizer, "_get_variable_index", ("self", "variable")),
], ids=lambda value: value if isinstance(value, str) else "")
def test_called_methods_keep_their_parameters(owner, name, parameters):
    found = _parameters(_member(owner, name))
    assert found == parameters, f"Keras {keras.__version__} changed {owner.__name__}.{name}{found}"


def test_symbolic_build_takes_a_data_batch():
    found = _parameters(_member(keras.Model, "_symbolic_build"))
    assert "data_batch" in found, f"Keras {keras.__version__} changed Model._symbolic_build{found}"


def test_flatten_layers_reaches_nested_models():
    model, inner = _nested_model()
    names = [layer.name for layer in internals.flatten_layers(model)]
    assert {"inner", "inner_dense", "outer_dense"} <= set(names) and "outer" not in names


def test_own_variables_leave_sublayers_out():
    model, inner = _nested_model()
    dense = inner.get_layer("inner_dense")
    _member(dense, "_trainable_variables")
    _member(dense, "_non_trainable_variables")
    assert [v.path for v in internals.own_variables(dense)] == [v.path for v in dense.weights]
    assert internals.own_variables(model) == []
    norm = layers.BatchNormalization()
    norm.build((None, 3))
    assert [v.name for v in internals.own_variables(norm)] == ["gamma", "beta", "moving_mean", "moving_variance"]


def test_built_variables_are_those_of_the_build_in_order():
    model, _ = _nested_model()
    optimizer = keras.optimizers.SGD(0.1)
    optimizer.build(model.trainable_variables)
    _member(optimizer, "_trainable_variables")
    assert [v.path for v in internals.built_variables(optimizer)] == [v.path for v in model.trainable_variables]


def test_symbolic_build_builds_the_compiled_metrics():
    import tensorflow as tf

    model, _ = _nested_model()
    model.compile("sgd", loss="mse", metrics=["mae"])
    unbuilt = len(model.metrics_variables)
    internals.symbolic_build(model, (tf.TensorSpec((None, 4), tf.float32), tf.TensorSpec((None, 2), tf.float32)))
    # (the "mae" metric's total and count now exist, so a checkpoint can restore them)
    assert len(model.metrics_variables) == unbuilt + 2 and model.optimizer.built


def test_aggregate_additional_loss_sums_in_floatx():
    model, _ = _nested_model()
    loss = internals.aggregate_additional_loss(model, keras.ops.convert_to_tensor([2, 3], "int32"))
    assert keras.backend.standardize_dtype(loss.dtype) == "float32"
    assert tuple(loss.shape) == () and float(loss) == 5.0  # one replica: no scaling


def test_variable_index_is_the_build_order():
    model, _ = _nested_model()
    optimizer = keras.optimizers.Adam()
    optimizer.build(model.trainable_variables)
    assert [internals.variable_index(optimizer, v) for v in model.trainable_variables] == \
        list(range(len(model.trainable_variables)))


def test_keras_history_leads_from_an_output_to_its_inputs():
    inputs = keras.Input((4, 4, 3))
    pooled = layers.GlobalAveragePooling2D(name="pool")(inputs)
    logits = layers.Dense(2, name="logits")(pooled)
    _member(logits, "_keras_history")
    assert internals.producing_operation(logits).name == "logits"
    _member(internals.producing_operation(logits), "_inbound_nodes")
    (source,) = internals.operation_inputs(logits)
    assert source is pooled and internals.producing_operation(source).name == "pool"
    assert internals.producing_operation(inputs) is None or isinstance(
        internals.producing_operation(inputs), layers.InputLayer)
    assert internals.producing_operation(np.zeros(2)) is None

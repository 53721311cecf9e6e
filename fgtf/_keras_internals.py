"""Every private Keras member fgtf relies on, each behind one small named
function, so that a Keras release that renames or reshapes one breaks here
and in `tests/test_keras_internals.py` (which names the member), not
silently somewhere in training.

Why each is needed:
- `Layer._flatten_layers`: every nested layer of a model, the models a head
  wraps included (`Model.layers` stops at the first level);
- `Layer._trainable_variables` / `_non_trainable_variables`: the variables a
  layer creates itself, without those of its sublayers;
- `Optimizer._trainable_variables`: the variables an optimizer was built
  with, in its slot order (fgtf's weight EMA keeps its averages in that
  order, and the checkpoint under their variables' names);
- `Trainer._symbolic_build(data_batch=...)`: builds the compiled metrics and
  losses before the first step, so a checkpoint can be restored into them;
- `Trainer._aggregate_additional_loss`: the sum, float cast and 1/replicas
  scaling Keras gives `add_loss` terms, for the loss terms a head adds itself;
- `Optimizer._get_variable_index`: the stable slot of a variable (its path
  can repeat between models);
- `KerasTensor._keras_history` and `Operation._inbound_nodes`: which layer
  made a symbolic tensor, and from which inputs (to find the classifier a
  class activation map reads).

fgtf overrides no private Keras member: its optimizers
(`fgtf.optimization.GroupedOptimizer`) change only `build` and `update_step`.
"""


def flatten_layers(model):
    """Every layer nested in `model`, recursively (a head's backbone and its
    layers included), `model` itself left out."""
    return list(model._flatten_layers(include_self=False, recursive=True))


def own_variables(layer):
    """The variables `layer` created itself (trainable first), not its sublayers'."""
    return layer._trainable_variables + layer._non_trainable_variables


def built_variables(optimizer):
    """The variables a built optimizer was built with, in its slot order."""
    return list(optimizer._trainable_variables)


def symbolic_build(model, data_batch):
    """Build a compiled model's layers, metrics and losses from a batch of
    `tf.TensorSpec`s (x, y), without running a step."""
    model._symbolic_build(data_batch=data_batch)


def aggregate_additional_loss(model, loss):
    """`loss` as Keras adds an `add_loss` term to the compiled loss: summed,
    cast to floatx when not a float, scaled by 1/replicas under tf.distribute."""
    return model._aggregate_additional_loss(loss)


def variable_index(optimizer, variable):
    """The slot of `variable` among those a built optimizer tracks."""
    return optimizer._get_variable_index(variable)


def producing_operation(tensor):
    """The layer or operation that made a symbolic tensor (None for an `Input`
    or a tensor Keras did not make)."""
    history = getattr(tensor, "_keras_history", None)
    return history.operation if history is not None else None


def operation_inputs(tensor):
    """The input tensors of the call that made a symbolic tensor."""
    history = tensor._keras_history
    return history.operation._inbound_nodes[history.node_index].input_tensors

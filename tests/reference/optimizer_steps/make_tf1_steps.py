"""Write tf1_steps.npz: a few training steps of a tiny TF-Slim network as the
CVPR 2018 repository's train.py builds them (TF1 graph, tf_slim layers and
regularisers, its default sync_replicas=True path with the weight EMA), for
tests/test_optimizer_steps.py.

Run in a side environment with tf_slim (not an fgtf dependency), from the
repository root:

    python3 -m venv /work/sidevenvs/tfslim
    /work/sidevenvs/tfslim/bin/pip install tensorflow-cpu tf_slim tf_keras
    /work/sidevenvs/tfslim/bin/python tests/reference/optimizer_steps/make_tf1_steps.py

(written with tensorflow-cpu 2.21 through tf.compat.v1, tf_slim 1.1.0,
tf_keras 2.21, numpy 2.4). Every number comes from a seeded numpy generator.

The network, scope `TinyNet`, in train.py's arg scopes: `Conv2d_1a_3x3`, a
3x3 slim.conv2d (3 -> 4 channels, SAME) with slim.batch_norm (decay 0.9,
epsilon 0.001, scale, is_training=True) and ReLU; the spatial mean; then two
slim.fully_connected classifiers, `Logits` and `AuxLogits` (3 classes, no
activation). Every conv and dense kernel carries slim.l2_regularizer(0.01)
(train.sh's 4e-5 raised so that it shows within float32 rounding). The loss
is train.py's: softmax cross-entropy on Logits plus 0.4 x that on AuxLogits
plus the regularisation losses, on one fixed batch of 8 images of 6x6. Each
case starts from the same weights and takes STEPS steps, the train op being
train.py's: the batch-norm update ops grouped with SyncReplicasOptimizer's
apply_gradients (one replica), whose chief queue runner applies
ExponentialMovingAverage(0.99, global_step) to slim.get_model_variables()
after each update:

- last_layer_momentum: train.sh's first stage, `--trainable_scopes Logits`
  as train.py matches it (`scope in var.op.name`: also AuxLogits), the
  frozen layers' batch norm still in training mode; MomentumOptimizer(0.9)
  at exponential_decay(0.1, every 2 steps, x 0.5, staircase).
- all_rmsprop: every variable trained; RMSPropOptimizer(decay 0.9, momentum
  0.9, epsilon 1.0) at exponential_decay(0.01, every 2 steps, x 0.5,
  staircase).

Stored (float32; names as the Keras mirror's `layer/variable`: kernels keep
slim's layout): `images` (8, 6, 6, 3), `labels` (8,), `start/<name>`, and per
case `<case>/loss` (STEPS,) the total loss each step computed before its
update, `<case>/<name>` the variables after the last step and
`<case>/ema/<name>` their moving averages.
"""
import os
import sys
import time

import numpy as np
import tensorflow.compat.v1 as tf
import tf_keras.src.legacy_tf_layers
import tf_slim as slim

# TF 2.21's tf.layers look for Keras 2's legacy layers at tf_keras.legacy_tf_layers;
# tf_keras 2.21 keeps them under tf_keras.src (slim.batch_norm builds tf.layers' BatchNormalization).
sys.modules.setdefault("tf_keras.legacy_tf_layers", tf_keras.src.legacy_tf_layers)

STEPS = 6
WEIGHT_DECAY = 0.01
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tf1_steps.npz")
# slim variable name -> the Keras mirror's path
NAMES = {
    "TinyNet/Conv2d_1a_3x3/weights": "Conv2d_1a_3x3/kernel",
    "TinyNet/Conv2d_1a_3x3/BatchNorm/gamma": "Conv2d_1a_3x3.BatchNorm/gamma",
    "TinyNet/Conv2d_1a_3x3/BatchNorm/beta": "Conv2d_1a_3x3.BatchNorm/beta",
    "TinyNet/Conv2d_1a_3x3/BatchNorm/moving_mean": "Conv2d_1a_3x3.BatchNorm/moving_mean",
    "TinyNet/Conv2d_1a_3x3/BatchNorm/moving_variance": "Conv2d_1a_3x3.BatchNorm/moving_variance",
    "TinyNet/Logits/weights": "Logits/kernel",
    "TinyNet/Logits/biases": "Logits/bias",
    "TinyNet/AuxLogits/weights": "AuxLogits/kernel",
    "TinyNet/AuxLogits/biases": "AuxLogits/bias",
}


def start_values():
    rng = np.random.default_rng(2018)
    return {
        "images": rng.standard_normal((8, 6, 6, 3)).astype(np.float32),
        "labels": rng.integers(0, 3, 8).astype(np.int32),
        "Conv2d_1a_3x3/kernel": (0.5 * rng.standard_normal((3, 3, 3, 4))).astype(np.float32),
        "Conv2d_1a_3x3.BatchNorm/gamma": rng.uniform(0.8, 1.2, 4).astype(np.float32),
        "Conv2d_1a_3x3.BatchNorm/beta": (0.1 * rng.standard_normal(4)).astype(np.float32),
        "Conv2d_1a_3x3.BatchNorm/moving_mean": (0.1 * rng.standard_normal(4)).astype(np.float32),
        "Conv2d_1a_3x3.BatchNorm/moving_variance": rng.uniform(0.5, 1.5, 4).astype(np.float32),
        "Logits/kernel": (0.5 * rng.standard_normal((4, 3))).astype(np.float32),
        "Logits/bias": (0.1 * rng.standard_normal(3)).astype(np.float32),
        "AuxLogits/kernel": (0.5 * rng.standard_normal((4, 3))).astype(np.float32),
        "AuxLogits/bias": (0.1 * rng.standard_normal(3)).astype(np.float32),
    }


def tiny_net(images, values):
    def init(name):
        return tf.constant_initializer(values[name])

    norm = "Conv2d_1a_3x3.BatchNorm/"
    batch_norm = {"decay": 0.9, "epsilon": 0.001, "scale": True, "is_training": True,
                  "param_initializers": {"beta": init(norm + "beta"), "gamma": init(norm + "gamma"),
                                         "moving_mean": init(norm + "moving_mean"),
                                         "moving_variance": init(norm + "moving_variance")}}
    with tf.variable_scope("TinyNet"), \
            slim.arg_scope([slim.conv2d, slim.fully_connected],
                           weights_regularizer=slim.l2_regularizer(WEIGHT_DECAY)):
        net = slim.conv2d(images, 4, [3, 3], normalizer_fn=slim.batch_norm, normalizer_params=batch_norm,
                          weights_initializer=init("Conv2d_1a_3x3/kernel"), scope="Conv2d_1a_3x3")
        pooled = tf.reduce_mean(net, [1, 2])
        heads = {scope: slim.fully_connected(pooled, 3, activation_fn=None, scope=scope,
                                             weights_initializer=init(f"{scope}/kernel"),
                                             biases_initializer=init(f"{scope}/bias"))
                 for scope in ("Logits", "AuxLogits")}
    return heads["Logits"], heads["AuxLogits"]


def variables_to_train(trainable_scopes):
    """train.py's `_get_variables_to_train`: substring matches."""
    if trainable_scopes is None:
        return tf.trainable_variables()
    scopes = [scope.strip() for scope in trainable_scopes.split(",")]
    return [var for var in tf.trainable_variables() if any(scope in var.op.name for scope in scopes)]


def run_case(values, make_optimizer, learning_rate, trainable_scopes):
    with tf.Graph().as_default():
        global_step = tf.train.create_global_step()
        images, labels = tf.constant(values["images"]), tf.constant(values["labels"])
        logits, aux = tiny_net(images, values)
        one_hot = slim.one_hot_encoding(labels, 3)
        tf.losses.softmax_cross_entropy(one_hot, aux, weights=0.4, scope="aux_loss")
        tf.losses.softmax_cross_entropy(one_hot, logits, weights=1.0)
        update_ops = tf.get_collection(tf.GraphKeys.UPDATE_OPS)
        averages = tf.train.ExponentialMovingAverage(0.99, global_step)
        model_variables = slim.get_model_variables()
        rate = tf.train.exponential_decay(learning_rate, global_step, 2, 0.5, staircase=True)
        optimizer = tf.train.SyncReplicasOptimizer(make_optimizer(rate), replicas_to_aggregate=1,
                                                   total_num_replicas=1, variable_averages=averages,
                                                   variables_to_average=model_variables)
        # model_deploy.optimize_clones with one clone: the clone's losses plus the regularisation losses
        total_loss = tf.add_n(tf.losses.get_losses() + tf.losses.get_regularization_losses())
        gradients = optimizer.compute_gradients(total_loss, var_list=variables_to_train(trainable_scopes))
        update_ops.append(optimizer.apply_gradients(gradients, global_step=global_step))
        with tf.control_dependencies([tf.group(*update_ops)]):
            train_tensor = tf.identity(total_loss, name="train_op")
        hook = optimizer.make_session_run_hook(is_chief=True, num_tokens=0)
        with tf.train.MonitoredSession(session_creator=tf.train.ChiefSessionCreator(), hooks=[hook]) as session:
            losses = [session.run(train_tensor) for _ in range(STEPS)]
            time.sleep(2)  # the chief queue runner applies the last step's moving averages after the step returns
            found = session.run({v.op.name: v for v in model_variables})
            shadows = session.run({v.op.name: averages.average(v) for v in model_variables})
            assert session.run(global_step) == STEPS
    out = {"loss": np.array(losses, np.float32)}
    out.update({NAMES[name]: value for name, value in found.items()})
    out.update({f"ema/{NAMES[name]}": value for name, value in shadows.items()})
    return out


def main():
    tf.disable_eager_execution()
    values = start_values()
    out = {"images": values["images"], "labels": values["labels"]}
    out.update({f"start/{name}": value for name, value in values.items() if "/" in name})
    cases = {
        "last_layer_momentum": (lambda rate: tf.train.MomentumOptimizer(rate, momentum=0.9, name="Momentum"),
                                0.1, "Logits"),
        "all_rmsprop": (lambda rate: tf.train.RMSPropOptimizer(rate, decay=0.9, momentum=0.9, epsilon=1.0),
                        0.01, None),
    }
    for case, (make_optimizer, learning_rate, scopes) in cases.items():
        result = run_case(values, make_optimizer, learning_rate, scopes)
        out.update({f"{case}/{name}": value for name, value in result.items()})
        print(case, "losses", np.round(result["loss"], 5))
    np.savez(OUT, **out)
    print("wrote", OUT)


if __name__ == "__main__":
    main()

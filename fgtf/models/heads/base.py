"""What every fgtf head shares: a `keras.Model` that wraps a backbone's
feature map and adds its own training losses to the compiled one, and the
PyTorch-style pieces the ported heads are built from (`TorchBatchNormalization`,
`torch_linear_initializers`, `torch_dense`, `same_label_mask`).

A head model returns the classification logits at inference (`predict`,
`evaluate`, `model(x)`), and in training mode (`model(x, training=True)`, as
`fit` calls it) a dict of head outputs whose `"logits"` entry is what the
compiled loss and metrics see. `compute_loss` adds the head's own terms
(`loss_terms`), so `model.compile(optimizer, loss=...)` + `model.fit` work
unchanged, on one device or under `tf.distribute`. Each term is also tracked
as a metric of the same name and shows up in the `fit` logs.
"""
import keras
from keras import layers, ops

from fgtf._keras_internals import aggregate_additional_loss


def feature_map_channels(backbone):
    """Channel count of `backbone`'s single 4-D output (B, H, W, C)."""
    outputs = getattr(backbone, "outputs", None)
    if not outputs or len(outputs) != 1 or len(outputs[0].shape) != 4:
        shapes = [tuple(o.shape) for o in outputs or []]
        raise ValueError("a head needs a backbone with one 4-D feature-map output (B, H, W, C), "
                         f"e.g. build_model(name, include_top=False); got outputs {shapes}")
    channels = outputs[0].shape[-1]
    if channels is None:
        raise ValueError("the backbone's feature map must have a known channel count")
    return int(channels)


class HeadModel(keras.Model):
    """Base class: `backbone` (a Keras model with one 4-D output) + a head.

    Subclasses define `head(feature_map, training)` -> dict with at least
    `"logits"` (the head's layers must already be built in `__init__`, so
    `.keras` loading needs no sample call), and `loss_terms(x, y, outputs)` ->
    dict name -> weighted scalar term. Terms named in `batch_sum_terms` are sums
    over the batch (not means), so under `tf.distribute` they are not divided by
    the replica count: the gradients, summed over replicas, then equal those of
    one device seeing the whole batch.
    """

    term_names = ()
    batch_sum_terms = frozenset()

    def __init__(self, backbone, num_classes, **kwargs):
        super().__init__(**kwargs)
        self.backbone = backbone
        self.num_classes = int(num_classes)
        self.channels = feature_map_channels(backbone)
        self.term_trackers = [keras.metrics.Mean(name=name) for name in self.term_names]

    def call(self, inputs, training=False):
        """Logits (B, num_classes) at inference; the head's output dict in training."""
        feature_map = self.feature_map(inputs, training=training)
        outputs = self.head(feature_map, training=training)
        if training:
            outputs["feature_map"] = feature_map
            return outputs
        return outputs["logits"]

    def feature_map(self, inputs, training=False):
        """The backbone's feature map in float32 (heads compute in float32 even
        under a mixed-precision policy)."""
        return ops.cast(self.backbone(inputs, training=training), "float32")

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        if not isinstance(y_pred, dict):
            return super().compute_loss(x, y, y_pred, sample_weight, training=training)
        loss = super().compute_loss(x, y, y_pred["logits"], sample_weight, training=training)
        terms = self.loss_terms(x, y, y_pred)
        for tracker in self.term_trackers:
            tracker.update_state(terms[tracker.name])
        for name, value in terms.items():
            # As Keras adds `add_loss` terms: float cast plus the 1/replicas
            # scaling the compiled loss also gets.
            loss = loss + (value if name in self.batch_sum_terms
                           else aggregate_additional_loss(self, value))
        return loss

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        training = isinstance(y_pred, dict)
        logs = super().compute_metrics(x, y, y_pred["logits"] if training else y_pred, sample_weight)
        if not training:  # the head terms are training-only; do not log stale values
            for name in self.term_names:
                logs.pop(name, None)
        return logs

    def get_config(self):
        return {"name": self.name, "trainable": self.trainable,
                "backbone": keras.saving.serialize_keras_object(self.backbone),
                "num_classes": self.num_classes}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        config["backbone"] = keras.saving.deserialize_keras_object(config["backbone"],
                                                                   custom_objects=custom_objects)
        return cls(**config)


def torch_linear_initializers(fan_in):
    """PyTorch's default `nn.Linear`/`nn.Conv2d` init: kernel and bias both
    U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (what the original heads start from)."""
    bound = 1.0 / float(fan_in) ** 0.5
    return (keras.initializers.VarianceScaling(1.0 / 3.0, mode="fan_in", distribution="uniform"),
            keras.initializers.RandomUniform(-bound, bound))


def torch_dense(units, fan_in, name, **kwargs):
    """A `Dense` layer built for `fan_in` inputs and initialised as PyTorch's
    `nn.Linear` (`torch_linear_initializers`); `kwargs` go to `Dense`."""
    kernel_init, bias_init = torch_linear_initializers(fan_in)
    layer = layers.Dense(units, kernel_initializer=kernel_init, bias_initializer=bias_init, name=name, **kwargs)
    layer.build((None, fan_in))
    return layer


def same_label_mask(labels, dtype="float32"):
    """(N, N) of `dtype`: 1 where rows m and n of labels (N,) have the same
    label (diagonal included), else 0."""
    labels = ops.reshape(labels, (-1,))
    return ops.cast(ops.equal(labels[:, None], labels[None, :]), dtype)


@keras.saving.register_keras_serializable(package="fgtf")
class TorchBatchNormalization(layers.BatchNormalization):
    """`BatchNormalization` (channels last) that updates its moving variance
    with the unbiased batch variance (x n/(n-1)), as `torch.nn.BatchNorm1d`
    (rows, features) and `BatchNorm2d` (maps) do; the normalisation itself
    uses the biased variance in both. `momentum` is Keras's (PyTorch's
    momentum 0.1 is 0.9 here)."""

    def call(self, inputs, training=None, mask=None):
        if not (training and self.trainable) or mask is not None or self.axis % len(inputs.shape) != len(inputs.shape) - 1:
            return super().call(inputs, training=training, mask=mask)
        x = ops.cast(inputs, "float32")
        mean, variance = ops.moments(x, axes=tuple(range(len(x.shape) - 1)))
        count = ops.cast(ops.size(x), "float32") / ops.cast(ops.shape(x)[-1], "float32")
        unbiased = variance * count / ops.maximum(count - 1.0, 1.0)
        self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
        self.moving_variance.assign(self.moving_variance * self.momentum
                                    + unbiased * (1.0 - self.momentum))
        outputs = ops.batch_normalization(x, mean, variance, axis=-1, offset=self.beta,
                                          scale=self.gamma, epsilon=self.epsilon)
        return ops.cast(outputs, self.compute_dtype)

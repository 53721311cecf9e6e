"""Losses shared by the trainer and the heads."""
import keras
from keras import ops


@keras.saving.register_keras_serializable(package="fgtf")
class SparseCrossentropy(keras.losses.Loss):
    """Softmax cross-entropy from logits with integer labels and optional label
    smoothing (slim's `label_smoothing`), computed in float32 under mixed
    precision: `label_smoothed_cross_entropy` per example."""

    def __init__(self, label_smoothing=0.0, name="sparse_crossentropy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.label_smoothing = float(label_smoothing)

    def call(self, y_true, y_pred):
        return label_smoothed_cross_entropy(y_true, y_pred, self.label_smoothing)

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing}


def label_smoothed_cross_entropy(labels, logits, smoothing):
    """Per-example (B,) float32 `(1-ε)·(-log p_y) + ε·mean_k(-log p_k)`, p =
    softmax(logits): the cross-entropy with targets `(1 - ε) * onehot + ε / K`
    (slim's label smoothing), and timm's LabelSmoothingCrossEntropy before its
    mean (CLE's). labels: int (B,) or (B, 1); logits: (B, K)."""
    log_probs = ops.log_softmax(ops.cast(logits, "float32"), axis=-1)
    labels = ops.reshape(ops.cast(labels, "int32"), (-1, 1))
    nll = -ops.squeeze(ops.take_along_axis(log_probs, labels, axis=-1), axis=-1)
    return (1.0 - smoothing) * nll - smoothing * ops.mean(log_probs, axis=-1)


class Float32TopK(keras.metrics.SparseTopKCategoricalAccuracy):
    """Top-k accuracy of logits cast to float32 first (`in_top_k` has no
    float16 kernel, so mixed precision would fail in the metric)."""

    def update_state(self, y_true, y_pred, sample_weight=None):
        return super().update_state(y_true, ops.cast(y_pred, "float32"), sample_weight)

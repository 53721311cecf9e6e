"""Losses shared by the trainer and the heads."""
import keras
from keras import ops


@keras.saving.register_keras_serializable(package="fgtf")
class SparseCrossentropy(keras.losses.Loss):
    """Softmax cross-entropy from logits with integer labels and optional label
    smoothing (slim's `label_smoothing`: targets `(1 - s) * onehot + s / C`),
    computed in float32 under mixed precision."""

    def __init__(self, label_smoothing=0.0, name="sparse_crossentropy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.label_smoothing = float(label_smoothing)

    def call(self, y_true, y_pred):
        logits = ops.cast(y_pred, "float32")
        labels = ops.cast(ops.reshape(y_true, (-1,)), "int32")
        if not self.label_smoothing:
            return keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)
        targets = ops.one_hot(labels, ops.shape(logits)[-1])
        return keras.losses.categorical_crossentropy(targets, logits, from_logits=True,
                                                     label_smoothing=self.label_smoothing)

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing}


class Float32TopK(keras.metrics.SparseTopKCategoricalAccuracy):
    """Top-k accuracy of logits cast to float32 first (`in_top_k` has no
    float16 kernel, so mixed precision would fail in the metric)."""

    def update_state(self, y_true, y_pred, sample_weight=None):
        return super().update_state(y_true, ops.cast(y_pred, "float32"), sample_weight)

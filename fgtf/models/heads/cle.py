"""CLE-ViT (Yu, Wang, Gao, IJCAI 2023): self-shuffling-and-masking contrastive
learning around any backbone, as a `keras.Model` whose losses live in the model.

    train = make_dataset(source, "train", PipelineSettings(image_size=448, batch_size=12, training=True,
                         preprocessing=fgtf.preprocessing.cle.cle_preprocessing()))   # ((base, altered), y)
    backbone = fgtf.models.build_model("swin_base", include_top=False, pooling="avg",
                                       input_shape=(448, 448, 3), drop_path_rate=0.5,
                                       weights="checkpoints/swin_base_patch4_window7_224_22k.pth")
    model = build_cle(backbone, num_classes=200, loss_weights=cle_loss_weights("cub_200"))
    model.compile(optimizer=fgtf.optimization.cle_optimizer(model, 2.34375e-5, steps_per_epoch=steps, epochs=40),
                  metrics=["accuracy"])
    model.fit(train, steps_per_epoch=steps, epochs=40, validation_data=validation)

Training batches are `((base, altered), labels)` (see `fgtf.preprocessing.cle`):
both views go through the backbone in one pass (concatenated on the batch
axis, so rows i and i + B are the two views of image i), and the loss is

    w_o · CE_ε(base logits, y) + w_s · CE_ε(altered logits, y) + w_c · L_con

with label-smoothed cross-entropy (ε = 0.1) and the label-aware pairwise
cosine loss L_con over all (2B)² ordered pairs of L2-normalised features:
same label -> 1 - cos, different label -> max(cos - 0.4, 0), divided by (2B)².
The margin is 0.4, as the released code runs it (its scripts' `--margin 1`
is never used). Single-view batches (evaluation, prediction) give logits, and
their loss is plain unsmoothed cross-entropy, as the original logs it.
All losses are computed in float32 (mixed precision safe); under
tf.distribute each replica's contrastive pairs are those within its share of
the batch.
"""
import keras
from keras import layers, ops

from fgtf._keras_internals import aggregate_additional_loss
from fgtf.losses import label_smoothed_cross_entropy
from fgtf.models.heads.base import same_label_mask

LABEL_SMOOTHING = 0.1
CONTRASTIVE_MARGIN = 0.4

# (w_o, w_s, w_c) = weights of CE on the base view, CE on the altered view and
# the contrastive loss, per dataset as in the released run scripts; every
# other dataset (SoyAgeing, SoyGlobal, SoyLocal, AFD, ...) uses (1, 1, 1).
DEFAULT_LOSS_WEIGHTS = (1.0, 1.0, 1.0)
CLE_LOSS_WEIGHTS = {
    "cotton": (1.0, 0.75, 1.0),
    "soybean_gene": (1.0, 0.3, 0.5),
    "cub_200": (1.0, 0.3, 0.5),
}


def cle_loss_weights(dataset):
    """(w_o, w_s, w_c) of the original scripts for `dataset` (fgtf name)."""
    return CLE_LOSS_WEIGHTS.get(dataset, DEFAULT_LOSS_WEIGHTS)


def build_cle(backbone, num_classes, loss_weights=DEFAULT_LOSS_WEIGHTS, margin=CONTRASTIVE_MARGIN,
              label_smoothing=LABEL_SMOOTHING, name="cle"):
    """Wrap `backbone` (any Keras model with one output: a (batch, h, w, C) map,
    mean-pooled here, or pooled (batch, C) features) with a zero-initialised
    linear classifier `head` of `num_classes` and the CLE losses.

    Returns a `CLEModel`: `model((base, altered))` -> {"logits": (2B, K),
    "features": (2B, C)}; `model(images)` -> logits (B, K). Compile it with an
    optimizer and metrics only (the loss is built in; metrics see the base
    view's logits); it saves and loads as `.keras`.
    """
    return CLEModel(backbone, num_classes, loss_weights=loss_weights, margin=margin,
                    label_smoothing=label_smoothing, name=name)


def cosine_similarity_matrix(features):
    """(N, N) float32 cosines of the rows of `features` (N, C), each row
    divided by max(its L2 norm, 1e-12) as torch's F.normalize does."""
    features = ops.cast(features, "float32")
    norms = ops.sqrt(ops.sum(ops.square(features), axis=-1, keepdims=True))
    unit = features / ops.maximum(norms, 1e-12)
    return ops.matmul(unit, ops.transpose(unit))


def contrastive_loss(features, labels, margin=CONTRASTIVE_MARGIN):
    """Scalar float32 L_con = (1/N²) Σ_m Σ_n [P·(1 - s) + (1 - P)·max(s - margin, 0)]
    with s the cosine matrix and P the same-label mask of features (N, C) and
    labels (N,) (for CLE, both views' labels `[y; y]`)."""
    cosine = cosine_similarity_matrix(features)
    positive = same_label_mask(labels)
    pairs = positive * (1.0 - cosine) + (1.0 - positive) * ops.relu(cosine - margin)
    return ops.mean(pairs)


@keras.saving.register_keras_serializable(package="fgtf")
class CLEModel(keras.Model):
    """The CLE wrapper built by `build_cle`; see the module docstring."""

    def __init__(self, backbone, num_classes, loss_weights=DEFAULT_LOSS_WEIGHTS, margin=CONTRASTIVE_MARGIN,
                 label_smoothing=LABEL_SMOOTHING, **kwargs):
        super().__init__(**kwargs)
        if len(backbone.outputs) != 1 or len(backbone.outputs[0].shape) not in (2, 4):
            raise ValueError(f"CLE needs a backbone with one (batch, h, w, C) or (batch, C) output; "
                             f"{backbone.name} has outputs {[tuple(o.shape) for o in backbone.outputs]}")
        if len(loss_weights) != 3:
            raise ValueError(f"loss_weights are (w_o, w_s, w_c), got {loss_weights}")
        self.backbone = backbone
        self.num_classes = num_classes
        self.loss_weights = tuple(float(w) for w in loss_weights)
        self.margin = margin
        self.label_smoothing = label_smoothing
        output_shape = backbone.outputs[0].shape
        self.feature_pool = None
        if len(output_shape) == 4:
            self.feature_pool = layers.GlobalAveragePooling2D(name="feature_pool")
            self.feature_pool.build(output_shape)
        # The original zeroes the classifier when the pretrained head does not fit.
        self.head = layers.Dense(num_classes, kernel_initializer="zeros", name="head")
        self.head.build((None, output_shape[-1]))
        self.base_loss_tracker = keras.metrics.Mean(name="ce_base")
        self.altered_loss_tracker = keras.metrics.Mean(name="ce_altered")
        self.contrastive_loss_tracker = keras.metrics.Mean(name="contrastive")
        self.built = True

    def features(self, images, training=None):
        """(batch, C) backbone features (pooled if the backbone gives a map)."""
        x = self.backbone(images, training=training)
        return x if self.feature_pool is None else self.feature_pool(x)

    def call(self, inputs, training=None):
        if isinstance(inputs, (tuple, list)):
            base, altered = inputs
            features = self.features(ops.concatenate([base, altered], axis=0), training=training)
            return {"logits": self.head(features), "features": features}
        return self.head(self.features(inputs, training=training))

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        labels = ops.reshape(ops.cast(y, "int32"), (-1,))
        if not isinstance(y_pred, dict):
            total = _weighted_mean(label_smoothed_cross_entropy(labels, y_pred, 0.0), sample_weight)
        else:
            base_logits, altered_logits = ops.split(y_pred["logits"], 2, axis=0)
            ce_base = _weighted_mean(label_smoothed_cross_entropy(labels, base_logits, self.label_smoothing),
                                     sample_weight)
            ce_altered = _weighted_mean(
                label_smoothed_cross_entropy(labels, altered_logits, self.label_smoothing), sample_weight)
            con = contrastive_loss(y_pred["features"], ops.concatenate([labels, labels]), self.margin)
            self.base_loss_tracker.update_state(ce_base)
            self.altered_loss_tracker.update_state(ce_altered)
            self.contrastive_loss_tracker.update_state(con)
            w_o, w_s, w_c = self.loss_weights
            total = w_o * ce_base + w_s * ce_altered + w_c * con
        # Keras's own per-replica scaling (1 / replicas under tf.distribute,
        # whose gradients are summed over replicas).
        total = aggregate_additional_loss(self, total)
        for extra in self.losses:   # regularisers of the backbone
            total = total + aggregate_additional_loss(self, extra)
        return total

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        two_views = isinstance(y_pred, dict)
        if two_views:
            y_pred = ops.split(y_pred["logits"], 2, axis=0)[0]
        logs = super().compute_metrics(x, y, y_pred, sample_weight)
        if not two_views:  # the CLE terms exist only for two-view batches: no stale values
            for tracker in (self.base_loss_tracker, self.altered_loss_tracker, self.contrastive_loss_tracker):
                logs.pop(tracker.name, None)
        return logs

    def compile(self, optimizer="rmsprop", loss=None, **kwargs):
        """As `keras.Model.compile`; the loss is built in, so `loss` must be None."""
        if loss is not None:
            raise ValueError("CLEModel computes its own losses; compile it without `loss`")
        super().compile(optimizer=optimizer, **kwargs)

    def compile_from_config(self, config):
        """Recompile a loaded model as it was saved (Keras skips models whose
        `compile` is overridden), optimizer state included."""
        import fgtf.optimization  # noqa: F401  (registers cle_optimizer's optimizer and schedule for loading)

        self.compile(**keras.saving.deserialize_keras_object(config))
        self.optimizer.build(self.trainable_variables)

    def get_config(self):
        return {"name": self.name, "backbone": keras.saving.serialize_keras_object(self.backbone),
                "num_classes": self.num_classes, "loss_weights": list(self.loss_weights),
                "margin": self.margin, "label_smoothing": self.label_smoothing}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["backbone"] = keras.saving.deserialize_keras_object(config["backbone"])
        return cls(**config)


def _weighted_mean(values, sample_weight):
    """Mean over the batch of per-example `values`, weighted like Keras losses
    (sum of weight · value over the batch size)."""
    if sample_weight is None:
        return ops.mean(values)
    weights = ops.reshape(ops.cast(sample_weight, "float32"), (-1,))
    return ops.sum(values * weights) / ops.cast(ops.shape(values)[0], "float32")


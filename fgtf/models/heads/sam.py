"""SAM and SAM-Bilinear: "Improving Fine-Grained Visual Recognition in Low
Data Regimes via Self-Boosting Attention Mechanism" (Shu et al., ECCV 2022),
ported from the original code (github.com/GANPerf/SAM) as recorded in
shared/spec/sam.md.

    model = build_sam(backbone, num_classes=200, target="cam", bilinear="single")
    model.compile(keras.optimizers.SGD(1e-3, momentum=0.9, nesterov=True),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(dataset)             # CE + kl_weight * attention KL; labels: class ids
    logits = model.predict(images) # classifier on the test feature

On the backbone's feature map F (B, H, W, C) an attention branch (1x1 conv
C -> M without bias, BatchNorm, ReLU) predicts M maps A; their channel max is
the predicted attention P. The pseudo-attention S of the ground-truth class
(CAM: the classifier column of the class; Grad-CAM: the spatially averaged
gradient of its logit in an inference-mode pass) is the target:
L_att = sum_b KL(softmax(S/t) || softmax(P/t)) with S detached, summed over
the batch (not averaged), weighted by `kl_weight` (0.01).

The classifier sees one of two features:
* `gap`: the spatial mean of F;
* `bilinear`: SAM-Bilinear. `bilinear="single"` is what the original code
  runs: P normalised to [0, 1] by its min and max over the whole batch
  (`mask_normalization="batch"`; "sample" is a per-image deviation),
  detached, as a spatial weight: l2normalize(mean_hw(F * mask)), C-d.
  `bilinear="multi"` is the multi-map form the README describes:
  mean_hw(F_c * A_m) for every map m, flattened map-major, M*C-d, unnormalised.
  `bilinear="compact"` is the compact bilinear pooling of the code's history
  (commented out at HEAD): count sketch of F_pos (x) A_pos summed over the
  positions (`compact_dim`-d, numpy seeds 1/3/5/7 as the original's
  CompactBilinearPooling.py), then BatchNorm without offset.

Which feature is used in training and at test is an option; `build_sam`
defaults to what each original script does (see `script_defaults`). For the
multi-map and compact features, which no original script trains a classifier
on, the CAM is each position's contribution to the class logit and Grad-CAM
holds the attention maps constant, as the single-map form holds its mask.

Everything is `keras.ops` (the Grad-CAM target of a linear classifier on a
pooled feature has a closed form, so no gradient tape is needed): the head
runs on every Keras backend. Two deliberate differences from the code, both
invisible on finite inputs: log_softmax instead of log(softmax) (no -inf when
p underflows), and no NaN gradient for an all-zero pooled feature. Under
tf.distribute each replica normalises the mask and computes BN statistics
over its own part of the batch (the original ran on one GPU).
"""
import keras
import numpy as np
from keras import layers, ops

from fgtf.models.heads.base import HeadModel, TorchBatchNormalization, torch_linear_initializers

TARGETS = ("cam", "gradcam")
BILINEAR = (None, "single", "multi", "compact")
# numpy seeds of the original CompactBilinearPooling.py: h1, s1, h2, s2
SKETCH_SEEDS = (1, 3, 5, 7)
FEATURES = ("gap", "bilinear")


def build_sam(backbone, num_classes, target="cam", bilinear="single", train_feature=None,
              test_feature=None, gap_warmup_steps=None, attention_channels=16, temperature=0.4,
              kl_weight=0.01, mask_normalization="batch", gradcam_features="eval", compact_dim=500,
              name="sam"):
    """SAM head on `backbone` (a Keras model with one 4-D output (B, H, W, C)).

    `target`: "cam" or "gradcam" pseudo-attention. `bilinear`: None (plain
    SAM), "single" (SAM-Bilinear as the code runs it), "multi" (the
    README's multi-map bilinear pooling) or "compact" (compact bilinear
    pooling to `compact_dim`). `train_feature` / `test_feature`
    ("gap" or "bilinear") and `gap_warmup_steps` (train on GAP for that many
    steps first, then on the bilinear feature) default to `script_defaults`.
    `gradcam_features`: "eval" re-runs the backbone in inference mode for the
    Grad-CAM weights as the original does (one more forward pass per step);
    "train" reuses the training feature map. `mask_normalization`: "batch"
    (the original) or "sample". `attention_channels` M, `temperature` t and
    `kl_weight` are the original's 16, 0.4 and 0.01. Returns a `SAM` model:
    logits (B, num_classes) of the test feature at inference.
    """
    defaults = script_defaults(target, bilinear)
    return SAM(backbone, num_classes, target=target, bilinear=bilinear,
               train_feature=train_feature or defaults["train_feature"],
               test_feature=test_feature or defaults["test_feature"],
               gap_warmup_steps=(defaults["gap_warmup_steps"] if gap_warmup_steps is None
                                 else gap_warmup_steps),
               attention_channels=attention_channels, temperature=temperature,
               kl_weight=kl_weight, mask_normalization=mask_normalization,
               gradcam_features=gradcam_features, compact_dim=compact_dim, name=name)


def script_defaults(target, bilinear):
    """Feature choice of the original scripts, as a dict of `train_feature`,
    `test_feature`, `gap_warmup_steps`:

    * single, cam (`main_bp_cam.py`): train on GAP, test on the bilinear feature;
    * single, gradcam (`main_bp_gradcam.py`): GAP for steps 1-800, then
      bilinear; test on bilinear;
    * None (plain SAM, the first release): GAP in training and at test;
    * multi, compact (no script trains on them): bilinear in training and at test.
    """
    if bilinear is None:
        return {"train_feature": "gap", "test_feature": "gap", "gap_warmup_steps": 0}
    if bilinear in ("multi", "compact"):
        return {"train_feature": "bilinear", "test_feature": "bilinear", "gap_warmup_steps": 0}
    if target == "gradcam":
        return {"train_feature": "bilinear", "test_feature": "bilinear", "gap_warmup_steps": 800}
    return {"train_feature": "gap", "test_feature": "bilinear", "gap_warmup_steps": 0}


def attention_mask(attention_map, per_sample=False):
    """Detached pooling mask from the predicted attention (B, H, W): shifted
    and scaled to [0, 1] by its min and max over the whole batch (the
    original) or, with `per_sample`, over each image."""
    axes = (1, 2) if per_sample else None
    shifted = attention_map - ops.min(attention_map, axis=axes, keepdims=per_sample)
    return ops.stop_gradient(shifted / (1e-7 + ops.max(shifted, axis=axes, keepdims=per_sample)))


def masked_pooling(feature_map, mask):
    """SAM-Bilinear single-map feature: l2normalize(mean_hw(F * mask)) (B, C),
    with PyTorch's x / max(||x||, 1e-12)."""
    return _l2_normalize(_masked_mean(feature_map, mask))


def multi_map_bilinear(feature_map, attention):
    """Multi-map bilinear feature: mean_hw(F[..., c] * A[..., m]) for every
    map m, flattened map-major (index m * C + c): (B, M * C)."""
    shape = ops.shape(feature_map)
    pooled = ops.einsum("bhwc,bhwm->bmc", feature_map, attention) / _positions(feature_map)
    return ops.reshape(pooled, (shape[0], -1))


def compact_bilinear_pooling(feature_map, attention, sketch, output_dim):
    """Compact bilinear pooling: sum over positions of the count sketch of
    F_pos (x) A_pos, i.e. ifft(fft(sketch(F_pos)) * fft(sketch(A_pos))),
    computed exactly as a sum of M rolled feature sketches: (B, output_dim).
    `sketch` = (h1 (C,) int, s1 (C,) +-1, h2 (M,) int, s2 (M,) +-1)."""
    h1, s1, h2, s2 = sketch
    feature_sketch = ops.einsum("bhwc,cd->bhwd", feature_map, ops.one_hot(h1, output_dim) * s1[:, None])
    shifted = (ops.arange(output_dim)[None, :] - h2[:, None]) % output_dim  # (M, D)
    rolled = ops.take(feature_sketch, shifted, axis=-1)  # (B, H, W, M, D)
    return ops.einsum("bhwm,bhwmd->bd", attention * s2, rolled)


def count_sketch(input_dim, output_dim, hash_seed, sign_seed):
    """Hashes in [0, output_dim) and signs +-1 for `input_dim` inputs, drawn as
    the original CompactBilinearPooling.py does (numpy legacy seeding)."""
    hashes = np.random.RandomState(hash_seed).randint(output_dim, size=input_dim)
    signs = 2 * np.random.RandomState(sign_seed).randint(2, size=input_dim) - 1
    return hashes.astype(np.int32), signs.astype(np.float32)


def attention_log_distribution(attention_map, temperature):
    """log softmax over the H*W positions (row-major) of map / temperature: (B, H*W)."""
    shape = ops.shape(attention_map)
    return ops.log_softmax(ops.reshape(attention_map, (shape[0], -1)) / temperature, axis=-1)


def attention_kl(target_map, predicted_map, temperature):
    """Per-sample KL(softmax(target/t) || softmax(predicted/t)) over positions,
    (B,); summed over the batch it is the original L_att (0 log 0 = 0)."""
    log_q = attention_log_distribution(target_map, temperature)
    log_p = attention_log_distribution(predicted_map, temperature)
    return ops.sum(ops.exp(log_q) * (log_q - log_p), axis=-1)


@keras.saving.register_keras_serializable(package="fgtf")
class SAM(HeadModel):
    """SAM / SAM-Bilinear head on a backbone; see the module docstring and
    `build_sam`. Layers (float32): `conv16` (1x1 conv C -> M, no bias,
    PyTorch init), `bn16` (`TorchBatchNormalization`, eps 1e-5, momentum 0.9),
    `classifier` (Dense, kernel N(0, 0.01), zero bias); for the compact
    feature also `bncbp` (BatchNorm without offset) and the count-sketch
    weights `cbp_h1`, `cbp_s1`, `cbp_h2`, `cbp_s2` (non-trainable)."""

    term_names = ("sam_attention",)
    batch_sum_terms = frozenset(term_names)

    def __init__(self, backbone, num_classes, target="cam", bilinear="single", train_feature="gap",
                 test_feature="bilinear", gap_warmup_steps=0, attention_channels=16, temperature=0.4,
                 kl_weight=0.01, mask_normalization="batch", gradcam_features="eval", compact_dim=500,
                 **kwargs):
        super().__init__(backbone, num_classes, **kwargs)
        _check_options(target, bilinear, train_feature, test_feature, gap_warmup_steps,
                       mask_normalization, gradcam_features)
        self.target, self.bilinear = target, bilinear
        self.train_feature, self.test_feature = train_feature, test_feature
        self.gap_warmup_steps = int(gap_warmup_steps)
        self.attention_channels = int(attention_channels)
        self.temperature, self.kl_weight = float(temperature), float(kl_weight)
        self.mask_normalization, self.gradcam_features = mask_normalization, gradcam_features
        self.compact_dim = int(compact_dim)

        kernel_init, _ = torch_linear_initializers(self.channels)
        self.attention_conv = layers.Conv2D(self.attention_channels, 1, use_bias=False,
                                            kernel_initializer=kernel_init, dtype="float32",
                                            name="conv16")
        self.attention_conv.build((None, None, None, self.channels))
        self.attention_bn = TorchBatchNormalization(epsilon=1e-5, momentum=0.9, dtype="float32",
                                                    name="bn16")
        self.attention_bn.build((None, None, None, self.attention_channels))
        feature_size = {"multi": self.channels * self.attention_channels,
                        "compact": self.compact_dim}.get(bilinear, self.channels)
        if bilinear == "compact":
            self.compact_bn = TorchBatchNormalization(center=False, epsilon=1e-5, momentum=0.9,
                                                      dtype="float32", name="bncbp")
            self.compact_bn.build((None, self.compact_dim))
            h1, s1 = count_sketch(self.channels, self.compact_dim, *SKETCH_SEEDS[:2])
            h2, s2 = count_sketch(self.attention_channels, self.compact_dim, *SKETCH_SEEDS[2:])
            # weights, not constants: saved with the model and loadable (e.g. other sketches)
            self.sketch = [self.add_weight(name=name, shape=value.shape, dtype=value.dtype.name,
                                           initializer=keras.initializers.Constant(value), trainable=False)
                           for name, value in zip(("cbp_h1", "cbp_s1", "cbp_h2", "cbp_s2"), (h1, s1, h2, s2))]
        self.classifier = layers.Dense(num_classes, kernel_initializer=keras.initializers.RandomNormal(0.0, 0.01),
                                       dtype="float32", name="classifier")
        self.classifier.build((None, feature_size))
        # training-mode forward passes so far, for the GAP warm-up switch
        self.training_steps = self.add_weight(name="training_steps", shape=(), dtype="int32",
                                              initializer="zeros", trainable=False,
                                              aggregation="only_first_replica")
        self.built = True  # every layer is built: saves and loads without a sample call

    def head(self, feature_map, training=False):
        """`feature_map` (B, H, W, C) -> dict: `attention` A (B, H, W, M),
        `attention_map` P (B, H, W), `mask` (single bilinear), `sketch`
        (compact bilinear, before its BatchNorm), per feature
        kind `gap_features`/`bilinear_features` and `gap_logits`/
        `bilinear_logits`, and `features`/`logits`: what the classifier uses
        (training: `train_feature` after the warm-up; inference: `test_feature`).
        In inference mode only the test feature is computed."""
        outputs = {}
        if training or self.test_feature == "bilinear":
            outputs["attention"] = self.attention(feature_map, training=training)
            outputs["attention_map"] = ops.max(outputs["attention"], axis=-1)
        kinds = self._feature_kinds() if training else (self.test_feature,)
        for kind in kinds:
            outputs[f"{kind}_features"] = self._features(kind, feature_map, outputs, training)
            outputs[f"{kind}_logits"] = self.classifier(outputs[f"{kind}_features"])
        used = self.train_feature if training else self.test_feature
        outputs["features"], outputs["logits"] = outputs[f"{used}_features"], outputs[f"{used}_logits"]
        if training and self.gap_warmup_steps:
            step = self.training_steps + 1
            self.training_steps.assign(step)
            warm = step <= self.gap_warmup_steps
            outputs["logits"] = ops.where(warm, outputs["gap_logits"], outputs["logits"])
        return outputs

    def attention(self, feature_map, training=False):
        """Attention maps A = ReLU(BN(conv1x1(F))): (B, H, W, M)."""
        return ops.relu(self.attention_bn(self.attention_conv(feature_map), training=training))

    def loss_terms(self, x, y, outputs):
        """`sam_attention`: kl_weight * sum_b KL(q_b || p_b) for one training
        forward (`outputs` of `model(x, training=True)`, labels `y`)."""
        target = ops.relu(self.pseudo_attention(x, y, outputs)["raw"])
        kl = attention_kl(target, outputs["attention_map"], self.temperature)
        return {"sam_attention": self.kl_weight * ops.sum(kl)}

    def pseudo_attention(self, x, y, outputs):
        """Detached pseudo-attention of class `y` (B,) on the training feature
        map (`outputs` of `model(x, training=True)`): dict `raw` (B, H, W),
        the map before its ReLU. CAM: `class_activation`. Grad-CAM: sum_c F *
        w with `weights` w (B, C) the spatial mean of d logit_y / dF of an
        inference-mode pass (moving BN statistics, its own mask, the test
        feature), in closed form; that pass's outputs are under `eval`."""
        labels = ops.cast(ops.reshape(y, (-1,)), "int32")
        feature_map = outputs["feature_map"]
        if self.target == "cam":
            return {"raw": ops.stop_gradient(
                self.class_activation(labels, feature_map, outputs["attention"]))}
        eval_map = (feature_map if self.gradcam_features == "train"
                    else ops.stop_gradient(self.feature_map(x, training=False)))
        eval_outputs = self.head(eval_map, training=False)
        weights = ops.stop_gradient(self._gradcam_weights(labels, eval_map, eval_outputs))
        raw = ops.einsum("bhwc,bc->bhw", feature_map, weights)
        return {"raw": ops.stop_gradient(raw), "weights": weights, "eval": eval_outputs}

    def class_activation(self, labels, feature_map, attention):
        """Class activation map of `labels` (B,) before its ReLU: (B, H, W),
        sum_c F * W[:, y] (classifier column, bias unused). For the multi-map
        and compact features the weight of a position is sum_m A_m * w_m with
        w_m the channel weights of map m (`_map_weights`), so the map is each
        position's contribution to the logit (times H*W for the multi-map
        mean; compact pooling sums)."""
        labels = ops.cast(labels, "int32")
        if self.bilinear in ("multi", "compact"):
            position_weights = ops.einsum("bhwm,bmc->bhwc", attention, self._map_weights(labels))
            return ops.sum(feature_map * position_weights, axis=-1)
        return ops.einsum("bhwc,bc->bhw", feature_map, self._logit_direction(labels))

    def attention_maps(self, inputs, labels=None):
        """Inference-mode maps for visualisation: dict `predicted` (P) and
        `cam` (ReLU of the CAM of `labels`, default the predicted classes),
        each (B, H, W) at the feature-map resolution."""
        feature_map = self.feature_map(inputs, training=False)
        attention = self.attention(feature_map, training=False)
        if labels is None:
            labels = ops.argmax(self.head(feature_map, training=False)["logits"], axis=-1)
        cam = self.class_activation(labels, feature_map, attention)
        return {"predicted": ops.max(attention, axis=-1), "cam": ops.relu(cam)}

    def get_config(self):
        return {**super().get_config(), "target": self.target, "bilinear": self.bilinear,
                "train_feature": self.train_feature, "test_feature": self.test_feature,
                "gap_warmup_steps": self.gap_warmup_steps,
                "attention_channels": self.attention_channels, "temperature": self.temperature,
                "kl_weight": self.kl_weight, "mask_normalization": self.mask_normalization,
                "gradcam_features": self.gradcam_features, "compact_dim": self.compact_dim}

    def _feature_kinds(self):
        if self.bilinear is None:
            return ("gap",)
        if self.bilinear == "single":
            return ("gap", "bilinear")
        return ("bilinear",)

    def _features(self, kind, feature_map, outputs, training):
        if kind == "gap":
            return ops.mean(feature_map, axis=(1, 2))
        if self.bilinear == "multi":
            return multi_map_bilinear(feature_map, outputs["attention"])
        if self.bilinear == "compact":
            outputs["sketch"] = compact_bilinear_pooling(feature_map, outputs["attention"], self.sketch,
                                                         self.compact_dim)
            return self.compact_bn(outputs["sketch"], training=training)
        outputs["mask"] = attention_mask(outputs["attention_map"],
                                         per_sample=self.mask_normalization == "sample")
        return masked_pooling(feature_map, outputs["mask"])

    def _logit_direction(self, labels):
        """v (B, feature size): the inference-mode logit of class y is v . f +
        const for the pooled feature f (for compact, f before its BatchNorm,
        whose moving-statistics scale is folded into v): the classifier column."""
        columns = ops.transpose(ops.take(self.classifier.kernel, labels, axis=1))
        if self.bilinear == "compact":
            bn = self.compact_bn
            return columns * bn.gamma / ops.sqrt(bn.moving_variance + bn.epsilon)
        return columns

    def _map_weights(self, labels):
        """(B, M, C) channel weights w_m per attention map such that the
        logit direction applied to the multi-map or compact feature of one
        position is sum_{m,c} F_c A_m w_m[c] (times 1/HW for the multi-map mean)."""
        direction = self._logit_direction(labels)
        if self.bilinear == "multi":  # kernel rows are map-major
            return ops.reshape(direction, (-1, self.attention_channels, self.channels))
        h1, s1, h2, s2 = self.sketch
        bins = (h1[None, :] + h2[:, None]) % self.compact_dim  # (M, C): where F_c A_m lands
        return ops.take(direction, bins, axis=1) * s2[None, :, None] * s1[None, None, :]

    def _gradcam_weights(self, labels, eval_map, eval_outputs):
        """mean_hw d(logit_y)/dF for the linear classifier on the test
        feature, with the mask / attention maps held constant (they are
        detached in the original's Grad-CAM copy too):
        gap: W_y / HW;  single: mean(m)/HW * (W_y - (u.W_y) u) / ||a|| with
        a = mean_hw(F m), u = a/||a|| (the l2-normalisation Jacobian);
        multi: sum_m mean_hw(A_m) w_m / HW;  compact: sum_m mean_hw(A_m) w_m
        (w_m: `_map_weights`; compact pooling sums over positions)."""
        positions = _positions(eval_map)
        if self.test_feature == "gap":
            return self._logit_direction(labels) / positions
        if self.bilinear in ("multi", "compact"):
            map_means = ops.mean(eval_outputs["attention"], axis=(1, 2))  # (B, M)
            weights = ops.einsum("bm,bmc->bc", map_means, self._map_weights(labels))
            return weights / positions if self.bilinear == "multi" else weights
        class_weights = self._logit_direction(labels)
        mask = eval_outputs["mask"]
        pooled = _masked_mean(eval_map, mask)
        norm = _safe_norm(pooled)
        unit = pooled / norm
        projected = class_weights - ops.sum(unit * class_weights, axis=-1, keepdims=True) * unit
        mask_mean = ops.mean(mask, axis=(1, 2))[:, None]
        return mask_mean / positions * projected / norm


def _check_options(target, bilinear, train_feature, test_feature, gap_warmup_steps,
                   mask_normalization, gradcam_features):
    if target not in TARGETS:
        raise ValueError(f"target must be one of {TARGETS}, got {target!r}")
    if bilinear not in BILINEAR:
        raise ValueError(f"bilinear must be one of {BILINEAR}, got {bilinear!r}")
    for name, value in (("train_feature", train_feature), ("test_feature", test_feature)):
        if value not in FEATURES:
            raise ValueError(f"{name} must be one of {FEATURES}, got {value!r}")
        if bilinear is None and value == "bilinear":
            raise ValueError(f"{name}='bilinear' needs bilinear='single', 'multi' or 'compact'")
        if bilinear in ("multi", "compact") and value == "gap":
            raise ValueError(f"with bilinear={bilinear!r} the classifier takes the bilinear "
                             f"feature only, so {name} cannot be 'gap'")
    if gap_warmup_steps < 0 or (gap_warmup_steps and (bilinear != "single" or train_feature != "bilinear")):
        raise ValueError("gap_warmup_steps > 0 needs bilinear='single' and train_feature='bilinear'")
    if mask_normalization not in ("batch", "sample"):
        raise ValueError(f"mask_normalization must be 'batch' or 'sample', got {mask_normalization!r}")
    if gradcam_features not in ("eval", "train"):
        raise ValueError(f"gradcam_features must be 'eval' or 'train', got {gradcam_features!r}")


def _positions(feature_map):
    shape = ops.shape(feature_map)
    return ops.cast(shape[1] * shape[2], "float32")


def _masked_mean(feature_map, mask):
    return ops.mean(feature_map * mask[..., None], axis=(1, 2))


def _safe_norm(vectors):
    """max(||v||, 1e-12) with a zero gradient below the floor (PyTorch's
    `F.normalize`), never a NaN."""
    return ops.sqrt(ops.maximum(ops.sum(ops.square(vectors), axis=-1, keepdims=True), 1e-24))


def _l2_normalize(vectors):
    return vectors / _safe_norm(vectors)

"""SEF: "Learning Semantically Enhanced Feature for Fine-Grained Image
Classification" (Luo et al., IEEE SPL 2020), ported from the original code
(github.com/cswluo/SEF) as recorded in shared/spec/sef.md.

    model = build_sef(backbone, num_classes=200, groups=4)
    model.compile(keras.optimizers.SGD(0.01, momentum=0.9),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    model.fit(dataset)             # CE on the global logits + the SEF terms
    logits = model.predict(images) # the global classifier only

The head sits on the backbone's last feature map F (B, H, W, C): global
average pooling, a global Dense classifier (the only output at inference),
and P per-group Dense classifiers on contiguous channel slices (the last
slice takes the remainder). Training adds, with the code's weights:

* grouping loss  rho * 1/2 * [mean_k A_k + 2/(P(P-1)) * sum_k E_k] on the
  squared channel-cosine matrix Q of F (A_k: mean of 1-Q inside group k,
  diagonal included; E_k: mean of Q between group k and all earlier groups
  pooled into one block -- not the pairwise mean, as in the original code);
* entropy term   beta * mean_b sum_c p log p  (p = softmax of global logits);
* distillation   gamma * mean_k mean_b sum_c -p log q_k, with p NOT detached
  (q_k = softmax of group k's logits; the local classifiers see no labels).

The compiled loss supplies the cross-entropy on the global logits, so
compile with `SparseCategoricalCrossentropy(from_logits=True)`. Everything
is `keras.ops`, so the head runs on every Keras backend.
"""
import keras
from keras import ops

from fgtf.models.heads.base import HeadModel, torch_dense

# float32 machine epsilon, added to the channel norms as the original does
COSINE_EPSILON = 1.1920929e-07


def build_sef(backbone, num_classes, groups=4, rho=1.0, beta=1.0, gamma=0.05, name="sef"):
    """SEF head on `backbone` (a Keras model with one 4-D output (B, H, W, C)).

    `groups` is the number of channel groups P (>= 2; the original uses 4 for
    CUB, 3 for Aircraft, 2 for Cars and Dogs); `rho`, `beta`, `gamma` weight
    the grouping, entropy and distillation terms (original: 1, 1, 0.05).
    Returns an `SEF` model: logits (B, num_classes) at inference.
    """
    return SEF(backbone, num_classes, groups=groups, rho=rho, beta=beta, gamma=gamma, name=name)


def group_ends(channels, groups):
    """End indices of the P contiguous channel groups: slices 0..P-2 have
    floor(C/P) channels, the last one the rest (2048, 3 -> [682, 1364, 2048])."""
    if groups < 2:
        raise ValueError(f"SEF needs at least 2 channel groups, got {groups}")
    if channels < groups:
        raise ValueError(f"cannot cut {channels} channels into {groups} groups")
    size = channels // groups
    return [size * (k + 1) for k in range(groups - 1)] + [channels]


def channel_cosine(feature_map):
    """Per-sample cosine similarity of the channels of `feature_map`
    (B, H, W, C) over spatial positions: (B, C, C). Each channel vector is
    divided by (norm + eps); an all-zero channel gets a zero row and a finite
    gradient (the norm's gradient is taken as 0 there, like PyTorch)."""
    shape = ops.shape(feature_map)
    vectors = ops.reshape(feature_map, (shape[0], -1, shape[3]))  # (B, S, C)
    squared = ops.sum(ops.square(vectors), axis=1, keepdims=True)
    alive = squared > 0
    norm = ops.where(alive, ops.sqrt(ops.where(alive, squared, 1.0)), 0.0)
    unit = vectors / (norm + COSINE_EPSILON)
    return ops.einsum("bsc,bsd->bcd", unit, unit)


def cosine_block_means(cosine, ends):
    """(P, P) means of Q = cosine**2 over each (group i, group j) block,
    averaged over the batch too."""
    membership = _group_membership(ends)
    sizes = ops.sum(membership, axis=0)
    block_sums = ops.einsum("ci,cd,dj->ij", membership, ops.sum(ops.square(cosine), axis=0), membership)
    batch = ops.cast(ops.shape(cosine)[0], cosine.dtype)
    return block_sums / (batch * sizes[:, None] * sizes[None, :])


def grouping_terms(cosine, ends):
    """The grouping loss's pieces from the channel cosine matrix (B, C, C):
    intra (P,): A_k = mean over the (k, k) block of 1 - Q (diagonal included);
    inter (P-1,): E_k = mean of Q over rows of group k and the columns of all
    earlier groups taken as one block (k = 1..P-1)."""
    block_means = cosine_block_means(cosine, ends)
    sizes = [b - a for a, b in zip([0] + ends[:-1], ends)]
    intra = 1.0 - ops.diagonal(block_means)
    # E_k = sum_{j<k} (|G_j| / e_{k-1}) * M_kj: the pooled rectangle's mean
    inter = ops.stack([
        sum(block_means[k, j] * (sizes[j] / ends[k - 1]) for j in range(k))
        for k in range(1, len(ends))])
    return intra, inter


def grouping_loss(cosine, ends):
    """Unweighted grouping loss 1/2 * [mean_k A_k + 2/(P(P-1)) * sum_k E_k]."""
    groups = len(ends)
    intra, inter = grouping_terms(cosine, ends)
    return 0.5 * (ops.mean(intra) + ops.sum(inter) * (2.0 / (groups * (groups - 1))))


def parameter_overhead(backbone_parameters, channels, num_classes, groups):
    """Training-time parameter overhead of SEF over a plain network with one
    `num_classes`-way classifier: the P local classifiers, C*K + P*K.

    `backbone_parameters` is the backbone's count without classifier (e.g.
    torchvision ResNet-50: 23,508,032, BN buffers excluded; or
    `model.backbone.count_params()`, which counts BN moving statistics too).
    Returns a dict with `plain`, `extra` and `ratio` (extra / plain);
    ResNet-50, 200 classes, 4 groups -> 1.716 % (fgtf's resnet_v2_50: 1.712 %).
    """
    plain = backbone_parameters + channels * num_classes + num_classes
    extra = channels * num_classes + groups * num_classes
    return {"plain": plain, "extra": extra, "ratio": extra / plain}


@keras.saving.register_keras_serializable(package="fgtf")
class SEF(HeadModel):
    """SEF head on a backbone; see the module docstring and `build_sef`.

    Layers: `fc` (global Dense C -> K) and `fclocal_{k}` (Dense |G_k| -> K),
    named after the original's `fc` / `fclocal.{k}`; float32 and initialised
    as PyTorch does (U(+-1/sqrt(fan_in)) for kernel and bias).
    """

    term_names = ("sef_grouping", "sef_entropy", "sef_distillation")

    def __init__(self, backbone, num_classes, groups=4, rho=1.0, beta=1.0, gamma=0.05, **kwargs):
        super().__init__(backbone, num_classes, **kwargs)
        self.groups = int(groups)
        self.rho, self.beta, self.gamma = float(rho), float(beta), float(gamma)
        self.ends = group_ends(self.channels, self.groups)
        self.global_classifier = torch_dense(num_classes, self.channels, "fc", dtype="float32")
        starts = [0] + self.ends[:-1]
        self.local_classifiers = [torch_dense(num_classes, end - start, f"fclocal_{k}", dtype="float32")
                                  for k, (start, end) in enumerate(zip(starts, self.ends))]
        self.built = True  # every layer is built: saves and loads without a sample call

    def head(self, feature_map, training=False):
        """`feature_map` (B, H, W, C) -> dict `pooled` (B, C), `logits` (B, K)
        and, in training, `local_logits` (P, B, K) (group-major, as the original)."""
        pooled = ops.mean(feature_map, axis=(1, 2))
        outputs = {"pooled": pooled, "logits": self.global_classifier(pooled)}
        if training:
            starts = [0] + self.ends[:-1]
            outputs["local_logits"] = ops.stack([
                classifier(pooled[:, start:end])
                for classifier, start, end in zip(self.local_classifiers, starts, self.ends)])
        return outputs

    def loss_terms(self, x, y, outputs):
        """The weighted SEF terms of one training forward (`outputs` of
        `model(x, training=True)`): `sef_grouping`, `sef_entropy`,
        `sef_distillation` (scalars, means over the batch; labels unused)."""
        log_p = ops.log_softmax(outputs["logits"], axis=-1)
        p = ops.exp(log_p)
        log_q = ops.log_softmax(outputs["local_logits"], axis=-1)  # (P, B, K)
        cosine = channel_cosine(outputs["feature_map"])
        return {
            "sef_grouping": self.rho * grouping_loss(cosine, self.ends),
            "sef_entropy": self.beta * ops.mean(ops.sum(p * log_p, axis=-1)),
            "sef_distillation": self.gamma * ops.mean(ops.sum(-p[None] * log_q, axis=-1)),
        }

    def parameter_overhead(self):
        """`parameter_overhead` for this model's backbone, classes and groups."""
        return parameter_overhead(self.backbone.count_params(), self.channels,
                                  self.num_classes, self.groups)

    def get_config(self):
        return {**super().get_config(), "groups": self.groups,
                "rho": self.rho, "beta": self.beta, "gamma": self.gamma}


def _group_membership(ends):
    """(C, P) one-hot matrix: channel c belongs to group k."""
    channel = ops.arange(ends[-1])[:, None]
    starts = ops.convert_to_tensor([0] + ends[:-1])[None, :]
    stops = ops.convert_to_tensor(ends)[None, :]
    return ops.cast((channel >= starts) & (channel < stops), "float32")

"""SimTrans: "Weak-shot Fine-grained Classification via Similarity Transfer"
(Chen, Niu, Liu, Zhang, NeurIPS 2021), ported from the authors' code
(bcmi/SimTrans-Weak-Shot-Classification) as recorded in shared/spec/simtrans.md.

    simnet = SimNet(feature_backbone, beta=0.0)            # step 1
    simnet.compile(keras.optimizers.SGD(5e-3, momentum=0.9),
                   discriminator_optimizer=keras.optimizers.SGD(5e-3, momentum=0.9))
    simnet.fit(pair_batches)     # ((base_images, novel_images), base_labels) per batch

    S = simnet.head.similarity_matrix(f, f)                # step 2, per novel class
    w = sample_weights(S, "savg1")                         # step 3, per class

    model = WeakShotClassifier(backbone, num_classes, simnet=simnet, graph_weight=0.1)
    model.compile(keras.optimizers.SGD(1e-4, momentum=0.9),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(images, labels, sample_weight=w)             # (1/B) sum w_i CE_i + 0.1 L_graph

Pieces (all forward passes and losses are `keras.ops`, so they run on every
Keras backend; only `SimNet.train_step`, whose two-optimiser update order
needs a gradient tape, is TensorFlow-only):

* `pair_enumeration(x)`: (B, n) -> (B*B, 2n), row k = [x[k mod B] ; x[k div B]],
  self pairs included; reshaped row-major to (B, B), entry (r, c) is [x_c ; x_r].
* `SimilarityHead`: the relation MLP (Linear -> BN -> ReLU three times, widths
  2n, n, n, then Linear -> 2 logits; index 1 = "similar"); the fc2 output is
  the relation feature the discriminator sees. BN is PyTorch's (eps 1e-5,
  momentum 0.1, moving variance from the unbiased batch variance).
* `DomainDiscriminator`: Linear -> LayerNorm (eps 1e-5) -> ReLU -> Linear -> 2.
* `simnet_outputs`: one step-1 forward on base and novel features with both
  losses; `SimNet` (backbone + head + discriminator) trains it with the
  spec's update order: SimNet minimises L_sim - beta * L_dom, the
  discriminator minimises L_dom on the same (detached) relation features.
* `sample_weights`: per-class weights from a transferred similarity matrix,
  formulas `avg<r>` (row means) and `savg<r>` (row and column means), with the
  `one_mean` or `max_<M>_<mu>` normalisation.
* `sample_weighted_cross_entropy`, `relax_similarity`, `graph_adjacency`,
  `pairwise_squared_distances`, `graph_regularisation_loss`,
  `cosine_mimicking_loss`: the main classifier's losses.
* `WeakShotClassifier`: backbone + linear classifier whose training loss adds
  `graph_weight * L_graph` on SimNet similarities of the same batch.
"""
import math

import keras
import numpy as np
from keras import layers, ops

from fgtf.models.heads.base import HeadModel, same_label_mask, torch_dense, torch_linear_initializers

# PyTorch BatchNorm1d / LayerNorm defaults, which the original uses.
TORCH_NORM_EPSILON = 1e-5
TORCH_BN_MOMENTUM = 0.1
SIMILAR = 1  # index of the "similar" logit


def pair_enumeration(features):
    """All ordered pairs of a batch, self pairs included, in the original order.

    features: (B, n). Returns (B*B, 2n) whose row k is
    `[features[k mod B] ; features[k div B]]`."""
    count = ops.shape(features)[0]
    first = ops.tile(features, (count, 1))
    second = ops.repeat(features, count, axis=0)
    return ops.concatenate([first, second], axis=1)


def pair_targets(labels):
    """(B,) labels -> (B*B,) int32: 1 where the two images of pair k (in the
    `pair_enumeration` order) share a label, else 0 (self pairs: 1)."""
    return ops.reshape(same_label_mask(labels, "int32"), (-1,))


@keras.saving.register_keras_serializable(package="fgtf")
class TorchBatchNorm(layers.Layer):
    """`torch.nn.BatchNorm1d` on (rows, features): batch statistics in training
    (normalised with the biased variance), moving statistics otherwise; the
    moving variance is updated with the unbiased batch variance (x m/(m-1)),
    as PyTorch does and Keras's BatchNormalization does not."""

    def __init__(self, epsilon=TORCH_NORM_EPSILON, momentum=TORCH_BN_MOMENTUM, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)
        self.momentum = float(momentum)

    def build(self, input_shape):
        width = (int(input_shape[-1]),)
        self.gamma = self.add_weight(shape=width, initializer="ones", name="gamma")
        self.beta = self.add_weight(shape=width, initializer="zeros", name="beta")
        self.moving_mean = self.add_weight(shape=width, initializer="zeros", name="moving_mean", trainable=False)
        self.moving_variance = self.add_weight(shape=width, initializer="ones", name="moving_variance",
                                               trainable=False)

    def call(self, inputs, training=False):
        if training:
            mean = ops.mean(inputs, axis=0)
            variance = ops.var(inputs, axis=0)
            rows = ops.cast(ops.shape(inputs)[0], inputs.dtype)
            unbiased = variance * rows / ops.maximum(rows - 1.0, 1.0)
            self.moving_mean.assign((1.0 - self.momentum) * self.moving_mean + self.momentum * mean)
            self.moving_variance.assign((1.0 - self.momentum) * self.moving_variance + self.momentum * unbiased)
        else:
            mean, variance = self.moving_mean, self.moving_variance
        return (inputs - mean) * ops.rsqrt(variance + self.epsilon) * self.gamma + self.beta

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon, "momentum": self.momentum}


@keras.saving.register_keras_serializable(package="fgtf")
class SimilarityHead(layers.Layer):
    """SimNet's relation MLP (`head_type 4`) on pair rows of width 2n.

    `call(pairs)` -> dict: `fc1` (rows, 2n), `relation` (rows, n; the fc2
    output the discriminator sees), `fc3` (rows, n), each after
    Linear -> BN -> ReLU, and `logits` (rows, 2), index 1 = "similar"."""

    def __init__(self, feature_dim, **kwargs):
        super().__init__(**kwargs)
        self.feature_dim = int(feature_dim)
        n = self.feature_dim
        self.fc1 = _torch_dense(2 * n, 2 * n, "fc1")
        self.bn1 = TorchBatchNorm(name="bn1")
        self.fc2 = _torch_dense(n, 2 * n, "fc2")
        self.bn2 = TorchBatchNorm(name="bn2")
        self.fc3 = _torch_dense(n, n, "fc3")
        self.bn3 = TorchBatchNorm(name="bn3")
        self.fc4 = _torch_dense(2, n, "fc4")

    def build(self, input_shape=None):
        n = self.feature_dim
        for dense, norm, fan_in in ((self.fc1, self.bn1, 2 * n), (self.fc2, self.bn2, 2 * n),
                                    (self.fc3, self.bn3, n)):
            dense.build((None, fan_in))
            norm.build((None, dense.units))
        self.fc4.build((None, n))

    def call(self, pairs, training=False):
        fc1 = ops.relu(self.bn1(self.fc1(pairs), training=training))
        relation = ops.relu(self.bn2(self.fc2(fc1), training=training))
        return {"fc1": fc1, "relation": relation, **self.classify_relation(relation, training=training)}

    def classify_relation(self, relation, training=False):
        """Relation features (rows, n) -> dict `fc3`, `logits` (the layers after fc2)."""
        fc3 = ops.relu(self.bn3(self.fc3(relation), training=training))
        return {"fc3": fc3, "logits": self.fc4(fc3)}

    def similarity_matrix(self, first, second, max_rows=65536):
        """Eval-mode similarities S (N, M), S[i, j] = p_sim(first_i, second_j),
        i.e. softmax(logits of the pair [first_i ; second_j])[1].

        fc1 is linear in the concatenation, so each image is projected once
        (`fc1([u ; v]) = u K_top + v K_bottom + b`) and the pairs are formed by
        broadcasting; rows are processed in chunks of at most `max_rows` pairs."""
        first = ops.convert_to_tensor(first, "float32")
        second = ops.convert_to_tensor(second, "float32")
        n = self.feature_dim
        kernel = self.fc1.kernel
        top = ops.matmul(first, kernel[:n])
        bottom = ops.matmul(second, kernel[n:]) + self.fc1.bias
        columns = int(ops.shape(second)[0])
        chunk = max(1, max_rows // max(columns, 1))
        rows = []
        for start in range(0, int(ops.shape(first)[0]), chunk):
            block = top[start:start + chunk]
            pre = ops.reshape(block[:, None, :] + bottom[None, :, :], (-1, 2 * n))
            fc1 = ops.relu(self.bn1(pre, training=False))
            relation = ops.relu(self.bn2(self.fc2(fc1), training=False))
            logits = self.classify_relation(relation, training=False)["logits"]
            rows.append(ops.reshape(ops.softmax(logits, axis=-1)[:, SIMILAR], (-1, columns)))
        return ops.concatenate(rows, axis=0) if rows else ops.zeros((0, columns))

    def get_config(self):
        return {**super().get_config(), "feature_dim": self.feature_dim}


@keras.saving.register_keras_serializable(package="fgtf")
class DomainDiscriminator(layers.Layer):
    """Tells base pairs (0) from novel pairs (1) from their relation features.

    `call(relation)` (rows, n) -> dict `fc1` (rows, n), `ln` (the LayerNorm
    output, before the ReLU) and `logits` (rows, 2)."""

    def __init__(self, feature_dim, **kwargs):
        super().__init__(**kwargs)
        self.feature_dim = int(feature_dim)
        n = self.feature_dim
        self.fc1 = _torch_dense(n, n, "fc1")
        self.ln = layers.LayerNormalization(epsilon=TORCH_NORM_EPSILON, name="ln")
        self.fc2 = _torch_dense(2, n, "fc2")

    def build(self, input_shape=None):
        n = self.feature_dim
        self.fc1.build((None, n))
        self.ln.build((None, n))
        self.fc2.build((None, n))

    def call(self, relation, training=False):
        fc1 = self.fc1(relation)
        normed = self.ln(fc1)
        return {"fc1": fc1, "ln": normed, "logits": self.fc2(ops.relu(normed))}

    def get_config(self):
        return {**super().get_config(), "feature_dim": self.feature_dim}


def simnet_outputs(head, discriminator, base_features, base_labels, novel_features, beta=0.0, training=True):
    """One step-1 forward pass on backbone features (spec §5.3).

    base_features (B, n) with base_labels (B,), novel_features (B', n). The
    pairs of each batch are enumerated separately and the head runs once on
    `[base pairs ; novel pairs]` (its BN statistics mix both domains).
    Returns a dict: `pairs`, `fc1`, `relation`, `fc3`, `logits` (all rows),
    `pair_targets` (base rows), `domain_targets` (0 base, 1 novel),
    `domain` (the discriminator's dict), `sim_loss` (pair CE over the base
    rows), `domain_loss` (CE over all rows), `simnet_loss` = sim_loss -
    beta * domain_loss, `domain_accuracy`."""
    base_pairs = pair_enumeration(base_features)
    novel_pairs = pair_enumeration(novel_features)
    pairs = ops.concatenate([base_pairs, novel_pairs], axis=0)
    outputs = head(pairs, training=training)
    base_rows = ops.shape(base_pairs)[0]
    targets = pair_targets(base_labels)
    domain_targets = ops.concatenate([ops.zeros((base_rows,), "int32"),
                                      ops.ones((ops.shape(novel_pairs)[0],), "int32")])
    domain = discriminator(outputs["relation"], training=training)
    sim_loss = _mean_cross_entropy(outputs["logits"][:base_rows], targets)
    domain_loss = _mean_cross_entropy(domain["logits"], domain_targets)
    correct = ops.equal(ops.cast(ops.argmax(domain["logits"], axis=-1), "int32"), domain_targets)
    return {**outputs, "pairs": pairs, "pair_targets": targets, "domain_targets": domain_targets,
            "domain": domain, "sim_loss": sim_loss, "domain_loss": domain_loss,
            "simnet_loss": sim_loss - beta * domain_loss,
            "domain_accuracy": ops.mean(ops.cast(correct, "float32"))}


@keras.saving.register_keras_serializable(package="fgtf")
class SimNet(keras.Model):
    """SimNet: a feature backbone (images -> (B, n), e.g. a pooled CNN) with
    the similarity head and the adversarial domain discriminator.

    `call(images)` -> (B, B) similarities in the pair-enumeration layout
    (entry (r, c) = p_sim(x_c, x_r)), eval-mode head: what graph
    regularisation uses. `features(images)` -> (B, n).

    Training (`fit` on batches `((base_images, novel_images), base_labels)`)
    runs one backbone call on both image sets and, per step, (1) the SimNet
    update minimising `sim_loss - beta * domain_loss + L2` over backbone and
    head, then (2) the discriminator update minimising `domain_loss + L2`
    over its own weights on the same relation features (its weights were not
    changed by (1), so the value is the one of (1)). beta = 0 reproduces the
    released script (adversarial term off, discriminator still trained).
    `weight_decay` is PyTorch SGD's coupled L2 on every trainable weight
    (gradient + wd * w), added as wd/2 * ||w||^2. The custom `train_step` uses
    `tf.GradientTape`: TensorFlow backend only.

    compile(optimizer, discriminator_optimizer=...) takes the two optimisers.
    """

    def __init__(self, backbone, beta=0.0, weight_decay=1e-4, **kwargs):
        super().__init__(**kwargs)
        self.backbone = backbone
        self.feature_dim = int(backbone.outputs[0].shape[-1])
        self.beta = float(beta)
        self.weight_decay = float(weight_decay)
        self.head = SimilarityHead(self.feature_dim, name="head")
        self.head.build()
        self.discriminator = DomainDiscriminator(self.feature_dim, name="discriminator")
        self.discriminator.build()
        self.discriminator_optimizer = None
        self.trackers = {name: keras.metrics.Mean(name=name)
                         for name in ("sim_loss", "domain_loss", "domain_accuracy", "pair_accuracy")}
        self.built = True  # every weight exists now (the backbone is a built model)

    def features(self, images, training=False):
        return ops.cast(self.backbone(images, training=training), "float32")

    def call(self, images, training=False):
        features = self.features(images, training=training)
        logits = self.head(pair_enumeration(features), training=training)["logits"]
        count = ops.shape(features)[0]
        return ops.reshape(ops.softmax(logits, axis=-1)[:, SIMILAR], (count, count))

    def compile(self, optimizer, discriminator_optimizer, **kwargs):
        super().compile(optimizer=optimizer, **kwargs)
        self.discriminator_optimizer = discriminator_optimizer
        # built here: a tf.function train step must not create its variables lazily
        self.discriminator_optimizer.build(self.discriminator.trainable_variables)
        self.optimizer.build(self._simnet_variables())

    @property
    def metrics(self):
        return list(self.trackers.values())

    def train_step(self, data):
        import tensorflow as tf

        (base_images, novel_images), base_labels = data[0], data[1]
        count = tf.shape(base_images)[0]
        simnet_variables = self._simnet_variables()
        discriminator_variables = self.discriminator.trainable_variables
        with tf.GradientTape(persistent=True) as tape:
            features = self.features(tf.concat([base_images, novel_images], axis=0), training=True)
            out = simnet_outputs(self.head, self.discriminator, features[:count], base_labels, features[count:],
                                 beta=self.beta, training=True)
            simnet_objective = out["simnet_loss"] + _l2(simnet_variables, self.weight_decay)
            discriminator_objective = out["domain_loss"] + _l2(discriminator_variables, self.weight_decay)
        simnet_gradients = tape.gradient(simnet_objective, simnet_variables)
        discriminator_gradients = tape.gradient(discriminator_objective, discriminator_variables)
        del tape
        self.optimizer.apply_gradients(zip(simnet_gradients, simnet_variables))
        self.discriminator_optimizer.apply_gradients(zip(discriminator_gradients, discriminator_variables))
        base_rows = tf.shape(out["pair_targets"])[0]
        predicted = tf.cast(tf.argmax(out["logits"][:base_rows], axis=-1), "int32")
        self.trackers["pair_accuracy"].update_state(tf.cast(tf.equal(predicted, out["pair_targets"]), "float32"))
        for name in ("sim_loss", "domain_loss", "domain_accuracy"):
            self.trackers[name].update_state(out[name])
        return {name: tracker.result() for name, tracker in self.trackers.items()}

    def _simnet_variables(self):
        return self.backbone.trainable_variables + self.head.trainable_variables

    def get_config(self):
        return {"name": self.name, "trainable": self.trainable, "beta": self.beta,
                "weight_decay": self.weight_decay, "backbone": keras.saving.serialize_keras_object(self.backbone)}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        config["backbone"] = keras.saving.deserialize_keras_object(config["backbone"], custom_objects=custom_objects)
        return cls(**config)


def similar_f1(predicted, targets):
    """F1 score of the "similar" class (label 1) from 0/1 predictions and targets."""
    predicted, targets = np.asarray(predicted).ravel() == 1, np.asarray(targets).ravel() == 1
    true_positive = float(np.sum(predicted & targets))
    denominator = 2 * true_positive + float(np.sum(predicted & ~targets)) + float(np.sum(~predicted & targets))
    return 2 * true_positive / denominator if denominator else 0.0


def sample_weights(similarity, formula="savg1", normalization="one_mean"):
    """Per-image weights of one novel class from its transferred similarities.

    similarity: (N, N), row i = image i in SimNet's first slot. `formula`:
      `avg<r>`  u_i = mean of the k largest entries of row i,
      `savg<r>` u_i = (that + the same of column i) / 2,
    with k = floor(r * N) (at least 1), self-similarity included (`savg1`,
    `avg1` are plain means; the original's step 3a uses savg1, 3b avg1).
    `normalization`: `one_mean` w = u / mean(u) (weights average 1), or
    `max_<M>_<mu>` w = M (exp(mu v) - 1) / (exp(mu) - 1) with v = u / max(u).
    Returns (N,) float32."""
    similarity = np.asarray(similarity, np.float64)
    symmetric, ratio = _parse_formula(formula)
    k = max(1, int(math.floor(ratio * len(similarity))))
    scores = _top_k_mean(similarity, k)
    if symmetric:
        scores = (scores + _top_k_mean(similarity.T, k)) / 2.0
    if normalization == "one_mean":
        return (scores / scores.mean()).astype(np.float32)
    parts = normalization.split("_")
    if len(parts) == 3 and parts[0] == "max":
        top, mu = float(parts[1]), float(parts[2])
        return (top * relax_similarity(scores / scores.max(), mu, numpy=True)).astype(np.float32)
    raise ValueError(f"unknown weight normalization {normalization!r}; use one_mean or max_<M>_<mu>")


def sample_weighted_cross_entropy(logits, labels, weights):
    """(1/B) sum_i w_i CE(logits_i, y_i): divided by the batch size, not by sum(w)."""
    per_sample = keras.losses.sparse_categorical_crossentropy(ops.cast(labels, "int32"),
                                                              ops.cast(logits, "float32"), from_logits=True)
    return ops.mean(ops.cast(weights, "float32") * per_sample)


def relax_similarity(similarity, mu=-4.0, numpy=False):
    """(exp(mu A) - 1) / (exp(mu) - 1): identity at mu = 0; for mu < 0 concave,
    lifting small similarities (A = 0.5 -> 0.881 at mu = -4)."""
    if mu == 0:
        return similarity
    backend = np if numpy else ops
    return backend.expm1(mu * similarity) / math.expm1(mu)


def graph_adjacency(similarity, labels=None, mu=-4.0, eye=1):
    """The graph of a batch: relax_similarity(A, mu) masked by max(C, eye),
    C_ij = [labels_i == labels_j]. With eye = 1 (the released script) the mask
    keeps every pair; eye = 0 keeps same-label pairs only (needs `labels`).
    similarity: (B, B) SimNet similarities in the pair-enumeration layout."""
    relaxed = relax_similarity(ops.cast(similarity, "float32"), mu)
    if eye:
        return relaxed
    return relaxed * same_label_mask(labels)


def pairwise_squared_distances(features):
    """D_ij = ||f_i - f_j||^2 for features (B, d) -> (B, B), via the Gram matrix
    (no (B, B, d) tensor), clipped at 0 against rounding."""
    features = ops.cast(features, "float32")
    squares = ops.sum(ops.square(features), axis=1)
    gram = ops.matmul(features, ops.transpose(features))
    return ops.maximum(squares[:, None] + squares[None, :] - 2.0 * gram, 0.0)


def graph_regularisation_loss(features, adjacency):
    """(1/B^2) sum_ij Ã_ij ||f_i - f_j||^2 (mean over all entries, diagonal
    included, not normalised by sum(Ã)). features (B, d), adjacency (B, B)."""
    return ops.mean(ops.stop_gradient(adjacency) * pairwise_squared_distances(features))


def cosine_mimicking_loss(features, adjacency):
    """The original's unused `--reg COS` alternative: mean_ij (cos(f_i, f_j) - Ã_ij)^2."""
    features = ops.cast(features, "float32")
    unit = features / ops.sqrt(ops.maximum(ops.sum(ops.square(features), axis=1, keepdims=True), 1e-24))
    cosine = ops.matmul(unit, ops.transpose(unit))
    return ops.mean(ops.square(cosine - ops.stop_gradient(adjacency)))


@keras.saving.register_keras_serializable(package="fgtf")
class WeakShotClassifier(HeadModel):
    """The main classifier: `backbone` (one 4-D feature map) -> global average
    pool -> features f (B, C_map) -> Dense logits (B, num_classes).

    Compile with `SparseCategoricalCrossentropy(from_logits=True)` and pass the
    per-image weights as `fit(..., sample_weight=w)`: Keras divides the
    weighted sum by the batch size, which is the original's weighted CE.
    With `simnet` and `graph_weight > 0`, training adds
    `graph_weight * graph_regularisation_loss(f, graph_adjacency(simnet(x), y, mu, eye))`
    (the frozen SimNet, eval mode, scores the same augmented images; the term
    is logged as `graph_loss`). `weight_decay` adds the coupled L2
    wd/2 * ||w||^2 of every trainable weight (PyTorch SGD's weight decay).
    `graph_weight` and `weight_decay` are read when the train step is traced:
    set them before `compile`."""

    term_names = ("graph_loss", "weight_decay")

    def __init__(self, backbone, num_classes, simnet=None, graph_weight=0.0, mu=-4.0, eye=1, weight_decay=0.0,
                 **kwargs):
        super().__init__(backbone, num_classes, **kwargs)
        self.simnet = simnet
        self.graph_weight = float(graph_weight)
        self.mu = float(mu)
        self.eye = int(eye)
        self.weight_decay = float(weight_decay)
        self.classifier = torch_dense(self.num_classes, self.channels, "fc")

    def head(self, feature_map, training=False):
        features = ops.mean(feature_map, axis=(1, 2))
        return {"logits": self.classifier(features), "features": features}

    def loss_terms(self, x, y, outputs):
        zero = ops.zeros((), "float32")
        terms = {"graph_loss": zero, "weight_decay": _l2(self.trainable_variables, self.weight_decay)}
        if self.graph_weight and self.simnet is not None:
            similarity = ops.stop_gradient(self.simnet(x, training=False))
            adjacency = graph_adjacency(similarity, y, mu=self.mu, eye=self.eye)
            terms["graph_loss"] = self.graph_weight * graph_regularisation_loss(outputs["features"], adjacency)
        return terms

    def get_config(self):
        return {**super().get_config(), "graph_weight": self.graph_weight, "mu": self.mu, "eye": self.eye,
                "weight_decay": self.weight_decay}


def _torch_dense(units, fan_in, name):
    """`heads.base.torch_dense` left unbuilt, for layers that build their
    sublayers in their own `build`."""
    kernel_init, bias_init = torch_linear_initializers(fan_in)
    return layers.Dense(units, kernel_initializer=kernel_init, bias_initializer=bias_init, name=name)


def _mean_cross_entropy(logits, targets):
    return ops.mean(keras.losses.sparse_categorical_crossentropy(targets, ops.cast(logits, "float32"),
                                                                 from_logits=True))


def _l2(variables, weight_decay):
    if not weight_decay or not variables:
        return ops.zeros((), "float32")
    return 0.5 * weight_decay * ops.sum(ops.stack([ops.sum(ops.square(ops.cast(v, "float32"))) for v in variables]))


def _parse_formula(formula):
    for prefix, symmetric in (("savg", True), ("avg", False)):
        if formula.startswith(prefix):
            try:
                ratio = float(formula[len(prefix):])
            except ValueError:
                break
            if 0 < ratio <= 1:
                return symmetric, ratio
    raise ValueError(f"unknown weight formula {formula!r}; use avg<r> or savg<r> with 0 < r <= 1 (e.g. savg1)")


def _top_k_mean(matrix, k):
    """Mean of the k largest entries of each row."""
    return np.sort(matrix, axis=1)[:, -k:].mean(axis=1)

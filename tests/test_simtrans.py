"""SimTrans: the Keras port against the reference vectors of
shared/reference/heads/simtrans.npz (spec §14), and the pipeline CLI end to end."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")

from fgtf.models.heads.simtrans import (  # noqa: E402
    DomainDiscriminator, SimilarityHead, cosine_mimicking_loss, graph_adjacency, graph_regularisation_loss,
    pair_enumeration, pair_targets, pairwise_squared_distances, sample_weighted_cross_entropy, sample_weights,
    similar_f1, simnet_outputs)

GRAPH_VARIANTS = {"mu-4_eye1": (-4.0, 1), "mu-4_eye0": (-4.0, 0), "mu0_eye1": (0.0, 1)}


def assert_close(actual, expected, key, errors):
    """Spec §14 tolerance: max|port - ref| <= 1e-4 * max(1, max|ref|)."""
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    assert actual.shape == expected.shape, f"{key}: shape {actual.shape} != {expected.shape}"
    scale = max(1.0, float(np.max(np.abs(expected)))) if expected.size else 1.0
    error = float(np.max(np.abs(actual - expected))) if expected.size else 0.0
    errors[key] = error / scale
    print(f"{key}: max error / max(1, max|ref|) = {error / scale:.2e}")  # shown with pytest -s
    assert error <= 1e-4 * scale, f"{key}: max error {error:.3g} > 1e-4 * {scale:.3g}"


@pytest.fixture(scope="module")
def ref(heads_reference):
    return heads_reference("simtrans")


@pytest.fixture(scope="module")
def nets(ref):
    """The head, discriminator and main classifier layer with the stored weights."""
    n = int(ref["meta.n_feat"])
    head = SimilarityHead(n, name="head")
    head.build()
    discriminator = DomainDiscriminator(n, name="discriminator")
    discriminator.build()
    kernel = ref["cls.fc.kernel"]
    classifier = keras.layers.Dense(kernel.shape[1], name="fc")
    classifier.build((None, kernel.shape[0]))
    return {"head": head, "discriminator": discriminator, "classifier": classifier}


def load_weights(ref, nets):
    """Assign every stored weight (re-run before each test: training-mode calls
    move the BN moving statistics)."""
    head, discriminator = nets["head"], nets["discriminator"]
    for name in ("fc1", "fc2", "fc3", "fc4"):
        getattr(head, name).set_weights([ref[f"simnet.{name}.kernel"], ref[f"simnet.{name}.bias"]])
    for name in ("bn1", "bn2", "bn3"):
        getattr(head, name).set_weights([ref[f"simnet.{name}.{w}"]
                                         for w in ("gamma", "beta", "moving_mean", "moving_variance")])
    discriminator.fc1.set_weights([ref["disc.fc1.kernel"], ref["disc.fc1.bias"]])
    discriminator.ln.set_weights([ref["disc.ln.gamma"], ref["disc.ln.beta"]])
    discriminator.fc2.set_weights([ref["disc.fc2.kernel"], ref["disc.fc2.bias"]])
    nets["classifier"].set_weights([ref["cls.fc.kernel"], ref["cls.fc.bias"]])
    return nets


@pytest.mark.reference
def test_simnet_eval_matches_reference(ref, nets):
    head = load_weights(ref, nets)["head"]
    features, labels = ref["in.base_feat"], ref["in.base_labels"]
    count = len(features)
    errors = {}
    pairs = pair_enumeration(features)
    index = np.arange(count * count)
    np.testing.assert_array_equal(index % count, ref["a.pair_first_index"])
    np.testing.assert_array_equal(index // count, ref["a.pair_second_index"])
    out = head(pairs, training=False)
    probability = keras.ops.softmax(out["logits"], axis=-1)[:, 1]
    for key, value in (("a.pairs", pairs), ("a.fc1_out", out["fc1"]), ("a.fc2_out", out["relation"]),
                       ("a.fc3_out", out["fc3"]), ("a.logits", out["logits"]), ("a.prob_similar", probability),
                       ("a.sim_matrix_enum", np.reshape(probability, (count, count))),
                       ("a.sim_matrix", head.similarity_matrix(features, features))):
        assert_close(value, ref[key], key, errors)
    np.testing.assert_array_equal(pair_targets(labels), ref["a.pair_targets"])
    predicted = np.argmax(np.asarray(out["logits"]), axis=-1)
    np.testing.assert_array_equal(predicted, ref["a.pred_similar"])
    assert_close(similar_f1(predicted, ref["a.pair_targets"]), ref["a.f1_similar"], "a.f1_similar", errors)


@pytest.mark.reference
def test_sample_weights_match_reference(ref, nets):
    head = load_weights(ref, nets)["head"]
    features, labels = ref["in.web_feat"], ref["in.web_labels"]
    errors = {}
    full = np.asarray(head.similarity_matrix(features, features))
    assert_close(full, ref["b.sim_matrix_full"], "b.sim_matrix_full", errors)
    variants = {"b.w_savg1": ("savg1", "one_mean"), "b.w_avg1": ("avg1", "one_mean"),
                "b.w_savg0p5": ("savg0.5", "one_mean"), "b.w_avg0p5": ("avg0.5", "one_mean"),
                "b.w_savg1_max2_mu3": ("savg1", "max_2_3")}
    for key, (formula, normalisation) in variants.items():
        weights = np.zeros(len(labels), np.float32)
        for label in np.unique(labels):
            members = np.flatnonzero(labels == label)
            weights[members] = sample_weights(full[np.ix_(members, members)], formula, normalisation)
        assert_close(weights, ref[key], key, errors)


@pytest.mark.reference
def test_graph_regularisation_matches_reference(ref, nets):
    nets = load_weights(ref, nets)
    head, classifier = nets["head"], nets["classifier"]
    simnet_features, labels = ref["in.novel_feat"], ref["in.main_labels"]
    main_features = tf.constant(ref["in.main_feat"])
    weights = ref["in.main_sample_w"]
    alpha = float(ref["meta.alpha"])
    count = len(labels)
    errors = {}
    logits = head(pair_enumeration(simnet_features), training=False)["logits"]
    assert_close(logits, ref["c.sim_logits"], "c.sim_logits", errors)
    similarity = np.reshape(keras.ops.softmax(logits, axis=-1)[:, 1], (count, count))
    assert_close(similarity, ref["c.A_raw"], "c.A_raw", errors)
    distances = pairwise_squared_distances(main_features)
    assert_close(distances, ref["c.dist"], "c.dist", errors)
    for name, (mu, eye) in GRAPH_VARIANTS.items():
        adjacency = graph_adjacency(similarity, labels, mu=mu, eye=eye)
        assert_close(adjacency, ref[f"c.A_{name}"], f"c.A_{name}", errors)
        assert_close(adjacency * distances, ref[f"c.L_{name}"], f"c.L_{name}", errors)
        assert_close(graph_regularisation_loss(main_features, adjacency), ref[f"c.gcn_loss_{name}"],
                     f"c.gcn_loss_{name}", errors)
    script_graph = graph_adjacency(similarity, labels, mu=-4.0, eye=1)
    assert_close(cosine_mimicking_loss(main_features, script_graph), ref["c.cos_loss_mu-4_eye1"],
                 "c.cos_loss_mu-4_eye1", errors)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(main_features)
        graph_loss = graph_regularisation_loss(main_features, script_graph)
        class_logits = classifier(main_features)
        weighted = sample_weighted_cross_entropy(class_logits, labels, weights)
        total = weighted + alpha * graph_loss
    assert_close(tape.gradient(graph_loss, main_features), ref["c.grad_feat_gcn_loss"], "c.grad_feat_gcn_loss",
                 errors)
    assert_close(tape.gradient(total, main_features), ref["c.grad_feat_total"], "c.grad_feat_total", errors)
    assert_close(class_logits, ref["c.cls_logits"], "c.cls_logits", errors)
    per_sample = keras.losses.sparse_categorical_crossentropy(labels, class_logits, from_logits=True)
    assert_close(per_sample, ref["c.ce_per_sample"], "c.ce_per_sample", errors)
    assert_close(weighted, ref["c.weighted_ce"], "c.weighted_ce", errors)
    assert_close(total, ref["c.total_gcn_epoch"], "c.total_gcn_epoch", errors)
    # Keras's compiled sample-weighted loss is the same (1/B) sum w CE the classifier trains with
    compiled = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(labels, class_logits, weights)
    assert_close(compiled, ref["c.weighted_ce"], "compiled weighted CE", errors)


@pytest.mark.reference
def test_simnet_training_step_matches_reference(ref, nets):
    nets = load_weights(ref, nets)
    head, discriminator = nets["head"], nets["discriminator"]
    base, base_labels = tf.constant(ref["in.base_feat"]), ref["in.base_labels"]
    novel = tf.constant(ref["in.novel_feat"])
    errors = {}
    pairs_seen = {}

    class Spy:  # records the head's input and its relation features to differentiate against them
        def __call__(self, pairs, training=False):
            pairs_seen["pairs"] = pairs
            tape.watch(pairs)
            return head(pairs, training=training)

    with tf.GradientTape(persistent=True) as tape:
        out = simnet_outputs(Spy(), discriminator, base, base_labels, novel, beta=0.1, training=True)
    pairs = pairs_seen["pairs"]
    for key, value in (("d.pairs", out["pairs"]), ("d.fc1_out", out["fc1"]), ("d.diff_feat", out["relation"]),
                       ("d.fc3_out", out["fc3"]), ("d.sim_logits", out["logits"]),
                       ("d.disc_fc1_out", out["domain"]["fc1"]), ("d.disc_ln_out", out["domain"]["ln"]),
                       ("d.domain_logits", out["domain"]["logits"]), ("d.cls_loss", out["sim_loss"]),
                       ("d.domain_loss", out["domain_loss"]), ("d.simnet_total_beta0p1", out["simnet_loss"]),
                       ("d.simnet_total_beta0", out["sim_loss"] - 0.0 * out["domain_loss"]),
                       ("d.disc_loss", out["domain_loss"]), ("d.domain_acc", out["domain_accuracy"])):
        assert_close(value, ref[key], key, errors)
    np.testing.assert_array_equal(out["pair_targets"], ref["d.pair_targets"])
    np.testing.assert_array_equal(out["domain_targets"], ref["d.domain_target"])
    # SimNet step gradients (beta = 0.1): relation features, head input, fc4 kernel
    total = out["simnet_loss"]
    assert_close(tape.gradient(total, out["relation"]), ref["d.grad_diff_feat_beta0p1"], "d.grad_diff_feat_beta0p1",
                 errors)
    assert_close(tape.gradient(total, pairs), ref["d.grad_pairs_beta0p1"], "d.grad_pairs_beta0p1", errors)
    assert_close(tape.gradient(total, head.fc4.kernel), ref["d.grad_fc4_kernel_beta0p1"], "d.grad_fc4_kernel_beta0p1",
                 errors)
    # discriminator step on the same relation features
    disc_gradients = tape.gradient(out["domain_loss"], [discriminator.fc1.kernel, discriminator.fc2.kernel,
                                                        discriminator.ln.gamma])
    for key, gradient in zip(("d.grad_disc_fc1_kernel", "d.grad_disc_fc2_kernel", "d.grad_disc_ln_gamma"),
                             disc_gradients):
        assert_close(gradient, ref[key], key, errors)
    for index in (1, 2, 3):
        norm = getattr(head, f"bn{index}")
        assert_close(norm.moving_mean, ref[f"d.bn{index}_moving_mean_after"], f"d.bn{index}_moving_mean_after", errors)
        assert_close(norm.moving_variance, ref[f"d.bn{index}_moving_variance_after"],
                     f"d.bn{index}_moving_variance_after", errors)

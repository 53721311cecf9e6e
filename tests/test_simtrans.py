"""SimTrans: the Keras port against the reference vectors of
tests/reference/heads/simtrans.npz (spec §14), and the pipeline CLI end to end."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")

from fgtf.simtrans.model import (  # noqa: E402
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
    for key, (formula, normalization) in variants.items():
        weights = np.zeros(len(labels), np.float32)
        for label in np.unique(labels):
            members = np.flatnonzero(labels == label)
            weights[members] = sample_weights(full[np.ix_(members, members)], formula, normalization)
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


def tiny_feature_backbone(inputs=6, features=4, seed=0):
    """A stand-in backbone: flat 'images' (B, inputs) -> features (B, features) >= 0."""
    initializer = keras.initializers.GlorotUniform(seed)
    return keras.Sequential([keras.Input((inputs,)), keras.layers.Dense(features, activation="relu",
                                                                        kernel_initializer=initializer)])


@pytest.mark.parametrize("beta", [0.0, 0.1])
def test_simnet_train_step_updates_in_the_spec_order(beta):
    """One fit step = SGD on L_sim - beta L_dom (+ coupled L2) for backbone and
    head, and SGD on L_dom (+ L2) for the discriminator, both from the same
    forward pass (first step: the momentum buffer is the gradient)."""
    from fgtf.simtrans.model import SimNet

    rng = np.random.default_rng(1)
    base = rng.normal(size=(4, 6)).astype(np.float32)
    novel = rng.normal(size=(4, 6)).astype(np.float32)
    labels = np.array([0, 0, 1, 2])
    lr, lr_disc, decay = 0.1, 0.05, 0.01
    simnet = SimNet(tiny_feature_backbone(), beta=beta, weight_decay=decay)
    simnet_variables = simnet.backbone.trainable_variables + simnet.head.trainable_variables
    disc_variables = simnet.discriminator.trainable_variables
    before = [np.array(v) for v in simnet_variables + disc_variables]
    with tf.GradientTape(persistent=True) as tape:
        features = simnet.features(np.concatenate([base, novel]), training=True)
        out = simnet_outputs(simnet.head, simnet.discriminator, features[:4], labels, features[4:], beta=beta)
    simnet_gradients = tape.gradient(out["simnet_loss"], simnet_variables)
    disc_gradients = tape.gradient(out["domain_loss"], disc_variables)
    expected = ([w - lr * (g + decay * w) for w, g in zip(before, simnet_gradients)]
                + [w - lr_disc * (g + decay * w) for w, g in zip(before[len(simnet_variables):], disc_gradients)])
    # the forward above moved the BN moving statistics; reset them so both passes start alike
    for variable, value in zip(simnet.non_trainable_variables, [np.array(v) for v in simnet.non_trainable_variables]):
        variable.assign(value)
    simnet.compile(keras.optimizers.SGD(lr, momentum=0.9),
                   discriminator_optimizer=keras.optimizers.SGD(lr_disc, momentum=0.9))
    logs = simnet.train_on_batch((base, novel), labels, return_dict=True)
    np.testing.assert_allclose(logs["sim_loss"], float(out["sim_loss"]), rtol=1e-5)
    np.testing.assert_allclose(logs["domain_loss"], float(out["domain_loss"]), rtol=1e-5)
    for variable, value in zip(simnet_variables + disc_variables, expected):
        np.testing.assert_allclose(np.array(variable), value, rtol=1e-4, atol=1e-6, err_msg=variable.path)


def test_weak_shot_classifier_loss_is_weighted_ce_plus_graph_term():
    """fit's loss = (1/B) sum w CE + alpha * graph loss on the frozen SimNet's
    similarities of the same images + coupled L2."""
    from fgtf.simtrans.model import SimNet, WeakShotClassifier

    rng = np.random.default_rng(2)
    images = rng.uniform(-1, 1, size=(6, 4, 4, 3)).astype(np.float32)
    labels = np.array([0, 1, 2, 0, 1, 2])
    weights = rng.uniform(0.2, 1.8, size=6).astype(np.float32)
    backbone = keras.Sequential([keras.Input((4, 4, 3)), keras.layers.Conv2D(5, 1, activation="relu")])
    pooled = keras.Sequential([keras.Input((4, 4, 3)), keras.layers.Flatten(), keras.layers.Dense(3, "relu")])
    simnet = SimNet(pooled)
    alpha, mu, decay = 0.1, -4.0, 1e-3
    model = WeakShotClassifier(backbone, 3, simnet=simnet, graph_weight=alpha, mu=mu, eye=0, weight_decay=decay)
    model(images)  # built before fit, as the CLI does
    model.compile(keras.optimizers.SGD(0.0), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    logs = model.train_on_batch(images, labels, sample_weight=weights, return_dict=True)
    features = np.mean(np.asarray(backbone(images)), axis=(1, 2))
    logits = model(images)
    adjacency = graph_adjacency(simnet(images), labels, mu=mu, eye=0)
    l2 = 0.5 * decay * sum(float(np.sum(np.square(v))) for v in model.trainable_variables)
    expected = (float(sample_weighted_cross_entropy(logits, labels, weights))
                + alpha * float(graph_regularisation_loss(features, adjacency)) + l2)
    np.testing.assert_allclose(logs["loss"], expected, rtol=1e-5)
    np.testing.assert_allclose(logs["graph_loss"], alpha * float(graph_regularisation_loss(features, adjacency)),
                               rtol=1e-5)


def test_class_grouped_batches_follow_the_original_sampler():
    from fgtf.simtrans import class_grouped_batches

    labels = np.repeat(np.arange(6), [7, 5, 9, 3, 8, 4])
    batches = class_grouped_batches(labels, 10, 2, np.random.default_rng(0))
    assert len(batches) == len(labels) // 10
    used = np.concatenate(batches)
    assert len(used) == len(set(used.tolist()))  # each image at most once per epoch
    for batch in batches:
        assert len(batch) <= 10 and len(set(labels[batch].tolist())) <= 2
    assert sum(len(b) == 10 for b in batches) >= 1


def test_sample_weights_reject_unknown_formulas():
    with pytest.raises(ValueError, match="unknown weight formula"):
        sample_weights(np.ones((3, 3)), "median1")
    with pytest.raises(ValueError, match="normalization"):
        sample_weights(np.ones((3, 3)), "avg1", "softmax")


# ------------------------------------------------------------------ CLI

@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory):
    from fgtf.datasets.synthetic import generate

    out = tmp_path_factory.mktemp("simtrans") / "synthetic_noisy"
    generate(str(out), classes=5, train_per_class=8, val_per_class=3, image_size=40, label_noise=0.4,
             novel_classes=2, num_workers=1)
    return str(out)


def run_step(*argv):
    from fgtf.simtrans.__main__ import main

    main(list(argv))


@pytest.mark.slow
def test_pipeline_end_to_end_on_a_tiny_synthetic_dataset(tiny_dataset, tmp_path, capsys):
    run = str(tmp_path / "run")
    run_step("pretrain", "--dataset_dir", tiny_dataset, "--run_dir", run, "--image_size", "32", "--epochs", "1",
             "--batch_size", "8")
    run_step("simnet", "--run_dir", run, "--epochs", "1", "--batch_size", "4", "--batch_classes", "2",
             "--eval_batches", "1", "--eval_classes", "2", "--eval_images", "2", "--beta", "0.1")
    run_step("weights", "--run_dir", run, "--figure_images", "2")
    run_step("train", "--run_dir", run, "--epochs", "1", "--graph_epochs", "1", "--graph_batch_size", "8")
    run_step("eval", "--run_dir", run)
    printed = capsys.readouterr().out
    for line in ("[pretrain] epoch 1", "[simnet] epoch 1/1", "[weights] savg1", "[train/graph] epoch 2",
                 "[eval] novel: top-1 accuracy"):
        assert line in printed
    novel_train = 2 * 8
    for formula in ("savg1", "avg1"):
        with open(os.path.join(run, "weights", f"{formula}.json")) as handle:
            weights = json.load(handle)
        assert len(weights) == novel_train
        # one_mean: every class's weights average 1, hence all of them too
        assert abs(np.mean(list(weights.values())) - 1.0) < 1e-5
    with open(os.path.join(run, "weights", "metrics.json")) as handle:
        summary = json.load(handle)
    assert summary["savg1"]["mislabelled"] == 2 * round(0.4 * 8)
    with np.load(os.path.join(run, "weights", "similarities.npz")) as matrices:
        assert matrices["S_0"].shape == (8, 8) and len(matrices["paths_1"]) == 8
    with open(os.path.join(run, "weights", "sample_weights.png"), "rb") as handle:
        assert handle.read(8) == b"\x89PNG\r\n\x1a\n"
    with open(os.path.join(run, "eval", "metrics.json")) as handle:
        accuracy = json.load(handle)["accuracy"]
    assert set(accuracy) == {"novel", "base", "all"} and all(0 <= v <= 1 for v in accuracy.values())
    with open(os.path.join(run, "train", "step.json")) as handle:
        assert json.load(handle)["settings"]["graph_epochs"] == 1
    # another class split: the later steps' outputs are stale until they are run again
    run_step("pretrain", "--dataset_dir", tiny_dataset, "--run_dir", run, "--image_size", "32", "--epochs", "1",
             "--batch_size", "8", "--novel_classes", "0,1")
    capsys.readouterr()
    for step in ("weights", "train", "eval"):
        with pytest.raises(SystemExit) as exit_info:
            run_step(step, "--run_dir", run)
        message = capsys.readouterr().err
        assert exit_info.value.code == 2 and "stale" in message and "base_classes, novel_classes" in message


def exit_code_and_message(capsys, *argv):
    with pytest.raises(SystemExit) as exit_info:
        run_step(*argv)
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return exit_info.value.code, captured.err


def folder_state(folder):
    """{relative path: (size, mtime)} of every file under `folder` (empty when it does not exist)."""
    state = {}
    for root, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(root, name)
            state[os.path.relpath(path, folder)] = (os.path.getsize(path), os.stat(path).st_mtime_ns)
    return state


def write_json(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as handle:
        json.dump(data, handle)


def fake_run(run, dataset_dir, steps):
    """A run folder with run.json and the step records `steps` ({step: record})."""
    write_json(os.path.join(run, "run.json"), {"dataset": "synthetic", "dataset_dir": dataset_dir,
                                               "model": "small_cnn", "image_size": 32, "base_classes": [0, 1, 2],
                                               "novel_classes": [3, 4]})
    for step, record in steps.items():
        write_json(os.path.join(run, step, "step.json"), record)


def test_cli_errors_exit_2(tiny_dataset, tmp_path, capsys):
    run = str(tmp_path / "run")
    code, message = exit_code_and_message(capsys, "simnet", "--run_dir", run)
    assert code == 2 and "run.json is missing" in message and "pretrain" in message
    code, message = exit_code_and_message(capsys, "pretrain", "--dataset_dir", tiny_dataset, "--run_dir", run,
                                          "--novel_classes", "3,x")
    assert code == 2 and "--novel_classes" in message
    code, message = exit_code_and_message(capsys, "pretrain", "--dataset_dir", tiny_dataset, "--run_dir", run,
                                          "--model", "no_such_net")
    assert code == 2 and "unknown model 'no_such_net'" in message and "small_cnn" in message
    assert len(message.strip().splitlines()) == 1
    assert not os.path.exists(run)
    fake_run(run, tiny_dataset, {})
    code, message = exit_code_and_message(capsys, "weights", "--run_dir", run)
    assert code == 2 and "simnet" in message and "has not finished" in message
    code, message = exit_code_and_message(capsys, "train", "--run_dir", run)
    assert code == 2 and "pretrain" in message and "has not finished" in message
    code, message = exit_code_and_message(capsys, "eval", "--run_dir", run)
    assert code == 2 and "train" in message


@pytest.mark.parametrize("step, flag, value", [
    ("pretrain", "--epochs", "0"), ("pretrain", "--image_size", "-3"), ("pretrain", "--num_novel", "0"),
    ("pretrain", "--batch_size", "2.5"), ("pretrain", "--learning_rate", "0"), ("pretrain", "--seed", "-1"),
    ("simnet", "--beta", "-0.1"), ("simnet", "--domain_lr", "nan"), ("simnet", "--eval_images", "0"),
    ("weights", "--figure_images", "0"), ("train", "--graph_epochs", "-1"), ("train", "--alpha", "-1"),
    ("train", "--weight_decay", "inf"), ("train", "--graph_batch_size", "0"), ("eval", "--batch_size", "x")])
def test_numeric_flags_are_checked_where_parsed(step, flag, value, tmp_path, capsys):
    run = str(tmp_path / "run")
    code, message = exit_code_and_message(capsys, step, "--run_dir", run, flag, value)
    assert code == 2 and f"argument {flag}" in message and message.strip().splitlines()[-1].count("error") == 1
    assert not os.path.exists(run)


def test_help_shows_every_default_without_importing_tensorflow():
    script = ("import sys\nfrom fgtf.simtrans.__main__ import main\n"
              "for step in ('pretrain', 'simnet', 'weights', 'train', 'eval'):\n"
              "    try:\n        main([step, '--help'])\n    except SystemExit:\n        pass\n"
              "print('tensorflow' in sys.modules, 'keras' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip().endswith("False False") and not out.stderr
    options = [line for line in out.stdout.splitlines() if line.startswith("  --")]
    # every flag shows its default, except pretrain's six and simnet's two without one, whose help says what
    # leaving them out does
    assert len(options) > 40 and out.stdout.count("(default:") == len(options) - 8
    assert "(default: None)" not in out.stdout
    text = " ".join(out.stdout.split())
    for said in ("none given: the novel classes recorded", "instead of --novel_classes",
                 "none given: random initialisation", "none given: a --checkpoint run's, fgtf .weights.h5's or "
                 "torchvision .pth's network, else small_cnn",
                 "none given: a --checkpoint run's, else the network's default size (small_cnn 64",
                 "none given: a --checkpoint run's, else the network's",
                 "none given: the original's 50 when the base and the novel training sets hold 7 batches of 50",
                 "none given: the original's 20 with batches of 50 or more, else one per 5 images",
                 "0.1 is the method's, 0 the released script's (the term left out) (default: 0.1)"):
        assert said in text
    assert "--checkpoint CHECKPOINT, --init_weights CHECKPOINT" in out.stdout
    # the vocabulary's names, the former ones still accepted
    assert "--learning_rate LEARNING_RATE, --lr LEARNING_RATE" in out.stdout
    assert "--num_epochs_per_decay NUM_EPOCHS_PER_DECAY, --lr_interval NUM_EPOCHS_PER_DECAY" in out.stdout
    assert "spec" not in text and "§" not in text


def test_simnet_batches_are_fitted_to_small_sets():
    from fgtf.simtrans.steps import fitted_pair_batch

    assert fitted_pair_batch(450, 150) == 20  # the synthetic example: 15 base, 5 novel classes of 30
    assert fitted_pair_batch(4500, 3000) == 50  # CUB-sized: the original's
    assert fitted_pair_batch(60, 40) == 10


def test_novel_classes_are_checked_against_the_dataset(tiny_dataset, tmp_path, capsys):
    run = str(tmp_path / "run")
    for value, expected in (("99", "--novel_classes 99: the 5-class dataset"), ("0,1,2,3", "fewer than 2 base")):
        code, message = exit_code_and_message(capsys, "pretrain", "--dataset_dir", tiny_dataset, "--run_dir", run,
                                              "--novel_classes", value)
        assert code == 2 and expected in message and len(message.strip().splitlines()) == 1
    code, message = exit_code_and_message(capsys, "pretrain", "--dataset_dir", tiny_dataset, "--run_dir", run,
                                          "--num_novel", "5")
    assert code == 2 and "between 1 and 4" in message
    assert not os.path.exists(run)


def test_any_registry_backbone_is_accepted_and_its_size_checked(tiny_dataset, tmp_path, capsys):
    run = str(tmp_path / "run")
    code, message = exit_code_and_message(capsys, "pretrain", "--dataset_dir", tiny_dataset, "--run_dir", run,
                                          "--model", "inception_v3", "--image_size", "32")
    assert code == 2 and "--image_size 32 does not suit inception_v3" in message
    assert not os.path.exists(run)


def test_checkpoint_of_another_network_is_one_sentence(tiny_dataset, tmp_path, capsys):
    from fgtf.runs import RunConfig, save_run_config

    other = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    weights = str(tmp_path / "other.weights.h5")
    other.save_weights(weights)
    training_run = str(tmp_path / "inception_run")
    save_run_config(training_run, RunConfig(model_name="inception_v3", num_classes=3, image_size=299))
    saved_model = tmp_path / "hub"
    saved_model.mkdir()
    (saved_model / "saved_model.pb").write_bytes(b"")
    simtrans_run = str(tmp_path / "simtrans_run")
    write_json(os.path.join(simtrans_run, "run.json"), {"model": "resnet_v2_50"})
    run = str(tmp_path / "run")
    for flag, path, expected in (
            ("--checkpoint", weights, "does not hold weights of SmallCNN"),
            ("--init_weights", weights, "does not hold weights of SmallCNN"),
            ("--checkpoint", training_run, "is a run of inception_v3, not of --model small_cnn"),
            ("--checkpoint", str(saved_model), "is a SavedModel"),
            ("--checkpoint", simtrans_run, "is a SimTrans run of resnet_v2_50"),
            ("--checkpoint", str(tmp_path / "missing.ckpt"), "not found")):
        before = folder_state(str(tmp_path))
        code, message = exit_code_and_message(capsys, "pretrain", "--dataset_dir", tiny_dataset, "--run_dir", run,
                                              "--model", "small_cnn", "--image_size", "32", flag, path)
        assert code == 2 and expected in message and len(message.strip().splitlines()) == 1, message
        assert folder_state(str(tmp_path)) == before


def test_backbone_starts_from_weights_files_and_training_runs(tmp_path):
    from fgtf.checkpoints import save_keras_weights
    from fgtf.models import build_model
    from fgtf.runs import RunConfig, build_network, save_run_config
    from fgtf.simtrans.networks import build_backbone

    run = {"model": "small_cnn", "image_size": 32}
    source = build_model("small_cnn", classes=3, classifier_activation=None, input_shape=(32, 32, 3))
    weights = str(tmp_path / "small.weights.h5")
    save_keras_weights(source, weights, "small_cnn", 3, False)
    expected = source.get_layer("Conv2d_6").get_weights()[0]
    loaded = build_backbone(run, weights).get_layer("Conv2d_6").get_weights()[0]
    np.testing.assert_array_equal(loaded, expected)
    training_run = str(tmp_path / "train_run")
    config = RunConfig(model_name="small_cnn", num_classes=3, image_size=32)
    network = build_network(config)
    tf.train.Checkpoint(model=network).save(os.path.join(training_run, "ckpt"))
    save_run_config(training_run, config)
    loaded = build_backbone(run, training_run).get_layer("Conv2d_3").get_weights()[0]
    np.testing.assert_array_equal(loaded, network.get_layer("Conv2d_3").get_weights()[0])


def test_steps_refuse_outputs_of_an_earlier_run_of_a_previous_step(tiny_dataset, tmp_path, capsys):
    run = str(tmp_path / "run")
    pretrain = {"id": "new", "settings": {"novel_classes": [3, 4], "epochs": 2}, "inputs": {}}
    simnet = {"id": "s", "settings": {}, "inputs": {"pretrain": {"id": "old", "settings": {"novel_classes": [2, 3],
                                                                                            "epochs": 2}}}}
    weights = {"id": "w", "settings": {}, "inputs": {"simnet": {"id": "s", "settings": {}}}}
    train = {"id": "t", "settings": {"classes": "all"}, "inputs": {"weights": {"id": "w", "settings": {}}}}
    fake_run(run, tiny_dataset, {"pretrain": pretrain, "simnet": simnet, "weights": weights, "train": train})
    before = folder_state(run)
    for step in ("weights", "eval"):
        code, message = exit_code_and_message(capsys, step, "--run_dir", run)
        assert code == 2 and len(message.strip().splitlines()) == 1
        assert "simnet outputs" in message and "stale" in message and "(novel_classes)" in message
    # the same settings but another run of pretrain is refused too
    simnet["inputs"]["pretrain"]["settings"] = pretrain["settings"]
    write_json(os.path.join(run, "simnet", "step.json"), simnet)
    before = folder_state(run)
    code, message = exit_code_and_message(capsys, "train", "--run_dir", run, "--weighting", "none",
                                          "--graph_weighting", "none", "--graph_epochs", "1")
    assert code == 2 and "simnet outputs" in message and "it was run again" in message
    assert folder_state(run) == before

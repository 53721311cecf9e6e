"""SEF head: the reference vectors of shared/spec/sef.md §8, the grouping
rule, the parameter overhead, and fit / save / mixed precision /
MirroredStrategy on a tiny backbone."""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

import keras
from fgtf.models.heads import SEF, build_sam, build_sef
from fgtf.models.heads.sef import (COSINE_EPSILON, channel_cosine, cosine_block_means, group_ends,
                                   grouping_terms, parameter_overhead)
from heads_helpers import (assert_absolute, assert_relative, fit_and_round_trip, identity_backbone,
                           random_images, tiny_backbone)


@pytest.fixture(scope="module")
def sef_run(heads_reference):
    """The SEF head with the stored weights, one training forward on the
    stored input, its loss terms and the gradients of the total loss."""
    ref = heads_reference("sef")
    features = ref["x_nhwc"]
    assert int(ref["cfg_channels"]) == features.shape[-1]
    model = build_sef(identity_backbone(features.shape[1:]), int(ref["cfg_num_classes"]),
                      groups=int(ref["cfg_nparts"]), rho=float(ref["cfg_rho_lmgm"]),
                      beta=float(ref["cfg_w_entropy"]), gamma=float(ref["cfg_w_soft"]))
    model.global_classifier.set_weights([ref["w_global_kernel"], ref["w_global_bias"]])
    for k, classifier in enumerate(model.local_classifiers):
        classifier.set_weights([ref[f"w_local{k}_kernel"], ref[f"w_local{k}_bias"]])
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))

    inputs = tf.Variable(features)
    labels = ref["labels"]
    with tf.GradientTape() as tape:
        outputs = model(inputs, training=True)
        terms = model.loss_terms(inputs, labels, outputs)
        total = model.compute_loss(inputs, labels, outputs)
    weights = {"w_global_kernel": model.global_classifier.kernel,
               "w_global_bias": model.global_classifier.bias}
    for k, classifier in enumerate(model.local_classifiers):
        weights[f"w_local{k}_kernel"], weights[f"w_local{k}_bias"] = classifier.kernel, classifier.bias
    gradients = tape.gradient(total, {"x_nhwc": inputs, **weights})
    cls = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(labels, outputs["logits"])
    return {"ref": ref, "model": model, "outputs": outputs, "terms": terms, "total": total,
            "cls": cls, "gradients": gradients}


@pytest.mark.reference
def test_forward_matches_reference(sef_run):
    ref, outputs, model = sef_run["ref"], sef_run["outputs"], sef_run["model"]
    assert model.ends == ref["group_ends"].tolist()
    assert np.diff([0] + model.ends).tolist() == ref["group_sizes"].tolist()
    assert_absolute({"pooled": (outputs["pooled"], ref["pooled"]),
                     "logits_global": (outputs["logits"], ref["logits_global"]),
                     "logits_local": (outputs["local_logits"], ref["logits_local"])}, atol=1e-4)
    # inference: the global classifier only
    assert_absolute({"predict": (model.predict(ref["x_nhwc"], verbose=0), ref["logits_global"])},
                    atol=1e-4)


@pytest.mark.reference
def test_cosine_and_grouping_terms_match_reference(sef_run):
    ref, model = sef_run["ref"], sef_run["model"]
    assert np.float32(ref["cfg_eps"]) == np.float32(COSINE_EPSILON)
    cosine = channel_cosine(ref["x_nhwc"])
    probe = ref["cos_probe_idx"]
    intra, inter = grouping_terms(cosine, model.ends)
    assert_relative({"cos_probe": (np.asarray(cosine)[:, probe][:, :, probe], ref["cos_probe"]),
                     "lmgm_intra_terms": (intra, ref["lmgm_intra_terms"]),
                     "lmgm_inter_terms": (inter, ref["lmgm_inter_terms"]),
                     "cos2_block_means": (cosine_block_means(cosine, model.ends), ref["cos2_block_means"])})


@pytest.mark.reference
def test_losses_match_reference(sef_run):
    ref, terms = sef_run["ref"], sef_run["terms"]
    reg = terms["sef_grouping"] + terms["sef_entropy"] + terms["sef_distillation"]
    ported = {"cls": sef_run["cls"], "lmgm": terms["sef_grouping"], "entropy": terms["sef_entropy"],
              "soft": terms["sef_distillation"], "reg": reg, "total": sef_run["total"]}
    pairs = {f"loss_{name}": (value, ref[f"loss_{name}"]) for name, value in ported.items()}
    pairs.update({f"loss_{name}_f64": (ported[name], ref[f"loss_{name}_f64"])
                  for name in ("cls", "lmgm", "entropy", "soft", "total")})
    pairs["logged_train_loss"] = (sef_run["total"], ref["logged_train_loss"])
    assert_absolute(pairs, atol=1e-5)


@pytest.mark.reference
def test_gradients_match_reference(sef_run):
    ref, gradients = sef_run["ref"], sef_run["gradients"]
    # the dead channel: the safe norm must keep the input gradient finite
    assert np.all(np.isfinite(gradients["x_nhwc"]))
    assert_relative({f"grad_{name}": (value, ref[f"grad_{name}"]) for name, value in gradients.items()})


def test_group_ends_uneven_last_group():
    assert group_ends(2048, 3) == [682, 1364, 2048]
    assert group_ends(512, 3) == [170, 340, 512]
    assert group_ends(2048, 4) == [512, 1024, 1536, 2048]
    with pytest.raises(ValueError, match="at least 2"):
        group_ends(2048, 1)


def test_grouping_inter_term_weights_earlier_groups_by_size():
    """P=4, equal groups: E_k pools all earlier groups, so the pair weights
    are 1, 1/2, 1/2, 1/3, 1/3, 1/3 (spec §3), not a pairwise mean."""
    rng = np.random.default_rng(1)
    cosine = channel_cosine(rng.uniform(0, 1, (2, 3, 3, 8)).astype(np.float32))
    ends = group_ends(8, 4)
    means = np.asarray(cosine_block_means(cosine, ends))
    _, inter = grouping_terms(cosine, ends)
    expected = [means[1, 0], (means[2, 0] + means[2, 1]) / 2, (means[3, 0] + means[3, 1] + means[3, 2]) / 3]
    np.testing.assert_allclose(inter, expected, rtol=1e-5)


def test_dead_channel_cosine_gradient_is_finite():
    feature_map = tf.Variable(np.random.default_rng(2).uniform(0, 1, (1, 2, 2, 4)).astype(np.float32))
    feature_map[..., 1].assign(tf.zeros((1, 2, 2)))
    with tf.GradientTape() as tape:
        cosine = channel_cosine(feature_map)
        loss = tf.reduce_sum(tf.square(cosine))
    assert float(cosine[0, 1, 1]) == 0.0
    assert np.all(np.isfinite(tape.gradient(loss, feature_map)))


def test_parameter_overhead_reproduces_readme_claim():
    """docs/methods.md: about 1.7 % more parameters than ResNet-50 (CUB: 200 classes,
    4 groups); backbone counts without fc from the spec's table."""
    resnet50 = parameter_overhead(23_508_032, 2048, 200, 4)
    assert resnet50["plain"] == 23_917_832 and resnet50["extra"] == 410_400
    assert round(100 * resnet50["ratio"], 3) == 1.716
    assert parameter_overhead(11_176_512, 512, 200, 4)["extra"] == 103_200
    assert parameter_overhead(23_508_032, 2048, 100, 3)["extra"] == 205_100

    model = build_sef(tiny_backbone(), num_classes=5, groups=3)
    overhead = model.parameter_overhead()
    assert overhead["extra"] == sum(c.count_params() for c in model.local_classifiers)
    assert overhead["plain"] == model.backbone.count_params() + model.global_classifier.count_params()


def test_fit_evaluate_predict_save_load(tmp_path):
    model = build_sef(tiny_backbone(), num_classes=5, groups=3)
    history = fit_and_round_trip(model, tmp_path)
    assert history.history["sef_entropy"][0] < 0  # minus the entropy, weighted by beta


def test_rejects_backbone_without_feature_map():
    inputs = keras.Input((4,))
    with pytest.raises(ValueError, match="4-D feature-map"):
        SEF(keras.Model(inputs, keras.layers.Dense(3)(inputs)), num_classes=3)


@pytest.mark.parametrize("build", [
    lambda: build_sef(tiny_backbone(), num_classes=5, groups=2),
    lambda: build_sam(tiny_backbone(), num_classes=5, target="gradcam", gap_warmup_steps=1),
], ids=["sef", "sam"])
def test_mixed_precision_losses_are_float32(build):
    keras.mixed_precision.set_dtype_policy("mixed_float16")
    try:
        model = build()
        images, labels = random_images()
        model.compile(keras.optimizers.SGD(0.01), run_eagerly=True,
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        outputs = model(images, training=True)
        assert model.backbone.output.dtype == "float16"
        for name, value in model.loss_terms(images, labels, outputs).items():
            assert value.dtype == "float32", name
        assert model.compute_loss(images, labels, outputs).dtype == "float32"
        history = model.fit(images, labels, batch_size=4, verbose=0)
        assert np.isfinite(history.history["loss"][0])
        assert model.predict(images, verbose=0).dtype == np.float32
    finally:
        keras.mixed_precision.set_dtype_policy("float32")


# Runs in a fresh interpreter: the two logical CPUs must be configured before
# TensorFlow initialises its devices.
_MIRRORED_SCRIPT = textwrap.dedent("""
    import numpy as np, tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    from fgtf.models.heads import build_sam, build_sef
    from heads_helpers import random_images, tiny_backbone

    def train(strategy, build):
        keras.utils.set_random_seed(0)
        with strategy.scope():
            model = build()
            # eager: tracing three models would dominate the test's time
            model.compile(keras.optimizers.SGD(0.1), run_eagerly=True,
                          loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        images, labels = random_images()
        data = tf.data.Dataset.from_tensor_slices((images, labels)).batch(4)
        history = model.fit(data, epochs=1, verbose=0).history
        return [w.numpy() for w in model.weights], history

    mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    assert mirrored.num_replicas_in_sync == 2
    # no BN in the backbone, so both replicas together see what one device sees:
    # the per-replica SEF terms must be scaled like the compiled loss
    sef = lambda: build_sef(tiny_backbone(batch_norm=False), num_classes=5, groups=3)
    distributed, history = train(mirrored, sef)
    single, _ = train(tf.distribute.get_strategy(), sef)
    for a, b in zip(distributed, single):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    assert all(np.isfinite(v).all() for v in history.values())
    _, history = train(mirrored, lambda: build_sam(tiny_backbone(), num_classes=5, target="gradcam",
                                                   gap_warmup_steps=1))
    assert all(np.isfinite(v).all() for v in history.values()), history
    print("MIRRORED OK")
""")


def test_mirrored_strategy_two_cpus():
    tests_dir = Path(__file__).resolve().parent
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3",
           "PYTHONPATH": os.pathsep.join([str(tests_dir), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, "-c", _MIRRORED_SCRIPT], env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0 and "MIRRORED OK" in result.stdout, result.stderr[-3000:]

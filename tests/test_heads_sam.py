"""SAM / SAM-Bilinear head: the reference vectors of shared/spec/sam.md §12
(one training step of each original script, head level), the option
checks, and fit / save on a tiny backbone."""
import numpy as np
import pytest
import tensorflow as tf

import keras
from fgtf.models.heads import SAM, build_sam
from fgtf.models.heads.sam import (SKETCH_SEEDS, attention_kl, attention_log_distribution, count_sketch,
                                   script_defaults)
from heads_helpers import assert_relative, fit_and_round_trip, identity_backbone, random_images, tiny_backbone

CE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _reference_model(ref, **options):
    """SAM on the stored feature map with the stored weights and the stored
    constants (temperature, KL weight, switch step, map count)."""
    assert float(ref["bn_eps"]) == pytest.approx(1e-5) and float(ref["bn_momentum_torch"]) == pytest.approx(0.1)
    model = build_sam(identity_backbone(ref["input_nhwc"].shape[1:]), ref["cls_kernel"].shape[1],
                      attention_channels=ref["conv16_kernel_hwio"].shape[-1],
                      temperature=float(ref["temperature"]), kl_weight=float(ref["kl_weight"]),
                      **options)
    assert model.attention_bn.epsilon == pytest.approx(float(ref["bn_eps"]))
    assert 1.0 - model.attention_bn.momentum == pytest.approx(float(ref["bn_momentum_torch"]))
    model.attention_conv.set_weights([ref["conv16_kernel_hwio"]])
    model.attention_bn.set_weights([ref["bn16_gamma"], ref["bn16_beta"],
                                    ref["bn16_moving_mean_before"], ref["bn16_moving_var_before"]])
    if model.bilinear not in ("multi", "compact"):  # those classifiers take other features
        model.classifier.set_weights([ref["cls_kernel"], ref["cls_bias"]])
    model.compile(loss=CE)
    return model


@pytest.fixture(scope="module", params=["cam", "gradcam"])
def sam_step(request, heads_reference):
    """One training step of the original script for the `target`, head level:
    the training forward, the pseudo-attention, each loss term, and each
    term's gradients (one forward, so BN stats are updated exactly once)."""
    ref = heads_reference("sam")
    target = request.param
    model = _reference_model(ref, target=target,
                             gap_warmup_steps=int(ref["gradcam_switch_iter"]) if target == "gradcam" else None)
    inputs, labels = tf.Variable(ref["input_nhwc"]), ref["labels"]
    with tf.GradientTape(persistent=True) as tape:
        outputs = model(inputs, training=True)
        pseudo = model.pseudo_attention(inputs, labels, outputs)
        kl = attention_kl(tf.nn.relu(pseudo["raw"]), outputs["attention_map"], model.temperature)
        losses = {"ce_gap": CE(labels, outputs["gap_logits"]), "ce_bp": CE(labels, outputs["bilinear_logits"]),
                  f"kl_{target}": tf.reduce_sum(kl)}
        terms = model.loss_terms(inputs, labels, outputs)
        total = model.compute_loss(inputs, labels, outputs)
    variables = {"cls_kernel": model.classifier.kernel, "cls_bias": model.classifier.bias,
                 "conv16_kernel_hwio": model.attention_conv.kernel,
                 "bn16_gamma": model.attention_bn.gamma, "bn16_beta": model.attention_bn.beta,
                 "input": inputs}
    gradients = {name: tape.gradient(loss, variables) for name, loss in losses.items()}
    return {"ref": ref, "target": target, "model": model, "outputs": outputs, "pseudo": pseudo,
            "kl": kl, "losses": losses, "terms": terms, "total": total, "gradients": gradients}


@pytest.mark.reference
def test_training_forward_matches_reference(sam_step):
    ref, outputs, model = sam_step["ref"], sam_step["outputs"], sam_step["model"]
    assert_relative({
        "att16_nhwc": (outputs["attention"], ref["att16_nhwc"]),
        "pred_att": (outputs["attention_map"], ref["pred_att"]),
        "pred_att_prob": (np.exp(attention_log_distribution(outputs["attention_map"], model.temperature)),
                          ref["pred_att_prob"]),
        "gap_feat": (outputs["gap_features"], ref["gap_feat"]),
        "bp_mask": (outputs["mask"], ref["bp_mask"]),
        "bp_feat": (outputs["bilinear_features"], ref["bp_feat"]),
        "logits_gap": (outputs["gap_logits"], ref["logits_gap"]),
        "logits_bp": (outputs["bilinear_logits"], ref["logits_bp"]),
        "bn16_moving_mean_after": (model.attention_bn.moving_mean, ref["bn16_moving_mean_after"]),
        "bn16_moving_var_after": (model.attention_bn.moving_variance, ref["bn16_moving_var_after"]),
    })


@pytest.mark.reference
def test_test_path_matches_reference(sam_step):
    """`SAM.inference`: BN on the updated moving stats, batch-global mask,
    classifier on the SAM-Bilinear feature (both scripts)."""
    ref, model = sam_step["ref"], sam_step["model"]
    test = model.head(ref["input_nhwc"], training=False)
    assert_relative({"test_att16_nhwc": (test["attention"], ref["test_att16_nhwc"]),
                     "test_mask": (test["mask"], ref["test_mask"]),
                     "test_feat": (test["features"], ref["test_feat"]),
                     "test_logits": (test["logits"], ref["test_logits"]),
                     "predict": (model.predict(ref["input_nhwc"], verbose=0), ref["test_logits"])})


@pytest.mark.reference
def test_pseudo_attention_and_losses_match_reference(sam_step):
    ref, target, pseudo = sam_step["ref"], sam_step["target"], sam_step["pseudo"]
    model, losses = sam_step["model"], sam_step["losses"]
    attention = tf.nn.relu(pseudo["raw"])
    pairs = {f"{target}_raw": (pseudo["raw"], ref[f"{target}_raw"]),
             f"{target}_att": (attention, ref[f"{target}_att"]),
             f"{target}_target": (np.exp(attention_log_distribution(attention, model.temperature)),
                                  ref[f"{target}_target"]),
             f"kl_{target}_per_sample": (sam_step["kl"], ref[f"kl_{target}_per_sample"]),
             f"loss_kl_{target}": (losses[f"kl_{target}"], ref[f"loss_kl_{target}"]),
             f"loss_kl_{target} (weighted term)": (sam_step["terms"]["sam_attention"],
                                                   ref["kl_weight"] * ref[f"loss_kl_{target}"]),
             "loss_ce_gap": (losses["ce_gap"], ref["loss_ce_gap"]),
             "loss_ce_bp": (losses["ce_bp"], ref["loss_ce_bp"])}
    if target == "cam":
        pairs["loss_total_cam"] = (sam_step["total"], ref["loss_total_cam"])
    else:
        pairs.update({"gradcam_alpha": (pseudo["weights"], ref["gradcam_alpha"]),
                      "gc_eval_feat": (pseudo["eval"]["features"], ref["gc_eval_feat"]),
                      "gc_eval_logits": (pseudo["eval"]["logits"], ref["gc_eval_logits"]),
                      # step 1 <= switch: the classifier still trains on GAP
                      "loss_total_gradcam_early": (sam_step["total"], ref["loss_total_gradcam_early"])})
    assert_relative(pairs)


@pytest.mark.reference
def test_gradients_match_reference(sam_step):
    ref, target, gradients = sam_step["ref"], sam_step["target"], sam_step["gradients"]
    pairs = {}
    for term in ("ce_gap", "ce_bp", f"kl_{target}"):
        grads = gradients[term]
        pairs[f"grad_{term}_input_sum_c"] = (tf.reduce_sum(grads["input"], axis=-1), ref[f"grad_{term}_input_sum_c"])
        pairs[f"grad_{term}_input_sum_hw"] = (tf.reduce_sum(grads["input"], axis=(1, 2)),
                                              ref[f"grad_{term}_input_sum_hw"])
        if term.startswith("ce"):
            pairs.update({f"grad_{term}_{v}": (grads[v], ref[f"grad_{term}_{v}"]) for v in ("cls_kernel", "cls_bias")})
            # the mask is detached: no CE gradient reaches the attention branch
            assert all(grads[v] is None for v in ("conv16_kernel_hwio", "bn16_gamma", "bn16_beta"))
        else:
            pairs.update({f"grad_{term}_{v}": (grads[v], ref[f"grad_{term}_{v}"])
                          for v in ("conv16_kernel_hwio", "bn16_gamma", "bn16_beta")})
            # the target is detached: no KL gradient reaches the classifier
            assert grads["cls_kernel"] is None and grads["cls_bias"] is None
    assert_relative(pairs)


@pytest.mark.reference
def test_gradcam_total_after_the_switch(heads_reference):
    """`main_bp_gradcam.py` after iteration `gradcam_switch_iter`: CE on the
    SAM-Bilinear feature + weighted Grad-CAM KL."""
    ref = heads_reference("sam")
    switch = int(ref["gradcam_switch_iter"])
    model = _reference_model(ref, target="gradcam", gap_warmup_steps=switch)
    model.training_steps.assign(switch)
    outputs = model(ref["input_nhwc"], training=True)
    assert_relative({"loss_total_gradcam_late": (model.compute_loss(ref["input_nhwc"], ref["labels"], outputs),
                                                 ref["loss_total_gradcam_late"])})


@pytest.mark.reference
def test_multi_map_bilinear_feature(heads_reference):
    ref = heads_reference("sam")
    model = _reference_model(ref, bilinear="multi")
    outputs = model(ref["input_nhwc"], training=True)
    assert_relative({"bilinear16_feat": (outputs["bilinear_features"], ref["bilinear16_feat"])})


@pytest.mark.reference
def test_compact_bilinear_feature(heads_reference):
    """Compact bilinear pooling with the stored count sketches (which are the
    ones the seeded numpy draw gives), then BatchNorm in training mode."""
    ref = heads_reference("sam")
    model = _reference_model(ref, bilinear="compact", compact_dim=ref["cbp_feat"].shape[-1])
    for weight, key in zip(model.sketch, ("cbp_h1", "cbp_s1", "cbp_h2", "cbp_s2")):
        weight.assign(ref[key].astype(weight.dtype))
    outputs = model(ref["input_nhwc"], training=True)
    assert_relative({"cbp_feat": (outputs["sketch"], ref["cbp_feat"]),
                     "cbp_feat_bn": (outputs["bilinear_features"], ref["cbp_feat_bn"])})
    h1, s1 = count_sketch(model.channels, model.compact_dim, *SKETCH_SEEDS[:2])
    h2, s2 = count_sketch(model.attention_channels, model.compact_dim, *SKETCH_SEEDS[2:])
    for value, key in zip((h1, s1, h2, s2), ("cbp_h1", "cbp_s1", "cbp_h2", "cbp_s2")):
        np.testing.assert_array_equal(value, ref[key])


@pytest.mark.parametrize("bilinear", [None, "single", "multi", "compact"])
def test_gradcam_closed_form_equals_autodiff(bilinear):
    """The Grad-CAM weights are mean_hw d(sum_b logit_b[y_b]) / dF of the
    inference-mode pass with the attention held constant; check the closed
    form against a gradient tape, for every feature kind."""
    model = build_sam(tiny_backbone(), num_classes=5, target="gradcam", bilinear=bilinear)
    rng = np.random.default_rng(3)
    model.classifier.bias.assign(rng.normal(size=5).astype(np.float32))
    if bilinear == "compact":
        model.compact_bn.moving_variance.assign(rng.uniform(0.5, 2, model.compact_dim).astype(np.float32))
    images, labels = random_images(count=4, seed=4)
    pseudo = model.pseudo_attention(images, labels, model(images, training=True))

    eval_map = model.feature_map(images, training=False)
    held = {k: tf.stop_gradient(v) for k, v in model.head(eval_map, training=False).items()
            if k in ("attention", "attention_map")}
    with tf.GradientTape() as tape:
        tape.watch(eval_map)
        logits = model.classifier(model._features(model.test_feature, eval_map, held, training=False))
        chosen = tf.reduce_sum(tf.gather(logits, labels, axis=1, batch_dims=1))
    expected = tf.reduce_mean(tape.gradient(chosen, eval_map), axis=(1, 2))
    np.testing.assert_allclose(pseudo["weights"], expected, rtol=1e-4, atol=1e-5 * np.abs(expected).max())


@pytest.mark.parametrize("bilinear", ["multi", "compact"])
def test_cam_of_bilinear_features_sums_to_the_logit(bilinear):
    """For the multi-map and compact features the CAM is each position's
    contribution to the class logit: its sum over positions is W_y . f
    (times H*W for the multi-map mean; compact: before BN, BN scale folded in)."""
    model = build_sam(tiny_backbone(), num_classes=5, target="cam", bilinear=bilinear)
    images, labels = random_images(count=4, seed=5)
    outputs = model(images, training=True)
    cam = model.pseudo_attention(images, labels, outputs)["raw"]
    columns = tf.transpose(tf.gather(model.classifier.kernel, labels, axis=1))
    if bilinear == "multi":
        expected = tf.reduce_sum(columns * outputs["bilinear_features"], -1) * cam.shape[1] * cam.shape[2]
    else:
        bn = model.compact_bn
        scale = bn.gamma / tf.sqrt(bn.moving_variance + bn.epsilon)
        expected = tf.reduce_sum(columns * scale * outputs["sketch"], -1)
    np.testing.assert_allclose(tf.reduce_sum(cam, axis=(1, 2)), expected, rtol=1e-4, atol=1e-6)


def test_script_defaults():
    assert script_defaults("cam", "single") == {"train_feature": "gap", "test_feature": "bilinear",
                                                "gap_warmup_steps": 0}
    assert script_defaults("gradcam", "single") == {"train_feature": "bilinear", "test_feature": "bilinear",
                                                    "gap_warmup_steps": 800}
    assert script_defaults("cam", None)["test_feature"] == "gap"


def test_rejects_inconsistent_options():
    with pytest.raises(ValueError, match="needs bilinear"):
        build_sam(tiny_backbone(), 5, bilinear=None, test_feature="bilinear")
    with pytest.raises(ValueError, match="target"):
        build_sam(tiny_backbone(), 5, target="saliency")
    with pytest.raises(ValueError, match="cannot be 'gap'"):
        build_sam(tiny_backbone(), 5, bilinear="multi", train_feature="gap")


def test_per_sample_mask_spans_unit_interval_per_image():
    model = build_sam(tiny_backbone(), 5, mask_normalization="sample")
    mask = np.asarray(model.head(model.feature_map(np.random.default_rng(0).uniform(
        -1, 1, (3, 16, 16, 3)).astype(np.float32)), training=False)["mask"])
    np.testing.assert_allclose(mask.min(axis=(1, 2)), 0, atol=1e-6)
    np.testing.assert_allclose(mask.max(axis=(1, 2)), 1, atol=1e-5)


@pytest.mark.parametrize("options, run_eagerly", [
    ({"target": "cam", "bilinear": "single"}, False),
    ({"target": "gradcam", "bilinear": "single", "gap_warmup_steps": 1}, True),
    ({"target": "cam", "bilinear": "multi"}, True),
    ({"target": "gradcam", "bilinear": None, "gradcam_features": "train"}, True),
    ({"target": "gradcam", "bilinear": "compact", "compact_dim": 20}, True),
])
def test_fit_evaluate_predict_save_load(tmp_path, options, run_eagerly):
    model = build_sam(tiny_backbone(), num_classes=5, **options)
    fit_and_round_trip(model, tmp_path, run_eagerly=run_eagerly)
    assert int(model.training_steps.numpy()) == (2 if model.gap_warmup_steps else 0)
    maps = model.attention_maps(np.zeros((2, 16, 16, 3), np.float32))
    assert maps["predicted"].shape == maps["cam"].shape == (2, 8, 8)
    assert isinstance(model, SAM)

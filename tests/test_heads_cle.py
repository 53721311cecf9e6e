"""CLE-ViT: altered view and losses against the reference; the Keras wrapper in fit, save/load, mixed precision."""
import itertools

import keras
import numpy as np
import pytest
import tensorflow as tf

from fgtf.preprocessing.cle import (altered_view, cle_preprocessing, erase, erase_box_size, random_erase_boxes,
                                    random_tile_permutations)
from fgtf.losses import label_smoothed_cross_entropy
from fgtf.models.heads.base import same_label_mask
from fgtf.models.heads.cle import (LABEL_SMOOTHING, build_cle, cle_loss_weights, contrastive_loss,
                                   cosine_similarity_matrix)
from fgtf.optimization import AdamW, WarmupLinearDecay, cle_optimizer
from fgtf.models.swin import SwinTransformer


def _normalised_reference_image(ref):
    """ToTensor + Normalize of the stored uint8 image, HWC float32."""
    image = ref["aug_img_u8"].astype(np.float32) / np.float32(255.0)
    return (image - ref["aug_norm_mean"]) / ref["aug_norm_std"]


@pytest.mark.reference
def test_altered_view_matches_reference(heads_reference):
    ref = heads_reference("cle_vit")
    image = _normalised_reference_image(ref)
    top, left, box_h, box_w = (int(v) for v in ref["aug_erase_ijhw"])
    size = erase_box_size(image.shape[0], image.shape[1], ref["aug_erase_area_frac"], ref["aug_erase_log_aspect"])

    erased = erase(image[None], ref["aug_erase_ijhw"][None])[0].numpy()
    altered = altered_view(image, erase_boxes=ref["aug_erase_ijhw"], permutations=ref["aug_perm"]).numpy()

    assert (int(size[0]), int(size[1])) == (box_h, box_w)
    assert np.abs(erased - ref["aug_erased_hwc"]).max() <= 1e-6
    assert np.abs(altered - ref["aug_out_hwc"]).max() <= 1e-6


def test_random_altered_views_are_erased_tile_permutations():
    tf.random.set_seed(0)
    boxes = random_erase_boxes(500, 64, 48).numpy()
    top, left, box_h, box_w = boxes.T
    area, aspect = box_h * box_w / (64 * 48), box_h / np.maximum(box_w, 1)
    # rounding h and w lets the realised area and aspect stray a little outside the draws' ranges
    assert np.all((area > 0.13) & (area < 0.48)) and np.all((aspect > 0.27) & (aspect < 3.7))
    assert np.all(top + box_h <= 64) and np.all(left + box_w <= 48) and np.all((top >= 0) & (left >= 0))
    assert {tuple(p) for p in random_tile_permutations(500).numpy()} == {
        tuple(p) for p in itertools.permutations(range(4))}

    images = tf.random.normal((3, 8, 6, 2)) + 5.0    # no pixel is 0 before erasing
    altered = altered_view(images)
    for image, view in zip(images.numpy(), altered.numpy()):
        original_tiles = {image[r:r + 4, c:c + 3].tobytes() for r in (0, 4) for c in (0, 3)}
        erased = view == 0
        assert 0.1 < erased.mean() < 0.5
        view_tiles = [view[r:r + 4, c:c + 3] for r in (0, 4) for c in (0, 3)]
        untouched = [t for t in view_tiles if not np.any(t == 0)]
        assert all(t.tobytes() in original_tiles for t in untouched)


def test_cle_preprocessing_gives_two_reproducible_independent_views():
    encoded = tf.io.encode_jpeg(np.random.default_rng(0).integers(0, 256, (40, 40, 3), np.uint8))
    preprocessing = cle_preprocessing()
    base, altered = preprocessing(encoded, 16, True, tf.constant([3, 4]))
    again = preprocessing(encoded, 16, True, tf.constant([3, 4]))
    other_seed = preprocessing(encoded, 16, True, tf.constant([3, 5]))

    assert base.shape == altered.shape == (16, 16, 3)
    np.testing.assert_array_equal(altered, again[1])
    np.testing.assert_array_equal(base, again[0])
    assert np.any(altered.numpy() != other_seed[1].numpy())
    assert 0.1 < np.mean(np.all(altered.numpy() == 0, axis=-1)) < 0.5
    assert preprocessing(encoded, 16, False, None).shape == (16, 16, 3)


@pytest.mark.reference
def test_losses_match_reference(heads_reference):
    ref = heads_reference("cle_vit")
    features, logits, labels = ref["loss_feats"], ref["loss_logits"], ref["loss_labels"]
    both_labels = ref["loss_labels_cat"]
    half = len(labels)
    con = float(contrastive_loss(features, both_labels))
    positive_part = float(contrastive_loss(features, both_labels, margin=1.0))   # cos <= 1: no negative term
    results = {
        "loss_cos": cosine_similarity_matrix(features),
        "loss_pos_mask": same_label_mask(both_labels),
        "loss_ce_orig": np.mean(label_smoothed_cross_entropy(labels, logits[:half], LABEL_SMOOTHING)),
        "loss_ce_alt": np.mean(label_smoothed_cross_entropy(labels, logits[half:], LABEL_SMOOTHING)),
        "loss_ce_plain_orig": np.mean(label_smoothed_cross_entropy(labels, logits[:half], smoothing=0.0)),
        "loss_con": con,
        "loss_con_margin1": positive_part,
        "loss_con_pos_part": positive_part,
        "loss_con_neg_part": con - positive_part,
    }
    model = build_cle(_tiny_backbone(), num_classes=logits.shape[1])
    for name, dataset in (("w111", "stanford_cars"), ("cotton", "cotton"), ("gene", "soybean_gene")):
        np.testing.assert_array_equal(np.float32(cle_loss_weights(dataset)), ref[f"loss_weights_{name}"])
        model.loss_weights = tuple(ref[f"loss_weights_{name}"])
        results[f"loss_total_{name}"] = model.compute_loss(
            y=labels, y_pred={"logits": logits, "features": features})

    errors = {k: float(np.abs(np.asarray(v) - ref[k]).max()) for k, v in results.items()}
    assert max(errors.values()) <= 1e-5, errors
    assert cle_loss_weights("cub_200") == cle_loss_weights("soybean_gene")


def _tiny_backbone(input_shape=(16, 16, 3)):
    """Any fgtf-style backbone: one 4-D feature map."""
    inputs = keras.Input(input_shape)
    x = keras.layers.Conv2D(8, 3, strides=2, activation="relu", name="conv")(inputs)
    return keras.Model(inputs, keras.layers.Conv2D(6, 3, name="features")(x), name="tiny")


def _training_data(count=8, size=16, classes=3):
    rng = np.random.default_rng(0)
    images = rng.standard_normal((count, size, size, 3)).astype(np.float32)
    labels = rng.integers(0, classes, count)
    two_views = lambda batch, batch_labels: ((batch, altered_view(batch)), batch_labels)  # noqa: E731
    return tf.data.Dataset.from_tensor_slices((images, labels)).batch(4).map(two_views), images, labels


def test_fit_two_steps_and_evaluate_single_views():
    dataset, images, labels = _training_data()
    model = build_cle(_tiny_backbone(), num_classes=3, loss_weights=cle_loss_weights("cotton"))
    model.compile(optimizer=keras.optimizers.AdamW(1e-2), metrics=["accuracy"], jit_compile=False)
    before = [w.copy() for w in model.backbone.get_weights()]

    history = model.fit(dataset, epochs=1, shuffle=False, verbose=0)

    logs = {k: v[-1] for k, v in history.history.items()}
    assert {"loss", "accuracy", "ce_base", "ce_altered", "contrastive"} <= set(logs)
    assert np.isfinite(list(logs.values())).all()
    assert any(np.any(a != b) for a, b in zip(before, model.backbone.get_weights()))
    evaluated = model.evaluate(images, labels, batch_size=8, verbose=0, return_dict=True)
    assert set(evaluated) == {"loss", "accuracy"}
    plain_ce = np.mean(label_smoothed_cross_entropy(labels, model(images), 0.0))
    np.testing.assert_allclose(evaluated["loss"], plain_ce, rtol=1e-5)
    with pytest.raises(ValueError, match="without `loss`"):
        model.compile(optimizer="adam", loss="mse")


def test_pooled_swin_backbone_saves_and_loads(tmp_path):
    backbone = SwinTransformer(embed_dim=8, depths=(2,), num_heads=(2,), window_size=4, input_shape=(16, 16, 3),
                               include_top=False, pooling="avg")
    model = build_cle(backbone, num_classes=4, loss_weights=(1.0, 0.3, 0.5))
    model.head.set_weights([np.random.default_rng(1).standard_normal((8, 4)).astype(np.float32), np.ones(4)])
    pair = (np.random.default_rng(2).standard_normal((2, 16, 16, 3)).astype(np.float32),) * 2
    path = tmp_path / "cle.keras"

    model.save(path)
    loaded = keras.models.load_model(path)

    assert loaded.loss_weights == (1.0, 0.3, 0.5) and loaded.margin == 0.4
    expected, actual = model(pair), loaded(pair)
    assert expected["logits"].shape == (4, 4) and expected["features"].shape == (4, 8)
    np.testing.assert_allclose(actual["logits"], expected["logits"], atol=1e-5)
    np.testing.assert_allclose(loaded(pair[0]), expected["logits"][:2], atol=1e-5)
    optimizer = cle_optimizer(loaded, learning_rate=1e-3, steps_per_epoch=1)
    optimizer.build(loaded.trainable_variables)
    decayed = [v.path for v in loaded.trainable_variables if optimizer.decays(v)]
    assert decayed and not any("relative_position_bias_table" in path for path in decayed)


def test_compiled_model_saves_and_resumes_with_its_optimizer(tmp_path):
    dataset = _training_data()[0].cache()   # the same random views in every pass
    model = build_cle(_tiny_backbone(), num_classes=3)
    model.compile(optimizer=cle_optimizer(model, 1e-3, steps_per_epoch=2, epochs=4, warmup_epochs=1),
                  metrics=["accuracy"])
    model.fit(dataset, epochs=1, shuffle=False, verbose=0)
    model.save(tmp_path / "cle.keras")
    loaded = keras.models.load_model(tmp_path / "cle.keras")

    assert isinstance(loaded.optimizer, AdamW)
    assert loaded.optimizer.learning_rate_multipliers == {"head/kernel": 5.0, "head/bias": 5.0}
    assert int(loaded.optimizer.iterations) == int(model.optimizer.iterations) > 0
    for saved, restored in zip(model.optimizer.variables, loaded.optimizer.variables):
        np.testing.assert_array_equal(np.asarray(restored), np.asarray(saved))
    for trained in (model, loaded):
        trained.fit(dataset, epochs=1, shuffle=False, verbose=0)
    for a, b in zip(model.weights, loaded.weights):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-5, atol=1e-6)


def test_mixed_precision_and_distribution_strategy():
    dataset, _, _ = _training_data()
    policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        with tf.distribute.MirroredStrategy(["/cpu:0"]).scope():
            model = build_cle(_tiny_backbone(), num_classes=3)
            model.compile(optimizer=cle_optimizer(model, 1e-3, steps_per_epoch=2, epochs=2, warmup_epochs=1))
        assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
        history = model.fit(dataset, epochs=1, shuffle=False, verbose=0)
        (views, labels), = dataset.take(1)
        outputs = model(views)
        loss = model.compute_loss(y=labels, y_pred=outputs)
    finally:
        keras.config.set_dtype_policy(policy)
    assert outputs["logits"].dtype == "float16" and loss.dtype == "float32"
    assert np.isfinite(history.history["loss"]).all()
    assert np.abs(np.asarray(model.head.kernel)).max() > 0   # the zero-initialised head group trained


def test_backbone_with_two_outputs_is_refused():
    inputs = keras.Input((8, 8, 3))
    two = keras.Model(inputs, [keras.layers.Conv2D(2, 1)(inputs), keras.layers.Conv2D(2, 1)(inputs)])
    with pytest.raises(ValueError, match="one"):
        build_cle(two, num_classes=2)


def test_cle_optimizer_schedule_and_weight_decay_exclusions():
    model = build_cle(_tiny_backbone(), num_classes=3)
    optimizer = cle_optimizer(model, learning_rate=2.34375e-5, steps_per_epoch=10, epochs=200, warmup_epochs=20)
    start, peak = 2.34375e-8, 2.34375e-5
    np.testing.assert_allclose(float(optimizer.learning_rate), start, rtol=1e-6)   # at iteration 0
    schedule = WarmupLinearDecay(peak, start, warmup_steps=200, total_steps=2000)
    # spec §5: update g runs at lr(g - 1); updates 0 and 1 both at the warm-up start
    expected = {0: start, 1: start, 2: start + (peak - start) / 200, 201: peak,
                1100: peak - 0.99 * peak * 899 / 1800, 2000: peak - 0.99 * peak * 1799 / 1800}
    for step, lr in expected.items():
        np.testing.assert_allclose(float(schedule(step)), lr, rtol=1e-5)


def test_cle_optimizer_steps_equal_pytorch_adamw_with_a_5x_head_group():
    """Spec §5: AdamW over two parameter groups, backbone at lr(t) and the head
    (kernel and bias) at a 5x peak from the same warm-up start; decoupled
    decay 0.05 at each group's rate, none on 1-D variables."""
    model = build_cle(_tiny_backbone(), num_classes=3)
    rng = np.random.default_rng(0)
    for variable in model.trainable_variables:  # the head starts at zero; give every weight something to decay
        variable.assign(rng.standard_normal(variable.shape).astype(np.float32))
    peak, steps_per_epoch, warmup_epochs, epochs, weight_decay = 1e-2, 2, 2, 5, 0.05
    optimizer = cle_optimizer(model, learning_rate=peak, steps_per_epoch=steps_per_epoch, epochs=epochs,
                              warmup_epochs=warmup_epochs, weight_decay=weight_decay)
    variables = model.trainable_variables
    expected = {v.path: np.asarray(v).astype(np.float64) for v in variables}
    moments = {v.path: (np.zeros(v.shape), np.zeros(v.shape)) for v in variables}
    decayed = {"conv/kernel", "features/kernel", "head/kernel"}
    for step in range(epochs * steps_per_epoch):
        gradients = [0.1 * rng.standard_normal(v.shape).astype(np.float32) for v in variables]
        assert np.sqrt(sum(np.sum(g ** 2) for g in gradients)) < 5.0   # below the clipping norm
        optimizer.apply(gradients, variables)
        for variable, gradient in zip(variables, gradients):
            group_peak = 5 * peak if variable.path.startswith("head/") else peak
            lr = float(WarmupLinearDecay(group_peak, peak / 1000, warmup_epochs * steps_per_epoch,
                                         epochs * steps_per_epoch)(step))
            p, (m, v) = expected[variable.path], moments[variable.path]
            if variable.path in decayed:
                p *= 1 - lr * weight_decay
            m[...] = 0.9 * m + 0.1 * gradient
            v[...] = 0.999 * v + 0.001 * gradient.astype(np.float64) ** 2
            m_hat, v_hat = m / (1 - 0.9 ** (step + 1)), v / (1 - 0.999 ** (step + 1))
            p -= lr * m_hat / (np.sqrt(v_hat) + 1e-8)
    for variable in variables:
        np.testing.assert_allclose(np.asarray(variable), expected[variable.path], rtol=1e-5, atol=1e-6,
                                   err_msg=variable.path)

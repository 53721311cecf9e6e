"""fgtf.models.swin: the block against the CLE-ViT reference, small models, .pth loading."""
import keras
import numpy as np
import pytest

from fgtf.errors import InputSizeError

from fgtf.models import feature_endpoint, get_builder
from fgtf.models.swin import (DropPath, SwinBlock, SwinTiny, SwinTransformer, relative_position_index,
                              shifted_window_mask)
from fgtf.models.weights import load_torch_weights, torch_key
from pth_writer import write_pth
from fgtf.errors import UserError

# A Swin small enough for CPU tests: 32x32 input -> 8x8 tokens (window 4,
# shifted) -> 4x4 tokens (window = grid, so no shift).
TINY = dict(embed_dim=8, depths=(2, 2), num_heads=(2, 4), window_size=4, input_shape=(32, 32, 3))


def _reference_block(ref, shift):
    """A SwinBlock of the reference's config with its stored weights."""
    channels, heads, window, grid, _ = (int(v) for v in ref["swin_cfg"])
    block = SwinBlock(heads, window_size=window, shift_size=shift)
    block.build((None, grid, grid, channels))
    for layer, prefix in ((block.norm1, "swin_norm1"), (block.norm2, "swin_norm2")):
        layer.set_weights([ref[prefix + "_gamma"], ref[prefix + "_beta"]])
    for layer, prefix in ((block.attn.qkv, "swin_qkv"), (block.attn.proj, "swin_proj"),
                          (block.fc1, "swin_fc1"), (block.fc2, "swin_fc2")):
        layer.set_weights([ref[prefix + "_kernel"], ref[prefix + "_bias"]])
    block.attn.relative_position_bias_table.assign(ref["swin_rpb_table"])
    return block


@pytest.mark.reference
def test_block_matches_reference(heads_reference):
    ref = heads_reference("cle_vit")
    channels, _, window, grid, shift = (int(v) for v in ref["swin_cfg"])
    tokens = ref["swin_x_in"]
    x = tokens.reshape(tokens.shape[0], grid, grid, channels)

    np.testing.assert_array_equal(relative_position_index(window), ref["swin_rel_index"])
    np.testing.assert_array_equal(shifted_window_mask(grid, grid, window, shift), ref["swin_attn_mask_shift3"])
    errors = {}
    for block_shift, key in ((0, "swin_out_shift0"), (shift, f"swin_out_shift{shift}")):
        block = _reference_block(ref, block_shift)
        out = np.asarray(block(x)).reshape(tokens.shape)
        errors[key] = np.abs(out - ref[key]).max()
        if block_shift:
            windows = np.asarray(block.attention_windows(x))
            errors["swin_attn_windows_shift3"] = np.abs(windows - ref["swin_attn_windows_shift3"]).max()
    assert max(errors.values()) <= 1e-4, errors


def test_tiny_swin_shapes_windows_and_input_sizes():
    model = SwinTransformer(**TINY, classes=5, classifier_activation=None)
    assert model(np.zeros((2, 32, 32, 3), np.float32)).shape == (2, 5)
    blocks = {name: model.get_layer(name) for name in ("layers.0.blocks.0", "layers.0.blocks.1", "layers.1.blocks.1")}
    assert [(b.window, b.shift) for b in blocks.values()] == [(4, 0), (4, 2), (4, 0)]
    assert model.get_layer("norm").output.shape == (None, 4, 4, 16)

    larger = SwinTransformer(**{**TINY, "input_shape": (64, 64, 3)}, include_top=False, pooling="avg")
    assert larger.output.shape == (None, 16)
    with pytest.raises(ValueError, match="not a multiple of the 4x4 window"):
        SwinTransformer(**{**TINY, "input_shape": (40, 40, 3)})
    # a size mistake by its type (not its message): what the commands turn into one --image_size line
    with pytest.raises(InputSizeError):
        SwinTransformer(**{**TINY, "input_shape": (40, 40, 3)})


def test_drop_path_drops_whole_samples_in_training_only():
    layer = DropPath(0.5, seed=0)
    x = np.ones((64, 2, 2, 3), np.float32)
    np.testing.assert_array_equal(layer(x), x)
    per_sample = np.asarray(layer(x, training=True)).reshape(64, -1)
    assert set(np.unique(per_sample)) == {0.0, 2.0}
    assert np.all(per_sample.min(axis=1) == per_sample.max(axis=1))


def test_mixed_precision_matches_float32(tiny_swin):
    images = np.random.default_rng(0).standard_normal((2, 32, 32, 3)).astype(np.float32)
    policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        half = SwinTransformer(**TINY, classes=5, classifier_activation=None)
    finally:
        keras.config.set_dtype_policy(policy)
    half.set_weights(tiny_swin.get_weights())
    logits = half(images)
    assert logits.dtype == "float16"
    np.testing.assert_allclose(np.asarray(logits, np.float32), tiny_swin(images), atol=2e-2)


def test_registry_names():
    assert get_builder("swin_tiny") is SwinTiny
    assert feature_endpoint("swin_base") == "norm"


def _official_state_dict(model):
    """The model's weights as an official checkpoint lays them out (torch
    layouts, with the index and mask buffers)."""
    state = {}
    for variable in model.weights:
        key, _ = torch_key(variable.path)
        value = np.asarray(variable)
        if variable.path.endswith("kernel"):
            value = value.transpose(3, 2, 0, 1) if value.ndim == 4 else value.T   # (out, in[, kh, kw])
        state[key] = np.ascontiguousarray(value)
    for layer in model.layers:
        if isinstance(layer, SwinBlock):
            state[f"{layer.name}.attn.relative_position_index"] = relative_position_index(layer.window).astype(np.int64)
            if layer.shift:
                state[f"{layer.name}.attn_mask"] = shifted_window_mask(*layer.grid, layer.window, layer.shift)
    return state


@pytest.fixture(scope="module")
def tiny_swin():
    """A tiny Swin with a 5-class head and random weights."""
    return SwinTransformer(**TINY, classes=5, classifier_activation=None)


def test_official_key_layout(tiny_swin):
    keys = {torch_key(v.path)[0] for v in tiny_swin.weights}
    expected = {"patch_embed.proj.weight", "patch_embed.proj.bias", "patch_embed.norm.weight",
                "layers.0.blocks.1.norm1.weight", "layers.0.blocks.1.attn.qkv.weight",
                "layers.0.blocks.1.attn.proj.bias", "layers.0.blocks.1.attn.relative_position_bias_table",
                "layers.0.blocks.1.mlp.fc1.weight", "layers.0.blocks.1.mlp.fc2.bias",
                "layers.0.downsample.norm.weight", "layers.0.downsample.reduction.weight",
                "norm.weight", "norm.bias", "head.weight", "head.bias"}
    assert expected <= keys
    assert not any(k.startswith("layers.1.downsample") or k.endswith("reduction.bias") for k in keys)


def test_loads_official_pth_and_zeroes_a_foreign_head(tiny_swin, tmp_path):
    images = np.random.default_rng(0).standard_normal((2, 32, 32, 3)).astype(np.float32)
    path = tmp_path / "swin.pth"
    state = _official_state_dict(tiny_swin)
    write_pth(path, {"model": state})

    model = SwinTransformer(**TINY, classes=5, classifier_activation=None, weights=str(path))
    np.testing.assert_allclose(model(images), tiny_swin(images), atol=1e-5)

    # an ImageNet-22k-like head of another class count is replaced by zeros
    state["head.weight"], state["head.bias"] = np.ones((7, 16), np.float32), np.ones(7, np.float32)
    write_pth(path, {"model": state})
    load_torch_weights(model, path)
    assert not any(np.any(w) for w in model.get_layer("head").get_weights())

    # a model without the top ignores the head
    features = SwinTransformer(**TINY, include_top=False, weights=str(path))
    expected = keras.Model(tiny_swin.input, tiny_swin.get_layer("norm").output)(images)
    np.testing.assert_allclose(features(images), expected, atol=1e-5)


def test_checkpoint_of_another_architecture_is_one_clear_error(tiny_swin, tmp_path):
    state = _official_state_dict(tiny_swin)
    del state["norm.weight"]
    state["layers.0.blocks.0.attn.relative_position_bias_table"] = np.zeros((9, 2), np.float32)
    state["pos_embed"] = np.zeros((1, 4), np.float32)
    path = tmp_path / "other.pth"
    write_pth(path, state)
    with pytest.raises(UserError, match=r"1 shape mismatches .*1 weights missing.*norm.weight.*1 unused.*pos_embed"):
        load_torch_weights(tiny_swin, path)

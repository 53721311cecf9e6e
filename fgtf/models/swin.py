"""Swin Transformer (Liu et al., ICCV 2021) in Keras 3, loading the official
`.pth` checkpoints without torch.

    model = fgtf.models.swin.SwinBase(
        include_top=False, pooling="avg", input_shape=(448, 448, 3),
        weights="checkpoints/swin_base_patch4_window7_224_22k.pth")
    features = model(images)          # (batch, 1024): final LayerNorm, token mean

Patch 4, window 7, blocks alternate plain and shifted windows (shift 3, with
the -100 attention mask), relative position bias, no absolute position
embedding, LayerNorm epsilon 1e-5, exact-erf GELU. Any input whose token grid
(input / 4, halved per stage) is a multiple of the window at every stage works,
e.g. 224 and 448; a stage whose grid is no larger than the window uses one
window of the grid's size and no shift, as the original does.

Layer names follow the official checkpoint keys with the variable's Keras path
read as a dotted key: layer `layers.1.blocks.0` holds sublayers `norm1`,
`attn` (`qkv`, `proj`, table `relative_position_bias_table`), `norm2`,
`mlp.fc1`, `mlp.fc2`; `layers.{s}.downsample` holds `norm` and `reduction`;
then `patch_embed.proj`, `patch_embed.norm`, the final `norm` (the feature end
point, a (batch, h, w, C) map) and `head`. Images are expected normalised with
the ImageNet mean and std, as the official weights were trained.
"""
import math

import keras
import numpy as np
from keras import layers, ops

from fgtf.errors import InputSizeError
from fgtf.models.common import finish_model, global_pool, model_input, predictions

LAYER_NORM_EPSILON = 1e-5
# Logit added between tokens of different regions of a shifted window (not -inf).
MASK_VALUE = -100.0

SWIN_CONFIGS = {
    "tiny": dict(embed_dim=96, depths=(2, 2, 6, 2), num_heads=(3, 6, 12, 24)),
    "small": dict(embed_dim=96, depths=(2, 2, 18, 2), num_heads=(3, 6, 12, 24)),
    "base": dict(embed_dim=128, depths=(2, 2, 18, 2), num_heads=(4, 8, 16, 32)),
}

FEATURE_ENDPOINT = "norm"


def SwinTiny(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
             classes=1000, classifier_activation="softmax", drop_path_rate=0.0, name="swin_tiny"):
    """Swin-T (embed 96, depths 2-2-6-2, heads 3-6-12-24). Arguments as `SwinTransformer`."""
    return SwinTransformer(**SWIN_CONFIGS["tiny"], include_top=include_top, weights=weights,
                           input_tensor=input_tensor, input_shape=input_shape, pooling=pooling,
                           classes=classes, classifier_activation=classifier_activation,
                           drop_path_rate=drop_path_rate, name=name)


def SwinSmall(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
              classes=1000, classifier_activation="softmax", drop_path_rate=0.0, name="swin_small"):
    """Swin-S (embed 96, depths 2-2-18-2, heads 3-6-12-24). Arguments as `SwinTransformer`."""
    return SwinTransformer(**SWIN_CONFIGS["small"], include_top=include_top, weights=weights,
                           input_tensor=input_tensor, input_shape=input_shape, pooling=pooling,
                           classes=classes, classifier_activation=classifier_activation,
                           drop_path_rate=drop_path_rate, name=name)


def SwinBase(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
             classes=1000, classifier_activation="softmax", drop_path_rate=0.0, name="swin_base"):
    """Swin-B (embed 128, depths 2-2-18-2, heads 4-8-16-32), the CLE-ViT
    backbone (which trains it with drop_path_rate=0.5 at 448x448).
    Arguments as `SwinTransformer`."""
    return SwinTransformer(**SWIN_CONFIGS["base"], include_top=include_top, weights=weights,
                           input_tensor=input_tensor, input_shape=input_shape, pooling=pooling,
                           classes=classes, classifier_activation=classifier_activation,
                           drop_path_rate=drop_path_rate, name=name)


def SwinTransformer(embed_dim, depths, num_heads, window_size=7, patch_size=4, mlp_ratio=4.0,
                    drop_path_rate=0.0, include_top=True, weights=None, input_tensor=None,
                    input_shape=None, pooling=None, classes=1000, classifier_activation="softmax",
                    name="swin_transformer"):
    """Build a Swin Transformer of any size.

    embed_dim, depths, num_heads: channels of stage 1 (doubled per stage),
        blocks per stage and attention heads per stage.
    window_size, patch_size, mlp_ratio: 7, 4 and 4 in every official model.
    drop_path_rate: stochastic depth of the last block; block k of n uses
        `linspace(0, drop_path_rate, n)[k]`.
    include_top: end with token mean + Dense `head` (`classes` outputs, then
        `classifier_activation`; None gives logits).
    weights: None, an official Swin `.pth` (see `fgtf.models.weights.load_torch_weights`; a head of
        another class count is zeroed) or a Keras `.weights.h5`.
    input_shape: (height, width, 3), static; default (224, 224, 3).
    pooling: without the top, None returns the (batch, H/32, W/32, C) map of
        the final LayerNorm, 'avg' its token mean, 'max' its max.
    Returns a functional `keras.Model` named `name`.
    """
    if len(depths) != len(num_heads):
        raise ValueError(f"depths {depths} and num_heads {num_heads} need one entry per stage")
    inputs = model_input(input_shape, input_tensor, default_size=224,
                         min_size=patch_size * 2 ** (len(depths) - 1))
    x = layers.Conv2D(embed_dim, patch_size, strides=patch_size, name="patch_embed.proj")(inputs)
    x = layers.LayerNormalization(epsilon=LAYER_NORM_EPSILON, name="patch_embed.norm")(x)
    block_rates = np.linspace(0.0, drop_path_rate, sum(depths))
    block_index = 0
    for stage, (depth, heads) in enumerate(zip(depths, num_heads)):
        for block in range(depth):
            x = SwinBlock(heads, window_size=window_size,
                          shift_size=window_size // 2 if block % 2 else 0,
                          mlp_ratio=mlp_ratio, drop_path_rate=float(block_rates[block_index]),
                          name=f"layers.{stage}.blocks.{block}")(x)
            block_index += 1
        if stage < len(depths) - 1:
            x = PatchMerging(name=f"layers.{stage}.downsample")(x)
    x = layers.LayerNormalization(epsilon=LAYER_NORM_EPSILON, name=FEATURE_ENDPOINT)(x)
    if include_top:
        x = layers.GlobalAveragePooling2D(name="avgpool")(x)
        x = layers.Dense(classes, name="head")(x)
        x = predictions(x, classifier_activation)
    else:
        x = global_pool(x, pooling)
    return finish_model(inputs, x, name=name, weights=weights)


def relative_position_index(window_size):
    """(M², M²) int32: `(r_i - r_j + M - 1) * (2M - 1) + (c_i - c_j + M - 1)` for
    tokens i, j of a window in row-major order; indexes the bias table rows."""
    rows, cols = np.divmod(np.arange(window_size * window_size), window_size)
    d_rows = rows[:, None] - rows[None, :] + window_size - 1
    d_cols = cols[:, None] - cols[None, :] + window_size - 1
    return (d_rows * (2 * window_size - 1) + d_cols).astype(np.int32)


def shifted_window_mask(height, width, window_size, shift_size):
    """(windows, M², M²) float32 attention mask of a shifted block on a
    height x width token grid: 0 between tokens of the same one of the 9
    rolled regions, -100 otherwise. Windows in row-major order."""
    labels = np.zeros((height, width), np.float32)
    bands = (slice(0, -window_size), slice(-window_size, -shift_size), slice(-shift_size, None))
    region = 0
    for row_band in bands:
        for col_band in bands:
            labels[row_band, col_band] = region
            region += 1
    windows = _partition(labels[None, :, :, None], window_size)[..., 0]   # (windows, M²)
    different = windows[:, :, None] != windows[:, None, :]
    return np.where(different, MASK_VALUE, 0.0).astype(np.float32)


@keras.saving.register_keras_serializable(package="fgtf")
class SwinBlock(layers.Layer):
    """One Swin Transformer block on a (batch, H, W, C) token map:
    `x + DropPath(W-MSA or SW-MSA(LN1(x)))`, then `+ DropPath(MLP(LN2(x)))`.

    shift_size > 0 makes it a shifted-window block (the official models use
    window_size // 2 for every second block). If min(H, W) <= window_size the
    window shrinks to the grid and the shift is dropped. H and W must be
    static multiples of the (effective) window size.
    """

    def __init__(self, num_heads, window_size=7, shift_size=0, mlp_ratio=4.0, drop_path_rate=0.0, **kwargs):
        super().__init__(**kwargs)
        self.num_heads = num_heads
        self.window_size = window_size
        self.shift_size = shift_size
        self.mlp_ratio = mlp_ratio
        self.drop_path_rate = drop_path_rate
        self.norm1 = layers.LayerNormalization(epsilon=LAYER_NORM_EPSILON, name="norm1")
        self.attn = WindowAttention(num_heads, name="attn")
        self.norm2 = layers.LayerNormalization(epsilon=LAYER_NORM_EPSILON, name="norm2")
        self.fc1 = None
        self.fc2 = None
        self.drop_path = DropPath(drop_path_rate, name="drop_path")

    def build(self, input_shape):
        _, height, width, channels = input_shape
        if height is None or width is None:
            raise ValueError(f"{self.name} needs a static token grid; give the model a fixed input_shape")
        self.window, self.shift = self.window_size, self.shift_size
        if min(height, width) <= self.window_size:
            self.window, self.shift = min(height, width), 0
        if height % self.window or width % self.window:
            raise InputSizeError(f"{self.name}: the {height}x{width} token grid is not a multiple of the "
                             f"{self.window}x{self.window} window; choose an input size whose grid is a "
                             "multiple of the window at every stage (e.g. 224 or 448 for patch 4, window 7)")
        self.grid = (height, width)
        self.attention_mask = (shifted_window_mask(height, width, self.window, self.shift)
                               if self.shift else None)
        hidden = int(channels * self.mlp_ratio)
        self.fc1 = layers.Dense(hidden, name="mlp.fc1")
        self.fc2 = layers.Dense(channels, name="mlp.fc2")
        self.norm1.build(input_shape)
        self.attn.build((None, self.window * self.window, channels))
        self.norm2.build(input_shape)
        self.fc1.build(input_shape)
        self.fc2.build((*input_shape[:-1], hidden))

    def attention_windows(self, x):
        """Windows after attention and `proj`, before they are put back:
        (batch * windows, M², C), windows batch-major then row-major."""
        h = self.norm1(x)
        if self.shift:
            h = ops.roll(h, shift=(-self.shift, -self.shift), axis=(1, 2))
        return self.attn(_partition(h, self.window), attention_mask=self.attention_mask)

    def call(self, x, training=None):
        h = _merge_windows(self.attention_windows(x), self.window, *self.grid)
        if self.shift:
            h = ops.roll(h, shift=(self.shift, self.shift), axis=(1, 2))
        x = x + self.drop_path(h, training=training)
        h = self.fc2(keras.activations.gelu(self.fc1(self.norm2(x)), approximate=False))
        return x + self.drop_path(h, training=training)

    def get_config(self):
        return {**super().get_config(), "num_heads": self.num_heads, "window_size": self.window_size,
                "shift_size": self.shift_size, "mlp_ratio": self.mlp_ratio,
                "drop_path_rate": self.drop_path_rate}


@keras.saving.register_keras_serializable(package="fgtf")
class WindowAttention(layers.Layer):
    """Multi-head self-attention inside windows with a learned relative
    position bias: (windows, M², C) -> (windows, M², C).

    `qkv` lays its 3C outputs out as [q | k | v], each head-major; q is scaled
    by head_dim^-0.5 before `q kᵀ`; the bias of heads h for tokens (i, j) is
    `relative_position_bias_table[relative_position_index(M)[i, j], h]`. The
    softmax runs in float32 under mixed precision.
    """

    def __init__(self, num_heads, **kwargs):
        super().__init__(**kwargs)
        self.num_heads = num_heads
        self.qkv = None
        self.proj = None

    def build(self, input_shape):
        tokens, channels = input_shape[1], input_shape[2]
        self.window_size = math.isqrt(tokens)
        if self.window_size ** 2 != tokens:
            raise ValueError(f"{self.name}: {tokens} tokens per window do not form a square window")
        if channels % self.num_heads:
            raise ValueError(f"{self.name}: {channels} channels do not split into {self.num_heads} heads")
        self.relative_position_bias_table = self.add_weight(
            shape=((2 * self.window_size - 1) ** 2, self.num_heads),
            initializer=keras.initializers.TruncatedNormal(stddev=0.02),
            name="relative_position_bias_table")
        self.position_index = relative_position_index(self.window_size).reshape(-1)
        self.qkv = layers.Dense(3 * channels, name="qkv")
        self.proj = layers.Dense(channels, name="proj")
        self.qkv.build(input_shape)
        self.proj.build(input_shape)

    def call(self, windows, attention_mask=None):
        tokens, channels = windows.shape[1], windows.shape[2]
        head_dim = channels // self.num_heads
        qkv = ops.reshape(self.qkv(windows), (-1, tokens, 3, self.num_heads, head_dim))
        qkv = ops.transpose(qkv, (2, 0, 3, 1, 4))                     # (3, windows, heads, M², d)
        q, k, v = qkv[0] * ops.cast(head_dim ** -0.5, qkv.dtype), qkv[1], qkv[2]
        logits = ops.matmul(q, ops.transpose(k, (0, 1, 3, 2)))        # (windows, heads, M², M²)
        bias = ops.take(self.relative_position_bias_table, self.position_index, axis=0)
        bias = ops.transpose(ops.reshape(bias, (tokens, tokens, self.num_heads)), (2, 0, 1))
        logits = ops.cast(logits, "float32") + ops.cast(bias, "float32")[None]
        if attention_mask is not None:
            # windows of one image are consecutive: (images, nW, heads, M², M²)
            num_windows = attention_mask.shape[0]
            logits = ops.reshape(logits, (-1, num_windows, self.num_heads, tokens, tokens))
            logits = logits + ops.cast(attention_mask, "float32")[None, :, None]
            logits = ops.reshape(logits, (-1, self.num_heads, tokens, tokens))
        weights = ops.cast(ops.softmax(logits, axis=-1), v.dtype)
        out = ops.transpose(ops.matmul(weights, v), (0, 2, 1, 3))     # (windows, M², heads, d)
        return self.proj(ops.reshape(out, (-1, tokens, channels)))

    def get_config(self):
        return {**super().get_config(), "num_heads": self.num_heads}


@keras.saving.register_keras_serializable(package="fgtf")
class PatchMerging(layers.Layer):
    """(batch, H, W, C) -> (batch, H/2, W/2, 2C): concatenate the 2x2
    neighbours in the order (even row, even col), (odd, even), (even, odd),
    (odd, odd), then LayerNorm `norm` and bias-free Dense `reduction`."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.norm = layers.LayerNormalization(epsilon=LAYER_NORM_EPSILON, name="norm")
        self.reduction = None

    def build(self, input_shape):
        _, height, width, channels = input_shape
        if height is None or width is None or height % 2 or width % 2:
            raise ValueError(f"{self.name}: patch merging needs an even static token grid, got {height}x{width}")
        self.reduction = layers.Dense(2 * channels, use_bias=False, name="reduction")
        self.norm.build((*input_shape[:-1], 4 * channels))
        self.reduction.build((*input_shape[:-1], 4 * channels))

    def call(self, x):
        x = ops.concatenate([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], axis=-1)
        return self.reduction(self.norm(x))


@keras.saving.register_keras_serializable(package="fgtf")
class DropPath(layers.Layer):
    """Stochastic depth: in training, zero a whole sample's branch with
    probability `rate` and scale the kept ones by 1 / (1 - rate)."""

    def __init__(self, rate=0.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.rate = rate
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed) if rate > 0 else None

    def call(self, x, training=None):
        if not training or self.rate == 0:
            return x
        keep = 1.0 - self.rate
        shape = (ops.shape(x)[0],) + (1,) * (len(x.shape) - 1)
        kept = ops.floor(keep + keras.random.uniform(shape, seed=self.seed_generator))
        return x * ops.cast(kept / keep, x.dtype)

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}


def _partition(x, window):
    """(batch, H, W, C) -> (batch * windows, window², C); numpy or tensors."""
    module = np if isinstance(x, np.ndarray) else ops
    _, height, width, channels = x.shape
    x = module.reshape(x, (-1, height // window, window, width // window, window, channels))
    x = module.transpose(x, (0, 1, 3, 2, 4, 5))
    return module.reshape(x, (-1, window * window, channels))


def _merge_windows(windows, window, height, width):
    """Inverse of `_partition`: (batch * windows, window², C) -> (batch, H, W, C)."""
    channels = windows.shape[-1]
    x = ops.reshape(windows, (-1, height // window, width // window, window, window, channels))
    x = ops.transpose(x, (0, 1, 3, 2, 4, 5))
    return ops.reshape(x, (-1, height, width, channels))


def swin_of_state_dict(state):
    """The registry name of the official Swin (`swin_tiny`, `_small`, `_base`)
    whose state dict `state` (names -> arrays) is, by its embedding width and
    blocks per stage; None when it is not one."""
    if "patch_embed.proj.weight" not in state:
        return None
    embed_dim = int(state["patch_embed.proj.weight"].shape[0])
    depths = []
    while any(key.startswith(f"layers.{len(depths)}.") for key in state):
        stage = f"layers.{len(depths)}.blocks."
        depths.append(len({key[len(stage):].split(".")[0] for key in state if key.startswith(stage)}))
    return next((f"swin_{size}" for size, config in SWIN_CONFIGS.items()
                 if config["embed_dim"] == embed_dim and tuple(config["depths"]) == tuple(depths)), None)


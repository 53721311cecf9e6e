"""CLE-ViT's altered view ("self-shuffling and masking") as TensorFlow ops for
the input pipeline.

The altered view of a normalised image is: one random rectangle covering
15-45 % of the area (aspect ratio 0.3-3.3, up to 10 tries, unchanged if all
fail) set to 0, then the image cut into a 2x2 grid of tiles and the tiles
randomly permuted (identity allowed). Erasing comes before shuffling, as in
the original code, so the box is usually cut by the tile seams.

With `fgtf.input_pipeline.make_dataset`, per example and reproducible from
the pipeline's seed (CLE-ViT augments the two views independently: each its
own crop, flip and colour; the altered view is erased and shuffled after):

    train = make_dataset(source, "train", PipelineSettings(
        image_size=448, batch_size=12, training=True, preprocessing=fgtf.preprocessing.cle.cle_preprocessing()))
    # -> ((base, altered), labels) batches, what fgtf.models.heads.build_cle's model trains on;
    # with training=False the same preprocessing gives plain single-view batches.

`altered_view` also works on a batch of images (drawing from TF's global
random state unless given a seed). Images are float (height, width,
channels) or (batch, height, width, channels), already normalised: the
erased box takes the value 0, the mean colour after normalisation (the
middle grey of fgtf's [-1, 1] inception preprocessing). Height and width
must be even (multiples of the grid). Every random draw can be given
instead (`erase_boxes`, `permutations`), which is how the port is checked
against the reference.
"""
import math

import tensorflow as tf

from fgtf.preprocessing.inception import preprocess_image

ERASE_AREA_RANGE = (0.15, 0.45)
ERASE_ASPECT_RANGE = (0.3, 3.3)
ERASE_ATTEMPTS = 10
SHUFFLE_GRID = 2


def cle_preprocessing(preprocess=preprocess_image):
    """A `preprocessing` callable for `fgtf.input_pipeline.make_dataset`:
    `fn(encoded, image_size, training, seed)`. In training it returns
    `(base, altered)`: two independent augmentations of the image by
    `preprocess` (default: the inception preprocessing), the second
    turned into the altered view; every draw comes from the example's
    stateless `seed`. In evaluation it returns `preprocess`'s single view."""

    def two_views(encoded, image_size, training, seed=None):
        if not training:
            return preprocess(encoded, image_size, training, seed)
        base_seed, second_seed, altered_seed = tf.unstack(
            tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=3))
        base = preprocess(encoded, image_size, training, base_seed)
        second = preprocess(encoded, image_size, training, second_seed)
        return base, altered_view(second, seed=altered_seed)

    return two_views


def altered_view(images, erase_boxes=None, permutations=None, grid=SHUFFLE_GRID, fill_value=0.0, seed=None):
    """Erase one box, then shuffle the grid x grid tiles.

    images: (H, W, C) or (batch, H, W, C) float, normalised.
    erase_boxes: int (4,) or (batch, 4) rows `[top, left, height, width]`
        (height 0 = no erase); drawn by `random_erase_boxes` when None.
    permutations: int (grid²,) or (batch, grid²); output tile k (row-major)
        is input tile `permutation[k]`; drawn uniformly when None.
    seed: optional stateless seed (int tensor [2]) for the draws; None uses
        TF's global random state.
    Returns the altered images, same shape and dtype.
    """
    images = tf.convert_to_tensor(images)
    single = images.shape.rank == 3
    batch = images[None] if single else images
    count, height, width = tf.shape(batch)[0], tf.shape(batch)[1], tf.shape(batch)[2]
    box_seed, permutation_seed = (None, None) if seed is None else _split(seed, 2)
    if erase_boxes is None:
        erase_boxes = random_erase_boxes(count, height, width, seed=box_seed)
    if permutations is None:
        permutations = random_tile_permutations(count, grid, seed=permutation_seed)
    erase_boxes = tf.reshape(tf.cast(erase_boxes, tf.int32), (-1, 4))
    permutations = tf.reshape(tf.cast(permutations, tf.int32), (-1, grid * grid))
    out = grid_shuffle(erase(batch, erase_boxes, fill_value), permutations, grid)
    return out[0] if single else out


def random_erase_boxes(count, height, width, area_range=ERASE_AREA_RANGE,
                       aspect_range=ERASE_ASPECT_RANGE, attempts=ERASE_ATTEMPTS, seed=None):
    """(count, 4) int32 boxes `[top, left, height, width]` drawn as torchvision's
    `RandomErasing(p=1, scale=area_range, ratio=aspect_range)`: per try an area
    fraction ~ U(area_range) and log aspect (rows/cols) ~ U(log aspect_range),
    h = round(sqrt(A·frac·aspect)), w = round(sqrt(A·frac/aspect)); the first
    try with h < height and w < width is placed uniformly; no accepted try
    gives an empty box (0 height and width). `seed`: optional stateless seed [2]."""
    fraction_seed, aspect_seed, top_seed, left_seed = (None,) * 4 if seed is None else _split(seed, 4)
    fraction = _uniform((count, attempts), fraction_seed, *area_range)
    log_aspect = _uniform((count, attempts), aspect_seed, math.log(aspect_range[0]), math.log(aspect_range[1]))
    box_h, box_w = erase_box_size(height, width, fraction, log_aspect)
    fits = tf.logical_and(box_h < height, box_w < width)
    first = tf.argmax(tf.cast(fits, tf.int32), axis=1, output_type=tf.int32)
    found = tf.cast(tf.reduce_any(fits, axis=1), tf.int32)
    box_h = tf.gather(box_h, first, batch_dims=1) * found
    box_w = tf.gather(box_w, first, batch_dims=1) * found
    top = _uniform_int(height - box_h + 1, top_seed)
    left = _uniform_int(width - box_w + 1, left_seed)
    return tf.stack([top, left, box_h, box_w], axis=1)


def erase_box_size(height, width, area_fraction, log_aspect):
    """Box (rows, cols) int32 of one erase try on a height x width image:
    round(sqrt(A·frac·e^la)), round(sqrt(A·frac/e^la)), A = height·width
    in double precision and rounding half to even, as torchvision's Python
    arithmetic does."""
    area = tf.cast(height * width, tf.float64) * tf.cast(area_fraction, tf.float64)
    aspect = tf.exp(tf.cast(log_aspect, tf.float64))
    return (tf.cast(tf.round(tf.sqrt(area * aspect)), tf.int32),
            tf.cast(tf.round(tf.sqrt(area / aspect)), tf.int32))


def random_tile_permutations(count, grid=SHUFFLE_GRID, seed=None):
    """(count, grid²) int32 uniformly random permutations of the tile indices.
    `seed`: optional stateless seed [2]."""
    return tf.cast(tf.argsort(_uniform((count, grid * grid), seed), axis=1), tf.int32)


def erase(images, boxes, fill_value=0.0):
    """Set `images[b, top:top+h, left:left+w, :]` to `fill_value` for each
    row `[top, left, h, w]` of `boxes` (batch, 4). images: (batch, H, W, C)."""
    rows = tf.range(tf.shape(images)[1])[None, :]
    cols = tf.range(tf.shape(images)[2])[None, :]
    top, left, box_h, box_w = (boxes[:, k:k + 1] for k in range(4))
    in_rows = tf.logical_and(rows >= top, rows < top + box_h)          # (batch, H)
    in_cols = tf.logical_and(cols >= left, cols < left + box_w)        # (batch, W)
    inside = tf.logical_and(in_rows[:, :, None], in_cols[:, None, :])[..., None]
    return tf.where(inside, tf.cast(fill_value, images.dtype), images)


def grid_shuffle(images, permutations, grid=SHUFFLE_GRID):
    """Cut (batch, H, W, C) images into grid x grid tiles numbered row-major and
    put input tile `permutations[b, k]` at output position k. H and W must be
    multiples of `grid`."""
    height, width, channels = (images.shape[k] for k in (1, 2, 3))
    if height is not None and width is not None and (height % grid or width % grid):
        raise ValueError(f"grid shuffle needs height and width divisible by {grid}, got {height}x{width}")
    shape = tf.shape(images)
    tile_h, tile_w = shape[1] // grid, shape[2] // grid
    tiles = tf.reshape(images, (-1, grid, tile_h, grid, tile_w, shape[3]))
    tiles = tf.reshape(tf.transpose(tiles, (0, 1, 3, 2, 4, 5)), (-1, grid * grid, tile_h, tile_w, shape[3]))
    tiles = tf.gather(tiles, permutations, batch_dims=1)
    tiles = tf.transpose(tf.reshape(tiles, (-1, grid, grid, tile_h, tile_w, shape[3])), (0, 1, 3, 2, 4, 5))
    out = tf.reshape(tiles, shape)
    return tf.ensure_shape(out, (None, height, width, channels))


def _uniform(shape, seed, minval=0.0, maxval=1.0):
    """float32 U[minval, maxval): stateless from `seed` [2], or TF's global state."""
    if seed is None:
        return tf.random.uniform(shape, minval, maxval)
    return tf.random.stateless_uniform(shape, seed, minval, maxval)


def _uniform_int(upper, seed):
    """Uniform integers in [0, upper) elementwise, for an int32 tensor `upper` >= 1."""
    draw = tf.floor(_uniform(tf.shape(upper), seed) * tf.cast(upper, tf.float32))
    return tf.minimum(tf.cast(draw, tf.int32), upper - 1)


def _split(seed, count):
    return tf.unstack(tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=count))

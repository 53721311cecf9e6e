"""The PyTorch seeds' own input pipelines (their torchvision transforms of
PIL images) as TensorFlow ops, at any output side S.

At each seed's own side (SEF and CLE-ViT 448, SAM and SimTrans 224) they
are the seed's code; at another side every resize scales with S (`scaled`):

* sef: train squash to int(S 600/448) square, random S crop, flip; test
  squash, centre S crop;
* sef_squash: train squash to S, flip; test squash to S;
* sam: train squash to R = int(S 256/224) (bicubic), RandomResizedCrop(S,
  0.08-1), flip, RandAugmentMC(2, 10) + cutout; test squash, crop S at
  round((R - S - 1) / 2);
* cle: train RandomResizedCrop(S, 0.67-1), brightness x U(0.7, 1.3), rotation
  U(+-15 deg), flip; test shorter side int(S 256/224) (bicubic), centre S crop;
* simtrans: train rotation U(+-30 deg), RandomResizedCrop(S, 0.5-1), flip;
  test shorter side int(S 255/224), centre S crop.

Each `*_train(image, size, draws)` takes the decoded 8-bit image and its
random draws (what `*_draws(seed, height, width, size)` gives; a test gives
its own, which is how the pipelines are checked against torchvision), and
returns the transformed image, normalised with the ImageNet mean and std;
`*_test(image, size)` likewise, and `sam_views` gives SAM's ten test views.
Crops after a resize compute only the crop, and every pipeline ends in one
fused pass (`torchvision_ops.finish`): what PIL would compute, faster.
"""
import tensorflow as tf

from fgtf.preprocessing import randaugment
from fgtf.preprocessing.torchvision_ops import (center_window, crop, finish, flip, normalize, random_crop_corner,
                                                resize, resize_shorter_side_center_crop, resized_crop,
                                                resized_crop_box, rotate)

SEF_SIZE, SEF_RESIZE = 448, 600
SAM_SIZE, SAM_RESIZE = 224, 256
CLE_SIZE, CLE_RESIZE = 448, 512
SIMTRANS_SIZE, SIMTRANS_RESIZE = 224, 255
SAM_CROP_AREA = (0.08, 1.0)
CLE_CROP_AREA = (0.67, 1.0)
SIMTRANS_CROP_AREA = (0.5, 1.0)
CLE_BRIGHTNESS = 0.3
CLE_ROTATION = 15.0
SIMTRANS_ROTATION = 30.0


def scaled(size, seed_resize, seed_size):
    """The resize side for output side `size` of a seed that resizes to
    `seed_resize` for `seed_size` (int(size * seed_resize / seed_size)):
    the seed's own at its size."""
    return int(size * seed_resize / seed_size)


# --- SEF: squash 600 -> random crop 448 -> flip; test: squash 600 -> centre crop 448 ------------------------

def sef_draws(seed, height, width, size):
    corner_seed, flip_seed = _split(seed, 2)
    side = scaled(size, SEF_RESIZE, SEF_SIZE)
    return {"corner": tf.stack(random_crop_corner(side, side, size, corner_seed)), "flip": _coin(flip_seed)}


def sef_train(image, size, draws):
    side = scaled(size, SEF_RESIZE, SEF_SIZE)
    image = resize(image, side, side, window=(draws["corner"][0], draws["corner"][1], size, size))
    return finish(image, draws["flip"], 1.0)


def sef_test(image, size):
    side = scaled(size, SEF_RESIZE, SEF_SIZE)
    return _unflipped(resize(image, side, side, window=center_window(side, side, size)))


# --- SEF on Cars and Dogs: squash 448 -> flip; test: squash 448 -------------------------------------------

def sef_squash_draws(seed, height, width, size):
    return {"flip": _coin(seed)}


def sef_squash_train(image, size, draws):
    return finish(resize(image, size, size), draws["flip"], 1.0)


def sef_squash_test(image, size):
    return _unflipped(resize(image, size, size))


# --- SAM: squash 256 (bicubic) -> RandomResizedCrop 224 -> flip -> RandAugmentMC(2, 10) + cutout ----------

def sam_draws(seed, height, width, size):
    box_seed, flip_seed, augment_seed = _split(seed, 3)
    side = scaled(size, SAM_RESIZE, SAM_SIZE)
    return {"box": tf.stack(resized_crop_box(side, side, SAM_CROP_AREA, seed=box_seed)), "flip": _coin(flip_seed),
            "augment": randaugment.draw(augment_seed)}


def sam_train(image, size, draws):
    side = scaled(size, SAM_RESIZE, SAM_SIZE)
    # SAM's ResizeImage calls PIL's resize without a filter: bicubic since Pillow 7; only the box is computed
    box = resize(image, side, side, "bicubic", window=tf.unstack(draws["box"]))
    return _augment_and_finish(resize(box, size, size), draws["flip"], draws["augment"])


@tf.function(jit_compile=True)
def _augment_and_finish(image, flipped, augment_draws):
    """SAM's flip, RandAugmentMC and normalisation, XLA-compiled (the image's size is the output's)."""
    return normalize(randaugment.rand_augment(flip(image, flipped), draws=augment_draws))


def sam_test(image, size):
    side = scaled(size, SAM_RESIZE, SAM_SIZE)
    offset = sam_view_offsets(side, size)[-1]
    return _unflipped(resize(image, side, side, "bicubic", window=(offset, offset, size, size)))


def sam_views(image, size):
    """SAM's ten test views (10, size, size, 3): the squashed image flipped,
    then as it is, each cropped at the corners (0, 0), (L, L), (L, 0),
    (0, L) and the centre (c, c) as (x, y), L = R - S - 1 (the last row
    and column are never seen), c = round(L / 2) (PIL rounds the float box)."""
    side = scaled(size, SAM_RESIZE, SAM_SIZE)
    resized = resize(image, side, side, "bicubic")
    last, centre = sam_view_offsets(side, size)[1:]
    corners = ((0, 0), (last, last), (last, 0), (0, last), (centre, centre))
    views = [crop(source, y, x, size, size)
             for source in (tf.reverse(resized, axis=[1]), resized) for x, y in corners]
    return normalize(tf.stack(views))


def sam_view_offsets(side, size):
    """(first, last, centre) crop offsets of SAM's test views of a `side` square."""
    last = side - size - 1
    return 0, last, round(last / 2)


# --- CLE-ViT: RandomResizedCrop 448 (0.67-1) -> brightness -> rotation +-15 -> flip; test: 512 bicubic -> 448

def cle_draws(seed, height, width, size):
    box_seed, brightness_seed, angle_seed, flip_seed = _split(seed, 4)
    return {"box": tf.stack(resized_crop_box(height, width, CLE_CROP_AREA, seed=box_seed)),
            "brightness": tf.random.stateless_uniform([], brightness_seed, 1 - CLE_BRIGHTNESS, 1 + CLE_BRIGHTNESS),
            "angle": tf.random.stateless_uniform([], angle_seed, -CLE_ROTATION, CLE_ROTATION),
            "flip": _coin(flip_seed)}


def cle_train(image, size, draws):
    # brightness commutes with the rotation (black corners stay black): `finish` applies it with the flip
    image = rotate(resized_crop(image, tf.unstack(draws["box"]), size), draws["angle"])
    return finish(image, draws["flip"], draws["brightness"])


def cle_test(image, size):
    return _unflipped(resize_shorter_side_center_crop(image, scaled(size, CLE_RESIZE, CLE_SIZE), size, "bicubic"))


# --- SimTrans: rotation +-30 -> RandomResizedCrop 224 (0.5-1) -> flip; test: shorter side 255 -> centre 224 --

def simtrans_draws(seed, height, width, size):
    angle_seed, box_seed, flip_seed = _split(seed, 3)
    # the rotation keeps the image's size, so the crop box is drawn on it
    return {"angle": tf.random.stateless_uniform([], angle_seed, -SIMTRANS_ROTATION, SIMTRANS_ROTATION),
            "box": tf.stack(resized_crop_box(height, width, SIMTRANS_CROP_AREA, seed=box_seed)),
            "flip": _coin(flip_seed)}


def simtrans_train(image, size, draws):
    # only the crop box of the rotated image is computed
    box = rotate(image, draws["angle"], window=tf.unstack(draws["box"]))
    return finish(resize(box, size, size), draws["flip"], 1.0)


def simtrans_test(image, size):
    return _unflipped(resize_shorter_side_center_crop(image, scaled(size, SIMTRANS_RESIZE, SIMTRANS_SIZE), size))


def _unflipped(image):
    return finish(image, tf.constant(False), 1.0)


def _coin(seed):
    """RandomHorizontalFlip's draw: true with probability 1/2."""
    return tf.random.stateless_uniform([], seed) < 0.5


def _split(seed, count):
    return tf.unstack(tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=count))

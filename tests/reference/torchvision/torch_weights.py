"""Deterministic, non-trivial weights for a torch state dict, numpy only.

A listing (`<net>_state_dict.txt`, written by make_resnet_reference.py from
torchvision's own `state_dict()`) names every entry, one per line
`key<TAB>d0,d1,...<TAB>dtype`, in the state dict's order. `state_dict(listing)`
gives the same arrays on every machine: the value of entry `key` of shape `s`
is drawn from `numpy.random.default_rng(zlib.crc32(key.encode()))` by its role:

* `num_batches_tracked`: `rng.integers(1, 10**6)` (int64, shape ());
* `running_var`: `rng.uniform(0.5, 2.0, s)`; `running_mean`: `rng.normal(0, 0.2, s)`;
* batch-norm `weight` (rank 1): `rng.uniform(0.5, 1.5, s)`; any `bias`: `rng.normal(0, 0.1, s)`;
* conv weights (rank 4): `rng.normal(0, 1, s) * sqrt(2 / fan_in)`, fan_in = in * kh * kw;
* linear weights (rank 2): `rng.normal(0, 1, s) * sqrt(1 / fan_in)`;

floats cast to float32. The batch-norm statistics are far from torch's
zero / one defaults, so a port that ignored them would not match.
"""
import collections
import zlib

import numpy as np


def read_listing(path):
    """[(key, shape, dtype name)] of a `<net>_state_dict.txt`."""
    listing = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            key, shape, dtype = line.rstrip("\n").split("\t")
            listing.append((key, tuple(int(d) for d in shape.split(",") if d), dtype))
    return listing


def state_dict(listing):
    """OrderedDict key -> numpy array of every entry of `listing`."""
    return collections.OrderedDict((key, value(key, shape)) for key, shape, _ in listing)


def value(key, shape):
    rng = np.random.default_rng(zlib.crc32(key.encode()))
    if key.endswith("num_batches_tracked"):
        return np.array(rng.integers(1, 10**6), np.int64)
    if key.endswith("running_var"):
        drawn = rng.uniform(0.5, 2.0, shape)
    elif key.endswith("running_mean"):
        drawn = rng.normal(0.0, 0.2, shape)
    elif key.endswith("bias"):
        drawn = rng.normal(0.0, 0.1, shape)
    elif len(shape) == 1:
        drawn = rng.uniform(0.5, 1.5, shape)
    else:
        fan_in = int(np.prod(shape[1:]))
        drawn = rng.normal(0.0, 1.0, shape) * np.sqrt((2.0 if len(shape) == 4 else 1.0) / fan_in)
    return drawn.astype(np.float32)


def reference_images(seed, size, count=2):
    """The normalised input images (count, size, size, 3) float32, NHWC."""
    return np.random.default_rng(seed).standard_normal((count, size, size, 3)).astype(np.float32)

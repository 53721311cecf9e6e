"""Atomic file output: a reader never sees a half-written file
(`atomic_path` is tfrecord_tools's, shared by every writer)."""
import json

import numpy as np

from tfrecord_tools.atomic import atomic_path  # noqa: F401  (re-exported for fgtf's writers)


def write_json(path, data):
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2, sort_keys=True, default=_jsonable)
        handle.write("\n")


def write_text(path, text):
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text)


def _jsonable(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")

"""Read PyTorch `.pth` checkpoints as numpy arrays, without torch and without
running pickled code.

    state = fgtf.models.pth.load_pth("checkpoints/swin_base_patch4_window7_224_22k.pth")
    state["model"]["patch_embed.proj.weight"].shape   # (128, 3, 4, 4), np.float32

A `.pth` written by `torch.save` (torch >= 1.6) is a zip archive
`<archive>/data.pkl` + `<archive>/data/<key>` (+ `version`, `byteorder`). The
pickle holds the container structure (dicts, lists, numbers, strings); each
tensor is a call `torch._utils._rebuild_tensor_v2(storage, offset, size,
stride, ...)` whose storage is a persistent id
`('storage', torch.<Type>Storage, key, location, numel)` pointing at the raw
bytes of `data/<key>`. `load_pth` unpickles with `find_class` restricted to
exactly those names and rebuilds every tensor as a numpy array; any other
global (a class, `os.system`, `builtins.eval`, ...) raises `UnsafePickleError`
before anything is called.
"""
import collections
import io
import os
import pickle
import zipfile

import numpy as np

from tfrecord_tools.cli import UserError

# torch storage class name -> numpy dtype of its elements (little-endian on disk
# unless the archive's `byteorder` record says "big").
STORAGE_DTYPES = {
    "DoubleStorage": np.float64,
    "FloatStorage": np.float32,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class UnsafePickleError(UserError):
    """The checkpoint's pickle names a global that is not a tensor-rebuild
    function, a storage type or OrderedDict, so it is refused unread."""


def load_pth(path):
    """Read the `torch.save` zip archive at `path`.

    Returns the pickled object with every tensor replaced by a numpy array of
    its dtype and shape (bfloat16 storages are widened to float32, which is
    exact). Official checkpoints are usually `{"model": OrderedDict(name ->
    array), ...}`.
    Raises UserError for a missing file, a file that is not a zip `.pth`
    (e.g. the pre-1.6 legacy format: re-save it with a current torch), or a
    truncated storage; UnsafePickleError for any global outside the allowed set.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise UserError(f"checkpoint {path} not found")
    if not zipfile.is_zipfile(path):
        raise UserError(f"{path} is not a zip-format .pth file (torch >= 1.6); "
                        "re-save it with torch.save(..., _use_new_zipfile_serialization=True)")
    with zipfile.ZipFile(path) as archive:
        pickles = [n for n in archive.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
        if len(pickles) != 1:
            raise UserError(f"{path} holds {len(pickles)} data.pkl records; a torch.save archive holds one")
        prefix = pickles[0][: -len("data.pkl")]
        byteorder = "little"
        if prefix + "byteorder" in archive.namelist():
            byteorder = archive.read(prefix + "byteorder").decode().strip()
        unpickler = _RestrictedUnpickler(io.BytesIO(archive.read(pickles[0])), archive, prefix, byteorder, path)
        return unpickler.load()


class _StorageType:
    """What `find_class('torch', '<Type>Storage')` returns: the element dtype."""

    def __init__(self, name):
        self.name = name
        self.dtype = np.dtype(np.float32 if name == "BFloat16Storage" else STORAGE_DTYPES[name])


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file, archive, prefix, byteorder, path):
        super().__init__(file)
        self._archive = archive
        self._prefix = prefix
        self._byteorder = byteorder
        self._path = path
        self._storages = {}

    def find_class(self, module, name):
        if (module, name) in (("torch._utils", "_rebuild_tensor_v2"), ("torch._utils", "_rebuild_tensor")):
            return _rebuild_tensor
        if (module, name) == ("torch._utils", "_rebuild_parameter"):
            return _rebuild_parameter
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if module == "torch" and (name in STORAGE_DTYPES or name == "BFloat16Storage"):
            return _StorageType(name)
        raise UnsafePickleError(f"{self._path}: refusing to load global {module}.{name}; "
                                "only tensors, storages and OrderedDicts are read from .pth files")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"
                and isinstance(pid[1], _StorageType)):
            raise UnsafePickleError(f"{self._path}: unexpected persistent id {pid!r}")
        _, storage_type, key, _location, numel = pid
        if key not in self._storages:
            self._storages[key] = self._read_storage(storage_type, str(key), int(numel))
        return self._storages[key]

    def _read_storage(self, storage_type, key, numel):
        name = f"{self._prefix}data/{key}"
        try:
            raw = self._archive.read(name)
        except KeyError:
            raise UserError(f"{self._path}: storage record {name} is missing") from None
        endian = ">" if self._byteorder == "big" else "<"
        if storage_type.name == "BFloat16Storage":
            # bfloat16 is the top half of a float32: widen exactly.
            halves = _frombuffer(raw, np.dtype(endian + "u2"), numel, name, self._path)
            return (halves.astype(np.uint32) << 16).view(np.float32)
        dtype = storage_type.dtype.newbyteorder(endian) if storage_type.dtype.itemsize > 1 else storage_type.dtype
        return _frombuffer(raw, dtype, numel, name, self._path).astype(storage_type.dtype.newbyteorder("="))


def _frombuffer(raw, dtype, numel, name, path):
    if len(raw) < numel * dtype.itemsize:
        raise UserError(f"{path}: storage {name} holds {len(raw)} bytes, {numel} elements need "
                        f"{numel * dtype.itemsize}")
    return np.frombuffer(raw, dtype=dtype, count=numel)


def _rebuild_tensor(storage, storage_offset, size, stride, *_ignored):
    """numpy twin of torch._utils._rebuild_tensor_v2: the strided view of
    `storage` (elements) at `storage_offset`, copied into its own array."""
    size, stride = tuple(int(s) for s in size), tuple(int(s) for s in stride)
    if not isinstance(storage, np.ndarray) or len(size) != len(stride):
        raise UnsafePickleError("malformed tensor record in .pth pickle")
    if any(s == 0 for s in size):
        return np.zeros(size, storage.dtype)
    last = storage_offset + sum((n - 1) * s for n, s in zip(size, stride))
    if storage_offset < 0 or min(stride, default=0) < 0 or last >= storage.size:
        raise UserError(f"tensor of size {size} stride {stride} at offset {storage_offset} "
                        f"lies outside its storage of {storage.size} elements")
    item = storage.itemsize
    view = np.lib.stride_tricks.as_strided(storage[storage_offset:], shape=size,
                                           strides=tuple(s * item for s in stride), writeable=False)
    return np.array(view)


def _rebuild_parameter(data, _requires_grad, _backward_hooks):
    """torch._utils._rebuild_parameter: an nn.Parameter is just its data here."""
    return data

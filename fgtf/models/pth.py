"""Read PyTorch `.pth` checkpoints as numpy arrays, without torch and without
running pickled code.

    state = fgtf.models.pth.load_pth("checkpoints/swin_base_patch4_window7_224_22k.pth")
    state["model"]["patch_embed.proj.weight"].shape   # (128, 3, 4, 4), np.float32

Both formats of `torch.save` are read:

* the zip archive (torch >= 1.6): `<archive>/data.pkl` + `<archive>/data/<key>`
  (+ `version`, `byteorder`). Each storage is a persistent id
  `('storage', torch.<Type>Storage, key, location, numel)` pointing at the raw
  bytes of `data/<key>`;
* the legacy stream (torch < 1.6, and `_use_new_zipfile_serialization=False`,
  the format of torchvision's own ImageNet files): five records one after the
  other in one file: a pickled magic number, the protocol version 1001, a
  pickled dict of system facts (`little_endian`), the pickled object, whose
  storages are persistent ids `('storage', torch.<Type>Storage, key,
  location, numel, view)` (view: None, or `(view_key, offset, size)` in
  elements of a slice of the storage, as torch < 1.0 wrote them), the
  pickled sorted list of storage keys, then per key in that order its
  element count (int64) and its raw elements.

The pickle holds the container structure (dicts, lists, numbers, strings);
each tensor is a call `torch._utils._rebuild_tensor_v2(storage, offset, size,
stride, ...)`. `load_pth` unpickles with `find_class` restricted to exactly
those names and rebuilds every tensor as a numpy array (honouring its size,
stride and storage offset, so views load as torch would); any other global
(a class, `os.system`, `builtins.eval`, ...) raises `UnsafePickleError`
before anything is called, in either format.
"""
from __future__ import annotations
import collections
import io
import os
import pickle
import zipfile

import numpy as np

from fgtf.errors import UserError

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
# The first two records of a legacy-format file (torch.serialization's MAGIC_NUMBER, PROTOCOL_VERSION).
LEGACY_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL_VERSION = 1001


class UnsafePickleError(UserError):
    """The checkpoint's pickle names a global that is not a tensor-rebuild
    function, a storage type or OrderedDict, so it is refused unread."""


def load_pth(path: str | os.PathLike) -> object:
    """Read the `torch.save` file at `path`, zip archive or legacy stream.

    Returns the pickled object with every tensor replaced by a numpy array of
    its dtype and shape (bfloat16 storages are widened to float32, which is
    exact). Official checkpoints are usually `{"model": OrderedDict(name ->
    array), ...}`, torchvision's the OrderedDict itself.
    Raises UserError for a missing file, a file of neither format, or a
    truncated storage; UnsafePickleError for any global outside the allowed set.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise UserError(f"checkpoint {path} not found")
    if zipfile.is_zipfile(path):
        return _load_zip(path)
    with open(path, "rb") as handle:
        data = handle.read()
    try:
        return _load_legacy(data, path)
    except UserError:
        raise
    except Exception as error:  # a damaged stream fails inside pickle in many ways
        raise UserError(f"{path} is not a readable torch checkpoint ({type(error).__name__}: {error})") from None


def _load_zip(path):
    with zipfile.ZipFile(path) as archive:
        pickles = [n for n in archive.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
        if len(pickles) != 1:
            raise UserError(f"{path} holds {len(pickles)} data.pkl records; a torch.save archive holds one")
        prefix = pickles[0][: -len("data.pkl")]
        byteorder = "little"
        if prefix + "byteorder" in archive.namelist():
            byteorder = archive.read(prefix + "byteorder").decode().strip()

        def read_storage(storage_type, key, numel):
            name = f"{prefix}data/{key}"
            try:
                raw = archive.read(name)
            except KeyError:
                raise UserError(f"{path}: storage record {name} is missing") from None
            return _storage_array(raw, storage_type, numel, byteorder, f"{path}: storage {name}")

        return _RestrictedUnpickler(io.BytesIO(archive.read(pickles[0])), path, read_storage, (5,)).load()


def _load_legacy(data, path):
    """The object of a legacy-format file's bytes `data`. Its storages follow
    the object's pickle, so the pickle is read twice: once to learn each
    storage's type and size (tensors are not built), once to build them."""
    stream = io.BytesIO(data)
    try:
        magic = _plain_load(stream, path)
    except UserError:
        raise
    except Exception:  # not a pickle at all
        magic = None
    if magic != LEGACY_MAGIC_NUMBER:
        raise UserError(f"{path} is not a torch checkpoint (neither a torch.save zip archive nor the legacy format)")
    protocol = _plain_load(stream, path)
    if protocol != LEGACY_PROTOCOL_VERSION:
        raise UserError(f"{path}: legacy torch format of protocol {protocol!r}; only {LEGACY_PROTOCOL_VERSION} "
                        f"is read")
    system = _plain_load(stream, path)
    byteorder = "little" if not isinstance(system, dict) or system.get("little_endian", True) else "big"
    object_start = stream.tell()

    storages = {}  # key -> (storage type, numel), filled by the first reading

    def note_storage(storage_type, key, numel):
        storages[key] = (storage_type, numel)
        return _PENDING

    _RestrictedUnpickler(stream, path, note_storage, (6,)).load()
    keys = _plain_load(stream, path)
    if not isinstance(keys, list) or set(map(str, keys)) != set(storages):
        raise UserError(f"{path}: the list of storage records does not match the storages the object uses")
    arrays, offset = {}, stream.tell()
    for key in map(str, keys):
        storage_type, numel = storages[key]
        if offset + 8 > len(data):
            raise UserError(f"{path}: storage {key} is missing (the file ends at byte {len(data)})")
        count = int(np.frombuffer(data, np.dtype("<i8" if byteorder == "little" else ">i8"), 1, offset)[0])
        if count != numel:
            raise UserError(f"{path}: storage {key} holds {count} elements, its tensors say {numel}")
        nbytes = numel * storage_type.file_itemsize
        arrays[key] = _storage_array(data[offset + 8:offset + 8 + nbytes], storage_type, numel, byteorder,
                                     f"{path}: storage {key}")
        offset += 8 + nbytes
    stream.seek(object_start)
    return _RestrictedUnpickler(stream, path, lambda storage_type, key, numel: arrays[key], (6,)).load()


def _plain_load(stream, path):
    """One pickle of plain data (no globals, no persistent ids) from `stream`."""
    return _RestrictedUnpickler(stream, path, None, ()).load()


class _StorageType:
    """What `find_class('torch', '<Type>Storage')` returns: the element dtype."""

    def __init__(self, name):
        self.name = name
        self.dtype = np.dtype(np.float32 if name == "BFloat16Storage" else STORAGE_DTYPES[name])
        self.file_itemsize = 2 if name == "BFloat16Storage" else self.dtype.itemsize


# The storage the first reading of a legacy file gives every tensor (it builds none).
_PENDING = object()


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickles torch's container structure only. `read_storage(storage
    type, key, numel)` gives a storage's elements (None: no storages allowed);
    `id_lengths`: the persistent-id tuple lengths of the format (5 zip, 6 legacy)."""

    def __init__(self, file, path, read_storage, id_lengths):
        super().__init__(file)
        self._path = path
        self._read_storage = read_storage
        self._id_lengths = id_lengths
        self._storages = {}

    def find_class(self, module, name):
        if self._read_storage is not None:
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
        if not (isinstance(pid, tuple) and len(pid) in self._id_lengths and pid[0] == "storage"
                and isinstance(pid[1], _StorageType)):
            raise UnsafePickleError(f"{self._path}: unexpected persistent id {pid!r}")
        _, storage_type, key, _location, numel, *view = pid
        key = str(key)
        if key not in self._storages:
            self._storages[key] = self._read_storage(storage_type, key, int(numel))
        storage = self._storages[key]
        if not view or view[0] is None:
            return storage
        return self._view(storage, view[0])

    def _view(self, storage, view):
        """A storage view of torch < 1.0: `(view_key, offset, size)` in elements."""
        if not (isinstance(view, tuple) and len(view) == 3):
            raise UnsafePickleError(f"{self._path}: unexpected storage view {view!r}")
        _, offset, size = view
        offset, size = int(offset), int(size)
        if storage is _PENDING:
            return storage
        if offset < 0 or size < 0 or offset + size > storage.size:
            raise UserError(f"{self._path}: storage view of {size} elements at {offset} lies outside its storage "
                            f"of {storage.size} elements")
        return storage[offset:offset + size]


def _storage_array(raw, storage_type, numel, byteorder, name):
    """The `numel` elements of `storage_type` in `raw` as a native-order array."""
    endian = ">" if byteorder == "big" else "<"
    if storage_type.name == "BFloat16Storage":
        # bfloat16 is the top half of a float32: widen exactly.
        halves = _frombuffer(raw, np.dtype(endian + "u2"), numel, name)
        return (halves.astype(np.uint32) << 16).view(np.float32)
    dtype = storage_type.dtype.newbyteorder(endian) if storage_type.dtype.itemsize > 1 else storage_type.dtype
    return _frombuffer(raw, dtype, numel, name).astype(storage_type.dtype.newbyteorder("="))


def _frombuffer(raw, dtype, numel, name):
    if len(raw) < numel * dtype.itemsize:
        raise UserError(f"{name} holds {len(raw)} bytes, {numel} elements need {numel * dtype.itemsize}")
    return np.frombuffer(raw, dtype=dtype, count=numel)


def _rebuild_tensor(storage, storage_offset, size, stride, *_ignored):
    """numpy twin of torch._utils._rebuild_tensor_v2: the strided view of
    `storage` (elements) at `storage_offset`, copied into its own array."""
    if storage is _PENDING:
        return storage
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

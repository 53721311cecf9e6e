"""Write small `.pth` fixtures with the structure `torch.save` produces, without torch.

`write_pth`: `torch.save(obj, f)` writes a zip `<archive>/data.pkl` (pickle protocol 2),
`<archive>/data/<key>` (raw little-endian storage bytes), `<archive>/version`
and `<archive>/byteorder`. In the pickle every tensor is
`torch._utils._rebuild_tensor_v2(<storage>, offset, size, stride,
requires_grad, OrderedDict())` and every storage a persistent id
`('storage', torch.FloatStorage, '<key>', 'cpu', numel)`. Here placeholder
objects pickle as those GLOBAL references (their `__reduce__` returns the
global's name, which the pickler below writes as a GLOBAL opcode).

`write_legacy_pth`: `torch.save(obj, f, _use_new_zipfile_serialization=False)`
writes one stream: pickles of the magic number, the protocol version 1001 and
a dict of system facts, the object (storages as persistent ids
`('storage', torch.FloatStorage, '<key>', 'cpu', numel, None)`), the sorted
list of storage keys, then per key its element count (int64) and its bytes.
tests/reference/torchvision/tiny_legacy.pth is a file torch itself wrote.
"""
import collections
import io
import pickle
import zipfile

import numpy as np

_STORAGE_NAMES = {
    np.dtype(np.float32): "FloatStorage",
    np.dtype(np.float16): "HalfStorage",
    np.dtype(np.float64): "DoubleStorage",
    np.dtype(np.int64): "LongStorage",
    np.dtype(np.int32): "IntStorage",
    np.dtype(np.uint8): "ByteStorage",
    np.dtype(np.bool_): "BoolStorage",
}


class TorchGlobal:
    """Stands for the global `module.name`; pickles as `GLOBAL module name`."""

    def __init__(self, module, name):
        self.module, self.name = module, name

    def __reduce__(self):
        return self.name

    def __call__(self, *args):
        # Only ever pickled by reference; the pickler requires reduce callables.
        raise TypeError(f"{self.module}.{self.name} is a placeholder")


class Tensor:
    """A tensor over its own storage: a C-contiguous `array`, or a strided view
    `(size, stride, offset)` of `array` taken as flat storage."""

    def __init__(self, key, array, size=None, stride=None, offset=0):
        self.storage = _Storage(key, np.ascontiguousarray(array).ravel())
        self.size = tuple(array.shape if size is None else size)
        self.stride = tuple(_contiguous_strides(self.size) if stride is None else stride)
        self.offset = offset

    def __reduce__(self):
        return (TorchGlobal("torch._utils", "_rebuild_tensor_v2"),
                (self.storage, self.offset, self.size, self.stride, False, collections.OrderedDict()))


def write_pth(path, obj, archive="archive", storage_dtype_name=None):
    """Save `obj` (dicts/lists of numpy arrays and `Tensor`s) like torch.save.
    numpy arrays become tensors with fresh storages; `storage_dtype_name`
    overrides the storage class written in the persistent ids (for tests)."""
    counter = iter(range(1 << 30))
    obj = _wrap_arrays(obj, counter)
    payload = _pickle(obj, storage_dtype_name)
    storages = {}
    _collect_storages(obj, storages)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr(f"{archive}/data.pkl", payload)
        zf.writestr(f"{archive}/byteorder", "little")
        for key, storage in storages.items():
            zf.writestr(f"{archive}/data/{key}", storage.array.astype(storage.array.dtype.newbyteorder("<")).tobytes())
        zf.writestr(f"{archive}/version", "3\n")


LEGACY_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
_SYSTEM = {"protocol_version": 1001, "little_endian": True, "type_sizes": {"short": 2, "int": 4, "long": 4}}


def write_legacy_pth(path, obj, storage_dtype_name=None, header=(LEGACY_MAGIC_NUMBER, 1001, _SYSTEM)):
    """Save `obj` like torch.save's legacy format; `header`: the three records before the object (for tests)."""
    obj = _wrap_arrays(obj, iter(range(1 << 30)))
    storages = {}
    _collect_storages(obj, storages)
    with open(path, "wb") as handle:
        for record in header:
            handle.write(_pickle(record, None))
        handle.write(_pickle(obj, storage_dtype_name, legacy=True))
        keys = sorted(storages)
        handle.write(pickle.dumps(keys, protocol=2))
        for key in keys:
            array = storages[key].array
            handle.write(np.int64(array.size).astype("<i8").tobytes())
            handle.write(array.astype(array.dtype.newbyteorder("<")).tobytes())


def write_legacy_payload(path, payload, header=(LEGACY_MAGIC_NUMBER, 1001, _SYSTEM)):
    """A legacy-format stream whose object record is the arbitrary pickle `payload` (bytes)."""
    with open(path, "wb") as handle:
        for record in header:
            handle.write(_pickle(record, None))
        handle.write(payload)
        handle.write(pickle.dumps([], protocol=2))


def write_pickle_zip(path, payload, archive="archive"):
    """A `.pth`-shaped zip around an arbitrary pickle `payload` (bytes)."""
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"{archive}/data.pkl", payload)
        zf.writestr(f"{archive}/version", "3\n")


class _Storage:
    def __init__(self, key, array):
        self.key, self.array = str(key), array


class _Pickler(pickle._Pickler):
    """The pure-Python pickler, so GLOBAL references to modules that are not
    installed (torch) can be written for `TorchGlobal` placeholders."""

    def __init__(self, file, storage_dtype_name, legacy=False):
        super().__init__(file, protocol=2)
        self._storage_dtype_name = storage_dtype_name
        self._legacy = legacy

    def persistent_id(self, obj):
        if isinstance(obj, _Storage):
            name = self._storage_dtype_name or _STORAGE_NAMES[obj.array.dtype]
            storage = ("storage", TorchGlobal("torch", name), obj.key, "cpu", obj.array.size)
            return storage + (None,) if self._legacy else storage  # the legacy id adds a storage view
        return None

    def save_global(self, obj, name=None):
        if isinstance(obj, TorchGlobal):
            self.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode())
            self.memoize(obj)
            return
        super().save_global(obj, name)


def _pickle(obj, storage_dtype_name, legacy=False):
    buffer = io.BytesIO()
    _Pickler(buffer, storage_dtype_name, legacy).dump(obj)
    return buffer.getvalue()


def _wrap_arrays(obj, counter):
    if isinstance(obj, np.ndarray):
        return Tensor(next(counter), obj)
    if isinstance(obj, dict):
        return type(obj)((k, _wrap_arrays(v, counter)) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return type(obj)(_wrap_arrays(v, counter) for v in obj)
    return obj


def _collect_storages(obj, storages):
    if isinstance(obj, Tensor):
        storages[obj.storage.key] = obj.storage
    elif isinstance(obj, dict):
        for value in obj.values():
            _collect_storages(value, storages)
    elif isinstance(obj, (list, tuple)):
        for value in obj:
            _collect_storages(value, storages)


def _contiguous_strides(size):
    strides, step = [], 1
    for n in reversed(size):
        strides.append(step)
        step *= n
    return tuple(reversed(strides))

"""fgtf.models.pth: torch-free, code-free reading of torch.save zip checkpoints."""
import collections
import pickle

import numpy as np
import pytest

from fgtf.models.pth import UnsafePickleError, load_pth
from pth_writer import Tensor, TorchGlobal, write_pickle_zip, write_pth
from tfrecord_tools.cli import UserError


def test_reads_nested_state_dict_with_every_dtype(tmp_path):
    rng = np.random.default_rng(0)
    state = collections.OrderedDict([
        ("conv.weight", rng.standard_normal((8, 3, 4, 4)).astype(np.float32)),
        ("half", rng.standard_normal((5,)).astype(np.float16)),
        ("double", rng.standard_normal((2, 2))),
        ("index", rng.integers(0, 100, (7, 7)).astype(np.int64)),
        ("flags", np.array([True, False, True])),
        ("scalar", np.array(3.5, np.float32)),
    ])
    path = tmp_path / "model.pth"
    write_pth(path, {"model": state, "epoch": 7, "names": ["a", "b"]})

    loaded = load_pth(path)

    assert loaded["epoch"] == 7 and loaded["names"] == ["a", "b"]
    assert isinstance(loaded["model"], collections.OrderedDict)
    assert list(loaded["model"]) == list(state)
    for key, expected in state.items():
        assert loaded["model"][key].dtype == expected.dtype, key
        np.testing.assert_array_equal(loaded["model"][key], expected)


def test_strided_views_of_a_shared_storage(tmp_path):
    flat = np.arange(24, dtype=np.float32)
    # a transposed (4, 3) view and a slice at an offset, both over storage "0"
    transposed = Tensor(0, flat, size=(4, 3), stride=(1, 4))
    sliced = Tensor(0, flat, size=(2, 5), stride=(5, 1), offset=10)
    path = tmp_path / "views.pth"
    write_pth(path, {"t": transposed, "s": sliced})

    loaded = load_pth(path)

    np.testing.assert_array_equal(loaded["t"], flat[:12].reshape(3, 4).T)
    np.testing.assert_array_equal(loaded["s"], flat[10:20].reshape(2, 5))


def test_tensor_outside_its_storage_is_an_error(tmp_path):
    bad = Tensor(0, np.zeros(4, np.float32), size=(3, 3), stride=(3, 1))
    path = tmp_path / "bad.pth"
    write_pth(path, {"w": bad})
    with pytest.raises(UserError, match="outside its storage"):
        load_pth(path)


class _Call:
    """Pickles as a call of the global `module.name` on `args`; an unrestricted
    load would run it."""

    def __init__(self, module, name, *args):
        self.function, self.args = TorchGlobal(module, name), args

    def __reduce__(self):
        return (self.function, self.args)


@pytest.mark.parametrize("payload_object", [
    _Call("os", "system", "echo pwned > pwned.txt"),
    {"model": {"w": _Call("builtins", "exec", "open('pwned.txt', 'w')")}},
    [_Call("subprocess", "check_call", ["touch", "pwned.txt"])],
    # a tensor whose rebuild function is swapped for posix.system
    {"w": _Call("posix", "system", "touch pwned.txt")},
])
def test_malicious_pickle_is_refused(tmp_path, monkeypatch, payload_object):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pth"
    write_pth(path, payload_object)
    with pytest.raises(UnsafePickleError, match="refusing to load global"):
        load_pth(path)
    assert not (tmp_path / "pwned.txt").exists()


def test_plain_pickle_of_a_builtin_is_refused(tmp_path):
    path = tmp_path / "eval.pth"
    write_pickle_zip(path, pickle.dumps(eval, protocol=2))
    with pytest.raises(UnsafePickleError, match="eval"):
        load_pth(path)


def test_unknown_storage_type_is_refused(tmp_path):
    path = tmp_path / "odd.pth"
    write_pth(path, {"w": np.zeros(3, np.float32)}, storage_dtype_name="ComplexFloatStorage")
    with pytest.raises(UnsafePickleError, match="torch.ComplexFloatStorage"):
        load_pth(path)


def test_not_a_zip_checkpoint(tmp_path):
    path = tmp_path / "legacy.pth"
    path.write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(UserError, match="not a zip-format"):
        load_pth(path)
    with pytest.raises(UserError, match="not found"):
        load_pth(tmp_path / "missing.pth")

"""fgtf.models.pth: torch-free, code-free reading of torch.save checkpoints,
zip archives and legacy (pre-1.6) streams alike."""
import collections
import pickle

import numpy as np
import pytest

from conftest import reference_dir
from fgtf.models.pth import UnsafePickleError, load_pth
from pth_writer import (LEGACY_MAGIC_NUMBER, Tensor, TorchGlobal, write_legacy_payload, write_legacy_pth,
                        write_pickle_zip, write_pth)
from fgtf.errors import UserError

WRITERS = {"zip": write_pth, "legacy": write_legacy_pth}
both_formats = pytest.mark.parametrize("write", WRITERS.values(), ids=WRITERS.keys())


@pytest.mark.parametrize("name", ["tiny_zip.pth", "tiny_legacy.pth"])
def test_reads_files_torch_wrote_in_both_formats(name):
    # saved by torch 2.14 (make_resnet_reference.py): float32/float16/int64, a Parameter,
    # a transposed view and an offset view sharing another entry's storage
    expected = np.load(reference_dir() / "torchvision" / "tiny_expected.npz")
    loaded = load_pth(reference_dir() / "torchvision" / name)
    assert loaded["epoch"] == 7
    assert sorted(loaded["state_dict"]) == sorted(f"module.{key}" for key in expected.files)
    for key in expected.files:
        value = loaded["state_dict"][f"module.{key}"]
        assert value.dtype == expected[key].dtype, key
        np.testing.assert_array_equal(value, expected[key], err_msg=key)


@both_formats
def test_reads_nested_state_dict_with_every_dtype(tmp_path, write):
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
    write(path, {"model": state, "epoch": 7, "names": ["a", "b"]})

    loaded = load_pth(path)

    assert loaded["epoch"] == 7 and loaded["names"] == ["a", "b"]
    assert isinstance(loaded["model"], collections.OrderedDict)
    assert list(loaded["model"]) == list(state)
    for key, expected in state.items():
        assert loaded["model"][key].dtype == expected.dtype, key
        np.testing.assert_array_equal(loaded["model"][key], expected)


@both_formats
def test_strided_views_of_a_shared_storage(tmp_path, write):
    flat = np.arange(24, dtype=np.float32)
    # a transposed (4, 3) view and a slice at an offset, both over storage "0"
    transposed = Tensor(0, flat, size=(4, 3), stride=(1, 4))
    sliced = Tensor(0, flat, size=(2, 5), stride=(5, 1), offset=10)
    path = tmp_path / "views.pth"
    write(path, {"t": transposed, "s": sliced})

    loaded = load_pth(path)

    np.testing.assert_array_equal(loaded["t"], flat[:12].reshape(3, 4).T)
    np.testing.assert_array_equal(loaded["s"], flat[10:20].reshape(2, 5))


@both_formats
def test_tensor_outside_its_storage_is_an_error(tmp_path, write):
    bad = Tensor(0, np.zeros(4, np.float32), size=(3, 3), stride=(3, 1))
    path = tmp_path / "bad.pth"
    write(path, {"w": bad})
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
@both_formats
def test_malicious_pickle_is_refused(tmp_path, monkeypatch, payload_object, write):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pth"
    write(path, payload_object)
    with pytest.raises(UnsafePickleError, match="refusing to load global"):
        load_pth(path)
    assert not (tmp_path / "pwned.txt").exists()


def test_plain_pickle_of_a_builtin_is_refused(tmp_path):
    path = tmp_path / "eval.pth"
    write_pickle_zip(path, pickle.dumps(eval, protocol=2))
    with pytest.raises(UnsafePickleError, match="eval"):
        load_pth(path)


@both_formats
def test_unknown_storage_type_is_refused(tmp_path, write):
    path = tmp_path / "odd.pth"
    write(path, {"w": np.zeros(3, np.float32)}, storage_dtype_name="ComplexFloatStorage")
    with pytest.raises(UnsafePickleError, match="torch.ComplexFloatStorage"):
        load_pth(path)


def test_plain_pickle_of_a_builtin_is_refused_in_a_legacy_stream(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "eval.pth"
    write_legacy_payload(path, pickle.dumps(eval, protocol=2))
    with pytest.raises(UnsafePickleError, match="eval"):
        load_pth(path)


@pytest.mark.parametrize("header", [
    # the magic-number record itself a call of os.system
    (_Call("os", "system", "touch pwned.txt"), 1001, {}),
    # the system-facts record hiding a call
    (LEGACY_MAGIC_NUMBER, 1001, {"little_endian": _Call("builtins", "exec", "open('pwned.txt', 'w')")}),
])
def test_legacy_header_records_are_read_as_plain_data(tmp_path, monkeypatch, header):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pth"
    write_legacy_pth(path, {"w": np.zeros(2, np.float32)}, header=header)
    with pytest.raises(UnsafePickleError, match="refusing to load global"):
        load_pth(path)
    assert not (tmp_path / "pwned.txt").exists()


def test_legacy_stream_that_is_cut_short_or_inconsistent(tmp_path):
    path = tmp_path / "weights.pth"
    write_legacy_pth(path, {"w": np.arange(6, dtype=np.float32)})
    data = path.read_bytes()
    path.write_bytes(data[:-8])  # the storage's last two elements are gone
    with pytest.raises(UserError, match="24 bytes|holds 16 bytes"):
        load_pth(path)
    # a storage record whose element count disagrees with its tensors
    count_at = len(data) - 24 - 8
    path.write_bytes(data[:count_at] + np.int64(5).tobytes() + data[count_at + 8:])
    with pytest.raises(UserError, match="holds 5 elements, its tensors say 6"):
        load_pth(path)
    write_legacy_pth(path, {"w": np.zeros(1, np.float32)}, header=(LEGACY_MAGIC_NUMBER, 1002, {}))
    with pytest.raises(UserError, match="protocol 1002"):
        load_pth(path)


def test_not_a_torch_checkpoint(tmp_path):
    path = tmp_path / "other.pth"
    path.write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(UserError, match="not a torch checkpoint"):
        load_pth(path)
    path.write_bytes(b"\x00\x01 not a pickle")
    with pytest.raises(UserError, match="not a torch checkpoint"):
        load_pth(path)
    with pytest.raises(UserError, match="not found"):
        load_pth(tmp_path / "missing.pth")

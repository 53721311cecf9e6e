"""Reference outputs of torchvision's resnet18 and resnet50, and small `.pth`
files written by torch itself in both of its formats, for fgtf's tests.

Run in a side environment with torch (never an fgtf dependency), from this folder:

    python3 -m venv /work/sidevenvs/torch
    /work/sidevenvs/torch/bin/pip install torch==2.14.1 torchvision==0.29.1 pillow numpy
    /work/sidevenvs/torch/bin/python make_resnet_reference.py

Writes, next to itself:
* `<net>_state_dict.txt`: torchvision's `state_dict()` listing (key, shape,
  dtype) of resnet18 and resnet50 (1000 classes); `torch_weights.py` turns it
  into the deterministic weights the outputs were computed with;
* `resnets.npz`: per net and input side S in (224, 448), for the images
  `torch_weights.reference_images(INPUT_SEED, S)` (NHWC; torch is fed their
  NCHW transpose) in eval mode: `<net>_<S>_logits` (2, 1000),
  `<net>_<S>_features` (2, C) the spatial mean of `layer4`, and
  `<net>_<S>_channel_mean` (2, S/32, S/32) its mean over channels;
* `tiny_zip.pth`, `tiny_legacy.pth`: one small checkpoint saved by
  `torch.save` in the zip format and in the legacy (pre-1.6,
  `_use_new_zipfile_serialization=False`) format, and `tiny_expected.npz`
  the arrays they hold (keys as in the state dict). It holds what real files
  hold: float32, float16 and int64 tensors, an nn.Parameter, a
  non-contiguous (transposed) view and a view at a storage offset, both
  sharing storage with another entry, under `state_dict` with `module.`
  prefixes, beside an epoch number.

Every resnet file saved by torch in both formats is also read back with
torch.load and checked equal to the weights before the outputs are computed.
"""
import os
import sys
import tempfile

import numpy as np
import torch
import torchvision

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import torch_weights  # noqa: E402

INPUT_SEED = 23
SIZES = (224, 448)
NETS = ("resnet18", "resnet50")


def main():
    torch.set_num_threads(2)
    outputs = {"input_seed": np.array(INPUT_SEED)}
    for net in NETS:
        model = getattr(torchvision.models, net)(weights=None)
        listing = [(key, tuple(value.shape), str(value.dtype).replace("torch.", ""))
                   for key, value in model.state_dict().items()]
        with open(os.path.join(HERE, f"{net}_state_dict.txt"), "w", encoding="utf-8") as handle:
            for key, shape, dtype in listing:
                handle.write(f"{key}\t{','.join(map(str, shape))}\t{dtype}\n")
        state = {key: torch.from_numpy(value) for key, value in torch_weights.state_dict(listing).items()}
        model.load_state_dict(_round_trip_both_formats(state))
        model.eval()
        features = {}
        model.layer4.register_forward_hook(lambda module, inputs, output: features.update(layer4=output))
        for size in SIZES:
            images = torch.from_numpy(torch_weights.reference_images(INPUT_SEED, size).transpose(0, 3, 1, 2).copy())
            with torch.no_grad():
                logits = model(images)
            layer4 = features["layer4"]
            outputs[f"{net}_{size}_logits"] = logits.numpy()
            outputs[f"{net}_{size}_features"] = layer4.mean(dim=(2, 3)).numpy()
            outputs[f"{net}_{size}_channel_mean"] = layer4.mean(dim=1).numpy()
            print(f"{net} {size}: logits rms {logits.square().mean().sqrt():.3f}, layer4 {tuple(layer4.shape)}")
    np.savez_compressed(os.path.join(HERE, "resnets.npz"), **outputs)
    _write_tiny_files()


def _round_trip_both_formats(state):
    """`state` saved by torch in the zip and the legacy format and loaded
    back; both must give the weights unchanged."""
    with tempfile.TemporaryDirectory() as folder:
        loaded = []
        for zip_format in (True, False):
            path = os.path.join(folder, f"weights_{zip_format}.pth")
            torch.save(state, path, _use_new_zipfile_serialization=zip_format)
            loaded.append(torch.load(path, weights_only=True))
    for other in loaded:
        assert all(torch.equal(other[key], value) for key, value in state.items())
    return loaded[-1]


def _write_tiny_files():
    generator = torch.Generator().manual_seed(INPUT_SEED)
    shared = torch.randn(6, 10, generator=generator)
    state = {
        "module.conv.weight": torch.randn(4, 3, 3, 3, generator=generator),
        "module.bn.running_var": torch.rand(4, generator=generator) + 0.5,
        "module.bn.num_batches_tracked": torch.tensor(1234),
        "module.half": torch.randn(5, generator=generator).half(),
        "module.index": torch.arange(12).reshape(3, 4),
        "module.fc.weight": torch.nn.Parameter(torch.randn(2, 4, generator=generator)),
        "module.shared": shared,
        "module.transposed": shared.t(),          # non-contiguous view of shared's storage
        "module.rows": shared[2:5, 1:7],          # view at a storage offset, strided rows
    }
    for name, zip_format in (("tiny_zip.pth", True), ("tiny_legacy.pth", False)):
        torch.save({"state_dict": state, "epoch": 7}, os.path.join(HERE, name),
                   _use_new_zipfile_serialization=zip_format)
    expected = {key[len("module."):]: value.detach().numpy() for key, value in state.items()}
    np.savez_compressed(os.path.join(HERE, "tiny_expected.npz"), **expected)


if __name__ == "__main__":
    print(f"torch {torch.__version__}, torchvision {torchvision.__version__}, numpy {np.__version__}")
    main()

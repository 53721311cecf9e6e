"""Write torch_steps.npz: a few PyTorch training steps of a tiny network, one
case per PyTorch seed's optimiser, for tests/test_optimizer_steps.py.

Run in a side environment with PyTorch (not an fgtf dependency), from the
repository root:

    /work/sidevenvs/torch/bin/python tests/reference/optimizer_steps/make_torch_steps.py

(written with torch 2.14.1 on the CPU, numpy 2.4). Every number comes from a
seeded numpy generator, so the file is the same on every run up to PyTorch's
float rounding.

The network: conv 3x3 (3 -> 4 channels, padding 1, no bias) -> BatchNorm2d
(train mode, eps 1e-5, momentum 0.1) -> ReLU -> spatial mean -> Linear(4, 3),
cross-entropy with mean reduction, on one fixed batch of 8 images of 6x6
(no augmentation, no dropout). Each case starts from the same weights and
takes STEPS optimiser steps on that batch:

- sef: SGD(lr 0.05, momentum 0.9, no weight decay), StepLR(step_size 2,
  gamma 0.1) stepped after every iteration (SEF steps it each epoch; an
  iteration here stands for an epoch, so the drops fall inside the run).
- sam: SGD(momentum 0.9, nesterov, weight_decay 0.01: coupled, every
  parameter) over two groups, the classifier `fc` at 10x the base lr 0.05,
  MultiStepLR([2, 4], 0.1) stepped after every iteration (SAM's schedule;
  its weight decay 1e-4 raised to 0.01 so that it shows within float32
  rounding).
- cle: AdamW(betas 0.9/0.999, eps 1e-8, weight_decay 0.05) over CLE-ViT's
  groups (decay: the rank >= 2 weights of the body; none: its 1-D weights;
  the classifier's kernel with decay and its bias without, both at 5x the
  base lr 0.05), clip_grad_norm_ to 0.1 before each step, and CLE-ViT's
  per-iteration warm-up-linear schedule: every group starts at lr / 1000,
  warms up linearly over 3 iterations to its own peak, then falls linearly
  to 1 % of it at iteration 8; the rate is set after each step from the
  iteration just finished, as CLE-ViT's loop calls step_update.

Stored (float32; weights in Keras layout: conv kernel (kh, kw, in, out),
dense kernel (in, out)): `images` (8, 6, 6, 3) NHWC, `labels` (8,),
`start/<name>` the start weights and batch-norm statistics (names as the
Keras mirror's `layer/variable`), and per case `<case>/loss` (STEPS,) the
loss each step computed before its update, `<case>/<name>` the weights and
statistics after the last step, and for cle `cle/gradient_norm` (STEPS,) the
global gradient norm before clipping.
"""
import os

import numpy as np
import torch
from torch import nn

STEPS = 6
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "torch_steps.npz")


class TinyNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(4, eps=1e-5, momentum=0.1)
        self.fc = nn.Linear(4, 3)

    def forward(self, images):
        return self.fc(torch.relu(self.bn(self.conv(images))).mean(dim=(2, 3)))


def start_values():
    """The start weights and batch, in Keras layout."""
    rng = np.random.default_rng(2024)
    return {
        "images": rng.standard_normal((8, 6, 6, 3)).astype(np.float32),
        "labels": rng.integers(0, 3, 8).astype(np.int64),
        "conv/kernel": (0.5 * rng.standard_normal((3, 3, 3, 4))).astype(np.float32),
        "bn/gamma": rng.uniform(0.8, 1.2, 4).astype(np.float32),
        "bn/beta": (0.1 * rng.standard_normal(4)).astype(np.float32),
        "bn/moving_mean": (0.1 * rng.standard_normal(4)).astype(np.float32),
        "bn/moving_variance": rng.uniform(0.5, 1.5, 4).astype(np.float32),
        "fc/kernel": (0.5 * rng.standard_normal((4, 3))).astype(np.float32),
        "fc/bias": (0.1 * rng.standard_normal(3)).astype(np.float32),
    }


def network(values):
    net = TinyNet()
    with torch.no_grad():
        net.conv.weight.copy_(torch.from_numpy(values["conv/kernel"].transpose(3, 2, 0, 1)))
        net.bn.weight.copy_(torch.from_numpy(values["bn/gamma"]))
        net.bn.bias.copy_(torch.from_numpy(values["bn/beta"]))
        net.bn.running_mean.copy_(torch.from_numpy(values["bn/moving_mean"]))
        net.bn.running_var.copy_(torch.from_numpy(values["bn/moving_variance"]))
        net.fc.weight.copy_(torch.from_numpy(values["fc/kernel"].T))
        net.fc.bias.copy_(torch.from_numpy(values["fc/bias"]))
    return net.train()


def keras_layout(net):
    return {
        "conv/kernel": net.conv.weight.detach().numpy().transpose(2, 3, 1, 0),
        "bn/gamma": net.bn.weight.detach().numpy(), "bn/beta": net.bn.bias.detach().numpy(),
        "bn/moving_mean": net.bn.running_mean.numpy(), "bn/moving_variance": net.bn.running_var.numpy(),
        "fc/kernel": net.fc.weight.detach().numpy().T, "fc/bias": net.fc.bias.detach().numpy(),
    }


def train(net, optimizer, images, labels, after_step=lambda step: None, max_norm=None):
    losses, norms = [], []
    for step in range(STEPS):
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(net(images), labels)
        loss.backward()
        if max_norm is not None:
            norms.append(float(nn.utils.clip_grad_norm_(net.parameters(), max_norm)))
        optimizer.step()
        after_step(step)
        losses.append(loss.item())
    return np.array(losses, np.float32), np.array(norms, np.float32)


def sef(values, images, labels):
    net = network(values)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.1)
    return net, train(net, optimizer, images, labels, lambda step: scheduler.step())


def sam(values, images, labels):
    net = network(values)
    body = [p for name, p in net.named_parameters() if not name.startswith("fc.")]
    optimizer = torch.optim.SGD([{"params": body}, {"params": net.fc.parameters(), "lr": 0.5}], lr=0.05,
                                momentum=0.9, nesterov=True, weight_decay=0.01)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=[2, 4], gamma=0.1)
    return net, train(net, optimizer, images, labels, lambda step: scheduler.step())


def cle(values, images, labels):
    net = network(values)
    base, warmup, total = 0.05, 3, 8
    start = base / 1000
    body = [(name, p) for name, p in net.named_parameters() if not name.startswith("fc.")]
    groups = [{"params": [p for _, p in body if p.ndim >= 2], "peak": base},
              {"params": [p for _, p in body if p.ndim < 2], "peak": base, "weight_decay": 0.0},
              {"params": [net.fc.weight], "peak": 5 * base},
              {"params": [net.fc.bias], "peak": 5 * base, "weight_decay": 0.0}]
    optimizer = torch.optim.AdamW(groups, lr=start, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.05)

    def rate(t, peak):
        if t < warmup:
            return start + t * (peak - start) / warmup
        return peak - (peak - peak * 0.01) * (t - warmup) / (total - warmup)

    def step_update(step):
        for group in optimizer.param_groups:
            group["lr"] = rate(step, group["peak"])

    return net, train(net, optimizer, images, labels, step_update, max_norm=0.1)


def main():
    torch.manual_seed(0)
    values = start_values()
    images = torch.from_numpy(values["images"].transpose(0, 3, 1, 2).copy())
    labels = torch.from_numpy(values["labels"])
    out = {"images": values["images"], "labels": values["labels"].astype(np.int32)}
    out.update({f"start/{name}": value for name, value in values.items() if "/" in name})
    for case in (sef, sam, cle):
        net, (losses, norms) = case(values, images, labels)
        out[f"{case.__name__}/loss"] = losses
        out.update({f"{case.__name__}/{name}": value for name, value in keras_layout(net).items()})
        if len(norms):
            out[f"{case.__name__}/gradient_norm"] = norms
        print(case.__name__, "losses", np.round(losses, 5), "gradient norms", np.round(norms, 4))
    np.savez(OUT, **out)
    print("wrote", OUT)


if __name__ == "__main__":
    main()

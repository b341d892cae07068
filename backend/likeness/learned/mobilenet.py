"""timm's ``tf_mobilenetv3_{small,large}_minimal_100`` backbones (``features_only=True``), written here in torch.

SMIRK builds its three sub-encoders with ``timm.create_model(name, features_only=True)``. timm itself cannot be
imported beside our CPU torch without torchvision (timm imports it at start-up and the PyPI torchvision wheel
does not load with the CPU torch build), so the two backbones are re-implemented with timm's module names, so
that their ``state_dict`` is timm's key for key and shape for shape (checked against
``shared/reference/smirk_encoder_state_dict.json``) and their output is timm's to float precision (checked
against timm 0.9.16 in ``tests/test_smirk.py`` where timm is installed).

What "tf minimal" means in timm: ReLU everywhere, no squeeze-excitation, 3×3 depthwise kernels, BatchNorm with
eps 1e-3, and TensorFlow "same" padding (asymmetric, more on the bottom/right, for strided convolutions).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

BN_EPS = 1e-3  # timm's BN_EPS_TF_DEFAULT for the tf_ variants

# timm's arch_def strings: block type, repeats, kernel, stride, expansion, output channels
SMALL_MINIMAL = (
    ("ds_r1_k3_s2_e1_c16",),
    ("ir_r1_k3_s2_e4.5_c24", "ir_r1_k3_s1_e3.67_c24"),
    ("ir_r1_k3_s2_e4_c40", "ir_r2_k3_s1_e6_c40"),
    ("ir_r2_k3_s1_e3_c48",),
    ("ir_r3_k3_s2_e6_c96",),
    ("cn_r1_k1_s1_c576",),
)
LARGE_MINIMAL = (
    ("ds_r1_k3_s1_e1_c16",),
    ("ir_r1_k3_s2_e4_c24", "ir_r1_k3_s1_e3_c24"),
    ("ir_r3_k3_s2_e3_c40",),
    ("ir_r1_k3_s2_e6_c80", "ir_r1_k3_s1_e2.5_c80", "ir_r2_k3_s1_e2.3_c80"),
    ("ir_r2_k3_s1_e6_c112",),
    ("ir_r3_k3_s2_e6_c160",),
    ("cn_r1_k1_s1_c960",),
)
ARCHS = {"tf_mobilenetv3_small_minimal_100": SMALL_MINIMAL, "tf_mobilenetv3_large_minimal_100": LARGE_MINIMAL}


def make_divisible(value: float, divisor: int = 8) -> int:
    """timm's channel rounding: to a multiple of ``divisor``, never more than 10 % below ``value``."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


class Conv(nn.Conv2d):
    """A bias-free convolution with TensorFlow's "same" padding (timm's ``create_conv2d(..., padding='same')``)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1) -> None:
        super().__init__(cin, cout, kernel, stride, padding=0, groups=groups, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, s = self.kernel_size[0], self.stride[0]
        if k > 1:
            pads = []
            for size in (x.shape[-1], x.shape[-2]):  # F.pad order: width first
                total = max((math.ceil(size / s) - 1) * s + k - size, 0)
                pads += [total // 2, total - total // 2]
            x = F.pad(x, pads)
        return F.conv2d(x, self.weight, None, self.stride, 0, 1, self.groups)


class BN(nn.BatchNorm2d):
    """BatchNorm, optionally followed by ReLU (timm's ``BatchNormAct2d``: the same tensors)."""

    def __init__(self, channels: int, act: bool = True) -> None:
        super().__init__(channels, eps=BN_EPS)
        self.relu = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = super().forward(x)
        return F.relu(x) if self.relu else x


class DepthwiseSeparable(nn.Module):
    """timm ``DepthwiseSeparableConv``: depthwise k×k, BN+ReLU, pointwise 1×1, BN; residual when shapes allow."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int) -> None:
        super().__init__()
        self.conv_dw = Conv(cin, cin, kernel, stride, groups=cin)
        self.bn1 = BN(cin)
        self.conv_pw = Conv(cin, cout, 1)
        self.bn2 = BN(cout, act=False)
        self.skip = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn2(self.conv_pw(self.bn1(self.conv_dw(x))))
        return x + y if self.skip else y


class InvertedResidual(nn.Module):
    """timm ``InvertedResidual`` without SE: 1×1 expand, BN+ReLU, depthwise, BN+ReLU, 1×1 project, BN."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expansion: float) -> None:
        super().__init__()
        mid = make_divisible(cin * expansion)
        self.conv_pw = Conv(cin, mid, 1)
        self.bn1 = BN(mid)
        self.conv_dw = Conv(mid, mid, kernel, stride, groups=mid)
        self.bn2 = BN(mid)
        self.conv_pwl = Conv(mid, cout, 1)
        self.bn3 = BN(cout, act=False)
        self.skip = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn3(self.conv_pwl(self.bn2(self.conv_dw(self.bn1(self.conv_pw(x))))))
        return x + y if self.skip else y


class ConvBnAct(nn.Module):
    """timm ``ConvBnAct``: a convolution, BN+ReLU (no residual)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int) -> None:
        super().__init__()
        self.conv = Conv(cin, cout, kernel, stride)
        self.bn1 = BN(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn1(self.conv(x))


def _parse(block: str) -> tuple[str, int, int, int, float, int]:
    kind, *options = block.split("_")
    values = {o[0]: o[1:] for o in options}
    return kind, int(values["r"]), int(values["k"]), int(values["s"]), float(values.get("e", 1)), int(values["c"])


class MobileNetV3Features(nn.Module):
    """The backbone: ``conv_stem`` (3×3, stride 2, 16 ch), ``bn1``, ``blocks``; returns the last feature map
    (stride 32: 576 channels for small, 960 for large)."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.conv_stem = Conv(3, 16, 3, 2)
        self.bn1 = BN(16)
        stages, channels = [], 16
        for stage in ARCHS[name]:
            blocks: list[nn.Module] = []
            for spec in stage:
                kind, repeats, kernel, stride, expansion, cout = _parse(spec)
                for r in range(repeats):
                    step = stride if r == 0 else 1
                    if kind == "ds":
                        blocks.append(DepthwiseSeparable(channels, cout, kernel, step))
                    elif kind == "ir":
                        blocks.append(InvertedResidual(channels, cout, kernel, step, expansion))
                    else:
                        blocks.append(ConvBnAct(channels, cout, kernel, step))
                    channels = cout
            stages.append(nn.Sequential(*blocks))
        self.blocks = nn.Sequential(*stages)
        self.num_features = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.bn1(self.conv_stem(x)))

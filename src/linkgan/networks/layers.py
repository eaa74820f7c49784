"""Building blocks of StyleGAN2, written for plain PyTorch (no custom CUDA ops).

Every learnable weight uses the *equalized learning rate* trick: parameters are stored
as N(0, 1) / lr_mul and scaled by ``lr_mul / sqrt(fan_in)`` at run time, so that Adam
sees every layer at the same scale.

Three *numerics* exist (``ModelConfig.numerics``), with the same parameters and names:

  ``official``  what NVIDIA's stylegan2-ada-pytorch computes: the up-sampling conv is a
                stride-2 transposed conv followed by the [1,3,3,1] filter with zero padding,
                the skip image is upsampled by the same zero-padded filter, D's down-sampling
                conv blurs at full resolution before a stride-2 conv, demodulation's epsilon
                sits on the raw weight and toRGB is clamped by ``conv_clamp``. Imported
                NVIDIA weights compute the official images with it.
  ``rosinality`` the same, except that demodulation's epsilon sits on the weight times its
                gain, as in rosinality's code (imported rosinality weights get it).
  ``legacy``    linkgan's first dialect (bilinear upsampling then a 3x3 conv, edge-replicated
                skip upsampling, decimate-then-conv in D). Checkpoints written before the
                field existed use it, so that they keep computing what they computed.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InputError

LRELU_GAIN = math.sqrt(2.0)
# official: stylegan2-ada-pytorch; rosinality: the same except where the demodulation epsilon
# sits (on weight x gain, not on the raw weight); legacy: linkgan's first dialect.
NUMERICS = ("official", "rosinality", "legacy")


def check_numerics(numerics: str) -> str:
    if numerics not in NUMERICS:
        raise InputError(f"numerics must be one of {', '.join(NUMERICS)}, not {numerics!r}")
    return numerics


def fir_resampling(numerics: str) -> bool:
    """Whether layers resample as the reference code bases do (transposed up-convs, zero-padded FIR
    filters, full-resolution blur before strided down-convs), which all but 'legacy' do."""
    return numerics != "legacy"


def lrelu_bias(x: torch.Tensor, bias: torch.Tensor | None, clamp: float | None = None) -> torch.Tensor:
    """Adds a per-channel bias, applies leaky ReLU (slope 0.2) times sqrt(2), and clamps.

    The sqrt(2) gain keeps the activations' second moment at one through the network.
    ``clamp`` bounds activations, which keeps fp16 from overflowing.
    """
    if bias is not None:
        shape = [1, -1] + [1] * (x.ndim - 2)
        x = x + bias.reshape(shape)
    x = F.leaky_relu(x, 0.2) * LRELU_GAIN
    if clamp is not None:
        x = x.clamp(-clamp, clamp)
    return x


class EqualLinear(nn.Module):
    """Fully connected layer with equalized learning rate; ``activation`` is 'linear' or 'lrelu'."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, bias_init: float = 0.0,
                 lr_mul: float = 1.0, activation: str = "linear"):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_mul)
        self.bias = nn.Parameter(torch.full([out_features], float(bias_init))) if bias else None
        self.weight_gain = lr_mul / math.sqrt(in_features)
        self.bias_gain = lr_mul
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight * self.weight_gain
        b = self.bias * self.bias_gain if self.bias is not None else None
        if self.activation == "linear":
            return F.linear(x, w, b)
        return lrelu_bias(F.linear(x, w), b)

    def extra_repr(self) -> str:
        return f"in={self.weight.shape[1]}, out={self.weight.shape[0]}, act={self.activation}"


class EqualConv2d(nn.Module):
    """Plain (unmodulated) conv with equalized learning rate, used by the discriminator.

    ``down=True`` halves the resolution with the anti-aliased downsampling of StyleGAN2. With
    ``numerics='official'`` a 3x3 conv does it as stylegan2-ada-pytorch does: the [1,3,3,1]
    low-pass filter at full resolution (zero padding 2), then a stride-2 conv. ``legacy``
    filters and decimates first and convolves at half resolution (a different operator).
    A 1x1 conv filters and decimates first in both (the official code does the same).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, bias: bool = True,
                 activation: str = "lrelu", down: bool = False, conv_clamp: float | None = None,
                 numerics: str = "legacy"):
        super().__init__()
        self.numerics = check_numerics(numerics)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.weight_gain = 1.0 / math.sqrt(in_channels * kernel_size * kernel_size)
        self.activation = activation
        self.padding = kernel_size // 2
        self.down = down
        self.conv_clamp = conv_clamp

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight * self.weight_gain
        if self.down and fir_resampling(self.numerics) and self.weight.shape[-1] > 1:
            x = F.conv2d(fir_filter(x, self.padding + 1), w.to(x.dtype), stride=2)
        else:
            if self.down:
                x = blur_downsample(x)
            x = F.conv2d(x, w.to(x.dtype), padding=self.padding)
        b = self.bias.to(x.dtype) if self.bias is not None else None
        if self.activation == "linear":
            return x if b is None else x + b.reshape(1, -1, 1, 1)
        return lrelu_bias(x, b, self.conv_clamp)


_FIR_1D = torch.tensor([1.0, 3.0, 3.0, 1.0])


def _fir_kernel(channels: int, device, dtype, gain: float) -> torch.Tensor:
    k = torch.outer(_FIR_1D, _FIR_1D)
    k = k / k.sum() * gain
    return k.to(device=device, dtype=dtype).expand(channels, 1, 4, 4)


def blur_downsample(x: torch.Tensor) -> torch.Tensor:
    """(N,C,H,W) -> (N,C,H/2,W/2): [1,3,3,1] low-pass filter, then keep every second pixel."""
    return fir_filter(x, 1, stride=2)


def fir_filter(x: torch.Tensor, pad: int, gain: float = 1.0, stride: int = 1) -> torch.Tensor:
    """(N,C,H,W) -> (N,C,H+2*pad-3,W+2*pad-3) (over ``stride``): the [1,3,3,1] low-pass filter
    with zero padding."""
    c = x.shape[1]
    return F.conv2d(x, _fir_kernel(c, x.device, x.dtype, gain), stride=stride, padding=pad, groups=c)


def fir_upsample_2x(x: torch.Tensor) -> torch.Tensor:
    """(N,C,H,W) -> (N,C,2H,2W): zero insertion, then the [1,3,3,1] filter (gain 4) with zero
    padding; stylegan2-ada-pytorch's ``upsample2d``, written as one stride-2 transposed conv."""
    c = x.shape[1]
    return F.conv_transpose2d(x, _fir_kernel(c, x.device, x.dtype, 4.0), stride=2, padding=1, groups=c)


def upsample_2x(x: torch.Tensor) -> torch.Tensor:
    """(N,C,H,W) -> (N,C,2H,2W) with the [1,3,3,1] interpolation filter of StyleGAN2.

    Bilinear interpolation with ``align_corners=False`` applies exactly this filter, and it
    is a single fast kernel on CPU and GPU; only the border pixels differ (edge replication
    instead of zero padding), which keeps image borders free of dark halos.
    """
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


class ModulatedConv2d(nn.Module):
    """The style-modulated convolution of StyleGAN2.

    Each sample n scales the conv weight's input channels by its style s_n (an affine map
    of w), and, with ``demodulate``, rescales every output channel so that the effective
    weight has unit L2 norm per output channel: out activations keep unit variance for
    unit-variance inputs.

    Two mathematically equal formulations are available (``impl``):
      * ``"grouped"``: build one weight per sample and run a grouped conv (batch as groups).
        Best for batch 1 and on GPUs.
      * ``"scaled"``: scale the activations by s before a shared-weight conv and by the
        demodulation coefficients after it. One big GEMM; faster on CPU for batches > 1.
    ``"auto"`` picks ``"scaled"`` for batches > 1, else ``"grouped"``; see
    benchmarks/train_speed.py for the measurement behind the choice.

    ``up`` with ``numerics='official'``: a stride-2 transposed conv, then the [1,3,3,1] filter
    (gain 4, zero padding 1), as stylegan2-ada-pytorch; ``legacy``: bilinear upsampling, then
    the conv.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, w_dim: int,
                 demodulate: bool = True, up: bool = False, impl: str = "auto", numerics: str = "legacy"):
        super().__init__()
        self.numerics = check_numerics(numerics)
        if impl not in ("auto", "grouped", "scaled"):
            raise InputError(f"modconv impl must be auto, grouped or scaled, not {impl!r}")
        self.affine = EqualLinear(w_dim, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, kernel_size
        self.demodulate = demodulate
        self.up = up
        self.impl = impl
        self.padding = kernel_size // 2
        self.weight_gain = 1.0 / math.sqrt(in_channels * kernel_size * kernel_size)
        # Demodulation cancels any constant gain except inside its epsilon, which the official
        # code adds to the squared norm of the raw weight times the styles (rosinality's, like
        # linkgan's first dialect, to that of the weight times its gain).
        self.conv_gain = 1.0 if (demodulate and self.numerics == "official") else self.weight_gain
        self.transposed = up and fir_resampling(self.numerics)

    def modulated_weight(self, styles: torch.Tensor) -> torch.Tensor:
        """styles: (N, C_in) -> per-sample weights (N, C_out, C_in, k, k), demodulated if asked."""
        w = self.weight.unsqueeze(0) * self.conv_gain * styles.reshape(-1, 1, self.in_channels, 1, 1)
        if self.demodulate:
            w = w * torch.rsqrt(w.square().sum(dim=[2, 3, 4], keepdim=True) + 1e-8)
        return w

    def _conv(self, x: torch.Tensor, weight: torch.Tensor, groups: int) -> torch.Tensor:
        """x (1 or N, groups*C_in, H, W), weight (groups*C_out, C_in, k, k) -> the (up-sampling) conv."""
        if not self.transposed:
            return F.conv2d(x, weight, padding=self.padding, groups=groups)
        k = self.kernel_size
        # conv_transpose2d wants (groups*C_in, C_out, k, k); the weight is used unflipped, as the
        # official code does.
        weight = weight.reshape(groups, self.out_channels, self.in_channels, k, k).transpose(1, 2)
        x = F.conv_transpose2d(x, weight.reshape(groups * self.in_channels, self.out_channels, k, k),
                               stride=2, groups=groups)
        # 2H + k - 2 pixels -> 2H: the 4-tap filter with zero padding (5 - k) / 2 on each side.
        return fir_filter(x, (5 - k) // 2, gain=4.0)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """x: (N, C_in, H, W); w: (N, w_dim) -> (N, C_out, H', W'), H' = 2H if ``up``."""
        styles = self.affine(w)
        if self.up and not self.transposed:
            x = upsample_2x(x)
        n = x.shape[0]
        impl = self.impl
        if impl == "auto":
            impl = "scaled" if n > 1 else "grouped"
        if impl == "grouped":
            weight = self.modulated_weight(styles).to(x.dtype)
            x = x.reshape(1, n * self.in_channels, *x.shape[2:])
            weight = weight.reshape(n * self.out_channels, self.in_channels, self.kernel_size, self.kernel_size)
            x = self._conv(x, weight, groups=n)
            return x.reshape(n, self.out_channels, *x.shape[2:])
        # Activation-scaled formulation: conv(x * s, W) * d, where d is the demodulation
        # coefficient sum_{i,k} (W_oik s_i)^2 computed without materializing N weights.
        weight = self.weight * self.conv_gain
        x = x * styles.to(x.dtype).reshape(n, -1, 1, 1)
        x = self._conv(x, weight.to(x.dtype), groups=1)
        if self.demodulate:
            dcoefs = torch.rsqrt(styles.square() @ weight.square().sum(dim=[2, 3]).t() + 1e-8)  # (N, C_out)
            x = x * dcoefs.to(x.dtype).reshape(n, -1, 1, 1)
        return x

    def extra_repr(self) -> str:
        return (f"in={self.in_channels}, out={self.out_channels}, k={self.kernel_size}, "
                f"demod={self.demodulate}, up={self.up}, impl={self.impl}")

"""Building blocks of StyleGAN2, written for plain PyTorch (no custom CUDA ops).

Every learnable weight uses the *equalized learning rate* trick: parameters are stored
as N(0, 1) / lr_mul and scaled by ``lr_mul / sqrt(fan_in)`` at run time, so that Adam
sees every layer at the same scale.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

LRELU_GAIN = math.sqrt(2.0)


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

    ``down=True`` low-pass filters with the [1,3,3,1] kernel and then halves the resolution,
    the anti-aliased downsampling of StyleGAN2.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, bias: bool = True,
                 activation: str = "lrelu", down: bool = False, conv_clamp: float | None = None):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.weight_gain = 1.0 / math.sqrt(in_channels * kernel_size * kernel_size)
        self.activation = activation
        self.padding = kernel_size // 2
        self.down = down
        self.conv_clamp = conv_clamp

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight * self.weight_gain
        if self.down:
            # Blur first, then a strided conv is equivalent to conv-then-downsample up to
            # the filter order, and it computes the conv on 4x fewer pixels.
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
    c = x.shape[1]
    return F.conv2d(x, _fir_kernel(c, x.device, x.dtype, 1.0), stride=2, padding=1, groups=c)


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
    benchmarks/modconv.py for the measurement behind the choice.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, w_dim: int,
                 demodulate: bool = True, up: bool = False, impl: str = "auto"):
        super().__init__()
        if impl not in ("auto", "grouped", "scaled"):
            raise ValueError(f"modconv impl must be auto, grouped or scaled, not {impl!r}")
        self.affine = EqualLinear(w_dim, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, kernel_size
        self.demodulate = demodulate
        self.up = up
        self.impl = impl
        self.padding = kernel_size // 2
        self.weight_gain = 1.0 / math.sqrt(in_channels * kernel_size * kernel_size)

    def modulated_weight(self, styles: torch.Tensor) -> torch.Tensor:
        """styles: (N, C_in) -> per-sample weights (N, C_out, C_in, k, k), demodulated if asked."""
        w = self.weight.unsqueeze(0) * self.weight_gain * styles.reshape(-1, 1, self.in_channels, 1, 1)
        if self.demodulate:
            w = w * torch.rsqrt(w.square().sum(dim=[2, 3, 4], keepdim=True) + 1e-8)
        return w

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """x: (N, C_in, H, W); w: (N, w_dim) -> (N, C_out, H', W'), H' = 2H if ``up``."""
        styles = self.affine(w)
        if self.up:
            x = upsample_2x(x)
        n = x.shape[0]
        impl = self.impl
        if impl == "auto":
            impl = "scaled" if n > 1 else "grouped"
        if impl == "grouped":
            weight = self.modulated_weight(styles).to(x.dtype)
            x = x.reshape(1, n * self.in_channels, *x.shape[2:])
            weight = weight.reshape(n * self.out_channels, self.in_channels, self.kernel_size, self.kernel_size)
            x = F.conv2d(x, weight, padding=self.padding, groups=n)
            return x.reshape(n, self.out_channels, *x.shape[2:])
        # Activation-scaled formulation: conv(x * s, W) * d, where d is the demodulation
        # coefficient sum_{i,k} (W_oik s_i)^2 computed without materializing N weights.
        weight = self.weight * self.weight_gain
        x = x * styles.to(x.dtype).reshape(n, -1, 1, 1)
        x = F.conv2d(x, weight.to(x.dtype), padding=self.padding)
        if self.demodulate:
            dcoefs = torch.rsqrt(styles.square() @ weight.square().sum(dim=[2, 3]).t() + 1e-8)  # (N, C_out)
            x = x * dcoefs.to(x.dtype).reshape(n, -1, 1, 1)
        return x

    def extra_repr(self) -> str:
        return (f"in={self.in_channels}, out={self.out_channels}, k={self.kernel_size}, "
                f"demod={self.demodulate}, up={self.up}, impl={self.impl}")

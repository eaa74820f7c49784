"""The StyleGAN2 discriminator: residual blocks, minibatch standard deviation, and a 4x4 head."""

from __future__ import annotations

import math

import torch
from torch import nn

from .generator import channels_at, check_resolution
from .layers import EqualConv2d, EqualLinear, check_numerics


class DiscriminatorBlock(nn.Module):
    """Residual block at one resolution: two 3x3 convs (the second halves the resolution),
    plus a 1x1 downsampling skip; the sum is scaled by sqrt(1/2) to keep unit variance."""

    def __init__(self, in_channels: int, out_channels: int, conv_clamp: float | None = None,
                 numerics: str = "legacy"):
        super().__init__()
        self.conv0 = EqualConv2d(in_channels, in_channels, 3, conv_clamp=conv_clamp)
        self.conv1 = EqualConv2d(in_channels, out_channels, 3, down=True, conv_clamp=conv_clamp, numerics=numerics)
        self.skip = EqualConv2d(in_channels, out_channels, 1, bias=False, activation="linear", down=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.skip(x)
        x = self.conv1(self.conv0(x))
        return (x + y) * math.sqrt(0.5)


class MinibatchStdDev(nn.Module):
    """Appends the mean standard deviation across groups of samples as extra feature maps,
    so D can see a lack of variety in a batch. ``group_size`` is shrunk to divide the batch."""

    def __init__(self, group_size: int = 4, num_channels: int = 1):
        super().__init__()
        self.group_size, self.num_channels = group_size, num_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        g = min(self.group_size, n)
        while n % g:
            g -= 1
        f = self.num_channels
        y = x.reshape(g, -1, f, c // f, h, w)
        y = (y - y.mean(dim=0)).square().mean(dim=0)
        y = (y + 1e-8).sqrt().mean(dim=[2, 3, 4])  # (n/g, f)
        y = y.reshape(-1, f, 1, 1).repeat(g, 1, h, w)
        return torch.cat([x, y], dim=1)


class Discriminator(nn.Module):
    """images (N, img_channels, R, R) in [-1, 1] -> logits (N, 1).

    ``numerics``: 'official' (stylegan2-ada-pytorch's resnet D) or 'legacy' (linkgan's first
    dialect, which down-samples before the strided conv; linkgan.networks.layers)."""

    def __init__(self, resolution: int = 32, img_channels: int = 3, channel_base: int = 16384,
                 channel_max: int = 512, mbstd_group: int = 4, conv_clamp: float | None = None,
                 numerics: str = "official"):
        super().__init__()
        log2 = check_resolution(resolution)
        self.numerics = check_numerics(numerics)
        self.resolution, self.img_channels = resolution, img_channels
        top = channels_at(resolution, channel_base, channel_max)
        self.from_rgb = EqualConv2d(img_channels, top, 1, conv_clamp=conv_clamp)
        blocks = []
        for res in [2 ** i for i in range(log2, 2, -1)]:
            blocks.append(DiscriminatorBlock(channels_at(res, channel_base, channel_max),
                                             channels_at(res // 2, channel_base, channel_max), conv_clamp,
                                             numerics))
        self.blocks = nn.Sequential(*blocks)
        c4 = channels_at(4, channel_base, channel_max)
        self.mbstd = MinibatchStdDev(mbstd_group)
        self.conv = EqualConv2d(c4 + 1, c4, 3, conv_clamp=conv_clamp)
        self.fc = EqualLinear(c4 * 16, c4, activation="lrelu")
        self.out = EqualLinear(c4, 1)

    def forward(self, img: torch.Tensor | dict, c: torch.Tensor | None = None) -> torch.Tensor:
        """img: images, or a generator's render dict (``G.render``), of which D sees the image. c: camera
        labels, which an unconditional D ignores (CameraDiscriminator takes them), so that the loss
        calls ``D(img, c)`` for both model kinds."""
        if isinstance(img, dict):
            img = img["image"]
        if img.ndim != 4 or img.shape[1:] != (self.img_channels, self.resolution, self.resolution):
            raise ValueError(f"D expects images of shape (N, {self.img_channels}, {self.resolution}, "
                             f"{self.resolution}), got {tuple(img.shape)}")
        x = self.blocks(self.from_rgb(img))
        x = self.conv(self.mbstd(x))
        return self.out(self.fc(x.to(torch.float32).flatten(1)))

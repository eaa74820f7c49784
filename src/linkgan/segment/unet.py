"""The built-in segmentation network: a small U-Net.

    encoder  ConvBlock(3 -> c) -> pool -> ConvBlock(c -> 2c) -> pool -> ConvBlock(2c -> 4c)
    decoder  upsample, concat the encoder's features of that size, ConvBlock ... -> 1x1 conv to classes

Input (N, 3, H, W) in [-1, 1], output (N, num_classes, H, W) logits at the same
size. Any H, W >= 2**(levels - 1) works: pooling floors odd sizes and each
upsampling step goes to the exact size of its skip connection.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class UNetConfig:
    """Architecture of the built-in U-Net; saved in the segmenter file's metadata."""

    num_classes: int
    base_channels: int = 16  # channels at full resolution; doubled at each coarser level
    levels: int = 3  # resolution levels, so levels - 1 poolings
    groups: int = 8  # GroupNorm groups (fewer when a block has fewer channels)

    def to_dict(self) -> dict:
        return asdict(self)


class ConvBlock(nn.Sequential):
    """Two 3x3 convolutions, each followed by GroupNorm and ReLU."""

    def __init__(self, in_channels: int, out_channels: int, groups: int):
        g = min(groups, out_channels)
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, padding=1), nn.GroupNorm(g, out_channels), nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1), nn.GroupNorm(g, out_channels), nn.ReLU(inplace=True),
        )


class UNet(nn.Module):
    """images (N, 3, H, W) in [-1, 1] -> logits (N, num_classes, H, W)."""

    def __init__(self, config: UNetConfig):
        super().__init__()
        self.config = config
        channels = [config.base_channels * 2 ** i for i in range(config.levels)]
        self.encoder = nn.ModuleList(
            ConvBlock(c_in, c_out, config.groups) for c_in, c_out in zip([3] + channels[:-1], channels))
        # decoder[i] merges the upsampled features of level i + 1 with the skip of level i, coarse to fine.
        self.decoder = nn.ModuleList(
            ConvBlock(channels[i + 1] + channels[i], channels[i], config.groups)
            for i in reversed(range(config.levels - 1)))
        self.head = nn.Conv2d(channels[0], config.num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips: list[torch.Tensor] = []
        for i, block in enumerate(self.encoder):
            if i > 0:
                x = F.max_pool2d(x, 2)
            x = block(x)
            skips.append(x)
        for i, block in enumerate(self.decoder):
            skip = skips[-2 - i]
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = block(torch.cat([x, skip], dim=1))
        return self.head(x)

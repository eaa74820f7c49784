"""A camera-conditioned discriminator for 3D-aware generators, as in EG3D.

It is the StyleGAN2 Discriminator with two changes:
  * dual input: with super-resolution, D sees the final image and the raw neural render
    (bilinearly upsampled to the image size) as 6 channels, so that the super-resolution
    stage cannot invent detail the 3D render does not support. A real image's "raw"
    version is itself area-downsampled to the neural resolution and upsampled back.
  * projection conditioning on the camera: the 25-value label c goes through a small MLP
    to an embedding e(c); the logit is <phi(x), e(c)> / sqrt(dim) (Miyato & Koyama's
    projection D), so D judges whether an image fits the pose it claims.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .discriminator import Discriminator
from .generator import channels_at, normalize_2nd_moment
from .layers import EqualLinear


class CameraDiscriminator(Discriminator):
    """(image (N,3,R,R) or dict with image and image_raw (N,3,r,r), cameras (N, c_dim)) -> logits (N, 1).

    raw_resolution: r, the neural rendering resolution, or None for no dual input (no
    super-resolution: D sees the rendered image alone).
    """

    def __init__(self, resolution: int = 32, raw_resolution: int | None = 16, c_dim: int = 25,
                 channel_base: int = 16384, channel_max: int = 512, mbstd_group: int = 4,
                 conv_clamp: float | None = None, cmap_dim: int | None = None, numerics: str = "official"):
        super().__init__(resolution, 6 if raw_resolution else 3, channel_base, channel_max, mbstd_group, conv_clamp,
                         numerics)
        self.raw_resolution, self.c_dim = raw_resolution, c_dim
        c4 = channels_at(4, channel_base, channel_max)
        self.cmap_dim = cmap_dim or c4
        self.embed = nn.Sequential(EqualLinear(c_dim, self.cmap_dim, activation="lrelu"),
                                   EqualLinear(self.cmap_dim, self.cmap_dim))
        self.out = EqualLinear(c4, self.cmap_dim)

    def dual_input(self, img) -> torch.Tensor:
        """The (N, 3 or 6, R, R) input: the image, plus its raw render upsampled when dual."""
        raw = None
        if isinstance(img, dict):
            img, raw = img["image"], img.get("image_raw")
        if not self.raw_resolution:
            return img
        if raw is None or raw.shape[-1] != self.raw_resolution:
            # A real image (or a render at another size): its low-resolution version.
            raw = F.interpolate(img, size=(self.raw_resolution, self.raw_resolution), mode="area")
        up = F.interpolate(raw, size=img.shape[-2:], mode="bilinear", align_corners=False)
        return torch.cat([img, up.to(img.dtype)], dim=1)

    def forward(self, img, c: torch.Tensor | None = None) -> torch.Tensor:
        x = self.dual_input(img)
        if x.ndim != 4 or x.shape[1:] != (self.img_channels, self.resolution, self.resolution):
            raise ValueError(f"D expects images of shape (N, 3, {self.resolution}, {self.resolution})"
                             + (f" with raw renders (N, 3, {self.raw_resolution}, {self.raw_resolution})"
                                if self.raw_resolution else "") + f", got {tuple(x.shape)}")
        if c is None or c.shape != (x.shape[0], self.c_dim):
            raise ValueError(f"D needs one {self.c_dim}-value camera label per image: shape ({x.shape[0]}, "
                             f"{self.c_dim}), got {None if c is None else tuple(c.shape)}")
        x = self.blocks(self.from_rgb(x))
        x = self.conv(self.mbstd(x))
        h = self.out(self.fc(x.to(torch.float32).flatten(1)))
        e = normalize_2nd_moment(self.embed(c.to(torch.float32)))
        return (h * e).sum(dim=1, keepdim=True) / math.sqrt(self.cmap_dim)

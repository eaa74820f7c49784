"""The StyleGAN2 generator: a mapping network z -> w and a synthesis network ws -> image.

LinkGAN partitions w channel-wise, so the generator keeps the two halves separate:
``mapping(z) -> ws`` and ``synthesis(ws) -> image`` can be called on their own, and any
code may edit w between them.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from ..errors import InputError
from .layers import (
    EqualLinear,
    ModulatedConv2d,
    check_numerics,
    fir_resampling,
    fir_upsample_2x,
    lrelu_bias,
    upsample_2x,
)


def channels_at(res: int, channel_base: int, channel_max: int) -> int:
    """Feature width of the block working at resolution ``res``: min(channel_base / res, channel_max)."""
    return max(1, min(channel_base // res, channel_max))


def check_resolution(resolution: int) -> int:
    if resolution < 4 or resolution & (resolution - 1) or resolution > 1024:
        raise InputError(f"resolution must be a power of two between 4 and 1024, got {resolution}")
    return int(math.log2(resolution))


def normalize_2nd_moment(x: torch.Tensor, dim: int = 1, eps: float = 1e-8) -> torch.Tensor:
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()


class MappingNetwork(nn.Module):
    """z (N, z_dim) -> w (N, num_ws, w_dim), plus a tracked average w for truncation.

    ``lr_mul`` = 0.01 slows the mapping layers down, as in StyleGAN.
    """

    def __init__(self, z_dim: int, w_dim: int, num_ws: int, num_layers: int = 8, lr_mul: float = 0.01,
                 w_avg_beta: float = 0.995):
        super().__init__()
        self.z_dim, self.w_dim, self.num_ws = z_dim, w_dim, num_ws
        self.w_avg_beta = w_avg_beta
        dims = [z_dim] + [w_dim] * num_layers
        self.layers = nn.Sequential(*[
            EqualLinear(dims[i], dims[i + 1], lr_mul=lr_mul, activation="lrelu") for i in range(num_layers)
        ])
        self.register_buffer("w_avg", torch.zeros(w_dim))

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None, truncation_psi: float = 1.0,
                truncation_cutoff: int | None = None, update_w_avg: bool = False) -> torch.Tensor:
        """c: camera labels; an unconditional network ignores them (the 3D one needs them), so that code
        serving both kinds calls ``mapping(z, c)`` alike."""
        if z.ndim != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"z must have shape (N, {self.z_dim}), got {tuple(z.shape)}")
        return self.to_ws(self.layers(normalize_2nd_moment(z.to(torch.float32))), truncation_psi,
                          truncation_cutoff, update_w_avg)

    def to_ws(self, w: torch.Tensor, truncation_psi: float = 1.0, truncation_cutoff: int | None = None,
              update_w_avg: bool = False) -> torch.Tensor:
        """w (N, w_dim) from the layers -> ws (N, num_ws, w_dim): tracks w_avg, broadcasts, truncates."""
        if update_w_avg:
            with torch.no_grad():
                self.w_avg.copy_(w.detach().mean(0).lerp(self.w_avg, self.w_avg_beta))
        ws = w.unsqueeze(1).repeat(1, self.num_ws, 1)
        if truncation_psi != 1.0:
            ws = self.truncate(ws, truncation_psi, truncation_cutoff)
        return ws

    def truncate(self, ws: torch.Tensor, psi: float, cutoff: int | None = None) -> torch.Tensor:
        """Pulls ws towards w_avg: w_avg + psi * (w - w_avg), on the first ``cutoff`` layers (all if None)."""
        cutoff = self.num_ws if cutoff is None else cutoff
        ws = ws.clone()
        ws[:, :cutoff] = self.w_avg.lerp(ws[:, :cutoff], psi)
        return ws


class NoiseInput(nn.Module):
    """Adds per-pixel Gaussian noise scaled by a learned strength (initially 0)."""

    def __init__(self, resolution: int):
        super().__init__()
        self.resolution = resolution
        self.strength = nn.Parameter(torch.zeros([]))
        # The fixed noise map used by noise_mode='const' so that images are reproducible.
        self.register_buffer("const_noise", torch.randn(resolution, resolution))

    def forward(self, x: torch.Tensor, noise_mode: str = "random", noise: torch.Tensor | None = None,
                repeats: int = 1) -> torch.Tensor:
        """``repeats`` > 1 (random mode): the batch is that many copies of N/repeats samples, which get
        the same noise maps, so that a sample and its latent-perturbed copies differ only by the latent."""
        if noise is None:
            if noise_mode == "random":
                noise = torch.randn(x.shape[0] // repeats, 1, self.resolution, self.resolution, device=x.device,
                                    dtype=x.dtype)
                if repeats > 1:
                    noise = noise.repeat(repeats, 1, 1, 1)
            elif noise_mode == "const":
                noise = self.const_noise.to(x.dtype)
            elif noise_mode == "none":
                return x
            else:
                raise InputError(f"noise_mode must be random, const or none, not {noise_mode!r}")
        return x + noise * self.strength.to(x.dtype)


class StyledConv(nn.Module):
    """Modulated 3x3 conv (optionally upsampling 2x), then noise, bias and leaky ReLU."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, up: bool = False,
                 impl: str = "auto", conv_clamp: float | None = None, numerics: str = "legacy"):
        super().__init__()
        self.conv = ModulatedConv2d(in_channels, out_channels, 3, w_dim, up=up, impl=impl, numerics=numerics)
        self.noise = NoiseInput(resolution)
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.conv_clamp = conv_clamp

    def forward(self, x, w, noise_mode="random", noise=None, noise_repeats=1):
        x = self.conv(x, w)
        x = self.noise(x, noise_mode, noise, noise_repeats)
        return lrelu_bias(x, self.bias.to(x.dtype), self.conv_clamp)


class ToRGB(nn.Module):
    """Modulated 1x1 conv to RGB without demodulation, plus bias; clamped by ``conv_clamp`` with
    the official numerics (the legacy ones never clamp it)."""

    def __init__(self, in_channels: int, img_channels: int, w_dim: int, impl: str = "auto",
                 conv_clamp: float | None = None, numerics: str = "legacy"):
        super().__init__()
        self.conv = ModulatedConv2d(in_channels, img_channels, 1, w_dim, demodulate=False, impl=impl,
                                    numerics=numerics)
        self.bias = nn.Parameter(torch.zeros(img_channels))
        self.clamp = conv_clamp if fir_resampling(numerics) else None

    def forward(self, x, w):
        x = self.conv(x, w) + self.bias.to(x.dtype).reshape(1, -1, 1, 1)
        return x if self.clamp is None else x.clamp(-self.clamp, self.clamp)


class SynthesisBlock(nn.Module):
    """One resolution level. The 4x4 level starts from a learned constant; every other level
    upsamples. Skip architecture: each level adds its RGB output to the upsampled RGB image
    of the level below.

    Consumes ``num_ws`` = (number of convs) + 1 consecutive w vectors; the toRGB vector is
    shared with the first conv of the next level, as in StyleGAN2.
    """

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, img_channels: int,
                 impl: str = "auto", conv_clamp: float | None = None, numerics: str = "legacy"):
        super().__init__()
        self.resolution = resolution
        layer = {"impl": impl, "conv_clamp": conv_clamp, "numerics": numerics}
        if resolution == 4:
            self.const = nn.Parameter(torch.randn(out_channels, 4, 4))
            self.conv0 = None
        else:
            self.const = None
            self.conv0 = StyledConv(in_channels, out_channels, w_dim, resolution, up=True, **layer)
        self.conv1 = StyledConv(out_channels, out_channels, w_dim, resolution, **layer)
        self.torgb = ToRGB(out_channels, img_channels, w_dim, **layer)
        self.num_conv = 1 if resolution == 4 else 2
        # The running RGB image: zero-padded FIR upsampling (official) or bilinear (legacy).
        self.upsample_img = fir_upsample_2x if fir_resampling(numerics) else upsample_2x

    def forward(self, x, img, ws, noise_mode="random", noises=None, noise_repeats=1):
        """ws: (N, num_conv + 1, w_dim). Returns the features and the running RGB image."""
        noises = noises or [None, None]
        if self.const is not None:
            x = self.const.unsqueeze(0).expand(ws.shape[0], -1, -1, -1).to(ws.dtype)
            x = self.conv1(x, ws[:, 0], noise_mode, noises[-1], noise_repeats)
        else:
            x = self.conv0(x, ws[:, 0], noise_mode, noises[0], noise_repeats)
            x = self.conv1(x, ws[:, 1], noise_mode, noises[1], noise_repeats)
        y = self.torgb(x, ws[:, self.num_conv])
        y = y.to(torch.promote_types(y.dtype, torch.float32))  # the image in fp32 (or finer) under fp16
        img = y if img is None else self.upsample_img(img) + y
        return x, img


class SynthesisNetwork(nn.Module):
    """ws (N, num_ws, w_dim) -> image (N, img_channels, R, R), roughly in [-1, 1]."""

    def __init__(self, resolution: int, w_dim: int = 512, img_channels: int = 3, channel_base: int = 16384,
                 channel_max: int = 512, impl: str = "auto", conv_clamp: float | None = None,
                 numerics: str = "legacy"):
        super().__init__()
        log2 = check_resolution(resolution)
        self.numerics = check_numerics(numerics)
        self.resolution, self.w_dim, self.img_channels = resolution, w_dim, img_channels
        self.block_resolutions = [2 ** i for i in range(2, log2 + 1)]
        blocks = []
        for res in self.block_resolutions:
            in_ch = channels_at(res // 2, channel_base, channel_max) if res > 4 else 0
            out_ch = channels_at(res, channel_base, channel_max)
            blocks.append(SynthesisBlock(in_ch, out_ch, w_dim, res, img_channels, impl=impl, conv_clamp=conv_clamp,
                                         numerics=numerics))
        self.blocks = nn.ModuleList(blocks)
        # Block b reads ws[start_b : start_b + num_conv + 1]; consecutive blocks overlap by one.
        self.ws_starts = []
        start = 0
        for block in self.blocks:
            self.ws_starts.append(start)
            start += block.num_conv
        self.num_ws = start + 1

    def noise_inputs(self) -> list[NoiseInput]:
        """The noise layers in the order of ``forward``'s ``noises`` list (coarse to fine)."""
        layers = []
        for block in self.blocks:
            layers += [conv.noise for conv in (block.conv0, block.conv1) if conv is not None]
        return layers

    def forward(self, ws: torch.Tensor, noise_mode: str = "random", noise_repeats: int = 1,
                noises: list[torch.Tensor] | None = None) -> torch.Tensor:
        """``noise_repeats`` = k: ws holds k consecutive chunks of the same N/k samples (e.g. an image and
        its latent-perturbed copies), and random noise maps are shared across the chunks.

        ``noises``: explicit noise maps, one per layer of ``noise_inputs()``, each broadcastable to
        (N, 1, r, r) (an inverted image's optimized maps); they override ``noise_mode``."""
        if ws.ndim != 3 or ws.shape[1] != self.num_ws or ws.shape[2] != self.w_dim:
            raise ValueError(f"ws must have shape (N, {self.num_ws}, {self.w_dim}), got {tuple(ws.shape)}")
        if ws.shape[0] % noise_repeats:
            raise ValueError(f"batch {ws.shape[0]} is not a multiple of noise_repeats={noise_repeats}")
        if noises is not None and len(noises) != len(self.noise_inputs()):
            raise ValueError(f"noises must hold {len(self.noise_inputs())} maps (one per noise layer), got {len(noises)}")
        x = img = None
        k = 0
        for block, start in zip(self.blocks, self.ws_starts):
            block_noises = None
            if noises is not None:
                block_noises = noises[k:k + block.num_conv]
                if block.num_conv == 1:
                    block_noises = [None] + block_noises  # the 4x4 block's only conv reads noises[-1]
                k += block.num_conv
            x, img = block(x, img, ws[:, start:start + block.num_conv + 1], noise_mode, noises=block_noises,
                           noise_repeats=noise_repeats)
        return img


class UnconditionalGenerator(nn.Module):
    """The 2D side of the interface both generator kinds share, for any ``synthesis(ws, noise_mode,
    noise_repeats) -> images`` without cameras (StyleGAN2's Generator, or a hand-built test model).

    ``render(ws, c) -> {"image": ...}``, and no cameras: c is None (``c_dim`` 0), the view cameras
    are None, and there is one view. linkgan.networks.TriplaneGenerator answers the same calls
    with cameras.
    """

    kind = "2d"  # the model kind of ModelConfig.kind (checkpoints and the metrics registry record it)
    c_dim = 0  # no camera labels

    def render(self, ws: torch.Tensor, c: torch.Tensor | None = None, noise_mode: str = "random",
               noise_repeats: int = 1, deterministic: bool = False) -> dict[str, torch.Tensor]:
        """ws (N, num_ws, w_dim) -> {"image": (N, C, R, R)}. c and ``deterministic`` (a 3D
        generator's fixed ray samples) mean nothing here: synthesis is deterministic given its noise."""
        return {"image": self.synthesis(ws, noise_mode=noise_mode, noise_repeats=noise_repeats)}

    def frontal_cameras(self, n: int, device=None) -> None:
        """The camera of n front views: None, a 2D generator has none."""
        return None

    def view_cameras(self, yaws=None, pitch: float = 0.0, device=None) -> None:
        """The cameras of multi-view grids and metrics: None, a 2D generator has one view."""
        return None


class Generator(UnconditionalGenerator):
    """StyleGAN2 generator.

    ``G(z)`` = ``G.synthesis(G.mapping(z))``. z: (N, z_dim) ~ N(0, I); images: (N, 3, R, R) in
    about [-1, 1]. ``num_ws`` = 2 log2(R) - 2 copies of w feed the layers; style mixing
    swaps the copies after a random crossover point.

    The interface that code serving 2D and 3D models uses (TriplaneGenerator has the same):
    ``mapping(z, c)``, ``style_mix(ws, prob, c)``, ``render(ws, c) -> {"image": ...}``, and
    ``frontal_cameras(n)`` / ``view_cameras(yaws)`` for the cameras of grids and metrics
    (UnconditionalGenerator: none in 2D).

    ``numerics``: 'official' computes what stylegan2-ada-pytorch's generator computes (so its
    weights can be imported), 'legacy' linkgan's first dialect (linkgan.networks.layers).
    """

    def __init__(self, resolution: int = 32, z_dim: int = 512, w_dim: int = 512, mapping_layers: int = 8,
                 mapping_lr_mul: float = 0.01, channel_base: int = 16384, channel_max: int = 512,
                 img_channels: int = 3, modconv: str = "auto", conv_clamp: float | None = None,
                 numerics: str = "official"):
        super().__init__()
        self.z_dim, self.w_dim, self.resolution, self.img_channels = z_dim, w_dim, resolution, img_channels
        self.numerics = check_numerics(numerics)
        self.synthesis = SynthesisNetwork(resolution, w_dim, img_channels, channel_base, channel_max,
                                          impl=modconv, conv_clamp=conv_clamp, numerics=numerics)
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(z_dim, w_dim, self.num_ws, mapping_layers, mapping_lr_mul)

    def forward(self, z: torch.Tensor, truncation_psi: float = 1.0, noise_mode: str = "random") -> torch.Tensor:
        return self.synthesis(self.mapping(z, truncation_psi=truncation_psi), noise_mode)

    def style_mix(self, ws: torch.Tensor, prob: float, c: torch.Tensor | None = None,
                  generator: torch.Generator | None = None) -> torch.Tensor:
        """Style mixing regularization for a batch ws (N, num_ws, w_dim): see ``mix_styles``."""
        return mix_styles(self, ws, prob, c, generator)


def mix_styles(G: nn.Module, ws: torch.Tensor, prob: float, c: torch.Tensor | None = None,
               generator: torch.Generator | None = None) -> torch.Tensor:
    """StyleGAN2's style mixing for either generator kind (its ``mapping``, ``num_ws``, ``z_dim``).

    With probability ``prob`` (one draw per batch) a second set of latents, mapped with the same
    cameras c (None in 2D), replaces ws (N, num_ws, w_dim) from a random crossover layer on.
    Returns a new tensor, or ws itself when nothing is mixed.
    """
    if prob <= 0 or G.num_ws < 2 or torch.rand([], generator=generator).item() >= prob:
        return ws
    cutoff = int(torch.randint(1, G.num_ws, [], generator=generator).item())
    z2 = torch.randn(ws.shape[0], G.z_dim, generator=generator).to(ws.device)
    ws = ws.clone()
    ws[:, cutoff:] = G.mapping(z2, c)[:, cutoff:]
    return ws


MAX_SEED = 2 ** 32 - 1  # numpy's RandomState, which z_from_seeds uses, takes seeds up to this


def z_from_seeds(seeds, z_dim: int, device=None) -> torch.Tensor:
    """The latent z of each integer seed: (len(seeds), z_dim), identical on every device and platform."""
    zs = np.stack([np.random.RandomState(int(s) % (2 ** 32)).randn(z_dim) for s in seeds])
    return torch.from_numpy(zs).to(device=device, dtype=torch.float32)

"""Adaptive discriminator augmentation (ADA).

Karras et al. 2020, "Training Generative Adversarial Networks with Limited Data": every image
that D sees -- reals and fakes, in every D and G phase -- goes through one random, differentiable
augmentation, so that D cannot memorize a small training set. Each transform of the pipeline is
applied to each image with probability ``p``; the distribution of the augmented images still
determines the distribution of the clean ones as long as p stays below about 0.8, so the
augmentations do not leak into G's samples. ``AdaController`` tunes p during training from the
overfitting heuristic r_t = E[sign(D(real))]: p rises when r_t is above the target (0.6) and falls
below it, by at most ``batch * interval / (ada_kimg * 1000)`` per adjustment (p can go from 0 to
1 in ``ada_kimg`` thousand images: 500, as in the paper).

The transforms and their strengths are the paper's (its appendix B), grouped into pipelines:

- ``blit``: x-flip, rotation by multiples of 90 degrees, integer translation (up to 1/8 of the size);
- ``geom``: isotropic scaling (lognormal, std 0.2 octaves), arbitrary rotation (before and after
  the anisotropic scaling, each with probability 1 - sqrt(1 - p), so that at least one of the two
  happens with probability p), anisotropic scaling (std 0.2 octaves), fractional translation
  (std 1/8 of the size);
- ``color``: brightness (+N(0, 0.2)), contrast (x2^N(0, 0.5)), luma flip, hue rotation about the
  luma axis (uniform), saturation (x2^N(0, 1) of the chroma);
- ``bg`` = blit + geom and ``bgc`` = blit + geom + color (the default, the paper's).

All geometric transforms of a batch compose into one 3x3 matrix per image, applied with a single
bilinear ``grid_sample`` (reflection at the borders); all colour transforms into one 4x4 matrix per
image. So the cost is one resampling and one matrix product whatever the pipeline, images whose
transforms are all whole-pixel moves keep their pixel values (to float rounding), and a batch with p = 0 is
returned untouched. Unlike stylegan2-ada-pytorch, the resampling is not done at twice the
resolution with a wavelet filter: zooming out can alias slightly.

The random parameters are drawn on the CPU from the global torch generator, a fixed number of draws
per call, so that a run on any device resumes bit-identically from its checkpointed RNG state.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .errors import InputError

BLIT = ("xflip", "rotate90", "xint")
GEOM = ("scale", "rotate", "aniso", "xfrac")
COLOR = ("brightness", "contrast", "lumaflip", "hue", "saturation")
PIPELINES = {"blit": BLIT, "geom": GEOM, "color": COLOR, "bg": BLIT + GEOM, "bgc": BLIT + GEOM + COLOR}

# The paper's strengths (Karras et al. 2020, appendix B).
XINT_MAX = 0.125  # integer translation: uniform up to this fraction of the size
SCALE_STD = 0.2  # octaves
ANISO_STD = 0.2  # octaves
XFRAC_STD = 0.125  # fraction of the size
BRIGHTNESS_STD = 0.2
CONTRAST_STD = 0.5  # octaves
SATURATION_STD = 1.0  # octaves
_LUMA = torch.tensor([1.0, 1.0, 1.0, 0.0]) / math.sqrt(3)  # the luma axis in homogeneous RGB


class AugmentError(InputError):
    """An unknown augmentation pipeline or an out-of-range probability."""


def _eye(n: int, k: int) -> torch.Tensor:
    return torch.eye(k).repeat(n, 1, 1)


def _translate(tx: torch.Tensor, ty: torch.Tensor) -> torch.Tensor:
    m = _eye(len(tx), 3)
    m[:, 0, 2], m[:, 1, 2] = tx, ty
    return m


def _scale(sx: torch.Tensor, sy: torch.Tensor) -> torch.Tensor:
    m = _eye(len(sx), 3)
    m[:, 0, 0], m[:, 1, 1] = sx, sy
    return m


def _rotate(theta: torch.Tensor) -> torch.Tensor:
    m = _eye(len(theta), 3)
    c, s = theta.cos(), theta.sin()
    m[:, 0, 0], m[:, 0, 1], m[:, 1, 0], m[:, 1, 1] = c, -s, s, c
    return m


def _color_rotate(theta: torch.Tensor) -> torch.Tensor:
    """(N, 4, 4) rotations of RGB about the luma axis by theta (Rodrigues' formula)."""
    v = _LUMA[:3]
    cross = torch.tensor([[0.0, -v[2], v[1]], [v[2], 0.0, -v[0]], [-v[1], v[0], 0.0]])
    c, s = theta.cos()[:, None, None], theta.sin()[:, None, None]
    m = _eye(len(theta), 4)
    m[:, :3, :3] = c * torch.eye(3) + s * cross + (1 - c) * torch.outer(v, v)
    return m


class AugmentPipe(nn.Module):
    """Applies a pipeline of random transforms, each with probability ``p``, to images in [-1, 1].

    Call it on a tensor (N, C, H, W) or on a 3D discriminator's input dict: every image entry of
    the dict ('image', 'image_raw') gets the same transform, scaled to its own size. Colour
    transforms apply to 3-channel images only. ``p`` is a buffer (saved with the trainer's state).
    """

    def __init__(self, pipeline: str = "bgc", p: float = 0.0):
        super().__init__()
        if pipeline not in PIPELINES:
            raise AugmentError(f"unknown augmentation pipeline {pipeline!r}; choose one of {', '.join(PIPELINES)}")
        if not (0.0 <= p <= 1.0):
            raise AugmentError(f"augmentation probability must be in [0, 1], got {p}")
        self.pipeline = pipeline
        self.ops = frozenset(PIPELINES[pipeline])
        self.register_buffer("p", torch.tensor(float(p)))

    # -- the random matrices ---------------------------------------------------------------
    def _applied(self, n: int, p: float) -> torch.Tensor:
        return torch.rand(n) < p

    def geometric(self, n: int, size: int) -> torch.Tensor | None:
        """(n, 3, 3) maps from output to input in grid_sample's [-1, 1] coordinates, or None
        when the pipeline has no geometric transform."""
        if not self.ops & set(BLIT + GEOM):
            return None
        p = float(self.p)
        g = _eye(n, 3)
        if "xflip" in self.ops:
            on = self._applied(n, p)
            flip = torch.randint(2, (n,)) * on
            g = g @ _scale(1.0 - 2.0 * flip, torch.ones(n))
        if "rotate90" in self.ops:
            on = self._applied(n, p)
            quarter = torch.randint(4, (n,)) * on
            m = _eye(n, 3)  # exact entries (cos(pi/2) is not 0 in floating point)
            cos, sin = torch.tensor([1.0, 0.0, -1.0, 0.0])[quarter], torch.tensor([0.0, 1.0, 0.0, -1.0])[quarter]
            m[:, 0, 0], m[:, 0, 1], m[:, 1, 0], m[:, 1, 1] = cos, -sin, sin, cos
            g = g @ m
        if "xint" in self.ops:
            on = self._applied(n, p)
            shift = (torch.rand(n, 2) * 2 - 1) * XINT_MAX * on[:, None]
            pixels = torch.round(shift * size)  # whole pixels, in [-1, 1] units: 2 px / size
            g = g @ _translate(pixels[:, 0] * 2 / size, pixels[:, 1] * 2 / size)
        if "scale" in self.ops:
            on = self._applied(n, p)
            s = torch.exp2(torch.randn(n) * SCALE_STD * on)
            g = g @ _scale(s, s)
        p_rot = 1.0 - math.sqrt(max(0.0, 1.0 - p))
        if "rotate" in self.ops:
            on = self._applied(n, p_rot)
            g = g @ _rotate((torch.rand(n) * 2 - 1) * math.pi * on)
        if "aniso" in self.ops:
            on = self._applied(n, p)
            s = torch.exp2(torch.randn(n) * ANISO_STD * on)
            g = g @ _scale(s, 1.0 / s)
        if "rotate" in self.ops:
            on = self._applied(n, p_rot)
            g = g @ _rotate((torch.rand(n) * 2 - 1) * math.pi * on)
        if "xfrac" in self.ops:
            on = self._applied(n, p)
            t = torch.randn(n, 2) * XFRAC_STD * 2 * on[:, None]
            g = g @ _translate(t[:, 0], t[:, 1])
        return g

    def color(self, n: int) -> torch.Tensor | None:
        """(n, 4, 4) affine maps of homogeneous RGB, or None when the pipeline has no colour transform."""
        if not self.ops & set(COLOR):
            return None
        p = float(self.p)
        c = _eye(n, 4)
        luma = torch.outer(_LUMA, _LUMA)
        if "brightness" in self.ops:
            on = self._applied(n, p)
            b = torch.randn(n) * BRIGHTNESS_STD * on
            m = _eye(n, 4)
            m[:, :3, 3] = b[:, None]
            c = m @ c
        if "contrast" in self.ops:
            on = self._applied(n, p)
            s = torch.exp2(torch.randn(n) * CONTRAST_STD * on)
            m = _eye(n, 4)
            m[:, 0, 0] = m[:, 1, 1] = m[:, 2, 2] = s
            c = m @ c
        if "lumaflip" in self.ops:
            on = self._applied(n, p)
            flip = (torch.randint(2, (n,)) * on).float()
            c = (torch.eye(4) - 2 * luma * flip[:, None, None]) @ c
        if "hue" in self.ops:
            on = self._applied(n, p)
            c = _color_rotate((torch.rand(n) * 2 - 1) * math.pi * on) @ c
        if "saturation" in self.ops:
            on = self._applied(n, p)
            s = torch.exp2(torch.randn(n) * SATURATION_STD * on)
            c = (luma + (torch.eye(4) - luma) * s[:, None, None]) @ c
        return c

    # -- applying them ---------------------------------------------------------------------
    @staticmethod
    def _warp(img: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        grid = F.affine_grid(g[:, :2, :].to(img), list(img.shape), align_corners=False)
        return F.grid_sample(img, grid, mode="bilinear", padding_mode="reflection", align_corners=False)

    @staticmethod
    def _recolor(img: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        if img.shape[1] != 3:
            return img
        c = c.to(img)
        n, _, h, w = img.shape
        out = torch.baddbmm(c[:, :3, 3:], c[:, :3, :3], img.reshape(n, 3, h * w))
        return out.reshape(n, 3, h, w)

    def forward(self, images):
        if float(self.p) <= 0:
            return images
        first = images["image"] if isinstance(images, dict) else images
        n = first.shape[0]
        g = self.geometric(n, first.shape[-1])
        c = self.color(n)
        # Only the images that drew a transform are resampled / recoloured (at small p, most draw none).
        g_idx = None if g is None else torch.nonzero((g != torch.eye(3)).flatten(1).any(1)).flatten()
        c_idx = None if c is None else torch.nonzero((c != torch.eye(4)).flatten(1).any(1)).flatten()

        def apply(img: torch.Tensor) -> torch.Tensor:
            if g_idx is not None and len(g_idx):
                idx = g_idx.to(img.device)
                img = img.index_copy(0, idx, self._warp(img.index_select(0, idx), g[g_idx]))
            if c_idx is not None and len(c_idx) and img.shape[1] == 3:
                idx = c_idx.to(img.device)
                img = img.index_copy(0, idx, self._recolor(img.index_select(0, idx), c[c_idx]))
            return img

        if isinstance(images, dict):
            return {k: apply(v) for k, v in images.items() if k in ("image", "image_raw")}
        return apply(images)

    def extra_repr(self) -> str:
        return f"pipeline={self.pipeline}, p={float(self.p):.4f}"


class AdaController:
    """Adjusts an AugmentPipe's p from D's outputs on reals (``observe``), every ``interval`` steps.

    The state (the running sum and count of sign(D(real)) since the last adjustment) is saved in
    checkpoints, so that a resumed run adjusts p exactly as an uninterrupted one.
    """

    def __init__(self, pipe: AugmentPipe, target: float = 0.6, interval: int = 4, ada_kimg: float = 500.0,
                 batch: int = 32):
        self.pipe = pipe
        self.target = target
        self.interval = interval
        self.speed = batch * interval / (ada_kimg * 1000)
        self.signs = torch.zeros(2, dtype=torch.float64)  # [sum of sign(D(real)), count]

    def observe(self, logits_real: torch.Tensor) -> None:
        s = logits_real.detach().float().sign()
        self.signs += torch.tensor([float(s.sum()), float(s.numel())], dtype=torch.float64)

    def due(self, step: int) -> bool:
        return step % self.interval == 0

    def adjust(self, signs: torch.Tensor | None = None) -> float | None:
        """Moves p toward the target and resets the running sum; ``signs`` is the (all-reduced)
        [sum, count] to use instead of this process's own. Returns r_t (None without data)."""
        signs = self.signs if signs is None else signs
        self.signs = torch.zeros(2, dtype=torch.float64)
        if float(signs[1]) <= 0:
            return None
        r_t = float(signs[0] / signs[1])
        step = math.copysign(self.speed, r_t - self.target) if r_t != self.target else 0.0
        self.pipe.p.fill_(min(max(float(self.pipe.p) + step, 0.0), 1.0))
        return r_t


__all__ = ["AugmentPipe", "AdaController", "AugmentError", "PIPELINES"]

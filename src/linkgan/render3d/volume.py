"""Volume rendering: stratified samples, importance samples from the coarse weights, compositing.

The scene is any callable ``decoder(points, dirs) -> (sigma, features)``:

    points (N, M, 3) world coordinates, dirs (N, M, 3) unit ray directions
    sigma (N, M, 1) density >= 0 (per world unit), features (N, M, C)

so a tri-plane MLP and an analytic test field plug in the same way. Every ray is cut into
bins by its samples: bin i runs from the midpoint with the previous sample to the midpoint
with the next one, the first bin starts at ``near`` and the last ends at ``far``, so the bins
tile [near, far] exactly. The density is taken as constant within a bin, which gives

    weight_i = T_i (1 - exp(-sigma_i delta_i)),  T_i = exp(-sum_{j<i} sigma_j delta_j)
    opacity  = sum_i weight_i = 1 - exp(-sum_i sigma_i delta_i)
    features = sum_i weight_i features_i        (no background: a transparent ray gives 0)
    depth    = sum_i weight_i t_i / sum_i weight_i

``depth`` is the expected distance (along the unit ray, from its origin) at which the ray
ends, given that it ends inside [near, far]. A ray that meets no density at all (opacity
0) has no such distance; it reports ``far``, and a nearly transparent ray moves smoothly
towards ``far`` (a tiny constant regularizes the division). Use ``opacity`` to tell the
two apart.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..errors import InputError

Decoder = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]

# Regularizes depth = sum(w t) / sum(w) for rays with (almost) no opacity; see the module docstring.
_DEPTH_EPS = 1e-10
# Added to the (dilated) coarse weights before they become a sampling pdf, so that a ray with
# no density anywhere still spreads its importance samples evenly.
_PDF_FLOOR = 1e-5


@dataclass
class RenderOptions:
    """How rays are sampled. near/far: the ray segment rendered, in world units from the camera
    centre. coarse_samples stratified samples per ray, then fine_samples drawn from the coarse
    weights (0 turns importance sampling off). jitter: random sample positions within their
    strata (training); False gives deterministic strata centres (evaluation, tests)."""

    near: float = 2.25
    far: float = 3.3
    coarse_samples: int = 48
    fine_samples: int = 48
    jitter: bool = True

    def __post_init__(self):
        if not 0 <= self.near < self.far:
            raise InputError(f"RenderOptions: need 0 <= near < far, got near={self.near}, far={self.far}")
        if self.coarse_samples < 2 or self.fine_samples < 0:
            raise InputError(f"RenderOptions: need coarse_samples >= 2 and fine_samples >= 0, got "
                             f"{self.coarse_samples} and {self.fine_samples}")


def _rand(shape, like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    # Drawn on the CPU when a (CPU) generator is given, so that a seed means the same on every device.
    if generator is not None:
        return torch.rand(shape, generator=generator).to(like.device)
    return torch.rand(shape, device=like.device)


def stratified_depths(near: torch.Tensor, far: torch.Tensor, n: int, jitter: bool = True,
                      generator: torch.Generator | None = None) -> torch.Tensor:
    """n depths per ray, one in each of n equal strata of [near, far]: (N, R, n), ascending.

    near, far: (N, R, 1). jitter: uniform within each stratum; otherwise the strata centres.
    """
    k = torch.arange(n, device=near.device, dtype=near.dtype)
    shape = (*near.shape[:-1], n)
    u = _rand(shape, near, generator) if jitter else torch.full(shape, 0.5, device=near.device)
    return near + (k + u) / n * (far - near)


def bin_edges(depths: torch.Tensor, near: torch.Tensor, far: torch.Tensor) -> torch.Tensor:
    """The bins of sorted samples (N, R, S): edges (N, R, S+1) at the midpoints, with near and far at the ends."""
    mids = 0.5 * (depths[..., 1:] + depths[..., :-1])
    return torch.cat([near.expand_as(depths[..., :1]), mids, far.expand_as(depths[..., :1])], dim=-1)


def _weights(sigma: torch.Tensor, depths: torch.Tensor, near: torch.Tensor, far: torch.Tensor):
    """Compositing weights (N, R, S) and the total optical depth (N, R) of sorted samples."""
    delta = bin_edges(depths, near, far).diff(dim=-1).clamp_min(0)
    tau = sigma * delta
    cum = torch.cumsum(tau, dim=-1)
    # T_i (1 - exp(-tau_i)) with expm1, which stays accurate for tiny tau.
    weights = torch.exp(-(cum - tau)) * -torch.expm1(-tau)
    return weights, cum[..., -1]


def composite(sigma: torch.Tensor, features: torch.Tensor, depths: torch.Tensor, near, far) -> dict:
    """Composite sorted samples along each ray (see the module docstring for the formulas).

    sigma (N, R, S) or (N, R, S, 1); features (N, R, S, C); depths (N, R, S) ascending;
    near, far: floats or tensors broadcastable to (N, R, 1). Returns a dict with
    features (N, R, C), depth (N, R, 1), opacity (N, R, 1) and weights (N, R, S).
    """
    if sigma.ndim == 4:
        sigma = sigma.squeeze(-1)
    near, far = _range(near, far, depths)
    weights, total = _weights(sigma, depths, near, far)
    feats = torch.einsum("nrs,nrsc->nrc", weights, features)
    opacity = -torch.expm1(-total).unsqueeze(-1)
    wsum = weights.sum(-1, keepdim=True)
    depth = ((weights * depths).sum(-1, keepdim=True) + _DEPTH_EPS * far) / (wsum + _DEPTH_EPS)
    return {"features": feats, "depth": depth, "opacity": opacity, "weights": weights}


def sample_from_weights(edges: torch.Tensor, weights: torch.Tensor, n: int, jitter: bool = True,
                        generator: torch.Generator | None = None) -> torch.Tensor:
    """Inverse-CDF sampling of n depths per ray from a piecewise-constant pdf: (N, R, n), ascending.

    edges (N, R, B+1) ascending, weights (N, R, B) >= 0 (bin b spans edges[b]..edges[b+1]).
    The n samples take one stratum each of the CDF's range, at its centre or (jitter) at a
    uniform position within it, which spreads them better than independent draws.
    """
    pdf = weights + _PDF_FLOOR
    pdf = pdf / pdf.sum(-1, keepdim=True)
    cdf = torch.cumsum(pdf, dim=-1)
    cdf = torch.cat([torch.zeros_like(cdf[..., :1]), cdf[..., :-1], torch.ones_like(cdf[..., :1])], dim=-1)
    shape = (*weights.shape[:-1], n)
    offset = _rand(shape, weights, generator) if jitter else torch.full(shape, 0.5, device=weights.device)
    u = (torch.arange(n, device=weights.device, dtype=weights.dtype) + offset) / n
    hi = torch.searchsorted(cdf.contiguous(), u.contiguous(), right=True).clamp(1, weights.shape[-1])
    lo = hi - 1
    c_lo, c_hi = cdf.gather(-1, lo), cdf.gather(-1, hi)
    e_lo, e_hi = edges.gather(-1, lo), edges.gather(-1, hi)
    frac = ((u - c_lo) / (c_hi - c_lo).clamp_min(1e-12)).clamp(0, 1)
    return e_lo + frac * (e_hi - e_lo)


def _dilate(weights: torch.Tensor) -> torch.Tensor:
    """3-tap max filter along the ray: a surface that falls between two coarse samples still
    pulls importance samples into the bins on both sides of it."""
    shape = weights.shape
    w = weights.reshape(-1, 1, shape[-1])
    return F.max_pool1d(w, kernel_size=3, stride=1, padding=1).reshape(shape)


def _range(near, far, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    shape = (*like.shape[:2], 1)
    near = torch.as_tensor(near, dtype=like.dtype, device=like.device).expand(shape)
    far = torch.as_tensor(far, dtype=like.dtype, device=like.device).expand(shape)
    return near, far


def _query(decoder: Decoder, origins: torch.Tensor, dirs: torch.Tensor, depths: torch.Tensor):
    """The decoder at the sample points: sigma (N, R, S) and features (N, R, S, C)."""
    n, r, s = depths.shape
    points = origins.unsqueeze(2) + depths.unsqueeze(-1) * dirs.unsqueeze(2)
    sample_dirs = dirs.unsqueeze(2).expand(n, r, s, 3)
    sigma, features = decoder(points.reshape(n, r * s, 3), sample_dirs.reshape(n, r * s, 3))
    if sigma.shape != (n, r * s, 1) or features.ndim != 3 or features.shape[:2] != (n, r * s):
        raise ValueError(f"decoder must return sigma (N, M, 1) and features (N, M, C) for points (N, M, 3) = "
                         f"{(n, r * s, 3)}; got {tuple(sigma.shape)} and {tuple(features.shape)}")
    return sigma.reshape(n, r, s), features.reshape(n, r, s, -1)


def render_rays(decoder: Decoder, origins: torch.Tensor, dirs: torch.Tensor, options: RenderOptions | None = None,
                generator: torch.Generator | None = None) -> dict:
    """Volume-render rays through the field ``decoder``.

    origins, dirs: (N, R, 3), dirs of unit length. First ``coarse_samples`` stratified samples
    per ray; then, with ``fine_samples`` > 0, as many samples again drawn by inverse CDF from
    the coarse weights (found without gradient, as the sample positions need none); both sets
    are merged, sorted and composited together. Returns a dict: features (N, R, C),
    depth (N, R, 1), opacity (N, R, 1), and the merged samples' depths and weights (N, R, S).
    """
    options = options or RenderOptions()
    if origins.shape != dirs.shape or origins.ndim != 3 or origins.shape[-1] != 3:
        raise ValueError(f"origins and dirs must both be (N, R, 3), got {tuple(origins.shape)} and {tuple(dirs.shape)}")
    near, far = _range(options.near, options.far, origins)
    depths = stratified_depths(near, far, options.coarse_samples, options.jitter, generator)
    sigma, features = _query(decoder, origins, dirs, depths)
    if options.fine_samples > 0:
        with torch.no_grad():
            weights, _ = _weights(sigma.detach(), depths, near, far)
            fine = sample_from_weights(bin_edges(depths, near, far), _dilate(weights), options.fine_samples,
                                       options.jitter, generator)
        sigma_f, features_f = _query(decoder, origins, dirs, fine)
        depths, order = torch.sort(torch.cat([depths, fine], dim=-1), dim=-1)
        sigma = torch.cat([sigma, sigma_f], dim=-1).gather(-1, order)
        features = torch.cat([features, features_f], dim=-2)
        features = features.gather(-2, order.unsqueeze(-1).expand(*order.shape, features.shape[-1]))
    out = composite(sigma, features, depths, near, far)
    out["depths"] = depths
    return out

"""How a generator is looked at, for either model kind: sample grids, multi-view renders, and a
link's region as seen from a view.

Every function uses the interface both generators share (linkgan.networks.Generator): identities
are mapped with ``G.frontal_cameras`` (None in 2D) and drawn with ``G.render``; a 3D generator's
other views come from ``G.view_cameras(yaws)``.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .errors import InputError
from .images import make_grid
from .networks import z_from_seeds
from .partition import LatentPartition

DEFAULT_YAWS = (-30.0, 0.0, 30.0)  # degrees: the views of a 3D model's edit grids and metrics


def generate_grid(G, seeds, device, batch: int = 32, truncation_psi: float = 1.0) -> np.ndarray:
    """G's samples at the seeds, with constant noise, from the front view -> uint8 grid (H, W, 3)."""
    imgs = []
    with torch.no_grad():
        for i in range(0, len(seeds), batch):
            z = z_from_seeds(seeds[i:i + batch], G.z_dim, device)
            c = G.frontal_cameras(z.shape[0], device)
            ws = G.mapping(z, c, truncation_psi=truncation_psi)
            imgs.append(G.render(ws, c, noise_mode="const")["image"].cpu())
    return make_grid(torch.cat(imgs))


def render_views(G, ws: torch.Tensor, cameras: torch.Tensor, batch: int = 16, noise_mode: str = "const") -> dict:
    """Renders every ws (N, L, D) of a 3D generator from every camera (V, 25): image (N, V, 3, R, R),
    depth and opacity (N, V, 1, r, r), on the CPU, without gradient."""
    keys = ("image", "depth", "opacity")
    out = {k: [] for k in keys}
    device = next(G.parameters()).device
    with torch.no_grad():
        for v in range(cameras.shape[0]):
            parts = {k: [] for k in keys}
            for i in range(0, ws.shape[0], batch):
                chunk = ws[i:i + batch].to(device)
                r = G.render(chunk, cameras[v:v + 1].to(device).expand(chunk.shape[0], -1), noise_mode=noise_mode)
                for k in keys:
                    parts[k].append(r[k].cpu())
            for k in keys:
                out[k].append(torch.cat(parts[k]))
    return {k: torch.stack(v, dim=1) for k, v in out.items()}


def depth_to_image(depth: torch.Tensor, opacity: torch.Tensor, near: float, far: float, size: int) -> torch.Tensor:
    """Depth (N, 1, r, r) -> a grey image (N, 3, size, size) in [-1, 1]: near is white, far and empty black."""
    t = ((far - depth) / (far - near)).clamp(0, 1) * opacity.clamp(0, 1)
    t = F.interpolate(t, size=(size, size), mode="nearest")
    return (t * 2 - 1).expand(-1, 3, -1, -1)


def region_masks_for_view(partition: LatentPartition, name: str, camera: torch.Tensor, res: int) -> torch.Tensor:
    """bool (res, res): an image link's fixed region, or a 3D-box link's footprint from camera (25,)."""
    region = partition[name].region
    if region.is_volume:
        return region.ray_masks(camera.reshape(1, 25).cpu(), res)[0]
    if not region.is_fixed:
        raise InputError(f"link '{name}': semantic regions are not supported on 3D models yet")
    return region.mask(res)


__all__ = ["DEFAULT_YAWS", "depth_to_image", "generate_grid", "region_masks_for_view", "render_views"]

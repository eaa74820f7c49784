"""Local editing with linked axes: resample, perturb, transplant, interpolate; edit grids.

All functions work on latents ws of shape (N, num_ws, w_dim) and a LatentPartition; the
pipeline (linkgan.pipeline) wraps them for seeds and images.

Resampling draws a new w' = mapping(z') (with the same truncation as the image) and puts
its link axes in place of w's; perturbing adds strength * N(0, I) on the link's axes.
``complement=True`` does the same to every *other* axis (but the shared ones of
--link-shared-axes), which shows that the region holds still while the rest of the image changes.
The link name 'shared' edits those shared axes, in a model that has them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .errors import InputError
from .images import float_to_uint8, make_grid, save_png
from .networks import Generator
from .partition import LatentPartition
from .regions import draw_outline


def edit_latents(G: Generator, partition: LatentPartition, ws: torch.Tensor, link: str, n: int,
                 mode: str = "resample", strength: float = 1.0, truncation: float = 1.0,
                 complement: bool = False, seed: int = 0) -> torch.Tensor:
    """n edited copies of each latent: ws (B, L, D) -> (B, n, L, D).

    Variant j of every image uses the same random draw (seed, j), so a grid column shows one
    edit applied to different images.
    """
    if mode not in ("resample", "perturb"):
        raise InputError(f"edit mode must be 'resample' or 'perturb', not {mode!r}")
    # unknown links fail here; 'shared' edits the shared axes (--link-shared-axes), and with
    # ``complement`` every other axis
    mask = (partition.complement_mask if complement else partition.axes_mask)(link, device=ws.device)
    b = ws.shape[0]
    gen = torch.Generator().manual_seed(int(seed))
    out = []
    for _ in range(n):
        if mode == "resample":
            z = torch.randn(1, G.z_dim, generator=gen).to(ws.device)
            with torch.no_grad():
                target = G.mapping(z, G.frontal_cameras(1, ws.device), truncation_psi=truncation)  # (1, L, D)
            new = torch.where(mask, target.expand_as(ws), ws)
        else:
            delta = strength * torch.randn(1, 1, ws.shape[2], generator=gen).to(ws.device)
            new = torch.where(mask, ws + delta, ws)
        out.append(new)
    return torch.stack(out, dim=1).reshape(b, n, *ws.shape[1:])


def transplant_latents(partition: LatentPartition, ws_a: torch.Tensor, ws_b: torch.Tensor, link: str) -> torch.Tensor:
    """A's latents with the link's axes copied from B: moves B's region content into A."""
    return partition.replace_axes(ws_a, ws_b, link)


def interpolation_latents(partition: LatentPartition, ws: torch.Tensor, target: torch.Tensor, link: str,
                          frames: int) -> torch.Tensor:
    """(1, L, D) -> (frames, L, D): the link's axes go from ws to target and back (a loop)."""
    ts = (1 - torch.cos(torch.linspace(0, 2 * np.pi, frames + 1)[:-1])) / 2  # 0 -> 1 -> 0, eased
    return torch.cat([partition.interpolate_axes(ws, target, link, float(t)) for t in ts])


def change_heatmap(original: torch.Tensor, variants: torch.Tensor, outline: torch.Tensor | None = None,
                   scale: float | None = None) -> np.ndarray:
    """Mean |variant - original| over variants and channels as a 'hot' colour map.

    original: (3, H, W), variants: (n, 3, H, W), both in [-1, 1]; outline: (H, W) bool pixels
    drawn in cyan. ``scale``: the change mapped to full brightness (default: the max).
    Returns uint8 (H, W, 3).
    """
    change = (variants - original[None]).abs().mean(dim=(0, 1))  # (H, W)
    scale = float(change.max()) if scale is None else scale
    t = (change / max(scale, 1e-8)).clamp(0, 1).cpu().numpy()
    rgb = np.stack([np.clip(3 * t, 0, 1), np.clip(3 * t - 1, 0, 1), np.clip(3 * t - 2, 0, 1)], axis=-1)
    rgb = (rgb * 255).round().astype(np.uint8)
    if outline is not None:
        rgb[outline.cpu().numpy()] = (0, 220, 255)
    return rgb


def region_outline(partition: LatentPartition, link: str, res: int,
                   images: torch.Tensor | None = None) -> torch.Tensor | None:
    """Boundary pixels of a link's region (None for the shared axes, which have none).

    A fixed region gives (H, W). A semantic region gives (N, H, W), the outline of each of
    ``images`` (N, 3, H, W) in [-1, 1] as its segmenter sees it, or None without images.
    """
    if partition.names_shared(link):
        return None  # the shared axes have no region of their own
    region = partition[link].region
    if region.is_fixed:
        return draw_outline(region.mask(res))
    return None if images is None else draw_outline(region.masks_for(images))


def edit_grid(originals: torch.Tensor, variants: torch.Tensor, outline: torch.Tensor | None) -> np.ndarray:
    """Rows: [original, variants..., heat map] per image. originals (B,3,H,W), variants (B,n,3,H,W);
    outline: (H, W) for every row, or (B, H, W) per row (semantic regions)."""
    cells = []
    for i, (orig, var) in enumerate(zip(originals, variants)):
        row = [float_to_uint8(orig[None])[0].permute(1, 2, 0).cpu().numpy()]
        row += [v for v in float_to_uint8(var).permute(0, 2, 3, 1).cpu().numpy()]
        row.append(change_heatmap(orig, var, outline[i] if outline is not None and outline.dim() == 3 else outline))
        cells.extend(row)
    return make_grid(np.stack(cells), ncols=variants.shape[1] + 2, pad=1)


def save_gif(frames: torch.Tensor, path: str | Path, fps: int = 15, upscale: int = 1) -> Path:
    """frames (T, 3, H, W) in [-1, 1] -> an endlessly looping GIF."""
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    imgs = [Image.fromarray(a) for a in float_to_uint8(frames).permute(0, 2, 3, 1).cpu().numpy()]
    if upscale > 1:
        imgs = [im.resize((im.width * upscale, im.height * upscale), Image.NEAREST) for im in imgs]
    tmp = path.with_name(f".{path.stem}.tmp.gif")
    imgs[0].save(tmp, save_all=True, append_images=imgs[1:], duration=int(1000 / fps), loop=0)
    tmp.replace(path)
    return path


def display_upscale(res: int, target: int = 128) -> int:
    """Pixel-repeat factor that shows a res-px image at about ``target`` px in grids."""
    return max(1, target // res)


__all__ = ["edit_latents", "transplant_latents", "interpolation_latents", "change_heatmap", "edit_grid",
           "region_outline", "save_gif", "save_png", "display_upscale"]

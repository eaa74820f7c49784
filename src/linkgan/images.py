"""Conversions between network images and pixels, and image grids."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image


def uint8_to_float(img: torch.Tensor) -> torch.Tensor:
    """uint8 (N,C,H,W) in [0,255] -> float32 in [-1, 1]."""
    return img.to(torch.float32) / 127.5 - 1.0


def float_to_uint8(img: torch.Tensor) -> torch.Tensor:
    """float (N,C,H,W) in about [-1, 1] -> uint8 in [0, 255] (clipped, rounded)."""
    return ((img.detach().to(torch.float32) + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)


def to_pil(img: torch.Tensor) -> list[Image.Image]:
    """float (N,C,H,W) in [-1, 1] or uint8 -> list of PIL images (RGB or L)."""
    if img.dtype != torch.uint8:
        img = float_to_uint8(img)
    arr = img.permute(0, 2, 3, 1).cpu().numpy()
    return [Image.fromarray(a[..., 0] if a.shape[2] == 1 else a) for a in arr]


def make_grid(images: np.ndarray | torch.Tensor, ncols: int | None = None, pad: int = 0,
              pad_value: int = 255) -> np.ndarray:
    """Tiles images (N,H,W,C) uint8 (or a torch (N,C,H,W) batch) into one (rows*H, cols*W, C) array.

    ``ncols`` defaults to the smallest square-ish layout; empty cells stay ``pad_value``.
    """
    if torch.is_tensor(images):
        if images.dtype != torch.uint8:
            images = float_to_uint8(images)
        images = images.permute(0, 2, 3, 1).cpu().numpy()
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., None]
    n, h, w, c = images.shape
    ncols = ncols or int(math.ceil(math.sqrt(n)))
    nrows = int(math.ceil(n / ncols))
    grid = np.full((nrows * (h + pad) + pad, ncols * (w + pad) + pad, c), pad_value, dtype=np.uint8)
    for i in range(n):
        r, q = divmod(i, ncols)
        y, x = pad + r * (h + pad), pad + q * (w + pad)
        grid[y:y + h, x:x + w] = images[i]
    return grid[..., 0] if c == 1 else grid


def save_png(array: np.ndarray, path: str | Path, upscale: int = 1) -> Path:
    """Writes a uint8 (H,W[,C]) array as PNG atomically; ``upscale`` enlarges by pixel repetition."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(array)
    if upscale > 1:
        img = img.resize((img.width * upscale, img.height * upscale), Image.NEAREST)
    tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}.png")
    img.save(tmp)
    tmp.replace(path)
    return path

"""What segmenter training and evaluation share: the held-out split of a dataset, and the pixel range."""

from __future__ import annotations

import numpy as np
import torch

from ..errors import InputError


def held_out_split(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, val) indices of n images: val is the last round(n * val_fraction) of a permutation seeded by
    `seed`, so the same n, fraction and seed always give the same split."""
    if not 0 <= val_fraction < 1:
        raise InputError(f"val_fraction must be in [0, 1), got {val_fraction!r}")
    order = np.random.default_rng(seed).permutation(n)
    n_val = round(n * val_fraction)
    if n - n_val < 1:
        raise InputError(f"{n} images leave none to train on with val_fraction={val_fraction}")
    return np.sort(order[:n - n_val]), np.sort(order[n - n_val:])


def to_minus_one_one(images: torch.Tensor) -> torch.Tensor:
    """uint8 (N, 3, H, W) in [0, 255] -> float (N, 3, H, W) in [-1, 1]."""
    return images.float() / 127.5 - 1

"""Choosing the compute device: CUDA when there is a GPU, else the CPU; never hard-coded."""

from __future__ import annotations

import torch

from .errors import InputError


def select_device(spec: str | torch.device | None = "auto") -> torch.device:
    """'auto' (or None) -> cuda if available else cpu; 'cpu', 'cuda', 'cuda:N' as given.

    Asking for CUDA on a machine without it is an error rather than a silent fallback, so
    that a user who expects a GPU run learns at once that it would run on the CPU.
    """
    if spec is None or str(spec) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(spec)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device {spec!r} was requested but CUDA is not available here; use --device cpu or auto")
    return device

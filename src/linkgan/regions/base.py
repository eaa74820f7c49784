"""What every region is: the Region interface, the rasterization convention, coordinate checks.

See linkgan.regions for the kinds and the convention; fixed.py, semantic.py and volume.py hold them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import InputError

# Coordinates may exceed [0, 1] by this much: values typed as 1/3 or computed in
# float32 should not be rejected for rounding.
OUTSIDE_TOLERANCE = 1e-6

_COORDS_HELP = ("region coordinates are fractions of the image in [0, 1] "
                "(x to the right, y down, (0, 0) the top-left corner)")


class RegionError(InputError):
    """A region is malformed, lies outside the image, or is empty; the message says how to fix it."""


def _check_res(res) -> int:
    if isinstance(res, bool) or not isinstance(res, (int, np.integer)) or res < 1:
        raise RegionError(f"resolution must be a positive integer number of pixels, got {res!r}")
    return int(res)


def pixel_centers(res: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel-centre coordinates of a ``res`` x ``res`` grid.

    Returns ``(x, y)``, each float64 of shape (res, res) in (0, 1): ``x[i, j] = (j + 0.5) / res``
    and ``y[i, j] = (i + 0.5) / res`` (row ``i`` counted from the top).
    """
    res = _check_res(res)
    # float64 on the CPU: masks are small, and float32 centres could land on the wrong
    # side of an edge that sits exactly between two pixel centres.
    c = (torch.arange(res, dtype=torch.float64) + 0.5) / res
    y, x = torch.meshgrid(c, c, indexing="ij")
    return x, y


def _number(value, what: str) -> float:
    """``value`` as a finite float, or a RegionError naming ``what``."""
    if isinstance(value, bool):
        raise RegionError(f"{what}: expected a number, got {value!r}")
    if isinstance(value, str):
        # PyYAML reads exponent notation without a dot (``1e-3``) as a string, so numeric
        # strings are accepted; anything else is a typo worth reporting.
        try:
            value = float(value)
        except ValueError:
            raise RegionError(f"{what}: expected a number, got {value!r}") from None
    if not isinstance(value, (int, float, np.integer, np.floating)):
        raise RegionError(f"{what}: expected a number, got {value!r} ({type(value).__name__})")
    value = float(value)
    if not math.isfinite(value):
        raise RegionError(f"{what}: expected a finite number, got {value!r}")
    return value


def _numbers(values, n: int, kind: str, names: str) -> list[float]:
    """Exactly ``n`` finite numbers for the region ``kind`` whose fields are ``names``."""
    if isinstance(values, (str, bytes, Mapping)) or not isinstance(values, Sequence):
        raise RegionError(f"{kind} region needs a list of {n} numbers [{names}], got {values!r}")
    if len(values) != n:
        raise RegionError(f"{kind} region needs {n} numbers [{names}], got {len(values)}: {list(values)!r}")
    return [_number(v, f"{kind} region [{names}]") for v in values]


def _area_weights(n_out: int, n_in: int) -> torch.Tensor:
    """(n_out, n_in) float64: share of output cell i, on [0, 1], covered by input cell k; rows sum to 1."""
    edges_out = torch.arange(n_out + 1, dtype=torch.float64) / n_out
    edges_in = torch.arange(n_in + 1, dtype=torch.float64) / n_in
    lo = torch.maximum(edges_out[:-1, None], edges_in[None, :-1])
    hi = torch.minimum(edges_out[1:, None], edges_in[None, 1:])
    return (hi - lo).clamp(min=0) * n_out


def _fmt(values) -> str:
    return "[" + ", ".join(f"{v:g}" for v in values) + "]"


class Region:
    """Base class of all regions.

    Subclasses set ``kind`` (the spec key) and ``is_fixed`` (True when every sample uses
    the same pixels) and implement ``_rasterize``, ``to_spec`` and ``bounds``.
    Regions are immutable; two regions are equal when their specs are.
    """

    kind: str = ""
    is_fixed: bool = True
    is_volume: bool = False  # a 3D box, which constrains a 3D generator's field rather than pixels

    def __init__(self) -> None:
        # CPU masks already computed, by resolution; the regularizer asks for the same
        # resolution at every step.
        self._mask_cache: dict[int, torch.Tensor] = {}

    # -- geometry ---------------------------------------------------------------------
    def mask(self, res: int, device=None) -> torch.Tensor:
        """Binary mask of the region: bool (res, res), True inside, row 0 at the top."""
        res = _check_res(res)
        cached = self._mask_cache.get(res)
        if cached is None:
            cached = self._rasterize(res)
            self._mask_cache[res] = cached
        # A copy, so a caller editing the mask in place cannot corrupt the cache.
        return cached.to(device=device, copy=True)

    def _rasterize(self, res: int) -> torch.Tensor:
        raise NotImplementedError

    def bounds(self) -> tuple[float, float, float, float] | None:
        """Bounding box ``(x0, y0, x1, y1)`` in [0, 1] image coordinates, or None when undefined."""
        raise NotImplementedError

    def _extent(self) -> list[tuple[str, float]]:
        """Labelled coordinates that must lie in [0, 1] for the region to be inside the image."""
        return []

    def validate(self, res: int | None, name: str = "region") -> None:
        """Raise RegionError if the region leaves the image or covers no pixel at ``res``.

        ``name`` is the link the region belongs to, quoted in the message; ``res=None`` skips
        the emptiness check.
        """
        bad = [f"{label}={v:g}" for label, v in self._extent()
               if v < -OUTSIDE_TOLERANCE or v > 1 + OUTSIDE_TOLERANCE]
        if bad:
            raise RegionError(
                f"link '{name}': {self.describe()} extends outside the image ({', '.join(bad)}); "
                f"{_COORDS_HELP}: keep every coordinate within [0, 1]")
        if res is not None and not bool(self.mask(res).any()):
            raise RegionError(
                f"link '{name}': {self.describe()} covers no pixel at resolution {res}x{res} "
                f"(a pixel is inside when its centre is); enlarge the region or raise the resolution")

    # -- serialization ----------------------------------------------------------------
    def to_spec(self) -> dict:
        """The region as a plain dict, as written in a links file; ``region_from_spec`` inverts it."""
        raise NotImplementedError

    def describe(self) -> str:
        """Short human-readable form for messages, e.g. ``box [0.2, 0.3, 0.8, 0.5]``."""
        spec = self.to_spec()
        return f"{self.kind} region {spec[self.kind]!r}"

    def __eq__(self, other) -> bool:
        return type(self) is type(other) and self.to_spec() == other.to_spec()

    def __hash__(self) -> int:
        return hash((type(self).__name__, repr(self.to_spec())))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.to_spec()!r})"


def draw_outline(mask: torch.Tensor) -> torch.Tensor:
    """Boundary pixels of a mask: inside pixels with a 4-neighbour outside (or at the image edge).

    ``mask``: bool (H, W) or (..., H, W). Returns a bool tensor of the same shape, for
    drawing region outlines on image grids. Treating beyond-the-edge as outside means a
    region touching the border still gets a closed outline.
    """
    if mask.dim() < 2:
        raise RegionError(f"draw_outline needs a mask of shape (H, W) or (..., H, W), got {tuple(mask.shape)}")
    m = mask.bool()
    p = F.pad(m.to(torch.uint8), (1, 1, 1, 1)).bool()  # False border
    eroded = m & p[..., :-2, 1:-1] & p[..., 2:, 1:-1] & p[..., 1:-1, :-2] & p[..., 1:-1, 2:]
    return m & ~eroded

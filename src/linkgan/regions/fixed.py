"""Fixed regions: the same pixels for every sample (box, ellipse, polygon, mask image)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .base import Region, RegionError, _area_weights, _fmt, _numbers, pixel_centers


class BoxRegion(Region):
    """Axis-aligned box ``x0 <= x < x1``, ``y0 <= y < y1`` in [0, 1] image coordinates (y down)."""

    kind = "box"

    def __init__(self, x0: float, y0: float, x1: float, y1: float) -> None:
        super().__init__()
        self.x0, self.y0, self.x1, self.y1 = _numbers([x0, y0, x1, y1], 4, "box", "x0, y0, x1, y1")
        if not (self.x0 < self.x1 and self.y0 < self.y1):
            raise RegionError(
                f"box region {_fmt([self.x0, self.y0, self.x1, self.y1])} is empty or inverted: "
                f"it is [x0, y0, x1, y1] with x0 < x1 and y0 < y1 (the top-left corner first, y down)")

    def _rasterize(self, res: int) -> torch.Tensor:
        x, y = pixel_centers(res)
        return (x >= self.x0) & (x < self.x1) & (y >= self.y0) & (y < self.y1)

    def bounds(self):
        return (self.x0, self.y0, self.x1, self.y1)

    def _extent(self):
        return [("x0", self.x0), ("y0", self.y0), ("x1", self.x1), ("y1", self.y1)]

    def to_spec(self) -> dict:
        return {"box": [self.x0, self.y0, self.x1, self.y1]}


class EllipseRegion(Region):
    """Axis-aligned ellipse with centre ``(cx, cy)`` and radii ``rx, ry > 0``, in [0, 1] coordinates."""

    kind = "ellipse"

    def __init__(self, cx: float, cy: float, rx: float, ry: float) -> None:
        super().__init__()
        self.cx, self.cy, self.rx, self.ry = _numbers([cx, cy, rx, ry], 4, "ellipse", "cx, cy, rx, ry")
        if not (self.rx > 0 and self.ry > 0):
            raise RegionError(
                f"ellipse region {_fmt([self.cx, self.cy, self.rx, self.ry])} has a radius <= 0: "
                f"it is [cx, cy, rx, ry] with both radii rx, ry > 0")

    def _rasterize(self, res: int) -> torch.Tensor:
        x, y = pixel_centers(res)
        return ((x - self.cx) / self.rx) ** 2 + ((y - self.cy) / self.ry) ** 2 <= 1.0

    def bounds(self):
        return (self.cx - self.rx, self.cy - self.ry, self.cx + self.rx, self.cy + self.ry)

    def _extent(self):
        x0, y0, x1, y1 = self.bounds()
        return [("cx-rx", x0), ("cy-ry", y0), ("cx+rx", x1), ("cy+ry", y1)]

    def to_spec(self) -> dict:
        return {"ellipse": [self.cx, self.cy, self.rx, self.ry]}


class PolygonRegion(Region):
    """Simple or self-intersecting polygon given by >= 3 vertices ``[[x, y], ...]`` in [0, 1].

    Inside is decided by the even-odd rule, so clockwise and counter-clockwise vertex
    orders give the same mask; the polygon closes itself (last vertex back to the first).
    """

    kind = "polygon"

    def __init__(self, points) -> None:
        super().__init__()
        if isinstance(points, (str, bytes, Mapping)) or not isinstance(points, Sequence):
            raise RegionError(f"polygon region needs a list of [x, y] points, got {points!r}")
        pts = [tuple(_numbers(p, 2, "polygon", "x, y")) for p in points]
        if len(pts) < 3:
            raise RegionError(f"polygon region needs at least 3 [x, y] points, got {len(pts)}: {pts!r}")
        self.points: tuple[tuple[float, float], ...] = tuple(pts)
        xs, ys = zip(*pts)
        # Shoelace area: a degenerate polygon (all points on a line) would silently be empty.
        area = 0.5 * abs(sum(xs[k] * ys[k - 1] - xs[k - 1] * ys[k] for k in range(len(pts))))
        if area == 0.0:
            raise RegionError(f"polygon region {self._points_list()!r} has zero area (its points are collinear)")

    def _points_list(self) -> list[list[float]]:
        return [[x, y] for x, y in self.points]

    def _rasterize(self, res: int) -> torch.Tensor:
        x, y = pixel_centers(res)
        inside = torch.zeros(res, res, dtype=torch.bool)
        n = len(self.points)
        # Crossing number: cast a ray from each pixel centre towards +x and flip ``inside``
        # at every edge it crosses. The half-open test on y (one endpoint strictly above,
        # the other not) counts a ray through a vertex once, and gives pixels on an edge
        # shared by two polygons to exactly one of them.
        for k in range(n):
            xa, ya = self.points[k]
            xb, yb = self.points[k - 1]
            if ya == yb:
                continue  # horizontal edges never straddle a ray
            if ya > yb:
                # Same endpoint order whatever the winding, so that the crossing point is
                # rounded identically and both windings give bit-identical masks.
                xa, ya, xb, yb = xb, yb, xa, ya
            straddles = (ya > y) != (yb > y)
            x_cross = xa + (y - ya) * (xb - xa) / (yb - ya)
            inside ^= straddles & (x < x_cross)
        return inside

    def bounds(self):
        xs, ys = zip(*self.points)
        return (min(xs), min(ys), max(xs), max(ys))

    def _extent(self):
        return [(f"point {k} {'xy'[c]}", p[c]) for k, p in enumerate(self.points) for c in (0, 1)]

    def to_spec(self) -> dict:
        return {"polygon": self._points_list()}

    def describe(self) -> str:
        return f"polygon region with {len(self.points)} points, bounds {_fmt(self.bounds())}"


class MaskRegion(Region):
    """Region drawn as an image: a greyscale or RGB(A) PNG whose pixels > 127 (as greyscale) are inside.

    The image spans the whole [0, 1] x [0, 1] square (a non-square image is stretched).
    At resolution ``res`` each output pixel is inside when more than half of the area it
    covers in the drawn mask is inside; a strict "more than half" keeps two masks that
    do not overlap as drawn disjoint at every resolution. A relative ``path`` is resolved
    against ``base_dir`` (the folder of the links file) when given, else against the
    working directory.
    """

    kind = "mask"

    def __init__(self, path: str | os.PathLike, base_dir: str | os.PathLike | None = None) -> None:
        super().__init__()
        if not isinstance(path, (str, os.PathLike)) or not str(path):
            raise RegionError(f"mask region needs the path of a PNG file, got {path!r}")
        p = Path(path).expanduser()
        if base_dir is not None and not p.is_absolute():
            p = (Path(base_dir).expanduser() / p).absolute()
        self.path = p
        self._image: torch.Tensor | None = None  # (H, W) bool, loaded on first use

    def _load(self) -> torch.Tensor:
        """The drawn mask at its own size: bool (H, W), True inside; read once, then cached."""
        if self._image is None:
            from PIL import Image, UnidentifiedImageError

            if not self.path.is_file():
                raise RegionError(
                    f"mask region file {str(self.path)!r} does not exist; check the path "
                    f"(relative paths are taken from the folder of the links file)")
            try:
                with Image.open(self.path) as im:
                    im = self._flatten(im)
                    arr = np.asarray(im, dtype=np.uint8)
            except (OSError, UnidentifiedImageError, ValueError) as err:
                raise RegionError(
                    f"mask region file {str(self.path)!r} could not be read as an image ({err}); "
                    f"give a greyscale or RGB PNG, white (> 127) inside the region") from None
            self._image = torch.from_numpy(arr > 127)
        return self._image

    @staticmethod
    def _flatten(im):
        # Transparent pixels count as outside: composite RGBA/LA onto black before
        # converting to greyscale, instead of dropping the alpha channel.
        if im.mode in ("RGBA", "LA") or (im.mode == "P" and "transparency" in im.info):
            from PIL import Image

            im = im.convert("RGBA")
            black = Image.new("RGBA", im.size, (0, 0, 0, 255))
            im = Image.alpha_composite(black, im)
        return im.convert("L")

    def _rasterize(self, res: int) -> torch.Tensor:
        drawn = self._load()
        h, w = drawn.shape
        if h % res == 0 and w % res == 0:
            # The usual case (a 256 px drawing used at 64 px): whole blocks, exact and fast.
            cover = F.avg_pool2d(drawn.float()[None, None], (h // res, w // res))[0, 0].double()
        else:
            # Exact area average for any ratio, up or down: cover = A_y @ drawn @ A_x^T, where
            # A[i, k] is the fraction of output cell i covered by input cell k.
            # (adaptive_avg_pool2d would use overlapping windows for such ratios.)
            cover = _area_weights(res, h) @ drawn.double() @ _area_weights(res, w).T
        # Strictly more than half (with a margin for rounding): two drawings that do not
        # overlap can then never both claim an output pixel.
        return cover > 0.5 + 1e-9

    def bounds(self):
        img = self._load()
        if not bool(img.any()):
            return None
        h, w = img.shape
        rows = torch.nonzero(img.any(dim=1)).flatten()
        cols = torch.nonzero(img.any(dim=0)).flatten()
        return (int(cols[0]) / w, int(rows[0]) / h, (int(cols[-1]) + 1) / w, (int(rows[-1]) + 1) / h)

    def validate(self, res: int | None, name: str = "region") -> None:
        try:
            img = self._load()
        except RegionError as err:
            raise RegionError(f"link '{name}': {err}") from None
        if not bool(img.any()):
            raise RegionError(
                f"link '{name}': mask region file {str(self.path)!r} has no pixel > 127; "
                f"paint the region white on a black background")
        super().validate(res, name)

    def to_spec(self) -> dict:
        return {"mask": str(self.path)}

    def describe(self) -> str:
        return f"mask region {str(self.path)!r}"


def overlap_fraction(a: Region, b: Region, res: int) -> float:
    """Shared pixels of two fixed regions at ``res``, as a fraction of the smaller one's pixels (0 to 1)."""
    ma, mb = a.mask(res), b.mask(res)
    smaller = min(int(ma.sum()), int(mb.sum()))
    if smaller == 0:
        return 0.0
    return int((ma & mb).sum()) / smaller


def masks_overlap(a: Region, b: Region, res: int) -> bool:
    """True when two fixed regions share at least one pixel at resolution ``res``."""
    return bool((a.mask(res) & b.mask(res)).any())

"""Image regions that LinkGAN links to latent axes: their geometry and their masks.

Coordinates are resolution independent: fractions of the image in [0, 1], x to the
right and y DOWN (y = 0 is the top row), so one region works at every resolution.

Rasterization convention: at resolution ``res`` the pixel in row ``i`` and column ``j``
belongs to a region when its centre ``((j + 0.5) / res, (i + 0.5) / res)`` lies inside
the shape. Boxes are half-open (``x0 <= x < x1``) and polygons use the half-open
crossing rule, so two shapes that only share an edge never share a pixel, and a box
whose edges fall on pixel boundaries covers exactly ``(x1 - x0) * (y1 - y0) * res**2``
pixels.

Region kinds:
  - ``BoxRegion``      ``{box: [x0, y0, x1, y1]}``
  - ``EllipseRegion``  ``{ellipse: [cx, cy, rx, ry]}``
  - ``PolygonRegion``  ``{polygon: [[x, y], [x, y], ...]}``
  - ``MaskRegion``     ``{mask: path/to/mask.png}``
  - ``SemanticRegion`` ``{semantic: [sky, building], segmenter: ...}`` (per-image masks)

The first four are *fixed*: the same pixels for every sample. A semantic region's
pixels depend on the generated image and come from a segmentation model.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .errors import InputError

__all__ = [
    "REGION_KINDS",
    "BoxRegion",
    "EllipseRegion",
    "MaskRegion",
    "PolygonRegion",
    "Region",
    "RegionError",
    "SemanticRegion",
    "draw_outline",
    "masks_overlap",
    "overlap_fraction",
    "parse_region_shorthand",
    "pixel_centers",
    "region_from_spec",
]

# Coordinates may exceed [0, 1] by this much: values typed as 1/3 or computed in
# float32 should not be rejected for rounding.
OUTSIDE_TOLERANCE = 1e-6

REGION_KINDS = ("box", "ellipse", "polygon", "mask", "semantic", "box3d")  # box3d: linkgan.regions3d
SEMANTIC_KEYS = ("segmenter", "mask_mode", "margin")  # the optional keys of a semantic region spec

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


MASK_MODES = ("union", "shared", "source")


def resolve_segmenter_spec(spec: str, base_dir: str | os.PathLike | None = None) -> str:
    """A segmenter spec with a file path made absolute (relative to ``base_dir``, else the cwd).

    ``package.module:attr`` specs (a Python callable) are returned unchanged, unless a file of
    that name exists. Absolute paths keep a checkpoint's links usable from any folder.
    """
    from .segment.adapters import CALLABLE_PATTERN, normalize_spec

    p = Path(spec).expanduser()
    if base_dir is not None and not p.is_absolute():
        p = Path(base_dir).expanduser() / p
    if CALLABLE_PATTERN.fullmatch(spec) and not p.exists():
        return spec
    return normalize_spec(p)


class SemanticRegion(Region):
    """Per-image region: the pixels a segmentation model labels as any of ``classes``.

    ``segmenter`` names the model: a built-in ``.safetensors`` segmenter, a TorchScript or ONNX
    file, or a Python callable ``package.module:attr`` (see linkgan.segment.load_segmenter).
    Such a region has no fixed mask: ``mask()`` raises, and masks come from ``masks_for(images)``.

    ``mask_mode`` says which image's mask counts when a latent edit turns x into x':
      * ``union`` (default): the pixels that are in the region in x OR in x'. A sky edit may
        move the skyline; pixels that become (or stop being) sky belong to the edit, so they
        are not counted as change outside the region, and a complement edit that paints
        over the sky is counted as change inside it. The region may thus change its shape
        with its own axes but not with the others.
      * ``shared``: the link's own edit as in ``union``; the complement's edit only over the
        pixels that are in the region in both x and x'. The rest of w may then move the
        region's border (a building grows into the sky), but not change what stays region.
        Use it for several semantic links that touch each other: under ``union`` the sky
        link forbids the building axes to move the skyline and the building link forbids
        the sky axes to, so no axis may move it and the generator freezes the layout
        (docs/results/semantic.md shows the collapse).
      * ``source``: the mask of x only. Then any change of the region's extent counts as
        change outside it, which forbids shape edits (a sky link could only recolour).

    ``margin`` (a fraction of the image width, default 0) leaves a band that wide along the
    region's border out of the regularizer: the band just outside the region does not count
    against the link's own edit, and the band just inside it does not count against the
    complement's. A generator's edges are a pixel or two wide and a segmenter's labels there
    are uncertain, so without it moving an edge at all costs both links, and a generator can
    answer by freezing the border (docs/results/semantic.md). Metrics still use the region
    itself.
    """

    kind = "semantic"
    is_fixed = False

    def __init__(self, classes, segmenter: str | None = None, mask_mode: str = "union",
                 base_dir: str | os.PathLike | None = None, margin: float = 0.0) -> None:
        super().__init__()
        if isinstance(classes, str):
            classes = [classes]
        if isinstance(classes, (bytes, Mapping)) or not isinstance(classes, Sequence) or not classes:
            raise RegionError(f"semantic region needs a non-empty list of class names, e.g. [sky], got {classes!r}")
        bad = [c for c in classes if not isinstance(c, str) or not c.strip()]
        if bad:
            raise RegionError(f"semantic region class names must be non-empty strings, got {bad!r} in {list(classes)!r}")
        if segmenter is not None and (not isinstance(segmenter, (str, os.PathLike)) or not str(segmenter)):
            raise RegionError(f"semantic region segmenter must be a path or spec string, got {segmenter!r}")
        if mask_mode not in MASK_MODES:
            raise RegionError(f"semantic region mask_mode must be one of {', '.join(MASK_MODES)}, got {mask_mode!r}")
        if isinstance(margin, bool) or not isinstance(margin, (int, float)) or not 0 <= margin < 0.5:
            raise RegionError(f"semantic region margin is a fraction of the image width in [0, 0.5), e.g. 0.03 "
                              f"(one pixel at 32 px), got {margin!r}")
        self.margin = float(margin)
        self.classes: tuple[str, ...] = tuple(c.strip() for c in classes)
        self.segmenter = None if segmenter is None else resolve_segmenter_spec(str(segmenter), base_dir)
        self.mask_mode = mask_mode
        self._model = None  # the loaded segmenter, on first use

    def with_segmenter(self, segmenter: str | None, base_dir: str | os.PathLike | None = None) -> "SemanticRegion":
        """This region, or a copy using ``segmenter`` when it names none itself."""
        if self.segmenter is not None or segmenter is None:
            return self
        return SemanticRegion(self.classes, segmenter, self.mask_mode, base_dir, self.margin)

    def margin_pixels(self, res: int) -> int:
        """The border band of ``margin`` in pixels at resolution ``res``."""
        return round(self.margin * res)

    def mask(self, res: int, device=None) -> torch.Tensor:
        raise RegionError(
            f"semantic regions have per-image masks; use masks_for(images) "
            f"(region {list(self.classes)!r} has no fixed mask at resolution {res})")

    def model(self):
        """The loaded segmenter (a linkgan.segment.Segmenter), checked to know every class."""
        if self._model is None:
            if self.segmenter is None:
                raise RegionError(
                    f"semantic region {'+'.join(self.classes)} names no segmenter; add 'segmenter: seg.safetensors' "
                    "to the region, or pass --segmenter (train one with `linkgan segmenter train`)")
            from .segment import load_segmenter

            # Region specs come from files (links YAML, configs, checkpoints), so a segmenter that is
            # code loads only when the user named it too (--segmenter, trust_segmenter).
            model = load_segmenter(self.segmenter, named_by=f"semantic region {'+'.join(self.classes)}")
            model.class_ids(self.classes)  # unknown class names fail here, listing the known ones
            self._model = model
        return self._model

    def masks_for(self, images: torch.Tensor) -> torch.Tensor:
        """Per-image masks, bool (N, H, W), for ``images`` (N, 3, H, W) in [-1, 1] (no gradient)."""
        model = self.model().to(images.device)
        return model.masks(images.detach(), list(self.classes))

    def edit_masks(self, x: torch.Tensor, edited: torch.Tensor) -> torch.Tensor:
        """Masks (N, H, W) for comparing ``edited`` (x with the link's axes changed) with ``x``,
        per ``mask_mode``; one segmenter call."""
        if self.mask_mode == "source":
            return self.masks_for(x)
        both = self.masks_for(torch.cat([x, edited]))
        return both[: x.shape[0]] | both[x.shape[0]:]

    def complement_masks(self, x: torch.Tensor, edited: torch.Tensor) -> torch.Tensor:
        """Masks (N, H, W) for comparing ``edited`` (x with every other axis changed) with ``x``."""
        if self.mask_mode != "shared":
            return self.edit_masks(x, edited)
        both = self.masks_for(torch.cat([x, edited]))
        return both[: x.shape[0]] & both[x.shape[0]:]

    def bounds(self):
        return None

    def validate(self, res: int | None, name: str = "region") -> None:
        # Nothing geometric to check: the pixels are only known per generated image.
        return None

    def to_spec(self) -> dict:
        spec: dict = {"semantic": list(self.classes)}
        if self.segmenter is not None:
            spec["segmenter"] = self.segmenter
        if self.mask_mode != "union":
            spec["mask_mode"] = self.mask_mode
        if self.margin:
            spec["margin"] = self.margin
        return spec

    def describe(self) -> str:
        return f"semantic region {'+'.join(self.classes)}"


_EXAMPLES = ("{box: [x0, y0, x1, y1]}, {ellipse: [cx, cy, rx, ry]}, {polygon: [[x, y], ...]}, "
             "{mask: path.png} or {semantic: [class, ...]}")


def region_from_spec(spec, base_dir: str | os.PathLike | None = None) -> Region:
    """Build a region from its spec dict (one key naming the kind), as found in a links file.

    ``spec`` may also be a Region (returned as is) or a shorthand string such as
    ``"box:0.2,0.3,0.8,0.5"`` (see ``parse_region_shorthand``). ``base_dir`` resolves
    relative mask paths, normally the folder of the links file.
    """
    if isinstance(spec, Region):
        return spec
    if isinstance(spec, str):
        return parse_region_shorthand(spec, base_dir=base_dir)
    if not isinstance(spec, Mapping):
        raise RegionError(f"a region is a mapping such as {_EXAMPLES}; got {spec!r}")
    kinds = [k for k in spec if k in REGION_KINDS]
    unknown = [k for k in spec if k not in REGION_KINDS and k not in SEMANTIC_KEYS]
    if unknown and not kinds:
        raise RegionError(
            f"unknown region kind {unknown[0]!r} in region {dict(spec)!r}; "
            f"valid kinds: {', '.join(REGION_KINDS)}, e.g. {_EXAMPLES}")
    if unknown:
        raise RegionError(f"unexpected key(s) {unknown!r} in region {dict(spec)!r}; a region has one kind "
                          f"key ({', '.join(REGION_KINDS)}) and, for semantic regions, 'segmenter', 'mask_mode' and "
                          f"'margin'")
    if len(kinds) != 1:
        found = f"several region kinds {kinds!r}" if kinds else "no region kind"
        raise RegionError(f"{found} in region {dict(spec)!r}; give exactly one of "
                          f"{', '.join(REGION_KINDS)}, e.g. {_EXAMPLES}")
    kind = kinds[0]
    value = spec[kind]
    for key in SEMANTIC_KEYS:
        if key in spec and kind != "semantic":
            raise RegionError(f"'{key}' only applies to semantic regions, not to {kind} region {dict(spec)!r}")
    if kind == "box":
        return BoxRegion(*_numbers(value, 4, "box", "x0, y0, x1, y1"))
    if kind == "ellipse":
        return EllipseRegion(*_numbers(value, 4, "ellipse", "cx, cy, rx, ry"))
    if kind == "polygon":
        return PolygonRegion(value)
    if kind == "mask":
        return MaskRegion(value, base_dir=base_dir)
    if kind == "box3d":  # a box in 3D world coordinates, for 3D generators
        from .regions3d import BOX3D_FIELDS, Box3DRegion

        return Box3DRegion(*_numbers(value, 6, "box3d", BOX3D_FIELDS))
    return SemanticRegion(value, segmenter=spec.get("segmenter"), mask_mode=spec.get("mask_mode", "union"),
                          base_dir=base_dir, margin=spec.get("margin", 0.0))


def parse_region_shorthand(text: str, base_dir: str | os.PathLike | None = None) -> Region:
    """Parse a one-line region, as typed on the command line.

    Forms: ``box:x0,y0,x1,y1``, ``ellipse:cx,cy,rx,ry``, ``polygon:x,y;x,y;x,y``,
    ``mask:path/to/mask.png`` and ``semantic:sky+building`` (classes joined by ``+``).
    """
    if not isinstance(text, str) or ":" not in text:
        raise RegionError(
            f"region {text!r} is not KIND:VALUES; use box:x0,y0,x1,y1, ellipse:cx,cy,rx,ry, "
            f"polygon:x,y;x,y;x,y, mask:path.png or semantic:class+class")
    kind, _, rest = text.partition(":")  # only the first ':' -- a mask path may contain more
    kind, rest = kind.strip().lower(), rest.strip()
    if kind not in REGION_KINDS:
        raise RegionError(f"unknown region kind {kind!r} in {text!r}; valid kinds: {', '.join(REGION_KINDS)}")
    if not rest:
        raise RegionError(f"region {text!r} has no values after '{kind}:'")
    if kind in ("box", "ellipse", "box3d"):
        return region_from_spec({kind: [v.strip() for v in rest.split(",")]})
    if kind == "polygon":
        return PolygonRegion([[v.strip() for v in p.split(",")] for p in rest.split(";") if p.strip()])
    if kind == "mask":
        return MaskRegion(rest, base_dir=base_dir)
    return SemanticRegion([c for c in rest.split("+")])


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

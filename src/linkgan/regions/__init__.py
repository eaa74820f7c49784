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
  - ``Box3DRegion``    ``{box3d: [x0, y0, z0, x1, y1, z1]}`` (a world box, for 3D generators)

The first four are *fixed*: the same pixels for every sample. A semantic region's
pixels depend on the generated image and come from a segmentation model. A 3D box is
seen through the pixels whose ray crosses it, which depend on the camera.

Modules: base.py (the Region interface), fixed.py, semantic.py, volume.py; this module
parses specs into regions.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from .base import OUTSIDE_TOLERANCE, Region, RegionError, _numbers, draw_outline, pixel_centers
from .fixed import BoxRegion, EllipseRegion, MaskRegion, PolygonRegion, masks_overlap, overlap_fraction
from .semantic import MASK_MODES, SemanticRegion, resolve_segmenter_spec
from .volume import BOX3D_FIELDS, Box3DRegion, boxes_overlap

__all__ = [
    "MASK_MODES",
    "OUTSIDE_TOLERANCE",
    "REGION_KINDS",
    "BoxRegion",
    "Box3DRegion",
    "EllipseRegion",
    "MaskRegion",
    "PolygonRegion",
    "Region",
    "RegionError",
    "SemanticRegion",
    "boxes_overlap",
    "draw_outline",
    "masks_overlap",
    "overlap_fraction",
    "parse_region_shorthand",
    "pixel_centers",
    "region_from_spec",
    "resolve_segmenter_spec",
]

REGION_KINDS = ("box", "ellipse", "polygon", "mask", "semantic", "box3d")
SEMANTIC_KEYS = ("segmenter", "mask_mode", "margin")  # the optional keys of a semantic region spec

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

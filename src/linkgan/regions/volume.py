"""Regions in 3D world coordinates, for 3D-aware generators (beyond the paper).

A ``Box3DRegion`` ``{box3d: [x0, y0, z0, x1, y1, z1]}`` is an axis-aligned box in the world of
linkgan.render3d (right-handed, y up, the subject at the origin facing +z, its own left +x;
a tri-plane generator spans the cube [-box_size/2, box_size/2]^3, 1 world unit by default).
For example the toyheads nose lies in about [-0.07, -0.2, 0.18, 0.07, 0.02, 0.45].

The LinkGAN regularizer ties such a link's axes to the generator's radiance field inside
the box (linkgan.threed.volume_link_loss): the decoded density and colour features at 3D
points outside the box must not change when the link's axes move, and those inside it
must not change when the other axes move. As the constraint is on the field itself, it
holds from every viewpoint. In image space, a box is seen through the pixels whose ray
passes through it (``ray_masks``, per camera); they are what the metrics and edit grids use.
"""

from __future__ import annotations

import torch

from .base import Region, RegionError, _numbers

BOX3D_FIELDS = "x0, y0, z0, x1, y1, z1"


class Box3DRegion(Region):
    """Axis-aligned world box ``x0 <= x < x1``, ``y0 <= y < y1``, ``z0 <= z < z1`` (world units, y up)."""

    kind = "box3d"
    is_fixed = False  # no fixed pixels: its image footprint depends on the camera
    is_volume = True

    def __init__(self, x0: float, y0: float, z0: float, x1: float, y1: float, z1: float) -> None:
        super().__init__()
        v = _numbers([x0, y0, z0, x1, y1, z1], 6, "box3d", BOX3D_FIELDS)
        self.lo, self.hi = tuple(v[:3]), tuple(v[3:])
        bad = [axis for axis, a, b in zip("xyz", self.lo, self.hi) if not a < b]
        if bad:
            raise RegionError(f"box3d region {v}: need {', '.join(f'{a}0 < {a}1' for a in bad)}; a box3d is "
                              f"[{BOX3D_FIELDS}] in world units (y up, the subject faces +z)")

    # -- geometry ---------------------------------------------------------------------------
    def contains(self, points: torch.Tensor) -> torch.Tensor:
        """bool (...,): which world points (..., 3) lie in the box (half-open, like BoxRegion)."""
        lo = torch.tensor(self.lo, dtype=points.dtype, device=points.device)
        hi = torch.tensor(self.hi, dtype=points.dtype, device=points.device)
        return ((points >= lo) & (points < hi)).all(dim=-1)

    def sample_inside(self, n: int, m: int, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
        """m points drawn uniformly in the box for each of n samples: (n, m, 3)."""
        lo, hi = torch.tensor(self.lo), torch.tensor(self.hi)
        u = torch.rand(n, m, 3, generator=generator)
        return (lo + u * (hi - lo)).to(device)

    def ray_masks(self, cameras: torch.Tensor, res: int) -> torch.Tensor:
        """bool (N, res, res): the pixels whose ray (from the camera centre, forward) passes through the box.

        cameras: (N, 25) EG3D camera labels. A pixel outside this footprint cannot see any
        point of the box, so an edit confined to the box changes none of those pixels.
        """
        from ..render3d import ray_bundle, split_camera_labels

        cam2world, K = split_camera_labels(cameras)
        origins, dirs = ray_bundle(cam2world, K, res)
        lo = torch.tensor(self.lo, dtype=dirs.dtype, device=dirs.device)
        hi = torch.tensor(self.hi, dtype=dirs.dtype, device=dirs.device)
        # Slab test; a zero direction component gives +-inf, which the min/max handle.
        with torch.no_grad():
            inv = 1.0 / dirs
            t0, t1 = (lo - origins) * inv, (hi - origins) * inv
            t_near = torch.minimum(t0, t1).nan_to_num(nan=-float("inf")).amax(dim=-1)
            t_far = torch.maximum(t0, t1).nan_to_num(nan=float("inf")).amin(dim=-1)
        hit = (t_far >= t_near) & (t_far > 0)
        return hit.reshape(-1, res, res)

    # -- the Region interface ---------------------------------------------------------------
    def mask(self, res: int, device=None) -> torch.Tensor:
        raise RegionError(f"{self.describe()} is a box in 3D world coordinates, not a set of pixels; its image "
                          "footprint depends on the camera (ray_masks(cameras, res)), and it needs a 3D generator "
                          "(model kind 3d)")

    def masks_for(self, images: torch.Tensor) -> torch.Tensor:
        return self.mask(images.shape[-1])

    def edit_masks(self, x: torch.Tensor, edited: torch.Tensor) -> torch.Tensor:
        return self.mask(x.shape[-1])

    complement_masks = edit_masks

    def bounds(self):
        return None

    def validate(self, res: int | None, name: str = "region") -> None:
        return None  # checked when built; there is nothing to check against an image

    def to_spec(self) -> dict:
        return {"box3d": [*self.lo, *self.hi]}

    def describe(self) -> str:
        return f"box3d region {[*self.lo, *self.hi]}"


def boxes_overlap(a: Box3DRegion, b: Box3DRegion) -> bool:
    """True when two world boxes share a volume."""
    return all(max(la, lb) < min(ha, hb) for la, lb, ha, hb in zip(a.lo, b.lo, a.hi, b.hi))


__all__ = ["Box3DRegion", "boxes_overlap"]

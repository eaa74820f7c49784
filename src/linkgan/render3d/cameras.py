"""Cameras: look-at poses, normalized intrinsics, EG3D camera labels, rays and projection.

See the package docstring (linkgan.render3d) for the conventions. Every function takes and
returns float32 torch tensors with a leading batch dimension N; scalars broadcast.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from ..errors import InputError

# Flattened positions (row-major, 4x4) of the cam2world entries that change sign when the
# scene is mirrored left-right (x -> -x in the world and in the camera): R[0,1], R[0,2],
# t_x, R[1,0], R[2,0]. Entry 18 of a label is the principal point cx, which becomes 1 - cx.
_MIRROR_NEGATE = (1, 2, 3, 4, 8)
_LABEL_CX = 16 + 2


def _as_batch(x, device=None) -> torch.Tensor:
    t = torch.as_tensor(x, dtype=torch.float32, device=device)
    return t.reshape(-1)


def focal_from_fov(fov_degrees: float) -> float:
    """Normalized focal length of a camera whose full field of view is ``fov_degrees``."""
    if not 0 < fov_degrees < 180:
        raise InputError(f"field of view must be in (0, 180) degrees, got {fov_degrees}")
    return 0.5 / math.tan(math.radians(fov_degrees) / 2)


def intrinsics(focal: float | torch.Tensor, cx: float = 0.5, cy: float = 0.5, n: int | None = None,
               device=None) -> torch.Tensor:
    """Normalized intrinsics K (3, 3), or (n, 3, 3) with ``n`` (or a 1-D tensor of focals)."""
    f = _as_batch(focal, device)
    if n is not None and f.numel() == 1:
        f = f.expand(n)
    K = torch.zeros(f.shape[0], 3, 3, device=f.device)
    K[:, 0, 0] = f
    K[:, 1, 1] = f
    K[:, 0, 2] = cx
    K[:, 1, 2] = cy
    K[:, 2, 2] = 1.0
    if n is None and torch.as_tensor(focal).ndim == 0:
        return K[0]
    return K


def look_at(yaw, pitch, radius=2.7, target: Sequence[float] = (0.0, 0.0, 0.0), device=None) -> torch.Tensor:
    """cam2world (N, 4, 4) of cameras on a sphere around ``target`` looking at it.

    yaw, pitch: radians (floats or 1-D tensors of N values; |pitch| < pi/2); radius: the
    distance to the target. Camera centre = target + radius * (sin(yaw) cos(pitch),
    sin(pitch), cos(yaw) cos(pitch)); the image's "up" (-y of the camera) is as close to
    world +y as the viewing direction allows, so the horizon stays level.
    """
    yaw, pitch, radius = (_as_batch(v, device) for v in (yaw, pitch, radius))
    n = max(yaw.numel(), pitch.numel(), radius.numel())
    yaw, pitch, radius = yaw.expand(n), pitch.expand(n), radius.expand(n)
    if (pitch.abs() >= math.pi / 2).any():
        raise InputError("look_at: |pitch| must stay below 90 degrees (the view direction would be vertical)")
    target_t = torch.as_tensor(target, dtype=torch.float32, device=yaw.device).reshape(-1, 3).expand(n, 3)
    offset = torch.stack([torch.sin(yaw) * torch.cos(pitch), torch.sin(pitch), torch.cos(yaw) * torch.cos(pitch)], -1)
    centre = target_t + radius[:, None] * offset
    forward = -offset  # unit length already
    up = torch.tensor([0.0, 1.0, 0.0], device=yaw.device).expand(n, 3)
    right = torch.nn.functional.normalize(torch.linalg.cross(forward, up), dim=-1)
    down = torch.linalg.cross(forward, right)
    cam2world = torch.eye(4, device=yaw.device).repeat(n, 1, 1)
    cam2world[:, :3, 0] = right
    cam2world[:, :3, 1] = down
    cam2world[:, :3, 2] = forward
    cam2world[:, :3, 3] = centre
    return cam2world


def camera_labels(cam2world: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """EG3D labels (N, 25): cam2world (N, 4, 4) and K (N, 3, 3) or (3, 3), flattened row-major."""
    cam2world = cam2world.reshape(-1, 4, 4)
    K = K.reshape(-1, 3, 3).expand(cam2world.shape[0], 3, 3)
    return torch.cat([cam2world.reshape(-1, 16), K.reshape(-1, 9)], dim=1).to(torch.float32)


def split_camera_labels(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, 25) camera labels -> cam2world (N, 4, 4) and K (N, 3, 3)."""
    labels = torch.as_tensor(labels, dtype=torch.float32)
    if labels.ndim != 2 or labels.shape[1] != 25:
        raise InputError(f"camera labels must have shape (N, 25) (16 cam2world + 9 intrinsics values), "
                         f"got {tuple(labels.shape)}")
    return labels[:, :16].reshape(-1, 4, 4), labels[:, 16:].reshape(-1, 3, 3)


def mirror_camera_labels(labels):
    """Labels (..., 25) of the cameras that see the left-right mirror image (x -> -x) of a scene.

    A horizontally flipped image of a scene is the image of the mirrored scene taken by the
    mirrored camera: cam2world' = S cam2world S with S = diag(-1, 1, 1, 1), and cx' = 1 - cx.
    Works on numpy arrays and torch tensors; returns a new array.
    """
    out = labels.clone() if torch.is_tensor(labels) else np.array(labels, dtype=np.float32, copy=True)
    for i in _MIRROR_NEGATE:
        out[..., i] = -out[..., i]
    out[..., _LABEL_CX] = 1.0 - out[..., _LABEL_CX]
    return out


def pixel_grid(resolution: int, device=None) -> torch.Tensor:
    """Normalized image coordinates (R*R, 2) of the pixel centres, row-major: (u, v) = ((j+.5)/R, (i+.5)/R)."""
    c = (torch.arange(resolution, dtype=torch.float32, device=device) + 0.5) / resolution
    v, u = torch.meshgrid(c, c, indexing="ij")
    return torch.stack([u.reshape(-1), v.reshape(-1)], dim=-1)


def ray_bundle(cam2world: torch.Tensor, K: torch.Tensor, resolution: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Rays through the pixel centres of an R x R image.

    cam2world (N, 4, 4); K (N, 3, 3) or (3, 3). Returns origins (N, R*R, 3) (the camera
    centres) and unit directions (N, R*R, 3) in world coordinates, row-major pixel order.
    """
    cam2world = cam2world.reshape(-1, 4, 4).to(torch.float32)
    n = cam2world.shape[0]
    K = K.reshape(-1, 3, 3).to(cam2world).expand(n, 3, 3)
    uv = pixel_grid(resolution, cam2world.device)
    uv1 = torch.cat([uv, torch.ones_like(uv[:, :1])], dim=1)  # (P, 3)
    dirs_cam = uv1 @ torch.linalg.inv(K).transpose(1, 2)  # (N, P, 3): K^-1 (u, v, 1), z = 1
    dirs = dirs_cam @ cam2world[:, :3, :3].transpose(1, 2)
    dirs = torch.nn.functional.normalize(dirs, dim=-1)
    origins = cam2world[:, None, :3, 3].expand(n, uv.shape[0], 3)
    return origins, dirs


def project(points: torch.Tensor, cam2world: torch.Tensor, K: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """World points (N, M, 3) -> normalized image coordinates uv (N, M, 2) and camera-space z (N, M).

    Points behind the camera (z <= 0) get meaningless uv; check z.
    """
    cam2world = cam2world.reshape(-1, 4, 4).to(torch.float32)
    K = K.reshape(-1, 3, 3).to(cam2world).expand(cam2world.shape[0], 3, 3)
    R, t = cam2world[:, :3, :3], cam2world[:, :3, 3]
    cam = (points - t[:, None]) @ R  # R^T (p - t), row-vector form
    z = cam[..., 2]
    uvw = cam @ K.transpose(1, 2)
    return uvw[..., :2] / uvw[..., 2:3], z

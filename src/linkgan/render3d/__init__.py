"""3D rendering for tri-plane generators and 3D datasets: cameras, rays and volume rendering.

Conventions (the same as EG3D's, so that its camera labels mean the same thing here)
-----------------------------------------------------------------------------------
World
    Right-handed, y up. A subject (a toyhead, a generated head) sits at the origin and
    faces +z; its own left is +x. Lengths are in world units; tri-plane generators and
    toyheads fit the subject in the cube [-0.5, 0.5]^3.
Camera
    OpenCV style: the camera looks along its own +z axis, +x points to the image's right
    and +y to the image's bottom. A ray through image point (u, v) has the camera-space
    direction K^-1 (u, v, 1).
Image coordinates
    Normalized: u (right) and v (down) in [0, 1] across the whole image, whatever its
    resolution. Pixel (row i, column j) of an R x R image has its centre at
    (u, v) = ((j + 0.5) / R, (i + 0.5) / R). Flattened ray and pixel lists are row-major:
    index i * R + j.
Extrinsics
    ``cam2world``: a 4x4 rigid transform [[R, t], [0, 0, 0, 1]] taking camera coordinates
    to world coordinates; the columns of R are the camera's x (right), y (down) and z
    (viewing direction) axes in world coordinates and t is the camera centre.
Intrinsics
    Normalized 3x3 ``K = [[fx, s, cx], [0, fy, cy], [0, 0, 1]]``: the focal lengths and the
    principal point are in units of the image size (fx = 0.5 / tan(fov_x / 2); cx = cy = 0.5
    for a centred principal point), so one K serves every resolution.
Camera labels
    EG3D's 25-value label: the 16 values of cam2world flattened row-major, then the 9
    values of K flattened row-major. ``camera_labels`` and ``split_camera_labels``
    convert; a dataset archive stores one such label per image (see linkgan.data.toyheads).
Poses
    ``look_at(yaw, pitch, radius)`` puts the camera on a sphere around the target:
    centre = target + radius * (sin(yaw) cos(pitch), sin(pitch), cos(yaw) cos(pitch)).
    yaw = pitch = 0 is the frontal view from +z; positive yaw moves the camera towards
    +x (the subject's left), positive pitch raises it (looking down at the subject).
Depth
    The renderer and the toyheads depth maps give depth as the distance from the camera
    centre along the (unit-length) ray, not the camera-space z.
"""

from .cameras import (
    camera_labels,
    focal_from_fov,
    intrinsics,
    look_at,
    mirror_camera_labels,
    pixel_grid,
    project,
    ray_bundle,
    split_camera_labels,
)
from .volume import (
    RenderOptions,
    composite,
    render_rays,
    sample_from_weights,
    stratified_depths,
)

__all__ = [
    "RenderOptions",
    "camera_labels",
    "composite",
    "focal_from_fov",
    "intrinsics",
    "look_at",
    "mirror_camera_labels",
    "pixel_grid",
    "project",
    "ray_bundle",
    "render_rays",
    "sample_from_weights",
    "split_camera_labels",
    "stratified_depths",
]

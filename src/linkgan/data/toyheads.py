"""toyheads: procedural 3D heads seen from random viewpoints, with cameras, depth and part masks.

A small stand-in for EG3D's posed FFHQ that needs no download. Every head is a signed
distance function (SDF) built from primitives, in the world of linkgan.render3d (y up, the
head centred at the origin and facing +z, within about [-0.45, 0.45]^3 apart from the neck):

  head   a cranium and a jaw (two ellipsoids, smoothly joined), ears, and a neck going down
  hair   a cap over the cranium above a sloping hairline (short, long with hair falling
         behind the head, a bun, or none), and eyebrows
  eyes   two eyeballs with an iris and a pupil looking ahead
  nose   a tilted ellipsoid on the face
  mouth  lips, closed, smiling or open

Shapes, sizes and colours (skin, hair, iris, lips, background) vary per head. A head is
rendered by sphere tracing its SDF (numpy, vectorized over rays) with Lambert shading from
a random light fixed in the world, from a camera on a sphere of radius TOYHEADS_RADIUS
around the origin with yaw uniform in +-TOYHEADS_YAW and pitch in +-TOYHEADS_PITCH (degrees)
and the normalized focal length TOYHEADS_FOCAL. Pixels are supersampled: the colour is
the average of the sub-samples, the mask the weighted majority of their parts.

The archive (linkgan dataset toyheads) holds, besides images/ and masks/:
  depths/   16-bit PNGs of the distance from the camera centre along each pixel's ray
            (see linkgan.data.archive.encode_depth_png; background pixels hold no depth)
  dataset.json "labels": [[image member name, 25 floats], ...], EG3D's camera label per
            image (16 cam2world values, then 9 normalized intrinsics; linkgan.render3d);
            "cameras" and "depth" describe them.
Classes (mask values index TOYHEADS_CLASSES): 0 background, 1 head (skin, ears, neck),
2 hair (including eyebrows), 3 eyes, 4 nose, 5 mouth. A pixel's mask is background exactly
when it holds no depth.

Image i depends only on (seed, i), as in the other procedural datasets.
"""

from __future__ import annotations

import math
import multiprocessing
from pathlib import Path

import numpy as np
import torch

from ..render3d import camera_labels, intrinsics, look_at, ray_bundle
from .archive import ArchiveWriter, encode_depth_png
from .images import encode_png
from .procedural import Canvas, check_render_args, hsv, mix

TOYHEADS_CLASSES = ["background", "head", "hair", "eyes", "nose", "mouth"]
BACKGROUND, HEAD, HAIR, EYES, NOSE, MOUTH = range(6)

TOYHEADS_RADIUS = 2.7  # camera distance to the origin
TOYHEADS_FOCAL = 2.8  # normalized focal length: the image spans +-0.48 world units at the origin
TOYHEADS_YAW = 35.0  # degrees either side of the frontal view
TOYHEADS_PITCH = 15.0  # degrees up or down
TOYHEADS_DEPTH_RANGE = (1.5, 4.0)  # range of the 16-bit depth encoding in the archive
# Ray segment that holds every head from every camera: for a volume renderer's near/far.
TOYHEADS_NEAR_FAR = (2.2, 3.2)

# Weighted majority of the sub-samples: a pixel shows an eye, the nose or the mouth once
# that part covers about a third of it, so small parts survive at 32 px.
_LABEL_WEIGHTS = (1.0, 1.0, 1.0, 2.0, 2.0, 2.0)

_SKIN = np.array([(0.98, 0.86, 0.76), (0.93, 0.74, 0.6), (0.82, 0.6, 0.45), (0.66, 0.45, 0.32),
                  (0.48, 0.32, 0.22), (0.34, 0.23, 0.16)], np.float32)
_HAIR = np.array([(0.08, 0.06, 0.05), (0.2, 0.12, 0.07), (0.38, 0.23, 0.12), (0.6, 0.3, 0.12),
                  (0.85, 0.7, 0.42), (0.6, 0.6, 0.6), (0.9, 0.9, 0.88)], np.float32)
_HAIR_P = np.array([0.25, 0.22, 0.16, 0.1, 0.12, 0.08, 0.07])
_IRIS = np.array([(0.25, 0.14, 0.06), (0.15, 0.3, 0.6), (0.2, 0.42, 0.25), (0.4, 0.42, 0.45)], np.float32)
_HAIR_STYLES = ("short", "long", "bun", "bald")
_MOUTHS = ("closed", "smile", "open")

# Brightness of a surface facing the light, relative to its colour (the rest is ambient).
_LIGHT = 1.2
_MAX_STEPS = 64
_STEP = 0.9  # the ellipsoid distance is an estimate, so steps are shortened a little


# ------------------------------------------------------------------------------ SDF pieces
def _ellipsoid(x, y, z, c, r):
    """Approximate signed distance to an axis-aligned ellipsoid (exact on its surface, good near it)."""
    a, b, d = (x - c[0]) / r[0], (y - c[1]) / r[1], (z - c[2]) / r[2]
    k0 = np.sqrt(a * a + b * b + d * d)
    k1 = np.sqrt((a / r[0]) ** 2 + (b / r[1]) ** 2 + (d / r[2]) ** 2) + 1e-9
    return k0 * (k0 - 1.0) / k1


def _smin(a, b, k):
    """Smooth minimum (polynomial): joins two shapes with a fillet of size about k."""
    h = np.clip(0.5 + 0.5 * (b - a) / k, 0.0, 1.0)
    return b + (a - b) * h - k * h * (1.0 - h)


def _rotate_x(y, z, angle):
    c, s = math.cos(angle), math.sin(angle)
    return c * y - s * z, s * y + c * z


class HeadSDF:
    """The SDF of one head and its parts. Points are planar float32 arrays x, y, z of one shape."""

    def __init__(self, p: dict):
        self.p = p

    def skin(self, x, y, z):
        p = self.p
        d = _smin(_ellipsoid(x, y, z, p["cranium_c"], p["cranium_r"]),
                  _ellipsoid(x, y, z, p["jaw_c"], p["jaw_r"]), 0.08)
        neck = np.maximum(np.sqrt(x * x + (z - p["neck_z"]) ** 2) - p["neck_r"], y - p["neck_top"])
        d = _smin(d, neck, 0.06)
        ears = _ellipsoid(np.abs(x), y, z, p["ear_c"], p["ear_r"])
        return _smin(d, ears, 0.02)

    def hair(self, x, y, z):
        p = self.p
        brows = _ellipsoid(np.abs(x), y, z, p["brow_c"], p["brow_r"])
        style = p["hair_style"]
        if style == "bald":
            return brows
        cap = _ellipsoid(x, y, z, p["cap_c"], p["cap_r"])
        slope = p["hairline_slope"]
        # Hair lies above a plane through the hairline, lower at the back of the head.
        below = (p["hairline"] + slope * (z - 0.3) - y) / math.sqrt(1.0 + slope * slope)
        d = np.maximum(cap, below)
        if style == "long":
            fall = _ellipsoid(x, y, z, p["fall_c"], p["fall_r"])
            d = np.minimum(d, np.maximum(fall, z - p["fall_front"]))
        elif style == "bun":
            d = np.minimum(d, _ellipsoid(x, y, z, p["bun_c"], p["bun_r"]))
        return np.minimum(d, brows)

    def eyes(self, x, y, z):
        p = self.p
        c = p["eye_c"]
        return np.sqrt((np.abs(x) - c[0]) ** 2 + (y - c[1]) ** 2 + (z - c[2]) ** 2) - p["eye_r"]

    def nose(self, x, y, z):
        p = self.p
        c = p["nose_c"]
        ry, rz = _rotate_x(y - c[1], z - c[2], p["nose_tilt"])
        return _ellipsoid(x, ry, rz, (0.0, 0.0, 0.0), p["nose_r"])

    def mouth(self, x, y, z):
        p = self.p
        return _ellipsoid(x, y, z, p["mouth_c"], p["mouth_r"])

    def parts(self, x, y, z) -> np.ndarray:
        """Distances (5, ...) to head, hair, eyes, nose and mouth (label = 1 + argmin)."""
        return np.stack([self.skin(x, y, z), self.hair(x, y, z), self.eyes(x, y, z),
                         self.nose(x, y, z), self.mouth(x, y, z)])

    def distance(self, x, y, z):
        """The SDF of the whole head; nose and lips blend into the face."""
        face = _smin(_smin(self.skin(x, y, z), self.nose(x, y, z), 0.025), self.mouth(x, y, z), 0.01)
        return np.minimum(np.minimum(face, self.hair(x, y, z)), self.eyes(x, y, z))


def _front_surface_z(sdf_fn, x: float, y: float) -> float:
    """z of the surface seen from straight ahead at (x, y): sphere tracing along -z from z = 1."""
    z = 1.0
    for _ in range(60):
        d = float(sdf_fn(np.float32(x), np.float32(y), np.float32(z)))
        z -= d
        if abs(d) < 1e-5:
            break
    return z


# ------------------------------------------------------------------------------ parameters
def sample_toyhead(rng: np.random.Generator) -> dict:
    """Draw the parameters of one head and its camera (lengths in world units, angles in radians)."""
    p: dict = {}
    s = rng.uniform(0.93, 1.04)
    u = rng.uniform
    p["cranium_c"] = (0.0, 0.05 * s, -0.02)
    p["cranium_r"] = (u(0.25, 0.28) * s, u(0.29, 0.32) * s, u(0.29, 0.32) * s)
    p["jaw_c"] = (0.0, -0.12 * s, 0.04 * s)
    p["jaw_r"] = (u(0.17, 0.22) * s, u(0.2, 0.24) * s, u(0.21, 0.24) * s)
    p["neck_r"], p["neck_z"], p["neck_top"] = u(0.1, 0.13) * s, -0.04, -0.12 * s
    p["ear_c"] = (p["cranium_r"][0] - 0.015, u(-0.05, 0.0), -0.03)
    p["ear_r"] = (0.035, u(0.06, 0.075) * s, 0.05)

    head = HeadSDF(p)
    skin_only = head.skin

    # Features sit on the face: place them relative to its surface seen from the front.
    eye_x, eye_y = u(0.085, 0.11) * s, u(0.0, 0.035) * s
    p["eye_r"] = u(0.04, 0.05) * s
    p["eye_c"] = (eye_x, eye_y, _front_surface_z(skin_only, eye_x, eye_y) - 0.45 * p["eye_r"])
    p["gaze"] = (u(-0.25, 0.25), u(-0.1, 0.15))
    p["iris_size"] = u(0.45, 0.6)  # angular radius of the iris (radians) seen from the eye's centre
    brow_y = eye_y + p["eye_r"] + u(0.02, 0.04)
    p["brow_c"] = (eye_x + 0.005, brow_y, _front_surface_z(skin_only, eye_x, brow_y) - 0.004)
    p["brow_r"] = (u(0.045, 0.06) * s, u(0.009, 0.015), 0.018)

    nose_len = u(0.07, 0.1) * s
    nose_y = eye_y - 0.03 - nose_len
    p["nose_r"] = (u(0.03, 0.045) * s, nose_len, u(0.04, 0.055) * s)
    p["nose_c"] = (0.0, nose_y, _front_surface_z(skin_only, 0.0, nose_y) - 0.01)
    p["nose_tilt"] = u(0.25, 0.45)

    mouth_y = nose_y - nose_len - u(0.04, 0.06) * s
    p["mouth_r"] = (u(0.065, 0.09) * s, u(0.02, 0.028), 0.03)
    p["mouth_c"] = (0.0, mouth_y, _front_surface_z(skin_only, 0.0, mouth_y) - 0.018)
    p["mouth_kind"] = _MOUTHS[rng.choice(3, p=[0.4, 0.35, 0.25])]
    p["smile"] = {"closed": u(-0.003, 0.004), "smile": u(0.008, 0.016), "open": u(0.0, 0.01)}[p["mouth_kind"]]
    p["mouth_gap"] = u(0.008, 0.014) if p["mouth_kind"] == "open" else 0.0025

    style = _HAIR_STYLES[rng.choice(4, p=[0.4, 0.3, 0.15, 0.15])]
    p["hair_style"] = style
    thick = u(0.02, 0.05)
    cr = p["cranium_r"]
    p["cap_c"] = (0.0, p["cranium_c"][1] + 0.6 * thick, p["cranium_c"][2] - 0.2 * thick)
    p["cap_r"] = (cr[0] + thick, cr[1] + thick, cr[2] + thick)
    p["hairline"] = brow_y + u(0.07, 0.16)  # height of the hairline at the forehead (z = 0.3)
    p["hairline_slope"] = u(0.35, 0.6)
    p["fall_c"] = (0.0, -0.12, p["cranium_c"][2] - 0.05)
    p["fall_r"] = (cr[0] + thick + u(0.0, 0.03), u(0.36, 0.44), cr[2] + thick - 0.04)
    p["fall_front"] = u(-0.02, 0.05)
    p["bun_c"] = (0.0, 0.25 * s, -0.27 * s)
    p["bun_r"] = (u(0.08, 0.11),) * 3

    p["skin"] = _SKIN[rng.integers(len(_SKIN))] * u(0.94, 1.04, 3).astype(np.float32)
    p["hair_colour"] = _HAIR[rng.choice(len(_HAIR), p=_HAIR_P)] * u(0.85, 1.1)
    p["iris"] = _IRIS[rng.integers(len(_IRIS))] * u(0.8, 1.15)
    p["lips"] = mix(p["skin"], (0.78, 0.25, 0.28), u(0.35, 0.7)) * 0.92
    p["background"] = hsv(u(0, 1), u(0.05, 0.45), u(0.35, 0.95))
    light_yaw, light_pitch = u(-1.1, 1.1), u(0.1, 0.8)
    p["light"] = np.array([math.sin(light_yaw) * math.cos(light_pitch), math.sin(light_pitch),
                           math.cos(light_yaw) * math.cos(light_pitch)], np.float32)
    p["ambient"] = u(0.4, 0.55)

    p["yaw"] = math.radians(u(-TOYHEADS_YAW, TOYHEADS_YAW))
    p["pitch"] = math.radians(u(-TOYHEADS_PITCH, TOYHEADS_PITCH))
    return p


def toyhead_camera(yaw: float, pitch: float) -> np.ndarray:
    """EG3D camera label (25,) float32 of the toyheads camera at yaw and pitch (radians)."""
    return camera_labels(look_at(yaw, pitch, TOYHEADS_RADIUS), intrinsics(TOYHEADS_FOCAL))[0].numpy()


# ------------------------------------------------------------------------------ rendering
def _bounds_entry_exit(o: np.ndarray, d: np.ndarray, lo, hi):
    """Slab test against the box lo..hi: entry and exit distances (exit < entry: a miss)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = 1.0 / d
        t0 = (np.asarray(lo, np.float32) - o) * inv
        t1 = (np.asarray(hi, np.float32) - o) * inv
    near = np.nan_to_num(np.minimum(t0, t1), nan=-np.inf).max(axis=1)
    far = np.nan_to_num(np.maximum(t0, t1), nan=np.inf).min(axis=1)
    return np.maximum(near, 0.0), far


def sphere_trace(sdf_fn, origin: np.ndarray, dirs: np.ndarray, t_start: np.ndarray, t_end: np.ndarray,
                 pixel_angle: float) -> np.ndarray:
    """Distance along each ray (P,) to the first surface of sdf_fn, or inf where the ray misses.

    origin (3,); dirs (P, 3) unit; t_start, t_end (P,): the segment to search. A ray stops
    when the SDF falls below a fraction of its pixel's footprint at that distance. Only the
    rays still marching are evaluated at each step.
    """
    t = t_start.astype(np.float32).copy()
    hit_t = np.full(len(dirs), np.inf, np.float32)
    active = np.nonzero(t_start < t_end)[0]
    ox, oy, oz = (float(v) for v in origin)
    dx, dy, dz = (dirs[:, k].astype(np.float32) for k in range(3))
    ta, ea = t[active], t_end[active].astype(np.float32)
    dxa, dya, dza = dx[active], dy[active], dz[active]
    eps = np.float32(0.25 * pixel_angle)
    for _ in range(_MAX_STEPS):
        if active.size == 0:
            break
        dist = sdf_fn(ox + ta * dxa, oy + ta * dya, oz + ta * dza)
        hit = dist < eps * ta
        hit_t[active[hit]] = ta[hit]
        ta = ta + _STEP * dist
        keep = ~hit & (ta < ea)
        if not keep.all():
            active, ta, ea, dxa, dya, dza = active[keep], ta[keep], ea[keep], dxa[keep], dya[keep], dza[keep]
    # Polish the hits, which lie within the stopping tolerance of the surface, with Newton steps
    # on f(t) = sdf(o + t d) (the slope along a grazing ray is far below 1, where plain
    # sphere-tracing steps would crawl). A step is kept only where it brings f closer to 0: a
    # ray that grazes the silhouette has no root nearby and keeps its closest approach.
    idx = np.nonzero(np.isfinite(hit_t))[0]
    th, dxh, dyh, dzh = hit_t[idx], dx[idx], dy[idx], dz[idx]
    f = sdf_fn(ox + th * dxh, oy + th * dyh, oz + th * dzh)
    h = np.float32(1e-3)
    for _ in range(3):
        slope = (sdf_fn(ox + (th + h) * dxh, oy + (th + h) * dyh, oz + (th + h) * dzh) - f) / h
        step = np.where(slope < -0.05, -f / np.minimum(slope, -0.05), 0.0)
        t_new = th + np.clip(step, -0.05, 0.05)  # the stopping tolerance is < 0.03 for res >= 8
        f_new = sdf_fn(ox + t_new * dxh, oy + t_new * dyh, oz + t_new * dzh)
        better = np.abs(f_new) < np.abs(f)
        th, f = np.where(better, t_new, th), np.where(better, f_new, f)
    hit_t[idx] = th
    return hit_t


def _normals(sdf_fn, x, y, z, h: float = 2e-3) -> np.ndarray:
    """Unit surface normals (3, K) from the SDF's gradient (four-point tetrahedral differences)."""
    n = np.zeros((3, x.shape[0]), np.float32)
    for kx, ky, kz in ((1, -1, -1), (-1, -1, 1), (-1, 1, -1), (1, 1, 1)):
        f = sdf_fn(x + kx * h, y + ky * h, z + kz * h)
        n[0] += kx * f
        n[1] += ky * f
        n[2] += kz * f
    return n / (np.linalg.norm(n, axis=0, keepdims=True) + 1e-12)


def _surface_colour(head: HeadSDF, label: np.ndarray, x, y, z) -> np.ndarray:
    """Unlit colours (3, K) of surface points by part, with eye and mouth details."""
    p = head.p
    col = np.empty((3, label.shape[0]), np.float32)
    col[:] = np.asarray(p["skin"], np.float32)[:, None]
    col[:, label == NOSE] = (np.asarray(p["skin"]) * (1.0, 0.93, 0.9))[:, None]
    col[:, label == HAIR] = np.asarray(p["hair_colour"], np.float32)[:, None]
    # Neck in the shadow of the chin.
    neck = (label == HEAD) & (y < p["jaw_c"][1] - 0.6 * p["jaw_r"][1])
    col[:, neck] *= 0.8
    eye = label == EYES
    if eye.any():
        c = p["eye_c"]
        v = np.stack([np.abs(x[eye]) - c[0], y[eye] - c[1], z[eye] - c[2]])
        v /= np.linalg.norm(v, axis=0, keepdims=True) + 1e-12
        g = np.array([p["gaze"][0], p["gaze"][1], 1.0], np.float32)
        g /= np.linalg.norm(g)
        gx = np.where(x[eye] < 0, -g[0], g[0])  # both eyes look the same way: mirror the gaze with |x|
        cos = v[0] * gx + v[1] * g[1] + v[2] * g[2]
        iris_cos, pupil_cos = math.cos(p["iris_size"]), math.cos(0.45 * p["iris_size"])
        e = np.empty((3, cos.shape[0]), np.float32)
        e[:] = np.array([0.95, 0.94, 0.9], np.float32)[:, None]
        iris = cos > iris_cos
        e[:, iris] = np.asarray(p["iris"], np.float32)[:, None] * (0.7 + 0.6 * (1 - cos[iris]) / (1 - iris_cos))
        e[:, cos > pupil_cos] = 0.04
        col[:, eye] = e
    mouth = label == MOUTH
    if mouth.any():
        mx, my = x[mouth], y[mouth]
        u = mx / p["mouth_r"][0]
        centre = p["mouth_c"][1] + p["smile"] * (u * u - 0.3)
        m = np.empty((3, mx.shape[0]), np.float32)
        m[:] = np.asarray(p["lips"], np.float32)[:, None]
        m[:, my < centre] *= 0.9  # the upper lip faces down a little: a touch darker
        m[:, np.abs(my - centre) < p["mouth_gap"] * np.sqrt(np.clip(1 - u * u, 0, 1))] = \
            np.array([0.2, 0.05, 0.06], np.float32)[:, None]
        col[:, mouth] = m
    return col


# Head bounds: every part of every head lies inside (the neck is cut at the bottom).
_BOX_LO, _BOX_HI = (-0.45, -0.95, -0.45), (0.45, 0.6, 0.45)


def supersampling_for(res: int) -> int:
    """Sub-samples per pixel along each axis: 3 up to 32 px, then 2."""
    return 3 if res <= 32 else 2


def render_toyhead(p: dict, res: int, yaw: float | None = None, pitch: float | None = None,
                   ss: int | None = None) -> dict:
    """Render head parameters from the toyheads camera at (yaw, pitch) (default: the head's own).

    Returns a dict: image uint8 (res, res, 3), mask uint8 (res, res) of TOYHEADS_CLASSES ids,
    depth float32 (res, res) (distance along the ray; inf on background) and camera
    float32 (25,) (EG3D label).
    """
    yaw = p["yaw"] if yaw is None else yaw
    pitch = p["pitch"] if pitch is None else pitch
    ss = ss or supersampling_for(res)
    size = res * ss
    label = toyhead_camera(yaw, pitch)
    cam2world = torch.from_numpy(label[:16]).reshape(1, 4, 4)
    K = torch.from_numpy(label[16:]).reshape(3, 3)
    origins, dirs = ray_bundle(cam2world, K, size)
    origin, dirs = origins[0, 0].numpy(), dirs[0].numpy()

    head = HeadSDF(p)
    t0, t1 = _bounds_entry_exit(origin, dirs, _BOX_LO, _BOX_HI)
    t = sphere_trace(head.distance, origin, dirs, t0, t1, pixel_angle=1.0 / (TOYHEADS_FOCAL * size))
    hit = np.isfinite(t)

    canvas = Canvas(res, ss)
    rgb = canvas.rgb.reshape(3, -1)
    labels = canvas.label.reshape(-1)
    rgb[:] = np.asarray(p["background"], np.float32)[:, None]
    if hit.any():
        th = t[hit]
        x, y, z = (origin[k] + th * dirs[hit, k] for k in range(3))
        part = 1 + np.argmin(head.parts(x, y, z), axis=0)
        colour = _surface_colour(head, part, x, y, z)
        n = _normals(head.distance, x, y, z)
        lambert = np.clip(np.tensordot(p["light"], n, axes=1), 0.0, 1.0)
        rgb[:, hit] = np.clip(colour * (p["ambient"] + (_LIGHT - p["ambient"]) * lambert), 0.0, 1.0)
        labels[hit] = part
    image, mask = canvas.finish(len(TOYHEADS_CLASSES), weights=_LABEL_WEIGHTS)

    # Depth of a pixel: the mean over its sub-samples that hit the head; none on background pixels.
    blocks = t.reshape(res, ss, res, ss).transpose(0, 2, 1, 3).reshape(res, res, ss * ss)
    hits = np.isfinite(blocks)
    with np.errstate(invalid="ignore", divide="ignore"):
        depth = np.where(hits, blocks, 0.0).sum(-1) / hits.sum(-1)
    depth = np.where(mask == BACKGROUND, np.inf, depth).astype(np.float32)
    return {"image": image, "mask": mask, "depth": depth, "camera": label}


def toyhead(seed: int, index: int, res: int = 64) -> dict:
    """Image `index` of the toyheads dataset with `seed` (see render_toyhead), as make_toyheads writes it."""
    return render_toyhead(sample_toyhead(np.random.default_rng([seed, index])), res)


# ------------------------------------------------------------------------------ archive
def _render_chunk(args) -> list[tuple[bytes, bytes, bytes, list[float]]]:
    seed, res, start, stop = args
    out = []
    for index in range(start, stop):
        r = toyhead(seed, index, res)
        out.append((encode_png(r["image"], compress_level=3), encode_png(r["mask"], compress_level=3),
                    encode_depth_png(r["depth"], *TOYHEADS_DEPTH_RANGE), r["camera"].tolist()))
    return out


def _worker_init() -> None:
    # One thread per worker process: the pool already uses every core.
    torch.set_num_threads(1)


def make_toyheads(out, n: int, res: int = 64, seed: int = 0, workers: int | None = None,
                  progress: bool = True) -> Path:
    """Write a toyheads archive of n images at res x res with masks, depths and cameras; returns `out`.

    Image i depends only on (seed, i): any worker count gives a byte-identical archive.
    workers=None uses every CPU core.
    """
    from tqdm.auto import tqdm

    n, res, seed, workers = check_render_args(n, res, seed, workers)
    chunk = max(1, min(32, n // (workers * 8) or 1))
    tasks = [(seed, res, s, min(s + chunk, n)) for s in range(0, n, chunk)]
    extra = {
        "cameras": {"format": "eg3d", "label_size": 25,
                    "convention": "cam2world (OpenCV: camera looks along +z, y down; world y up) flattened "
                                  "row-major, then normalized intrinsics (units of image size); see "
                                  "linkgan.render3d",
                    "radius": TOYHEADS_RADIUS, "focal": TOYHEADS_FOCAL, "yaw_degrees": TOYHEADS_YAW,
                    "pitch_degrees": TOYHEADS_PITCH, "near_far": list(TOYHEADS_NEAR_FAR)},
        "depth_kind": "distance from the camera centre along the pixel's ray",
    }

    def write(results) -> None:
        with ArchiveWriter(out, res, classes=TOYHEADS_CLASSES, source=f"toyheads seed={seed}",
                           extra_info=extra, depth_range=TOYHEADS_DEPTH_RANGE) as writer, \
                tqdm(total=n, disable=not progress, unit="img", desc="toyheads") as bar:
            for batch in results:
                for image, mask, depth, camera in batch:
                    writer.add(image, mask, label=camera, depth=depth)
                    bar.update(1)

    if workers == 1:
        write(map(_render_chunk, tasks))
    else:
        with multiprocessing.get_context().Pool(workers, initializer=_worker_init) as pool:
            write(pool.imap(_render_chunk, tasks))
    return Path(out)

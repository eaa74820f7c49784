"""toyfaces: procedural, aligned, front-facing faces with exact part masks.

A small stand-in for FFHQ that needs no download. Faces are aligned the way
FFHQ is: eyes on a line near y = 0.44 and the mouth near y = 0.74 of the image
height, with a few percent of random jitter in position and size. Whatever
the jitter, every eye pixel lies inside TOYFACES_EYES_BOX and every mouth
pixel inside TOYFACES_MOUTH_BOX (boxes in [0, 1] image coordinates, x0, y0,
x1, y1), so fixed boxes can be linked to latent axes.

Classes (mask values are indices into TOYFACES_CLASSES):
  0 background, 1 skin (face, ears, neck), 2 hair (including eyebrows),
  3 left_eye, 4 right_eye (eye on the image's left / right, i.e. the
  person's right / left eye; lids, white, iris and pupil), 5 nose (bridge,
  tip and nostrils), 6 mouth (lips and the open mouth's interior, teeth).
At low resolution a pixel is labelled eye, nose or mouth once that part
covers about a third of it, so thin parts (a closed mouth at 32 px) stay in
the mask.

What varies: skin tone, hair style (short, long, bangs, bald) and colour,
eyebrow shape, eye size, openness, tilt, gaze and iris colour, nose length
and width, mouth width and expression (closed, smiling, open showing a dark
interior and sometimes teeth), cheek blush, background colours/gradient and
a soft directional light across the face.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .procedural import (
    Canvas,
    ellipse,
    gaussian_alpha,
    hsv,
    mix,
    rect,
    render_archive,
    union,
)

TOYFACES_CLASSES = ["background", "skin", "hair", "left_eye", "right_eye", "nose", "mouth"]
BACKGROUND, SKIN, HAIR, LEFT_EYE, RIGHT_EYE, NOSE, MOUTH = range(7)

# Regions that always contain the eyes / mouth, as (x0, y0, x1, y1) in [0, 1].
TOYFACES_EYES_BOX = (0.22, 0.36, 0.78, 0.52)
TOYFACES_MOUTH_BOX = (0.32, 0.66, 0.68, 0.82)

# Label vote weights when downsampling: a pixel shows an eye, nose or mouth
# once that part covers about a third of it, so thin parts (a closed mouth at
# 32 px) still appear in the mask.
_LABEL_WEIGHTS = (1.0, 1.0, 1.0, 2.0, 2.0, 2.0, 2.0)

_SKIN_TONES = np.array([
    (0.99, 0.88, 0.80), (0.95, 0.78, 0.65), (0.86, 0.65, 0.50), (0.72, 0.52, 0.38),
    (0.56, 0.38, 0.26), (0.42, 0.28, 0.19), (0.30, 0.20, 0.14),
], np.float32)
_HAIR_COLOURS = np.array([
    (0.07, 0.06, 0.06), (0.16, 0.11, 0.08), (0.30, 0.19, 0.11), (0.45, 0.29, 0.16),
    (0.56, 0.26, 0.12), (0.78, 0.62, 0.36), (0.90, 0.82, 0.60), (0.62, 0.61, 0.60),
    (0.88, 0.88, 0.86),
], np.float32)
_HAIR_WEIGHTS = np.array([0.22, 0.2, 0.14, 0.12, 0.07, 0.09, 0.06, 0.06, 0.04])
_IRIS_COLOURS = np.array([
    (0.30, 0.17, 0.08), (0.18, 0.10, 0.05), (0.25, 0.45, 0.72), (0.30, 0.52, 0.32),
    (0.45, 0.52, 0.58), (0.50, 0.38, 0.18),
], np.float32)
_HAIR_STYLES = ("short", "long", "bangs", "bald")
_MOUTH_KINDS = ("closed", "smile", "open")


def _pick(rng: np.random.Generator, table: np.ndarray, weights=None) -> np.ndarray:
    p = None if weights is None else np.asarray(weights) / np.sum(weights)
    return table[rng.choice(len(table), p=p)].copy()


def _skin_tone(t: float) -> np.ndarray:
    x = t * (len(_SKIN_TONES) - 1)
    i = min(int(x), len(_SKIN_TONES) - 2)
    return mix(_SKIN_TONES[i], _SKIN_TONES[i + 1], x - i)


def sample_toyface(rng: np.random.Generator) -> dict:
    """Draw the parameters of one face (all lengths in [0, 1] image units)."""
    p: dict = {}
    s = rng.uniform(0.94, 1.06)  # overall face size
    dy = rng.uniform(-0.015, 0.015)  # vertical jitter shared by all features
    p["cx"] = 0.5 + rng.uniform(-0.02, 0.02)
    p["eye_y"] = 0.44 + dy
    p["mouth_y"] = 0.737 + 0.8 * dy + rng.uniform(-0.004, 0.004)
    p["face_rx"] = rng.uniform(0.24, 0.275) * s
    p["face_ry"] = rng.uniform(0.325, 0.35) * s
    p["face_cy"] = 0.515 + dy
    p["taper"] = rng.uniform(0.18, 0.38)  # narrower chin for larger values

    p["skin"] = _skin_tone(rng.beta(1.3, 1.6)) * rng.uniform(0.97, 1.03, 3).astype(np.float32)
    p["hair_colour"] = _pick(rng, _HAIR_COLOURS, _HAIR_WEIGHTS) * rng.uniform(0.85, 1.12)
    if rng.random() < 0.03:  # the odd dyed head
        p["hair_colour"] = hsv(rng.random(), 0.55, 0.7)
    p["hair_style"] = _HAIR_STYLES[rng.choice(4, p=[0.36, 0.3, 0.2, 0.14])]
    p["hair_volume"] = rng.uniform(0.0, 0.035)
    p["hairline"] = p["face_cy"] - p["face_ry"] + rng.uniform(0.075, 0.11)
    p["hairline_curve"] = rng.uniform(1.5, 4.0)
    p["bangs_y"] = p["eye_y"] - rng.uniform(0.095, 0.12)
    p["bangs_wave"] = (rng.uniform(0.004, 0.012), rng.uniform(70, 130), rng.uniform(0, 2 * np.pi))
    p["long_bottom"] = rng.uniform(0.78, 1.02)
    p["long_extra_width"] = rng.uniform(0.0, 0.035)
    p["sideburns"] = rng.random() < 0.5
    p["hair_phase"] = rng.uniform(0, 2 * np.pi)

    p["brow_dy"] = rng.uniform(0.052, 0.066)
    p["brow_thick"] = rng.uniform(0.006, 0.013)
    p["brow_arch"] = rng.uniform(0.004, 0.014)
    p["brow_tilt"] = rng.uniform(-0.006, 0.008)

    p["eye_dx"] = rng.uniform(0.12, 0.135) * s
    p["eye_w"] = rng.uniform(0.05, 0.063) * s  # half width
    p["eye_open"] = rng.uniform(0.28, 0.62)  # half height / half width
    p["eye_tilt"] = rng.uniform(-0.004, 0.007)
    p["gaze"] = (rng.uniform(-0.22, 0.22), rng.uniform(-0.08, 0.08))
    p["iris"] = _pick(rng, _IRIS_COLOURS) * rng.uniform(0.8, 1.15)
    p["iris_r"] = rng.uniform(0.38, 0.47)  # relative to eye half width
    p["pupil_r"] = rng.uniform(0.45, 0.6)  # relative to iris radius

    p["nose_len"] = rng.uniform(0.135, 0.165)
    p["nose_w"] = rng.uniform(0.03, 0.046) * s
    p["bridge_w"] = rng.uniform(0.010, 0.016)

    p["mouth_kind"] = _MOUTH_KINDS[rng.choice(3, p=[0.35, 0.4, 0.25])]
    p["mouth_w"] = rng.uniform(0.085, 0.115) * s
    p["smile"] = {"closed": rng.uniform(-0.003, 0.006), "smile": rng.uniform(0.010, 0.02),
                  "open": rng.uniform(-0.002, 0.014)}[p["mouth_kind"]]
    p["gap"] = rng.uniform(0.012, 0.028) if p["mouth_kind"] == "open" else 0.0
    p["teeth"] = p["mouth_kind"] != "closed" and rng.random() < 0.6
    p["upper_lip"] = rng.uniform(0.011, 0.018)
    p["lower_lip"] = rng.uniform(0.015, 0.024)
    p["lip_tint"] = rng.uniform(0.3, 0.6)
    p["blush"] = rng.uniform(0.0, 0.22)

    hue = rng.random()
    p["bg0"] = hsv(hue, rng.uniform(0.1, 0.5), rng.uniform(0.45, 0.95))
    p["bg1"] = hsv(hue + rng.uniform(-0.15, 0.15), rng.uniform(0.1, 0.5), rng.uniform(0.3, 0.95))
    if rng.random() < 0.25:
        p["bg1"] = p["bg0"]
    p["bg_angle"] = rng.uniform(0, 2 * np.pi)

    p["light_angle"] = rng.uniform(0, 2 * np.pi)
    p["light_strength"] = rng.uniform(0.08, 0.3)
    return p


def _hair_colour_fn(p: dict):
    """Hair with faint vertical strands and a soft highlight across the crown.

    A dense colour function (X (1, w), Y (h, 1) -> (3, h, w)); both terms are
    separable in x and y, which keeps large hair regions cheap.
    """
    base = np.asarray(p["hair_colour"], np.float32)[:, None, None]
    cx, top = p["cx"], p["face_cy"] - p["face_ry"]
    phase = p["hair_phase"]

    def color(X, Y):
        strands = 1.0 + 0.07 * np.sin((X - cx) * 160.0 + phase)
        across = strands * 0.22 * np.exp(-((X - cx) / 0.15) ** 2)
        shine_y = np.exp(-(((Y - top - 0.05) / 0.035) ** 2))
        return base * (strands + shine_y * across)
    return color


def _draw_hair_back(c: Canvas, p: dict, colour) -> None:
    """Hair that falls behind the face and neck (long style)."""
    cx, cy, rx, ry, vol = p["cx"], p["face_cy"], p["face_rx"], p["face_ry"], p["hair_volume"]
    w = rx * 1.1 + vol + p["long_extra_width"]
    crown = ellipse(cx, cy - 0.015, rx * 1.1 + vol, ry * 1.05 + vol)
    fall = rect(cx - w, cy - 0.08, cx + w, p["long_bottom"], radius=0.06)
    c.fill(*union(crown, fall), colour, HAIR, dense=True)


def _draw_hair_front(c: Canvas, p: dict, colour) -> None:
    """Hair over the forehead and temples: the part of a crown ellipse above the hairline."""
    cx, cy, rx, ry, vol = p["cx"], p["face_cy"], p["face_rx"], p["face_ry"], p["hair_volume"]
    style = p["hair_style"]
    crown_box, in_crown = ellipse(cx, cy - 0.015, rx * 1.1 + vol, ry * 1.05 + vol)
    eye_y, outer_eye = p["eye_y"], p["eye_dx"] + p["eye_w"] + 0.01
    if style == "bald":
        # Only a fringe along the sides of the head, above the ears.
        _, in_scalp = ellipse(cx, cy - 0.01, rx * 0.93, ry * 0.98)

        def inside(X, Y):
            return in_crown(X, Y) & ~in_scalp(X, Y) & (Y > eye_y - 0.13) & (Y < eye_y + 0.03)
        c.fill(crown_box, inside, colour, HAIR, dense=True)
        return
    wave_amp, wave_freq, wave_phase = p["bangs_wave"]
    hl = p["bangs_y"] if style == "bangs" else p["hairline"]
    # Keep the temples' hair above the outer eye corners, whatever the curve.
    k = min(p["hairline_curve"], (eye_y - 0.05 - hl) / outer_eye ** 2)

    def inside(X, Y):
        dx = X - cx
        line = hl + k * dx * dx
        if style == "bangs":
            line = line + wave_amp * np.sin(dx * wave_freq + wave_phase)
        return in_crown(X, Y) & (Y < line)
    c.fill(crown_box, inside, colour, HAIR, dense=True)
    if p["sideburns"] or style == "long":
        for sgn in (-1, 1):
            x_in, x_out = cx + sgn * rx * 0.9, cx + sgn * (rx * 1.04 + 0.004)
            c.fill(*rect(min(x_in, x_out), eye_y - 0.1, max(x_in, x_out), eye_y + 0.02 + (0.12 if style == "long" else 0),
                        radius=0.006), colour, HAIR, dense=True)


def _draw_face(c: Canvas, p: dict) -> None:
    cx, cy, rx, ry, taper = p["cx"], p["face_cy"], p["face_rx"], p["face_ry"], p["taper"]
    skin = p["skin"]
    # Neck (in the shadow of the chin), then ears, then the face over both.
    neck_w = rx * 0.45
    c.fill(*rect(cx - neck_w, cy, cx + neck_w, 1.0), skin * 0.8, SKIN)
    for sgn in (-1, 1):
        ex = cx + sgn * rx * 0.97
        c.fill(*ellipse(ex, p["eye_y"] + 0.05, 0.026, 0.05), skin * 0.93, SKIN)
        c.fill(*ellipse(ex + sgn * 0.006, p["eye_y"] + 0.05, 0.012, 0.03), skin * 0.75, SKIN)

    def in_face(X, Y):
        t = np.clip((Y - cy) / ry, 0.0, 1.0)
        half_width = rx * (1.0 - taper * t * t)
        return ((X - cx) / half_width) ** 2 + ((Y - cy) / ry) ** 2 <= 1.0
    c.fill((cx - rx, cy - ry, cx + rx, cy + ry), in_face, skin, SKIN)
    # Cheeks: colour only, the label stays skin.
    blush = mix(skin, (0.9, 0.35, 0.35), 0.5)
    for sgn in (-1, 1):
        box, alpha = gaussian_alpha(cx + sgn * rx * 0.55, p["eye_y"] + 0.13, 0.04, 0.03, p["blush"])
        c.blend(box, alpha, blush)


def _draw_brows(c: Canvas, p: dict) -> None:
    colour = p["hair_colour"] * 0.8
    if p["hair_style"] == "bald":
        colour = mix(p["hair_colour"], p["skin"] * 0.45, 0.5)
    for sgn in (-1, 1):
        bx = p["cx"] + sgn * p["eye_dx"] * 1.02
        by = p["eye_y"] - p["brow_dy"]
        bw = p["eye_w"] * 1.15
        arch, tilt, thick = p["brow_arch"], p["brow_tilt"], p["brow_thick"]

        def inside(X, Y, bx=bx, by=by, bw=bw, sgn=sgn):
            u = (X - bx) / bw
            outward = np.clip(u * sgn, -1, 1)  # -1 at the inner end, +1 at the outer end
            centre = by - arch * (1 - u * u) - tilt * outward
            half = thick * (0.75 - 0.3 * outward) * 0.5
            return (np.abs(u) <= 1) & (np.abs(Y - centre) <= half)
        c.fill((bx - bw, by - 0.03, bx + bw, by + 0.03), inside, colour, HAIR)


def _draw_eyes(c: Canvas, p: dict) -> None:
    ew, eh = p["eye_w"], p["eye_w"] * p["eye_open"]
    skin = p["skin"]
    lash = (0.1, 0.07, 0.06)
    white = (0.95, 0.94, 0.91)
    tilt = p["eye_tilt"]
    ir = ew * p["iris_r"]
    pr = ir * p["pupil_r"]
    iris = p["iris"]
    for sgn, label in ((-1, LEFT_EYE), (1, RIGHT_EYE)):
        ex, ey = p["cx"] + sgn * p["eye_dx"], p["eye_y"]
        g = c.grid((ex - ew - 0.01, ey - eh - 0.03, ex + ew + 0.01, ey + eh + 0.03))
        if g is None:
            continue
        X, Y = g[2], g[3]

        def lens(grow_w: float, grow_up: float, grow_down: float):
            """The eye opening: two parabola-like lids meeting at the corners."""
            w = ew + grow_w
            u = (X - ex) / w
            v = np.clip(1.0 - u * u, 0.0, 1.0)
            centre = ey - tilt * np.clip(u * sgn, -1, 1)
            upper = centre - (eh + grow_up) * v ** 0.7
            lower = centre + (0.75 * eh + grow_down) * v ** 0.9
            return (np.abs(u) < 1.0) & (Y >= upper) & (Y <= lower)

        # Lid shadow and lash line, then the white, iris, pupil and a catch
        # light, all clipped to the opening.
        outline = lens(0.006, 0.008, 0.004)
        c.fill_mask(g, outline, skin * 0.72, label)
        c.fill_mask(g, outline & (Y < ey - 0.2 * eh), lash, label)
        opening = lens(0.0, 0.0, 0.0)
        c.fill_mask(g, opening, white, label)
        ix, iy = ex + p["gaze"][0] * ew, ey + p["gaze"][1] * ew
        r2 = (X - ix) ** 2 + (Y - iy) ** 2

        def iris_colour(Xs, Ys, ix=ix, iy=iy):
            r = np.sqrt((Xs - ix) ** 2 + (Ys - iy) ** 2) / ir
            return iris * (1.15 - 0.5 * r)[:, None]
        c.fill_mask(g, opening & (r2 <= ir * ir), iris_colour, label)
        c.fill_mask(g, opening & (r2 <= pr * pr), (0.03, 0.02, 0.02), label)
        gx, gy, gr = ix - 0.35 * ir, iy - 0.35 * ir, 0.28 * ir
        c.fill_mask(g, opening & ((X - gx) ** 2 + (Y - gy) ** 2 <= gr * gr), (1.0, 1.0, 1.0), label)
        # Shadow of the upper lid across the top of the eye.
        c.rgb[:, g[0], g[1]] *= np.where(outline & (Y < ey - 0.45 * eh), np.float32(0.8), np.float32(1.0))


def _draw_nose(c: Canvas, p: dict) -> None:
    cx, skin = p["cx"], p["skin"]
    top = p["eye_y"] + 0.02
    tip = p["eye_y"] + p["nose_len"]
    nw, bw = p["nose_w"], p["bridge_w"]
    side = np.cos(p["light_angle"])  # > 0: light from the image's right

    def colour(X, Y):
        # The side of the nose away from the light is darker.
        f = 0.93 + 0.08 * np.clip((X - cx) / nw, -1, 1) * side
        return skin * f[..., None]

    def in_bridge(X, Y):
        t = np.clip((Y - top) / (tip - top), 0, 1)
        return (Y >= top) & (Y <= tip) & (np.abs(X - cx) <= bw + (0.7 * nw - bw) * t * t)
    bridge = ((cx - nw, top, cx + nw, tip), in_bridge)
    base = ellipse(cx, tip, nw, 0.02)
    c.fill(*union(bridge, base), colour, NOSE)
    c.blend(*gaussian_alpha(cx, tip - 0.006, 0.012, 0.01, 0.25), (1.0, 1.0, 1.0))
    for sgn in (-1, 1):
        c.fill(*ellipse(cx + sgn * nw * 0.45, tip + 0.009, 0.011, 0.006, angle=-sgn * 0.3), skin * 0.35, NOSE)


def _draw_mouth(c: Canvas, p: dict) -> None:
    cx, my, mw = p["cx"], p["mouth_y"], p["mouth_w"]
    smile, gap0 = p["smile"], p["gap"]
    tu, tl = p["upper_lip"], p["lower_lip"]
    lip = mix(p["skin"], (0.78, 0.28, 0.3), p["lip_tint"]) * 0.9
    lower_lip = lip * 1.12
    box = (cx - mw, my - 0.06, cx + mw, my + 0.06)

    def parts(X, Y):
        u = (X - cx) / mw
        v = np.clip(1.0 - u * u, 0.0, 1.0)
        centre = my - smile * (u * u - 0.35)  # corners go up when smiling
        gap = gap0 * v ** 0.8
        bow = 1.0 - 0.3 * np.exp(-((u / 0.15) ** 2))  # cupid's bow dip in the upper lip
        top = centre - gap - tu * np.sqrt(v) * bow
        bottom = centre + gap + tl * np.sqrt(v)
        inside = (np.abs(u) < 1.0) & (Y >= top) & (Y <= bottom)
        return inside, centre, gap, u

    c.fill(box, lambda X, Y: parts(X, Y)[0], lip, MOUTH)

    def in_lower(X, Y):
        inside, centre, gap, _ = parts(X, Y)
        return inside & (Y > centre + gap)
    c.fill(box, in_lower, lower_lip, MOUTH)
    if gap0 > 0:
        def in_gap(X, Y):
            inside, centre, gap, _ = parts(X, Y)
            return inside & (np.abs(Y - centre) < gap)
        c.fill(box, in_gap, (0.22, 0.05, 0.06), MOUTH)
        if p["teeth"]:
            def in_teeth(X, Y):
                inside, centre, gap, u = parts(X, Y)
                return inside & (Y > centre - gap) & (Y < centre - gap + 0.9 * gap0 * 0.55) & (np.abs(u) < 0.6)
            c.fill(box, in_teeth, (0.93, 0.91, 0.86), MOUTH)
    else:
        def in_line(X, Y):
            inside, centre, _, _ = parts(X, Y)
            return inside & (np.abs(Y - centre) < 0.0035)
        c.fill(box, in_line, lip * 0.45, MOUTH)


def draw_toyface(p: dict, res: int) -> tuple[np.ndarray, np.ndarray]:
    """Rasterize face parameters: RGB uint8 (res, res, 3) and labels uint8 (res, res)."""
    c = Canvas(res)
    c.background_gradient(p["bg0"], p["bg1"], p["bg_angle"])
    hair = _hair_colour_fn(p)
    if p["hair_style"] == "long":
        _draw_hair_back(c, p, hair)
    _draw_face(c, p)
    _draw_hair_front(c, p, hair)
    _draw_brows(c, p)
    _draw_eyes(c, p)
    _draw_nose(c, p)
    _draw_mouth(c, p)

    # Soft directional light plus a fall-off towards the head's outline.
    cx, cy, rx, ry = p["cx"], p["face_cy"], p["face_rx"], p["face_ry"]
    lx, ly = np.cos(p["light_angle"]), np.sin(p["light_angle"])
    k = p["light_strength"]

    def light(X, Y):
        directional = k * ((X - cx) * lx + (Y - cy) * ly) / rx
        falloff = 0.22 * (((X - cx) / (rx * 1.25)) ** 2 + ((Y - cy) / (ry * 1.25)) ** 2)
        return np.clip(1.0 + directional - falloff, 0.55, 1.3)
    head = (cx - rx * 1.6, cy - ry * 1.3, cx + rx * 1.6, 1.0)
    c.shade(light, box=head, skip_label=BACKGROUND)
    return c.finish(len(TOYFACES_CLASSES), weights=_LABEL_WEIGHTS)


def render_toyface(rng: np.random.Generator, res: int) -> tuple[np.ndarray, np.ndarray]:
    """One random face: RGB uint8 (res, res, 3) and labels uint8 (res, res)."""
    return draw_toyface(sample_toyface(rng), res)


def toyface(seed: int, index: int, res: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Image `index` of the toyfaces dataset with `seed`, exactly as make_toyfaces writes it."""
    return render_toyface(np.random.default_rng([seed, index]), res)


def make_toyfaces(out, n: int, res: int = 64, seed: int = 0, workers: int | None = None,
                  progress: bool = True) -> Path:
    """Write a toyfaces archive of n images at res x res with masks; returns `out` as a Path.

    Image i depends only on (seed, i): any worker count gives a byte-identical
    archive. workers=None uses every CPU core.
    """
    return render_archive(out, n, res, seed, render_toyface, TOYFACES_CLASSES,
                          source=f"toyfaces seed={seed}", workers=workers, progress=progress,
                          desc="toyfaces")

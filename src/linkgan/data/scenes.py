"""scenes: procedural outdoor scenes (church, trees, car) with exact masks.

A small stand-in for LSUN church / car that needs no download. Each image has
a sky (blue, overcast grey or sunset, with soft clouds and sometimes a sun),
ground (grass, dirt, sand or snow, sometimes a road, with faint hills on the
horizon), a church-like building (nave with a gable roof and a tower with a
pointed spire, arched windows, a door), zero to four trees (broad-leaved or
conifer) and often a car (body, cabin with windows, wheels). The horizon
height, the building's position, width and height, the tower side, the
trees and the car's position, size and direction all vary, so the regions
move from image to image.

Classes (mask values are indices into SCENES_CLASSES):
  0 sky (including clouds and the sun), 1 ground (including hills and road),
  2 building (walls, roofs, tower, windows, door), 3 tree (trunk and crown),
  4 car (body, windows, wheels, lights).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .procedural import Canvas, ellipse, gaussian_alpha, hsv, mix, polygon, rect, render_archive, union

SCENES_CLASSES = ["sky", "ground", "building", "tree", "car"]
SKY, GROUND, BUILDING, TREE, CAR = range(5)

_WALLS = np.array([
    (0.72, 0.70, 0.66), (0.84, 0.80, 0.70), (0.93, 0.92, 0.88), (0.66, 0.38, 0.30),
    (0.55, 0.52, 0.50), (0.80, 0.68, 0.52),
], np.float32)
_ROOFS = np.array([
    (0.45, 0.18, 0.14), (0.28, 0.28, 0.32), (0.35, 0.55, 0.48), (0.30, 0.22, 0.16), (0.18, 0.18, 0.22),
], np.float32)
_CARS = np.array([
    (0.75, 0.08, 0.08), (0.10, 0.25, 0.65), (0.92, 0.92, 0.92), (0.08, 0.08, 0.09), (0.62, 0.64, 0.67),
    (0.95, 0.75, 0.10), (0.10, 0.45, 0.25), (0.45, 0.10, 0.45),
], np.float32)


def _pick(rng: np.random.Generator, table: np.ndarray) -> np.ndarray:
    return table[rng.integers(len(table))] * rng.uniform(0.88, 1.08)


def sample_scene(rng: np.random.Generator) -> dict:
    """Draw the parameters of one scene (all lengths in [0, 1] image units)."""
    p: dict = {}
    p["horizon"] = rng.uniform(0.5, 0.72)
    p["sky_kind"] = ("blue", "grey", "sunset")[rng.choice(3, p=[0.5, 0.2, 0.3])]
    p["sky_hue"] = rng.uniform(-0.03, 0.03)
    p["sky_tone"] = rng.uniform(0.0, 1.0)
    p["sun"] = (rng.uniform(0.1, 0.9), rng.uniform(0.1, 0.35), rng.uniform(0.025, 0.05)) \
        if rng.random() < (0.7 if p["sky_kind"] == "sunset" else 0.25) and p["sky_kind"] != "grey" else None
    clouds = []
    for _ in range(rng.integers(0, 6 if p["sky_kind"] != "grey" else 9)):
        x, y = rng.uniform(-0.1, 1.1), rng.uniform(0.03, p["horizon"] - 0.05)
        w = rng.uniform(0.06, 0.16)
        puffs = [(x + rng.uniform(-1, 1) * w, y + rng.uniform(-0.25, 0.25) * w * 0.5,
                  rng.uniform(0.35, 0.6) * w, rng.uniform(0.15, 0.3) * w) for _ in range(rng.integers(3, 7))]
        clouds.append((puffs, rng.uniform(0.45, 0.9)))
    p["clouds"] = clouds
    p["hills"] = (rng.uniform(0.01, 0.05), rng.uniform(4, 12), rng.uniform(0, 2 * np.pi),
                  rng.uniform(0, 2 * np.pi)) if rng.random() < 0.6 else None

    p["ground_kind"] = ("grass", "grass", "dirt", "sand", "snow")[rng.integers(5)]
    if p["ground_kind"] == "snow" and p["sky_kind"] == "grey":
        p["ground_kind"] = "dirt"  # snow under an overcast sky leaves no visible horizon
    p["ground_tone"] = rng.uniform(0.0, 1.0)
    p["ground_phase"] = rng.uniform(0, 2 * np.pi, 2)
    p["road"] = (rng.uniform(0.25, 0.75), rng.uniform(0.1, 0.35), rng.uniform(0.01, 0.04)) \
        if rng.random() < 0.45 else None  # vanishing x, half width at the bottom, half width at the horizon

    h = p["horizon"]
    b: dict = {}
    b["base"] = h + rng.uniform(0.02, 0.12)
    b["width"] = rng.uniform(0.28, 0.56)
    b["x"] = rng.uniform(0.06 + b["width"] / 2, 0.94 - b["width"] / 2)
    b["height"] = rng.uniform(0.12, 0.26)
    b["roof"] = rng.uniform(0.06, 0.12)
    b["tower_side"] = rng.choice([-1, 1, 0], p=[0.42, 0.42, 0.16])  # 0: tower in the middle, in front
    b["tower_w"] = rng.uniform(0.07, 0.12)
    b["tower_h"] = b["height"] + rng.uniform(0.1, 0.25)
    b["spire"] = rng.uniform(0.08, 0.18)
    # Keep the spire's tip inside the image.
    over = (b["base"] - b["tower_h"] - b["spire"]) - 0.02
    if over < 0:
        b["tower_h"] += over
    b["wall"] = _pick(rng, _WALLS)
    b["roof_colour"] = _pick(rng, _ROOFS)
    b["windows"] = int(rng.integers(2, 6))
    b["lit"] = p["sky_kind"] == "sunset" and rng.random() < 0.5
    b["glass"] = hsv(rng.uniform(0.55, 0.7), 0.4, 0.3) if rng.random() < 0.7 else hsv(rng.random(), 0.6, 0.5)
    b["clock"] = rng.random() < 0.5
    p["building"] = b

    trees = []
    for _ in range(rng.integers(0, 5)):
        base = rng.uniform(h + 0.01, 0.97)
        scale = 0.55 + 1.3 * (base - h) / (1 - h)
        trees.append({
            "x": rng.uniform(0.03, 0.97), "base": base, "scale": scale,
            "conifer": rng.random() < 0.35,
            "green": hsv(rng.uniform(0.22, 0.36), rng.uniform(0.45, 0.8), rng.uniform(0.25, 0.55)),
            "puffs": [(rng.uniform(-1, 1), rng.uniform(-1, 1), rng.uniform(0.6, 1.0)) for _ in range(5)],
            "trunk_h": rng.uniform(0.04, 0.08), "crown_r": rng.uniform(0.04, 0.065),
        })
    p["trees"] = trees

    car = None
    if rng.random() < 0.6:
        length = rng.uniform(0.24, 0.4)
        car = {
            "length": length,
            "x": rng.uniform(0.03 + length / 2, 0.97 - length / 2),
            "base": rng.uniform(0.86, 0.97),
            "dir": rng.choice([-1, 1]),
            "colour": _pick(rng, _CARS),
            "body_h": rng.uniform(0.2, 0.27) * length,
            "cabin_h": rng.uniform(0.16, 0.24) * length,
            "cabin_len": rng.uniform(0.45, 0.6),
            "wheel_r": rng.uniform(0.075, 0.095) * length,
        }
    p["car"] = car
    return p


def _sky_rows(p: dict, ys: np.ndarray) -> np.ndarray:
    """Sky colour per row: (len(ys), 3) for row centres ys."""
    h, tone, hue = p["horizon"], p["sky_tone"], p["sky_hue"]
    t = np.clip(ys / h, 0, 1)[:, None]
    kind = p["sky_kind"]
    if kind == "blue":
        top, low = hsv(0.6 + hue, 0.55 + 0.25 * tone, 0.62 + 0.2 * tone), hsv(0.56 + hue, 0.25, 0.97)
        return top + (low - top) * t ** 1.2
    if kind == "grey":
        top, low = np.full(3, 0.5 + 0.2 * tone, np.float32), np.full(3, 0.78 + 0.12 * tone, np.float32)
        return top + (low - top) * t
    top, mid, low = hsv(0.7 + hue, 0.5, 0.3 + 0.15 * tone), hsv(0.02 + hue, 0.6, 0.9), hsv(0.11 + hue, 0.55, 1.0)
    upper = top + (mid - top) * np.clip(t / 0.6, 0, 1)
    return np.where(t < 0.6, upper, mid + (low - mid) * np.clip((t - 0.6) / 0.4, 0, 1))


def _ground_colours(p: dict) -> tuple[np.ndarray, np.ndarray]:
    """(colour at the horizon, colour at the bottom of the image)."""
    tone, kind = p["ground_tone"], p["ground_kind"]
    if kind == "grass":
        near = hsv(0.24 + 0.08 * tone, 0.6, 0.35 + 0.2 * tone)
    elif kind == "dirt":
        near = hsv(0.07 + 0.03 * tone, 0.5, 0.3 + 0.2 * tone)
    elif kind == "sand":
        near = hsv(0.11 + 0.02 * tone, 0.35, 0.65 + 0.2 * tone)
    else:
        near = hsv(0.6, 0.05, 0.85 + 0.1 * tone)
    haze = mix(near, _sky_rows(p, np.array([p["horizon"]], np.float32))[0], 0.35)
    return haze, near * 0.85


def _draw_sky(c: Canvas, p: dict) -> None:
    rows = _sky_rows(p, c.xs).astype(np.float32)
    for k in range(3):
        c.rgb[k] = rows[:, k, None]
    c.label[...] = SKY
    if p["sun"] is not None:
        sx, sy, sr = p["sun"]
        sy = min(sy, p["horizon"] - 0.05)
        glow = mix((1.0, 0.95, 0.8), (1.0, 0.75, 0.4), 1.0 if p["sky_kind"] == "sunset" else 0.0)
        c.blend(*gaussian_alpha(sx, sy, sr * 2.2, sr * 2.2, 0.35), glow)
        c.fill(*ellipse(sx, sy, sr, sr), glow * 0.5 + 0.5)
    cloud = {"blue": (0.98, 0.98, 1.0), "grey": (0.88, 0.88, 0.9), "sunset": (1.0, 0.78, 0.7)}[p["sky_kind"]]
    for puffs, opacity in p["clouds"]:
        for x, y, sx, sy in puffs:
            c.blend(*gaussian_alpha(x, y, sx, sy, opacity), cloud)


def _draw_ground(c: Canvas, p: dict) -> None:
    h = p["horizon"]
    far, near = _ground_colours(p)
    if p["hills"] is not None:
        amp, freq, ph1, ph2 = p["hills"]
        hill_colour = mix(far, _sky_rows(p, np.array([h * 0.8], np.float32))[0], 0.45) * 0.85

        def in_hills(X, Y):
            top = h - amp * (0.6 + 0.4 * np.sin(X * freq + ph1) * np.sin(X * freq * 0.37 + ph2))
            return Y >= top
        c.fill((0, h - amp - 0.01, 1, h + 0.01), in_hills, hill_colour, GROUND)
    ph = p["ground_phase"]

    def ground_colour(X, Y):  # X (1, w), Y (h, 1) -> (3, h, w)
        t = np.clip((Y - h) / (1 - h), 0, 1) ** 0.7
        # Faint texture (furrows, mown stripes), denser towards the horizon.
        texture = 1.0 + (0.05 * np.sin(Y * 90.0 + ph[1])) * np.sin(X * (40.0 / (0.2 + t)) + ph[0])
        rows = far[:, None, None] + (near - far)[:, None, None] * t[None]
        return rows * texture[None]
    c.fill((0, h, 1, 1), lambda X, Y: Y >= h, ground_colour, GROUND, dense=True)
    if p["road"] is not None:
        vx, wb, wh = p["road"]
        asphalt = np.array((0.33, 0.33, 0.35), np.float32) * (0.9 + 0.2 * p["ground_tone"])
        bottom_x = 0.5 + (vx - 0.5) * 0.3
        c.fill(*polygon([(vx - wh, h), (vx + wh, h), (bottom_x + wb, 1.0), (bottom_x - wb, 1.0)]),
               asphalt, GROUND)

        def in_stripes(X, Y):
            t = (Y - h) / (1 - h)
            cx = vx + (bottom_x - vx) * t
            half = 0.002 + 0.008 * t
            # Dashes get longer towards the viewer (equal steps in log distance).
            dashed = (np.sin(np.log(np.maximum(t, 1e-3)) * 18.0) > 0.2) & (t > 0.05)
            return (np.abs(X - cx) < half) & dashed
        lo, hi = min(vx, bottom_x) - 0.02, max(vx, bottom_x) + 0.02
        c.fill((lo, h, hi, 1), in_stripes, (0.9, 0.88, 0.75), GROUND)


def _arched_window(x: float, y_top: float, w: float, h: float):
    """An arched window: rectangle with a half-disc on top; y_top is the arch's apex."""
    r = w / 2
    return union(rect(x - r, y_top + r, x + r, y_top + h), ellipse(x, y_top + r, r, r))


def _draw_building(c: Canvas, p: dict) -> None:
    b = p["building"]
    base, x, w, hgt = b["base"], b["x"], b["width"], b["height"]
    wall, roof = b["wall"], b["roof_colour"]
    glass = np.array((1.0, 0.8, 0.4), np.float32) if b["lit"] else b["glass"]
    left, right, top = x - w / 2, x + w / 2, base - hgt
    # Nave: walls with a slight horizontal gradient, gable roof, arched windows.
    c.fill(*rect(left, top, right, base), lambda X, Y: wall * (0.86 + 0.1 * (X - left) / w)[:, None], BUILDING)
    c.fill(*polygon([(left - 0.01, top + 0.002), (right + 0.01, top + 0.002), (right - 0.02, top - b["roof"]),
                     (left + 0.02, top - b["roof"])]), roof, BUILDING)
    side = b["tower_side"]
    tw, th = b["tower_w"], b["tower_h"]
    tx = x if side == 0 else (left + tw / 2 + 0.005 if side < 0 else right - tw / 2 - 0.005)
    n = b["windows"]
    slots = np.linspace(left, right, n + 2)[1:-1]
    win_w = min(0.034, 0.5 * w / (n + 1))
    for wx in slots:
        if abs(wx - tx) < tw / 2 + win_w:
            continue  # hidden behind the tower
        c.fill(*_arched_window(wx, top + 0.25 * hgt, win_w, 0.45 * hgt), glass, BUILDING)
    # Tower: shaft, belfry opening, optional clock, spire.
    ttop = base - th
    c.fill(*rect(tx - tw / 2, ttop, tx + tw / 2, base), wall * 1.04, BUILDING)
    c.fill(*rect(tx + tw / 4, ttop, tx + tw / 2, base), wall * 0.88, BUILDING)  # shaded side
    c.fill(*_arched_window(tx, ttop + 0.02, tw * 0.38, min(0.05, th * 0.25)), (0.12, 0.1, 0.1), BUILDING)
    if b["clock"]:
        cy = ttop + 0.02 + min(0.05, th * 0.25) + tw * 0.35
        c.fill(*ellipse(tx, cy, tw * 0.25, tw * 0.25), (0.95, 0.93, 0.85), BUILDING)
        c.fill(*rect(tx - 0.002, cy - tw * 0.2, tx + 0.002, cy), (0.1, 0.1, 0.1), BUILDING)
    c.fill(*polygon([(tx - tw / 2 - 0.006, ttop + 0.001), (tx + tw / 2 + 0.006, ttop + 0.001),
                     (tx, ttop - b["spire"])]), roof * 0.9, BUILDING)
    door_w = min(tw * 0.5, 0.035)
    c.fill(*_arched_window(tx, base - min(0.07, th * 0.3), door_w, min(0.07, th * 0.3)),
           (0.25, 0.15, 0.1), BUILDING)


def _draw_tree(c: Canvas, t: dict) -> None:
    s, x, base = t["scale"], t["x"], t["base"]
    trunk_h, r = t["trunk_h"] * s, t["crown_r"] * s
    green = t["green"]
    c.fill(*rect(x - 0.008 * s, base - trunk_h - r, x + 0.008 * s, base), (0.3, 0.2, 0.12), TREE)
    if t["conifer"]:
        for k in range(3):  # three stacked triangles, smaller towards the top
            yb = base - trunk_h * 0.5 - k * r * 0.8
            half = r * (1.1 - 0.25 * k)
            c.fill(*polygon([(x - half, yb), (x + half, yb), (x, yb - r * 1.4)]), green * (0.8 + 0.12 * k), TREE)
        return
    cy = base - trunk_h - r
    for dx, dy, rr in t["puffs"]:
        px, py, pr = x + dx * r * 0.6, cy + dy * r * 0.5, r * rr

        def colour(X, Y, py=py, pr=pr):
            # Lighter at the top of each puff, as if lit from above.
            return green * (1.15 - 0.35 * np.clip((Y - py) / pr + 0.5, 0, 1.5))[:, None]
        c.fill(*ellipse(px, py, pr, pr), colour, TREE)


def _draw_car(c: Canvas, car: dict) -> None:
    L, x, base, d = car["length"], car["x"], car["base"], car["dir"]
    wr, bh, ch = car["wheel_r"], car["body_h"], car["cabin_h"]
    colour = car["colour"]
    c.blend(*gaussian_alpha(x, base, L * 0.35, 0.012, 0.55), (0.05, 0.05, 0.05))  # shadow on the ground
    body_bottom = base - wr * 0.55
    body_top = body_bottom - bh
    c.fill(*rect(x - L / 2, body_top, x + L / 2, body_bottom, radius=bh * 0.35),
           lambda X, Y: colour * (1.1 - 0.3 * (Y - body_top) / bh)[:, None], CAR)
    # Cabin sits towards the back (d = +1: car faces right).
    cl = car["cabin_len"] * L
    cx = x - d * L * 0.06
    c0, c1 = cx - cl / 2, cx + cl / 2
    slope_front, slope_back = 0.35 * cl, 0.18 * cl
    if d > 0:
        cabin = [(c0, body_top + 0.001), (c1, body_top + 0.001), (c1 - slope_front, body_top - ch),
                 (c0 + slope_back, body_top - ch)]
    else:
        cabin = [(c0, body_top + 0.001), (c1, body_top + 0.001), (c1 - slope_back, body_top - ch),
                 (c0 + slope_front, body_top - ch)]
    c.fill(*polygon(cabin), colour * 0.95, CAR)
    inset = 0.18 * ch
    win = [(cabin[0][0] + inset * 1.6, body_top - inset * 0.3), (cabin[1][0] - inset * 1.6, body_top - inset * 0.3),
           (cabin[2][0] - inset * 0.6, cabin[2][1] + inset), (cabin[3][0] + inset * 0.6, cabin[3][1] + inset)]
    c.fill(*polygon(win), lambda X, Y: mix((0.55, 0.65, 0.78), (0.25, 0.3, 0.38), 0.5)
           * (1.2 - 0.5 * (Y - (body_top - ch)) / ch)[:, None], CAR)
    pillar = cx + d * cl * 0.05
    c.fill(*rect(pillar - 0.004, body_top - ch, pillar + 0.004, body_top), colour * 0.9, CAR)
    front, back = x + d * L / 2, x - d * L / 2
    c.fill(*ellipse(front - d * 0.012, body_top + bh * 0.3, 0.01, bh * 0.14), (1.0, 0.95, 0.7), CAR)
    c.fill(*ellipse(back + d * 0.008, body_top + bh * 0.3, 0.007, bh * 0.14), (0.8, 0.1, 0.08), CAR)
    for wx in (x - 0.3 * L, x + 0.3 * L):
        c.fill(*ellipse(wx, base - wr, wr, wr), (0.06, 0.06, 0.07), CAR)
        c.fill(*ellipse(wx, base - wr, wr * 0.5, wr * 0.5), (0.65, 0.66, 0.68), CAR)


def draw_scene(p: dict, res: int) -> tuple[np.ndarray, np.ndarray]:
    """Rasterize scene parameters: RGB uint8 (res, res, 3) and labels uint8 (res, res)."""
    c = Canvas(res)
    _draw_sky(c, p)
    _draw_ground(c, p)
    # Painter's order: whatever stands further back (higher up) is drawn first.
    things = [(p["building"]["base"], 0, lambda: _draw_building(c, p))]
    for i, t in enumerate(p["trees"]):
        things.append((t["base"], 1 + i, lambda t=t: _draw_tree(c, t)))
    if p["car"] is not None:
        things.append((p["car"]["base"], 99, lambda: _draw_car(c, p["car"])))
    for _, _, draw in sorted(things, key=lambda item: item[:2]):
        draw()
    return c.finish(len(SCENES_CLASSES))


def render_scene(rng: np.random.Generator, res: int) -> tuple[np.ndarray, np.ndarray]:
    """One random scene: RGB uint8 (res, res, 3) and labels uint8 (res, res)."""
    return draw_scene(sample_scene(rng), res)


def scene(seed: int, index: int, res: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Image `index` of the scenes dataset with `seed`, exactly as make_scenes writes it."""
    return render_scene(np.random.default_rng([seed, index]), res)


def make_scenes(out, n: int, res: int = 64, seed: int = 0, workers: int | None = None,
                progress: bool = True) -> Path:
    """Write a scenes archive of n images at res x res with masks; returns `out` as a Path.

    Image i depends only on (seed, i): any worker count gives a byte-identical
    archive. workers=None uses every CPU core.
    """
    return render_archive(out, n, res, seed, render_scene, SCENES_CLASSES,
                          source=f"scenes seed={seed}", workers=workers, progress=progress, desc="scenes")

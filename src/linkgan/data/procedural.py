"""Shared machinery for the procedural datasets (toyfaces, scenes).

Images are drawn on a supersampled canvas in [0, 1] image coordinates (x to
the right, y down) with vectorized numpy, one shape at a time and only inside
each shape's bounding box. The RGB canvas is box-filtered down to the output
resolution, which anti-aliases every edge; the label canvas takes the
(optionally weighted) majority label of each block, so mask boundaries sit
where the colour edges are.

Every image draws its random parameters from np.random.default_rng([seed,
index]) before anything is rasterized, so an image depends only on (seed,
index) and not on the worker count or on which process drew it, and the
same seed at another resolution gives the same picture, sharper.
"""

from __future__ import annotations

import colorsys
import functools
import multiprocessing
import os
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ..errors import InputError
from .archive import write_archive
from .images import encode_png

Box = tuple[float, float, float, float]  # x0, y0, x1, y1 in [0, 1]
RenderFn = Callable[[np.random.Generator, int], tuple[np.ndarray, np.ndarray]]


def supersampling_for(res: int) -> int:
    """Samples per pixel along each axis: 4x4 up to 32 px, 3x3 up to 128 px, then 2x2.

    3x3 samples already give 10 coverage levels per edge pixel; the smaller
    factor at larger sizes keeps the sample count (and time) in check.
    """
    return 4 if res <= 32 else 3 if res <= 128 else 2


class Canvas:
    """A supersampled RGB canvas (float32 in [0, 1]) with a parallel label canvas (uint8).

    Shapes are functions inside(X, Y) -> bool array, evaluated on broadcast
    coordinate arrays X (1, w) and Y (h, 1) of sample centres within a box.
    Colours are stored planar, (3, H, W), because numpy loops over a
    trailing axis of length 3 are several times slower.
    """

    def __init__(self, res: int, ss: int | None = None):
        self.res = res
        self.ss = ss or supersampling_for(res)
        self.size = res * self.ss
        self.xs = (np.arange(self.size, dtype=np.float32) + 0.5) / self.size
        self.rgb = np.zeros((3, self.size, self.size), np.float32)
        self.label = np.zeros((self.size, self.size), np.uint8)

    def grid(self, box: Box | None = None):
        """(slice_y, slice_x, X (1,w), Y (h,1)) for a box, or None if it is off-canvas."""
        if box is None:
            return slice(None), slice(None), self.xs[None, :], self.xs[:, None]
        x0, y0, x1, y1 = box
        n = self.size
        i0, i1 = max(int(np.floor(y0 * n)), 0), min(int(np.ceil(y1 * n)), n)
        j0, j1 = max(int(np.floor(x0 * n)), 0), min(int(np.ceil(x1 * n)), n)
        if i0 >= i1 or j0 >= j1:
            return None
        return slice(i0, i1), slice(j0, j1), self.xs[None, j0:j1], self.xs[i0:i1, None]

    def background_gradient(self, c0, c1, angle: float, label: int = 0) -> None:
        """Cover the canvas with a linear gradient c0 -> c1 along direction `angle` (radians).

        The gradient spans the square's diagonal, so it needs no clipping and
        splits into an x term plus a y term (one broadcast add per channel).
        """
        c0, c1 = np.asarray(c0, np.float32), np.asarray(c1, np.float32)
        span = np.sqrt(2.0)
        tx = (self.xs - 0.5) * np.float32(np.cos(angle) / span)
        ty = 0.5 + (self.xs - 0.5) * np.float32(np.sin(angle) / span)
        for k in range(3):
            d = c1[k] - c0[k]
            np.add((c0[k] + ty * d)[:, None], (tx * d)[None, :], out=self.rgb[k])
        self.label[...] = label

    def fill(self, box: Box | None, inside, color, label: int | None = None, dense: bool = False) -> None:
        """Paint the samples where inside(X, Y) is true with `color` and `label`.

        color: an RGB triple, or a function (X, Y) -> (k, 3) evaluated only at
        the k covered samples (X, Y are then 1-D arrays of their coordinates).
        With dense=True the function instead gets the box's grid, X (1, w) and
        Y (h, 1), and returns planar colours broadcastable to (3, h, w); this
        is faster for shapes that fill most of their box.
        """
        g = self.grid(box)
        if g is None:
            return
        self.fill_mask(g, inside(g[2], g[3]), color, label, dense)

    def fill_mask(self, g, m, color, label: int | None = None, dense: bool = False) -> None:
        """fill() with a grid from grid() and a precomputed mask m (broadcastable to its (h, w)).

        Lets several layers of one part (an eye's white, iris, pupil) share one
        evaluation of the outline.
        """
        sy, sx, X, Y = g
        shape = (Y.shape[0], X.shape[1])
        m = np.broadcast_to(m, shape)
        if not m.any():
            return
        view = self.rgb[:, sy, sx]
        if callable(color) and dense:
            np.copyto(view, np.asarray(color(X, Y), np.float32), where=m)
        elif callable(color):
            col = color(np.broadcast_to(X, shape)[m], np.broadcast_to(Y, shape)[m])
            view[:, m] = np.asarray(col, np.float32).T
        else:
            np.copyto(view, np.asarray(color, np.float32)[:, None, None], where=m)
        if label is not None:
            self.label[sy, sx][m] = label

    def blend(self, box: Box | None, alpha, color, label: int | None = None, label_above: float = 0.5) -> None:
        """Alpha-blend an RGB triple `color` with per-sample opacity alpha(X, Y) in [0, 1].

        Samples with opacity above label_above take `label` (if given).
        """
        g = self.grid(box)
        if g is None:
            return
        sy, sx, X, Y = g
        a = np.broadcast_to(np.asarray(alpha(X, Y), np.float32), (Y.shape[0], X.shape[1]))
        col = np.asarray(color, np.float32)[:, None, None]
        view = self.rgb[:, sy, sx]
        view += a * (col - view)
        if label is not None:
            self.label[sy, sx][a > label_above] = label

    def shade(self, factor, labels: Sequence[int] | None = None, box: Box | None = None,
              skip_label: int | None = None) -> None:
        """Multiply colours by factor(X, Y) (broadcastable to (h, w)) inside `box`.

        Only samples whose label is in `labels` (if given) and differs from
        `skip_label` (if given) change.
        """
        g = self.grid(box)
        if g is None:
            return
        sy, sx, X, Y = g
        f = np.broadcast_to(np.asarray(factor(X, Y), np.float32), (Y.shape[0], X.shape[1]))
        lab = self.label[sy, sx]
        if labels is not None:
            f = np.where(np.isin(lab, labels), f, np.float32(1))
        if skip_label is not None:
            f = np.where(lab != skip_label, f, np.float32(1))
        self.rgb[:, sy, sx] *= f

    def finish(self, num_classes: int, weights: Sequence[float] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Downsample to (res, res): RGB uint8 (res,res,3) by box filter, labels uint8 (res,res) by majority.

        weights (one per class) bias the vote, so small parts (an eye, a
        closed mouth) keep their label at low resolution where they cover a
        visible fraction of a pixel but not half of it.
        """
        r, s = self.res, self.ss
        # Two contiguous partial sums are several times faster than one mean over two axes.
        rgb = self.rgb.reshape(3, r, s, r * s).sum(axis=2).reshape(3, r, r, s).sum(axis=3)
        rgb = np.clip(rgb * (255.0 / (s * s)) + 0.5, 0, 255).astype(np.uint8).transpose(1, 2, 0)
        # Majority vote per block via one bincount over (block, label) pairs.
        keys = _block_ids(r, s) * num_classes + self.label
        counts = np.bincount(keys.ravel(), minlength=r * r * num_classes)
        counts = counts.reshape(r * r, num_classes)
        if weights is not None:
            counts = counts * np.asarray(weights, np.float32)
        label = counts.argmax(axis=1).astype(np.uint8).reshape(r, r)
        return np.ascontiguousarray(rgb), label


@functools.lru_cache(maxsize=8)
def _block_ids(r: int, s: int) -> np.ndarray:
    """(r*s, r*s) int64: index of the output pixel each sample belongs to."""
    rows = np.arange(r, dtype=np.int64).repeat(s)
    return rows[:, None] * r + rows[None, :]


# ---------------------------------------------------------------------- shapes
def ellipse(cx: float, cy: float, rx: float, ry: float, angle: float = 0.0):
    """inside(X, Y) for an ellipse rotated by `angle` radians, and its bounding box."""
    if angle == 0.0:
        def inside(X, Y):
            return ((X - cx) / rx) ** 2 + ((Y - cy) / ry) ** 2 <= 1.0
        return (cx - rx, cy - ry, cx + rx, cy + ry), inside
    c, s = np.cos(angle), np.sin(angle)
    ext = max(rx, ry)

    def inside_rot(X, Y):
        dx, dy = X - cx, Y - cy
        u, v = dx * c + dy * s, -dx * s + dy * c
        return (u / rx) ** 2 + (v / ry) ** 2 <= 1.0
    return (cx - ext, cy - ext, cx + ext, cy + ext), inside_rot


def rect(x0: float, y0: float, x1: float, y1: float, radius: float = 0.0):
    """inside(X, Y) for an axis-aligned rectangle with optional rounded corners."""
    def inside(X, Y):
        if radius <= 0:
            return (X >= x0) & (X <= x1) & (Y >= y0) & (Y <= y1)
        dx = np.maximum(np.maximum(x0 + radius - X, X - (x1 - radius)), 0)
        dy = np.maximum(np.maximum(y0 + radius - Y, Y - (y1 - radius)), 0)
        return (dx * dx + dy * dy <= radius * radius) & (X >= x0) & (X <= x1) & (Y >= y0) & (Y <= y1)
    return (x0, y0, x1, y1), inside


def polygon(points: Sequence[tuple[float, float]]):
    """inside(X, Y) for a simple polygon (even-odd rule), and its bounding box."""
    pts = np.asarray(points, np.float32)
    box = (float(pts[:, 0].min()), float(pts[:, 1].min()), float(pts[:, 0].max()), float(pts[:, 1].max()))

    def inside(X, Y):
        result = np.zeros(np.broadcast_shapes(X.shape, Y.shape), bool)
        for (xa, ya), (xb, yb) in zip(pts, np.roll(pts, -1, axis=0)):
            if ya == yb:
                continue
            crosses = (Y >= min(ya, yb)) & (Y < max(ya, yb))
            x_at = xa + (Y - ya) * (xb - xa) / (yb - ya)
            result ^= crosses & (X < x_at)
        return result
    return box, inside


def union(*shapes):
    """inside(X, Y) true where any of the (box, inside) shapes is, with the enclosing box."""
    boxes = [b for b, _ in shapes]
    box = (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))

    def inside(X, Y):
        out = shapes[0][1](X, Y)
        for _, f in shapes[1:]:
            out = out | f(X, Y)
        return out
    return box, inside


def gaussian_alpha(cx: float, cy: float, sx: float, sy: float, peak: float = 1.0):
    """A soft blob: alpha(X, Y) = peak * exp(-((dx/sx)^2 + (dy/sy)^2) / 2), box at 3 sigma."""
    def alpha(X, Y):
        # Separable: two 1-D exponentials and one outer product.
        return (peak * np.exp(-0.5 * ((X - cx) / sx) ** 2)) * np.exp(-0.5 * ((Y - cy) / sy) ** 2)
    return (cx - 3 * sx, cy - 3 * sy, cx + 3 * sx, cy + 3 * sy), alpha


# ---------------------------------------------------------------------- colours
def hsv(h: float, s: float, v: float) -> np.ndarray:
    """An RGB triple (float32 in [0, 1]) from hue (turns), saturation, value."""
    return np.array(colorsys.hsv_to_rgb(h % 1.0, float(np.clip(s, 0, 1)), float(np.clip(v, 0, 1))), np.float32)


def mix(a, b, t: float) -> np.ndarray:
    """Linear interpolation between two RGB triples: a at t=0, b at t=1."""
    return (np.asarray(a, np.float32) * (1 - t) + np.asarray(b, np.float32) * t).astype(np.float32)


# ---------------------------------------------------------------------- archive driver
def _render_chunk(args) -> list[tuple[bytes, bytes]]:
    render, seed, res, start, stop = args
    out = []
    for index in range(start, stop):
        rgb, label = render(np.random.default_rng([seed, index]), res)
        # zlib level 3: most of level 6's compression at well under half the time.
        out.append((encode_png(rgb, compress_level=3), encode_png(label, compress_level=3)))
    return out


def check_render_args(n, res, seed, workers) -> tuple[int, int, int, int]:
    """Validated (n, res, seed, workers) of a procedural dataset; workers=None means every CPU core."""
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise InputError(f"n (number of images) must be a positive integer, got {n!r}")
    if not isinstance(res, (int, np.integer)) or res < 8:
        raise InputError(f"res must be an integer >= 8, got {res!r}")
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputError(f"seed must be a non-negative integer, got {seed!r}")
    n = int(n)
    workers = (os.cpu_count() or 1) if workers is None else int(workers)
    return n, int(res), int(seed), max(1, min(workers, n))


def render_archive(out, n: int, res: int, seed: int, render: RenderFn, classes: list[str], source: str,
                   workers: int | None = None, progress: bool = True, desc: str | None = None) -> Path:
    """Render images 0..n-1 with render(rng, res) -> (rgb (res,res,3) uint8, label (res,res) uint8)
    and write them as an archive at `out`. Rendering and PNG encoding run in a
    process pool when workers > 1; results are written in index order, so
    the archive bytes do not depend on `workers`.
    """
    n, res, seed, workers = check_render_args(n, res, seed, workers)
    # Chunks big enough to amortize inter-process traffic, small enough to
    # balance the load and keep the progress bar moving.
    chunk = max(1, min(64, n // (workers * 8) or 1))
    tasks = [(render, seed, res, s, min(s + chunk, n)) for s in range(0, n, chunk)]

    def items(results):
        for batch in results:
            yield from batch

    if workers == 1:
        write_archive(out, items(map(_render_chunk, tasks)), res, classes=classes, source=source,
                      progress_total=n, progress=progress, desc=desc)
    else:
        with multiprocessing.get_context().Pool(workers) as pool:
            write_archive(out, items(pool.imap(_render_chunk, tasks)), res, classes=classes, source=source,
                          progress_total=n, progress=progress, desc=desc)
    return Path(out)

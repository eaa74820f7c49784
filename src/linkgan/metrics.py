"""Metrics, named with their sample count as in StyleGAN2-ADA (``mse1k``, ``fid5k``, ``kid5k``, ``pr5k``).

Every metric family is registered once with ``@register_metric``: its name pattern, its help, what
it needs (links, the training data) and which model kinds it measures. ``linkgan metrics``,
training's ``--metrics`` and the API (``compute_metrics``) all read the registry, so a new metric
is one decorated function.

FID, KID and precision/recall (``fid<N>k``, ``fid<N>k_full``, ``kid<N>k``, ``pr<N>k``...) compare N
thousand generated images with the dataset through the standard Inception network; see
linkgan.fid for the protocol. ``pr<N>k`` gives {precision, recall} with k = 3 neighbours.
They need the ``metrics`` extra and the training data.

Masked MSE (the paper's Table 2 and 3, after LowRankGAN), per link, over n samples:
  * ``mse_in``   mean squared pixel change INSIDE the region when the link's axes are
                 resampled (higher = a stronger edit);
  * ``mse_out``  mean squared pixel change OUTSIDE the region for the same edit (lower = more local);
  * ``mse_in_complement``  change inside the region when all the OTHER axes are resampled
                 (lower = the region is better protected); the shared axes of
                 --link-shared-axes are not, since no link's complement holds them;
  * ``locality`` = mse_out / mse_in (lower is better).
Images are mapped to [0, 1]; every mean is over the masked pixels and the 3 channels, so it
is normalized by the region's area. Resampling draws w' = mapping(z') for a fresh z'
(truncation 1) and copies its link (or complement) axes; noise maps are held constant so
that only the latent edit changes pixels.

A semantic link's region is found per image by its segmenter, as in training: with
``mask_mode: union`` (the default) it is the region of the original united with the region
of the edited image, so that pixels a sky edit turns into sky count as inside; with
``source`` it is the original's region only; with ``shared``, ``mse_in_complement`` is
measured over the pixels that are the region in both images.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from .errors import InputError
from .networks import Generator
from .partition import EditBatch, LatentPartition
from .regularizer import masked_mse
from .views import DEFAULT_YAWS, region_masks_for_view


class _MetricViews:
    """How masked MSE looks at a generator: identities mapped with the front camera and rendered from
    every view, with constant noise and deterministic rays. A 2D generator has one view (its
    cameras are None) and is measured in RGB, with its fixed masks or a segmenter's per image; a
    3D generator is rendered from every yaw at ``pitch`` and measured in RGB at the image
    resolution and depth (mapped from [near, far] to [0, 1]) at the neural resolution, and a
    3D-box link's region in a view is the pixels whose ray crosses the box."""

    def __init__(self, G, partition: LatentPartition, device, yaws, pitch: float):
        self.G, self.partition = G, partition
        self.cameras = G.view_cameras(yaws, pitch, device)
        self.count = 1 if self.cameras is None else len(self.cameras)
        self.channels = ("rgb",) if self.cameras is None else ("rgb", "depth")
        if self.cameras is None:
            self.fixed = {(link.name, 0, G.resolution): partition.region_mask(link.name, G.resolution,
                                                                               device=device).to(torch.float32)
                          for link in partition if link.region.is_fixed}
        else:
            self.fixed = {(name, v, res): region_masks_for_view(partition, name, self.cameras[v], res).float().to(device)
                          for name in partition.names for v in range(self.count)
                          for res in (G.resolution, G.neural_resolution)}

    def mapping(self, z: torch.Tensor) -> torch.Tensor:
        return self.G.mapping(z, self.G.frontal_cameras(z.shape[0], z.device))

    def render(self, ws: torch.Tensor, view: int) -> dict[str, torch.Tensor]:
        cams = None if self.cameras is None else self.cameras[view:view + 1].expand(ws.shape[0], -1)
        out = self.G.render(ws, cams, noise_mode="const", deterministic=True)
        views = {"rgb": (out["image"] + 1) / 2}
        if "depth" in self.channels:
            cfg = self.G.config
            views["depth"] = ((out["depth"] - cfg.near) / (cfg.far - cfg.near)).clamp(0, 1)
        return views

    def masks(self, name: str, view: int, x, moved, rest) -> tuple[torch.Tensor, torch.Tensor]:
        key = (name, view, x.shape[-1])
        if key in self.fixed:
            return self.fixed[key], self.fixed[key]
        region = self.partition[name].region  # semantic: per-image masks (the segmenter wants [-1, 1])
        return (region.edit_masks(x * 2 - 1, moved * 2 - 1).float(),
                region.complement_masks(x * 2 - 1, rest * 2 - 1).float())


def masked_mse_metric(G, partition: LatentPartition, n: int = 1000, batch: int | None = None, seed: int = 123,
                      device=None, progress: bool = False, dist_env=None, yaws=None,
                      pitch: float = 0.0) -> dict[str, dict]:
    """{link: {mse_in, mse_out, mse_in_complement, locality}} over n random samples, of a 2D or 3D G.

    Each batch draws z and z' (from one generator seeded by ``seed``, so every model sees the same
    draws), maps both, and renders x, every link's edit (its axes from z') and every complement
    edit (every other axis from z') in one call, with constant noise. A 3D generator is measured
    from every yaw in ``yaws`` (degrees, default -30, 0, 30) at ``pitch``, of RGB and of depth
    (see _MetricViews): its result adds ``depth`` (the same four numbers) and ``views``; the
    RGB numbers are averaged over the views. batch: 50 (2D) or 25 (3D) samples.

    dist_env (a linkgan.distributed.DistEnv): in a multi-process job every rank renders every
    world-th batch and the sums are all-reduced, so that the result is that of one process over
    the same n samples.
    """
    from tqdm.auto import tqdm

    rank, world = (dist_env.rank, dist_env.world) if dist_env is not None else (0, 1)
    if len(partition) == 0:
        raise InputError("the model has no links; give --links links.yaml to measure a partition on it")
    device = device or next(G.parameters()).device
    yaws = DEFAULT_YAWS if yaws is None else yaws
    views = _MetricViews(G, partition, device, yaws, pitch)
    batch = batch or (50 if views.cameras is None else 25)
    gen = torch.Generator().manual_seed(seed)
    keys = ("mse_in", "mse_out", "mse_in_complement")
    sums = {name: {ch: dict.fromkeys(keys, 0.0) for ch in views.channels} for name in partition.names}
    done, k_batch = 0, -1
    with torch.no_grad(), tqdm(total=n, desc="mse", unit="img", disable=not progress or rank > 0) as bar:
        while done < n:
            b = min(batch, n - done)
            z = torch.randn(b, G.z_dim, generator=gen).to(device)
            z2 = torch.randn(b, G.z_dim, generator=gen).to(device)
            k_batch += 1
            if k_batch % world != rank:  # another rank's batch (its latents are drawn all the same)
                done += b
                bar.update(b)
                continue
            ws, ws2 = views.mapping(z), views.mapping(z2)
            edits = EditBatch(ws)
            for name in partition.names:
                edits.add(partition.replace_axes(ws, ws2, name))   # the link's axes resampled
                edits.add(partition.replace_complement(ws, ws2, name))  # every other axis but the shared
            all_ws = edits.stacked()
            for v in range(views.count):
                for ch, chunks in edits.split(views.render(all_ws, v)).items():
                    x = chunks[0]
                    for k, name in enumerate(partition.names):
                        moved, rest = chunks[1 + 2 * k], chunks[2 + 2 * k]
                        m, m_rest = views.masks(name, v, x, moved, rest)
                        s = sums[name][ch]
                        s["mse_in"] += masked_mse(moved, x, m).sum().item()
                        s["mse_out"] += masked_mse(moved, x, 1 - m).sum().item()
                        s["mse_in_complement"] += masked_mse(rest, x, m_rest).sum().item()
            done += b
            bar.update(b)
    if world > 1:
        from .distributed import all_gather_objects

        per_rank = all_gather_objects(sums, dist_env)
        sums = {name: {ch: {k: sum(r[name][ch][k] for r in per_rank) for k in keys} for ch in s}
                for name, s in sums.items()}
    result = {}
    for name, s in sums.items():
        per = {}
        for ch, totals in s.items():
            d = {k: val / (n * views.count) for k, val in totals.items()}
            d["locality"] = d["mse_out"] / max(d["mse_in"], 1e-12)
            per[ch] = d
        result[name] = per["rgb"] if "depth" not in per else {**per["rgb"], "depth": per["depth"],
                                                              "views": [float(y) for y in yaws]}
    return result


# ------------------------------------------------------------------------------ the registry
@dataclass(frozen=True)
class Metric:
    """One registered metric family. A name such as ``fid5k`` belongs to the family whose ``pattern``
    it matches in full (group 1: the thousands of samples, at least 1). ``compute(ctx, names)``
    evaluates every requested name of its ``group`` at once (FID, KID and precision/recall share
    one pass of generated images) and returns {name: value}."""

    family: str
    pattern: re.Pattern
    help: str
    compute: Callable[["MetricContext", list[str]], dict]
    group: str
    needs_links: bool = False
    needs_data: bool = False
    kinds: tuple[str, ...] = ("2d",)
    check: Callable[[], None] | None = None  # run when training starts, so a missing piece fails early


METRICS: dict[str, Metric] = {}


def register_metric(family: str, pattern: str, help: str, *, group: str | None = None, needs_links: bool = False,
                    needs_data: bool = False, kinds: tuple[str, ...] = ("2d",), check: Callable[[], None] | None = None):
    """Decorator registering ``compute(ctx, names) -> {name: value}`` as metric family ``family``."""
    def decorate(compute):
        if family in METRICS:
            raise ValueError(f"metric {family!r} is registered twice")
        METRICS[family] = Metric(family, re.compile(pattern), help, compute, group or family, needs_links, needs_data,
                                 tuple(kinds), check)
        return compute
    return decorate


def available_metrics() -> str:
    """One line per registered family, for help texts and errors."""
    return "; ".join(m.help for m in METRICS.values())


def metric_of(name: str) -> Metric | None:
    """The registered family of a metric name, or None."""
    for metric in METRICS.values():
        m = metric.pattern.fullmatch(name)
        if m and int(m.group(1)) >= 1:
            return metric
    return None


def metric_samples(name: str) -> int:
    """The number of samples a metric name asks for: 'mse2k' -> 2000."""
    metric = metric_of(name)
    if metric is None:
        raise InputError(f"unknown metric {name!r}; available: {available_metrics()}")
    return int(metric.pattern.fullmatch(name).group(1)) * 1000


def parse_metric_names(spec: str) -> list[str]:
    """Comma-separated metric names, checked: e.g. 'fid5k,mse1k' -> ['fid5k', 'mse1k']."""
    names = [s.strip() for s in spec.split(",") if s.strip()]
    for name in names:
        metric_samples(name)
    return names


def check_metric_names(names: list[str], *, links: bool, kind: str = "2d", data: bool = True) -> list[Metric]:
    """The families of ``names``, after checking that a model of ``kind`` (with or without links,
    with or without the dataset) can be measured by each; InputError naming the metric otherwise."""
    families = []
    for name in names:
        metric = metric_of(name)
        if metric is None:
            raise InputError(f"unknown metric {name!r}; available: {available_metrics()}")
        if metric.needs_links and not links:
            raise InputError(f"{name}: masked MSE needs links, and this model has none (give --links links.yaml)")
        if kind not in metric.kinds:
            raise InputError(f"{name}: {metric.family} is not available for {kind.upper()} models yet; metrics for "
                             f"them: {', '.join(m.family + '<N>k' for m in METRICS.values() if kind in m.kinds)}")
        if metric.needs_data and not data:
            raise InputError(f"{name} compares generated images with real ones; give the dataset (--data X.zip)")
        if metric not in families:
            families.append(metric)
    return families


@dataclass
class MetricContext:
    """What a metric's compute function gets: the generator and its links, where to run, the real data.

    dist_env: in a multi-process job every rank calls compute_metrics; each metric shares its work
    out (masked MSE) or computes on rank 0 and broadcasts (FID), so every rank gets the same result."""

    G: torch.nn.Module
    partition: LatentPartition
    device: torch.device | str | None = None
    progress: bool = False
    data: object = None
    cache_dir: object = None
    dist_env: object = None
    kind: str = field(init=False)

    def __post_init__(self):
        self.kind = self.G.kind


def compute_metrics(G: Generator, partition: LatentPartition, names: list[str], device=None,
                    progress: bool = False, data=None, cache_dir=None, dist_env=None) -> dict:
    """Evaluates each named metric: {'mse1k': {link: {...}}, 'fid5k': float, ...}.

    data: the real images for FID/KID/PR, an ImageDataset or a path (opened at G's resolution).
    dist_env: see MetricContext.
    """
    ctx = MetricContext(G, partition, device, progress, data, cache_dir, dist_env)
    families = check_metric_names(names, links=len(partition) > 0, kind=ctx.kind, data=data is not None)
    out: dict = {}
    for group in dict.fromkeys(m.group for m in families):
        members = [n for n in names if metric_of(n).group == group]
        out.update(next(m for m in families if m.group == group).compute(ctx, members))
    return {name: out[name] for name in names}


@register_metric("mse", r"mse(\d+)k", "mse<N>k (masked MSE per link over N thousand samples, e.g. mse1k)",
                 needs_links=True, kinds=("2d", "3d"))
def _masked_mse(ctx: MetricContext, names: list[str]) -> dict:
    return {n: masked_mse_metric(ctx.G, ctx.partition, n=metric_samples(n), device=ctx.device,
                                 progress=ctx.progress, dist_env=ctx.dist_env) for n in names}


def _find_inception() -> None:
    from .fid import find_inception_file

    find_inception_file()


# Decorators apply bottom-up: fid is registered first, so help texts list fid, kid, pr.
@register_metric("pr", r"pr(\d+)k(?:_full)?", "pr<N>k / pr<N>k_full (precision and recall, k = 3; needs the data)",
                 group="inception", needs_data=True, check=_find_inception)
@register_metric("kid", r"kid(\d+)k(?:_full)?", "kid<N>k / kid<N>k_full (kernel Inception distance; needs the data)",
                 group="inception", needs_data=True, check=_find_inception)
@register_metric("fid", r"fid(\d+)k(?:_full)?", "fid<N>k / fid<N>k_full (Frechet Inception distance of N thousand "
                 "samples against N thousand real images, _full: all of them; e.g. fid5k; needs the data)",
                 group="inception", needs_data=True, check=_find_inception)
def _inception_metrics(ctx: MetricContext, names: list[str]) -> dict:
    """FID, KID and precision/recall in one pass of generated images (linkgan.fid has the protocol);
    in a multi-process job rank 0 computes them while the others wait."""
    if ctx.dist_env is not None and ctx.dist_env.active:
        from .distributed import all_gather_objects

        values = _inception_metrics(MetricContext(ctx.G, ctx.partition, ctx.device, ctx.progress, ctx.data,
                                                  ctx.cache_dir), names) if ctx.dist_env.is_main else None
        return all_gather_objects(values, ctx.dist_env)[0]
    from .data import ImageDataset
    from .fid import compute_fid_kid

    dataset = ctx.data if isinstance(ctx.data, ImageDataset) else ImageDataset(ctx.data, resolution=ctx.G.resolution)
    return compute_fid_kid(ctx.G, dataset, names, device=ctx.device, progress=ctx.progress, cache_dir=ctx.cache_dir)


def flatten_metrics(result: dict, prefix: str = "Metrics") -> dict[str, float]:
    """{'mse1k': {'eyes': {'locality': x}}} -> {'Metrics/mse1k/eyes/locality': x}, for logs."""
    flat = {}
    for key, value in result.items():
        if isinstance(value, dict):
            flat.update(flatten_metrics(value, f"{prefix}/{key}"))
        elif isinstance(value, (int, float)):
            flat[f"{prefix}/{key}"] = float(value)
    return flat

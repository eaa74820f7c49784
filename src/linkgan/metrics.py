"""Metrics, named with their sample count as in StyleGAN2-ADA (``mse1k``, ``fid5k``, ``kid5k``, ``pr5k``).

FID, KID and precision/recall (``fid<N>k``, ``fid<N>k_full``, ``kid<N>k``, ``pr<N>k``...) compare N
thousand generated images with the dataset through the standard Inception network; see
linkgan.fid for the protocol. ``pr<N>k`` gives {precision, recall} with k = 3 neighbours.
They need the ``metrics`` extra and the training data.

Masked MSE (the paper's Table 2 and 3, after LowRankGAN), per link, over n samples:
  * ``mse_in``   mean squared pixel change INSIDE the region when the link's axes are
                 resampled (higher = a stronger edit);
  * ``mse_out``  mean squared pixel change OUTSIDE the region for the same edit (lower = more local);
  * ``mse_in_complement``  change inside the region when all the OTHER axes are resampled
                 (lower = the region is better protected);
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

import torch

from .errors import InputError
from .networks import Generator
from .partition import LatentPartition
from .regularizer import masked_mse

MSE_PATTERN = re.compile(r"^mse(\d+)k$")
AVAILABLE = ("mse<N>k (masked MSE per link over N thousand samples, e.g. mse1k), "
             "fid<N>k / fid<N>k_full / kid<N>k / kid<N>k_full (e.g. fid5k; needs the data), "
             "pr<N>k / pr<N>k_full (precision and recall, k = 3; needs the data)")


def masked_mse_metric(G: Generator, partition: LatentPartition, n: int = 1000, batch: int = 50, seed: int = 123,
                      device=None, progress: bool = False, dist_env=None) -> dict[str, dict[str, float]]:
    """{link: {mse_in, mse_out, mse_in_complement, locality}} over n random samples.

    dist_env (a linkgan.distributed.DistEnv): in a multi-process job every rank renders
    every world-th batch and the sums are all-reduced, so that the result is that of one
    process over the same n samples.
    """
    rank, world = (dist_env.rank, dist_env.world) if dist_env is not None else (0, 1)
    if len(partition) == 0:
        raise InputError("the model has no links; give --links links.yaml to measure a partition on it")
    device = device or next(G.parameters()).device
    res = G.resolution
    gen = torch.Generator().manual_seed(seed)
    sums = {name: {"mse_in": 0.0, "mse_out": 0.0, "mse_in_complement": 0.0} for name in partition.names}
    masks = {link.name: partition.region_mask(link.name, res, device=device).to(torch.float32)
             for link in partition if link.region.is_fixed}
    from tqdm.auto import tqdm

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
            ws, ws2 = G.mapping(z), G.mapping(z2)
            edited = [ws]
            for name in partition.names:
                edited.append(partition.replace_axes(ws, ws2, name))   # the link's axes resampled
                edited.append(partition.replace_axes(ws2, ws, name))   # every other axis resampled
            imgs = (G.synthesis(torch.cat(edited), noise_mode="const") + 1) / 2
            chunks = imgs.split(b)
            x = chunks[0]
            for k, link in enumerate(partition):
                name = link.name
                link_moved, rest_moved = chunks[1 + 2 * k], chunks[2 + 2 * k]
                if name in masks:
                    m = m_rest = masks[name]
                else:  # semantic: per-image masks (the segmenter wants [-1, 1])
                    m = link.region.edit_masks(x * 2 - 1, link_moved * 2 - 1).float()
                    m_rest = link.region.complement_masks(x * 2 - 1, rest_moved * 2 - 1).float()
                sums[name]["mse_in"] += masked_mse(link_moved, x, m).sum().item()
                sums[name]["mse_out"] += masked_mse(link_moved, x, 1 - m).sum().item()
                sums[name]["mse_in_complement"] += masked_mse(rest_moved, x, m_rest).sum().item()
            done += b
            bar.update(b)
    if world > 1:
        from .distributed import all_gather_objects

        per_rank = all_gather_objects(sums, dist_env)
        sums = {name: {k: sum(r[name][k] for r in per_rank) for k in s} for name, s in sums.items()}
    result = {}
    for name, s in sums.items():
        r = {k: v / n for k, v in s.items()}
        r["locality"] = r["mse_out"] / max(r["mse_in"], 1e-12)
        result[name] = r
    return result


def _is_inception_metric(name: str) -> bool:
    from .fid import parse_inception_metric

    return parse_inception_metric(name) is not None


def parse_metric_names(spec: str) -> list[str]:
    """Comma-separated metric names, checked: e.g. 'fid5k,mse1k' -> ['fid5k', 'mse1k']."""
    names = [s.strip() for s in spec.split(",") if s.strip()]
    for name in names:
        m = MSE_PATTERN.match(name)
        if (m and int(m.group(1)) > 0) or _is_inception_metric(name):
            continue
        raise InputError(f"unknown metric {name!r}; available: {AVAILABLE}")
    return names


def compute_metrics(G: Generator, partition: LatentPartition, names: list[str], device=None,
                    progress: bool = False, data=None, cache_dir=None, dist_env=None) -> dict:
    """Evaluates each named metric: {'mse1k': {link: {...}}, 'fid5k': float, ...}.

    data: the real images for FID/KID, an ImageDataset or a path (opened at G's resolution).
    dist_env: in a multi-process job (every rank calls this), masked MSE is shared out among
    the ranks; FID/KID are computed by rank 0 while the others wait, and every rank gets
    the same result.
    """
    out: dict = {}
    inception_names = [n for n in names if _is_inception_metric(n)]
    if getattr(G, "c_dim", 0) and (inception_names or any(MSE_PATTERN.match(n) for n in names)):
        if inception_names:
            raise InputError(f"{', '.join(inception_names)}: FID/KID are not available for 3D models yet")
        from .threed import masked_mse_metric_3d  # RGB and depth, averaged over views

        for name in names:
            out[name] = masked_mse_metric_3d(G, partition, n=int(MSE_PATTERN.match(name).group(1)) * 1000,
                                             device=device, progress=progress)
        return {name: out[name] for name in names}
    if inception_names and dist_env is not None and dist_env.active:
        from .distributed import all_gather_objects

        values = compute_metrics(G, partition, inception_names, device, progress, data, cache_dir) \
            if dist_env.is_main else None
        out.update(all_gather_objects(values, dist_env)[0])
        inception_names = []
    if inception_names:
        from .data import ImageDataset
        from .fid import compute_fid_kid

        if data is None:
            raise InputError(f"{', '.join(inception_names)} compare generated images with real ones; give the "
                             "dataset (--data X.zip)")
        dataset = data if isinstance(data, ImageDataset) else ImageDataset(data, resolution=G.resolution)
        out.update(compute_fid_kid(G, dataset, inception_names, device=device, progress=progress,
                                   cache_dir=cache_dir))
    for name in names:
        m = MSE_PATTERN.match(name)
        if m:
            out[name] = masked_mse_metric(G, partition, n=int(m.group(1)) * 1000, device=device, progress=progress,
                                          dist_env=dist_env)
    return {name: out[name] for name in names}


def flatten_metrics(result: dict, prefix: str = "Metrics") -> dict[str, float]:
    """{'mse1k': {'eyes': {'locality': x}}} -> {'Metrics/mse1k/eyes/locality': x}, for logs."""
    flat = {}
    for key, value in result.items():
        if isinstance(value, dict):
            flat.update(flatten_metrics(value, f"{prefix}/{key}"))
        elif isinstance(value, (int, float)):
            flat[f"{prefix}/{key}"] = float(value)
    return flat

"""Metrics, named with their sample count as in StyleGAN2-ADA (``mse1k``).

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
"""

from __future__ import annotations

import re

import torch

from .networks import Generator
from .partition import LatentPartition
from .regularizer import masked_mse

METRIC_PATTERN = re.compile(r"^mse(\d+)k$")


def masked_mse_metric(G: Generator, partition: LatentPartition, n: int = 1000, batch: int = 50, seed: int = 123,
                      device=None, progress: bool = False) -> dict[str, dict[str, float]]:
    """{link: {mse_in, mse_out, mse_in_complement, locality}} over n random samples."""
    if len(partition) == 0:
        raise ValueError("the model has no links; give --links links.yaml to measure a partition on it")
    device = device or next(G.parameters()).device
    res = G.resolution
    gen = torch.Generator().manual_seed(seed)
    sums = {name: {"mse_in": 0.0, "mse_out": 0.0, "mse_in_complement": 0.0} for name in partition.names}
    masks = {}
    for link in partition:
        if not link.region.is_fixed:
            raise NotImplementedError(f"link '{link.name}' is semantic; masked MSE needs fixed regions in this version")
        masks[link.name] = partition.region_mask(link.name, res, device=device).to(torch.float32)
    from tqdm.auto import tqdm

    done = 0
    with torch.no_grad(), tqdm(total=n, desc="mse", unit="img", disable=not progress) as bar:
        while done < n:
            b = min(batch, n - done)
            z = torch.randn(b, G.z_dim, generator=gen).to(device)
            z2 = torch.randn(b, G.z_dim, generator=gen).to(device)
            ws, ws2 = G.mapping(z), G.mapping(z2)
            edited = [ws]
            for name in partition.names:
                edited.append(partition.replace_axes(ws, ws2, name))   # the link's axes resampled
                edited.append(partition.replace_axes(ws2, ws, name))   # every other axis resampled
            imgs = (G.synthesis(torch.cat(edited), noise_mode="const") + 1) / 2
            chunks = imgs.split(b)
            x = chunks[0]
            for k, name in enumerate(partition.names):
                m = masks[name]
                link_moved, rest_moved = chunks[1 + 2 * k], chunks[2 + 2 * k]
                sums[name]["mse_in"] += masked_mse(link_moved, x, m).sum().item()
                sums[name]["mse_out"] += masked_mse(link_moved, x, 1 - m).sum().item()
                sums[name]["mse_in_complement"] += masked_mse(rest_moved, x, m).sum().item()
            done += b
            bar.update(b)
    result = {}
    for name, s in sums.items():
        r = {k: v / n for k, v in s.items()}
        r["locality"] = r["mse_out"] / max(r["mse_in"], 1e-12)
        result[name] = r
    return result


def parse_metric_names(spec: str) -> list[str]:
    names = [s.strip() for s in spec.split(",") if s.strip()]
    for name in names:
        if not METRIC_PATTERN.match(name):
            raise ValueError(f"unknown metric {name!r}; available: mse<N>k, e.g. mse1k (masked MSE over 1000 samples)")
    return names


def compute_metrics(G: Generator, partition: LatentPartition, names: list[str], device=None,
                    progress: bool = False) -> dict:
    """Evaluates each named metric: {'mse1k': {link: {...}}}."""
    out = {}
    for name in names:
        m = METRIC_PATTERN.match(name)
        out[name] = masked_mse_metric(G, partition, n=int(m.group(1)) * 1000, device=device, progress=progress)
    return out

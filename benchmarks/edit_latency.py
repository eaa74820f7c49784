"""Latency of one local edit through the Python API, as JSON.

For each resolution, a generator of the demo's width (``--cmax`` channels in every block;
randomly initialised: latency does not depend on the weights) with one link, and times:
  * ``edit_ms``: ``pipe.edit(seed, link, n=1)`` again on the same seed, what an editor
    calls for each "resample" of the image on screen (the pipeline keeps the seed's latent
    and image, so it maps the new draw and renders the edited image);
  * ``first_edit_ms``: the first edit of a seed (it also maps and renders the original);
  * ``render_ms``: synthesis of the one edited image alone (batch 1), the floor of an editor
    that keeps the original on screen.
Median of ``--reps`` calls after warm-up, on the default device (CPU here). The target is
edit_ms <= 20 at 64 px on 2 CPU cores.

Usage: python benchmarks/edit_latency.py [--res 32,64,128] [--cmax 32] [--reps 30]
"""

import argparse
import json
import os
import platform
import statistics
import time

import torch

from linkgan.config import ModelConfig, RunConfig, TrainConfig
from linkgan.networks.build import build_generator
from linkgan.pipeline import LinkGANPipeline


def timed(fn, reps: int, warmup: int = 5) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def measure(res: int, cmax: int, reps: int) -> dict:
    model = ModelConfig(resolution=res, channel_base=cmax * res, channel_max=cmax)
    config = RunConfig(model=model, train=TrainConfig(data="none"),
                       links=[{"name": "eyes", "region": {"box": [0.22, 0.36, 0.78, 0.52]}, "axes": 64}])
    torch.manual_seed(0)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    pipe = LinkGANPipeline(build_generator(model).to(device), config, device)
    ws = pipe.latents([0])
    edit_ms = timed(lambda: pipe.edit(seed=0, link="eyes", n=1, output="tensor"), reps)

    def first_edit():
        pipe._originals.clear()
        pipe.edit(seed=0, link="eyes", n=1, output="tensor")

    first_edit_ms = timed(first_edit, reps)
    render_ms = timed(lambda: pipe.synthesize(ws), reps)
    return {"edit_ms": edit_ms, "first_edit_ms": first_edit_ms, "render_ms": render_ms,
            "params_M": sum(p.numel() for p in pipe.G.parameters()) / 1e6}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--res", default="32,64,128")
    p.add_argument("--cmax", type=int, default=32, help="channels per block (the demo model's width)")
    p.add_argument("--reps", type=int, default=30)
    args = p.parse_args()
    results = {str(r): measure(r, args.cmax, args.reps) for r in (int(x) for x in args.res.split(","))}
    target = results.get("64", {}).get("edit_ms")
    print(json.dumps({
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "threads": torch.get_num_threads(),
                    "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
                    "torch": torch.__version__},
        "channel_max": args.cmax, "results": results,
        "target_64px_ms": 20.0, "meets_target": None if target is None else target <= 20.0,
    }, indent=2))


if __name__ == "__main__":
    main()

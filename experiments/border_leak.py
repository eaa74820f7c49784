"""Where does a semantic link's change outside its region land: along the border, or far from it?

For n samples it resamples the link's axes (as mse1k does), takes the region of the original
united with that of the edit, and splits the pixels outside it into the 1-pixel band along
the region, the next band (2 pixels away) and the rest. Per zone it prints the share of the
outside squared change, the zone's mean area, and its mean change relative to the change
inside the region. docs/results/semantic.md uses it to show that much of a building link's
leak sits on the building's edge.

Usage:
  python experiments/border_leak.py RUN LINK [--links RUN_WITH_LINKS] [--n 300]
"""

from __future__ import annotations

import argparse
import json

import torch

from linkgan.checkpoint import load_checkpoint
from linkgan.partition import LatentPartition
from linkgan.pipeline import LinkGANPipeline
from linkgan.regularizer import grow_mask


def border_leak(run: str, link: str, specs: list[dict], n: int = 300, batch: int = 50, seed: int = 123) -> dict:
    pipe = LinkGANPipeline.load(run)
    G = pipe.G
    part = LatentPartition.from_specs(specs, G.w_dim, G.resolution)
    region = part[link].region
    gen = torch.Generator().manual_seed(seed)
    change = {"band1": 0.0, "band2": 0.0, "far": 0.0, "inside": 0.0}
    area = dict.fromkeys(change, 0.0)
    with torch.no_grad():
        for _ in range(n // batch):
            ws = G.mapping(torch.randn(batch, G.z_dim, generator=gen))
            ws2 = G.mapping(torch.randn(batch, G.z_dim, generator=gen))
            imgs = G.synthesis(torch.cat([ws, part.replace_axes(ws, ws2, link)]), noise_mode="const")
            x, x1 = ((imgs + 1) / 2).split(batch)
            m = region.edit_masks(x * 2 - 1, x1 * 2 - 1).float()[:, None]
            d = (x1 - x).square().mean(1, keepdim=True)
            grow1, grow2 = grow_mask(m, 1), grow_mask(m, 2)
            zones = {"band1": grow1 - m, "band2": grow2 - grow1, "far": 1 - grow2, "inside": m}
            for k, z in zones.items():
                change[k] += float((d * z).sum())
                area[k] += float(z.sum())
    mse_in = change["inside"] / area["inside"]
    outside = change["band1"] + change["band2"] + change["far"]
    return {k: {"share_of_outside_change": round(change[k] / outside, 3), "mean_area_px": round(area[k] / n, 1),
                "change_vs_inside": round(change[k] / area[k] / mse_in, 3)} for k in ("band1", "band2", "far")}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("run", help="a run directory or checkpoint")
    p.add_argument("link", help="the semantic link to measure")
    p.add_argument("--links", default=None, help="take the links from this run instead (for a vanilla run)")
    p.add_argument("--n", type=int, default=300)
    args = p.parse_args()
    specs = load_checkpoint(args.links or args.run).config["links"]
    print(json.dumps({"run": args.run, "link": args.link, **border_leak(args.run, args.link, specs, args.n)}, indent=1))


if __name__ == "__main__":
    main()

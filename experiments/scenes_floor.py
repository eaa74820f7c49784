"""The locality of the scenes data's own edits: what a perfect generator would score on mse1k.

A scenes image is drawn from parameters (linkgan.data.scenes.sample_scene). Redrawing one
image with the sky's parameters of another scene (kind, hue, tone, sun, clouds), or with
another scene's building set on this scene's horizon, is the edit that a generator which had
learned the data exactly, with that region's factors on the link's axes and nothing else
there, would make. Its masked MSE, measured as mse1k measures a model (images in [0, 1],
union of the region in the original and the edited image, per-image means, locality =
mse_out / mse_in), is the floor that the data itself sets: the sky's parameters reach past
the sky (the horizon haze and the hills take the sky's colour, sunsets light the windows),
so a sky edit that stays on the data moves a little outside the sky.

Usage:
  python experiments/scenes_floor.py --n 1000 --res 32 [--out docs/results/scenes-floor.json]
"""

from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path

import numpy as np
import torch

from linkgan.data.scenes import BUILDING, SKY, draw_scene, sample_scene
from linkgan.regularizer import masked_mse

SKY_PARAMETERS = ("sky_kind", "sky_hue", "sky_tone", "sun", "clouds")


def with_sky_of(p: dict, q: dict) -> dict:
    """Scene p under q's sky; p's windows stay lit or unlit."""
    r = copy.deepcopy(p)
    for key in SKY_PARAMETERS:
        r[key] = copy.deepcopy(q[key])
    return r


def with_building_of(p: dict, q: dict) -> dict:
    """Scene p with q's building, standing as far below p's horizon as it stood below q's."""
    r = copy.deepcopy(p)
    b = copy.deepcopy(q["building"])
    b["base"] += p["horizon"] - q["horizon"]
    b["tower_h"] = min(b["tower_h"], b["base"] - b["spire"] - 0.02)  # the spire's tip stays inside
    b["lit"] = p["building"]["lit"]
    r["building"] = b
    return r


def floor(edit, cls: int, n: int, res: int, seed: int) -> dict[str, float]:
    """mse_in, mse_out and locality of ``edit`` (p, q -> edited p) over n scene pairs."""
    rng = np.random.default_rng(seed)
    x, x1, m = [], [], []
    for _ in range(n):
        p, q = sample_scene(rng), sample_scene(rng)
        (img, lab), (img1, lab1) = draw_scene(p, res), draw_scene(edit(p, q), res)
        x.append(img)
        x1.append(img1)
        m.append((lab == cls) | (lab1 == cls))

    def images(a: list[np.ndarray]) -> torch.Tensor:  # (N, 3, R, R) in [0, 1]
        return torch.from_numpy(np.stack(a)).permute(0, 3, 1, 2).float() / 255

    x, x1, m = images(x), images(x1), torch.from_numpy(np.stack(m)).float()
    mse_in, mse_out = masked_mse(x1, x, m).mean().item(), masked_mse(x1, x, 1 - m).mean().item()
    return {"mse_in": mse_in, "mse_out": mse_out, "locality": mse_out / mse_in}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=1000, help="scene pairs")
    p.add_argument("--res", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="also write the numbers to this JSON file")
    args = p.parse_args()
    result = {"n": args.n, "res": args.res,
              "sky": floor(with_sky_of, SKY, args.n, args.res, args.seed),
              "building": floor(with_building_of, BUILDING, args.n, args.res, args.seed)}
    print(json.dumps(result, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()

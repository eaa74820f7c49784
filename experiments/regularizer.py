"""The regularizer's results page: fine-tune one vanilla checkpoint with and without links.

Every arm starts from the same vanilla checkpoint and trains the same number of kimg:
  plain        vanilla fine-tune (the baseline)
  eyes         one link, 64 axes
  eyes_mouth   two links, 64 axes each
  corners      four corner boxes, 128 axes each
Then it measures masked MSE (mse1k) of each linked arm on its partition and of the plain
arm on the same partition, writes edit grids to docs/images/, the numbers to
docs/results/regularizer.json, and a Markdown table to docs/results/regularizer.md.
Finished arms are skipped and interrupted ones resume, so the script can be re-run.

Usage:
  python experiments/regularizer.py --base runs/toy32 --data data/toyfaces32.zip --kimg 10 --out runs/reg
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from linkgan.checkpoint import list_checkpoints, load_checkpoint
from linkgan.config import RunConfig
from linkgan.data import TOYFACES_EYES_BOX, TOYFACES_MOUTH_BOX
from linkgan.metrics import masked_mse_metric
from linkgan.partition import LatentPartition
from linkgan.pipeline import LinkGANPipeline
from linkgan.training import train

EYES = {"name": "eyes", "region": {"box": list(TOYFACES_EYES_BOX)}, "axes": 64}
MOUTH = {"name": "mouth", "region": {"box": list(TOYFACES_MOUTH_BOX)}, "axes": 64}
CORNERS = [{"name": f"corner_{n}", "region": {"box": box}, "axes": 128} for n, box in (
    ("tl", [0.0, 0.0, 0.5, 0.5]), ("tr", [0.5, 0.0, 1.0, 0.5]),
    ("bl", [0.0, 0.5, 0.5, 1.0]), ("br", [0.5, 0.5, 1.0, 1.0]))]
ARMS = {"plain": [], "eyes": [EYES], "eyes_mouth": [EYES, MOUTH], "corners": CORNERS}


def finetune(base: str, data: str, out: Path, links: list[dict], kimg: float, overrides: dict) -> Path:
    base_cfg = RunConfig.from_dict(load_checkpoint(base).config)
    cfg = RunConfig(model=base_cfg.model, train=base_cfg.train, links=links)
    t = cfg.train
    t.data, t.out, t.init, t.kimg = data, str(out), base, kimg
    t.snapshot_kimg, t.tick_kimg, t.keep_ckpts = max(kimg / 2, 1.0), 0.5, 1
    for k, v in overrides.items():
        setattr(t, k, v)
    ckpts = list_checkpoints(out)
    if ckpts and load_checkpoint(ckpts[-1]).state["images_seen"] >= kimg * 1000:
        return out
    train(cfg, resume=out if ckpts else None)
    return out


def measure(run: Path, specs: list[dict], n: int) -> dict:
    pipe = LinkGANPipeline.load(run)
    part = LatentPartition.from_specs(specs, pipe.G.w_dim, pipe.resolution)
    return masked_mse_metric(pipe.G, part, n=n, batch=50, progress=True)


def edit_figure(run: Path, specs: list[dict], link: str, path: Path, complement: bool = False) -> Path:
    pipe = LinkGANPipeline.load(run)
    pipe.links = LatentPartition.from_specs(specs, pipe.G.w_dim, pipe.resolution)
    return pipe.save_edit_grid(range(4), link, path, complement=complement)


def overhead(base: str, data: str, steps: int = 24) -> dict:
    """img/s of training steps without links, with 1 link and with 4 links (interval 8), in one process."""
    from linkgan.data import ImageDataset
    from linkgan.losses import LossStats
    from linkgan.training import Trainer

    base_cfg = RunConfig.from_dict(load_checkpoint(base).config)
    ds = ImageDataset(data, resolution=base_cfg.model.resolution)
    real = torch.stack([ds[i] for i in range(base_cfg.train.batch)])
    out = {}
    for name, links in (("vanilla", []), ("1 link", [EYES]), ("4 links", CORNERS)):
        cfg = RunConfig(model=base_cfg.model, train=base_cfg.train, links=links)
        cfg.train.init = ""
        trainer = Trainer(cfg, progress=False, dataset=ds)
        stats = LossStats()
        for _ in range(8):
            trainer.train_step(real, stats)
        trainer.step = 0
        t0 = time.perf_counter()
        for _ in range(steps):
            trainer.train_step(real, stats)
        out[name] = cfg.train.batch * steps / (time.perf_counter() - t0)
    return {k: {"img_per_s": v, "overhead": out["vanilla"] / v} for k, v in out.items()}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base", required=True, help="vanilla checkpoint or run directory")
    p.add_argument("--data", required=True)
    p.add_argument("--kimg", type=float, default=10.0)
    p.add_argument("--out", default="runs/regularizer")
    p.add_argument("--n", type=int, default=1000, help="samples for masked MSE")
    p.add_argument("--arms", default=",".join(ARMS))
    p.add_argument("--docs", default="docs")
    p.add_argument("--set", action="append", default=[], help="train option override KEY=VALUE (float)")
    args = p.parse_args()
    overrides = {k: float(v) for k, v in (s.split("=", 1) for s in args.set)}
    base = str(list_checkpoints(args.base)[-1]) if Path(args.base).is_dir() else args.base
    out, docs = Path(args.out), Path(args.docs)
    results_path = docs / "results" / "regularizer.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    results["setup"] = {"base": base, "kimg": args.kimg, "n": args.n, "overrides": overrides,
                        "base_kimg": load_checkpoint(base).state.get("kimg")}
    t_start = time.time()
    for arm in args.arms.split(","):
        t0 = time.time()
        run = finetune(base, args.data, out / arm, ARMS[arm], args.kimg, overrides)
        results.setdefault("train_minutes", {})[arm] = (time.time() - t0) / 60
        if arm == "plain":
            continue
        results.setdefault("linkgan", {})[arm] = measure(run, ARMS[arm], args.n)
        if (out / "plain").exists():
            results.setdefault("baseline", {})[arm] = measure(out / "plain", ARMS[arm], args.n)
        for spec in ARMS[arm][:2]:
            edit_figure(run, ARMS[arm], spec["name"], docs / "images" / f"edit-{arm}-{spec['name']}.png")
        if arm == "eyes":
            edit_figure(run, ARMS[arm], "eyes", docs / "images" / "edit-eyes-complement.png", complement=True)
            edit_figure(out / "plain", ARMS[arm], "eyes", docs / "images" / "edit-plain-eyes.png")
        results_path.parent.mkdir(parents=True, exist_ok=True)
        results_path.write_text(json.dumps(results, indent=2))
    results["overhead"] = overhead(base, args.data)
    results["total_minutes"] = (time.time() - t_start) / 60
    results_path.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

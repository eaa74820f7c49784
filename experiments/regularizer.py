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
  python experiments/regularizer.py --base runs/toy32 --data data/toyfaces32.zip --kimg 20 --out runs/reg
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from linkgan.checkpoint import list_checkpoints, load_checkpoint
from linkgan.config import RunConfig, TrainConfig
from linkgan.demo import DEMO_LINKS
from linkgan.metrics import masked_mse_metric
from linkgan.partition import LatentPartition
from linkgan.pipeline import LinkGANPipeline
from linkgan.training import train

EYES, MOUTH = DEMO_LINKS  # 64 axes each, boxes around toyfaces' eyes and mouth
CORNERS = [{"name": f"corner_{n}", "region": {"box": box}, "axes": 128} for n, box in (
    ("tl", [0.0, 0.0, 0.5, 0.5]), ("tr", [0.5, 0.0, 1.0, 0.5]),
    ("bl", [0.0, 0.5, 0.5, 1.0]), ("br", [0.5, 0.5, 1.0, 1.0]))]
# arm -> (links, train option overrides); the *_split arms time-share the sub-batch among the links.
SPLIT = {"link_samples": "split"}
ARMS = {"plain": ([], {}), "eyes": ([EYES], {}), "eyes_mouth": ([EYES, MOUTH], {}), "corners": (CORNERS, {}),
        "eyes_mouth_split": ([EYES, MOUTH], SPLIT), "corners_split": (CORNERS, SPLIT)}


def finetune(base: str, data: str, out: Path, links: list[dict], kimg: float, overrides: dict) -> Path:
    """The same run as `linkgan train --init BASE --data DATA --out OUT --kimg KIMG --links ...`."""
    model = RunConfig.from_dict(load_checkpoint(base).config).model
    t = TrainConfig(data=data, out=str(out), init=base, kimg=kimg, snapshot_kimg=5.0, tick_kimg=1.0, keep_ckpts=4,
                    workers=1)
    for k, v in overrides.items():
        setattr(t, k, v if v is None or getattr(t, k) is None else type(getattr(t, k))(v))
    return run(RunConfig(model=model, train=t, links=links), out)


def finished(out: Path, kimg: float) -> bool:
    """Whether the run in ``out`` has a checkpoint at ``kimg`` or later."""
    ckpts = list_checkpoints(out) if Path(out).is_dir() else []
    return bool(ckpts) and load_checkpoint(ckpts[-1]).state["images_seen"] >= kimg * 1000


def run(cfg: RunConfig, out: Path) -> Path:
    """Trains ``cfg`` into ``out``: skipped when finished, resumed when interrupted."""
    if finished(out, cfg.train.kimg):
        return out
    if train(cfg, resume=out if list_checkpoints(out) else None).interrupted:
        raise SystemExit(f"interrupted; run the same command again to resume {out}")
    return out


def measure(run: Path, specs: list[dict], n: int) -> dict:
    pipe = LinkGANPipeline.load(run)
    part = LatentPartition.from_specs(specs, pipe.G.w_dim, pipe.resolution)
    return masked_mse_metric(pipe.G, part, n=n, batch=50, progress=True)


def fid(run: Path, data: str, metric: str = "fid2k") -> float:
    """An FID/KID metric (needs the metrics extra) of a run's G_ema against ``data``."""
    from linkgan.data import ImageDataset
    from linkgan.fid import compute_fid_kid

    pipe = LinkGANPipeline.load(run)
    return compute_fid_kid(pipe.G, ImageDataset(data, resolution=pipe.resolution), [metric], progress=True)[metric]


def edit_figure(run: Path, specs: list[dict], link: str, path: Path, complement: bool = False) -> Path:
    pipe = LinkGANPipeline.load(run)
    pipe.links = LatentPartition.from_specs(specs, pipe.G.w_dim, pipe.resolution)
    return pipe.save_edit_grid(range(4), link, path, complement=complement)


OVERHEAD_ARMS = (("vanilla", [], "all"), ("1 link", [EYES], "all"), ("4 links", CORNERS, "all"),
                 ("4 links, link_samples=split", CORNERS, "split"))


def overhead(base: str, data: str, arms=OVERHEAD_ARMS, rounds: int = 6, steps_per_round: int = 16) -> dict:
    """img/s of training steps of each arm (name, links, link_samples) at the default interval 8,
    in one process; the first arm is the reference of the overhead ratios.

    By default: no links, 1 link and 4 links, the latter with the default link_samples=all
    and with link_samples=split. The arms take turns, a round of 16 steps each (a whole number of every lazy interval), so
    that a change of machine load during the measurement hits every arm alike.
    """
    from linkgan.data import ImageDataset
    from linkgan.losses import LossStats
    from linkgan.training import Trainer

    base_cfg = RunConfig.from_dict(load_checkpoint(base).config)
    ds = ImageDataset(data, resolution=base_cfg.model.resolution)
    real = torch.stack([ds[i] for i in range(base_cfg.train.batch)])
    trainers, seconds = {}, {}
    for name, links, samples in arms:
        t = TrainConfig(data=data, batch=base_cfg.train.batch, workers=0, link_samples=samples)
        trainers[name] = Trainer(RunConfig(model=base_cfg.model, train=t, links=links), progress=False, dataset=ds)
        seconds[name] = 0.0
    stats = LossStats()
    for r in range(rounds + 1):  # round 0 warms up
        for name, trainer in trainers.items():
            trainer.step = 0
            t0 = time.perf_counter()
            for _ in range(steps_per_round):
                trainer.train_step(real, stats)
            if r > 0:
                seconds[name] += time.perf_counter() - t0
    images = base_cfg.train.batch * steps_per_round * rounds
    speed = {name: images / s for name, s in seconds.items()}
    reference = speed[arms[0][0]]
    return {k: {"img_per_s": v, "overhead": reference / v} for k, v in speed.items()}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base", required=True, help="vanilla checkpoint or run directory")
    p.add_argument("--data", required=True)
    p.add_argument("--kimg", type=float, default=20.0)
    p.add_argument("--out", default="runs/regularizer")
    p.add_argument("--n", type=int, default=1000, help="samples for masked MSE")
    p.add_argument("--arms", default=",".join(ARMS), help="comma-separated arms; '' for none (overhead only)")
    p.add_argument("--docs", default="docs")
    p.add_argument("--set", action="append", default=[], help="train option override KEY=VALUE")
    p.add_argument("--skip-overhead", action="store_true", help="do not measure the training overhead")
    p.add_argument("--fid", default="", metavar="METRIC",
                   help="also measure this FID/KID metric of every arm and of plain, e.g. fid2k (metrics extra)")
    p.add_argument("--tag", default="", help="keep these results apart: under TAG in the JSON, and in "
                   "edit-ARM-TAG-LINK.png (e.g. --tag 30kimg with --kimg 30)")
    args = p.parse_args()
    overrides = dict(s.split("=", 1) for s in args.set)
    base = str(list_checkpoints(args.base)[-1]) if Path(args.base).is_dir() else args.base
    out, docs = Path(args.out), Path(args.docs)
    results_path = docs / "results" / "regularizer.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    section = results.setdefault(args.tag, {}) if args.tag else results
    suffix = f"-{args.tag}" if args.tag else ""
    section["setup"] = {"base": base, "kimg": args.kimg, "n": args.n, "overrides": overrides,
                        "base_kimg": load_checkpoint(base).state.get("kimg")}
    for arm in [a for a in args.arms.split(",") if a]:
        links, arm_overrides = ARMS[arm]
        run = finetune(base, args.data, out / arm, links, args.kimg, {**overrides, **arm_overrides})
        if args.fid:
            section.setdefault(args.fid, {})[arm] = fid(run, args.data, args.fid)
        if arm == "plain":
            continue
        section.setdefault("linkgan", {})[arm] = measure(run, links, args.n)
        if (out / "plain").exists():
            section.setdefault("baseline", {})[arm] = measure(out / "plain", links, args.n)
        for spec in links[:2]:
            edit_figure(run, links, spec["name"], docs / "images" / f"edit-{arm}{suffix}-{spec['name']}.png")
        if arm == "eyes" and not args.tag:
            edit_figure(run, links, "eyes", docs / "images" / "edit-eyes-complement.png", complement=True)
            edit_figure(out / "plain", links, "eyes", docs / "images" / "edit-plain-eyes.png")
        results_path.parent.mkdir(parents=True, exist_ok=True)
        results_path.write_text(json.dumps(results, indent=2))
    if not args.skip_overhead:
        results["overhead"] = overhead(base, args.data)
    results_path.write_text(json.dumps(results, indent=2))
    print(markdown_tables(section))


def mse_table(results: dict, first_column: str = "links") -> list[str]:
    """Markdown rows: masked MSE of every arm's links, the vanilla baseline's locality beside it."""
    lines = [f"| {first_column} | link | mse_in | mse_out | mse_in_complement | locality | vanilla locality | ratio |",
             "|---|---|---|---|---|---|---|---|"]
    for arm, per_link in results.get("linkgan", {}).items():
        for link, r in per_link.items():
            b = results.get("baseline", {}).get(arm, {}).get(link, {})
            base_loc = b.get("locality", float("nan"))
            lines.append(f"| {arm} | {link} | {r['mse_in']:.5f} | {r['mse_out']:.5f} | {r['mse_in_complement']:.5f} "
                         f"| **{r['locality']:.3f}** | {base_loc:.3f} | {base_loc / r['locality']:.1f}x |")
    return lines


def overhead_table(overhead: dict, title: str = "training") -> list[str]:
    """Markdown rows of an overhead() result."""
    return [f"| {title} | img/s | time vs vanilla |", "|---|---|---|"] + [
        f"| {k} | {v['img_per_s']:.1f} | {v['overhead']:.3f}x |" for k, v in overhead.items()]


def markdown_tables(results: dict) -> str:
    """The masked-MSE table (LinkGAN beside the vanilla fine-tune) and the overhead table."""
    lines = mse_table(results)
    if "overhead" in results:
        lines += [""] + overhead_table(results["overhead"])
    return "\n".join(lines)


if __name__ == "__main__":
    main()

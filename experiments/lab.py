"""The steps that the results pages share: fine-tune an arm, measure it, time it, tabulate it.

Each script in this folder writes one results page (docs/results/*.md) and imports what it shares
from here (scripts run as ``python experiments/NAME.py``, so this folder is on ``sys.path``).
Every step skips what is already done and resumes what was interrupted, so a script can be re-run.
"""

from __future__ import annotations

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


class Results:
    """The JSON file of every measured number; written after each new one."""

    def __init__(self, path: Path):
        self.path = path
        self.data = json.loads(path.read_text()) if path.is_file() else {}

    def get(self, *keys):
        d = self.data
        for k in keys:
            if not isinstance(d, dict) or k not in d:
                return None
            d = d[k]
        return d

    def put(self, value, *keys):
        # Re-read first: two invocations (e.g. --only table1 and --only table2,table3 on two cores) share the file.
        if self.path.is_file():
            self.data = json.loads(self.path.read_text())
        d = self.data
        for k in keys[:-1]:
            d = d.setdefault(k, {})
        d[keys[-1]] = value
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(self.data, indent=1) + "\n")
        tmp.replace(self.path)

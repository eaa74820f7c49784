"""``linkgan demo``: the main job on built-in data, end to end, resumable.

It makes a toyfaces dataset, fine-tunes the shipped vanilla generator ``builtin:toyfaces-base``
(32 px, 64 channels, official numerics) with LinkGAN links for the eyes and the mouth, and
writes sample grids, edit grids and the masked-MSE locality of both models (the vanilla one
measured on the same partition, as the baseline) into the output folder. ``from_scratch``
trains the vanilla generator itself first (a smaller one, to fit the same time). Each stage skips itself when its output
is already there, and an interrupted training stage resumes from its newest checkpoint, so
running the demo again continues where it stopped.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path

from .checkpoint import list_checkpoints, load_checkpoint
from .config import ModelConfig, RunConfig, TrainConfig
from .data import TOYFACES_EYES_BOX, TOYFACES_MOUTH_BOX
from .device import select_device
from .metrics import masked_mse_metric
from .pipeline import LinkGANPipeline
from .training import train

# The toyfaces generator keeps the eyes and the mouth inside these boxes (linkgan.data.toyfaces).
DEMO_LINKS = [{"name": "eyes", "region": {"box": list(TOYFACES_EYES_BOX)}, "axes": 64},
              {"name": "mouth", "region": {"box": list(TOYFACES_MOUTH_BOX)}, "axes": 64}]


BASE_MODEL = "builtin:toyfaces-base"


@dataclass
class DemoPlan:
    """Sizes of the demo. From the shipped base (``kimg`` = 0): the full demo takes under 10 minutes on
    2 CPU cores, ``quick`` about one. From scratch: ~15 minutes, ``quick`` about two."""

    n_images: int
    res: int
    kimg: float  # vanilla training from scratch; 0 = fine-tune the shipped base
    batch: int
    channels: int
    finetune_kimg: float
    mse_samples: int

    @classmethod
    def make(cls, quick: bool, gpu: bool, from_scratch: bool = False) -> "DemoPlan":
        if not from_scratch:
            # The base was trained on these 20000 images (seed 0); 64 channels train at ~50 img/s with
            # two links on 2 cores (benchmarks/train_speed.py), so 16 kimg take ~6 minutes.
            if quick:
                return cls(n_images=2000, res=32, kimg=0.0, batch=16, channels=64, finetune_kimg=0.5,
                           mse_samples=100)
            return cls(n_images=20000, res=32, kimg=0.0, batch=32, channels=64,
                       finetune_kimg=60.0 if gpu else 16.0, mse_samples=1000)
        if quick:
            return cls(n_images=2000, res=32, kimg=2.0, batch=16, channels=32, finetune_kimg=1.0, mse_samples=100)
        if gpu:  # a GPU affords a bigger model and a longer run in the same time
            return cls(n_images=20000, res=32, kimg=300.0, batch=32, channels=64, finetune_kimg=60.0,
                       mse_samples=1000)
        # 32 channels train at ~155 img/s on 2 cores (benchmarks/train_speed.py --cmax 32):
        # 70 kimg vanilla (~8 min) plus 20 kimg with links (~4 min) fit the 15-minute budget.
        return cls(n_images=20000, res=32, kimg=70.0, batch=32, channels=32, finetune_kimg=20.0, mse_samples=1000)


def demo_model(plan: DemoPlan) -> ModelConfig:
    return ModelConfig(resolution=plan.res, channel_base=plan.channels * plan.res, channel_max=plan.channels)


def _train_stage(name: str, config: RunConfig, progress: bool) -> Path:
    run = Path(config.train.out)
    ckpts = list_checkpoints(run)
    if ckpts:
        done = load_checkpoint(ckpts[-1]).state.get("images_seen", 0)
        if done >= config.train.kimg * 1000:
            print(f"[{name}] already trained ({done / 1000:.1f} kimg): {run}")
            return run
        print(f"[{name}] resuming {run} at {done / 1000:.1f} kimg")
        train(config, resume=run, progress=progress)
    else:
        print(f"[{name}] training {config.train.kimg:g} kimg into {run}")
        train(config, progress=progress)
    return run


def run_demo(out: str | Path = "demo", quick: bool = False, device: str = "auto", progress: bool = True,
             from_scratch: bool = False) -> dict:
    """Runs the demo into ``out`` and returns {output name: path}. ``from_scratch``: train the vanilla
    generator too, instead of fine-tuning the shipped ``builtin:toyfaces-base``."""
    from .data import make_toyfaces

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    dev = select_device(device)
    plan = DemoPlan.make(quick, gpu=dev.type == "cuda", from_scratch=from_scratch)
    print(f"linkgan demo: {'quick ' if quick else ''}run on {dev} into {out}/, "
          + ("training the vanilla generator from scratch" if from_scratch else f"fine-tuning {BASE_MODEL}"))

    data = out / f"toyfaces-{plan.res}px-{plan.n_images}.zip"
    if data.exists():
        print(f"[data] using {data}")
    else:
        print(f"[data] making {plan.n_images} toyfaces at {plan.res}px")
        make_toyfaces(data, n=plan.n_images, res=plan.res, seed=0, progress=progress)

    vanilla = RunConfig(model=demo_model(plan), train=TrainConfig(
        data=str(data), out=str(out / "vanilla"), kimg=plan.kimg, batch=plan.batch, device=device,
        snapshot_kimg=max(plan.kimg / 4, 1.0), tick_kimg=max(plan.kimg / 50, 0.2), ema_kimg=plan.batch * 10 / 32 * 0.5,
        grid_size=64, workers=1))
    if from_scratch:
        run = _train_stage("vanilla", vanilla, progress)
    else:
        run = BASE_MODEL
        print(f"[vanilla] the shipped base {BASE_MODEL}")

    linked = RunConfig(model=demo_model(plan), train=copy.deepcopy(vanilla.train), links=DEMO_LINKS)
    linked.train.out, linked.train.init, linked.train.kimg = str(out / "linkgan"), str(run), plan.finetune_kimg
    linked.train.snapshot_kimg = max(plan.finetune_kimg / 2, 1.0)
    link_run = _train_stage("linkgan", linked, progress)

    pipe = LinkGANPipeline.load(link_run, device=device)
    base = LinkGANPipeline.load(run, device=device)
    base.links = pipe.links  # the baseline: the vanilla model measured on the same partition
    outputs = {
        "dataset": data,
        "vanilla run": run,
        "linkgan run": link_run,
        "vanilla samples": base.save_images(range(64), out / "samples-vanilla.png", ncols=8, upscale=2)[0],
        "linkgan samples": pipe.save_images(range(64), out / "samples-linkgan.png", ncols=8, upscale=2)[0],
    }
    for link in pipe.links.names:
        outputs[f"edit {link}"] = pipe.save_edit_grid(range(4), link, out / f"edit-{link}.png")
        outputs[f"edit {link}, vanilla"] = base.save_edit_grid(range(4), link, out / f"edit-{link}-vanilla.png")
    outputs["edit eyes, complement"] = pipe.save_edit_grid(range(4), "eyes", out / "edit-eyes-complement.png",
                                                            complement=True)
    metrics = {"linkgan": masked_mse_metric(pipe.G, pipe.links, n=plan.mse_samples),
               "vanilla_same_partition": masked_mse_metric(base.G, base.links, n=plan.mse_samples),
               "samples": plan.mse_samples}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    outputs["masked MSE"] = out / "metrics.json"
    print("\nlocality = mse_out / mse_in (lower is more local):")
    for link in pipe.links.names:
        print(f"  {link:<8} linkgan {metrics['linkgan'][link]['locality']:.3f}   "
              f"vanilla {metrics['vanilla_same_partition'][link]['locality']:.3f}")
    print("\nlinkgan demo outputs:")
    for name, path in outputs.items():
        print(f"  {name:<26} {path}")
    print(f"  {'training curves':<26} tensorboard --logdir {out}")
    return outputs

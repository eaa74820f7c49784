"""``linkgan demo``: the main job on built-in data, end to end, resumable.

It makes a toyfaces dataset, trains a small StyleGAN2 generator on it, and writes sample
grids into the output folder. Each stage skips itself when its output is already there,
and an interrupted training stage resumes from its newest checkpoint, so running the demo
again continues where it stopped.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .checkpoint import list_checkpoints, load_checkpoint
from .config import ModelConfig, RunConfig, TrainConfig
from .device import select_device
from .pipeline import LinkGANPipeline
from .training import train


@dataclass
class DemoPlan:
    """Sizes of the demo; ``quick`` is a ~2 minute smoke test, the full one ~10-15 minutes on 2 CPU cores."""

    n_images: int
    res: int
    kimg: float
    batch: int
    channels: int

    @classmethod
    def make(cls, quick: bool, gpu: bool) -> "DemoPlan":
        if quick:
            return cls(n_images=2000, res=32, kimg=2.0, batch=16, channels=32)
        if gpu:  # a GPU affords a bigger model and a longer run in the same time
            return cls(n_images=20000, res=32, kimg=300.0, batch=32, channels=64)
        # 32 channels train at ~155 img/s on 2 cores (benchmarks/train_speed.py --cmax 32),
        # so 80 kimg take ~9 minutes; faces get eyes and mouths at about that length.
        return cls(n_images=20000, res=32, kimg=80.0, batch=32, channels=32)


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


def run_demo(out: str | Path = "demo", quick: bool = False, device: str = "auto", progress: bool = True) -> dict:
    """Runs the demo into ``out`` and returns {output name: path}."""
    from .data import make_toyfaces

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    dev = select_device(device)
    plan = DemoPlan.make(quick, gpu=dev.type == "cuda")
    print(f"linkgan demo: {'quick ' if quick else ''}run on {dev} into {out}/")

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
    run = _train_stage("vanilla", vanilla, progress)

    pipe = LinkGANPipeline.load(run, device=device)
    outputs = {
        "dataset": data,
        "vanilla run": run,
        "samples": pipe.save_images(range(64), out / "samples.png", ncols=8, upscale=2)[0],
        "samples, truncation 0.7": pipe.save_images(range(64), out / "samples-trunc0.7.png", truncation=0.7,
                                                    ncols=8, upscale=2)[0],
    }
    print("\nlinkgan demo outputs:")
    for name, path in outputs.items():
        print(f"  {name:<26} {path}")
    print(f"  {'training curves':<26} tensorboard --logdir {out}")
    return outputs

"""Training speed of the StyleGAN2 step on this machine, as JSON.

Measures, in one process so that the ratios are comparable:
  * img/s of full training steps (every phase, lazy regularizers amortized by running
    a whole number of their intervals) at res 32, batch 32, 64 channels;
  * the FLOPs of those steps (counted by torch's FlopCounterMode), hence achieved GFLOP/s;
  * the GFLOP/s of a large fp32 matmul (2048^2), the practical ceiling;
  * the same for each modulated-conv formulation, to justify ModulatedConv2d's 'auto' (the
    two take turns, ``--rounds`` rounds, median round);
  * the official numerics (stylegan2-ada-pytorch's operators, ModelConfig.numerics) against
    linkgan's legacy dialect: img/s of each, taking turns, and their ratio (target >= 0.9);
  * LinkGAN's cost: img/s with no link, one link (eyes) and four links (the image's
    quarters: at the defaults, every link's edits for the whole batch, then with
    --link-samples auto --link-budget 3, one link's renders, and factorized for the whole
    batch), the Glink phase every 8 steps (the
    default), and each one's time relative to no link. The arms take turns, ``--rounds``
    rounds of ``--steps`` steps, and the median round counts, so that a change of machine
    load hits them alike. The target is <= 1.15x.
  * ADA's cost (``--sections aug``, not run by default): img/s without augmentation and with
    the bgc pipeline at p 0.2 and 0.8, taking turns.

Usage: python benchmarks/train_speed.py [--res 32] [--batch 32] [--cmax 64] [--steps 16] [--rounds 5]
                                       [--sections numerics,modconv,links,aug]
"""

import argparse
import json
import math
import platform
import statistics
import time

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry

from linkgan.config import ModelConfig, RunConfig, TrainConfig
from linkgan.losses import LossStats
from linkgan.training import Trainer


class RandomImages(torch.utils.data.Dataset):
    def __init__(self, res, n=256):
        self.data = torch.randint(0, 256, (n, 3, res, res), dtype=torch.uint8)

    def __len__(self):
        return len(self.data)

    def __getitem__(self, i):
        return self.data[i]


class FlopCounter(TorchDispatchMode):
    """Counts FLOPs of every op torch's flop registry knows (convs, matmuls, their backward).

    torch's FlopCounterMode also tracks modules, which breaks the double backward of R1
    and path length; counting at the dispatch level alone works for every phase.
    """

    def __init__(self):
        super().__init__()
        self.total = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        counter = flop_registry.get(func._overloadpacket)
        if counter is not None:
            shapes = torch.utils._pytree.tree_map(lambda x: x.shape if torch.is_tensor(x) else x, (args, kwargs, out))
            self.total += counter(*shapes[0], **shapes[1], out_val=shapes[2])
        return out


def matmul_gflops(n=2048, reps=10):
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(2):
        a @ b
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n ** 3 * reps / (time.perf_counter() - t) / 1e9


def warm_trainer(args, modconv="auto", links=(), numerics="official", r1_gamma: float | None = None,
                 **train) -> Trainer:
    """A trainer of the benchmark's model on random images, after two warm-up steps
    (allocator, first-call overheads)."""
    cfg = RunConfig(model=ModelConfig(resolution=args.res, channel_base=args.cmax * args.res, channel_max=args.cmax,
                                      modconv=modconv, numerics=numerics),
                    train=TrainConfig.from_options(data="<memory>", batch=args.batch, workers=0, device=args.device,
                                                   r1_gamma=r1_gamma, **train),
                    links=list(links))
    trainer = Trainer(cfg, progress=False, dataset=RandomImages(args.res))
    for _ in range(2):
        trainer.train_step(trainer.dataset.data[: args.batch], LossStats())
    return trainer


def whole_cycles(trainer: Trainer, steps: int) -> int:
    """``steps`` rounded up to a whole number of the trainer's Glink intervals (8 by default, so 16
    steps stay 16; an interval of 24 makes them 48), so that every arm runs whole lazy cycles."""
    interval = trainer.config.train.link.interval if trainer.config.links else 1
    return math.lcm(steps, max(1, interval))


def timed_steps(trainer: Trainer, steps: int) -> float:
    """Seconds for ``steps`` full training steps, starting at a step where every lazy phase
    is due, so that they run whole cycles (Glink every 8, R1 every 16)."""
    real, stats = trainer.dataset.data[: trainer.config.train.batch], LossStats()
    trainer.step = 0
    sync = torch.cuda.synchronize if trainer.device.type == "cuda" else (lambda: None)
    sync()
    t = time.perf_counter()
    for _ in range(steps):
        trainer.train_step(real, stats)
    sync()
    return time.perf_counter() - t


def bench_steps(args, modconv, flops=None):
    """img/s of ``args.steps`` full steps; FLOPs are counted unless given.

    FLOPs are counted once, with the 'scaled' formulation: the registry would count a
    grouped conv's per-sample weights as if they were a full conv, and the work the model
    needs is the same whichever formulation computes it."""
    trainer = warm_trainer(args, modconv)
    if flops is None:
        with FlopCounter() as counter:
            timed_steps(trainer, args.steps)
        flops = counter.total
    dt = timed_steps(trainer, args.steps)
    return {"img_per_s": args.batch * args.steps / dt, "gflops_per_s": flops / dt / 1e9,
            "gflop_per_img": flops / (args.batch * args.steps) / 1e9, "flops": flops}


EYES = {"name": "eyes", "region": {"box": [0.22, 0.36, 0.78, 0.52]}, "axes": 64}
QUARTERS = [{"name": f"q{i}", "region": {"box": [x, y, x + 0.5, y + 0.5]}, "axes": 64}
            for i, (x, y) in enumerate([(0, 0), (0.5, 0), (0, 0.5), (0.5, 0.5)])]


def arms_in_turns(args, arms: dict[str, dict], reference: str) -> dict:
    """img/s of each arm (warm_trainer keyword arguments), the arms taking turns for ``args.rounds``
    rounds of ``args.steps`` steps, and each one's time relative to the ``reference`` arm: the median
    over rounds of the ratio within a round."""
    trainers, speeds = {}, {name: [] for name in arms}
    for name, kwargs in arms.items():
        torch.manual_seed(0)
        trainers[name] = warm_trainer(args, **kwargs)
    for _ in range(args.rounds):
        for name, trainer in trainers.items():
            steps = whole_cycles(trainer, args.steps)
            speeds[name].append(args.batch * steps / timed_steps(trainer, steps))
    # Each round's ratio compares arms measured minutes apart, so a change of machine load between
    # rounds cancels; the median over rounds is the figure.
    ratios = {name: [r / a for r, a in zip(speeds[reference], v)] for name, v in speeds.items()}
    return {name: {"img_per_s": statistics.median(v), f"time_vs_{reference}": statistics.median(ratios[name]),
                   "rounds_img_per_s": v, f"rounds_time_vs_{reference}": ratios[name]} for name, v in speeds.items()}


def bench_links(args) -> dict:
    """img/s and time relative to no link, for 0, 1 and 4 links: "4 links" at the defaults ('all' with the
    whole batch), then --link-samples auto --link-budget 3, 'factorized' with the whole batch, and the
    Glink phase every 32 steps instead of 8 ('all'), in turns."""
    arms = {"vanilla": {}, "1 link": {"links": [EYES]}, "4 links": {"links": QUARTERS},
            "4 links, auto, budget 3": {"links": QUARTERS, "link_samples": "auto", "link_budget": 3.0},
            "4 links, factorized, no budget": {"links": QUARTERS, "link_samples": "factorized", "link_budget": None},
            "4 links, interval 32": {"links": QUARTERS, "link_interval": 32}}
    return arms_in_turns(args, arms, "vanilla")


def bench_numerics(args) -> dict:
    """img/s of the official and the legacy numerics (modconv auto, no link), measured in turns."""
    trainers = {}
    for numerics in ("official", "legacy"):
        torch.manual_seed(0)
        trainers[numerics] = warm_trainer(args, numerics=numerics)
    speeds = {name: [] for name in trainers}
    for k in range(args.rounds):
        for name in (("official", "legacy") if k % 2 == 0 else ("legacy", "official")):
            speeds[name].append(args.batch * args.steps / timed_steps(trainers[name], args.steps))
    out = {name: {"img_per_s": statistics.median(v), "rounds_img_per_s": v} for name, v in speeds.items()}
    out["official_vs_legacy"] = out["official"]["img_per_s"] / out["legacy"]["img_per_s"]
    out["target"] = 0.9
    return out


def bench_aug(args) -> dict:
    """img/s without augmentation and with ADA's bgc pipeline at a fixed p of 0.2 and 0.8 (every D
    call of every phase augments), measured in turns; time relative to no augmentation."""
    arms = {"noaug": {}, "bgc p=0.2": {"aug": "fixed", "aug_p": 0.2}, "bgc p=0.8": {"aug": "fixed", "aug_p": 0.8}}
    return arms_in_turns(args, arms, "noaug")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--res", type=int, default=32)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--cmax", type=int, default=64)
    p.add_argument("--steps", type=int, default=16, help="a multiple of the R1 interval (16)")
    p.add_argument("--device", default="auto")
    p.add_argument("--rounds", type=int, default=5, help="turns of the compared arms (median round counts)")
    p.add_argument("--sections", default="numerics,modconv,links",
                   help="comma-separated parts to run: numerics, modconv (with FLOPs), links, aug")
    args = p.parse_args()
    sections = set(args.sections.split(","))
    torch.manual_seed(0)
    peak = matmul_gflops()
    result = {"benchmark": "train_speed", "res": args.res, "batch": args.batch, "channels": args.cmax,
              "steps": args.steps, "threads": torch.get_num_threads(), "torch": torch.__version__,
              "machine": platform.processor() or platform.machine(), "matmul_2048_gflops_per_s": peak}
    if "numerics" in sections:
        result["numerics"] = bench_numerics(args)
    if "modconv" in sections:
        modconv_section(args, result, peak)
    if "links" in sections:
        result["links"] = bench_links(args)
        result["link_overhead_target"] = 1.15
    if "aug" in sections:
        result["aug"] = bench_aug(args)
    print(json.dumps(result, indent=2))


def modconv_section(args, result: dict, peak: float) -> None:
    """img/s, FLOPs and GFLOP/s of each modulated-conv formulation (official numerics), in turns."""
    flops, runs = None, {"scaled": [], "grouped": []}
    for k in range(args.rounds):  # the formulations take turns, in alternating order
        for impl in (("scaled", "grouped") if k % 2 == 0 else ("grouped", "scaled")):
            r = bench_steps(args, impl, flops)
            flops = r.pop("flops")
            runs[impl].append(r)
    for impl, rs in runs.items():
        r = sorted(rs, key=lambda x: x["img_per_s"])[len(rs) // 2]  # the median round
        r = {**r, "ratio_to_matmul": r["gflops_per_s"] / peak, "rounds_img_per_s": [x["img_per_s"] for x in rs]}
        result[f"modconv_{impl}"] = r
    best = max(("scaled", "grouped"), key=lambda k: result[f"modconv_{k}"]["img_per_s"])
    result["fastest_modconv"] = best
    result["img_per_s"] = result[f"modconv_{best}"]["img_per_s"]
    result["ratio_to_matmul"] = result[f"modconv_{best}"]["ratio_to_matmul"]


if __name__ == "__main__":
    main()

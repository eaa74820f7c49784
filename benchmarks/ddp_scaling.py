"""Data-parallel scaling: training img/s of 1 process against N processes, as JSON.

Each configuration is a real job started through torchrun (gloo on CPU, NCCL on GPUs),
timing full training steps of the same global batch after a warm-up. On a CPU machine the
cores are shared out: the single process gets all ``--threads`` threads, each of N
processes threads/N, so that the comparison is at equal hardware. The configurations take
turns for ``--rounds`` rounds so that a change of machine load hits them alike; the
reported img/s is the median over rounds.

Usage: python benchmarks/ddp_scaling.py [--procs 1,2] [--threads 2] [--res 32] [--batch 32]
       [--cmax 64] [--steps 16] [--rounds 3]
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def worker(args) -> None:
    """One process of a job: trains warm-up steps, then times ``steps`` steps."""
    from train_speed import RandomImages  # this folder is on sys.path when the script runs

    from linkgan.config import ModelConfig, RunConfig, TrainConfig
    from linkgan.distributed import barrier
    from linkgan.losses import LossStats
    from linkgan.training import Trainer

    model = ModelConfig(resolution=args.res, channel_base=args.cmax * args.res, channel_max=args.cmax)
    train = TrainConfig(data="random", out=args.out, batch=args.batch, workers=0)
    trainer = Trainer(RunConfig(model=model, train=train), progress=False, dataset=RandomImages(args.res, n=512))
    loader = iter(trainer._loader())
    stats = LossStats()
    for _ in range(args.warmup):
        trainer.train_step(next(loader), stats)
    barrier(trainer.dist)
    start = time.perf_counter()
    for _ in range(args.steps):
        trainer.train_step(next(loader), stats)
    barrier(trainer.dist)
    elapsed = time.perf_counter() - start
    if trainer.dist.is_main:
        Path(args.result).write_text(json.dumps({"img_per_s": args.steps * args.batch / elapsed}))


def run_job(nproc: int, args, tmp: Path) -> float:
    result = tmp / f"result-{nproc}.json"
    threads = max(1, args.threads // nproc)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", __file__,
           "--worker", "--out", str(tmp / f"run-{nproc}"), "--result", str(result), "--res", str(args.res),
           "--batch", str(args.batch), "--cmax", str(args.cmax), "--steps", str(args.steps),
           "--warmup", str(args.warmup)]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{r.stdout[-2000:]}\n{r.stderr[-4000:]}")
    return json.loads(result.read_text())["img_per_s"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--procs", default="1,2", help="comma-separated process counts; the first is the reference")
    p.add_argument("--threads", type=int, default=os.cpu_count(), help="CPU threads shared out among processes")
    p.add_argument("--res", type=int, default=32)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--cmax", type=int, default=64)
    p.add_argument("--steps", type=int, default=16)
    p.add_argument("--warmup", type=int, default=4)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    p.add_argument("--result", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        worker(args)
        return
    import torch

    procs = [int(n) for n in args.procs.split(",")]
    speeds: dict[int, list[float]] = {n: [] for n in procs}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.rounds):
            for n in procs:
                speeds[n].append(run_job(n, args, Path(tmp)))
    ref = statistics.median(speeds[procs[0]])
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    print(json.dumps({
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "threads": args.threads,
                    "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
                    "torch": torch.__version__},
        "config": {"res": args.res, "global_batch": args.batch, "channel_max": args.cmax, "steps": args.steps,
                   "rounds": args.rounds, "backend": backend},
        "img_per_s": {str(n): statistics.median(v) for n, v in speeds.items()},
        "img_per_s_rounds": {str(n): v for n, v in speeds.items()},
        "speedup_vs_first": {str(n): statistics.median(v) / ref for n, v in speeds.items()},
    }, indent=2))


if __name__ == "__main__":
    main()

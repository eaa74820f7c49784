"""Data-parallel training: real 2-process gloo jobs on the CPU, started through torchrun."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from linkgan.checkpoint import list_checkpoints, load_checkpoint
from linkgan.distributed import strip_option, torchrun_command

JOB = Path(__file__).parent / "ddp_job.py"
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def torchrun(nproc: int, *args: str, timeout: int = 240) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", *args]
    result = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=timeout)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def params(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path))


def test_first_update_equals_one_process_on_the_global_batch(tmp_path):
    torchrun(2, str(JOB), str(tmp_path / "ddp"), "equal", "1")
    ref = subprocess.run([sys.executable, str(JOB), str(tmp_path / "ref"), "reference", "1"], env=ENV,
                         capture_output=True, text=True, timeout=120)
    assert ref.returncode == 0, ref.stderr[-3000:]
    # The same single process with its own latents: what "not equal" looks like.
    other = subprocess.run([sys.executable, str(JOB), str(tmp_path / "other"), "equal", "1"], env=ENV,
                           capture_output=True, text=True, timeout=120)
    assert other.returncode == 0, other.stderr[-3000:]
    ddp, one, wrong = (params(tmp_path / d / "params-rank0.safetensors") for d in ("ddp", "ref", "other"))
    assert ddp.keys() == one.keys()

    def differing(a: dict, b: dict) -> float:
        """The share of weights that differ by more than float summation order explains."""
        return sum(((a[k] - b[k]).abs() > 2e-5).sum().item() for k in a) / sum(v.numel() for v in a.values())

    # Adam's first step moves a weight by lr * g / (|g| + eps), about lr = 0.0025 whatever g's size,
    # and the two paths differ only by float summation order. Where a gradient is ~eps that order
    # can move the weight by up to 2 lr (8 of 98k weights of D on an AVX-512 CPU, none on AVX2),
    # so a handful may differ by more; a different batch moves a quarter of them.
    assert differing(ddp, one) < 1e-3, differing(ddp, one)
    assert max((ddp[k] - one[k]).abs().max().item() for k in ddp) <= 2 * 0.0025 + 1e-6
    assert differing(ddp, wrong) > 0.1, differing(ddp, wrong)


def test_ranks_stay_identical_with_links(tmp_path):
    torchrun(2, str(JOB), str(tmp_path), "links", "4")
    a, b = params(tmp_path / "params-rank0.safetensors"), params(tmp_path / "params-rank1.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    # Only rank 0 writes the run's files; the Glink phase ran (interval 2) and was logged.
    stats = [json.loads(line) for line in (tmp_path / "stats.jsonl").read_text().splitlines()]
    assert len(stats) == 4 and "Loss/link/total" in stats[0]
    assert len(list(tmp_path.glob("events.out.tfevents.*"))) == 1
    assert len(list_checkpoints(tmp_path)) == 1
    # Masked MSE shared out among the ranks equals one process's over the same samples.
    mse = json.loads((tmp_path / "mse.json").read_text())
    for key in ("mse_in", "mse_out", "mse_in_complement", "locality"):
        assert mse["shared"]["blob"][key] == pytest.approx(mse["single"]["blob"][key], rel=1e-5)


def test_cli_gpus_runs_torchrun_and_resumes_on_another_count(image_folder, tmp_path):
    out = tmp_path / "run"
    common = ["--res", "16", "--z-dim", "32", "--w-dim", "32", "--map-layers", "2", "--cbase", "256",
              "--cmax", "32", "--batch", "8", "--workers", "0", "--tick-kimg", "0.008", "--grid-size", "4",
              "--no-progress", "--link", "blob=box:0.25,0.25,0.75,0.75@8", "--link-interval", "2"]
    cmd = [sys.executable, "-m", "linkgan", "train", "--gpus", "2", "--data", str(image_folder), "--out", str(out),
           "--kimg", "0.032", *common]
    r = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=240)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "torch.distributed.run" in r.stdout and r.stdout.count("done:") == 1
    ckpt = load_checkpoint(out)
    assert ckpt.state["images_seen"] == 32 and ckpt.state["world"] == 2
    assert "state.rng_rank1" in ckpt.tensors
    # Resume the 2-process run in one process (the global batch stays 8).
    r = subprocess.run([sys.executable, "-m", "linkgan", "train", "--resume", str(out), "--kimg", "0.048",
                        "--no-progress"], capture_output=True, text=True, env=ENV, timeout=240)
    assert r.returncode == 0, r.stderr[-3000:]
    ckpt = load_checkpoint(out)
    assert ckpt.state["images_seen"] == 48 and ckpt.state["world"] == 1 and ckpt.state["step"] == 6


def test_batch_must_divide_among_processes(image_folder, tmp_path):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "linkgan",
           "train", "--data", str(image_folder), "--out", str(tmp_path / "x"), "--res", "16", "--batch", "7",
           "--kimg", "0.01", "--no-progress", "--workers", "0"]
    r = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=120)
    assert r.returncode != 0
    assert "must divide evenly among the 2 processes" in r.stderr


def test_gpus_launcher_helpers():
    assert strip_option(["train", "--gpus", "2", "--kimg", "1"], "--gpus") == ["train", "--kimg", "1"]
    assert strip_option(["train", "--gpus=4", "--out", "x"], "--gpus") == ["train", "--out", "x"]
    cmd = torchrun_command(3, ["train", "--out", "x"])
    assert cmd[1:3] == ["-m", "torch.distributed.run"] and "--nproc_per_node=3" in cmd
    assert cmd[-3:] == ["train", "--out", "x"]


def test_gpus_must_be_positive(image_folder, tmp_path):
    from linkgan.cli import main

    assert main(["train", "--gpus", "0", "--data", str(image_folder), "--out", str(tmp_path)]) == 2


@pytest.mark.parametrize("world", [1, 2, 4])
def test_rank_shards_cover_the_global_batch(world):
    from linkgan.training import ResumableSampler

    one = ResumableSampler(10, seed=1, start=16)
    ref = [i for _, i in zip(range(24), iter(one))]
    shards = [ResumableSampler(10, seed=1, start=16 // world, rank=r, world=world) for r in range(world)]
    streams = [iter(s) for s in shards]
    got = []
    for _ in range(24 // world):
        got.extend(next(s) for s in streams)
    assert got == ref


def test_gpus_with_an_indivisible_batch_is_refused_before_launching(image_folder, tmp_path, capsys):
    from linkgan.cli import main

    assert main(["train", "--gpus", "2", "--data", str(image_folder), "--out", str(tmp_path / "x"), "--res", "16",
                 "--batch", "7"]) == 2
    captured = capsys.readouterr()
    assert "must divide evenly among the 2 processes" in captured.err and "running:" not in captured.out
    assert not (tmp_path / "x").exists()

"""Faults: what a crash, a kill or a NaN leaves behind, and what resuming makes of it."""

from __future__ import annotations

import errno
import json
import os
import random
import signal
import subprocess
import sys
import time
import zipfile

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from conftest import tiny_run
from linkgan.checkpoint import CheckpointError, list_checkpoints, load_checkpoint
from linkgan.cli import main
from linkgan.losses import NonFiniteLossError
from linkgan.pipeline import LinkGANPipeline
from linkgan.training import Trainer, train

TINY = ["--res", "16", "--z-dim", "32", "--w-dim", "32", "--map-layers", "2", "--cbase", "256", "--cmax", "32",
        "--batch", "8", "--workers", "0", "--grid-size", "4", "--r1-interval", "2", "--no-progress"]


def rewrite(path, out, change):
    """A copy of the safetensors file ``path`` at ``out`` with change(tensors) applied."""
    with safe_open(str(path), "pt") as f:
        metadata = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    change(tensors)
    save_file(tensors, str(out), metadata)
    return out


def test_a_kill_leaves_temp_files_and_duplicate_stats_that_resuming_clears(image_folder, tmp_path):
    run = tmp_path / "run"
    train(tiny_run(image_folder, run, kimg=0.032, snapshot_kimg=0.016, keep_ckpts=5), progress=False)
    first = list_checkpoints(run)[0]
    # A kill -9 after the 16-image checkpoint: rows logged after it, a row cut short, and the
    # temporary file of the checkpoint being written stay; the newer checkpoints never made it.
    for ckpt in list_checkpoints(run)[1:]:
        ckpt.unlink()
    (run / f".{first.name}.tmp4242").write_bytes(b"\0" * 100)
    with open(run / "stats.jsonl", "a") as f:
        f.write('{"step": 3, "kimg"')
    step = load_checkpoint(first).state["step"]
    rows_before = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()[:-1]]
    assert any(r["step"] > step for r in rows_before)
    assert main(["train", "--resume", str(run), "--kimg", "0.032", "--no-progress"]) == 0
    assert not list(run.glob(".*tmp*"))
    rows = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in rows if "img_per_s" in r]
    assert steps == sorted(set(steps)), f"one row per step after resuming, got {steps}"


def test_non_finite_optimizer_state_is_never_checkpointed(image_folder, tmp_path):
    """Huge learning rates overflow Adam's moments while the losses may stay finite; a checkpoint
    of that state would fail again at once on resume, so none is written."""
    run = tmp_path / "run"
    trainer = Trainer(tiny_run(image_folder, run, kimg=0.016), progress=False)
    trainer.run()
    good = list_checkpoints(run)
    with torch.no_grad():
        next(iter(trainer.optimizers["G"].state.values()))["exp_avg_sq"].fill_(float("inf"))
    trainer.images_seen += 8
    with pytest.raises(NonFiniteLossError, match="optimizer state became NaN or Inf"):
        trainer.save()
    assert list_checkpoints(run) == good


def test_the_message_after_a_nan_is_true_about_checkpoints(image_folder, tmp_path, capsys):
    args = ["train", "--data", str(image_folder), "--out", str(tmp_path / "run"), "--res", "16", "--z-dim", "32",
            "--w-dim", "32", "--map-layers", "2", "--cbase", "256", "--cmax", "32", "--batch", "8", "--kimg", "0.5",
            "--workers", "0", "--grid-size", "4", "--lr-g", "1e30", "--lr-d", "1e30", "--no-progress"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "No checkpoint of this run was written" in err and "last good checkpoint is kept" not in err
    assert not list_checkpoints(tmp_path / "run")


def test_huge_link_weights_stop_at_the_next_tick_without_a_checkpoint(image_folder, tmp_path, capsys):
    run = tmp_path / "run"
    args = ["train", "--data", str(image_folder), "--out", str(run), "--kimg", "0.4", "--link", "c=box:0,0,0.5,0.5@8",
            "--link-lambda-in", "1e38", "--link-lambda-out", "1e38", "--link-interval", "2", "--tick-kimg", "0.016", *TINY]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "optimizer state became NaN or Inf by step" in err and "No checkpoint of this run was written" in err
    stopped_at = int(err.split("by step ")[1].split()[0])
    assert stopped_at < 50 and not list_checkpoints(run)


def test_a_checkpoint_with_poisoned_optimizer_state_refuses_to_resume(image_folder, tmp_path, capsys):
    run = tmp_path / "run"
    train(tiny_run(image_folder, run, kimg=0.016), progress=False)
    ckpt = list_checkpoints(run)[-1]

    def poison(t):
        key = next(k for k in t if k.startswith("opt.G.") and k.endswith("exp_avg_sq"))
        t[key] = torch.full_like(t[key], float("inf"))

    rewrite(ckpt, ckpt, poison)
    assert main(["train", "--resume", str(run), "--kimg", "0.032", "--no-progress"]) == 2
    assert "optimizer state of 'G' holds NaN or Inf" in capsys.readouterr().err


def test_a_checkpoint_with_nan_weights_is_refused_not_rendered_black(image_folder, tmp_path, capsys):
    run = tmp_path / "run"
    train(tiny_run(image_folder, run, kimg=0.016), progress=False)
    bad = rewrite(list_checkpoints(run)[-1], tmp_path / "nan.safetensors",
                  lambda t: t.update({k: torch.full_like(v, float("nan")) for k, v in t.items()
                                      if k.startswith("G_ema.") and v.is_floating_point()}))
    with pytest.raises(CheckpointError, match="holds NaN or Inf"):
        LinkGANPipeline.load(bad, device="cpu")
    assert main(["generate", "--ckpt", str(bad), "--seeds", "0", "--out", str(tmp_path / "g.png")]) == 2
    assert "holds NaN or Inf" in capsys.readouterr().err and not (tmp_path / "g.png").exists()


def _no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_while_writing_a_dataset_leaves_nothing(tmp_path, monkeypatch, capsys):
    calls = {"n": 0}
    real = zipfile.ZipFile.writestr

    def fills_up(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 5:
            _no_space()
        return real(self, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, "writestr", fills_up)
    out = tmp_path / "faces.zip"
    assert main(["dataset", "toyfaces", "--out", str(out), "--n", "20", "--res", "16", "--workers", "1",
                 "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "cannot write the archive (No space left on device)" in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_a_full_disk_while_checkpointing_keeps_the_previous_checkpoint(image_folder, tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    train(tiny_run(image_folder, run, kimg=0.016), progress=False)
    before = list_checkpoints(run)
    monkeypatch.setattr("safetensors.torch.save_file", _no_space)
    assert main(["train", "--resume", str(run), "--kimg", "0.032", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "No space left on device" in err and "is unchanged" in err and "Traceback" not in err
    assert list_checkpoints(run) == before and not list(run.glob(".*tmp*"))
    load_checkpoint(before[-1])


def test_a_full_disk_while_writing_a_sample_grid_is_one_line(image_folder, tmp_path, monkeypatch, capsys):
    def full(grid, path):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr("linkgan.training.save_png", full)
    run = tmp_path / "run"
    assert main(["train", "--data", str(image_folder), "--out", str(run), "--kimg", "0.016", *TINY]) == 2
    err = capsys.readouterr().err
    assert f"cannot write {run / 'samples-000000kimg.png'} (No space left on device)" in err
    assert "Traceback" not in err


@pytest.fixture
def small_disk(tmp_path):
    """mount_small_disk(kb) -> a folder on a tmpfs of that size (a real full disk); skips where
    mounting is not allowed (not root, or a container without the capability)."""
    mounts = []

    def mount(kb: int):
        where = tmp_path / f"disk{len(mounts)}"
        where.mkdir()
        if sys.platform != "linux" or os.geteuid() != 0:
            pytest.skip("mounting a tmpfs needs root on Linux")
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={kb}k", "tmpfs", str(where)], capture_output=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
        mounts.append(where)
        return where

    yield mount
    for where in mounts:
        subprocess.run(["umount", str(where)], check=False)


def test_a_real_full_disk_keeps_the_previous_checkpoint_and_leaves_no_partial_dataset(image_folder, small_disk,
                                                                                    capsys):
    disk = small_disk(2560)  # room for one tiny checkpoint (1.4 MB) and the logs, not for two
    run = disk / "run"
    args = ["train", "--data", str(image_folder), "--out", str(run), "--kimg", "0.032", "--snapshot-kimg", "0.016",
            *TINY]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "No space left on device" in err and "Traceback" not in err
    ckpts = list_checkpoints(run)
    assert [p.name for p in ckpts] == ["ckpt-000000016.safetensors"] and not list(run.glob(".*tmp*"))
    load_checkpoint(ckpts[0])

    disk = small_disk(64)
    assert main(["dataset", "toyfaces", "--out", str(disk / "faces.zip"), "--n", "400", "--res", "16",
                 "--workers", "1", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "No space left on device" in err and "Traceback" not in err
    assert list(disk.iterdir()) == []


# -- signals ------------------------------------------------------------------------------------
@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_ctrl_c_and_sigterm_save_a_checkpoint_and_exit_as_interrupted(image_folder, tmp_path, sig):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "linkgan", "train", "--data", str(image_folder), "--out", str(out),
           "--res", "16", "--z-dim", "32", "--w-dim", "32", "--map-layers", "2", "--cbase", "256", "--cmax", "32",
           "--batch", "8", "--kimg", "1000", "--workers", "1", "--grid-size", "4", "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while proc.poll() is None and not (out / "stats.jsonl").exists() and time.time() < deadline:  # wait until training runs
        time.sleep(0.2)
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 128 + sig, stderr  # 130 / 143: a script can tell it from a finished run
    assert f"Interrupted by {sig.name}: saved" in stdout and "--resume" in stdout
    ckpts = list_checkpoints(out)
    assert ckpts and load_checkpoint(ckpts[-1]).state["images_seen"] > 0
    assert not [p for p in os.listdir(out) if ".tmp" in p]


# -- kill -9 ------------------------------------------------------------------------------------
# Trains through the CLI; with KILL_IN_WRITE=k the process SIGKILLs itself inside its k-th
# checkpoint write, after the temporary file is complete and before the rename makes it the
# checkpoint (the worst moment).
DRIVER = """
import os, signal, sys
import linkgan.tensorfile as tf
k = int(os.environ.get("KILL_IN_WRITE", "0"))
calls = [0]
real_replace = tf.os.replace
class Os:
    def __getattr__(self, name):
        return getattr(os, name)
    def replace(self, src, dst):
        calls[0] += 1
        if calls[0] == k:
            os.kill(os.getpid(), signal.SIGKILL)
        real_replace(src, dst)
tf.os = Os()
from linkgan.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _train_cmd(tmp_path, args):
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    return [sys.executable, str(driver), "train", *args]


def _weights(run):
    ckpt = load_checkpoint(run)
    return ckpt, {k: v for k, v in ckpt.tensors.items() if k.startswith(("G.", "D.", "G_ema.", "opt", "state."))}


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_kill_9_inside_a_checkpoint_write_and_at_random_moments_loses_nothing(image_folder, tmp_path):
    """A run killed with SIGKILL (the OOM killer, a lost node) again and again -- once inside a
    checkpoint write, then at random moments -- always has a newest checkpoint that loads, and
    resumed to the end it holds exactly the weights of a run that was never killed."""
    common = ["--data", str(image_folder), "--kimg", "0.2", "--snapshot-kimg", "0.016", "--keep-ckpts", "2", *TINY]
    ref = tmp_path / "ref"
    subprocess.run(_train_cmd(tmp_path, ["--out", str(ref), *common]), check=True, capture_output=True)

    run = tmp_path / "run"
    first = subprocess.run(_train_cmd(tmp_path, ["--out", str(run), *common]), capture_output=True,
                           env={**os.environ, "KILL_IN_WRITE": "3"})
    assert first.returncode == -signal.SIGKILL
    # the 48-image checkpoint never landed; the two before it are kept (--keep-ckpts 2)
    assert [p.name for p in list_checkpoints(run)] == ["ckpt-000000016.safetensors", "ckpt-000000032.safetensors"]
    assert list(run.glob(".ckpt-*.tmp*")), "the kill came after the temporary file was written"

    rng = random.Random(0)
    resume = _train_cmd(tmp_path, ["--resume", str(run), "--kimg", "0.2", "--no-progress"])
    for _ in range(3):  # kill -9 at a random moment after the resumed run has made progress
        proc = subprocess.Popen(resume, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        before = load_checkpoint(run).state["images_seen"]
        deadline = time.time() + 60
        while proc.poll() is None and time.time() < deadline and load_checkpoint(run).state["images_seen"] == before:
            time.sleep(0.05)
        time.sleep(rng.uniform(0.0, 0.3))
        proc.kill()
        proc.wait()
        load_checkpoint(run)  # the newest checkpoint always loads
    assert load_checkpoint(run).state["images_seen"] < 200, "the run finished before the kills; give it more kimg"
    subprocess.run(resume, check=True, capture_output=True)
    assert not list(run.glob(".ckpt-*.tmp*"))
    ckpt, got = _weights(run)
    _, want = _weights(ref)
    assert ckpt.state["images_seen"] == 200 and set(got) == set(want)
    for key in want:
        if not key.startswith("state.rng"):
            assert torch.equal(got[key], want[key]), key
    steps = [json.loads(line)["step"] for line in (run / "stats.jsonl").read_text().splitlines()]
    assert steps == sorted(set(steps)), "one stats row per step"

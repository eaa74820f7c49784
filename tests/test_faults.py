"""Faults: what a crash, a kill or a NaN leaves behind, and what resuming makes of it."""

from __future__ import annotations

import errno
import json
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

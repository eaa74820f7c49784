"""End to end: train a tiny model, generate from it, resume exactly (signals and kills: test_faults.py)."""

import json

import numpy as np
import pytest
import torch

from conftest import tiny_run
from linkgan import LinkGANPipeline
from linkgan.checkpoint import list_checkpoints, load_checkpoint
from linkgan.cli import main as cli_main
from linkgan.losses import NonFiniteLossError
from linkgan.pipeline import parse_seeds
from linkgan.training import ResumableSampler, Trainer, train


def _losses(run_dir):
    return [json.loads(line) for line in (run_dir / "stats.jsonl").read_text().splitlines()]


def test_tiny_train_writes_checkpoint_config_stats_grid_and_tensorboard(image_folder, tmp_path):
    cfg = tiny_run(image_folder, tmp_path / "run")
    result = train(cfg, progress=False)
    run = tmp_path / "run"
    assert result.images_seen == 48 and result.step == 6 and not result.interrupted
    assert list_checkpoints(run) == [result.checkpoint]
    assert (run / "config.yaml").is_file() and (run / "samples-latest.png").is_file()
    assert list(run.glob("events.out.tfevents.*")), "TensorBoard log missing"
    stats = _losses(run)
    assert len(stats) == 6 and {"Loss/G/loss", "Loss/D/loss", "img_per_s"} <= set(stats[0])
    assert any("Loss/r1_penalty" in s for s in stats) and any("Loss/pl_penalty" in s for s in stats)
    ckpt = load_checkpoint(run)
    assert ckpt.config["model"]["resolution"] == 16 and ckpt.state["images_seen"] == 48

    pipe = LinkGANPipeline.load(run)
    imgs = pipe.generate(seeds=[0, 1, 2])
    assert len(imgs) == 3 and imgs[0].size == (16, 16)
    again = pipe.generate(seeds=[1], output="numpy")
    assert np.array_equal(np.asarray(imgs[1]), again[0]), "a seed must always give the same image"

    assert cli_main(["generate", "--ckpt", str(run), "--seeds", "0-5", "--out", str(tmp_path / "g.png")]) == 0
    assert (tmp_path / "g.png").is_file()
    assert cli_main(["generate", "--ckpt", str(run), "--seeds", "3,4", "--out", str(tmp_path / "each")]) == 0
    assert sorted(p.name for p in (tmp_path / "each").iterdir()) == ["seed0003.png", "seed0004.png"]


def test_resumed_run_reproduces_the_uninterrupted_run(image_folder, tmp_path):
    # The schedule includes lazy R1 (every 2 steps) and path length (every 3 steps), style
    # mixing and noise, so every RNG stream and counter must be restored for this to hold.
    full = train(tiny_run(image_folder, tmp_path / "full"), progress=False)
    part = train(tiny_run(image_folder, tmp_path / "part"), progress=False, max_steps=4)
    assert part.step == 4
    resumed = train(tiny_run(image_folder, tmp_path / "part"), resume=tmp_path / "part", progress=False)
    assert resumed.step == full.step
    a, b = _losses(tmp_path / "full"), _losses(tmp_path / "part")
    assert len(a) == len(b) == 6
    for ra, rb in zip(a, b):
        for key in ra:
            if key.startswith("Loss/"):
                assert ra[key] == pytest.approx(rb[key], rel=1e-5, abs=1e-6), key
    ga, gb = load_checkpoint(tmp_path / "full"), load_checkpoint(tmp_path / "part")
    for key in ga.tensors:
        if key.startswith(("G_ema.", "D.")):
            assert torch.allclose(ga.tensors[key], gb.tensors[key], atol=1e-5), key


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(image_folder, tmp_path):
    cfg = tiny_run(image_folder, tmp_path / "run", kimg=0.016)
    train(cfg, progress=False)
    good = list_checkpoints(tmp_path / "run")
    cfg.train.kimg = 0.1
    trainer = Trainer(cfg, resume=tmp_path / "run", progress=False)
    with torch.no_grad():
        trainer.D.out.bias.fill_(float("nan"))
    with pytest.raises(NonFiniteLossError, match=f"The newest checkpoint, {good[-1]}, is from before it"):
        trainer.run()
    assert list_checkpoints(tmp_path / "run") == good
    load_checkpoint(good[-1])  # still readable


def test_fine_tuning_init_loads_weights_and_starts_fresh(image_folder, tmp_path):
    train(tiny_run(image_folder, tmp_path / "base", kimg=0.016), progress=False)
    cfg = tiny_run(image_folder, tmp_path / "ft", kimg=0.008, init=str(tmp_path / "base"))
    trainer = Trainer(cfg, progress=False)
    base = load_checkpoint(tmp_path / "base")
    assert trainer.step == 0 and trainer.images_seen == 0
    assert torch.equal(trainer.G_ema.state_dict()["mapping.w_avg"], base.tensors["G_ema.mapping.w_avg"])
    assert not trainer.phases[0].opt.state, "fine-tuning starts with fresh optimizer state"


def test_sampler_positions_are_stable_and_shard_across_ranks():
    full = ResumableSampler(10, seed=3)
    it = iter(full)
    stream = [next(it) for _ in range(25)]
    assert sorted(stream[:10]) == list(range(10)) and sorted(stream[10:20]) == list(range(10))
    later = iter(ResumableSampler(10, seed=3, start=13))
    assert [next(later) for _ in range(12)] == stream[13:25]
    r0, r1 = iter(ResumableSampler(10, 3, rank=0, world=2)), iter(ResumableSampler(10, 3, rank=1, world=2))
    assert [next(r0) for _ in range(5)] == stream[0:10:2]
    assert [next(r1) for _ in range(5)] == stream[1:10:2]


def test_seed_lists_parse_and_bad_ones_are_explained():
    assert parse_seeds("0-3,7") == [0, 1, 2, 3, 7]
    assert parse_seeds(5) == [5]
    with pytest.raises(ValueError, match="0-15"):
        parse_seeds("a-b")


def test_cli_reports_bad_inputs_without_a_traceback(image_folder, tmp_path, capsys):
    bad_cfg = tmp_path / "bad.yaml"
    bad_cfg.write_text("train:\n  learning_rate: 0.1\n")
    assert cli_main(["train", "--data", str(image_folder), "--config", str(bad_cfg)]) == 2
    assert "unknown option(s) ['learning_rate']" in capsys.readouterr().err
    assert cli_main(["generate", "--ckpt", str(tmp_path / "missing"), "--out", str(tmp_path / "x.png")]) == 2
    assert "does not exist" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli_main(["train", "--data", str(empty), "--out", str(tmp_path / "r"), "--res", "16"]) == 2
    err = capsys.readouterr().err
    assert "error" in err and "Traceback" not in err


def test_config_file_and_flags_combine_with_flags_winning(image_folder, tmp_path):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("model: {resolution: 16, z_dim: 32, w_dim: 32, mapping_layers: 2, channel_base: 256, "
                   "channel_max: 32}\ntrain: {batch: 8, kimg: 0.008, lr_g: 2e-3, workers: 0, grid_size: 4}\n")
    out = tmp_path / "run"
    assert cli_main(["train", "--config", str(cfg), "--data", str(image_folder), "--out", str(out),
                     "--lr-d", "0.001", "--no-progress"]) == 0
    saved = load_checkpoint(out).config
    assert saved["train"]["lr_g"] == 0.002 and saved["train"]["lr_d"] == 0.001 and saved["train"]["batch"] == 8
    # Resuming keeps the saved options and may extend training, but not change the architecture.
    assert cli_main(["train", "--resume", str(out), "--kimg", "0.016", "--no-progress"]) == 0
    assert load_checkpoint(out).state["images_seen"] == 16
    assert cli_main(["train", "--resume", str(out), "--res", "32"]) == 2


def test_compiled_forwards_train_like_eager_and_leave_checkpoints_unchanged(image_folder, tmp_path, monkeypatch):
    """--compile traces G's mapping and synthesis and D with torch.compile (here the aot_eager backend,
    which captures forward and backward graphs as inductor does, without inductor's slow code generation;
    R1 and path length, every 2 and 3 steps here, fall back to the eager forwards):
    the losses match the eager run and the checkpoint keys are the same."""
    import linkgan.training as training

    monkeypatch.setattr(training, "COMPILE_BACKEND", "aot_eager")
    eager = train(tiny_run(image_folder, tmp_path / "eager", kimg=0.024), progress=False)
    compiled = train(tiny_run(image_folder, tmp_path / "compiled", kimg=0.024, compile="default"),
                     progress=False)
    assert compiled.step == eager.step == 3
    for ra, rb in zip(_losses(tmp_path / "eager"), _losses(tmp_path / "compiled")):
        for key in ra:
            if key.startswith("Loss/"):
                assert ra[key] == pytest.approx(rb[key], rel=1e-4, abs=1e-5), key
    assert set(load_checkpoint(tmp_path / "eager").tensors) == set(load_checkpoint(tmp_path / "compiled").tensors)


def test_a_preset_replaces_the_defaults_and_config_and_flags_still_win(image_folder, tmp_path, capsys):
    from linkgan.config import PRESETS

    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("train: {lr_g: 0.003}\n")
    out = tmp_path / "run"
    tiny = ["--res", "16", "--z-dim", "32", "--w-dim", "32", "--cbase", "256", "--cmax", "32", "--mbstd-group", "4",
            "--batch", "8", "--kimg", "0.008", "--workers", "0", "--grid-size", "4"]
    assert cli_main(["train", "--preset", "small32", "--config", str(cfg), "--data", str(image_folder),
                     "--out", str(out), *tiny, "--no-progress"]) == 0
    saved = load_checkpoint(out).config
    preset = PRESETS["small32"]
    assert saved["preset"] == "small32"
    assert saved["model"]["mapping_layers"] == preset["model"]["mapping_layers"] == 2
    for key in ("lr_d", "r1_gamma", "style_mixing", "aug", "ada_kimg", "xflip"):
        assert saved["train"][key] == preset["train"][key], key
    assert saved["train"]["lr_g"] == 0.003 and saved["train"]["kimg"] == 0.008  # --config, then flags
    assert "preset: small32" in (out / "config.yaml").read_text()
    # A resumed run keeps its preset; naming the same one is allowed, another one is not.
    assert cli_main(["train", "--resume", str(out), "--preset", "small32", "--kimg", "0.016", "--no-progress"]) == 0
    plain = tmp_path / "plain"
    assert cli_main(["train", "--data", str(image_folder), "--out", str(plain), *tiny, "--no-progress"]) == 0
    capsys.readouterr()
    assert cli_main(["train", "--resume", str(plain), "--preset", "small32", "--kimg", "0.016"]) == 2
    assert "--preset small32 cannot change a resumed run (it started from no preset)" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli_main(["train", "--preset", "nosuch"])
    assert "invalid choice: 'nosuch' (choose from 'small32')" in capsys.readouterr().err

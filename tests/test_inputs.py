"""Bad option values get a one-line error naming the option, before anything is built or written."""

from __future__ import annotations

import pytest

from conftest import tiny_run
from linkgan.checkpoint import load_checkpoint
from linkgan.cli import main
from linkgan.training import train

TINY = ["--z-dim", "32", "--w-dim", "32", "--map-layers", "2", "--cbase", "256", "--cmax", "32", "--batch", "8",
        "--workers", "0", "--grid-size", "4", "--no-progress"]


@pytest.mark.parametrize("option, message", [
    (["--kimg", "-1"], "--kimg must be above 0"),
    (["--kimg", "nan"], "--kimg must be a finite number"),
    (["--lr-g", "inf"], "--lr-g must be a finite number"),
    (["--res", "8"], "--res must be a power of two from 16 to 1024"),
    (["--res", "24"], "--res must be a power of two"),
    (["--w-dim", "0"], "--w-dim must be at least 1"),
    (["--style-mixing", "1.5"], "--style-mixing must be at least 0 and at most 1"),
    (["--link-lambda-out", "-1"], "--link-lambda-out must be at least 0"),
    (["--link-shared-axes", "-1"], "--link-shared-axes must be at least 0"),
    (["--link", "c=box:0,0,0.5,0.5@24", "--link-shared-axes", "16"],
     "the links ask for 24 channels of W in total (c 24) and 16 shared axes but w_dim is 32"),
])
def test_train_refuses_out_of_range_options_before_writing(image_folder, tmp_path, capsys, option, message):
    out = tmp_path / "run"
    args = ["train", "--data", str(image_folder), "--out", str(out), "--res", "16", *TINY, *option]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not out.exists()


def test_a_config_file_that_is_not_a_mapping_is_refused(image_folder, tmp_path, capsys):
    (tmp_path / "list.yaml").write_text("- [1, 2]\n")
    assert main(["train", "--config", str(tmp_path / "list.yaml"), "--data", str(image_folder),
                 "--out", str(tmp_path / "run")]) == 2
    assert "holds a list; it must be a mapping of sections" in capsys.readouterr().err


@pytest.mark.parametrize("args, message", [
    (["edit", "--ckpt", "builtin:toyfaces", "--link", "eyes", "--n", "0"], "argument --n: must be from 1 to 256"),
    (["edit", "--ckpt", "builtin:toyfaces", "--link", "eyes", "--edit-seed", "-1"], "argument --edit-seed"),
    (["edit", "--ckpt", "builtin:toyfaces", "--link", "eyes", "--strength", "1e308"], "argument --strength"),
    (["generate", "--ckpt", "builtin:toyfaces", "--trunc", "nan"], "argument --trunc: must be a finite number"),
    (["dataset", "toyfaces", "--out", "x.zip", "--n", "0"], "argument --n: must be at least 1"),
    (["serve", "--ckpt", "builtin:toyfaces", "--port", "70000"], "argument --port"),
])
def test_command_options_are_checked_by_the_parser(args, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2 and message in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("seeds", ["0-100000000", "18446744073709551616", "4294967296"])
def test_seed_lists_are_bounded(seeds, tmp_path, capsys):
    assert main(["generate", "--ckpt", "builtin:toyfaces", "--seeds", seeds, "--out", str(tmp_path / "g.png")]) == 2
    assert "at most 100000 seeds per call, each from 0 to 4294967295" in capsys.readouterr().err


def test_resume_refuses_options_it_would_silently_ignore(image_folder, tmp_path, capsys):
    run = tmp_path / "run"
    train(tiny_run(image_folder, run, kimg=0.016), progress=False)
    before = (run / "config.yaml").read_text()
    assert main(["train", "--resume", str(run), "--lr-g", "0.01", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "cannot change --lr-g when resuming" in err and "--kimg" in err
    assert (run / "config.yaml").read_text() == before
    assert main(["train", "--resume", str(run), "--kimg", "0.024", "--snapshot-kimg", "1", "--no-progress"]) == 0
    assert load_checkpoint(run).state["images_seen"] == 24


def test_training_above_the_data_resolution_says_so(tmp_path, capsys):
    from linkgan.data import make_toyfaces

    data = make_toyfaces(tmp_path / "faces16.zip", n=16, res=16, seed=0, workers=1, progress=False)
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "run"), "--res", "32", *TINY,
                 "--kimg", "0.008"]) == 0
    assert "holds 16-px images; training at 32 px upsamples every one" in capsys.readouterr().err


def test_a_bug_keeps_its_traceback_while_bad_input_is_one_line(monkeypatch, tmp_path, capsys):
    """Only InputError (and its kinds) becomes a one-line message; a ValueError from deep inside is a
    bug and must surface as one."""
    import linkgan.pipeline as pipeline
    from linkgan.errors import InputError

    def broken(*args, **kwargs):
        raise ValueError("shapes (3,4) and (5,6) not aligned")

    monkeypatch.setattr(pipeline.LinkGANPipeline, "save_images", broken)
    with pytest.raises(ValueError, match="not aligned"):
        main(["generate", "--ckpt", "builtin:toyfaces", "--seeds", "0", "--out", str(tmp_path / "g.png")])
    assert main(["generate", "--ckpt", "builtin:nothing", "--out", str(tmp_path / "g.png")]) == 2
    assert "no built-in model named 'nothing'" in capsys.readouterr().err
    from linkgan.checkpoint import CheckpointError
    from linkgan.config import ConfigError
    from linkgan.data import DatasetError

    assert all(issubclass(e, InputError) for e in (CheckpointError, ConfigError, DatasetError))

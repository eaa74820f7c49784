"""The run config: nested option groups (train: link:, model: triplane:) with flat names, and version-1 configs."""

from __future__ import annotations

import pytest
import yaml

from conftest import tiny_run
from linkgan.checkpoint import load_checkpoint
from linkgan.cli import main
from linkgan.config import (
    CONFIG_VERSION,
    LINK_BEHAVIOUR_BEFORE,
    ConfigError,
    ModelConfig,
    RunConfig,
    TrainConfig,
    flat_options,
    get_option,
    load_config_file,
    options_of,
    set_option,
)
from linkgan.training import train


def version_1(config: RunConfig) -> dict:
    """``config`` as a version-1 dict: every option of a nested group flat in its section."""
    d = config.to_dict()
    for key, cls in (("model", ModelConfig), ("train", TrainConfig)):
        groups = {o.path[0] for o in options_of(cls) if len(o.path) > 1}
        d[key] = {**{k: v for k, v in d[key].items() if k not in groups}, **flat_options(d[key], cls)}
    d["version"] = 1
    return d


def test_a_version_1_dict_reads_as_the_same_config():
    cfg = RunConfig(model=ModelConfig.from_options(kind="3d", plane_resolution=16, ray_far=3.5),
                    train=TrainConfig.from_options(kimg=5.0, link_lambda_in=3.0, link_samples="split", link_lr=0.01))
    old = version_1(cfg)
    assert old["train"]["link_lambda_in"] == 3.0 and "link" not in old["train"]
    assert old["model"]["plane_resolution"] == 16 and "triplane" not in old["model"]
    again = RunConfig.from_dict(old)
    assert again == cfg and again.version == CONFIG_VERSION
    assert (again.train.link.lambda_in, again.train.link.samples, again.model.triplane.ray_far) == (3.0, "split", 3.5)


def test_an_option_given_flat_and_nested_is_refused():
    d = RunConfig().to_dict()
    d["train"]["link_alpha"] = 2.0
    with pytest.raises(ConfigError, match="'link_alpha' is given twice"):
        RunConfig.from_dict(d)


def test_flat_names_reach_nested_options_and_unknown_ones_are_named():
    t = TrainConfig.from_options(link_alpha=0.5, batch=8)
    assert t.link.alpha == 0.5 and t.batch == 8 and get_option(t, "link_alpha") == 0.5
    set_option(t, "link_fakes", 0.0)
    assert t.link.fakes == 0.0
    with pytest.raises(ConfigError, match="did you mean 'link_lambda_in'"):
        TrainConfig.from_options(link_lamda_in=1.0)
    names = [o.name for o in options_of(TrainConfig)]
    assert len(names) == len(set(names)), "flat names are unique"
    assert "link_loss" in names and "link_box3d_image" in names and "link" not in names


def test_a_version_1_config_file_still_trains(image_folder, tmp_path):
    """--config files and config.yaml files written with flat link_* keys keep working."""
    path = tmp_path / "old.yaml"
    path.write_text(yaml.safe_dump({"train": {"link_lambda_in": 2.0, "link_interval": 4},
                                    "model": {"plane_resolution": 32}}))
    d = load_config_file(path)
    assert d["train"] == {"link": {"lambda_in": 2.0, "interval": 4}} and d["model"] == {"triplane": {"plane_resolution": 32}}
    out = tmp_path / "run"
    args = ["train", "--config", str(path), "--data", str(image_folder), "--out", str(out), "--res", "16",
            "--z-dim", "32", "--w-dim", "32", "--map-layers", "2", "--cbase", "256", "--cmax", "32", "--batch", "8",
            "--workers", "0", "--grid-size", "4", "--no-progress", "--kimg", "0.016", "--snapshot-kimg", "1",
            "--link", "top=box:0,0,1,0.5@8", "--link-alpha", "0.5"]
    assert main(args) == 0
    saved = load_checkpoint(out).config
    assert saved["version"] == CONFIG_VERSION
    assert {k: saved["train"]["link"][k] for k in ("lambda_in", "interval", "alpha")} == {
        "lambda_in": 2.0, "interval": 4, "alpha": 0.5}
    assert yaml.safe_load((out / "config.yaml").read_text())["train"]["link"]["interval"] == 4


def test_shared_axes_are_saved_with_the_run_and_come_back_with_its_partition(image_folder, tmp_path):
    from linkgan.pipeline import LinkGANPipeline

    out = tmp_path / "run"
    args = ["train", "--data", str(image_folder), "--out", str(out), "--res", "16", "--z-dim", "32", "--w-dim", "32",
            "--map-layers", "2", "--cbase", "256", "--cmax", "32", "--batch", "8", "--workers", "0", "--grid-size", "4",
            "--no-progress", "--kimg", "0.008", "--link", "top=box:0,0,1,0.5@12", "--link", "bottom=box:0,0.5,1,1@12",
            "--link-shared-axes", "8"]
    assert main(args) == 0
    assert yaml.safe_load((out / "config.yaml").read_text())["train"]["link"]["shared_axes"] == 8
    links = LinkGANPipeline.load(out, device="cpu").links
    assert links.shared == 8 and links.complement_mask("top").nonzero().flatten().tolist() == list(range(12, 24))
    # `linkgan edit --link shared` resamples them (an edit grid without a region outline)
    png = tmp_path / "shared.png"
    assert main(["edit", "--ckpt", str(out), "--link", "shared", "--seeds", "0-1", "--n", "2", "--out", str(png)]) == 0
    assert png.is_file() and png.stat().st_size > 0


def test_shipped_version_1_checkpoints_load_as_the_current_version():
    config = load_checkpoint("builtin:toyfaces").config
    assert config["version"] == CONFIG_VERSION and "link_lambda_in" not in config["train"]
    assert RunConfig.from_dict(config).train.link.lambda_in == config["train"]["link"]["lambda_in"]


def test_a_version_1_run_keeps_the_link_behaviour_it_had():
    """Options added or changed after version 1 take their version-1 behaviour in a version-1 config, not today's defaults."""
    old = version_1(RunConfig())
    behaviour = {name: value for pins in LINK_BEHAVIOUR_BEFORE.values() for name, value in pins.items()}
    for name in behaviour:
        del old["train"]["link_" + name]
    cfg = RunConfig.from_dict(old)
    assert {name: getattr(cfg.train.link, name) for name in behaviour} == behaviour == {
        "budget": None, "strength": 1.0, "target": None, "perturb": "gaussian", "lambda_in": 10.0}


def test_a_version_2_run_keeps_fixed_link_weights():
    """--link-target came with version 3: a version-2 run resumes with fixed weights, a new run steers."""
    old = RunConfig().to_dict()
    old["version"] = 2
    del old["train"]["link"]["target"]
    assert RunConfig.from_dict(old).train.link.target is None
    assert RunConfig().train.link.target == 0.08
    explicit = {**old, "train": {**old["train"], "link": {**old["train"]["link"], "target": 0.2}}}
    assert RunConfig.from_dict(explicit).train.link.target == 0.2


def test_a_version_3_run_keeps_gaussian_edits():
    """Swap edits became the default with version 4: a version-3 config without the option keeps Gaussian ones."""
    old = RunConfig().to_dict()
    old["version"] = 3
    del old["train"]["link"]["perturb"]
    assert RunConfig.from_dict(old).train.link.perturb == "gaussian"
    assert RunConfig().train.link.perturb == "swap"


def test_a_version_4_run_keeps_lambda_in_10():
    """lambda_in fell from 10 to 3 with version 5: a version-4 config without the option keeps 10."""
    old = RunConfig().to_dict()
    old["version"] = 4
    del old["train"]["link"]["lambda_in"]
    assert RunConfig.from_dict(old).train.link.lambda_in == 10.0
    assert RunConfig().train.link.lambda_in == 3.0
    assert RunConfig.from_dict(RunConfig().to_dict()).train.link.lambda_in == 3.0


def test_resume_refuses_a_changed_link_option(image_folder, tmp_path, capsys):
    run = tmp_path / "run"
    train(tiny_run(image_folder, run, kimg=0.016), progress=False)
    assert main(["train", "--resume", str(run), "--link-alpha", "2", "--no-progress"]) == 2
    assert "cannot change --link-alpha when resuming" in capsys.readouterr().err
    # the same value as the run's is not a change
    assert main(["train", "--resume", str(run), "--link-alpha", "1.0", "--kimg", "0.024", "--snapshot-kimg", "1",
                 "--no-progress"]) == 0


def test_an_option_that_may_be_unset_takes_none_on_the_command_line(image_folder, tmp_path):
    out = tmp_path / "run"
    args = ["train", "--data", str(image_folder), "--out", str(out), "--res", "16", "--z-dim", "32", "--w-dim", "32",
            "--map-layers", "2", "--cbase", "256", "--cmax", "32", "--batch", "8", "--workers", "0", "--grid-size", "4",
            "--no-progress", "--kimg", "0.008", "--snapshot-kimg", "1", "--link", "top=box:0,0,1,0.5@8",
            "--link-target", "none", "--ema-rampup", "None"]
    assert main(args) == 0
    saved = RunConfig.from_dict(load_checkpoint(out).config)
    assert saved.train.link.target is None and saved.train.ema_rampup is None
    assert RunConfig().train.link.target == 0.08 and RunConfig().train.ema_rampup is not None
    assert saved.train.link.samples == "all" and saved.train.link.budget is None, "the defaults"


def test_link_strength_scales_both_lambdas(image_folder, tmp_path):
    from linkgan.training import Trainer

    cfg = tiny_run(image_folder, tmp_path / "run", link_strength=0.1, link_lambda_in=10.0, link_lambda_out=30.0)
    cfg.links = [{"name": "top", "region": {"box": [0, 0, 1, 0.5]}, "axes": 8}]
    link = Trainer(cfg, progress=False).link
    assert (link.lambda_in, link.lambda_out) == pytest.approx((1.0, 3.0))
    assert cfg.train.link.lambda_in == 10.0, "the config keeps the lambdas as given"

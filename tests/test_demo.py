"""The main job, `linkgan demo`, in its quick form: it produces its outputs and resumes."""

import json

from PIL import Image

from linkgan.checkpoint import load_checkpoint
from linkgan.cli import main


def test_quick_demo_writes_samples_and_a_second_run_reuses_everything(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--quick", "--no-progress"]) == 0
    first = capsys.readouterr().out
    for name in ("samples-vanilla.png", "samples-linkgan.png", "edit-eyes.png", "edit-mouth.png",
                 "edit-eyes-vanilla.png", "edit-eyes-complement.png", "metrics.json"):
        assert str(out / name) in first, name
        assert (out / name).is_file(), name
    assert Image.open(out / "samples-linkgan.png").size == (8 * 32 * 2, 8 * 32 * 2)
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["linkgan"]) == {"eyes", "mouth"} and "locality" in metrics["vanilla_same_partition"]["eyes"]
    assert "locality" in first
    assert (out / "linkgan" / "config.yaml").is_file()
    assert load_checkpoint(out / "linkgan").config["train"]["init"] == "builtin:toyfaces-base"
    assert main(["demo", "--out", str(out), "--quick", "--no-progress"]) == 0
    second = capsys.readouterr().out
    assert "already trained" in second and "using" in second


def test_the_demo_fine_tunes_the_shipped_base_unless_asked_to_train_from_scratch(tmp_path, capsys):
    from linkgan.checkpoint import load_checkpoint
    from linkgan.demo import BASE_MODEL, DemoPlan

    assert DemoPlan.make(quick=False, gpu=False).kimg == 0  # no vanilla training on the default path
    assert DemoPlan.make(quick=False, gpu=False, from_scratch=True).kimg > 0
    base = load_checkpoint(BASE_MODEL)
    assert {"G", "D", "G_ema"} <= {k.split(".")[0] for k in base.tensors}  # what fine-tuning needs
    assert base.config["model"]["numerics"] == "official"
    out = tmp_path / "scratch"
    assert main(["demo", "--out", str(out), "--quick", "--from-scratch", "--no-progress"]) == 0
    assert (out / "vanilla" / "config.yaml").is_file() and (out / "edit-eyes.png").is_file()
    assert "from scratch" in capsys.readouterr().out

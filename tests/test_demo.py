"""The main job, `linkgan demo`, in its quick form: it produces its outputs and resumes."""

import json

from PIL import Image

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
    assert (out / "vanilla" / "config.yaml").is_file() and (out / "linkgan" / "config.yaml").is_file()
    assert main(["demo", "--out", str(out), "--quick", "--no-progress"]) == 0
    second = capsys.readouterr().out
    assert "already trained" in second and "using" in second

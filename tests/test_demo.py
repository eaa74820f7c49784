"""The main job, `linkgan demo`, in its quick form: it produces its outputs and resumes."""

from PIL import Image

from linkgan.cli import main


def test_quick_demo_writes_samples_and_a_second_run_reuses_everything(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--quick", "--no-progress"]) == 0
    first = capsys.readouterr().out
    assert "samples" in first and str(out / "samples.png") in first
    grid = Image.open(out / "samples.png")
    assert grid.size == (8 * 32 * 2, 8 * 32 * 2)
    assert (out / "vanilla" / "config.yaml").is_file()
    assert main(["demo", "--out", str(out), "--quick", "--no-progress"]) == 0
    second = capsys.readouterr().out
    assert "already trained" in second and "using" in second

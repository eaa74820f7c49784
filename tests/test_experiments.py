"""The experiment and benchmark scripts: each one starts (its imports resolve, --help explains it),
and the shared steps of experiments/lab.py fine-tune, resume, measure and tabulate a tiny model."""

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import tiny_run
from linkgan.training import train

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted(p for folder in ("experiments", "benchmarks") for p in (ROOT / folder).glob("*.py")
                 if p.name != "lab.py")


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_each_script_starts_and_explains_itself(script):
    done = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=300,
                          cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "usage:" in done.stdout


@pytest.fixture
def lab(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "experiments"))
    import lab

    return lab


def test_lab_steps_fine_tune_skip_a_finished_arm_measure_and_tabulate(lab, image_folder, tmp_path):
    base = tmp_path / "base"
    train(tiny_run(image_folder, base, kimg=0.016), progress=False)
    box = {"name": "box", "region": {"box": [0.25, 0.25, 0.75, 0.75]}, "axes": 8}
    arm = lab.finetune(str(base), str(image_folder), tmp_path / "arm", [box], 0.016,
                       {"batch": 8, "workers": 0, "grid_size": 4, "link_interval": 2})
    assert lab.finished(arm, 0.016) and not lab.finished(arm, 0.024)
    ckpt = sorted(arm.glob("ckpt-*.safetensors"))[-1]
    mtime = ckpt.stat().st_mtime_ns
    lab.finetune(str(base), str(image_folder), arm, [box], 0.016, {"batch": 8, "workers": 0, "grid_size": 4})
    assert ckpt.stat().st_mtime_ns == mtime  # finished: skipped, not retrained
    result = lab.measure(arm, [box], n=8)
    assert set(result["box"]) == {"mse_in", "mse_out", "mse_in_complement", "locality"}
    table = "\n".join(lab.mse_table({"linkgan": {"one box": result}, "baseline": {"one box": result}}))
    assert "| one box | box |" in table and "| 1.0x |" in table
    res = lab.Results(tmp_path / "r.json")
    res.put(1.5, "a", "b")
    assert lab.Results(tmp_path / "r.json").get("a", "b") == 1.5 and res.get("a", "missing") is None

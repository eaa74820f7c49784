"""The experiment and benchmark scripts: each one starts (its imports resolve, --help explains it),
the shared steps of experiments/lab.py fine-tune, resume, measure and tabulate a tiny model, the
arm files of experiments/arms/ load as the scripts need them, and the results pages that are
written from their JSON are exactly what their scripts write from it."""

import importlib
import json
import shutil
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


# page, the script that writes it, its command line and the JSON files it is written from (docs/results/)
PAGES = [("regularizer.md", "regularizer", "--report-only", ["regularizer.json"]),
         ("semantic.md", "semantic", "--report-only", ["semantic.json", "semantic-r1.json", "scenes-floor.json"]),
         ("3d.md", "threed", "--docs docs --report-only", ["3d.json"])]


@pytest.mark.parametrize("page,script,command,sources", PAGES, ids=[p[0] for p in PAGES])
def test_results_page_is_what_its_script_writes_from_its_json(lab, tmp_path, page, script, command, sources):
    # A page edited by hand, or a JSON changed without rewriting its page, fails here: edit the
    # template docs/results/NAME.template.md or the JSON, then run the script with --report-only.
    results = ROOT / "docs" / "results"
    (tmp_path / "results").mkdir()
    for name in sources:
        shutil.copy(results / name, tmp_path / "results" / name)
    importlib.import_module(script).main(["--report-only", "--docs", str(tmp_path)])
    written = (tmp_path / "results" / page).read_bytes()
    assert written == (results / page).read_bytes(), (
        f"docs/results/{page} is not what `python experiments/{script}.py {command}` writes from "
        f"{', '.join(sources)} and {page.replace('.md', '.template.md')}; rewrite it with that command")


def test_a_page_whose_json_lacks_a_measured_arm_is_not_written_and_the_error_names_the_field(lab, tmp_path):
    import regularizer

    data = json.loads((ROOT / "docs" / "results" / "regularizer.json").read_text())
    del data["linkgan"]["corners_split"]
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "regularizer.json").write_text(json.dumps(data))
    with pytest.raises(SystemExit, match=r"regularizer\.json.*\{linkgan\[corners_split\]"):
        regularizer.main(["--report-only", "--docs", str(tmp_path)])
    assert not (tmp_path / "results" / "regularizer.md").exists()


def test_arm_files_hold_what_the_scripts_train(lab):
    import semantic

    arms = {name: lab.load_arms(name) for name in ("regularizer", "semantic-scenes", "threed")}
    # the paper tables link the regularizer's eyes run in as their own eyes arm, so the boxes must agree
    assert arms["regularizer"]["eyes"]["links"] == [lab.EYES]
    assert arms["regularizer"]["eyes_mouth"]["links"] == [lab.EYES, lab.MOUTH]
    assert arms["regularizer"]["corners"]["links"] == lab.CORNERS
    # every scenes arm has a mask mode and a vanilla fine-tune to be compared with, before any training
    for arm, spec in arms["semantic-scenes"].items():
        assert spec["region"]["mask_mode"] in ("union", "shared", "source"), arm
        semantic.vanilla_for(spec["overrides"], 20.0)
    # YAML aliases (one eyes box in several arms) do not make arms share, and change, one dict
    arms["regularizer"]["eyes"]["links"][0]["axes"] = 8
    assert arms["regularizer"]["eyes_mouth"]["links"][0]["axes"] == 64


MALFORMED_ARMS = {  # what is wrong -> (the arm file, what the error says after the file's name)
    "not a mapping": ("- just a list", "expected a mapping of arm name -> arm"),
    "misspelled train option": ("a: {note: x, links: [], overrides: {link_lamda_in: 3.0}}",
                                "arm 'a': overrides: 'link_lamda_in' is not a train option "
                                "\\(did you mean 'link_lambda_in'\\?\\)"),
    "links and region": ("a: {note: x, links: [], region: {mask_mode: shared}}",
                         "arm 'a': needs either links: .* or region:"),
    "no note": ("a: {links: []}", "arm 'a': needs a one-line note"),
    "link without a name": ("a: {note: x, links: [{region: {box: [0, 0, 1, 1]}}]}",
                            "arm 'a': links: must be a list of link specs"),
    "unknown key": ("a: {note: x, region: {mask_mode: shared}, lr: 1}", "arm 'a': unknown keys \\['lr'\\]"),
    "region not a mapping": ("a: {note: x, region: shared}", "arm 'a': region: must be a mapping"),
    "not YAML": ("a: {note: [x, links: []", "not valid YAML"),
}


@pytest.mark.parametrize("text,message", MALFORMED_ARMS.values(), ids=MALFORMED_ARMS.keys())
def test_load_arms_names_the_file_and_the_arm_of_a_malformed_entry(lab, tmp_path, monkeypatch, text, message):
    monkeypatch.setattr(lab, "ARMS_DIR", tmp_path)
    (tmp_path / "broken.yaml").write_text(text + "\n")
    with pytest.raises(ValueError, match=r"experiments/arms/broken\.yaml.*" + message):
        lab.load_arms("broken")


def test_load_arms_names_the_arm_files_when_one_is_missing(lab):
    with pytest.raises(ValueError, match=r"experiments/arms/nosuch\.yaml: no such arm file .*regularizer"):
        lab.load_arms("nosuch")

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
from linkgan.config import TrainConfig, get_option
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
    # the regularizer a linked arm trained with is recorded beside its numbers (paper_tables.py's Table 1)
    import paper_tables

    record = paper_tables.regularizer_of(arm)
    assert {k: record[k] for k in paper_tables.REGULARIZER} == {
        "link_lambda_in": 3.0, "link_lambda_out": 30.0, "link_target": 0.08, "link_perturb": "swap"}
    assert record["link_scale"] == lab.final_link_scale(arm) and set(record["link_scale"]) == {"box"}
    assert paper_tables.regularizer_text(record).startswith("λ 3/30, target 0.08 (strength ended at box ")
    assert paper_tables.regularizer_text(dict(record, link_lambda_in=1.0, link_lambda_out=3.0, link_target=None,
                                              link_perturb="gaussian")) == "λ 1/3, fixed, gaussian edits"
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
         ("3d.md", "threed", "--docs docs --report-only", ["3d.json"]),
         ("quality.md", "quality", "--report-only", ["quality.json"])]


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
    import paper_tables
    import quality
    import semantic

    arms = {name: lab.load_arms(name) for name in ("regularizer", "semantic-scenes", "threed")}
    # the quality study's links are the other pages' boxes, so that its defaults rows compare with them
    links = {len(a["links"]): a["links"] for a in quality.ARMS.values() if "sweep" in a["groups"]}
    assert links == {1: [lab.EYES], 2: [lab.EYES, lab.MOUTH], 4: lab.CORNERS}
    assert quality.ARMS["fashion-top"]["links"] == [paper_tables.TOP_HALF]
    for group in quality.GROUPS:
        assert quality.selected_arms([group], []), group
    # a target or swap arm is read against its twin, which differs from it in link options only
    for group, twins in quality.TWINS.items():
        assert all(group in quality.ARMS[a]["groups"] for a in twins), group
        for arm, twin in twins.items():
            assert quality.ARMS[arm]["links"] == quality.ARMS[twin]["links"], arm
            assert twin in quality.selected_arms([group], []) and twin in quality.group_rows(group)
            assert quality.group_rows(group).index(twin) < quality.group_rows(group).index(arm)
    assert set(quality.SWAP_TWINS) <= {a for a, s in quality.ARMS.items() if "swap" in s["groups"]}
    # today's defaults arms run `linkgan train`'s link defaults (the advised ones differ in the shared axes only),
    # so that a change of a default without its measurement fails here
    defaults = TrainConfig()
    advised = {arm for arms, _ in quality.ADVISED_ARMS.values() for arm in arms}
    for arm in set(quality.DEFAULT_ARMS.values()) | advised:
        assert arm in quality.V5_TWINS, arm
        options = {**quality.STUDY_LINK, **quality.ARMS[arm]["overrides"]}
        differ = {k for k, v in options.items() if k.startswith("link_") and get_option(defaults, k) != v}
        assert differ == ({"link_shared_axes"} if arm in advised else set()), (arm, differ)
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


# ------------------------------------------------------------------ experiments/quality.py
def test_quality_refuses_a_linked_arm_whose_vanilla_differs_in_more_than_link_options(lab, tmp_path, monkeypatch):
    import quality

    monkeypatch.setattr(lab, "ARMS_DIR", tmp_path)
    (tmp_path / "quality.yaml").write_text(
        "plain: {note: x, groups: [baseline], links: []}\n"
        "long: {note: x, groups: [sweep], vanilla: plain, times_kimg: {kimg: 2},\n"
        "       links: [{name: a, region: {box: [0, 0, 1, 1]}, axes: 8}]}\n")
    with pytest.raises(ValueError, match=r"quality\.yaml, arm 'long': times_kimg: the non-link options "
                                         r"\{'kimg': 2\} differ from those of its vanilla 'plain'"):
        quality.load_quality_arms()


def tiny_quality_arms(arms: dict) -> dict:
    """The quality arms with a sixteenth of their axes: the real ones link 64-512 of 512 axes, the tiny
    model has 32."""
    return {name: {**arm, "links": [dict(link, axes=link["axes"] // 16) for link in arm["links"]]}
            for name, arm in arms.items()}


def test_quality_fine_tunes_and_measures_a_sweep_arm_and_its_vanilla_then_skips_them(lab, image_folder, tmp_path,
                                                                                        monkeypatch):
    import quality

    from linkgan import fid
    from linkgan.checkpoint import load_checkpoint
    from test_fid import ProjectionFeatures

    base = tmp_path / "base"
    train(tiny_run(image_folder, base, kimg=0.016), progress=False)
    monkeypatch.setattr(quality, "ARMS", tiny_quality_arms(quality.ARMS))
    stand_in = ProjectionFeatures(3 * 16 * 16)  # the Inception network costs ~6 GFLOP an image
    monkeypatch.setattr(fid, "load_inception", lambda path=None, device=None: stand_in)
    monkeypatch.setattr(quality, "find_inception_file", lambda: None)
    monkeypatch.setenv(fid.CACHE_ENV, str(tmp_path / "cache"))
    arm, docs, runs = "sweep-1link-in0.1-out0.3", tmp_path / "docs", tmp_path / "runs"
    argv = ["--base", str(base), "--data", str(image_folder), "--arms", f"{arm},target-1link", "--kimg", "0.016",
            "--n", "8",
            "--fid", "fid1k", "--pr", "pr1k", "--out", str(runs), "--docs", str(docs), "--no-plot",
            "--set", "workers=0", "--set", "grid_size=4"]
    quality.main(argv)

    data = json.loads((docs / "results" / "quality.json").read_text())
    assert set(data["arms"]) == {arm, "target-1link", "vanilla"}, "the arms and the vanilla they are compared with"
    measured = data["arms"][arm]
    assert set(measured["mse"]) == set(measured["baseline"]) == {"eyes"}
    assert isinstance(measured["fid"], float) and set(measured["pr"]) == {"precision", "recall"}
    assert isinstance(data["arms"]["vanilla"]["fid"], float) and "mse" not in data["arms"]["vanilla"]
    trained = load_checkpoint(runs / arm).config["train"]
    assert (trained["link"]["lambda_in"], trained["link"]["lambda_out"]) == (0.1, 0.3)
    assert trained["r1_interval"] == 2 and trained["pl_weight"] == 2.0, "the base's own recipe is kept"
    assert trained["link"]["target"] is None, "the study's arms keep fixed weights unless they say otherwise"
    assert load_checkpoint(runs / "target-1link").config["train"]["link"]["target"] == 0.08
    assert "link_scale" not in measured and 0.01 <= data["arms"]["target-1link"]["link_scale"]["eyes"] <= 1
    page = (docs / "results" / "quality.md").read_text()
    assert f"| `{arm}` | λ_in 0.1, λ_out 0.3 | 0.016 | eyes " in page and "not run yet" in page

    # run again: every fine-tune and every number is there, so nothing is trained or measured
    ckpt = sorted((runs / arm).glob("ckpt-*.safetensors"))[-1]
    mtime, stand_in.images_seen = ckpt.stat().st_mtime_ns, 0
    quality.main(argv)
    assert ckpt.stat().st_mtime_ns == mtime and stand_in.images_seen == 0
    assert json.loads((docs / "results" / "quality.json").read_text())["arms"] == data["arms"]
    # numbers of another length are not mixed into the same file
    with pytest.raises(SystemExit, match=r"quality\.json holds numbers measured with toyfaces kimg 0\.016"):
        quality.main([*argv, "--kimg", "0.024"])


def partial_quality_json() -> dict:
    """quality.json after two sweep arms (one without its FID yet) and the vanilla fine-tune."""
    def mse(locality):
        return {"mse_in": 0.01, "mse_out": 0.01 * locality, "mse_in_complement": 0.02, "locality": locality}

    return {"setup": {"n": 1000, "fid": "fid2k", "pr": "pr2k",
                      "toyfaces": {"base": "builtin:toyfaces-base", "base_kimg": 100.0, "kimg": 10.0}},
            "arms": {"vanilla": {"kimg": 10.0, "fid": 20.0, "pr": {"precision": 0.7, "recall": 0.5}},
                     "sweep-1link-in1-out3": {"kimg": 10.0, "mse": {"eyes": mse(0.4)}, "baseline": {"eyes": mse(1.6)},
                                              "fid": 21.0, "pr": {"precision": 0.7, "recall": 0.45}},
                     "sweep-1link-in10-out30": {"kimg": 10.0, "mse": {"eyes": mse(0.08)},
                                                "baseline": {"eyes": mse(1.6)}}}}


def test_quality_page_from_a_partial_json_shows_what_is_measured_and_not_run_yet_for_the_rest(lab, tmp_path):
    import quality

    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "quality.json").write_text(json.dumps(partial_quality_json()))
    quality.main(["--report-only", "--docs", str(tmp_path), "--no-plot"])
    page = (tmp_path / "results" / "quality.md").read_text()
    assert ("| `sweep-1link-in1-out3` | λ_in 1, λ_out 3 | 10 | eyes 0.400 | eyes 1.600 | eyes 0.33, 1.00× / 0.25× | "
            "21.00 | 20.00 | +5% | 0.700 | 0.450 | -0.050 |") in page
    assert ("| `sweep-1link-in10-out30` | λ_in 10, λ_out 30 | 10 | eyes 0.080 | eyes 1.600 | eyes 0.33, 1.00× / 0.05× | "
            "not run yet | 20.00 | not run yet | not run yet | not run yet | not run yet |") in page
    assert "| `sweep-4links-in1-out3` | λ_in 1, λ_out 3 | not run yet | not run yet |" in page
    assert ("- sweep: 2 of 16 arms measured; to measure the rest: "
            "`python experiments/quality.py --data data/toyfaces32.zip --only sweep`") in page
    assert ("- 1 link (FID ≤ +10% at locality ≤ 0.1 and ≥ 10× vanilla's): not met (1 of 5 strengths measured); the "
            "most local arm within the FID target, λ_in 1, reaches locality 0.400 on its least local link (+5%).") in page
    assert "- 2 links (FID ≤ +15% at locality ≤ 0.1 and ≥ 10× vanilla's): not run yet." in page
    assert "![FID change and recall against locality](../images/quality-tradeoff.png)" in page
    assert page.index("linkgan dataset toyfaces --n 20000 --res 32") < page.index("## Status"), "commands on top"


def test_quality_region_change_reads_the_link_against_its_region_and_vanilla(lab):
    import quality

    arm = {"mse_in": 0.03, "mse_in_complement": 0.01, "mse_out": 0.002}
    vanilla = {"mse_in": 0.004, "mse_in_complement": 0.016, "mse_out": 0.004}
    # the link moves 3/4 of its region's variation, the region varies twice as much as vanilla's, the
    # outside half as much
    assert quality.region_change(arm, vanilla) == "0.75, 2.00× / 0.50×"


def test_quality_verdict_names_the_arm_that_meets_the_targets_and_what_misses_them(lab):
    import quality

    data = partial_quality_json()
    data["arms"]["sweep-1link-in10-out30"]["fid"] = 21.6  # +8% at locality 0.08, vanilla 1.6: met
    line = quality.verdict(data).splitlines()[0]
    assert line.endswith("met by λ_in 10 (locality 0.080, FID +8%) (2 of 5 strengths measured).")
    data["arms"]["sweep-1link-in10-out30"]["fid"] = 23.0  # +15%: local enough, too costly
    line = quality.verdict(data).splitlines()[0]
    assert "not met" in line and "the arms local enough cost at least +15% (λ_in 10)" in line
    data["arms"]["sweep-1link-in10-out30"]["baseline"]["eyes"]["locality"] = 0.5  # 0.08 is not 10x better than 0.5
    assert "the arms local enough" not in quality.verdict(data).splitlines()[0]


def test_quality_plot_has_one_curve_per_measured_link_count_with_its_vanilla(lab):
    import quality

    curves = quality.tradeoff_points(partial_quality_json())
    assert list(curves) == [1], "only the 1-link arm with its FID is on the plot"
    assert [p["arm"] for p in curves[1]["arms"]] == ["sweep-1link-in1-out3"]
    assert curves[1]["arms"][0]["fid_change"] == pytest.approx(0.05)
    assert curves[1]["vanilla"] == {"locality": 1.6, "recall": 0.5}


def test_quality_plot_adds_the_real_photo_curve_once_its_arms_are_measured(lab):
    import quality

    data = partial_quality_json()
    assert list(quality.plot_curves(data)) == ["1 link"]
    centre = {"mse_in": 0.01, "mse_in_complement": 0.02}
    data["arms"].update({
        "fashion-vanilla": {"kimg": 10.0, "fid": 50.0, "pr": {"precision": 0.2, "recall": 0.07}},
        "fashion-centre-swap": {"kimg": 10.0, "mse": {"centre": {**centre, "mse_out": 0.001, "locality": 0.1}},
                                "baseline": {"centre": {**centre, "mse_out": 0.0045, "locality": 0.45}},
                                "fid": 80.0, "pr": {"precision": 0.1, "recall": 0.002}},
        "fashion-centre-swap-weak": {"kimg": 10.0, "mse": {"centre": {**centre, "mse_out": 0.004, "locality": 0.4}},
                                     "baseline": {"centre": {**centre, "mse_out": 0.0045, "locality": 0.45}}},
    })
    curves = quality.plot_curves(data)
    assert list(curves) == ["1 link", quality.FASHION_LABEL], "the weak arm has no FID yet, the defaults do"
    fashion = curves[quality.FASHION_LABEL]
    assert [p["arm"] for p in fashion["arms"]] == ["fashion-centre-swap"]
    assert fashion["arms"][0]["fid_change"] == pytest.approx(0.6)
    assert fashion["vanilla"] == {"locality": 0.45, "recall": 0.07}
    data["arms"]["fashion-centre-swap-weak"]["fid"] = 49.0
    points = quality.plot_curves(data)[quality.FASHION_LABEL]["arms"]
    assert [p["arm"] for p in points] == ["fashion-centre-swap", "fashion-centre-swap-weak"], "by locality"
    assert quality.tradeoff_points(data).keys() == {1}, "the verdict's curves stay toyfaces' sweep"


def test_quality_plot_is_drawn_from_a_partial_json(lab, tmp_path):
    pytest.importorskip("matplotlib", reason='the plot needs pip install "linkgan[experiments]"')
    import quality
    from PIL import Image

    path = quality.draw_tradeoff(partial_quality_json(), tmp_path / "plot.png")
    assert Image.open(path).size[0] > 600
    assert quality.draw_tradeoff({}, tmp_path / "none.png") is None

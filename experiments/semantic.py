"""Semantic links: regions found per generated image by the built-in segmenter.

Two datasets, each from a vanilla checkpoint fine-tuned for the same kimg with and without links:
  scenes    sky and building links (64 axes each), in several arms (SCENES_ARMS: mask mode and
            regularizer weights), baseline: a vanilla fine-tune of the same base with the arm's
            other train options (vanilla_for)
  toyfaces  a mouth link (64 axes), baseline: the vanilla fine-tune of experiments/regularizer.py
It trains the segmenters when missing (`linkgan segmenter train`), reports their held-out
mIoU, measures masked MSE (mse1k, per-image masks, union mode) for LinkGAN and for the
baseline on the same partition, writes edit grids to docs/images/, the numbers to
docs/results/semantic.json and the tables to stdout. Finished steps are skipped and
interrupted runs resume, so the script can be re-run.

Usage:
  python experiments/semantic.py --scenes-base runs/scenes --scenes-data scenes32.zip \\
      --faces-base runs/toy32 --faces-data toyfaces32.zip --faces-plain runs/reg/plain --out runs/semantic
  # scenes arms only, their numbers in docs/results/semantic-r1.json:
  python experiments/semantic.py --scenes-base runs/scenes --scenes-data scenes32.zip --datasets scenes \\
      --tag r1 --scenes-arms shared-mid-ramp-margin12-area-bw2-g0.1 --fid fid2k --skip-overhead
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import yaml
from lab import edit_figure, fid, finetune, measure, mse_table, overhead, overhead_table

from linkgan.checkpoint import list_checkpoints, load_checkpoint
from linkgan.segment import evaluate_segmenter, load_segmenter, train_segmenter


def semantic_link(name: str, classes: list[str], segmenter: Path, axes: int = 64, mask_mode: str = "union",
                  margin: float = 0.0, weight: float = 1.0) -> dict:
    region = {"semantic": classes, "segmenter": str(segmenter.absolute())}
    if mask_mode != "union":
        region["mask_mode"] = mask_mode
    if margin:
        region["margin"] = margin
    link = {"name": name, "region": region, "axes": axes}
    if weight != 1.0:
        link["weight"] = weight
    return link


def scenes_links(options: dict, segmenter: Path) -> list[dict]:
    """The sky and building links of a scenes arm. ``options``: mask_mode, and optionally axes,
    margin and weight, each one number or one per link name."""
    def per_link(key: str, link: str, default):
        value = options.get(key, default)
        return value.get(link, default) if isinstance(value, dict) else value

    return [semantic_link(link, [link], segmenter, axes=per_link("axes", link, 64), mask_mode=options["mask_mode"],
                          margin=per_link("margin", link, 0.0), weight=per_link("weight", link, 1.0))
            for link in ("sky", "building")]


def vanilla_for(overrides: dict, kimg: float) -> tuple[str, dict]:
    """The vanilla fine-tune an arm is compared with: its run name and train options, the
    arm's own options other than the link_* ones and the seed (a seed replicate is compared
    with the same vanilla). ``kimg`` is the default length; "plain" is the default run."""
    options = {k: v for k, v in overrides.items() if not k.startswith("link_") and k not in ("kimg", "seed")}
    unnamed = set(options) - {"ema_kimg", "ema_rampup", "r1_gamma"}
    if unnamed:
        raise ValueError(f"no vanilla run name for the train options {sorted(unnamed)}; add them to vanilla_for")
    name = "plain"
    if overrides.get("kimg", kimg) != kimg:
        name += f"{overrides['kimg']:g}"
    if "ema_kimg" in options:
        name += f"-ema{options['ema_kimg']:g}"
    if "r1_gamma" in options:
        name += f"-g{options['r1_gamma']:g}"
    return name, options


def segmenter_for(data: str, out: Path) -> tuple[Path, dict]:
    """The built-in segmenter of a dataset (trained when missing) and its held-out scores."""
    if not out.exists():
        train_segmenter(data, out)
    scores = evaluate_segmenter(load_segmenter(out), data, split="val")
    return out, scores


def newest(run: str) -> str:
    return str(list_checkpoints(run)[-1]) if Path(run).is_dir() else run


# Scenes arms: name -> (region options, train option overrides). docs/results/semantic.md says
# what each did: the defaults collapse the scenes model, the weak shared arm does not. A margin
# or a link weight may be one number or one per link; an arm with other train options than
# the link_* ones (kimg, EMA) is compared with a vanilla fine-tune with those options
# (runs/semantic/scenes-<vanilla_for's name>).
SHARED, MID, MID_RAMP = {"mask_mode": "shared"}, {"link_lambda_in": 3.0, "link_lambda_out": 10.0}, {"link_ramp_kimg": 5.0}
STRONG, MARGIN12 = {"link_lambda_in": 5.0, "link_lambda_out": 15.0}, {"sky": 0.03, "building": 0.06}
EMA3 = {"ema_kimg": 3.0, "ema_rampup": None}  # G_ema averages the last few kimg, not the last one
# Axes in proportion to the region's share of the pixels (the paper's advice): the sky is 50%
# of a scenes image, the building 12% (of 512 axes: 256 and 64).
AREA_AXES = {"sky": 256, "building": 64}
SCENES_ARMS = {
    "union": ({"mask_mode": "union"}, {}),
    "union-lambda_out10": ({"mask_mode": "union"}, {"link_lambda_out": 10.0}),
    "shared": (SHARED, {}),
    "shared-weak": (SHARED, {"link_lambda_in": 1.0, "link_lambda_out": 3.0}),
    "shared-mid-ramp": (SHARED, {**MID, **MID_RAMP}),
    "shared-sep-i2": (SHARED, {"link_optimizer": "separate", "link_interval": 2, "link_batch": 8}),
    "shared-swap-mid": (SHARED, {**MID, "link_perturb": "swap"}),
    "shared-mid-ramp-margin": ({**SHARED, "margin": 0.03}, {**MID, **MID_RAMP}),
    "shared-mid-ramp-margin2": ({**SHARED, "margin": 0.06}, {**MID, **MID_RAMP}),
    "shared-mid-ramp-margin2-30": ({**SHARED, "margin": 0.06}, {**MID, **MID_RAMP, "kimg": 30.0}),
    "shared-mid-ramp-margin12": ({**SHARED, "margin": {"sky": 0.03, "building": 0.06}}, {**MID, **MID_RAMP}),
    "shared-mid-ramp-margin02": ({**SHARED, "margin": {"sky": 0.0, "building": 0.06}}, {**MID, **MID_RAMP}),
    "shared-mid-ramp-margin12-5": ({**SHARED, "margin": MARGIN12}, {**STRONG, **MID_RAMP}),
    "shared-mid-ramp-margin12-5-ema3": ({**SHARED, "margin": MARGIN12}, {**STRONG, **MID_RAMP, **EMA3}),
    "shared-mid-ramp-margin12-5-bw15": ({**SHARED, "margin": MARGIN12, "weight": {"building": 1.5}},
                                        {**STRONG, **MID_RAMP}),
    "shared-mid-ramp-margin12-area": ({**SHARED, "margin": MARGIN12, "axes": AREA_AXES}, {**MID, **MID_RAMP}),
    "shared-mid-ramp-margin12-5-area": ({**SHARED, "margin": MARGIN12, "axes": AREA_AXES}, {**STRONG, **MID_RAMP}),
    "shared-mid-ramp-margin12-5-area-bw15": ({**SHARED, "margin": MARGIN12, "axes": AREA_AXES,
                                             "weight": {"building": 1.5}}, {**STRONG, **MID_RAMP}),
    "shared-mid-ramp-margin12-area-bw2": ({**SHARED, "margin": MARGIN12, "axes": AREA_AXES, "weight": {"building": 2.0}},
                                          {**MID, **MID_RAMP}),
    "shared-mid-ramp-margin12-area-bw3": ({**SHARED, "margin": MARGIN12, "axes": AREA_AXES, "weight": {"building": 3.0}},
                                          {**MID, **MID_RAMP}),
    "shared-mid-ramp-margin13-area": ({**SHARED, "margin": {"sky": 0.03, "building": 0.09}, "axes": AREA_AXES},
                                      {**MID, **MID_RAMP}),
    "shared-mid-ramp-margin12-area-bw125": ({**SHARED, "margin": MARGIN12, "axes": AREA_AXES,
                                             "weight": {"building": 1.25}}, {**MID, **MID_RAMP}),
    # a stronger R1 penalty on D (the base's is StyleGAN2-ADA's heuristic, 0.0064 at 32 px and batch 32):
    # the collapse starts with D winning (its loss falls to 0.02-0.2), and a smoother D keeps pulling
    # G towards the data. Each is compared with a vanilla fine-tune with the same gamma.
    "shared-mid-ramp-margin12-area-g0.1": ({**SHARED, "margin": MARGIN12, "axes": AREA_AXES},
                                           {**MID, **MID_RAMP, "r1_gamma": 0.1}),
    "shared-mid-ramp-margin12-area-bw2-g0.1": ({**SHARED, "margin": MARGIN12, "axes": AREA_AXES,
                                               "weight": {"building": 2.0}}, {**MID, **MID_RAMP, "r1_gamma": 0.1}),
    "shared-mid-ramp-margin12-area-bw2-g1": ({**SHARED, "margin": MARGIN12, "axes": AREA_AXES,
                                             "weight": {"building": 2.0}}, {**MID, **MID_RAMP, "r1_gamma": 1.0}),
    # arms repeated with another training seed: how much an arm's numbers and samples vary
    "shared-mid-ramp-margin12-5-seed1": ({**SHARED, "margin": MARGIN12}, {**STRONG, **MID_RAMP, "seed": 1}),
    "shared-mid-ramp-margin12-area-seed1": ({**SHARED, "margin": MARGIN12, "axes": AREA_AXES},
                                            {**MID, **MID_RAMP, "seed": 1}),
}
# Arms whose sky and building edit grids docs/results/semantic.md shows besides --figures-arm's.
EXTRA_FIGURES = {"shared-mid-ramp-margin2": "margin2", "shared-mid-ramp-margin12-area": "area",
                 "shared-mid-ramp-margin12-area-g0.1": "area-g0.1",
                 "shared-mid-ramp-margin12-area-bw2-g0.1": "area-bw2-g0.1"}


def arm(results: dict, key: str, base: str, data: str, out: Path, links: list[dict], plain: Path, kimg: float,
        docs: Path, figures: list[tuple[str, bool]], overrides: dict | None = None,
        baseline: dict | None = None, fid_metric: str = "", remeasure: bool = False,
        prefix: str = "semantic") -> None:
    """Fine-tunes with ``links`` (and train option ``overrides``), measures it and the vanilla
    fine-tune ``plain`` (unless ``baseline`` is given), draws edit grids (``figures``: (link,
    complement) pairs; none for an empty list) named ``prefix``-... Numbers already in
    ``results`` are kept unless ``remeasure``."""
    run = finetune(base, data, out, links, kimg, overrides or {})
    if remeasure or key not in results["linkgan"]:
        results["linkgan"][key] = measure(run, links, 1000)
    if remeasure or key not in results["baseline"]:
        results["baseline"][key] = baseline or measure(plain, links, 1000)
    if fid_metric and (remeasure or key not in results.get(fid_metric, {})):
        results.setdefault(fid_metric, {})[key] = fid(run, data, fid_metric)
    if not figures:
        return
    key = key.split("/")[0]
    for link, complement in figures:
        suffix = "-complement" if complement else ""
        edit_figure(run, links, link, docs / "images" / f"{prefix}-{key}-{link}{suffix}.png", complement=complement)
    edit_figure(plain, links, figures[0][0], docs / "images" / f"{prefix}-{key}-{figures[0][0]}-vanilla.png")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scenes-base", required=True)
    p.add_argument("--scenes-data", required=True)
    p.add_argument("--faces-base", help="vanilla toyfaces checkpoint (needed with --datasets toyfaces)")
    p.add_argument("--faces-data", help="its dataset (needed with --datasets toyfaces)")
    p.add_argument("--faces-plain", help="vanilla fine-tune of --faces-base for --kimg")
    p.add_argument("--kimg", type=float, default=20.0)
    p.add_argument("--out", default="runs/semantic")
    p.add_argument("--docs", default="docs")
    p.add_argument("--datasets", default="scenes,toyfaces", help="which arms to run")
    p.add_argument("--skip-overhead", action="store_true", help="do not time the segmenter's cost")
    p.add_argument("--scenes-arms", default=",".join(SCENES_ARMS), help="which scenes arms to run")
    p.add_argument("--figures-arm", default="shared-weak", help="the scenes arm drawn in docs/images")
    p.add_argument("--samples-arms", default=None,
                   help="the scenes arms in the sample comparison figure (default: every arm run)")
    p.add_argument("--samples-figure", default=None,
                   help="its file name in docs/images (default: semantic[-TAG]-scenes-samples.png)")
    p.add_argument("--remeasure", action="store_true",
                   help="measure finished arms again (by default numbers already in semantic.json are kept)")
    p.add_argument("--fid", default="", metavar="METRIC",
                   help="also measure this FID/KID metric of the scenes arms and plain, e.g. fid2k (metrics extra)")
    p.add_argument("--tag", default="",
                   help="name a second set of runs, e.g. from another base: its numbers go to "
                        "docs/results/semantic-TAG.json and its figures to docs/images/semantic-TAG-*.png")
    args = p.parse_args()
    out, docs = Path(args.out), Path(args.docs)
    out.mkdir(parents=True, exist_ok=True)
    prefix = f"semantic-{args.tag}" if args.tag else "semantic"
    results_path = docs / "results" / f"{prefix}.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    results.setdefault("linkgan", {})
    results.setdefault("baseline", {})
    faces = "toyfaces" in args.datasets
    if faces and not (args.faces_base and args.faces_data and args.faces_plain):
        p.error("--datasets toyfaces needs --faces-base, --faces-data and --faces-plain")
    scenes_base = newest(args.scenes_base)
    # earlier runs' setup is kept (a run may measure a few arms, or only one dataset)
    results["setup"] = {"scenes_arms": {}, **results.get("setup", {}), "kimg": args.kimg, "scenes_base": scenes_base,
                        "scenes_base_kimg": load_checkpoint(scenes_base).state.get("kimg")}

    def save():
        results_path.parent.mkdir(parents=True, exist_ok=True)
        results_path.write_text(json.dumps(results, indent=2))

    seg_scenes, results.setdefault("segmenters", {})["scenes"] = segmenter_for(
        args.scenes_data, out / "seg-scenes.safetensors")
    save()

    if faces:
        faces_base = newest(args.faces_base)
        results["setup"].update(faces_base=faces_base, faces_base_kimg=load_checkpoint(faces_base).state.get("kimg"))
        seg_faces, results["segmenters"]["toyfaces"] = segmenter_for(args.faces_data,
                                                                     out / "seg-toyfaces.safetensors")
        faces_links = [semantic_link("mouth", ["mouth"], seg_faces)]
        arm(results, "toyfaces", faces_base, args.faces_data, out / "faces-mouth", faces_links,
            Path(args.faces_plain), args.kimg, docs, [("mouth", False)], remeasure=args.remeasure, prefix=prefix)
        save()
    if "scenes" not in args.datasets:
        return
    vanillas: dict[str, Path] = {}  # vanilla run name -> its run, fine-tuned when an arm first needs it

    def vanilla_run(name: str, kimg: float, options: dict) -> Path:
        if name not in vanillas:
            vanillas[name] = finetune(scenes_base, args.scenes_data, out / f"scenes-{name}", [], kimg, options)
            key = f"scenes/{name}"
            if args.fid and (args.remeasure or key not in results.get(args.fid, {})):
                results.setdefault(args.fid, {})[key] = fid(vanillas[name], args.scenes_data, args.fid)
                save()
        return vanillas[name]

    baselines = {}  # (vanilla run name, partition) -> the vanilla's masked MSE on that partition
    for name in [a for a in args.scenes_arms.split(",") if a]:
        region, overrides = SCENES_ARMS[name]
        mode, links = region["mask_mode"], scenes_links(region, seg_scenes)
        kimg = overrides.get("kimg", args.kimg)
        vanilla, vanilla_overrides = vanilla_for(overrides, args.kimg)
        plain = vanilla_run(vanilla, kimg, vanilla_overrides)
        # what the vanilla numbers depend on: the run, the mask mode and the axes
        partition = (vanilla, mode, tuple(link["axes"] for link in links))
        figures = [("sky", False), ("building", False), ("sky", True)] if name == args.figures_arm else []
        arm(results, f"scenes/{name}", scenes_base, args.scenes_data, out / f"scenes-{name}", links, plain,
            kimg, docs, figures, overrides, baselines.get(partition), args.fid, args.remeasure, prefix)
        baselines[partition] = results["baseline"][f"scenes/{name}"]
        if name in EXTRA_FIGURES:  # both links' edit grids, named for the arm
            for link in ("sky", "building"):
                edit_figure(out / f"scenes-{name}", links, link,
                            docs / "images" / f"{prefix}-scenes-{EXTRA_FIGURES[name]}-{link}.png")
        results["setup"]["scenes_arms"][name] = {**region, "overrides": overrides}
        save()
    shown = args.samples_arms if args.samples_arms is not None else args.scenes_arms
    sample_figure(list(vanillas.values()) + [out / f"scenes-{a}" for a in shown.split(",") if a],
                  docs / "images" / (args.samples_figure or f"{prefix}-scenes-samples.png"))
    if not args.skip_overhead:
        semantic_links = [semantic_link("sky", ["sky"], seg_scenes),
                          semantic_link("building", ["building"], seg_scenes)]
        boxes = [{"name": "sky", "region": {"box": [0, 0, 1, 0.4]}, "axes": 64},
                 {"name": "building", "region": {"box": [0.2, 0.45, 0.8, 0.8]}, "axes": 64}]
        results["overhead"] = overhead(scenes_base, args.scenes_data, arms=(
            ("vanilla", [], "all"), ("2 box links", boxes, "all"), ("2 semantic links", semantic_links, "all")))
        save()
    print(markdown_tables(results))


def sample_figure(runs: list[Path], path: Path, rows: int = 4) -> Path:
    """The first ``rows`` rows of the runs' newest sample grids side by side (the same seeds in every grid)."""
    from PIL import Image

    grids = []
    for run in runs:
        grid = Image.open(run / "samples-latest.png").convert("RGB")
        cell = yaml.safe_load((run / "config.yaml").read_text())["model"]["resolution"]
        grids.append(grid.crop((0, 0, grid.width, min(grid.height, rows * cell))))
    gap = 8
    canvas = Image.new("RGB", (sum(g.width for g in grids) + gap * (len(grids) - 1), max(g.height for g in grids)),
                       "white")
    x = 0
    for g in grids:
        canvas.paste(g, (x, 0))
        x += g.width + gap
    canvas.save(path, optimize=True)
    return path


def markdown_tables(results: dict) -> str:
    lines = ["| data | segmenter val mIoU | per-class IoU |", "|---|---|---|"]
    for data, s in results.get("segmenters", {}).items():
        per = ", ".join(f"{k} {v:.3f}" for k, v in s["per_class_iou"].items() if v is not None)
        lines.append(f"| {data} | **{s['miou']:.3f}** | {per} |")
    lines += [""] + mse_table(results, "data")
    if "overhead" in results:
        lines += [""] + overhead_table(results["overhead"], "training (scenes, interval 8)")
    return "\n".join(lines)


if __name__ == "__main__":
    main()

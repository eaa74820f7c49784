"""Semantic links: regions found per generated image by the built-in segmenter.

Two datasets, each from a vanilla checkpoint fine-tuned for the same kimg with and without links:
  scenes    sky and building links (64 axes each), in several arms (experiments/arms/semantic-scenes.yaml:
            mask mode, axes, margins, link weights and train options, and a note on what each tests),
            baseline: a vanilla fine-tune of the same base with the arm's other train options (vanilla_for)
  toyfaces  a mouth link (64 axes), baseline: the vanilla fine-tune of experiments/regularizer.py
It trains the segmenters when missing (`linkgan segmenter train`), reports their held-out
mIoU, measures masked MSE (mse1k, per-image masks, union mode) for LinkGAN and for the
baseline on the same partition, writes edit grids to docs/images/, the numbers to
docs/results/semantic.json and the tables to stdout, and rewrites docs/results/semantic.md from
semantic.json, semantic-r1.json, scenes-floor.json and the page's template,
docs/results/semantic.template.md (--report-only does only that). Finished steps are skipped and
interrupted runs resume, so the script can be re-run.

Usage:
  python experiments/semantic.py --scenes-base runs/scenes --scenes-data scenes32.zip \\
      --faces-base runs/toy32 --faces-data toyfaces32.zip --faces-plain runs/reg/plain --out runs/semantic
  # scenes arms only, their numbers in docs/results/semantic-r1.json:
  python experiments/semantic.py --scenes-base runs/scenes --scenes-data scenes32.zip --datasets scenes \\
      --tag r1 --scenes-arms shared-mid-ramp-margin12-area-bw2-g0.1 --fid fid2k --skip-overhead
  python experiments/semantic.py --report-only   # rewrite docs/results/semantic.md from its JSON
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import yaml
from lab import (
    Cells,
    edit_figure,
    fid,
    finetune,
    load_arms,
    measure,
    mse_cells,
    mse_table,
    overhead,
    overhead_table,
    per_link,
    write_page,
)

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
    def for_link(key: str, link: str, default):
        value = options.get(key, default)
        return value.get(link, default) if isinstance(value, dict) else value

    return [semantic_link(link, [link], segmenter, axes=for_link("axes", link, 64), mask_mode=options["mask_mode"],
                          margin=for_link("margin", link, 0.0), weight=for_link("weight", link, 1.0))
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


# Scenes arms: name -> {note, region: the options of scenes_links, overrides: train options}.
# docs/results/semantic.md says what each did: the defaults collapse the scenes model, the weak
# shared arm does not. An arm with other train options than the link_* ones (kimg, EMA, R1 gamma) is
# compared with a vanilla fine-tune with those options (runs/semantic/scenes-<vanilla_for's name>).
SCENES_ARMS = load_arms("semantic-scenes")
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


def main(argv: list[str] | None = None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scenes-base", help="vanilla scenes checkpoint or run (needed unless --report-only)")
    p.add_argument("--scenes-data", help="its dataset (needed unless --report-only)")
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
    p.add_argument("--report-only", action="store_true",
                   help="only rewrite DOCS/results/semantic.md from DOCS/results/semantic.json, semantic-r1.json "
                        "and scenes-floor.json")
    args = p.parse_args(argv)
    if args.report_only:
        try:
            print(report(Path(args.docs)))
        except (OSError, ValueError) as e:
            raise SystemExit(f"semantic.md not written: {e}") from None
        return
    if not (args.scenes_base and args.scenes_data):
        p.error("--scenes-base and --scenes-data are needed (or --report-only)")
    unknown = [a for a in args.scenes_arms.split(",") if a and a not in SCENES_ARMS]
    if unknown:
        p.error(f"unknown scenes arms {unknown}; experiments/arms/semantic-scenes.yaml has {', '.join(SCENES_ARMS)}")
    experiment(args, p)
    try:
        print(report(Path(args.docs)))
    except (OSError, ValueError) as e:  # e.g. a first run, before the R1 arms and scenes-floor.json exist
        print(f"semantic.md not rewritten: {e}")


def experiment(args, p: argparse.ArgumentParser) -> None:
    """Trains and measures what main's arguments ask for, into semantic[-TAG].json."""
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
        region, overrides = SCENES_ARMS[name]["region"], SCENES_ARMS[name]["overrides"]
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


def locality_cells(r: dict, baseline: dict | None) -> Cells:
    """A link's locality and how many times the vanilla fine-tune's it is, as one cell: "0.066 (6.1×)"."""
    return Cells(sep=" ", locality=f"{r['locality']:.3f}",
                 ratio=f"({(baseline or {}).get('locality', float('nan')) / r['locality']:.1f}×)")


def page_values(results: dict, r1: dict, floor: dict) -> dict:
    """The fields of docs/results/semantic.template.md: the sections of semantic.json (segmenters,
    linkgan, baseline, fid2k, overhead), and per arm and link (the arm as its key in the JSON, e.g.
    "scenes/shared-weak"): mse (lab.mse_cells), loc (locality_cells) and ratio (vanilla's locality / the
    arm's); seg_classes (data -> its per-class IoU as text); grad (link_gradients' runs); r1 (all of
    semantic-r1.json), r1_loc and r1_ratio (as loc and ratio); floor (scenes-floor.json)."""
    def ratios(res: dict) -> dict:
        return per_link(res, lambda r, b: (b or {}).get("locality", float("nan")) / r["locality"])

    return {**results, "mse": per_link(results, mse_cells), "loc": per_link(results, locality_cells),
            "ratio": ratios(results),
            "seg_classes": {data: ", ".join(f"{k} {v:.3f}" for k, v in s["per_class_iou"].items() if v is not None)
                            for data, s in results.get("segmenters", {}).items()},
            "grad": results.get("link_gradients", {}).get("runs", {}),
            "r1": r1, "r1_loc": per_link(r1, locality_cells), "r1_ratio": ratios(r1),
            "floor": floor}


def report(docs: Path) -> Path:
    """Writes DOCS/results/semantic.md from semantic.json, semantic-r1.json (the R1 round, --tag r1),
    scenes-floor.json (experiments/scenes_floor.py) and the page's template."""
    sources = ["semantic.json", "semantic-r1.json", "scenes-floor.json"]
    results, r1, floor = (json.loads((docs / "results" / name).read_text()) for name in sources)
    return write_page("semantic", page_values(results, r1, floor), docs, "python experiments/semantic.py --report-only",
                      sources)


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

"""The 3D results page: a tri-plane generator on toyheads, fine-tuned with an image-space and a 3D-box link.

Steps (finished steps are skipped and interrupted runs resume, so the script can be re-run):
  1. a toyheads archive (linkgan dataset toyheads)
  2. a vanilla 3D generator trained from scratch (--base-kimg)
  3. fine-tunes of it for --kimg each (the arms of experiments/arms/threed.yaml): plain (the
     baseline), image (a fixed image box around the nose, the paper's method on rendered views),
     box3d (a world box around the nose, beyond the paper) and box3d-weak (the same with a tenth
     of the weights)
  4. masked MSE of RGB and depth (linkgan.metrics.masked_mse_metric) of every arm on both
     partitions, from the training yaws (-30, 0, 30) and from views never trained on (yaw
     +-55, outside toyheads' +-35), multi-view sample renders and edit grids (RGB + depth)
It writes the numbers to 3d.json (docs/results/3d.json with --docs), the figures, and prints the
masked-MSE tables of docs/results/3d.md; with --docs it also rewrites that page from 3d.json and
the page's template, docs/results/3d.template.md (--report-only prints the tables again from the
JSON and, with --docs, rewrites the page).

Usage (about 80 minutes on 2 CPU cores with the defaults; --quick is a one-minute smoke run):
  python experiments/threed.py --out runs/threed --docs docs
  python experiments/threed.py --docs docs --report-only   # rewrite docs/results/3d.md from its JSON
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import torch
from lab import Cells, finished, load_arms, run, write_page

from linkgan.checkpoint import list_checkpoints
from linkgan.config import ModelConfig, RunConfig, TrainConfig, flat_options
from linkgan.data.toyheads import make_toyheads
from linkgan.images import make_grid, save_png
from linkgan.metrics import masked_mse_metric
from linkgan.partition import LatentPartition
from linkgan.pipeline import LinkGANPipeline
from linkgan.views import depth_to_image

# arm -> {note, links, overrides: its regularizer weights}; the defaults are the 2D ones (lambda_in 10, lambda_out 30).
ARMS = load_arms("threed")
# Every arm is measured on both noses: the image arm's image box and the box3d arm's world box.
(NOSE_IMAGE,), (NOSE_BOX3D,) = ARMS["image"]["links"], ARMS["box3d"]["links"]
TRAIN_YAWS = (-30.0, 0.0, 30.0)
UNSEEN_YAWS = (-55.0, 55.0)


def model_config(quick: bool) -> ModelConfig:
    if quick:
        return ModelConfig.from_options(kind="3d", resolution=16, z_dim=32, w_dim=64, mapping_layers=2,
                                        channel_base=256, channel_max=32, plane_resolution=16, plane_channels=8,
                                        decoder_hidden=16, feature_channels=8, sr_channels=16, coarse_samples=8,
                                        fine_samples=8)
    return ModelConfig.from_options(kind="3d", resolution=32, z_dim=128, w_dim=128, mapping_layers=4,
                                    channel_base=1024, channel_max=64, plane_resolution=32, plane_channels=16,
                                    decoder_hidden=32, feature_channels=16, sr_channels=32, coarse_samples=16,
                                    fine_samples=16)


def multiview_figure(run_dir: Path, path: Path, seeds=range(6), yaws=(-55, -30, 0, 30, 55)) -> Path:
    """Rows: seeds; columns: RGB from each yaw, then depth from each yaw."""
    pipe = LinkGANPipeline.load(run_dir)
    r = pipe.render_views(pipe.latents(list(seeds)), yaws)
    cfg = pipe.G.config
    cells = []
    for i in range(len(seeds)):
        depth = depth_to_image(r["depth"][i], r["opacity"][i], cfg.near, cfg.far, pipe.resolution)
        cells.append(torch.cat([r["image"][i], depth]))
    return save_png(make_grid(torch.cat(cells), ncols=2 * len(yaws), pad=1), path, upscale=4)


def arms_figure(out: Path, path: Path, seeds=range(8)) -> Path:
    """Rows: the arms (plain, image, box3d); columns: the same seeds from the front, so that the
    arms' variety and quality can be compared."""
    rows = []
    for arm in ARMS:
        pipe = LinkGANPipeline.load(out / arm)
        rows.append(pipe.render_views(pipe.latents(list(seeds)), (0,))["image"][:, 0])
    return save_png(make_grid(torch.cat(rows), ncols=len(seeds), pad=1), path, upscale=4)


def measure(run_dir: Path, links: list[dict], n: int, yaws) -> dict:
    pipe = LinkGANPipeline.load(run_dir)
    part = LatentPartition.from_specs(links, pipe.G.w_dim, pipe.resolution)
    return masked_mse_metric(pipe.G, part, n=n, batch=25, yaws=yaws, progress=True)


def row_cells(m: dict, plain: dict) -> Cells:
    """One arm's row cells on one partition and set of views: RGB mse_in, mse_out, locality and how many
    times lower that is than the vanilla arm's (``plain``), then the same of depth."""
    d, pd = m["depth"], plain["depth"]
    return Cells(rgb_mse_in=f"{m['mse_in']:.5f}", rgb_mse_out=f"{m['mse_out']:.5f}",
                 rgb_locality=f"{m['locality']:.3f}", rgb_vs_vanilla=f"{plain['locality'] / m['locality']:.1f}",
                 depth_mse_in=f"{d['mse_in']:.5f}", depth_mse_out=f"{d['mse_out']:.5f}",
                 depth_locality=f"{d['locality']:.3f}", depth_vs_vanilla=f"{pd['locality'] / d['locality']:.1f}")


def rows(results: dict) -> dict:
    """partition -> views -> arm -> row_cells, for every arm measured in ``results`` (3d.json)."""
    mse = results.get("mse", {})
    if "plain" not in mse:
        raise ValueError("3d.json has no masked MSE of the plain arm, the baseline of every table")
    return {part: {views: {arm: row_cells(mse[arm][part][views], mse["plain"][part][views]) for arm in mse}
                   for views in mse["plain"][part]} for part in mse["plain"]}


def tables(results: dict) -> str:
    """Markdown tables of masked MSE: per partition and set of views, each arm's RGB and depth numbers,
    and how many times more local than the vanilla arm ("plain") on the same partition and views."""
    lines, cells = [], rows(results)
    for part, title in (("image", "image-space nose box"), ("box3d", "3D nose box")):
        for views, vtitle in (("train_yaws", "training yaws -30, 0, 30"), ("unseen_yaws", "unseen yaws -55, 55")):
            lines += [f"**Partition: {title}; views: {vtitle}**", "",
                      "| arm | RGB mse_in | RGB mse_out | RGB locality | × vanilla | depth mse_in | depth mse_out "
                      "| depth locality | × vanilla |", "|---|---|---|---|---|---|---|---|---|"]
            lines += [f"| {arm} | {row} |" for arm, row in cells[part][views].items()]
            lines.append("")
    return "\n".join(lines)


def report(docs: Path) -> Path:
    """Writes DOCS/results/3d.md from DOCS/results/3d.json and the page's template: its fields are the
    sections of 3d.json (config, timings, mse) and rows (partition -> views -> arm -> row_cells)."""
    results = json.loads((docs / "results" / "3d.json").read_text())
    return write_page("3d", {**results, "rows": rows(results)}, docs,
                      "python experiments/threed.py --docs docs --report-only", ["3d.json"])


def main(argv: list[str] | None = None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="runs/threed")
    p.add_argument("--docs", default="", help="write docs/results/3d.{json,md} and figures under this folder")
    p.add_argument("--n-data", type=int, default=4000)
    p.add_argument("--base-kimg", type=float, default=60.0)
    p.add_argument("--kimg", type=float, default=10.0, help="fine-tuning length of every arm")
    p.add_argument("--n", type=int, default=200, help="samples of the masked MSE")
    p.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run of about a minute")
    p.add_argument("--report-only", action="store_true",
                   help="print the tables of an earlier run's 3d.json; with --docs, rewrite DOCS/results/3d.md")
    args = p.parse_args(argv)
    if args.report_only:
        path = Path(args.docs) / "results" / "3d.json" if args.docs else Path(args.out) / "3d.json"
        try:
            print(tables(json.loads(path.read_text())))
            if args.docs:
                print(report(Path(args.docs)))
        except (OSError, ValueError) as e:
            raise SystemExit(f"3d.md not written: {e}") from None
        return
    if args.quick:
        args.n_data, args.base_kimg, args.kimg, args.n = 32, 0.064, 0.032, 8
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model = model_config(args.quick)
    data = out / f"toyheads{model.resolution}.zip"
    if not data.exists():
        make_toyheads(data, n=args.n_data, res=model.resolution, workers=2)
    common = dict(data=str(data), batch=16 if not args.quick else 4, workers=1, xflip=True, r1_gamma=0.1,
                  tick_kimg=1.0 if not args.quick else 0.016, snapshot_kimg=10.0, grid_size=16,
                  keep_ckpts=2)
    results_path = out / "3d.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    results["config"] = {"model": flat_options(dataclasses.asdict(model), ModelConfig), "base_kimg": args.base_kimg,
                         "kimg": args.kimg, "n": args.n,
                         "n_data": args.n_data, "arms": {name: arm["overrides"] for name, arm in ARMS.items()}}
    timings = results.setdefault("timings", {})
    t0 = time.time()
    if not finished(out / "base", args.base_kimg):
        run(RunConfig(model=model, train=TrainConfig(out=str(out / "base"), kimg=args.base_kimg, **common)),
            out / "base")
        timings["base_s"] = time.time() - t0
    base_ckpt = str(list_checkpoints(out / "base")[-1])
    for arm, spec in ARMS.items():
        if finished(out / arm, args.kimg):
            continue
        t0 = time.time()
        cfg = RunConfig(model=model, train=TrainConfig.from_options(out=str(out / arm), kimg=args.kimg, init=base_ckpt,
                                                                     **spec["overrides"], **common),
                        links=[dict(link) for link in spec["links"]])
        run(cfg, out / arm)
        timings[f"{arm}_s"] = time.time() - t0
    mse = results.setdefault("mse", {})
    for arm in ARMS:  # numbers already in 3d.json are kept
        for part_name, links in (("image", [NOSE_IMAGE]), ("box3d", [NOSE_BOX3D])):
            for views_name, yaws in (("train_yaws", TRAIN_YAWS), ("unseen_yaws", UNSEEN_YAWS)):
                if views_name not in mse.get(arm, {}).get(part_name, {}):
                    m = measure(out / arm, links, args.n, yaws)["nose"]
                    mse.setdefault(arm, {}).setdefault(part_name, {})[views_name] = m
                    results_path.write_text(json.dumps(results, indent=2) + "\n")
    figures = Path(args.docs) / "images" if args.docs else out / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    multiview_figure(out / "base", figures / "3d-samples.png")
    arms_figure(out, figures / "3d-samples-arms.png")
    for arm in ARMS:
        pipe = LinkGANPipeline.load(out / arm)
        spec = ARMS[arm]["links"] or [NOSE_BOX3D]
        pipe.links = LatentPartition.from_specs(spec, pipe.G.w_dim, pipe.resolution)
        pipe.save_edit_grid(range(2), "nose", figures / f"3d-edit-{arm}.png", n=4, yaws=(-55, 0, 55))
    if args.docs:
        results_dir = Path(args.docs) / "results"
        results_dir.mkdir(parents=True, exist_ok=True)
        (results_dir / "3d.json").write_text(json.dumps(results, indent=2) + "\n")
    print(tables(results))
    if args.docs:
        try:
            print(report(Path(args.docs)))
        except ValueError as e:
            print(f"3d.md not rewritten: {e}")


if __name__ == "__main__":
    main()

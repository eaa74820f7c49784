"""The regularizer's results page: fine-tune one vanilla checkpoint with and without links.

Every arm starts from the same vanilla checkpoint and trains the same number of kimg:
  plain        vanilla fine-tune (the baseline)
  eyes         one link, 64 axes
  eyes_mouth   two links, 64 axes each
  corners      four corner boxes, 128 axes each
Then it measures masked MSE (mse1k) of each linked arm on its partition and of the plain
arm on the same partition, writes edit grids to docs/images/, the numbers to
docs/results/regularizer.json, and a Markdown table to docs/results/regularizer.md.
Finished arms are skipped and interrupted ones resume, so the script can be re-run.

Usage:
  python experiments/regularizer.py --base runs/toy32 --data data/toyfaces32.zip --kimg 20 --out runs/reg
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from lab import CORNERS, EYES, MOUTH, edit_figure, fid, finetune, measure, mse_table, overhead, overhead_table

from linkgan.checkpoint import list_checkpoints, load_checkpoint

# arm -> (links, train option overrides); the *_split arms time-share the sub-batch among the links.
SPLIT = {"link_samples": "split"}
ARMS = {"plain": ([], {}), "eyes": ([EYES], {}), "eyes_mouth": ([EYES, MOUTH], {}), "corners": (CORNERS, {}),
        "eyes_mouth_split": ([EYES, MOUTH], SPLIT), "corners_split": (CORNERS, SPLIT)}


















def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base", required=True, help="vanilla checkpoint or run directory")
    p.add_argument("--data", required=True)
    p.add_argument("--kimg", type=float, default=20.0)
    p.add_argument("--out", default="runs/regularizer")
    p.add_argument("--n", type=int, default=1000, help="samples for masked MSE")
    p.add_argument("--arms", default=",".join(ARMS), help="comma-separated arms; '' for none (overhead only)")
    p.add_argument("--docs", default="docs")
    p.add_argument("--set", action="append", default=[], help="train option override KEY=VALUE")
    p.add_argument("--skip-overhead", action="store_true", help="do not measure the training overhead")
    p.add_argument("--fid", default="", metavar="METRIC",
                   help="also measure this FID/KID metric of every arm and of plain, e.g. fid2k (metrics extra)")
    p.add_argument("--tag", default="", help="keep these results apart: under TAG in the JSON, and in "
                   "edit-ARM-TAG-LINK.png (e.g. --tag 30kimg with --kimg 30)")
    args = p.parse_args()
    overrides = dict(s.split("=", 1) for s in args.set)
    base = str(list_checkpoints(args.base)[-1]) if Path(args.base).is_dir() else args.base
    out, docs = Path(args.out), Path(args.docs)
    results_path = docs / "results" / "regularizer.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    section = results.setdefault(args.tag, {}) if args.tag else results
    suffix = f"-{args.tag}" if args.tag else ""
    section["setup"] = {"base": base, "kimg": args.kimg, "n": args.n, "overrides": overrides,
                        "base_kimg": load_checkpoint(base).state.get("kimg")}
    for arm in [a for a in args.arms.split(",") if a]:
        links, arm_overrides = ARMS[arm]
        run = finetune(base, args.data, out / arm, links, args.kimg, {**overrides, **arm_overrides})
        if args.fid:
            section.setdefault(args.fid, {})[arm] = fid(run, args.data, args.fid)
        if arm == "plain":
            continue
        section.setdefault("linkgan", {})[arm] = measure(run, links, args.n)
        if (out / "plain").exists():
            section.setdefault("baseline", {})[arm] = measure(out / "plain", links, args.n)
        for spec in links[:2]:
            edit_figure(run, links, spec["name"], docs / "images" / f"edit-{arm}{suffix}-{spec['name']}.png")
        if arm == "eyes" and not args.tag:
            edit_figure(run, links, "eyes", docs / "images" / "edit-eyes-complement.png", complement=True)
            edit_figure(out / "plain", links, "eyes", docs / "images" / "edit-plain-eyes.png")
        results_path.parent.mkdir(parents=True, exist_ok=True)
        results_path.write_text(json.dumps(results, indent=2))
    if not args.skip_overhead:
        results["overhead"] = overhead(base, args.data)
    results_path.write_text(json.dumps(results, indent=2))
    print(markdown_tables(section))






def markdown_tables(results: dict) -> str:
    """The masked-MSE table (LinkGAN beside the vanilla fine-tune) and the overhead table."""
    lines = mse_table(results)
    if "overhead" in results:
        lines += [""] + overhead_table(results["overhead"])
    return "\n".join(lines)


if __name__ == "__main__":
    main()

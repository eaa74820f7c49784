"""The regularizer's results page: fine-tune one vanilla checkpoint with and without links.

Every arm starts from the same vanilla checkpoint and trains the same number of kimg. The arms are
in experiments/arms/regularizer.yaml (links, train option overrides, and a note each):
  plain        vanilla fine-tune (the baseline)
  eyes         one link, 64 axes
  eyes_mouth   two links, 64 axes each
  corners      four corner boxes, 128 axes each
  *_split      eyes_mouth and corners with link_samples split
Then it measures masked MSE (mse1k) of each linked arm on its partition and of the plain
arm on the same partition, writes edit grids to docs/images/, the numbers to
docs/results/regularizer.json, and the page docs/results/regularizer.md from the JSON and the
page's template, docs/results/regularizer.template.md (--report-only only rewrites the page).
Finished arms are skipped and interrupted ones resume, so the script can be re-run.

Usage:
  python experiments/regularizer.py --base runs/toy32 --data data/toyfaces32.zip --kimg 20 --out runs/reg
  python experiments/regularizer.py --report-only   # rewrite docs/results/regularizer.md from its JSON
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from lab import (
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

ARMS = load_arms("regularizer")


def main(argv: list[str] | None = None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base", help="vanilla checkpoint or run directory (needed unless --report-only)")
    p.add_argument("--data", help="its dataset (needed unless --report-only)")
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
    p.add_argument("--report-only", action="store_true",
                   help="only rewrite DOCS/results/regularizer.md from DOCS/results/regularizer.json")
    args = p.parse_args(argv)
    if args.report_only:
        try:
            print(report(Path(args.docs)))
        except (OSError, ValueError) as e:
            raise SystemExit(f"regularizer.md not written: {e}") from None
        return
    if not (args.base and args.data):
        p.error("--base and --data are needed (or --report-only)")
    arms = [a for a in args.arms.split(",") if a]
    unknown = [a for a in arms if a not in ARMS]
    if unknown:
        p.error(f"unknown arms {unknown}; experiments/arms/regularizer.yaml has {', '.join(ARMS)}")
    overrides = dict(s.split("=", 1) for s in args.set)
    base = str(list_checkpoints(args.base)[-1]) if Path(args.base).is_dir() else args.base
    out, docs = Path(args.out), Path(args.docs)
    results_path = docs / "results" / "regularizer.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    section = results.setdefault(args.tag, {}) if args.tag else results
    suffix = f"-{args.tag}" if args.tag else ""
    section["setup"] = {"base": base, "kimg": args.kimg, "n": args.n, "overrides": overrides,
                        "base_kimg": load_checkpoint(base).state.get("kimg")}
    for arm in arms:
        links, arm_overrides = ARMS[arm]["links"], ARMS[arm]["overrides"]
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
    try:
        print(report(docs))
    except ValueError as e:  # e.g. only some arms measured so far: the page needs them all
        print(f"regularizer.md not rewritten: {e}")


def page_values(results: dict) -> dict:
    """The fields of docs/results/regularizer.template.md: the sections of regularizer.json, and
    mse (arm -> link -> lab.mse_cells), mse30 (the same of the 30kimg section), and fid_change
    and fid_change30 (arm -> its fid2k / the plain arm's - 1)."""
    values = dict(results)
    values["mse"] = per_link(results, mse_cells)
    values["mse30"] = per_link(results.get("30kimg", {}), mse_cells)
    for key, fids in (("fid_change", results.get("fid2k", {})),
                      ("fid_change30", results.get("30kimg", {}).get("fid2k", {}))):
        values[key] = {arm: v / fids["plain"] - 1 for arm, v in fids.items()} if "plain" in fids else {}
    return values


def report(docs: Path) -> Path:
    """Writes DOCS/results/regularizer.md from DOCS/results/regularizer.json and the page's template."""
    results = json.loads((docs / "results" / "regularizer.json").read_text())
    return write_page("regularizer", page_values(results), docs, "python experiments/regularizer.py --report-only",
                      ["regularizer.json"])


def markdown_tables(results: dict) -> str:
    """The masked-MSE table (LinkGAN beside the vanilla fine-tune) and the overhead table."""
    lines = mse_table(results)
    if "overhead" in results:
        lines += [""] + overhead_table(results["overhead"])
    return "\n".join(lines)


if __name__ == "__main__":
    main()

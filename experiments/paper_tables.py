"""The paper's three tables at this project's scale: docs/results/paper-tables.md, CSVs and plots.

Table 1 (quality)   FID of a vanilla fine-tune vs a LinkGAN fine-tune of the SAME vanilla
                    checkpoint for the same kimg, on toyfaces, scenes and Fashion-MNIST.
Table 2 (locality)  masked MSE for eyes, nose and mouth links on toyfaces (one model with
                    the three links), beside the vanilla fine-tune measured on the same partition,
                    and the FID of both.
Table 3 (ablation)  axes per link (8 ... 256) for the eyes box: mse_in_complement and mse_out,
                    the two rows of the paper's ablation, plus mse_in and locality.

Every fine-tune is a `linkgan train --init BASE` run under --runs/ARM; finished runs are
skipped and interrupted ones resume, and every measured number is stored in
docs/results/paper-tables.json as soon as it exists, so re-running the script only does
what is missing. An arm whose run directory already exists elsewhere can be linked in
(`ln -s /path/to/run RUNS/ARM`) as long as it is the same fine-tune.

Compute budget (2 CPU cores, 32 px, 64 channels): each 20-kimg fine-tune takes 6-8 min
alone on the machine; mse1k ~30 s per model; fid2k ~4 min per model plus ~4 min once per
dataset for the real statistics (cached). The whole script, from the three vanilla bases,
is ~1.5 h; the bases themselves (toyfaces 100.8 kimg, scenes 100 kimg, Fashion-MNIST 60 kimg)
took ~30, ~30 and ~20 min.

The toyfaces and Fashion-MNIST bases ship with linkgan (builtin:toyfaces-base, builtin:fmnist32-base);
the scenes base and its segmenter do not (experiments/semantic.py trains them).

Usage:
  python experiments/paper_tables.py --runs runs/paper \\
      --toyfaces-base builtin:toyfaces-base --toyfaces-data data/toyfaces32.zip \\
      --scenes-base runs/scenes-base --scenes-data data/scenes32.zip --segmenter runs/seg-scenes32.safetensors \\
      --fashion-base builtin:fmnist32-base --fashion-data data/fmnist32.zip --ablation-kimg 10 --fashion-kimg 10
  python experiments/paper_tables.py ... --only table2,table3   # a subset
  python experiments/paper_tables.py ... --report-only           # rewrite the page from the JSON
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from lab import EYES, MOUTH, Results, fid, final_link_scale, finetune, measure  # noqa: E402

from linkgan.checkpoint import load_checkpoint  # noqa: E402
from linkgan.config import TrainConfig, flat_options  # noqa: E402

NOSE = {"name": "nose", "region": {"box": [0.38, 0.52, 0.62, 0.66]}, "axes": 64}
ABLATION_AXES = (8, 16, 32, 64, 128, 256)
TOP_HALF = {"name": "top", "region": {"box": [0.0, 0.0, 1.0, 0.5]}, "axes": 256}
# The scenes links and weights of docs/results/semantic.md's non-collapsed arm (shared masks, weak weights).
SCENES_OVERRIDES = {"link_lambda_in": 1.0, "link_lambda_out": 3.0}

PAPER_FID = {"FFHQ": (3.98, 5.00), "AFHQ": (8.44, 9.85), "LSUN-Car": (2.95, 3.09), "LSUN-Church": (3.82, 3.97),
             "EG3D-FFHQ": (4.28, 4.25)}
PAPER_TABLE2 = {"eyes": (5.25, 2.24), "nose": (1.82, 2.25), "mouth": (3.10, 2.21)}  # x1e-3, MSE_i / MSE_o
PAPER_ABLATION = {8: (17.45, 0.86), 16: (16.70, 1.53), 32: (3.29, 7.41), 64: (0.95, 8.20), 128: (0.78, 8.71),
                  256: (0.43, 24.78)}  # x1e-3: (in-region change, complement perturbed; outside change, link perturbed)


# The regularizer options a linked arm trained with, recorded beside its numbers: the run defaults change
# between config versions, and a row measured at older defaults must say so.
REGULARIZER = ("link_lambda_in", "link_lambda_out", "link_target", "link_perturb")


def regularizer_of(run: Path) -> dict:
    """The regularizer options of a trained run (its newest checkpoint's migrated config), and where the
    locality target left each link's strength."""
    train = flat_options(load_checkpoint(run).config.get("train", {}), TrainConfig)
    out = {k: train.get(k) for k in REGULARIZER}
    if out["link_target"] is not None:
        out["link_scale"] = final_link_scale(run)
    return out


def regularizer_text(r: dict | None) -> str:
    """'λ 10/30, target 0.08 (eased to eyes 0.55), swap edits' for a row's regularizer record."""
    if not r:
        return "–"
    text = f"λ {r['link_lambda_in']:g}/{r['link_lambda_out']:g}"
    if r.get("link_target") is None:
        text += ", fixed"
    else:
        scale = r.get("link_scale") or {}
        eased = ", ".join(f"{k} {v:.2g}" for k, v in scale.items())
        text += f", target {r['link_target']:g}" + (f" (strength ended at {eased} of the λs)" if eased else "")
    return text + f", {r['link_perturb']} edits"


def scenes_links(segmenter: str) -> list[dict]:
    return [{"name": name, "region": {"semantic": [name], "segmenter": segmenter, "mask_mode": "shared"}, "axes": 64}
            for name in ("sky", "building")]


def eyes_with(axes: int) -> dict:
    return dict(EYES, axes=axes)




def plan(args) -> dict:
    """arm -> (base, data, links, overrides). The plain arms are the vanilla fine-tunes."""
    arms = {}
    if args.toyfaces_base:
        arms["toyfaces-plain"] = (args.toyfaces_base, args.toyfaces_data, [], {})
        arms["toyfaces-eyes"] = (args.toyfaces_base, args.toyfaces_data, [EYES], {})
        arms["toyfaces-eyes-nose-mouth"] = (args.toyfaces_base, args.toyfaces_data, [EYES, NOSE, MOUTH], {})
        for k in ABLATION_AXES:
            arms[ablation_arm(k, args.kimg, args.ablation_kimg)] = (args.toyfaces_base, args.toyfaces_data, [eyes_with(k)], {})
    if args.scenes_base:
        arms["scenes-plain"] = (args.scenes_base, args.scenes_data, [], {})
        arms["scenes-sky-building"] = (args.scenes_base, args.scenes_data, scenes_links(args.segmenter),
                                       SCENES_OVERRIDES)
    if args.fashion_base:
        arms["fashion-plain"] = (args.fashion_base, args.fashion_data, [], {})
        arms["fashion-top"] = (args.fashion_base, args.fashion_data, [TOP_HALF], {})
    return arms


def ablation_arm(k: int, kimg: float, ablation_kimg: float) -> str:
    """Table 3's arm with ``k`` axes; at the tables' kimg, the 64-axes arm is toyfaces-eyes itself."""
    if ablation_kimg == kimg:
        return "toyfaces-eyes" if k == EYES["axes"] else f"toyfaces-eyes-{k}axes"
    return f"toyfaces-eyes-{k}axes-{ablation_kimg:g}kimg"


TABLE1 = (("toyfaces", "toyfaces-plain", "toyfaces-eyes", "eyes box, 64 axes"),
          ("scenes", "scenes-plain", "scenes-sky-building", "semantic sky + building, 64 axes each (weak weights)"),
          ("Fashion-MNIST", "fashion-plain", "fashion-top", "top half, 256 axes"))


def run_all(args, res: Results, only: list[str]) -> None:
    arms = plan(args)
    runs = Path(args.runs)
    kimg = args.kimg

    def trained(arm: str) -> Path:
        base, data, links, overrides = arms[arm]
        t0 = time.time()
        arm_kimg = args.ablation_kimg if "axes" in arm else args.fashion_kimg if arm.startswith("fashion") else kimg
        out = finetune(str(base), data, runs / arm, links, arm_kimg, overrides)
        if res.get("train_minutes", arm) is None:
            res.put(round((time.time() - t0) / 60, 1), "train_minutes", arm)
        return out

    def mse(arm: str, specs: list[dict], key: str):
        if res.get("mse", key) is None:
            res.put(measure(trained(arm), specs, args.n), "mse", key)
        if arms[arm][2] and res.get("regularizer", arm) is None:
            res.put(regularizer_of(trained(arm)), "regularizer", arm)
        return res.get("mse", key)

    def table2():
        specs = arms["toyfaces-eyes-nose-mouth"][2]
        mse("toyfaces-eyes-nose-mouth", specs, "toyfaces-eyes-nose-mouth")
        mse("toyfaces-plain", specs, "toyfaces-plain@eyes-nose-mouth")
        for arm in ("toyfaces-plain", "toyfaces-eyes-nose-mouth"):  # the realism that three links cost
            if res.get("fid", arm) is None:
                res.put(fid(trained(arm), arms[arm][1], args.fid), "fid", arm)

    def table3():
        for k in ABLATION_AXES:
            mse(ablation_arm(k, args.kimg, args.ablation_kimg), [eyes_with(k)], f"ablation-{k}")
            mse("toyfaces-plain", [eyes_with(k)], f"ablation-{k}-vanilla")

    def table1():
        pairs = [(plain, linked) for dataset, plain, linked, _ in TABLE1 if plain in arms]
        for plain, linked in pairs:  # train every arm a missing number needs first, the slow FIDs come last
            for arm in (plain, linked):
                if res.get("fid", arm) is None:
                    trained(arm)
            mse(linked, arms[linked][2], f"{linked}")
            mse(plain, arms[linked][2], f"{plain}@{linked}")
        for plain, linked in pairs:
            for arm in (plain, linked):
                if res.get("fid", arm) is None:
                    res.put(fid(trained(arm), arms[arm][1], args.fid), "fid", arm)

    tables = {"table1": table1, "table2": table2, "table3": table3}
    for name in only:  # in the order given
        if name not in tables:
            raise SystemExit(f"unknown table {name!r}; choose from {', '.join(tables)}")
        tables[name]()
    # A run given only some bases (e.g. --fashion-base to redo one row) keeps the others' setup.
    given = {k: v for k, v in (("toyfaces", args.toyfaces_base), ("scenes", args.scenes_base),
                               ("fashion", args.fashion_base)) if v}
    setup = res.get("setup") or {}

    def kept(key: str, value, *datasets: str):
        """A schedule value is this run's only where it trained one of its datasets; else the recorded one."""
        return value if any(d in given for d in datasets) or key not in setup else setup[key]

    res.put({"kimg": kept("kimg", kimg, "toyfaces", "scenes"),
             "ablation_kimg": kept("ablation_kimg", args.ablation_kimg, "toyfaces"),
             "fashion_kimg": kept("fashion_kimg", args.fashion_kimg, "fashion"), "n": args.n, "fid": args.fid,
             "bases": {**setup.get("bases", {}), **{k: str(v) for k, v in given.items()}},
             "base_kimg": {**setup.get("base_kimg", {}),
                           **{k: round(load_checkpoint(v).state["images_seen"] / 1000, 1) for k, v in given.items()}},
             # Table 3 measured on another base than the others says which, until it is rerun
             **({"table3_base": setup["table3_base"]} if "table3_base" in setup and "table3" not in only else {})},
            "setup")


# ------------------------------------------------------------------------------- report
def write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def fmt(x, digits=2):
    return "–" if x is None else f"{x:.{digits}f}"


def report(res: Results, docs: Path) -> Path:
    d = res.data
    out_dir = docs / "results" / "paper-tables"
    lines = ["# The paper's tables at our scale", "",
             "Written by `experiments/paper_tables.py` from `paper-tables.json` (every number below is there, with "
             "the run it came from). The CSVs and plots are in `paper-tables/`.", ""]
    setup = d.get("setup", {})
    bases = "; ".join(f"{ds}: `{base}`, {setup.get('base_kimg', {}).get(ds, '?')} kimg"
                      for ds, base in setup.get("bases", {}).items())
    lines += [f"Setup: 32 px StyleGAN2 with 64 channels on 2 CPU cores. Every pair of arms starts from the same "
              f"vanilla checkpoint ({bases}) and is fine-tuned {setup.get('kimg', '?')} kimg "
              f"(Fashion-MNIST: {setup.get('fashion_kimg', setup.get('kimg', '?'))} kimg) with and without links, "
              "with the defaults of `linkgan train` (α 1, interval 8; Table 1 gives each linked arm's weights, "
              "locality target and edits, which changed between config versions). Masked MSE over "
              f"{setup.get('n', '?')} samples (`mse1k`), FID as `{setup.get('fid', '?')}` (2000 generated vs 2000 "
              "real images; see the FID protocol in `linkgan.fid`). The paper's numbers are from 256-1024 px "
              "models with FID over 50k images, so only ratios compare.", ""]
    # Table 1
    lines += ["## Table 1: quality (FID, lower is better)", "",
              "| dataset | links | regularizer | vanilla FID | LinkGAN FID | change | target ≤ +10% |",
              "|---|---|---|---|---|---|---|"]
    rows = []
    for dataset, plain, linked, desc in TABLE1:
        a, b = d.get("fid", {}).get(plain), d.get("fid", {}).get(linked)
        change = (b / a - 1) * 100 if a and b else None
        ok = "–" if change is None else ("met" if change <= 10 else "missed")
        lines.append(f"| {dataset} | {desc} | {regularizer_text(d.get('regularizer', {}).get(linked))} | "
                     f"{fmt(a, 1)} | {fmt(b, 1)} | "
                     f"{'–' if change is None else f'{change:+.0f}%'} | {ok} |")
        rows.append([dataset, desc, a, b, change])
    write_csv(out_dir / "table1-fid.csv", ["dataset", "links", "fid_vanilla", "fid_linkgan", "change_percent"], rows)
    lines += ["", "The paper (FID at 50k):", "", "| | " + " | ".join(PAPER_FID) + " |",
              "|---|" + "---|" * len(PAPER_FID),
              "| without LinkGAN | " + " | ".join(f"{v[0]:.2f}" for v in PAPER_FID.values()) + " |",
              "| LinkGAN | " + " | ".join(f"{v[1]:.2f}" for v in PAPER_FID.values()) + " |",
              "| change | " + " | ".join(f"{(v[1] / v[0] - 1) * 100:+.0f}%" for v in PAPER_FID.values()) + " |", ""]
    # Table 2
    fid_plain, fid_three = (d.get("fid", {}).get(a) for a in ("toyfaces-plain", "toyfaces-eyes-nose-mouth"))
    fid_text = (f" FID ({setup.get('fid', '?')}): {fid_three:.1f} against {fid_plain:.1f} for the vanilla fine-tune "
                f"({(fid_three / fid_plain - 1) * 100:+.0f}%)." if fid_plain and fid_three else "")
    lines += ["## Table 2: locality of eyes, nose and mouth on toyfaces", "",
              "One model with three box links of 64 axes each, beside the vanilla fine-tune measured on the same "
              "partition. MSE ×1e-3 on [0, 1] pixels, as MSE_in / MSE_out; locality = MSE_out / MSE_in (target ≤ 0.1). "
              f"Regularizer: {regularizer_text(d.get('regularizer', {}).get('toyfaces-eyes-nose-mouth'))}.{fid_text}",
              "", "| method | eyes | nose | mouth |", "|---|---|---|---|"]
    rows = []
    for label, key in (("vanilla fine-tune (same partition)", "toyfaces-plain@eyes-nose-mouth"),
                       ("LinkGAN (ours)", "toyfaces-eyes-nose-mouth")):
        m = d.get("mse", {}).get(key)
        if not m:
            continue
        cells = []
        for part in ("eyes", "nose", "mouth"):
            r = m[part]
            cells.append(f"{r['mse_in'] * 1e3:.2f} / {r['mse_out'] * 1e3:.2f} (locality {r['locality']:.3f})")
            rows.append([label, part, r["mse_in"], r["mse_out"], r["mse_in_complement"], r["locality"]])
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines.append("| LinkGAN (paper, FFHQ) | " + " | ".join(
        f"{i:.2f} / {o:.2f} (locality {o / i:.2f})" for i, o in PAPER_TABLE2.values()) + " |")
    write_csv(out_dir / "table2-locality.csv",
              ["method", "region", "mse_in", "mse_out", "mse_in_complement", "locality"], rows)
    lines.append("")
    # Table 3 (its arms may come from another toyfaces base than Table 1's: setup["table3_base"])
    t3 = setup.get("table3_base")
    table3_base = f"`{t3['toyfaces']}` ({t3['kimg']} kimg)" if t3 else "the toyfaces base"
    lines += ["## Table 3: axes per link (eyes box)", "",
              "`mse_in_complement`: change inside the box when every other axis is resampled (lower: the region is "
              "better protected). `mse_out`: change outside when the link's axes are resampled (lower: more local). "
              "×1e-3. The paper perturbs with a fixed strength; we resample, so the scales differ. Each arm is "
              f"fine-tuned {setup.get('ablation_kimg', setup.get('kimg', '?'))} kimg from {table3_base}; the "
              "vanilla row is the plain fine-tune measured on the same partition.", "",
              "| axes | " + " | ".join(str(k) for k in ABLATION_AXES) + " |", "|---|" + "---|" * len(ABLATION_AXES)]
    rows = []
    abl = {k: d.get("mse", {}).get(f"ablation-{k}", {}).get("eyes") for k in ABLATION_AXES}
    van = {k: d.get("mse", {}).get(f"ablation-{k}-vanilla", {}).get("eyes") for k in ABLATION_AXES}
    for label, src, key in (("mse_in_complement (ours)", abl, "mse_in_complement"), ("mse_out (ours)", abl, "mse_out"),
                            ("mse_in (ours)", abl, "mse_in"), ("locality (ours)", abl, "locality"),
                            ("locality (vanilla, same axes)", van, "locality")):
        scale = 1 if key == "locality" else 1e3
        lines.append(f"| {label} | " + " | ".join(
            fmt(src[k][key] * scale, 3 if key == "locality" else 2) if src[k] else "–" for k in ABLATION_AXES) + " |")
    names = {k: ablation_arm(k, setup.get("kimg"), setup.get("ablation_kimg")) for k in ABLATION_AXES}
    scales = {k: ((d.get("regularizer", {}).get(names[k]) or {}).get("link_scale") or {}).get("eyes")
              for k in ABLATION_AXES}
    if any(v is not None for v in scales.values()):
        lines.append("| strength at the end (× the λs, set by the locality target) | " + " | ".join(
            fmt(scales[k], 2) for k in ABLATION_AXES) + " |")
    lines.append("| in-region change, complement perturbed (paper) | " + " | ".join(
        f"{PAPER_ABLATION[k][0]:.2f}" for k in ABLATION_AXES) + " |")
    lines.append("| outside change, link perturbed (paper) | " + " | ".join(
        f"{PAPER_ABLATION[k][1]:.2f}" for k in ABLATION_AXES) + " |")
    for k in ABLATION_AXES:
        if abl[k]:
            rows.append([k, abl[k]["mse_in_complement"], abl[k]["mse_out"], abl[k]["mse_in"], abl[k]["locality"],
                         van[k]["locality"] if van[k] else None, *PAPER_ABLATION[k]])
    write_csv(out_dir / "table3-ablation.csv",
              ["axes", "mse_in_complement", "mse_out", "mse_in", "locality", "locality_vanilla",
               "paper_in_region_change_x1e3", "paper_outside_change_x1e3"], rows)
    lines.append("")
    plots = make_plots(d, out_dir)
    for p in plots:
        lines.append(f"![{p.stem}](paper-tables/{p.name})")
    if "notes" in d:
        lines += ["", d["notes"]]
    if d.get("fid_source"):
        lines += ["", "FIDs measured earlier on the very same checkpoints with the same metric were taken over, "
                  "not recomputed: " + "; ".join(f"`{k}` from {v}" for k, v in d["fid_source"].items()) + "."]
    if d.get("commands"):
        lines += ["", "## Commands", ""]
        if d.get("fid_source"):
            lines += ["The fine-tunes whose FIDs were taken over (above) come from the experiments whose JSON is named "
                      "there (their pages give the commands); those runs were linked into `--runs` (`ln -s`).", ""]
        lines += ["```bash"] + list(d["commands"].values()) + ["```"]
    page = docs / "results" / "paper-tables.md"
    page.write_text("\n".join(lines) + "\n")
    return page


def make_plots(d: dict, out_dir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    abl = {k: d.get("mse", {}).get(f"ablation-{k}", {}).get("eyes") for k in ABLATION_AXES}
    ks = [k for k in ABLATION_AXES if abl[k]]
    if ks:
        fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
        axes[0].plot(ks, [abl[k]["mse_in_complement"] * 1e3 for k in ks], "o-", label="mse_in_complement (ours)")
        axes[0].plot(ks, [abl[k]["mse_out"] * 1e3 for k in ks], "s-", label="mse_out (ours)")
        axes[0].set_ylabel("×1e-3")
        axes[0].set_title("ours: toyfaces 32 px, eyes box")
        axes[1].plot(ABLATION_AXES, [PAPER_ABLATION[k][0] for k in ABLATION_AXES], "o--", label="in-region, complement")
        axes[1].plot(ABLATION_AXES, [PAPER_ABLATION[k][1] for k in ABLATION_AXES], "s--", label="outside, link")
        axes[1].set_title("paper: FFHQ, eye region")
        for ax in axes:
            ax.set_xscale("log", base=2)
            ax.set_xticks(ABLATION_AXES, [str(k) for k in ABLATION_AXES])
            ax.set_xlabel("axes in the link")
            ax.legend(fontsize=8)
        fig.tight_layout()
        paths.append(out_dir / "table3-ablation.png")
        fig.savefig(paths[-1], dpi=90)
        plt.close(fig)
    fids = d.get("fid", {})
    pairs = [(ds, fids.get(p), fids.get(q)) for ds, p, q, _ in TABLE1 if fids.get(p) and fids.get(q)]
    if pairs:
        fig, ax = plt.subplots(figsize=(5, 3.2))
        x = range(len(pairs))
        ax.bar([i - 0.2 for i in x], [a for _, a, _ in pairs], 0.4, label="vanilla")
        ax.bar([i + 0.2 for i in x], [b for _, _, b in pairs], 0.4, label="LinkGAN")
        ax.set_xticks(list(x), [p[0] for p in pairs])
        ax.set_ylabel(d.get("setup", {}).get("fid", "FID"))
        ax.legend()
        fig.tight_layout()
        paths.append(out_dir / "table1-fid.png")
        fig.savefig(paths[-1], dpi=90)
        plt.close(fig)
    return paths


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", default="runs/paper", help="folder of the fine-tune runs (one per arm)")
    p.add_argument("--toyfaces-base", help="the toyfaces base (tables 2 and 3 need it; table 1 measures the "
                                           "datasets whose bases are given)")
    p.add_argument("--toyfaces-data")
    p.add_argument("--scenes-base")
    p.add_argument("--scenes-data")
    p.add_argument("--segmenter", help="the scenes segmenter (linkgan segmenter train)")
    p.add_argument("--fashion-base")
    p.add_argument("--fashion-data")
    p.add_argument("--kimg", type=float, default=20.0)
    p.add_argument("--fashion-kimg", type=float, default=None, help="kimg of the Fashion-MNIST arms (default: --kimg)")
    p.add_argument("--ablation-kimg", type=float, default=None,
                   help="kimg of the Table 3 arms (default: --kimg; less makes the ablation cheaper)")
    p.add_argument("--n", type=int, default=1000, help="samples for masked MSE")
    p.add_argument("--fid", default="fid2k", help="FID metric name (needs the metrics extra)")
    p.add_argument("--only", default="table1,table2,table3", help="which tables to compute, in this order")
    p.add_argument("--docs", default="docs")
    p.add_argument("--report-only", action="store_true", help="only rewrite the page from the JSON")
    args = p.parse_args()
    args.ablation_kimg = args.kimg if args.ablation_kimg is None else args.ablation_kimg
    args.fashion_kimg = args.kimg if args.fashion_kimg is None else args.fashion_kimg
    res = Results(Path(args.docs) / "results" / "paper-tables.json")
    if not args.report_only:
        datasets = [k for k in ("toyfaces", "scenes", "fashion") if getattr(args, f"{k}_base")]
        key = args.only if args.toyfaces_base else f"{args.only} ({', '.join(datasets)})"
        res.put("python " + " ".join(sys.argv), "commands", key)
        run_all(args, res, [t for t in args.only.split(",") if t])
    print(report(res, Path(args.docs)))


if __name__ == "__main__":
    main()

"""Link quality: what the regularizer's locality costs in FID, precision and recall.

Every arm (experiments/arms/quality.yaml, each with a note) fine-tunes one vanilla base and is
compared with a vanilla fine-tune of the same base, length and non-link options:
  sweep     1 link (eyes), 2 links (eyes + mouth) and 4 links (the corners) at five strengths,
            λ_in/λ_out from 0.1/0.3 (a hundredth of the defaults) up to the defaults 10/30
  ablation  eyes + mouth, one change at a time from the defaults: λ_in, λ_out, the share of
            perturbed fakes, α, the lazy interval, a warm-up ramp, 2x and 3x the fine-tune length,
            G_ema's half-life, the paper's absolute loss, swap edits, the Glink step's own Adam
  modes     2 and 4 links at λ 3/9 with --link-samples auto --link-budget 3 (the Glink phase at one
            link's cost), beside the same links with every edit of the whole batch
  target    the defaults of version 3 of the config (the locality target --link-target 0.08, every
            link's Gaussian edits for the whole batch) for 1, 2 and 4 links and the Fashion-MNIST top
            half, each beside its twin at fixed weights (--link-target none); a target of 0.1; two
            links with factorized sampling and the render budget, the defaults of version 2
  swap      today's defaults (version 4: swap edits, --link-perturb swap, with the target 0.08) for 1,
            2 and 4 links and both Fashion-MNIST links, each beside its twin with Gaussian edits; the
            four corners twice as long; 2 and 4 links with factorized sampling and the render budget
  fashion   Fashion-MNIST 32 px: a vanilla fine-tune of --fashion-base, a top-half link (256 axes) and
            a centre box (64 axes, the issue's real-photo check) at the old defaults
  cost      the Fashion-MNIST centre box at version 4's defaults taken apart one change at a time
            (λ_in, λ_out, the edited fakes, a ramp, the Glink step's own Adam), a second seed
  v5        today's defaults (version 5: λ_in 3 instead of 10) for 1, 2 and 4 links and the
            Fashion-MNIST centre box, each beside its twin at version 4's; for the four corners λ_in 1,
            a Glink phase every 4 steps and 128 shared axes (two seeds); the Fashion-MNIST top half
            with seed 1 at both λ_in
Each fine-tune continues its base's own G/D recipe (learning rates, R1, style mixing, x-flips,
augmentation: RECIPE), the arm's train options on top. Each arm is measured: masked MSE per link
(--n samples; locality = mse_out / mse_in), the vanilla arm on the same links, and FID with
precision/recall in one pass of generated images (--fid, --pr: fid2k and pr2k, 2000 images each).
Every number goes to docs/results/quality.json as soon as it exists, finished fine-tunes and
measured numbers are skipped, so a call can be interrupted and repeated; then it draws
docs/images/quality-tradeoff.png (FID change and recall against locality, one curve per link
count, the paper's point marked; needs the experiments extra's matplotlib) and writes
docs/results/quality.md from quality.json and docs/results/quality.template.md. --report-only
does only the last two. Arms not measured yet show as "not run yet" on the page.

Cost on 2 CPU cores at the defaults (--kimg 10, fid2k + pr2k, mse1k): a 10-kimg fine-tune takes
3.5 min alone for one link (vanilla ~3, two links ~4.5, four links ~6), FID/PR ~5 min per model
(+~4 min once per dataset for the real images' features, cached), masked MSE ~0.5-2 min per
measurement. sweep (16 fine-tunes): ~1.2 h training, ~1.4 h FID, ~0.3 h MSE, ~3 h in all;
ablation (14 arms + 4 more vanillas, the 2x and 3x lengths included): ~1.7 h + ~1.5 h + ~0.3 h,
~3.5 h; fashion: ~20 min; cost (13 fine-tunes of 10 kimg): ~1.8 h. About 9 h for the
whole study, one call after the other. Two calls can run side by side (OMP_NUM_THREADS=1 each) once the
vanilla arm they share is finished (--arms vanilla). On a GPU pass a larger --kimg (and --fid fid10k
--pr pr10k) with a fresh --out and quality.json.

Usage:
  linkgan dataset toyfaces --n 20000 --res 32 --out data/toyfaces32.zip
  python experiments/quality.py --data data/toyfaces32.zip --only sweep
  python experiments/quality.py --data data/toyfaces32.zip --only ablation
  python experiments/quality.py --fashion-base builtin:fmnist32-base --fashion-data data/fmnist32.zip --only fashion
  python experiments/quality.py --arms sweep-1link-in1-out3 --data data/toyfaces32.zip   # one arm (+ its vanilla)
  python experiments/quality.py --report-only   # rewrite docs/results/quality.md (and the plot) from the JSON
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import importlib.util
import sys
import time
from pathlib import Path

import yaml
from lab import Results, final_link_scale, finetune, finished, inception_metrics, load_arms, measure, write_page

from linkgan.checkpoint import list_checkpoints, load_checkpoint
from linkgan.config import TrainConfig, flat_options, options_of
from linkgan.fid import MetricsExtraError, find_inception_file
from linkgan.metrics import metric_of

# ---------------------------------------------------------------------------------------- the arms
GROUPS = ("sweep", "ablation", "modes", "target", "swap", "fashion", "cost", "v5")
DATASETS = ("toyfaces", "fashion")
ARM_EXTRAS = ("groups", "vanilla", "dataset", "times_kimg")
TRAIN_OPTIONS = {o.name for o in options_of(TrainConfig)}  # flat names, link_lambda_in among them
# The base's own training options that a fine-tune keeps: its G/D optimization and its data pipeline.
RECIPE = ("batch", "lr_g", "lr_d", "beta1", "beta2", "r1_gamma", "r1_interval", "pl_weight", "pl_interval",
          "pl_batch_shrink", "pl_decay", "style_mixing", "xflip", "aug", "augpipe", "aug_target", "ada_kimg",
          "ada_interval")
# The Glink phase of every arm unless the arm says otherwise: every link's Gaussian edits for the whole
# batch at fixed weights and λ 10/30, the defaults when the study began (the modes, target, swap and v5
# arms measure later defaults against them).
STUDY_LINK = {"link_samples": "all", "link_budget": None, "link_target": None, "link_perturb": "gaussian",
              "link_lambda_in": 10.0, "link_lambda_out": 30.0}
# The paper (Table 2, FFHQ eyes: MSE_o / MSE_i = 2.24 / 5.25) and the FID changes of its Table 1.
PAPER_LOCALITY = 2.24 / 5.25
PAPER_FID = {"FFHQ": (3.98, 5.00), "AFHQ": (8.44, 9.85), "LSUN-Car": (2.95, 3.09), "LSUN-Church": (3.82, 3.97)}
PAPER_FID_CHANGE = {name: after / before - 1 for name, (before, after) in PAPER_FID.items()}
FID_TARGET = 0.10  # the target: LinkGAN's FID at most 10% above the vanilla fine-tune's (one link)
# The targets per link count: FID at most this much above vanilla's, at a locality of at most
# LOCALITY_TARGET and at least LOCALITY_GAIN times better than vanilla's, for every link.
FID_TARGETS = {1: 0.10, 2: 0.15, 4: 0.25}
LOCALITY_TARGET, LOCALITY_GAIN = 0.1, 10.0

# What a user runs for each part of the study, in order (the page lists them, and the status names
# the ones whose arms are missing).
DATA_COMMANDS = ("linkgan dataset toyfaces --n 20000 --res 32 --out data/toyfaces32.zip",
                 "linkgan dataset fashion-mnist --out data/fmnist32.zip --res 32   "
                 "# needs Debian's dataset-fashion-mnist")
COMMANDS = {"sweep": "python experiments/quality.py --data data/toyfaces32.zip --only sweep",
            "ablation": "python experiments/quality.py --data data/toyfaces32.zip --only ablation",
            "modes": "python experiments/quality.py --data data/toyfaces32.zip --only modes",
            "target": "python experiments/quality.py --data data/toyfaces32.zip --fashion-base builtin:fmnist32-base "
                      "--fashion-data data/fmnist32.zip --only target",
            "swap": "python experiments/quality.py --data data/toyfaces32.zip --fashion-base builtin:fmnist32-base "
                    "--fashion-data data/fmnist32.zip --only swap",
            "fashion": "python experiments/quality.py --fashion-base builtin:fmnist32-base "
                       "--fashion-data data/fmnist32.zip --only fashion   # the shipped --preset small32 base (ada.md)",
            "cost": "python experiments/quality.py --data data/toyfaces32.zip --fashion-base builtin:fmnist32-base "
                    "--fashion-data data/fmnist32.zip --only cost",
            "v5": "python experiments/quality.py --data data/toyfaces32.zip --fashion-base builtin:fmnist32-base "
                  "--fashion-data data/fmnist32.zip --only v5"}
REPORT_COMMAND = "python experiments/quality.py --report-only"
NOT_RUN = "not run yet"


def load_quality_arms() -> dict[str, dict]:
    """experiments/arms/quality.yaml through lab.load_arms, with this file's keys checked and their
    defaults filled in: groups (list), vanilla (arm name or None), dataset, times_kimg ({} if none).
    Raises ValueError naming the file and the arm of a wrong entry."""
    arms = load_arms("quality", ARM_EXTRAS)
    for name, arm in arms.items():
        arm.setdefault("groups", [])
        arm.setdefault("vanilla", None)
        arm.setdefault("dataset", "toyfaces")
        arm.setdefault("times_kimg", {})
    for name, arm in arms.items():
        problem = quality_arm_problem(arm, arms)
        if problem:
            raise ValueError(f"experiments/arms/quality.yaml, arm {name!r}: {problem}")
    return arms


def quality_arm_problem(arm: dict, arms: dict) -> str | None:
    """What is wrong with the quality keys of one arm, in words, or None."""
    groups = arm["groups"]
    if not isinstance(groups, list) or not groups or any(g not in (*GROUPS, "baseline") for g in groups):
        return f"groups: must be a list of {', '.join(GROUPS)} or baseline, got {groups!r}"
    if arm["dataset"] not in DATASETS:
        return f"dataset: must be one of {', '.join(DATASETS)}, got {arm['dataset']!r}"
    times = arm["times_kimg"]
    if not isinstance(times, dict) or any(k not in TRAIN_OPTIONS or isinstance(v, bool) or
                                          not isinstance(v, (int, float)) for k, v in times.items()):
        return f"times_kimg: must map train options to numbers (multiples of --kimg), got {times!r}"
    vanilla = arm["vanilla"]
    if not arm["links"]:
        return f"vanilla: a vanilla arm names no vanilla, got {vanilla!r}" if vanilla is not None else None
    if not isinstance(vanilla, str) or vanilla not in arms or arms[vanilla]["links"]:
        return f"vanilla: a linked arm names the vanilla arm it is compared with, got {vanilla!r}"
    other = arms[vanilla]
    if other["dataset"] != arm["dataset"]:
        return f"vanilla: {vanilla!r} fine-tunes {other['dataset']}, this arm {arm['dataset']}"
    for key in ("overrides", "times_kimg"):
        mine = {k: v for k, v in arm[key].items() if not k.startswith("link_")}
        theirs = {k: v for k, v in other[key].items() if not k.startswith("link_")}
        if mine != theirs:
            return f"{key}: the non-link options {mine} differ from those of its vanilla {vanilla!r}, {theirs}"
    return None


ARMS = load_quality_arms()


def selected_arms(only: list[str], names: list[str]) -> list[str]:
    """The arms to run, in the file's order with the vanilla arms first: the named ones, or those of
    the groups in ``only``, each with the vanilla it is compared with. Raises ValueError naming an
    unknown arm or group."""
    unknown = [a for a in names if a not in ARMS] + [g for g in only if g not in GROUPS]
    if unknown:
        raise ValueError(f"unknown arms or groups {unknown}; the groups are {', '.join(GROUPS)} and the arms "
                         f"(experiments/arms/quality.yaml) {', '.join(ARMS)}")
    chosen = set(names) if names else {a for a, spec in ARMS.items() if set(spec["groups"]) & set(only)}
    chosen |= {TWINS[g][a] for g in only if g in TWINS for a in chosen if a in TWINS[g]}
    chosen |= {ARMS[a]["vanilla"] for a in chosen if ARMS[a]["vanilla"]}
    return sorted(chosen, key=lambda a: (bool(ARMS[a]["links"]), list(ARMS).index(a)))


@dataclasses.dataclass
class Plan:
    """One arm's fine-tune: base checkpoint, data, length, links and train options (lab.finetune)."""

    base: str
    data: str
    kimg: float
    links: list[dict]
    overrides: dict


@functools.lru_cache(maxsize=None)
def base_recipe(base: str) -> dict:
    """The RECIPE options of the base's own training run."""
    train = flat_options(load_checkpoint(base).config.get("train", {}), TrainConfig)
    return {k: train[k] for k in RECIPE if k in train}


def plan(arm: str, base: str, data: str, kimg: float, settings: dict) -> Plan:
    """The fine-tune of ``arm`` from ``base`` for ``kimg`` (times the arm's factor): the base's recipe,
    then STUDY_LINK, ``settings`` (--set), the arm's overrides and its multiples of ``kimg``."""
    spec = ARMS[arm]
    scaled = {k: factor * kimg for k, factor in spec["times_kimg"].items()}
    length = scaled.pop("kimg", kimg)
    return Plan(base, data, length, spec["links"],
                {**base_recipe(base), **STUDY_LINK, **settings, **spec["overrides"], **scaled})


def mismatch(out: Path, p: Plan) -> str | None:
    """How an existing run in ``out`` differs from plan ``p`` (length, links, options), or None."""
    ckpts = list_checkpoints(out) if out.is_dir() else []
    if not ckpts:
        return None
    config = load_checkpoint(ckpts[-1]).config
    train = flat_options(config.get("train", {}), TrainConfig)  # flat names, as the arms give them
    differ = [f"{k} {train.get(k)!r} (not {v!r})" for k, v in {"kimg": p.kimg, **p.overrides}.items()
              if k not in ("workers", "device") and train.get(k) != v]
    # the checkpoint stores each link's axes as the range it resolved to, so the regions are compared
    if [(link["name"], link["region"]) for link in config.get("links", [])] != [
            (link["name"], link["region"]) for link in p.links]:
        differ.append("other links")
    return ", ".join(differ) or None


def resolve_base(base: str) -> str:
    """A run directory means its newest checkpoint, so that the JSON records which one."""
    if Path(base).is_dir():
        ckpts = list_checkpoints(base)
        if not ckpts:
            raise SystemExit(f"{base} has no checkpoint (ckpt-*.safetensors); give a checkpoint or a trained run")
        return str(ckpts[-1])
    return base


# ------------------------------------------------------------------------------------- running
def check_setup(res: Results, setup: dict, datasets: list[str]) -> None:
    """Refuses to mix numbers of another setup (length, base, sample counts) into one quality.json."""
    stored = res.get("setup") or {}
    pairs = [(k, stored.get(k), setup[k], f"--{k}") for k in ("n", "fid", "pr")]
    for ds in datasets:
        prefix = "--fashion-" if ds == "fashion" else "--"
        for k in ("base", "kimg"):
            pairs.append((f"{ds} {k}", (stored.get(ds) or {}).get(k), setup[ds][k], prefix + k))
    for what, before, now, flag in pairs:
        if before is not None and before != now:
            raise SystemExit(f"{res.path} holds numbers measured with {what} {before!r}; this run asks {now!r}. "
                             f"Rerun with {flag} {before}, or move {res.path} away (and use a fresh --out) "
                             "to start a new study.")


def check_metrics(fid_name: str, pr_name: str) -> None:
    """Before any training: the two metric names are of their kinds, and the Inception network is there."""
    for name, family, flag in ((fid_name, "fid", "--fid"), (pr_name, "pr", "--pr")):
        metric = metric_of(name)
        if metric is None or metric.family != family:
            raise SystemExit(f"{flag} {name}: expected a {family}<N>k metric name, e.g. {family}2k or {family}10k")
    try:
        find_inception_file()
    except MetricsExtraError as e:
        raise SystemExit(str(e)) from None


def run_study(args, res: Results, arms: list[str], command: str) -> None:
    """Fine-tunes and measures ``arms`` (vanilla arms first), recording every number in ``res`` and
    ``command`` among the commands that measured them."""
    check_metrics(args.fid, args.pr)
    settings = {k: yaml.safe_load(v) for k, v in (s.split("=", 1) for s in args.set)}
    unknown = [k for k in settings if k not in TRAIN_OPTIONS]
    if unknown:
        raise SystemExit(f"--set {unknown[0]}=...: not a train option (see `linkgan train --help`)")
    datasets = [ds for ds in DATASETS if any(ARMS[a]["dataset"] == ds for a in arms)]
    given = {"toyfaces": (args.base, args.data, args.kimg, "--base and --data"),
             "fashion": (args.fashion_base, args.fashion_data, args.fashion_kimg, "--fashion-base and --fashion-data")}
    for ds in datasets:
        if not (given[ds][0] and given[ds][1]):
            raise SystemExit(f"the {ds} arms need {given[ds][3]}")
        if not Path(given[ds][1]).exists():
            raise SystemExit(f"{given[ds][1]}: no such dataset; make it first (the commands at the top of "
                             "docs/results/quality.md)")
    sources = {ds: (resolve_base(given[ds][0]), given[ds][1], given[ds][2]) for ds in datasets}
    setup = {"n": args.n, "fid": args.fid, "pr": args.pr,
             **{ds: {"base": sources[ds][0], "kimg": sources[ds][2]} for ds in datasets}}
    check_setup(res, setup, datasets)
    if command not in (res.get("commands") or []):
        res.put((res.get("commands") or []) + [command], "commands")
    stored = res.get("setup") or {}
    res.put({**stored, "n": args.n, "fid": args.fid, "pr": args.pr, "set": {**stored.get("set", {}), **settings},
             **{ds: {**setup[ds], "data": sources[ds][1],
                     "base_kimg": round(load_checkpoint(sources[ds][0]).state.get("images_seen", 0) / 1000, 1)}
                for ds in datasets}}, "setup")
    plans = {a: plan(a, *sources[ARMS[a]["dataset"]], settings) for a in arms}
    runs = Path(args.out)

    for arm in arms:  # every fine-tune first, so that the cheap numbers come before the slow FIDs
        out, p = runs / arm, plans[arm]
        problem = mismatch(out, p)
        if problem:
            raise SystemExit(f"{out} is another fine-tune than arm {arm!r} asks for ({problem}); give another --out")
        fresh = not (out.is_dir() and list_checkpoints(out))
        t0 = time.time()
        print(f"[quality] {arm}: {'skipped, finished' if finished(out, p.kimg) else 'fine-tuning'} ({p.kimg:g} kimg)")
        finetune(p.base, p.data, out, p.links, p.kimg, p.overrides)
        if fresh:
            res.put(round((time.time() - t0) / 60, 1), "arms", arm, "train_minutes")
        res.put(p.kimg, "arms", arm, "kimg")
    for arm in arms:
        links, vanilla = ARMS[arm]["links"], ARMS[arm]["vanilla"]
        if not links:
            continue
        if res.get("arms", arm, "mse") is None:
            res.put(measure(runs / arm, links, args.n), "arms", arm, "mse")
        if plans[arm].overrides.get("link_target") is not None and res.get("arms", arm, "link_scale") is None:
            res.put(final_link_scale(runs / arm), "arms", arm, "link_scale")
        if res.get("arms", arm, "baseline") is None:
            twin = next((a for a in ARMS if ARMS[a]["vanilla"] == vanilla and ARMS[a]["links"] == links
                         and res.get("arms", a, "baseline") is not None), None)
            baseline = res.get("arms", twin, "baseline") if twin else measure(runs / vanilla, links, args.n)
            res.put(baseline, "arms", arm, "baseline")
    for arm in arms:
        if res.get("arms", arm, "fid") is None or res.get("arms", arm, "pr") is None:
            values = inception_metrics(runs / arm, plans[arm].data, [args.fid, args.pr])
            res.put(values[args.fid], "arms", arm, "fid")
            res.put(values[args.pr], "arms", arm, "pr")


# ------------------------------------------------------------------------------------- the page
def num(x, spec: str) -> str:
    return NOT_RUN if x is None else format(x, spec)


def short(link: str) -> str:
    return link.removeprefix("corner_")


def worst(per_link: dict | None) -> float | None:
    """The locality of the least local link of one arm (masked_mse_metric's result), or None."""
    return max(r["locality"] for r in per_link.values()) if per_link else None


def change_text(arm: str) -> str:
    """The arm's train options as the page shows them: λ_in 1, ema_kimg 0.1, kimg 2x, ..."""
    names = {"link_lambda_in": "λ_in", "link_lambda_out": "λ_out", "link_alpha": "α", "link_fakes": "link_fakes",
             "link_interval": "interval", "link_loss": "loss", "link_samples": "samples", "link_budget": "budget",
             "link_target": "target", "link_perturb": "edits", "link_optimizer": "optimizer", "link_lr": "link lr",
             "link_shared_axes": "shared axes"}
    spec = ARMS[arm]
    parts = [f"{names.get(k, k)} {'none' if v is None else f'{v:g}' if isinstance(v, float) else v}"
             for k, v in spec["overrides"].items()]
    parts += [f"{k} {v:g}× --kimg" if k != "kimg" else f"{v:g}× as long" for k, v in spec["times_kimg"].items()]
    return ", ".join(parts) or ("none (λ 10/30, fixed)" if spec["links"] else "no links")


def fid_change(data: dict, arm: str) -> float | None:
    """The arm's FID over its vanilla fine-tune's, minus 1 (+0.1 is 10% worse); None until both are
    measured, or for an arm without a vanilla."""
    arms, vanilla = data.get("arms", {}), ARMS[arm]["vanilla"]
    fid, vfid = arms.get(arm, {}).get("fid"), arms.get(vanilla, {}).get("fid") if vanilla else None
    return fid / vfid - 1 if fid is not None and vfid else None


def region_change(m: dict, base: dict) -> str:
    """How one link's edits move its region and the outside, against the vanilla fine-tune's on the same
    link (masked_mse_metric's results m and base): the link's share of the region's variation, mse_in /
    (mse_in + mse_in_complement), where 1 is a region that only the link's axes change; the region's
    variation (that sum) over vanilla's, below 1 for a region that varies less than the data's (erased),
    above for one exaggerated; and the change outside (mse_out) over vanilla's."""
    variation, base_variation = m["mse_in"] + m["mse_in_complement"], base["mse_in"] + base["mse_in_complement"]
    return (f"{m['mse_in'] / variation:.2f}, {variation / base_variation:.2f}× / "
            f"{m['mse_out'] / base['mse_out']:.2f}×")


def arm_cells(data: dict, arm: str) -> list[str]:
    """One arm's row: arm | change | kimg | locality per link | vanilla, same links | the region's and the
    outside's change (region_change) | FID | vanilla FID | vs vanilla | precision | recall | recall
    vs vanilla."""
    r = data.get("arms", {}).get(arm, {})
    vanilla = ARMS[arm]["vanilla"]
    v = data.get("arms", {}).get(vanilla, {}) if vanilla else {}
    cells = [f"`{arm}`", change_text(arm), num(r.get("kimg"), "g")]
    if ARMS[arm]["links"]:
        for key in ("mse", "baseline"):
            per_link = r.get(key)
            cells.append(", ".join(f"{short(k)} {m['locality']:.3f}" for k, m in per_link.items()) if per_link
                         else NOT_RUN)
        mse, base = r.get("mse"), r.get("baseline")
        cells.append(", ".join(f"{short(k)} {region_change(m, base[k])}" for k, m in mse.items())
                     if mse and base else NOT_RUN)
    else:
        cells += ["", "", ""]
    fid, pr = r.get("fid"), r.get("pr") or {}
    vfid, vpr = v.get("fid"), v.get("pr") or {}
    cells += [num(fid, ".2f"), num(vfid, ".2f") if vanilla else "",
              num(fid_change(data, arm), "+.0%") if vanilla else "",
              num(pr.get("precision"), ".3f"), num(pr.get("recall"), ".3f"),
              (num(pr["recall"] - vpr["recall"] if "recall" in pr and "recall" in vpr else None, "+.3f")
               if vanilla else "")]
    return cells


def table(data: dict, rows: list[str]) -> str:
    fid, pr = (data.get("setup") or {}).get("fid", "fid2k"), (data.get("setup") or {}).get("pr", "pr2k")
    head = (f"| arm | change from λ 10/30, all, fixed, gaussian | kimg | locality per link | vanilla, same links | "
            f"link's share of the region's variation, the variation × vanilla's / outside × vanilla's | {fid} | "
            f"vanilla {fid} | vs vanilla | precision ({pr}) | recall ({pr}) | "
            "recall vs vanilla |")
    return "\n".join([head, "|" + "---|" * 12] + [f"| {' | '.join(arm_cells(data, a))} |" for a in rows])


# The fixed-weight arm that each target arm is read against: the same links and lambdas, --link-target none.
TARGET_TWINS = {"target-1link": "sweep-1link-in10-out30", "target0.1-1link": "sweep-1link-in10-out30",
                "target-2links": "sweep-2links-in10-out30", "target-2links-auto": "sweep-2links-in10-out30",
                "target-2links-all-budget3": "sweep-2links-in10-out30",
                "target-2links-kimg2x": "ablation-kimg2x", "target-4links": "sweep-4links-in10-out30",
                "fashion-top-target": "fashion-top", "fashion-top-target0.1": "fashion-top",
                "fashion-centre-target0.1": "fashion-centre"}

# The arm with Gaussian edits that each swap arm is read against: the same links at the version-3 defaults
# (the locality target 0.08); the Fashion-MNIST centre box has no such arm, so its fixed-weight one.
SWAP_TWINS = {"swap-1link": "target-1link", "swap-2links": "target-2links", "swap-4links": "target-4links",
              "fashion-centre-swap": "fashion-centre", "fashion-top-swap": "fashion-top-target"}
# The arm at version 4's defaults (λ_in 10) that each version-5 arm (λ_in 3, or 1) is read against.
V5_TWINS = {"swap-1link-in3": "swap-1link", "swap-2links-in3": "swap-2links", "swap-4links-in3": "swap-4links",
            "swap-4links-in1": "swap-4links", "swap-4links-in3-interval4": "swap-4links",
            "swap-4links-in3-shared128": "swap-4links-shared128",
            "swap-4links-in3-shared128-seed1": "swap-4links-in3-shared128",
            "fashion-centre-swap-in3": "fashion-centre-swap", "fashion-top-swap-in3-seed1": "fashion-top-swap-seed1"}
TWINS = {"target": TARGET_TWINS, "swap": SWAP_TWINS, "v5": V5_TWINS}


def group_rows(group: str) -> list[str]:
    """The arms of a group's table: its vanilla arms first, then its arms in the file's order (each
    target or swap arm after the twin it is read against)."""
    members = [a for a in ARMS if group in ARMS[a]["groups"]]
    vanillas = [a for a in dict.fromkeys(ARMS[m]["vanilla"] for m in members) if a]
    if group in TWINS:
        members = list(dict.fromkeys(a for m in members for a in ((TWINS[group][m], m) if m in TWINS[group]
                                                                    else (m,))))
    return vanillas + [a for a in members if a not in vanillas]


def complete(data: dict, arm: str) -> bool:
    r = data.get("arms", {}).get(arm, {})
    return all(r.get(k) is not None for k in ("fid", "pr") + (("mse", "baseline") if ARMS[arm]["links"] else ()))


def curve(data: dict, arms) -> dict | None:
    """One curve of the plot: {"arms": [{arm, locality, fid_change, recall}] of those ``arms`` with
    locality and FID measured, by locality; "vanilla": {locality, recall} of their vanilla fine-tune on
    the same links, or None}, or None while none is measured. locality is that of the arm's least local
    link."""
    points, vanilla = [], None
    for arm in arms:
        r, change = data.get("arms", {}).get(arm, {}), fid_change(data, arm)
        if not r.get("mse") or change is None:
            continue
        points.append({"arm": arm, "locality": worst(r["mse"]), "fid_change": change,
                       "recall": (r.get("pr") or {}).get("recall")})
        if r.get("baseline"):
            v = data["arms"].get(ARMS[arm]["vanilla"], {})
            vanilla = {"locality": worst(r["baseline"]), "recall": (v.get("pr") or {}).get("recall")}
    return {"arms": sorted(points, key=lambda p: p["locality"]), "vanilla": vanilla} if points else None


def tradeoff_points(data: dict) -> dict[int, dict]:
    """The plot's toyfaces curves: link count -> curve() of the sweep arms with that many links."""
    counts = sorted({len(s["links"]) for s in ARMS.values() if "sweep" in s["groups"]})
    curves = {n: curve(data, [a for a, s in ARMS.items() if "sweep" in s["groups"] and len(s["links"]) == n])
              for n in counts}
    return {n: c for n, c in curves.items() if c}


# The real-photo curve of the plot: the Fashion-MNIST centre box with today's edits (swap) and the λs scaled
# together, from a hundredth of the defaults up to them.
FASHION_CURVE = ("fashion-centre-swap-weak", "fashion-centre-swap-in1-out3", "fashion-centre-swap-in3-out9",
                 "fashion-centre-swap")
FASHION_LABEL = "Fashion-MNIST centre box (swap edits)"


def plot_curves(data: dict) -> dict[str, dict]:
    """Every curve of the plot by its label: the toyfaces link counts, then the real-photo one."""
    curves = {f"{n} link{'s' if n > 1 else ''}": c for n, c in tradeoff_points(data).items()}
    if fashion := curve(data, FASHION_CURVE):
        curves[FASHION_LABEL] = fashion
    return curves


def local_enough(measured: dict) -> bool:
    """Whether every link of a measured arm is at most LOCALITY_TARGET and LOCALITY_GAIN times better
    than the vanilla fine-tune on the same link."""
    return all(m["locality"] <= min(LOCALITY_TARGET, measured["baseline"][name]["locality"] / LOCALITY_GAIN)
               for name, m in measured["mse"].items())


def verdict(data: dict) -> str:
    """Per link count: whether a measured strength meets the targets (FID_TARGETS at a locality of at most
    LOCALITY_TARGET and LOCALITY_GAIN times vanilla's for every link), else what the nearest arms cost."""
    lines, curves = [], tradeoff_points(data)
    for count in sorted({len(s["links"]) for s in ARMS.values() if "sweep" in s["groups"]}):
        label = f"{count} link{'s' if count > 1 else ''}"
        target = FID_TARGETS.get(count, FID_TARGET)
        head = f"- {label} (FID ≤ {target:+.0%} at locality ≤ {LOCALITY_TARGET:g} and ≥ {LOCALITY_GAIN:g}× vanilla's)"
        points = curves.get(count, {}).get("arms", [])
        total = sum(1 for s in ARMS.values() if "sweep" in s["groups"] and len(s["links"]) == count)
        if not points:
            lines.append(f"{head}: {NOT_RUN}.")
            continue
        measured = f" ({len(points)} of {total} strengths measured)" if len(points) < total else ""
        λ = {p["arm"]: ARMS[p["arm"]]["overrides"]["link_lambda_in"] for p in points}
        local = [p for p in points if local_enough(data["arms"][p["arm"]])]
        ok = [p for p in local if p["fid_change"] <= target]
        within = [p for p in points if p["fid_change"] <= target]
        if ok:
            best = ok[0]
            lines.append(f"{head}: met by λ_in {λ[best['arm']]:g} (locality {best['locality']:.3f}, FID "
                         f"{best['fid_change']:+.0%}){measured}.")
            continue
        parts = [f"not met{measured}"]
        if within:
            p = within[0]
            parts.append(f"the most local arm within the FID target, λ_in {λ[p['arm']]:g}, reaches locality "
                         f"{p['locality']:.3f} on its least local link ({p['fid_change']:+.0%})")
        if local:
            p = min(local, key=lambda q: q["fid_change"])
            parts.append(f"the arms local enough cost at least {p['fid_change']:+.0%} (λ_in {λ[p['arm']]:g})")
        elif not within:
            p = points[-1]
            parts.append(f"no arm is local enough nor within the FID target; the loosest, λ_in {λ[p['arm']]:g}, "
                         f"reaches {p['locality']:.3f} at {p['fid_change']:+.0%}")
        lines.append(f"{head}: " + "; ".join(parts) + ".")
    return "\n".join(lines)


# The arms that run today's defaults (version 5), per link count (the targets apply to them), and
# the four corners as training's tiling note advises (LinkSettings.tiling_note: some axes shared).
DEFAULT_ARMS = {1: "swap-1link-in3", 2: "swap-2links-in3", 4: "swap-4links-in3"}
ADVISED_ARMS = {4: (("swap-4links-in3-shared128", "swap-4links-in3-shared128-seed1"),
                    "with 128 shared axes (96 per corner), as training's note on links that tile the image advises")}


def defaults_verdict(data: dict) -> str:
    """Per link count: whether today's defaults (DEFAULT_ARMS, then ADVISED_ARMS) meet the targets, with the
    numbers."""
    lines = []
    rows = [(count, arm, "at the defaults") for count, arm in DEFAULT_ARMS.items()]
    rows += [(count, arm, f"at the defaults {how}") for count, (arms, how) in ADVISED_ARMS.items() for arm in arms]
    for count, arm, setting in rows:
        r, change = data.get("arms", {}).get(arm, {}), fid_change(data, arm)
        target = FID_TARGETS[count]
        head = (f"- {count} link{'s' if count > 1 else ''} {setting} (`{arm}`; FID ≤ {target:+.0%} at locality "
                f"≤ {LOCALITY_TARGET:g} and ≥ {LOCALITY_GAIN:g}× vanilla's)")
        if not (r.get("mse") and r.get("baseline")) or change is None:
            lines.append(f"{head}: {NOT_RUN}.")
            continue
        local = local_enough(r)
        gains = ", ".join(f"{short(k)} {m['locality']:.3f} ({r['baseline'][k]['locality'] / m['locality']:.1f}× "
                          "vanilla's)" for k, m in r["mse"].items())
        missed = [what for what, bad in (("locality", not local), ("FID", change > target)) if bad]
        lines.append(f"{head}: {'met' if not missed else 'not met (' + ' and '.join(missed) + ')'}; locality "
                     f"{gains}, FID {change:+.0%}.")
    return "\n".join(lines)


def status(data: dict) -> str:
    lines = []
    for group in GROUPS:
        rows = group_rows(group)
        done = sum(complete(data, a) for a in rows)
        line = f"- {group}: {done} of {len(rows)} arms measured"
        lines.append(line + ("." if done == len(rows) else f"; to measure the rest: `{COMMANDS[group]}`"))
    return "\n".join(lines)


def setup_text(data: dict) -> str:
    s = data.get("setup")
    if not s:
        return f"Setup: {NOT_RUN} (no arm has been fine-tuned)."
    parts = [f"{ds}: base `{s[ds]['base']}` ({s[ds].get('base_kimg', '?')} kimg), fine-tuned {s[ds]['kimg']:g} kimg"
             for ds in DATASETS if ds in s]
    extra = f", train options {s['set']}" if s.get("set") else ""
    return (f"Setup: {'; '.join(parts)}; masked MSE over {s['n']} samples, `{s['fid']}` and `{s['pr']}` "
            f"(2000 generated against 2000 real images for the 2k metrics){extra}.")


PLOT = "quality-tradeoff.png"


def twin_notes(data: dict, group: str) -> str:
    """Per target (swap, v5) arm: where its strength ended (from its run's stats.jsonl, stored in quality.json
    as ``link_scale``) and its change in locality and FID against its twin (TWINS: the arm at the defaults
    before it)."""
    lines = []
    for arm, twin in TWINS[group].items():
        r, t = data.get("arms", {}).get(arm, {}), data.get("arms", {}).get(twin, {})
        change, twin_change = fid_change(data, arm), fid_change(data, twin)
        if not (r.get("mse") and t.get("mse")) or change is None or twin_change is None:
            lines.append(f"- `{arm}` against `{twin}`: {NOT_RUN}.")
            continue
        scale = r.get("link_scale")
        ended = (", its strength ended at " + ", ".join(f"{n} {s:.2g}" for n, s in scale.items()) + " of the λs"
                 if scale else "")
        lines.append(f"- `{arm}`: least local link {worst(r['mse']):.3f} against {worst(t['mse']):.3f}, FID "
                     f"{change:+.0%} against {twin_change:+.0%} vs vanilla{ended}.")
    return "\n".join(lines)


def kimg_note(data: dict) -> str:
    """The ablation's finding on the fine-tune's length: each longer arm's FID change against its own
    vanilla and its locality, beside the reference's."""
    arms = data.get("arms", {})
    parts = []
    for arm in ("ablation-kimg2x", "ablation-kimg3x"):
        r, change = arms.get(arm, {}), fid_change(data, arm)
        if r.get("mse") and change is not None:
            local = ", ".join(f"{short(k)} {m['locality']:.3f}" for k, m in r["mse"].items())
            parts.append(f"`{arm}` reaches {local} at FID {change:+.0%} against its own vanilla "
                         f"fine-tune of {r['kimg']:g} kimg")
    if not parts:
        return f"**The fine-tune's length** (2× and 3× as long): {NOT_RUN}."
    return "**The fine-tune's length**: " + "; ".join(parts) + "."


def page_values(data: dict) -> dict:
    """The fields of docs/results/quality.template.md, each a block of Markdown made from quality.json:
    commands (to run), status, setup, ran (the commands that measured the JSON's numbers),
    sweep/ablation/modes/target/swap/fashion/cost (tables), target_notes/swap_notes, verdict, plot, arms
    (every arm's note)."""
    has_plot = bool(plot_curves(data))
    return {
        "commands": "\n".join(DATA_COMMANDS + tuple(COMMANDS.values()) + (REPORT_COMMAND,)),
        "status": status(data), "setup": setup_text(data),
        "ran": "\n".join(data.get("commands", [])) or f"# {NOT_RUN}",
        "sweep": table(data, group_rows("sweep")), "ablation": table(data, group_rows("ablation")),
        "modes": table(data, group_rows("modes")), "target": table(data, group_rows("target")),
        "target_notes": twin_notes(data, "target"), "swap": table(data, group_rows("swap")),
        "swap_notes": twin_notes(data, "swap"), "defaults_verdict": defaults_verdict(data),
        "v5": table(data, group_rows("v5")), "v5_notes": twin_notes(data, "v5"),
        "kimg_note": kimg_note(data),
        "fashion": table(data, group_rows("fashion")), "cost": table(data, group_rows("cost")),
        "verdict": verdict(data),
        "plot": (f"![FID change and recall against locality](../images/{PLOT})" if has_plot else
                 f"The plot (`docs/images/{PLOT}`): {NOT_RUN}; it is drawn once a sweep arm (or one of the "
                 "Fashion-MNIST curve's) and its vanilla have their locality and FID."),
        "arms": "\n".join(["| arm | groups | links | note |", "|---|---|---|---|"] + [
            f"| `{a}` | {', '.join(s['groups'])} | {', '.join(link['name'] for link in s['links']) or 'none'} | "
            f"{s['note']} |" for a, s in ARMS.items()]),
    }


def draw_tradeoff(data: dict, path: Path) -> Path | None:
    """FID change against locality (left) and recall against locality (right), one curve per link
    count on toyfaces and the real-photo one (plot_curves), the vanilla arms as open markers
    and the paper's point; None when nothing is measured."""
    curves = plot_curves(data)
    if not curves:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, (ax_fid, ax_recall) = plt.subplots(1, 2, figsize=(11, 5.4))
    colours = {"1 link": "tab:blue", "2 links": "tab:orange", "4 links": "tab:green", FASHION_LABEL: "tab:purple"}
    for label, points in curves.items():
        colour, style = colours.get(label, "tab:red"), "s--" if label == FASHION_LABEL else "o-"
        x = [p["locality"] for p in points["arms"]]
        ax_fid.plot(x, [100 * p["fid_change"] for p in points["arms"]], style, color=colour, label=label)
        recall = [(p["locality"], p["recall"]) for p in points["arms"] if p["recall"] is not None]
        if recall:
            ax_recall.plot(*zip(*recall), style, color=colour, label=label)
        if points["vanilla"]:
            ax_fid.plot([points["vanilla"]["locality"]], [0], "o", mfc="none", color=colour)
            if points["vanilla"]["recall"] is not None:
                ax_recall.plot([points["vanilla"]["locality"]], [points["vanilla"]["recall"]], "o", mfc="none",
                               color=colour)
    changes, ffhq = [100 * v for v in PAPER_FID_CHANGE.values()], 100 * PAPER_FID_CHANGE["FFHQ"]
    ax_fid.errorbar([PAPER_LOCALITY], [ffhq], yerr=[[ffhq - min(changes)], [max(changes) - ffhq]],
                    fmt="*", color="black", markersize=12, capsize=4,
                    label=f"paper: FFHQ eyes (FID +{min(changes):.0f}..{max(changes):.0f}% over datasets)")
    ax_fid.axhline(100 * FID_TARGET, color="grey", ls="--", lw=1, label=f"target +{FID_TARGET:.0%}")
    ax_fid.axhline(0, color="grey", lw=0.5)
    ax_recall.axvline(PAPER_LOCALITY, color="black", ls=":", lw=1, label="paper's locality (no recall given)")
    ax_fid.set_ylabel("FID change vs vanilla fine-tune (%)")
    ax_recall.set_ylabel("recall (open: vanilla, same links)")
    for ax in (ax_fid, ax_recall):
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())  # labelled ticks only, no overlap
        ax.set_xticks([0.01, 0.03, 0.1, 0.3, 1.0], labels=["0.01", "0.03", "0.1", "0.3", "1"])
        ax.set_xlabel("locality of the least local link (lower: more local)")
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.17), ncol=2, frameon=False)
    fig.suptitle("32 px: regularizer strength swept from λ 0.1/0.3 to 10/30 (open markers: vanilla); solid: "
                 "toyfaces, Gaussian edits at fixed weights; dashed: Fashion-MNIST, today's defaults", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def report(docs: Path, plot: bool = True) -> Path:
    """Writes DOCS/results/quality.md from DOCS/results/quality.json and the page's template, and with
    ``plot`` (and matplotlib) DOCS/images/quality-tradeoff.png."""
    res = Results(docs / "results" / "quality.json")
    if plot:
        if importlib.util.find_spec("matplotlib") is None:
            print(f"[quality] {PLOT} not drawn: matplotlib is missing (pip install -e '.[experiments]')")
        else:
            drawn = draw_tradeoff(res.data, docs / "images" / PLOT)
            print(f"[quality] {drawn or f'{PLOT} not drawn: no sweep arm measured yet'}")
    return write_page("quality", page_values(res.data), docs, REPORT_COMMAND, ["quality.json"])


def main(argv: list[str] | None = None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base", default="builtin:toyfaces-base", help="the toyfaces base (checkpoint, run or builtin:)")
    p.add_argument("--data", help="the toyfaces dataset (needed by the sweep and ablation arms)")
    p.add_argument("--fashion-base", help="the Fashion-MNIST base (needed by the fashion arms)")
    p.add_argument("--fashion-data", help="its dataset")
    p.add_argument("--kimg", type=float, default=10.0, help="fine-tune length of the toyfaces arms")
    p.add_argument("--fashion-kimg", type=float, default=None, help="of the fashion arms (default: --kimg)")
    p.add_argument("--n", type=int, default=1000, help="samples of the masked MSE")
    p.add_argument("--fid", default="fid2k", help="FID metric (linkgan.metrics name; needs the metrics extra)")
    p.add_argument("--pr", default="pr2k", help="precision/recall metric, measured in the FID's pass")
    p.add_argument("--only", default=None, help=f"comma-separated groups of {', '.join(GROUPS)} (default: sweep, "
                   "ablation and modes if --data is given, fashion if --fashion-base is)")
    p.add_argument("--arms", default="", help="comma-separated arms instead of --only (each with its vanilla)")
    p.add_argument("--out", default="runs/quality", help="folder of the fine-tunes, one per arm")
    p.add_argument("--docs", default="docs", help="where results/quality.{json,md} and images/ are")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a train option for every arm (machine settings such as workers=0; the arms' own win)")
    p.add_argument("--no-plot", action="store_true", help=f"do not draw images/{PLOT}")
    p.add_argument("--report-only", action="store_true", help="only rewrite the page (and the plot) from the JSON")
    args = p.parse_args(argv)
    docs = Path(args.docs)
    if not args.report_only:
        if not args.no_plot and importlib.util.find_spec("matplotlib") is None:
            p.error("the trade-off plot needs matplotlib: pip install -e '.[experiments]' (or pass --no-plot)")
        args.fashion_kimg = args.kimg if args.fashion_kimg is None else args.fashion_kimg
        if args.only is None:
            args.only = ",".join(["sweep", "ablation", "modes"] * bool(args.data) + ["fashion"] * bool(args.fashion_base))
        try:
            arms = selected_arms([g for g in args.only.split(",") if g], [a for a in args.arms.split(",") if a])
        except ValueError as e:
            p.error(str(e))
        if not arms:
            p.error("no arms chosen: give --data (toyfaces) or --fashion-base, --only or --arms")
        command = "python experiments/quality.py " + " ".join(argv if argv is not None else sys.argv[1:])
        run_study(args, Results(docs / "results" / "quality.json"), arms, command)
    try:
        print(report(docs, plot=not args.no_plot))
    except (OSError, ValueError) as e:
        raise SystemExit(f"quality.md not written: {e}") from None


if __name__ == "__main__":
    main()

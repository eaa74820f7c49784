"""The steps that the results pages share: fine-tune an arm, measure it, time it, tabulate it.

Each script in this folder writes one results page (docs/results/*.md) and imports what it shares
from here (scripts run as ``python experiments/NAME.py``, so this folder is on ``sys.path``).
Every step skips what is already done and resumes what was interrupted, so a script can be re-run.
The arms a script trains are data, in experiments/arms/*.yaml (``load_arms``); a page written from
a Markdown template fills the template's fields from the script's JSON (``write_page``).
"""

from __future__ import annotations

import copy
import difflib
import json
import string
import time
from pathlib import Path

import torch
import yaml

from linkgan.checkpoint import list_checkpoints, load_checkpoint
from linkgan.config import RunConfig, TrainConfig, get_option, options_of, set_option
from linkgan.demo import DEMO_LINKS
from linkgan.metrics import masked_mse_metric
from linkgan.partition import LatentPartition
from linkgan.pipeline import LinkGANPipeline
from linkgan.training import train

EYES, MOUTH = DEMO_LINKS  # 64 axes each, boxes around toyfaces' eyes and mouth
ARMS_DIR = Path(__file__).resolve().parent / "arms"
RESULTS_DIR = Path(__file__).resolve().parents[1] / "docs" / "results"  # the pages and their templates


CORNERS = [{"name": f"corner_{n}", "region": {"box": box}, "axes": 128} for n, box in (
    ("tl", [0.0, 0.0, 0.5, 0.5]), ("tr", [0.5, 0.0, 1.0, 0.5]),
    ("bl", [0.0, 0.5, 0.5, 1.0]), ("br", [0.5, 0.5, 1.0, 1.0]))]


def finetune(base: str, data: str, out: Path, links: list[dict], kimg: float, overrides: dict) -> Path:
    """The same run as `linkgan train --init BASE --data DATA --out OUT --kimg KIMG --links ...`."""
    model = RunConfig.from_dict(load_checkpoint(base).config).model
    t = TrainConfig(data=data, out=str(out), init=base, kimg=kimg, snapshot_kimg=5.0, tick_kimg=1.0, keep_ckpts=4,
                    workers=1)
    for k, v in overrides.items():  # flat option names (link_lambda_in), as the arm files give them
        old = get_option(t, k)
        set_option(t, k, v if v is None or old is None else type(old)(v))
    return run(RunConfig(model=model, train=t, links=links), out)


def final_link_scale(run: Path) -> dict[str, float]:
    """{link: its strength's factor at the end of the run} from the run's stats.jsonl (--link-target)."""
    prefix = "Progress/link_scale/"
    for line in reversed((Path(run) / "stats.jsonl").read_text().splitlines()):
        record = json.loads(line)
        if any(k.startswith(prefix) for k in record):
            return {k.removeprefix(prefix): v for k, v in record.items() if k.startswith(prefix)}
    return {}


def finished(out: Path, kimg: float) -> bool:
    """Whether the run in ``out`` has a checkpoint at ``kimg`` or later."""
    ckpts = list_checkpoints(out) if Path(out).is_dir() else []
    return bool(ckpts) and load_checkpoint(ckpts[-1]).state["images_seen"] >= kimg * 1000


def run(cfg: RunConfig, out: Path) -> Path:
    """Trains ``cfg`` into ``out``: skipped when finished, resumed when interrupted."""
    if finished(out, cfg.train.kimg):
        return out
    if train(cfg, resume=out if list_checkpoints(out) else None).interrupted:
        raise SystemExit(f"interrupted; run the same command again to resume {out}")
    return out


def measure(run: Path, specs: list[dict], n: int) -> dict:
    pipe = LinkGANPipeline.load(run)
    part = LatentPartition.from_specs(specs, pipe.G.w_dim, pipe.resolution)
    return masked_mse_metric(pipe.G, part, n=n, batch=50, progress=True)


def fid(run: Path, data: str, metric: str = "fid2k") -> float:
    """An FID/KID metric (needs the metrics extra) of a run's G_ema against ``data``."""
    from linkgan.data import ImageDataset
    from linkgan.fid import compute_fid_kid

    pipe = LinkGANPipeline.load(run)
    return compute_fid_kid(pipe.G, ImageDataset(data, resolution=pipe.resolution), [metric], progress=True)[metric]


def inception_metrics(run: Path, data: str, names: list[str]) -> dict:
    """Several FID/KID/precision-recall metrics (needs the metrics extra) of a run's G_ema against
    ``data`` in one pass of generated images: {"fid2k": float, "pr2k": {"precision", "recall"}}."""
    from linkgan.data import ImageDataset
    from linkgan.fid import compute_fid_kid

    pipe = LinkGANPipeline.load(run)
    return compute_fid_kid(pipe.G, ImageDataset(data, resolution=pipe.resolution), list(names), progress=True)


def edit_figure(run: Path, specs: list[dict], link: str, path: Path, complement: bool = False) -> Path:
    pipe = LinkGANPipeline.load(run)
    pipe.links = LatentPartition.from_specs(specs, pipe.G.w_dim, pipe.resolution)
    return pipe.save_edit_grid(range(4), link, path, complement=complement)


OVERHEAD_ARMS = (("vanilla", [], "all"), ("1 link", [EYES], "all"), ("4 links", CORNERS, "all"),
                 ("4 links, link_samples=split", CORNERS, "split"))


def overhead(base: str, data: str, arms=OVERHEAD_ARMS, rounds: int = 6, steps_per_round: int = 16) -> dict:
    """img/s of training steps of each arm (name, links, link_samples) at the default interval 8,
    in one process; the first arm is the reference of the overhead ratios.

    By default: no links, 1 link and 4 links, the latter with the default link_samples=all
    and with link_samples=split. The arms take turns, a round of 16 steps each (a whole number of every lazy interval), so
    that a change of machine load during the measurement hits every arm alike.
    """
    from linkgan.data import ImageDataset
    from linkgan.losses import LossStats
    from linkgan.training import Trainer

    base_cfg = RunConfig.from_dict(load_checkpoint(base).config)
    ds = ImageDataset(data, resolution=base_cfg.model.resolution)
    real = torch.stack([ds[i] for i in range(base_cfg.train.batch)])
    trainers, seconds = {}, {}
    for name, links, samples in arms:
        t = TrainConfig.from_options(data=data, batch=base_cfg.train.batch, workers=0, link_samples=samples)
        trainers[name] = Trainer(RunConfig(model=base_cfg.model, train=t, links=links), progress=False, dataset=ds)
        seconds[name] = 0.0
    stats = LossStats()
    for r in range(rounds + 1):  # round 0 warms up
        for name, trainer in trainers.items():
            trainer.step = 0
            t0 = time.perf_counter()
            for _ in range(steps_per_round):
                trainer.train_step(real, stats)
            if r > 0:
                seconds[name] += time.perf_counter() - t0
    images = base_cfg.train.batch * steps_per_round * rounds
    speed = {name: images / s for name, s in seconds.items()}
    reference = speed[arms[0][0]]
    return {k: {"img_per_s": v, "overhead": reference / v} for k, v in speed.items()}


ARM_KEYS = ("note", "links", "region", "overrides")


def load_arms(name: str, extra_keys: tuple[str, ...] = ()) -> dict[str, dict]:
    """The arms in experiments/arms/NAME.yaml, in the file's order: arm name -> {"note": what the
    arm tests (one line), "links": [link specs] or "region": {the script's region options},
    "overrides": {TrainConfig field: value} ({} when the file has none)}, plus any of
    ``extra_keys``, keys that only the script reading the file knows (it checks their values).

    Raises ValueError naming the file and the arm when the file is missing, is not YAML, or an
    entry has another shape (unknown keys, both or neither of links and region, an override that
    is no train option)."""
    path = ARMS_DIR / f"{name}.yaml"
    where = f"experiments/arms/{path.name}"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in ARMS_DIR.glob("*.yaml"))) or "none"
        raise ValueError(f"{where}: no such arm file (the arm files are: {known})")
    try:
        arms = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ValueError(f"{where}: not valid YAML: {e}") from None
    if not isinstance(arms, dict) or not arms:
        raise ValueError(f"{where}: expected a mapping of arm name -> arm, got {type(arms).__name__}")
    loaded = {}
    for arm_name, arm in arms.items():
        problem = arm_problem(arm_name, arm, extra_keys)
        if problem:
            raise ValueError(f"{where}, arm {arm_name!r}: {problem}")
        # a copy per arm: YAML aliases (&eyes ... *eyes) would otherwise share one dict between arms
        loaded[arm_name] = copy.deepcopy({**arm, "overrides": arm.get("overrides", {})})
    return loaded


def arm_problem(name, arm, extra_keys: tuple[str, ...] = ()) -> str | None:
    """What is wrong with one entry of an arm file, in words, or None. ``extra_keys``: the keys
    beyond ARM_KEYS that the script reading the file allows."""
    if not isinstance(name, str):
        return "an arm's name must be a string"
    if not isinstance(arm, dict):
        return f"expected a mapping with note, links or region, and overrides; got {type(arm).__name__}"
    unknown = sorted(set(arm) - set(ARM_KEYS) - set(extra_keys))
    if unknown:
        also = f" (this file also allows {', '.join(extra_keys)})" if extra_keys else ""
        return f"unknown keys {unknown}; an arm has note, links or region, and overrides{also}"
    note = arm.get("note")
    if not isinstance(note, str) or not note.strip() or "\n" in note.strip():
        return "needs a one-line note: saying what the arm tests"
    if ("links" in arm) == ("region" in arm):
        return "needs either links: (a list of link specs) or region: (the script's region options)"
    links = arm.get("links", [])
    if not isinstance(links, list) or not all(
            isinstance(link, dict) and isinstance(link.get("name"), str) and isinstance(link.get("region"), dict)
            for link in links):
        return "links: must be a list of link specs, each a mapping with a name and a region mapping"
    if not isinstance(arm.get("region", {}), dict):
        return f"region: must be a mapping of region options, got {type(arm['region']).__name__}"
    overrides = arm.get("overrides", {})
    if not isinstance(overrides, dict):
        return f"overrides: must be a mapping of train option -> value, got {type(overrides).__name__}"
    train_options = [o.name for o in options_of(TrainConfig)]  # flat names: link_lambda_in
    for key in overrides:
        if key not in train_options:
            close = difflib.get_close_matches(str(key), train_options, n=1)
            return f"overrides: {key!r} is not a train option" + (f" (did you mean {close[0]!r}?)" if close else "")
    return None


class Cells:
    """Adjacent cells of a Markdown table row, for a page template: ``{name[key]}`` writes them joined
    by ``sep``, and a format spec sets the named cells in bold: ``{mse[eyes][eyes]:bold=locality,ratio}``."""

    def __init__(self, sep: str = " | ", **cells: str):
        self.sep, self.cells = sep, cells

    def __format__(self, spec: str) -> str:
        bold = set(spec.removeprefix("bold=").split(",")) if spec else set()
        if (spec and not spec.startswith("bold=")) or bold - set(self.cells):
            raise ValueError(f"format spec {spec!r}: expected bold=CELL,... with cells from {list(self.cells)}")
        return self.sep.join(f"**{v}**" if k in bold else v for k, v in self.cells.items())


def mse_cells(r: dict, baseline: dict | None) -> Cells:
    """mse_in | mse_out | mse_in_complement | locality | vanilla | ratio of one link (an entry of
    masked_mse_metric's result), beside the vanilla fine-tune measured on the same partition."""
    base_loc = (baseline or {}).get("locality", float("nan"))
    return Cells(mse_in=f"{r['mse_in']:.5f}", mse_out=f"{r['mse_out']:.5f}",
                 mse_in_complement=f"{r['mse_in_complement']:.5f}", locality=f"{r['locality']:.3f}",
                 vanilla=f"{base_loc:.3f}", ratio=f"{base_loc / r['locality']:.1f}x")


def mse_table(results: dict, first_column: str = "links") -> list[str]:
    """Markdown rows: masked MSE of every arm's links, the vanilla baseline's locality beside it."""
    lines = [f"| {first_column} | link | mse_in | mse_out | mse_in_complement | locality | vanilla locality | ratio |",
             "|---|---|---|---|---|---|---|---|"]
    for arm, per_link in results.get("linkgan", {}).items():
        for link, r in per_link.items():
            b = results.get("baseline", {}).get(arm, {}).get(link)
            lines.append(f"| {arm} | {link} | {mse_cells(r, b):bold=locality} |")
    return lines


def per_link(results: dict, cells) -> dict:
    """arm -> link -> ``cells(linkgan's entry, the baseline's entry)`` for every measured link of ``results``
    (a dict with "linkgan" and "baseline" sections)."""
    return {arm: {link: cells(r, results.get("baseline", {}).get(arm, {}).get(link)) for link, r in links.items()}
            for arm, links in results.get("linkgan", {}).items()}


def write_page(name: str, values: dict, docs: Path, command: str, sources: list[str]) -> Path:
    """Writes DOCS/results/NAME.md from this repository's template docs/results/NAME.template.md.

    The template is the page as a person wrote it, with every number that comes from the results
    JSON written as a str.format field that ``values`` fills: ``{fid2k[plain]:.1f}``, or a run of
    table cells (``Cells``). A comment that opens the template is for its readers and is left out;
    the page opens with one naming ``command`` (the one that rewrites it), ``sources`` (its JSON
    files) and the template. Raises ValueError naming a field that ``values`` lacks (an arm not
    measured yet) or cannot format."""
    template = RESULTS_DIR / f"{name}.template.md"
    text = template.read_text()
    if text.startswith("<!--"):
        text = text[text.index("-->\n") + 4:]
    missing = []
    for _, field, _, _ in string.Formatter().parse(text):
        if field is not None:
            try:
                string.Formatter().get_field(field, (), values)
            except (KeyError, IndexError, TypeError):
                missing.append(field)
    if missing:
        raise ValueError(f"{template.name}: {len(missing)} field(s) have no value in {', '.join(sources)}, e.g. "
                         f"{{{missing[0]}}}; measure them first, or take them out of the template")
    try:
        body = text.format_map(values)
    except ValueError as e:
        raise ValueError(f"{template.name}: {e}") from None
    header = (f"<!-- Written by `{command}` from {', '.join(sources)} and {template.name}; "
              "to change this page, edit those and run that again. -->\n")
    page = docs / "results" / f"{name}.md"
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text(header + body)
    return page


def overhead_table(overhead: dict, title: str = "training") -> list[str]:
    """Markdown rows of an overhead() result."""
    return [f"| {title} | img/s | time vs vanilla |", "|---|---|---|"] + [
        f"| {k} | {v['img_per_s']:.1f} | {v['overhead']:.3f}x |" for k, v in overhead.items()]


class Results:
    """The JSON file of every measured number; written after each new one."""

    def __init__(self, path: Path):
        self.path = path
        self.data = json.loads(path.read_text()) if path.is_file() else {}

    def get(self, *keys):
        d = self.data
        for k in keys:
            if not isinstance(d, dict) or k not in d:
                return None
            d = d[k]
        return d

    def put(self, value, *keys):
        # Re-read first: two invocations (e.g. --only table1 and --only table2,table3 on two cores) share the file.
        if self.path.is_file():
            self.data = json.loads(self.path.read_text())
        d = self.data
        for k in keys[:-1]:
            d = d.setdefault(k, {})
        d[keys[-1]] = value
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(self.data, indent=1) + "\n")
        tmp.replace(self.path)

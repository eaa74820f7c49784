"""``linkgan segmenter train|eval|export``: a thin layer over linkgan.segment.

Registered by linkgan.cli via add_segmenter_commands; SegmenterError is a
ValueError, so the main CLI prints it as a one-line error with exit code 2.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

EPILOG = """examples:
  linkgan dataset scenes --out data/scenes32.zip --n 2000 --res 32
  linkgan segmenter train --data data/scenes32.zip --out seg.safetensors
  linkgan segmenter eval --segmenter seg.safetensors --data data/scenes32.zip --out seg-metrics.json
  linkgan segmenter export --segmenter seg.safetensors --format onnx --out seg.onnx
"""


def cmd_segmenter_train(args) -> int:
    from .train import train_segmenter

    seg = train_segmenter(args.data, args.out, resolution=args.res, steps=args.steps, batch=args.batch, lr=args.lr,
                          val_fraction=args.val_fraction, seed=args.seed, device=args.device,
                          base_channels=args.base_channels, progress=not args.no_progress)
    val = seg.metadata["val_metrics"]
    score = f"val mIoU {val['miou']:.4f} on {val['n_images']} held-out images" if val else "no held-out images"
    print(f"wrote {args.out}: {score}")
    return 0


def cmd_segmenter_eval(args) -> int:
    from .adapters import load_segmenter
    from .evaluate import evaluate_segmenter

    seg = load_segmenter(args.segmenter, device=args.device)
    result = evaluate_segmenter(seg, args.data, split=args.split, resolution=args.res, progress=not args.no_progress)
    result["segmenter"], result["data"] = str(args.segmenter), str(args.data)
    width = max(len("class"), *map(len, result["per_class_iou"]))
    print(f"{'class':<{width}}  IoU")
    for name, iou in result["per_class_iou"].items():
        print(f"{name:<{width}}  {'absent' if iou is None else f'{iou:.4f}'}")
    print(f"mIoU {result['miou']:.4f}  pixel accuracy {result['pixel_accuracy']:.4f}  "
          f"({result['n_images']} images, split {result['split']}, {result['resolution']} px)")
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + ".tmp")
        tmp.write_text(json.dumps(result, indent=2) + "\n")
        tmp.replace(out)
    return 0


def cmd_segmenter_export(args) -> int:
    from .adapters import load_segmenter
    from .export import export_segmenter

    print(f"wrote {export_segmenter(load_segmenter(args.segmenter, device='cpu'), args.out, args.format)}")
    return 0


def add_segmenter_commands(subparsers) -> None:
    """Adds ``segmenter`` with its train, eval and export subcommands to linkgan's subparsers."""
    fmt = argparse.ArgumentDefaultsHelpFormatter
    spec_help = ("A segmenter: seg.safetensors (built-in), a TorchScript file (.pt .pth .ts .torchscript), "
                 "an ONNX file (.onnx) or package.module:attr.")
    s = subparsers.add_parser("segmenter", help="Train, evaluate and export segmenters for semantic regions.",
                              description="Segmenters label each pixel of an image with a class (sky, mouth, ...); "
                                          "semantic link regions are the pixels of chosen classes.",
                              epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    ssub = s.add_subparsers(dest="action", metavar="ACTION", required=True)

    t = ssub.add_parser("train", help="Train the built-in U-Net on a dataset with masks.",
                        description="Trains a small U-Net with cross-entropy on a dataset's masks and writes it "
                                    "as .safetensors with its classes and held-out mIoU.", formatter_class=fmt)
    t.add_argument("--data", required=True, help="Dataset archive or folder with masks/.")
    t.add_argument("--out", required=True, help="Output .safetensors file.")
    t.add_argument("--res", type=int, default=None, help="Training resolution (default: the dataset's).")
    t.add_argument("--steps", type=int, default=1500, help="Optimizer steps.")
    t.add_argument("--batch", type=int, default=32, help="Images per step.")
    t.add_argument("--lr", type=float, default=2e-3, help="Adam learning rate (cosine decay to 0).")
    t.add_argument("--val-fraction", type=float, default=0.1, help="Held-out fraction for the stored mIoU.")
    t.add_argument("--seed", type=int, default=0, help="Seed of the split, the weights and the batch order.")
    t.add_argument("--base-channels", type=int, default=16, help="U-Net channels at full resolution.")
    t.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N.")
    t.add_argument("--no-progress", action="store_true", help="Hide progress bars.")
    t.set_defaults(func=cmd_segmenter_train)

    e = ssub.add_parser("eval", help="Per-class IoU and mIoU of a segmenter on a dataset with masks.",
                        description="Prints a per-class IoU table and mIoU; --out also writes them as JSON.",
                        formatter_class=fmt)
    e.add_argument("--segmenter", required=True, help=spec_help)
    e.add_argument("--data", required=True, help="Dataset archive or folder with masks/.")
    e.add_argument("--split", default="val", choices=["val", "all"],
                   help="val: the held-out images (a built-in segmenter's own split); all: every image.")
    e.add_argument("--res", type=int, default=None,
                   help="Evaluation resolution (default: the segmenter's training resolution, else the dataset's).")
    e.add_argument("--out", help="Write the metrics as JSON here too.")
    e.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N.")
    e.add_argument("--no-progress", action="store_true", help="Hide the progress bar.")
    e.set_defaults(func=cmd_segmenter_eval)

    x = ssub.add_parser("export", help="Export a built-in segmenter to TorchScript or ONNX.",
                        description="Writes the U-Net with its class names embedded, loadable by any segmenter "
                                    "option and by plain torch.jit.load / onnxruntime.", formatter_class=fmt)
    x.add_argument("--segmenter", required=True, help="A built-in segmenter (.safetensors).")
    x.add_argument("--format", default="torchscript", choices=["torchscript", "onnx"], help="Output format.")
    x.add_argument("--out", required=True, help="Output file (.pt for TorchScript, .onnx for ONNX).")
    x.set_defaults(func=cmd_segmenter_export)

"""Segmenters: per-pixel classes of (generated) images, for semantic LinkGAN regions.

    from linkgan.segment import load_segmenter
    seg = load_segmenter("seg.safetensors")          # or parser.onnx, model.pt, package.module:attr
    ids = seg.segment(images)                        # images (N,3,H,W) in [-1,1] -> long (N,H,W)
    sky = seg.masks(images, ["sky"])                 # bool (N,H,W)

- Segmenter / SegmenterError: the one interface and its error (base.py).
- load_segmenter: built-in .safetensors, TorchScript, ONNX or module:attr (adapters.py);
  trust_segmenter: lets a file (a checkpoint, a links YAML) name one of the latter two, which
  run code (otherwise refused; the CLI trusts its --segmenter values).
- train_segmenter / evaluate_segmenter / export_segmenter: the built-in U-Net (unet.py)
  trained on any dataset with masks, measured, and exported.
"""

from .adapters import (
    CallableSegmenter,
    OnnxSegmenter,
    TorchScriptSegmenter,
    load_segmenter,
    trust_segmenter,
    untrust_segmenter,
)
from .base import INPUT_CONVENTIONS, Segmenter, SegmenterError, parse_segmenter_info
from .builtin import BuiltinSegmenter
from .evaluate import evaluate_segmenter
from .export import EXPORT_FORMATS, export_segmenter
from .split import held_out_split
from .train import train_segmenter
from .unet import UNet, UNetConfig

__all__ = [
    "EXPORT_FORMATS",
    "INPUT_CONVENTIONS",
    "BuiltinSegmenter",
    "CallableSegmenter",
    "OnnxSegmenter",
    "Segmenter",
    "SegmenterError",
    "TorchScriptSegmenter",
    "UNet",
    "UNetConfig",
    "evaluate_segmenter",
    "export_segmenter",
    "held_out_split",
    "load_segmenter",
    "trust_segmenter",
    "untrust_segmenter",
    "parse_segmenter_info",
    "train_segmenter",
]

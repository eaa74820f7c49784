"""Exporting the built-in segmenter to TorchScript or ONNX, with its class JSON embedded.

The exported model maps images (N, 3, H, W) in [-1, 1] to logits (N, C, H, W);
its class JSON says input "minus_one_one" and size = the training resolution,
so load_segmenter gives back a segmenter that behaves like the original.
"""

from __future__ import annotations

import copy
import json
import os
import warnings
from pathlib import Path

import torch

from .adapters import EMBEDDED_JSON, ONNX_METADATA_KEY
from .base import Segmenter, SegmenterError
from .builtin import BuiltinSegmenter

EXPORT_FORMATS = ("torchscript", "onnx")
ONNX_OPSET = 17


def export_segmenter(segmenter: Segmenter, out: str | Path, format: str = "torchscript") -> Path:
    """Writes a built-in segmenter as TorchScript (torch.jit.script) or ONNX to `out`; returns the path.

    ONNX export needs the `onnx` package (pip install linkgan[onnx]).
    """
    if not isinstance(segmenter, BuiltinSegmenter):
        raise SegmenterError(f"{segmenter.name}: only built-in segmenters (.safetensors) can be exported")
    if format not in EXPORT_FORMATS:
        raise SegmenterError(f"export format must be one of {', '.join(EXPORT_FORMATS)}, got {format!r}")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    info = json.dumps(segmenter.export_info())
    model = copy.deepcopy(segmenter.model).cpu().eval()  # export on the CPU without moving the caller's model
    tmp = out.with_name(out.name + ".tmp")
    if format == "torchscript":
        torch.jit.save(torch.jit.script(model), str(tmp), _extra_files={EMBEDDED_JSON: info})
    else:
        _export_onnx(model, segmenter.size, tmp, info)
    os.replace(tmp, out)
    return out


def _export_onnx(model: torch.nn.Module, size: int, path: Path, info: str) -> None:
    try:
        import onnx
    except ImportError:
        raise SegmenterError("ONNX export needs the onnx package; pip install linkgan[onnx]") from None
    example = torch.zeros(1, 3, size, size)
    axes = {0: "batch", 2: "height", 3: "width"}
    with warnings.catch_warnings():
        # The TorchScript-based exporter (dynamo=False) is deprecated in favour of the torch.export one, but
        # that one needs onnxscript; this U-Net has no control flow, so the old exporter is exact here. Its
        # one TracerWarning comes from group_norm's batch-size check, which does not change the graph.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        torch.onnx.export(model, (example,), str(path), dynamo=False, input_names=["images"],
                          output_names=["logits"], dynamic_axes={"images": axes, "logits": axes},
                          opset_version=ONNX_OPSET)
    proto = onnx.load(str(path))
    entry = proto.metadata_props.add()
    entry.key, entry.value = ONNX_METADATA_KEY, info
    onnx.save(proto, str(path))

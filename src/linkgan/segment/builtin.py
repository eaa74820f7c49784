"""The built-in segmenter: a trained U-Net saved as one .safetensors file.

File layout:
  tensors   the U-Net's state dict
  metadata  ``format`` = linkgan-segmenter, ``version``, and ``linkgan``: a JSON object with
            classes, architecture (UNetConfig), resolution (training size in pixels),
            input ("minus_one_one"), size (= resolution), data {source, hash, ...},
            training {steps, batch, lr, seed, val_fraction}, val_miou and val_metrics.

Loading reads tensors and JSON only; nothing is unpickled.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ..tensorfile import TensorFileError, read_tensors, write_tensors
from .base import Segmenter, SegmenterError, parse_segmenter_info
from .unet import UNet, UNetConfig

FORMAT = "linkgan-segmenter"
VERSION = 1


class BuiltinSegmenter(Segmenter):
    """A U-Net trained by train_segmenter, with its metadata (a dict, see the module docstring).

    The model sees images at its training resolution (metadata["resolution"]):
    other sizes are resized there and the answer resized back, because a
    network trained on one scale segments other scales poorly.
    """

    def __init__(self, model: UNet, metadata: dict, batch_size: int = 64, name: str | None = None):
        if len(metadata["classes"]) != model.config.num_classes:
            raise SegmenterError(f"{name or 'segmenter'}: {len(metadata['classes'])} class names for a model "
                                 f"with {model.config.num_classes} outputs")
        super().__init__(metadata["classes"], input="minus_one_one", size=metadata["resolution"],
                         batch_size=batch_size, name=name)
        self.model = model.eval().requires_grad_(False)
        self.metadata = metadata

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def to(self, device: str | torch.device) -> BuiltinSegmenter:
        super().to(device)
        self.model.to(self.device)
        return self

    def export_info(self) -> dict:
        """The class JSON that exported files carry (see parse_segmenter_info)."""
        return {"classes": self.classes, "input": self.input, "size": self.size,
                "val_miou": self.metadata.get("val_miou"), "format": FORMAT}

    def save(self, path: str | Path) -> Path:
        """Writes the weights and metadata to `path` (.safetensors) atomically; returns the path."""
        meta = {"format": FORMAT, "version": str(VERSION), "linkgan": json.dumps(self.metadata)}
        return write_tensors(path, self.model.state_dict(), meta)  # readers never see a half-written file

    @classmethod
    def load(cls, path: str | Path, batch_size: int = 64) -> BuiltinSegmenter:
        """Reads a file written by save (or train_segmenter). Raises SegmenterError naming the file."""
        path = Path(path)
        try:
            tensors, meta = read_tensors(path, FORMAT, "linkgan segmenter",
                                         hint="train one with `linkgan segmenter train`")
        except (TensorFileError, FileNotFoundError) as e:
            raise SegmenterError(str(e)) from None
        if int(meta.get("version", 0)) > VERSION:
            raise SegmenterError(f"{path}: written by a newer linkgan (segmenter format version {meta['version']}); "
                                 "upgrade linkgan to read it")
        metadata = parse_segmenter_info(meta.get("linkgan", ""), str(path))
        try:
            model = UNet(UNetConfig(**metadata["architecture"]))
            model.load_state_dict(tensors)
            return cls(model, metadata, batch_size=batch_size, name=str(path))
        except (TypeError, KeyError, RuntimeError) as e:
            raise SegmenterError(f"{path}: incomplete metadata, or weights that do not fit its architecture "
                                 f"({type(e).__name__}: {e}); re-train or re-save it") from None

"""The one Segmenter interface: images in [-1, 1] -> per-pixel class ids, probabilities and masks.

Every backend (the built-in U-Net, TorchScript, ONNX, a Python callable) is a
Segmenter whose ``predict`` maps a batch of model-ready images to raw output.
This base class does everything around it, once: input checks, chunking,
device moves, the input convention and size the model expects, output checks,
and resizing the answer back to the caller's H, W.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from ..errors import InputError

# How images are scaled before they reach the model:
#   minus_one_one  as given, [-1, 1] (the GAN's own range)
#   zero_one       [0, 1]
#   imagenet       [0, 1] then (x - mean) / std per channel, the torchvision convention
INPUT_CONVENTIONS = ("minus_one_one", "zero_one", "imagenet")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# Scores that are non-negative and sum to 1 over the class axis (within this
# tolerance) are taken as probabilities already; anything else as logits.
_PROBABILITY_TOLERANCE = 1e-3


class SegmenterError(InputError):
    """A segmenter cannot be loaded or used as given; the message names the file or input and the fix.

    A ValueError, so the CLI prints it as a one-line error (exit code 2).
    """


def parse_segmenter_info(info: Any, source: str) -> dict:
    """Validates the class JSON carried by (or next to) an external model.

    info: a JSON string or the decoded dict, ``{"classes": [...], "input":
    "minus_one_one" | "zero_one" | "imagenet", "size": null | int}``. Only
    "classes" is required; other keys are kept and ignored. Returns the dict with
    "input" and "size" filled in.
    """
    if isinstance(info, (str, bytes)):
        try:
            info = json.loads(info)
        except json.JSONDecodeError as e:
            raise SegmenterError(f"{source}: the class JSON is not valid JSON ({e})") from None
    if not isinstance(info, dict):
        raise SegmenterError(f'{source}: the class JSON must be an object like {{"classes": ["background", ...]}}, '
                             f"got {type(info).__name__}")
    info = dict(info)
    info["classes"] = check_classes(info.get("classes"), source)
    info.setdefault("input", "minus_one_one")
    info.setdefault("size", None)
    check_input_convention(info["input"], info["size"], source)
    return info


def check_classes(classes: Any, source: str) -> list[str]:
    if (not isinstance(classes, (list, tuple)) or not classes
            or not all(isinstance(c, str) and c for c in classes)):
        raise SegmenterError(f'{source}: "classes" must be a non-empty list of class names, got {classes!r}')
    dupes = sorted({c for c in classes if list(classes).count(c) > 1})
    if dupes:
        raise SegmenterError(f"{source}: class names must be unique; repeated: {', '.join(dupes)}")
    return list(classes)


def check_input_convention(input: Any, size: Any, source: str) -> None:
    if input not in INPUT_CONVENTIONS:
        raise SegmenterError(f'{source}: "input" must be one of {", ".join(INPUT_CONVENTIONS)}, got {input!r}')
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 1):
        raise SegmenterError(f'{source}: "size" must be null or a positive integer (pixels), got {size!r}')


class Segmenter:
    """Per-pixel classes of images, whatever model computes them.

    classes: the class names; class id i is classes[i].
    input, size: what the model expects. Images are converted from [-1, 1] to
      the ``input`` convention and, when size is an int, resized (bilinear) to
      size x size before the model sees them; answers come back at the
      caller's H, W.
    batch_size: larger batches are run in chunks of this many images.

    Images are float (N, 3, H, W) in [-1, 1] on any device; results come back
    on the images' device. Inference runs under torch.no_grad, so masks never
    carry gradient. Subclasses implement ``predict`` (and ``to`` when they hold
    a model).
    """

    def __init__(self, classes: Sequence[str], input: str = "minus_one_one", size: int | None = None,
                 batch_size: int = 64, name: str | None = None):
        self.name = name or type(self).__name__
        self.classes = check_classes(classes, self.name)
        check_input_convention(input, size, self.name)
        if batch_size < 1:
            raise SegmenterError(f"{self.name}: batch_size must be a positive integer, got {batch_size!r}")
        self.input = input
        self.size = size
        self.batch_size = int(batch_size)
        self.device = torch.device("cpu")

    # ------------------------------------------------------------------ backend
    def predict(self, x: torch.Tensor) -> Any:
        """Raw model output for a model-ready batch.

        x: float32 (n, 3, h, w) on self.device, already in the ``input``
        convention and at ``size`` when that is set. Returns (n, C, h', w')
        scores (logits or probabilities) or (n, h', w') integer class ids; h', w'
        may differ from h, w. A tuple/list means its first element, a dict its
        "out" entry (the torchvision convention).
        """
        raise NotImplementedError(f"{type(self).__name__} must implement predict(x)")

    def to(self, device: str | torch.device) -> Segmenter:
        """Runs the model on `device` from now on; returns self."""
        self.device = torch.device(device)
        return self

    # ------------------------------------------------------------------ public API
    def segment(self, images: torch.Tensor) -> torch.Tensor:
        """images: float (N, 3, H, W) in [-1, 1] -> long (N, H, W) class ids in [0, C)."""
        return self._infer(images)[0]

    def probabilities(self, images: torch.Tensor) -> torch.Tensor | None:
        """images: float (N, 3, H, W) in [-1, 1] -> float (N, C, H, W) class probabilities (summing to 1
        over C), or None when the model gives class ids only."""
        return self._infer(images)[1]

    def class_ids(self, names: str | Sequence[str]) -> list[int]:
        """Class ids of one name or a list of names, in the order given."""
        names = [names] if isinstance(names, str) else list(names)
        unknown = [n for n in names if n not in self.classes]
        if unknown:
            raise SegmenterError(f"{self.name}: unknown class {', '.join(map(repr, unknown))}; "
                                 f"this segmenter's classes are: {', '.join(self.classes)}")
        return [self.classes.index(n) for n in names]

    def masks(self, images: torch.Tensor, names: str | Sequence[str]) -> torch.Tensor:
        """bool (N, H, W): True where a pixel belongs to any of the named classes (their union)."""
        wanted = torch.tensor(self.class_ids(names))  # unknown names fail before the model runs
        ids = self.segment(images)
        return torch.isin(ids, wanted.to(ids.device))

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.name!r}, classes={self.classes}, input={self.input!r}, "
                f"size={self.size}, device={self.device})")

    # ------------------------------------------------------------------ machinery
    @torch.no_grad()
    def _infer(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != 3:
            shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
            raise SegmenterError(f"{self.name}: images must be a float tensor (N, 3, H, W) in [-1, 1], got {shape}")
        n, _, h, w = images.shape
        if n == 0:
            return (torch.zeros(0, h, w, dtype=torch.long, device=images.device),
                    torch.zeros(0, len(self.classes), h, w, device=images.device))
        ids_parts, prob_parts = [], []
        for chunk in images.split(self.batch_size):
            out = self._check_output(self.predict(self._prepare(chunk)), len(chunk))
            ids, probs = self._restore(out, (h, w))
            ids_parts.append(ids.to(images.device))
            prob_parts.append(None if probs is None else probs.to(images.device))
        probs = None if prob_parts[0] is None else torch.cat(prob_parts)
        return torch.cat(ids_parts), probs

    def _prepare(self, images: torch.Tensor) -> torch.Tensor:
        x = images.to(self.device, torch.float32)
        if self.size is not None and tuple(x.shape[-2:]) != (self.size, self.size):
            # antialias: a large image shrunk to the model's size must not alias.
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False, antialias=True)
        if self.input == "minus_one_one":
            return x
        x = (x + 1) / 2
        if self.input == "imagenet":
            mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(1, 3, 1, 1)
            std = torch.tensor(IMAGENET_STD, device=x.device).view(1, 3, 1, 1)
            x = (x - mean) / std
        return x

    def _check_output(self, out: Any, n: int) -> torch.Tensor:
        """The model's output as (n, C, h, w) float scores or (n, h, w) long ids, or a SegmenterError."""
        if isinstance(out, (tuple, list)) and out:
            out = out[0]
        elif isinstance(out, dict) and "out" in out:
            out = out["out"]
        c = len(self.classes)
        expected = f"expected (N={n}, C={c}, H, W) class scores or (N={n}, H, W) integer class ids"
        if not isinstance(out, torch.Tensor):
            raise SegmenterError(f"{self.name}: the model returned {type(out).__name__}; {expected}")
        got = f"{tuple(out.shape)} {str(out.dtype).replace('torch.', '')}"
        integer = not (out.is_floating_point() or out.is_complex() or out.dtype == torch.bool)
        if integer and out.ndim == 4 and out.shape[1] == 1:
            out = out[:, 0]  # (N, 1, H, W) ids, as an argmax with keepdim gives
        if out.ndim == 4 and out.shape[0] == n and out.is_floating_point():
            if out.shape[1] != c:
                raise SegmenterError(f"{self.name}: the model's output has {out.shape[1]} channels (shape {got}) "
                                     f"but {c} classes are declared ({', '.join(self.classes)}); {expected}")
            return out.float()
        if out.ndim == 3 and out.shape[0] == n and integer:
            out = out.long()
            if out.min() < 0 or out.max() >= c:
                raise SegmenterError(f"{self.name}: the model returned class ids in [{int(out.min())}, "
                                     f"{int(out.max())}] but only {c} classes are declared ({', '.join(self.classes)})")
            return out
        raise SegmenterError(f"{self.name}: the model's output has shape {got}; {expected}")

    def _restore(self, out: torch.Tensor, hw: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Ids and probabilities (or None) at the caller's H, W from checked model output."""
        if out.ndim == 3:
            if tuple(out.shape[-2:]) != hw:
                out = F.interpolate(out[:, None].float(), size=hw, mode="nearest-exact")[:, 0].long()
            return out, None
        is_probability = out.min() >= 0 and (out.sum(1) - 1).abs().max() <= _PROBABILITY_TOLERANCE
        probs = out if is_probability else out.softmax(dim=1)
        if tuple(probs.shape[-2:]) != hw:
            probs = F.interpolate(probs, size=hw, mode="bilinear", align_corners=False)
        return probs.argmax(dim=1), probs

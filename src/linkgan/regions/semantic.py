"""Semantic regions: per-image masks from a segmentation model, and how an edit's masks combine."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from .base import Region, RegionError

MASK_MODES = ("union", "shared", "source")


def resolve_segmenter_spec(spec: str, base_dir: str | os.PathLike | None = None) -> str:
    """A segmenter spec with a file path made absolute (relative to ``base_dir``, else the cwd).

    ``package.module:attr`` specs (a Python callable) are returned unchanged, unless a file of
    that name exists. Absolute paths keep a checkpoint's links usable from any folder.
    """
    from ..segment.adapters import CALLABLE_PATTERN, normalize_spec

    p = Path(spec).expanduser()
    if base_dir is not None and not p.is_absolute():
        p = Path(base_dir).expanduser() / p
    if CALLABLE_PATTERN.fullmatch(spec) and not p.exists():
        return spec
    return normalize_spec(p)


class SemanticRegion(Region):
    """Per-image region: the pixels a segmentation model labels as any of ``classes``.

    ``segmenter`` names the model: a built-in ``.safetensors`` segmenter, a TorchScript or ONNX
    file, or a Python callable ``package.module:attr`` (see linkgan.segment.load_segmenter).
    Such a region has no fixed mask: ``mask()`` raises, and masks come from ``masks_for(images)``.

    ``mask_mode`` says which image's mask counts when a latent edit turns x into x':
      * ``union`` (default): the pixels that are in the region in x OR in x'. A sky edit may
        move the skyline; pixels that become (or stop being) sky belong to the edit, so they
        are not counted as change outside the region, and a complement edit that paints
        over the sky is counted as change inside it. The region may thus change its shape
        with its own axes but not with the others.
      * ``shared``: the link's own edit as in ``union``; the complement's edit only over the
        pixels that are in the region in both x and x'. The rest of w may then move the
        region's border (a building grows into the sky), but not change what stays region.
        Use it for several semantic links that touch each other: under ``union`` the sky
        link forbids the building axes to move the skyline and the building link forbids
        the sky axes to, so no axis may move it and the generator freezes the layout
        (docs/results/semantic.md shows the collapse).
      * ``source``: the mask of x only. Then any change of the region's extent counts as
        change outside it, which forbids shape edits (a sky link could only recolour).

    ``margin`` (a fraction of the image width, default 0) leaves a band that wide along the
    region's border out of the regularizer: the band just outside the region does not count
    against the link's own edit, and the band just inside it does not count against the
    complement's. A generator's edges are a pixel or two wide and a segmenter's labels there
    are uncertain, so without it moving an edge at all costs both links, and a generator can
    answer by freezing the border (docs/results/semantic.md). Metrics still use the region
    itself.
    """

    kind = "semantic"
    is_fixed = False

    def __init__(self, classes, segmenter: str | None = None, mask_mode: str = "union",
                 base_dir: str | os.PathLike | None = None, margin: float = 0.0) -> None:
        super().__init__()
        if isinstance(classes, str):
            classes = [classes]
        if isinstance(classes, (bytes, Mapping)) or not isinstance(classes, Sequence) or not classes:
            raise RegionError(f"semantic region needs a non-empty list of class names, e.g. [sky], got {classes!r}")
        bad = [c for c in classes if not isinstance(c, str) or not c.strip()]
        if bad:
            raise RegionError(f"semantic region class names must be non-empty strings, got {bad!r} in {list(classes)!r}")
        if segmenter is not None and (not isinstance(segmenter, (str, os.PathLike)) or not str(segmenter)):
            raise RegionError(f"semantic region segmenter must be a path or spec string, got {segmenter!r}")
        if mask_mode not in MASK_MODES:
            raise RegionError(f"semantic region mask_mode must be one of {', '.join(MASK_MODES)}, got {mask_mode!r}")
        if isinstance(margin, bool) or not isinstance(margin, (int, float)) or not 0 <= margin < 0.5:
            raise RegionError(f"semantic region margin is a fraction of the image width in [0, 0.5), e.g. 0.03 "
                              f"(one pixel at 32 px), got {margin!r}")
        self.margin = float(margin)
        self.classes: tuple[str, ...] = tuple(c.strip() for c in classes)
        self.segmenter = None if segmenter is None else resolve_segmenter_spec(str(segmenter), base_dir)
        self.mask_mode = mask_mode
        self._model = None  # the loaded segmenter, on first use

    def with_segmenter(self, segmenter: str | None, base_dir: str | os.PathLike | None = None) -> "SemanticRegion":
        """This region, or a copy using ``segmenter`` when it names none itself."""
        if self.segmenter is not None or segmenter is None:
            return self
        return SemanticRegion(self.classes, segmenter, self.mask_mode, base_dir, self.margin)

    def margin_pixels(self, res: int) -> int:
        """The border band of ``margin`` in pixels at resolution ``res``."""
        return round(self.margin * res)

    def mask(self, res: int, device=None) -> torch.Tensor:
        raise RegionError(
            f"semantic regions have per-image masks; use masks_for(images) "
            f"(region {list(self.classes)!r} has no fixed mask at resolution {res})")

    def model(self):
        """The loaded segmenter (a linkgan.segment.Segmenter), checked to know every class."""
        if self._model is None:
            if self.segmenter is None:
                raise RegionError(
                    f"semantic region {'+'.join(self.classes)} names no segmenter; add 'segmenter: seg.safetensors' "
                    "to the region, or pass --segmenter (train one with `linkgan segmenter train`)")
            from ..segment import load_segmenter

            # Region specs come from files (links YAML, configs, checkpoints), so a segmenter that is
            # code loads only when the user named it too (--segmenter, trust_segmenter).
            model = load_segmenter(self.segmenter, named_by=f"semantic region {'+'.join(self.classes)}")
            model.class_ids(self.classes)  # unknown class names fail here, listing the known ones
            self._model = model
        return self._model

    def masks_for(self, images: torch.Tensor) -> torch.Tensor:
        """Per-image masks, bool (N, H, W), for ``images`` (N, 3, H, W) in [-1, 1] (no gradient)."""
        model = self.model().to(images.device)
        return model.masks(images.detach(), list(self.classes))

    def combine_masks(self, m: torch.Tensor, m_edit: torch.Tensor, complement: bool = False) -> torch.Tensor:
        """The mask an edit is measured in, per ``mask_mode``, from the region of the original (``m``)
        and of its edited image (``m_edit``); bool or {0, 1} float masks. 'source': the original's.
        'union': both united, so pixels an edit turns into the region count as inside. 'shared':
        the union for the link's own edit, and for a complement edit (every other axis moved,
        ``complement``) only the pixels that are the region in both."""
        if self.mask_mode == "source":
            return m
        if complement and self.mask_mode == "shared":
            return torch.minimum(m, m_edit)
        return torch.maximum(m, m_edit)

    def edit_masks(self, x: torch.Tensor, edited: torch.Tensor) -> torch.Tensor:
        """Masks (N, H, W) for comparing ``edited`` (x with the link's axes changed) with ``x``,
        per ``mask_mode``; one segmenter call."""
        return self._masks_of_edit(x, edited, complement=False)

    def complement_masks(self, x: torch.Tensor, edited: torch.Tensor) -> torch.Tensor:
        """Masks (N, H, W) for comparing ``edited`` (x with every other axis changed) with ``x``."""
        return self._masks_of_edit(x, edited, complement=True)

    def _masks_of_edit(self, x: torch.Tensor, edited: torch.Tensor, complement: bool) -> torch.Tensor:
        if self.mask_mode == "source":
            return self.masks_for(x)
        both = self.masks_for(torch.cat([x, edited]))
        return self.combine_masks(both[:x.shape[0]], both[x.shape[0]:], complement)

    def bounds(self):
        return None

    def validate(self, res: int | None, name: str = "region") -> None:
        # Nothing geometric to check: the pixels are only known per generated image.
        return None

    def to_spec(self) -> dict:
        spec: dict = {"semantic": list(self.classes)}
        if self.segmenter is not None:
            spec["segmenter"] = self.segmenter
        if self.mask_mode != "union":
            spec["mask_mode"] = self.mask_mode
        if self.margin:
            spec["margin"] = self.margin
        return spec

    def describe(self) -> str:
        return f"semantic region {'+'.join(self.classes)}"

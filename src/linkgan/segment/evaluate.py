"""Measuring a segmenter against a dataset's masks: per-class IoU, mIoU, pixel accuracy."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, Subset
from tqdm.auto import tqdm

from ..data import ImageDataset
from ..errors import InputError
from .base import Segmenter, SegmenterError
from .split import held_out_split, to_minus_one_one

SPLITS = ("val", "all")


def _class_map(segmenter: Segmenter, data_classes: list[str], source: str) -> torch.Tensor:
    """Lookup table from the segmenter's class ids to the dataset's, matched by name."""
    missing = [c for c in data_classes if c not in segmenter.classes]
    extra = [c for c in segmenter.classes if c not in data_classes]
    if missing or extra:
        raise SegmenterError(
            f"{segmenter.name} and {source} name different classes"
            + (f"; only the dataset has: {', '.join(missing)}" if missing else "")
            + (f"; only the segmenter has: {', '.join(extra)}" if extra else "")
            + ". Evaluate on a dataset labelled with the segmenter's classes.")
    return torch.tensor([data_classes.index(c) for c in segmenter.classes])


def evaluate_segmenter(segmenter: Segmenter, data, split: str = "val", val_fraction: float | None = None,
                       seed: int | None = None, resolution: int | None = None, batch_size: int = 64,
                       progress: bool = True) -> dict:
    """Compares the segmenter's ids with the dataset's masks, pixel by pixel.

    data: a dataset with masks (path, or an ImageDataset built with return_masks=True).
    split: "val" = the held-out images (held_out_split), "all" = every image.
    val_fraction, seed: the split; None means the segmenter's own training
      split (built-in segmenters store it), else 0.1 and 0.
    resolution: evaluation size; None means the segmenter's training
      resolution when it has one, else the dataset's.
    Classes are matched by name, so the order may differ from the dataset's.

    Returns {"per_class_iou": {name: IoU or None}, "miou", "pixel_accuracy",
    "n_images", "split", "resolution"}. IoU is over all pixels of the split,
    TP / (TP + FP + FN), in [0, 1]. A class absent from both the predictions
    and the masks has no IoU (None) and is left out of the mean.
    """
    if split not in SPLITS:
        raise InputError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    training = getattr(segmenter, "metadata", {}).get("training", {})
    if isinstance(data, ImageDataset):
        dataset = data
    else:
        if resolution is None:
            resolution = getattr(segmenter, "metadata", {}).get("resolution")
        dataset = ImageDataset(data, resolution=resolution, return_masks=True)
    class_map = _class_map(segmenter, dataset.classes, str(dataset.path))

    indices = list(range(len(dataset)))
    if split == "val":
        fraction = val_fraction if val_fraction is not None else training.get("val_fraction", 0.1)
        split_seed = seed if seed is not None else training.get("seed", 0)
        indices = held_out_split(len(dataset), fraction, split_seed)[1].tolist()
        if not indices:
            raise InputError(f"{dataset.path}: the val split is empty (val_fraction={fraction}); use split='all'")

    c = len(dataset.classes)
    confusion = torch.zeros(c, c, dtype=torch.long)  # [truth, prediction]
    loader = DataLoader(Subset(dataset, indices), batch_size=batch_size)
    for images, masks in tqdm(loader, desc="evaluate", unit="batch", disable=not progress, leave=False):
        pred = class_map[segmenter.segment(to_minus_one_one(images)).cpu()]
        confusion += torch.bincount((masks * c + pred).flatten(), minlength=c * c).view(c, c)

    tp = confusion.diag().double()
    union = confusion.sum(0).double() + confusion.sum(1).double() - tp
    per_class = {name: (tp[i] / union[i]).item() if union[i] > 0 else None for i, name in enumerate(dataset.classes)}
    present = [v for v in per_class.values() if v is not None]
    return {
        "per_class_iou": per_class,
        "miou": sum(present) / len(present),
        "pixel_accuracy": (tp.sum() / confusion.sum()).item(),
        "n_images": len(indices),
        "split": split,
        "resolution": dataset.resolution,
    }

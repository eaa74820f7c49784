"""Pictures of datasets: image grids and colourized masks, for eyes rather than metrics."""

from __future__ import annotations

import numpy as np
from PIL import Image

from ..errors import InputError
from ..images import make_grid

# Distinct colours for class ids 0..15; later ids cycle through a hue wheel.
_PALETTE = np.array([
    (0, 0, 0), (230, 180, 140), (120, 60, 20), (0, 120, 255), (255, 40, 40), (0, 200, 0), (255, 0, 255),
    (255, 255, 0), (0, 255, 255), (128, 128, 255), (255, 128, 0), (128, 0, 64), (0, 128, 128),
    (200, 200, 200), (100, 100, 0), (64, 0, 128),
], np.uint8)


def class_palette(num_classes: int) -> np.ndarray:
    """uint8 (num_classes, 3) colours, one per class id."""
    if num_classes <= len(_PALETTE):
        return _PALETTE[:num_classes].copy()
    import colorsys
    extra = [tuple(int(255 * v) for v in colorsys.hsv_to_rgb((i * 0.618) % 1, 0.8, 0.9))
             for i in range(num_classes - len(_PALETTE))]
    return np.concatenate([_PALETTE, np.array(extra, np.uint8)])


def colorize_mask(mask, num_classes: int) -> np.ndarray:
    """Class ids (H, W) (numpy or torch) -> RGB uint8 (H, W, 3)."""
    ids = np.asarray(mask).astype(np.int64)
    return class_palette(num_classes)[np.clip(ids, 0, num_classes - 1)]


def dataset_preview(dataset, n: int = 64, cols: int = 8, masks: bool = False) -> Image.Image:
    """A grid of the first n images of an ImageDataset (or their colourized masks)."""
    n = min(n, len(dataset))
    if masks:
        if not dataset.has_masks:
            raise InputError(f"{dataset.path}: the dataset has no masks to preview")
        tiles = [colorize_mask(dataset[i][1], len(dataset.classes)) for i in range(n)]
    else:
        tiles = [dataset[i] if not dataset.return_masks else dataset[i][0] for i in range(n)]
        tiles = [np.asarray(t).transpose(1, 2, 0) for t in tiles]
    return Image.fromarray(make_grid(np.stack(tiles), cols))

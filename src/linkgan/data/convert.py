"""convert_folder: pack a folder of images (and optional masks) into a dataset archive."""

from __future__ import annotations

import multiprocessing
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from .archive import (
    CLASSES_JSON,
    MASKS_DIR,
    ArchiveWriter,
    folder_mask_name,
    list_image_names,
    read_classes_json,
    scan_folder,
)
from .errors import DatasetError, name_list
from .images import center_crop_resize, center_crop_resize_mask, encode_png, load_image_rgb, load_mask


def _convert_one(root: Path, name: str, res: int, num_classes: int | None) -> tuple[bytes, bytes | None]:
    """Decode, crop and resize one image (and its mask): PNG bytes of each. Raises DatasetError."""
    img = load_image_rgb(root / name, name=name)
    mask_png = None
    if num_classes is not None:
        mask_name = folder_mask_name(name)
        mask = load_mask(root / mask_name, name=mask_name, num_classes=num_classes)
        if mask.size != img.size:
            raise DatasetError(
                f"{mask_name}: mask is {mask.size[0]}x{mask.size[1]} but {name} is "
                f"{img.size[0]}x{img.size[1]}; a mask must match its image pixel for pixel."
            )
        mask_png = encode_png(center_crop_resize_mask(mask, res))
    return encode_png(center_crop_resize(img, res)), mask_png


def _convert_chunk(args) -> list[tuple[str, bytes | None, bytes | None, str | None]]:
    root, names, res, num_classes = args
    out = []
    for name in names:
        try:
            img_png, mask_png = _convert_one(root, name, res, num_classes)
            out.append((name, img_png, mask_png, None))
        except DatasetError as e:
            out.append((name, None, None, str(e)))
    return out


def convert_folder(src, out, res: int, progress: bool = True, max_bad_fraction: float = 0.1,
                   workers: int = 1) -> dict[str, Any]:
    """Pack an image folder into a dataset archive at `out` (a .zip path), res x res.

    Images (png/jpg/jpeg/webp, any case, recursive, sorted by relative path;
    hidden files skipped) of any size and mode are center-cropped to a
    square, resized (LANCZOS down, BICUBIC up) and stored as RGB PNGs; alpha
    is composited over white. If src/masks/ exists, every image needs a mask
    at masks/<relative path with .png suffix> (mode L or P, values = class
    ids) and src/classes.json must list the class names; masks are resized
    with NEAREST.

    Unreadable, corrupt or non-image files are skipped, with one warning.
    If more than max_bad_fraction of the files are bad, DatasetError is
    raised and no archive is written. workers > 1 decodes in a process pool.

    Returns {"path": Path, "written": int, "skipped": [names], "reasons":
    {name: message}, "resolution": res, "classes": list or None}. dataset.json
    records each image's source file under "source_files".
    """
    src = Path(src)
    if not src.is_dir():
        raise DatasetError(f"{src}: not a folder. convert_folder expects a folder of images.")
    if not isinstance(res, (int, np.integer)) or res < 1:
        raise DatasetError(f"resolution must be a positive integer, got {res!r}")
    res = int(res)
    names = list_image_names(scan_folder(src))
    if not names:
        raise DatasetError(
            f"{src}: no images found (looked recursively for .png, .jpg, .jpeg, .webp files, "
            "outside masks/ and hidden folders)."
        )

    classes = None
    if (src / MASKS_DIR).is_dir():
        if not (src / CLASSES_JSON).is_file():
            raise DatasetError(
                f"{src}: has a masks/ folder but no {CLASSES_JSON}; write the class names as a JSON list, "
                f'e.g. ["background", "skin", "hair"], to {src / CLASSES_JSON} (or remove masks/).'
            )
        classes = read_classes_json((src / CLASSES_JSON).read_bytes(), str(src / CLASSES_JSON))
        missing = [n for n in names if not (src / folder_mask_name(n)).is_file()]
        if missing:
            raise DatasetError(
                f"{src}: {len(missing)} images have no mask in masks/: {name_list(missing)}. "
                "Each image a/b.jpg needs masks/a/b.png; add the masks or remove those images."
            )

    num_classes = len(classes) if classes is not None else None
    workers = max(1, min(int(workers or 1), len(names)))
    chunk = max(1, min(32, len(names) // (workers * 8) or 1))
    tasks = [(src, names[i:i + chunk], res, num_classes) for i in range(0, len(names), chunk)]
    limit = max_bad_fraction * len(names)
    skipped: list[str] = []
    reasons: dict[str, str] = {}
    written: list[str] = []

    pool = multiprocessing.get_context().Pool(workers) if workers > 1 else None
    try:
        results = pool.imap(_convert_chunk, tasks) if pool else map(_convert_chunk, tasks)
        with ArchiveWriter(out, res, classes=classes, source=f"convert_folder {src.resolve()}") as writer:
            with tqdm(total=len(names), disable=not progress, unit="img", desc=f"converting {src.name}") as bar:
                for batch in results:
                    for name, img_png, mask_png, error in batch:
                        if error is not None:
                            skipped.append(name)
                            reasons[name] = error
                            if len(skipped) > limit:
                                # Certain to fail: stop now; leaving the block deletes the partial file.
                                raise DatasetError(
                                    f"{src}: at least {len(skipped)} of {len(names)} files are unreadable or "
                                    f"corrupt (more than max_bad_fraction={max_bad_fraction:g}): "
                                    f"{name_list(skipped)}. First problem: {reasons[skipped[0]]} "
                                    "Fix or delete them, or raise --max-bad-fraction (max_bad_fraction in Python) "
                                    "to skip them."
                                )
                        else:
                            writer.add(img_png, mask_png)
                            written.append(name)
                        bar.update(1)
                writer.extra_info["source_files"] = written
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()
    if skipped:
        warnings.warn(f"{src}: skipped {len(skipped)} unreadable or corrupt files: {name_list(skipped)}",
                      stacklevel=2)
    return {
        "path": Path(out),
        "written": len(written),
        "skipped": skipped,
        "reasons": reasons,
        "resolution": res,
        "classes": classes,
    }

"""Decoding, converting and resizing single images and label masks.

Everything that turns bytes into pixels lives here, so that the archive
writer, the folder converter and the training dataset agree on colour
handling and resampling.
"""

from __future__ import annotations

import io
import os
import struct
import warnings
from typing import BinaryIO, Union

import numpy as np
import torch
from PIL import Image, ImageOps

from ..errors import InputError
from ..images import uint8_to_float
from .errors import DatasetError

ImageSource = Union[str, "os.PathLike[str]", bytes, bytearray, memoryview, BinaryIO]

# Extensions (lower case) that count as images when scanning a folder or zip.
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp")

# Formats that may carry an EXIF orientation tag. Checking EXIF on our own
# PNGs would only cost time in the training loop.
_EXIF_FORMATS = {"JPEG", "MPO", "WEBP", "TIFF"}

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _describe(src: ImageSource, name: str | None) -> str:
    if name is not None:
        return name
    if isinstance(src, (str, os.PathLike)):
        return os.fspath(src)
    if isinstance(src, (bytes, bytearray, memoryview)):
        return "<image bytes>"
    return str(getattr(src, "name", "<image file object>"))


def _as_file(src: ImageSource):
    if isinstance(src, (bytes, bytearray, memoryview)):
        return io.BytesIO(src)
    return src


def open_image(src: ImageSource, name: str | None = None) -> Image.Image:
    """Open and fully decode an image, turning every failure into DatasetError.

    src: a path, the encoded bytes, or a binary file object. name: how to refer
    to the file in error messages (defaults to the path). Images larger than
    PIL.Image.MAX_IMAGE_PIXELS are refused rather than decoded, because a
    small file can expand to gigabytes ("decompression bomb").
    """
    label = _describe(src, name)
    try:
        with warnings.catch_warnings():
            # PIL only warns between MAX_IMAGE_PIXELS and twice that; treat
            # both levels the same so one huge file cannot exhaust memory.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(_as_file(src))
            img.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise DatasetError(
            f"{label}: image is too large to decode safely ({e}). If the file is "
            "trusted, raise PIL.Image.MAX_IMAGE_PIXELS, or shrink the image first."
        ) from None
    except FileNotFoundError:
        raise DatasetError(f"{label}: file not found.") from None
    except Image.UnidentifiedImageError:
        raise DatasetError(
            f"{label}: not a readable image (unknown or corrupt format); "
            "delete or replace the file."
        ) from None
    except Exception as e:  # PIL raises many types for corrupt data
        raise DatasetError(
            f"{label}: corrupt or truncated image ({type(e).__name__}: {e}); "
            "delete or replace the file."
        ) from None
    if img.format in _EXIF_FORMATS:
        # Camera photos are often stored sideways with an orientation tag.
        img = ImageOps.exif_transpose(img)
    return img


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert any PIL mode to 8-bit RGB.

    Transparent pixels are composited over white (the way most viewers show
    them), so a cut-out object on a transparent background becomes an object
    on white. 16-bit grey is scaled down to 8 bits rather than clipped.
    """
    mode = img.mode
    if mode == "RGB":
        return img
    if mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
        mode = img.mode
    if mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        arr = np.asarray(img, dtype=np.float64)
        if arr.max(initial=0) > 255:
            arr = arr / 257.0  # 16-bit range -> 8-bit range
        grey = np.clip(np.rint(arr), 0, 255).astype(np.uint8)
        return Image.fromarray(np.repeat(grey[:, :, None], 3, axis=2), "RGB")
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info:
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return img.convert("RGB")


def load_image_rgb(src: ImageSource, name: str | None = None) -> Image.Image:
    """Decode an image file to an RGB PIL image (mode "RGB", uint8 per channel).

    src: a path, the encoded bytes, or a binary file object. Grey, palette,
    16-bit and CMYK images are converted; alpha is composited over white.
    Raises DatasetError naming the file for non-images, corrupt or truncated
    files and decompression bombs.
    """
    return to_rgb(open_image(src, name))


def load_mask(src: ImageSource, name: str | None = None, num_classes: int | None = None) -> Image.Image:
    """Decode a label mask to a mode "L" PIL image whose values are class ids.

    Accepts "L" and "P" PNGs (for "P" the palette index is the class id, as in
    most segmentation datasets) and 16-bit grey with ids below 256. With
    num_classes given, ids >= num_classes raise DatasetError.
    """
    label = _describe(src, name)
    img = open_image(src, name)
    if img.mode == "L":  # the common case: no copy, extrema computed in C
        top = img.getextrema()[1]
        if num_classes is not None and top >= num_classes:
            raise DatasetError(
                f"{label}: mask contains class id {top} but only {num_classes} "
                "classes are listed; fix the mask or add the class name."
            )
        return img
    if img.mode == "P":
        arr = np.asarray(img)
    elif img.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N"):
        arr = np.asarray(img)
        if arr.max(initial=0) > 255:
            raise DatasetError(f"{label}: mask has class ids above 255; at most 256 classes are supported.")
    else:
        raise DatasetError(
            f"{label}: mask has mode {img.mode!r}; masks must be single-channel "
            "(mode L or P) PNGs whose pixel values are class ids."
        )
    arr = arr.astype(np.uint8, copy=False)
    if num_classes is not None and arr.size and int(arr.max()) >= num_classes:
        raise DatasetError(
            f"{label}: mask contains class id {int(arr.max())} but only {num_classes} "
            "classes are listed; fix the mask or add the class name."
        )
    return Image.fromarray(arr, "L")


def _center_box(size: tuple[int, int]) -> tuple[int, int, int, int, int]:
    w, h = size
    s = min(w, h)
    left, top = (w - s) // 2, (h - s) // 2
    return left, top, left + s, top + s, s


def center_crop_resize(img: Image.Image, res: int) -> Image.Image:
    """Center-crop to a square, then resize to (res, res).

    Shrinking uses LANCZOS (sharp, little aliasing); enlarging uses BICUBIC
    (LANCZOS rings visibly when upsampling). Returns img itself when it is
    already res x res.
    """
    if res < 1:
        raise InputError(f"resolution must be positive, got {res}")
    left, top, right, bottom, s = _center_box(img.size)
    if s == res and img.size == (res, res):
        return img
    if s == res:
        return img.crop((left, top, right, bottom))
    resample = Image.Resampling.LANCZOS if s > res else Image.Resampling.BICUBIC
    if img.size != (s, s):
        # Crop first: resize(box=...) would let the filter reach into the
        # cropped-away margin and bleed it into the edge pixels.
        img = img.crop((left, top, right, bottom))
    return img.resize((res, res), resample)


def center_crop_resize_mask(mask: Image.Image, res: int) -> Image.Image:
    """Center-crop and resize a label mask with NEAREST, so ids stay valid ids."""
    if res < 1:
        raise InputError(f"resolution must be positive, got {res}")
    left, top, right, bottom, s = _center_box(mask.size)
    if mask.size == (res, res):
        return mask
    return mask.resize((res, res), Image.Resampling.NEAREST, box=(left, top, right, bottom))


def encode_png(arr_or_img, compress_level: int = 6) -> bytes:
    """Encode a uint8 array (H,W,3) / (H,W) or a PIL image as PNG bytes."""
    img = arr_or_img if isinstance(arr_or_img, Image.Image) else Image.fromarray(np.ascontiguousarray(arr_or_img))
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=compress_level)
    return buf.getvalue()


def png_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG header without decoding, or None if not a PNG."""
    if len(data) < 24 or data[:8] != _PNG_SIGNATURE or data[12:16] != b"IHDR":
        return None
    return struct.unpack(">II", data[16:24])


class ImageLoadError(InputError):
    """A file or upload that cannot be used as an image (not an image, corrupt, too large)."""


ALIGN_MODES = ("center", "none")


def load_image(src, res: int, align: str = "center") -> torch.Tensor:
    """Any image (a path, encoded bytes, a PIL image or a uint8 (H,W[,C]) array; any size,
    grey, palette or RGBA) -> float (1, 3, res, res) in [-1, 1].

    align: 'center' crops the largest centred square before resizing; 'none' resizes the
    whole image, squashing a non-square one. Alpha is composited over white. Raises
    ImageLoadError naming the input for non-images, corrupt files and decompression bombs.
    """
    if align not in ALIGN_MODES:
        raise InputError(f"align must be one of {ALIGN_MODES}, not {align!r}")
    try:
        if isinstance(src, Image.Image):
            img = to_rgb(src)
        elif isinstance(src, np.ndarray):
            if src.dtype != np.uint8 or src.ndim not in (2, 3) or (src.ndim == 3 and src.shape[2] not in (1, 3, 4)):
                raise ImageLoadError(f"an image array must be uint8 (H, W) or (H, W, 1|3|4), got {src.dtype} "
                                     f"{src.shape}")
            img = to_rgb(Image.fromarray(src[..., 0] if src.ndim == 3 and src.shape[2] == 1 else src))
        else:
            img = load_image_rgb(src)
    except DatasetError as e:
        raise ImageLoadError(str(e)) from None
    if align == "center":
        img = center_crop_resize(img, res)
    elif img.size != (res, res):
        img = img.resize((res, res), Image.Resampling.LANCZOS if min(img.size) > res else Image.Resampling.BICUBIC)
    arr = torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1)[None]
    return uint8_to_float(arr)

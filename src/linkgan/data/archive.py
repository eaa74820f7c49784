"""The dataset archive format: the one place that writes and describes it.

An archive is a zip file (members stored uncompressed, since PNGs already are)::

    images/00000000.png ...   RGB PNGs, all resolution x resolution
    masks/00000000.png ...    optional; mode L PNGs of class ids, same names
    depths/00000000.png ...   optional; 16-bit PNGs of depth (see encode_depth_png)
    dataset.json              {"format": "linkgan-dataset", "version": 1,
                               "resolution": R, "num_images": N,
                               "classes": [...] or null, "source": "...",
                               "labels": null, ...extra keys}

"labels" is null, or EG3D's per-image labels: [["images/00000000.png", [floats]], ...]
(for camera labels, 25 floats each; see linkgan.render3d). With depths, the key "depth"
holds {"folder": "depths", "near": ..., "far": ...}, the range of the encoding.

Archives are written to a temporary file in the target folder and moved into
place with os.replace, so a crash never leaves a half-written archive at the
target path. Member timestamps are fixed, so the same content always gives a
byte-identical archive.
"""

from __future__ import annotations

import io
import json
import os
import secrets
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any, Iterable

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from ..errors import DISK_ERRNOS, InputError
from .errors import DatasetError
from .images import IMAGE_EXTENSIONS, encode_png, png_size

ARCHIVE_FORMAT = "linkgan-dataset"
ARCHIVE_VERSION = 1
INFO_NAME = "dataset.json"
IMAGES_DIR = "images"
MASKS_DIR = "masks"
DEPTHS_DIR = "depths"
CLASSES_JSON = "classes.json"

# Fixed member timestamp: zip stores local time, and a real clock would make
# two archives with identical content differ byte for byte.
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


def image_member(index: int) -> str:
    """Archive member name of image `index`, e.g. images/00000042.png."""
    return f"{IMAGES_DIR}/{index:08d}.png"


def mask_member(index: int) -> str:
    """Archive member name of the mask of image `index`."""
    return f"{MASKS_DIR}/{index:08d}.png"


def depth_member(index: int) -> str:
    """Archive member name of the depth map of image `index`."""
    return f"{DEPTHS_DIR}/{index:08d}.png"


def encode_depth_png(depth, near: float, far: float) -> bytes:
    """A depth map (H, W) as a 16-bit grey PNG: 0 where there is no surface (inf, nan or <= 0),
    else 1 + round((depth - near) / (far - near) * 65534), so depths in [near, far] keep a
    resolution of (far - near) / 65534."""
    d = np.asarray(depth, np.float64)
    if d.ndim != 2:
        raise InputError(f"depth map: expected an array of shape (H, W), got {d.shape}")
    present = np.isfinite(d) & (d > 0)
    if present.any() and (d[present].min() < near or d[present].max() > far):
        raise InputError(f"depth map: values {d[present].min():.4g}..{d[present].max():.4g} fall outside the "
                         f"encoded range [{near}, {far}]")
    code = np.zeros(d.shape, np.uint16)
    code[present] = 1 + np.rint((d[present] - near) / (far - near) * 65534).astype(np.uint16)
    return encode_png(Image.fromarray(code))


def decode_depth_png(data: bytes, near: float, far: float) -> np.ndarray:
    """The inverse of encode_depth_png: float32 (H, W), inf where there is no surface."""
    with Image.open(io.BytesIO(data)) as img:
        code = np.asarray(img).astype(np.float64)
    depth = near + (code - 1) / 65534 * (far - near)
    return np.where(code > 0, depth, np.inf).astype(np.float32)


def _zip_info(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=_ZIP_EPOCH)
    info.compress_type = zipfile.ZIP_STORED
    info.external_attr = 0o644 << 16
    return info


def _png_bytes(value, what: str, expect_mode: str) -> bytes:
    """Encode an image/mask given as PNG bytes, PIL image or uint8 array."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, Image.Image):
        if value.mode != expect_mode:
            raise InputError(f"{what}: expected a mode {expect_mode} image, got mode {value.mode}")
        return encode_png(value)
    arr = np.asarray(value)
    if arr.dtype != np.uint8:
        raise InputError(f"{what}: expected a uint8 array, got dtype {arr.dtype}")
    want_ndim = 3 if expect_mode == "RGB" else 2
    if arr.ndim != want_ndim or (want_ndim == 3 and arr.shape[2] != 3):
        shape = "(H, W, 3)" if want_ndim == 3 else "(H, W)"
        raise InputError(f"{what}: expected an array of shape {shape}, got {arr.shape}")
    return encode_png(arr)



class ArchiveWriter:
    """Incrementally writes an archive; use as a context manager.

    On a clean exit the archive is finalized and atomically moved to `out`;
    on an exception (or abort()) the temporary file is deleted and nothing
    appears at `out`.
    """

    def __init__(self, out, res: int, classes: list[str] | None = None, source: str = "",
                 extra_info: dict[str, Any] | None = None, depth_range: tuple[float, float] | None = None):
        """depth_range (near, far): every image comes with a depth map, stored in that range."""
        if not isinstance(res, int) or res < 1:
            raise InputError(f"resolution must be a positive int, got {res!r}")
        self.out = Path(out)
        self.res = res
        self.classes = list(classes) if classes is not None else None
        self.source = source
        self.extra_info = dict(extra_info or {})
        self.depth_range = None if depth_range is None else (float(depth_range[0]), float(depth_range[1]))
        self.num_images = 0
        self.labels: list[list] = []
        self._tmp: Path | None = None
        self._zip: zipfile.ZipFile | None = None
        self._file = None

    def __enter__(self) -> "ArchiveWriter":
        if self.out.exists() and self.out.is_dir():
            raise DatasetError(f"{self.out}: is a folder; give a file path such as {self.out / 'dataset.zip'}")
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = self.out.parent / f".{self.out.name}.{os.getpid()}.{secrets.token_hex(4)}.partial"
        # "xb" (not mkstemp) so the final file gets the usual umask permissions.
        self._file = open(self._tmp, "xb")
        self._zip = zipfile.ZipFile(self._file, "w", compression=zipfile.ZIP_STORED, allowZip64=True)
        return self

    def add(self, image, mask=None, label=None, depth=None) -> None:
        """Append one image (PNG bytes, RGB PIL image or uint8 (R,R,3) array)
        and, when the archive has classes, its mask (PNG bytes, L image or
        uint8 (R,R) array of class ids). label: a sequence of floats (e.g. a
        25-value camera), given for every image or for none. depth: with a
        depth_range, the depth map (float (R,R), inf for none, or the PNG bytes
        of encode_depth_png)."""
        index = self.num_images
        if (label is None) != (not self.labels) and index > 0:
            raise InputError(f"image {index}: labels must be given for every image or for none")
        if (depth is None) != (self.depth_range is None):
            raise InputError(f"image {index}: " + ("the archive has a depth_range, so every image needs a depth map"
                                                   if depth is None else "got a depth map but no depth_range"))
        if depth is not None:
            depth_png = depth if isinstance(depth, (bytes, bytearray)) else encode_depth_png(depth, *self.depth_range)
            self._check_size(bytes(depth_png), f"depth {index}")
        img_png = _png_bytes(image, f"image {index}", "RGB")
        self._check_size(img_png, f"image {index}")
        if self.classes is None and mask is not None:
            raise InputError(f"image {index}: got a mask but the archive has no classes; pass classes=[...]")
        if self.classes is not None:
            if mask is None:
                raise InputError(f"image {index}: the archive has classes, so every image needs a mask")
            if not isinstance(mask, (bytes, bytearray, memoryview)):
                arr = np.asarray(mask)
                if arr.size and int(arr.max()) >= len(self.classes):
                    raise InputError(f"mask {index}: class id {int(arr.max())} >= {len(self.classes)} classes")
            mask_png = _png_bytes(mask, f"mask {index}", "L")
            self._check_size(mask_png, f"mask {index}")
        self._zip.writestr(_zip_info(image_member(index)), img_png)
        if self.classes is not None:
            self._zip.writestr(_zip_info(mask_member(index)), mask_png)
        if depth is not None:
            self._zip.writestr(_zip_info(depth_member(index)), bytes(depth_png))
        if label is not None:
            self.labels.append([image_member(index), [float(v) for v in np.asarray(label).reshape(-1)]])
        self.num_images += 1

    def _check_size(self, png: bytes, what: str) -> None:
        size = png_size(png)
        if size is None:
            raise InputError(f"{what}: not PNG data")
        if size != (self.res, self.res):
            raise InputError(f"{what}: is {size[0]}x{size[1]}, archive resolution is {self.res}x{self.res}")

    def info(self) -> dict[str, Any]:
        info = {
            "format": ARCHIVE_FORMAT,
            "version": ARCHIVE_VERSION,
            "resolution": self.res,
            "num_images": self.num_images,
            "classes": self.classes,
            "source": self.source,
            "labels": self.labels or None,
        }
        if self.depth_range is not None:
            info["depth"] = {"folder": DEPTHS_DIR, "near": self.depth_range[0], "far": self.depth_range[1]}
        for key, value in self.extra_info.items():
            if key in info and key != "labels":
                raise InputError(f"extra_info may not override the reserved key {key!r}")
            info[key] = value
        return info

    def abort(self) -> None:
        """Discard everything written so far."""
        if self._zip is not None:
            for close in (self._zip.close, self._file.close):
                try:  # on a full disk closing flushes and fails too; the file is deleted regardless
                    close()
                except Exception:
                    pass
            self._zip = None
        if self._tmp is not None and self._tmp.exists():
            self._tmp.unlink()
        self._tmp = None

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None or self._tmp is None:
            self.abort()
            if isinstance(exc, OSError) and exc.errno in DISK_ERRNOS:
                raise DatasetError(f"{self.out}: cannot write the archive ({exc.strerror}); nothing was written "
                                   "and no partial file is left. Free some space or choose another --out") from None
            return
        if self.num_images == 0:
            self.abort()
            raise DatasetError(f"{self.out}: no images to write; the archive would be empty.")
        try:
            # dataset.json goes last: num_images is only known now.
            self._zip.writestr(_zip_info(INFO_NAME), json.dumps(self.info(), indent=1).encode())
            self._zip.close()
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            os.replace(self._tmp, self.out)
        except BaseException as e:
            self.abort()
            if isinstance(e, OSError) and e.errno in DISK_ERRNOS:
                raise DatasetError(f"{self.out}: cannot write the archive ({e.strerror}); nothing was written "
                                   "and no partial file is left. Free some space or choose another --out") from None
            raise
        self._zip = None
        self._tmp = None


def write_archive(out, images_iter: Iterable, res: int, classes: list[str] | None = None, source: str = "",
                  progress_total: int | None = None, progress: bool = True,
                  extra_info: dict[str, Any] | None = None, desc: str | None = None) -> dict[str, Any]:
    """Write a dataset archive atomically and return its dataset.json dict.

    images_iter yields either an image, or an (image, mask) pair when classes
    is given. An image is PNG bytes, an RGB PIL image or a uint8 array
    (res, res, 3); a mask is PNG bytes, a mode L PIL image or a uint8 array
    (res, res) of class ids < len(classes). extra_info adds keys to
    dataset.json (e.g. "class_labels"). progress_total sizes the progress
    bar, shown when progress is True.
    """
    with ArchiveWriter(out, res, classes=classes, source=source, extra_info=extra_info) as writer:
        bar = tqdm(total=progress_total, disable=not progress, unit="img", desc=desc or f"writing {Path(out).name}")
        try:
            for item in images_iter:
                if classes is not None:
                    writer.add(*item)
                elif isinstance(item, tuple):
                    image, mask = item
                    writer.add(image, mask)
                else:
                    writer.add(item)
                bar.update(1)
        finally:
            bar.close()
    return writer.info()


def parse_dataset_info(raw: bytes, where: str) -> dict[str, Any]:
    """Parse and validate the bytes of a dataset.json; `where` names it in errors."""
    try:
        info = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DatasetError(f"{where}: dataset.json is not valid JSON ({e}); re-create the archive.") from None
    if not isinstance(info, dict) or info.get("format") != ARCHIVE_FORMAT:
        raise DatasetError(f"{where}: dataset.json does not describe a {ARCHIVE_FORMAT} archive.")
    version = info.get("version")
    if not isinstance(version, int) or version > ARCHIVE_VERSION:
        raise DatasetError(
            f"{where}: archive version {version!r} is newer than this linkgan understands "
            f"({ARCHIVE_VERSION}); upgrade linkgan."
        )
    res = info.get("resolution")
    if not isinstance(res, int) or res < 1:
        raise DatasetError(f"{where}: dataset.json has an invalid resolution {res!r}; re-create the archive.")
    classes = info.get("classes")
    if classes is not None and (not isinstance(classes, list) or not all(isinstance(c, str) for c in classes)):
        raise DatasetError(f"{where}: dataset.json 'classes' must be null or a list of names.")
    return info


def read_dataset_info(path) -> dict[str, Any]:
    """Read dataset.json from an archive (or a folder holding an unpacked one).

    Returns the parsed dict (keys format, version, resolution, num_images,
    classes, source, labels, plus any extra keys). Raises DatasetError if the
    path is missing or is not a linkgan archive.
    """
    path = Path(path)
    if path.is_dir():
        info_path = path / INFO_NAME
        if not info_path.is_file():
            raise DatasetError(
                f"{path}: folder has no {INFO_NAME}; it is a plain image folder. "
                "Pack it with convert_folder (linkgan dataset convert) to get an archive."
            )
        return parse_dataset_info(info_path.read_bytes(), str(path))
    if not path.exists():
        raise DatasetError(f"{path}: no such dataset file or folder.")
    try:
        with zipfile.ZipFile(path) as zf:
            try:
                raw = zf.read(INFO_NAME)
            except KeyError:
                raise DatasetError(
                    f"{path}: zip has no {INFO_NAME}; it was not written by linkgan. "
                    "Unpack it and run convert_folder on the folder."
                ) from None
    except zipfile.BadZipFile:
        raise DatasetError(f"{path}: not a zip file (or a damaged one); re-create the archive.") from None
    return parse_dataset_info(raw, str(path))


def read_classes_json(raw: bytes, where: str) -> list[str]:
    """Parse a classes.json (a JSON list of class names)."""
    try:
        classes = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DatasetError(f"{where}: not valid JSON ({e}); it must be a list of class names.") from None
    if not isinstance(classes, list) or not classes or not all(isinstance(c, str) for c in classes):
        raise DatasetError(f'{where}: must be a non-empty JSON list of class names, e.g. ["background", "skin"].')
    if len(classes) > 256:
        raise DatasetError(f"{where}: {len(classes)} classes; masks are 8-bit, so at most 256 are supported.")
    return classes


def is_image_name(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS)


def _is_hidden(parts: tuple[str, ...]) -> bool:
    # Skips .ipynb_checkpoints, .DS_Store, macOS "._x.jpg" resource forks and
    # our own ".x.zip.partial" temporaries.
    return any(p.startswith(".") or p == "__MACOSX" for p in parts)


def list_image_names(names: Iterable[str]) -> list[str]:
    """Image names (relative posix paths) from a listing, sorted.

    Excludes hidden files and everything under a top-level masks/ folder.
    """
    out = []
    for name in names:
        parts = PurePosixPath(name).parts
        if not parts or parts[0] == MASKS_DIR or _is_hidden(parts) or not is_image_name(name):
            continue
        out.append(name)
    return sorted(out)


def scan_folder(root: Path) -> list[str]:
    """All file paths under root, relative and in posix form (recursive)."""
    names = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        rel_dir = Path(dirpath).relative_to(root)
        for f in filenames:
            names.append((rel_dir / f).as_posix())
    return names


def folder_mask_name(image_name: str) -> str:
    """Mask path for an image in a plain folder: masks/<same relative path>.png."""
    return (PurePosixPath(MASKS_DIR) / PurePosixPath(image_name).with_suffix(".png")).as_posix()

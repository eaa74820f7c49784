"""ImageDataset: training images (and optional label masks) from an archive or folder."""

from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from ..render3d.cameras import mirror_camera_labels
from .archive import (
    ARCHIVE_FORMAT,
    CLASSES_JSON,
    DEPTHS_DIR,
    IMAGES_DIR,
    INFO_NAME,
    MASKS_DIR,
    decode_depth_png,
    folder_mask_name,
    is_image_name,
    list_image_names,
    parse_dataset_info,
    read_classes_json,
    scan_folder,
)
from .errors import DatasetError, name_list
from .images import center_crop_resize, center_crop_resize_mask, load_image_rgb, load_mask


def mirror_class_permutation(classes: list[str] | None) -> np.ndarray | None:
    """Lookup table mapping each class id to its mirror-image class id.

    A horizontal flip turns a left eye into a right eye, so mirrored masks
    swap classes named "left_x"/"right_x" (any case, anywhere in the name) and
    "l_x"/"r_x" (CelebAMask-HQ style). Returns uint8 (num_classes,) or None
    when no class has a partner.
    """
    if not classes:
        return None
    index = {c: i for i, c in enumerate(classes)}
    lut = np.arange(len(classes), dtype=np.uint8)
    swaps = [("left", "right"), ("Left", "Right"), ("LEFT", "RIGHT")]
    for i, name in enumerate(classes):
        partners = [name.replace(a, b) for a, b in swaps if a in name]
        partners += [name.replace(b, a) for a, b in swaps if b in name]
        for prefix_a, prefix_b in (("l_", "r_"), ("r_", "l_"), ("L_", "R_"), ("R_", "L_")):
            if name.startswith(prefix_a):
                partners.append(prefix_b + name[len(prefix_a):])
        for p in partners:
            if p != name and p in index:
                lut[i] = index[p]
                break
    return None if np.array_equal(lut, np.arange(len(classes))) else lut


class ImageDataset(torch.utils.data.Dataset):
    """Square training images from a linkgan archive (zip) or a folder of images.

    ds[i] is a uint8 tensor (3, R, R) in [0, 255], or with return_masks a pair
    (image uint8 (3, R, R), mask int64 (R, R) of class ids in [0, num_classes)).
    With xflip, len(ds) == 2 * num_raw and ds[i + num_raw] is ds[i] mirrored
    left-right (its mask too, with left/right classes such as left_eye and
    right_eye swapped so labels keep meaning "on the image's left"). The
    augmentation is thus a pure function of the index, which makes resumed
    training exact.

    Cameras: when dataset.json holds EG3D camera labels (25 values per image,
    see linkgan.render3d; linkgan's toyheads archives and EG3D's own dataset
    zips do), has_cameras is True and get_camera(i) gives image i's camera,
    mirrored for the flipped copies. With return_cameras, ds[i] also returns it
    as its last element: (image, camera) or (image, mask, camera). Archives
    with depths/ (toyheads) give depth maps through get_depth(i).

    path: a .zip written by linkgan (images/, masks/, dataset.json), any other
    zip of images, a folder holding an unpacked archive, or a folder of images
    (png/jpg/jpeg/webp, any case, searched recursively and sorted; hidden files
    and a top-level masks/ folder are skipped). A plain folder or zip may hold
    masks at masks/<image path with .png suffix> plus classes.json, a JSON list
    of class names.

    resolution: output size R. None means the archive's own resolution (a
    plain folder must give it). Images of another size are center-cropped and
    resized on load.

    Files that cannot be read are skipped at construction (one warning with
    the count and some names); if more than max_bad_fraction of the files are
    bad, DatasetError is raised instead. linkgan archives are trusted and not
    checked file by file. A file that still fails to decode in __getitem__
    (e.g. corrupt pixel data behind a valid header) is replaced, with one
    warning, by the next readable index, so a DataLoader worker never dies.
    """

    def __init__(self, path, resolution: int | None = None, xflip: bool = False, return_masks: bool = False,
                 max_bad_fraction: float = 0.01, return_cameras: bool = False):
        self.path = Path(path)
        self.xflip = bool(xflip)
        self.return_masks = bool(return_masks)
        self.return_cameras = bool(return_cameras)
        if resolution is not None and (not isinstance(resolution, (int, np.integer)) or resolution < 1):
            raise DatasetError(f"resolution must be a positive integer, got {resolution!r}")
        if not 0 <= max_bad_fraction <= 1:
            raise DatasetError(f"max_bad_fraction must be in [0, 1], got {max_bad_fraction!r}")

        # Zip handle, opened lazily per process (DataLoader workers fork or
        # unpickle a copy; a handle shared across processes shares one file
        # offset and returns garbage).
        self._zip: zipfile.ZipFile | None = None
        self._zip_pid: int | None = None
        self._failed: set[int] = set()  # per-process: raw indices that failed to decode

        self._scan()
        names = self._image_names
        if not names:
            raise DatasetError(
                f"{self.path}: no images found (looked for .png, .jpg, .jpeg, .webp"
                + (" under images/" if self.trusted else ", recursively") + "). "
                "Point the path at the folder or archive that holds the images."
            )

        stored = self.info.get("resolution") if self.trusted else None
        if resolution is None:
            if stored is None:
                raise DatasetError(
                    f"{self.path}: a plain image folder or zip has no stored resolution; pass resolution= "
                    "(e.g. 64), or pack it once with convert_folder (linkgan dataset convert)."
                )
            resolution = stored
        self.resolution = int(resolution)

        self._setup_masks()
        if self.return_masks and not self.has_masks:
            raise DatasetError(self._no_masks_reason)

        self.bad_files: list[str] = []
        if not self.trusted:
            self._verify_files(max_bad_fraction)
        self.num_raw = len(self._image_names)
        self._flip_lut = mirror_class_permutation(self.classes) if self.has_masks else None
        self._setup_cameras()
        if self.return_cameras and not self.has_cameras:
            raise DatasetError(self._no_cameras_reason)

    # ------------------------------------------------------------------ listing
    def _scan(self) -> None:
        p = self.path
        if p.is_dir():
            self.kind = "folder"
            names = scan_folder(p)
            self._member_meta = None
            read_small = lambda name: (p / name).read_bytes()  # noqa: E731
        elif p.is_file():
            if not zipfile.is_zipfile(p):
                raise DatasetError(
                    f"{p}: not a zip archive or a folder. Give a dataset .zip (see convert_folder) "
                    "or a folder of images."
                )
            self.kind = "zip"
            try:
                with zipfile.ZipFile(p) as zf:
                    infos = [i for i in zf.infolist() if not i.is_dir()]
                    names = [i.filename for i in infos]
                    self._member_meta = {i.filename: (i.CRC, i.file_size) for i in infos}
                    small = {n: zf.read(n) for n in (INFO_NAME, CLASSES_JSON) if n in self._member_meta}
            except (zipfile.BadZipFile, OSError) as e:
                raise DatasetError(f"{p}: damaged zip archive ({e}); re-create it.") from None
            read_small = small.__getitem__
        else:
            raise DatasetError(f"{p}: no such dataset file or folder.")
        nameset = set(names)
        self._all_names = nameset

        info = None
        if INFO_NAME in nameset:
            raw = read_small(INFO_NAME)
            try:
                looks_ours = json.loads(raw).get("format") == ARCHIVE_FORMAT
            except Exception:
                looks_ours = False
            if looks_ours:
                info = parse_dataset_info(raw, str(p))
        self._foreign_labels = None
        if INFO_NAME in nameset and info is None:
            # Another tool's dataset.json, such as EG3D's {"labels": [[name, [25 floats]], ...]}.
            try:
                self._foreign_labels = json.loads(raw).get("labels")
            except (ValueError, AttributeError):  # not JSON, or not an object: no labels
                pass
        # Archives written by linkgan are trusted: fixed layout, no per-file check.
        self.trusted = info is not None
        if self.trusted:
            self.info: dict[str, Any] = info
            self.classes = info.get("classes")
            prefix = IMAGES_DIR + "/"
            self._image_names = sorted(n for n in names if n.startswith(prefix) and is_image_name(n))
            num = info.get("num_images")
            if isinstance(num, int) and num != len(self._image_names):
                warnings.warn(
                    f"{p}: dataset.json lists {num} images but {len(self._image_names)} were found; "
                    "using the images found.",
                    stacklevel=3,
                )
        else:
            self.classes = None
            if CLASSES_JSON in nameset:
                self.classes = read_classes_json(read_small(CLASSES_JSON), str(p / CLASSES_JSON))
            self._image_names = list_image_names(names)
            self.info = {
                "format": self.kind,
                "resolution": None,
                "num_images": len(self._image_names),
                "classes": self.classes,
                "source": str(p),
                "labels": None,
            }

    def _mask_name(self, image_name: str) -> str:
        if self.trusted:
            rel = image_name[len(IMAGES_DIR) + 1:]
            return f"{MASKS_DIR}/{Path(rel).with_suffix('.png').as_posix()}"
        return folder_mask_name(image_name)

    def _setup_masks(self) -> None:
        masks_present = any(n.startswith(MASKS_DIR + "/") for n in self._all_names)
        self.has_masks = False
        where = "dataset.json" if self.trusted else CLASSES_JSON
        if not masks_present:
            self._no_masks_reason = (
                f"{self.path}: return_masks=True but the dataset has no masks/ folder. "
                "Use a dataset with label masks (e.g. make_toyfaces) or set return_masks=False."
            )
        elif self.classes is None:
            self._no_masks_reason = (
                f"{self.path}: masks/ exists but no class names are given ({where}); write the class "
                f'names as a JSON list, e.g. ["background", "skin", ...], to {where}.'
            )
        else:
            missing = [n for n in self._image_names if self._mask_name(n) not in self._all_names]
            if missing:
                self._no_masks_reason = (
                    f"{self.path}: {len(missing)} images have no mask in masks/: {name_list(missing)}. "
                    "Add the masks (same relative path, .png) or remove those images."
                )
            else:
                self.has_masks = True
                self._no_masks_reason = ""

    def _setup_cameras(self) -> None:
        """Camera labels (num_raw, 25) in image order, from dataset.json's EG3D-style "labels"."""
        self.has_cameras = False
        self._cameras = None
        labels = self.info.get("labels") if self.trusted else self._foreign_labels
        where = f"{self.path}: "
        if not labels:
            self._no_cameras_reason = (
                where + "the dataset has no camera labels (dataset.json \"labels\"), which a 3D generator needs. "
                "Use a posed dataset such as linkgan dataset toyheads, or an EG3D dataset zip with its cameras.")
            return
        try:
            table = {str(name): np.asarray(value, np.float32).reshape(-1) for name, value in labels}
        except (TypeError, ValueError):
            self._no_cameras_reason = where + 'dataset.json "labels" must be a list of [image name, [values]] pairs.'
            return
        missing = [n for n in self._image_names if n not in table]
        wrong = [n for n in self._image_names if n in table and table[n].shape != (25,)]
        if missing or wrong:
            self._no_cameras_reason = where + (
                f"{len(missing)} images have no label in dataset.json: {name_list(missing)}" if missing else
                f'the labels of {len(wrong)} images are not 25-value cameras (16 cam2world + 9 intrinsics): '
                f"{name_list(wrong)}") + "; give every image its EG3D camera label."
            return
        self._cameras = np.stack([table[n] for n in self._image_names])
        self.has_cameras = True
        self._no_cameras_reason = ""

    def _raw_index(self, index: int) -> tuple[int, bool]:
        total = len(self)
        if index < 0:
            index += total
        if not 0 <= index < total:
            raise IndexError(f"index {index} out of range for a dataset of {total} images")
        return (index - self.num_raw, True) if index >= self.num_raw else (index, False)

    def get_camera(self, index: int) -> torch.Tensor:
        """The EG3D camera label (25,) float32 of item ``index`` (mirrored for an xflip copy)."""
        if not self.has_cameras:
            raise DatasetError(self._no_cameras_reason)
        raw, flip = self._raw_index(index)
        camera = self._cameras[raw]
        return torch.from_numpy(mirror_camera_labels(camera) if flip else camera.copy())

    @property
    def cameras(self) -> torch.Tensor | None:
        """All camera labels (len(self), 25) float32 in item order, or None without cameras."""
        if not self.has_cameras:
            return None
        cams = self._cameras
        if self.xflip:
            cams = np.concatenate([cams, mirror_camera_labels(cams)])
        return torch.from_numpy(np.ascontiguousarray(cams))

    @property
    def has_depth(self) -> bool:
        """Whether the archive holds depth maps (depths/, described in dataset.json "depth")."""
        return self.trusted and isinstance(self.info.get("depth"), dict)

    def get_depth(self, index: int) -> torch.Tensor:
        """Depth map (R, R) float32 of item ``index``: distance along each pixel's ray, inf where
        nothing was hit (mirrored for an xflip copy; nearest-neighbour resized to the dataset's
        resolution)."""
        if not self.has_depth:
            raise DatasetError(f"{self.path}: the dataset has no depth maps (depths/ and dataset.json \"depth\").")
        raw, flip = self._raw_index(index)
        spec = self.info["depth"]
        rel = self._image_names[raw][len(IMAGES_DIR) + 1:]
        name = f"{spec.get('folder', DEPTHS_DIR)}/{Path(rel).with_suffix('.png').as_posix()}"
        depth = decode_depth_png(self._read(name), float(spec["near"]), float(spec["far"]))
        if depth.shape != (self.resolution, self.resolution):
            rows = (np.arange(self.resolution) * depth.shape[0]) // self.resolution
            cols = (np.arange(self.resolution) * depth.shape[1]) // self.resolution
            depth = depth[rows][:, cols]
        if flip:
            depth = depth[:, ::-1]
        return torch.from_numpy(np.ascontiguousarray(depth))

    def _verify_files(self, max_bad_fraction: float) -> None:
        """Cheap check of every file: header, decompression-bomb size, PNG chunk CRCs."""
        good, bad = [], []
        check_masks = self.return_masks
        names = self._image_names
        for name in tqdm(names, desc=f"checking {self.path.name}", unit="file", delay=2, leave=False):
            try:
                self._verify_one(name)
                if check_masks:
                    self._verify_one(self._mask_name(name))
            except DatasetError:
                bad.append(name)
            else:
                good.append(name)
        if len(bad) > max_bad_fraction * len(names):
            raise DatasetError(
                f"{self.path}: {len(bad)} of {len(names)} files are unreadable or corrupt "
                f"(more than max_bad_fraction={max_bad_fraction:g}): {name_list(bad)}. "
                "Delete or fix them, or pack the folder with `linkgan dataset convert`, which skips and "
                "reports bad files (--max-bad-fraction)."
            )
        if bad:
            warnings.warn(
                f"{self.path}: skipping {len(bad)} unreadable or corrupt files: {name_list(bad)}",
                stacklevel=3,
            )
        self.bad_files = bad
        self._image_names = good

    def _verify_one(self, name: str) -> None:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                with Image.open(io.BytesIO(self._read(name))) as img:
                    img.verify()
        except DatasetError:
            raise
        except Exception as e:
            raise DatasetError(f"{name}: {type(e).__name__}: {e}") from None

    # ------------------------------------------------------------------ reading
    def _zipfile(self) -> zipfile.ZipFile:
        pid = os.getpid()
        if self._zip is None or self._zip_pid != pid:
            self._zip = zipfile.ZipFile(self.path)
            self._zip_pid = pid
        return self._zip

    def _read(self, name: str) -> bytes:
        try:
            if self.kind == "zip":
                return self._zipfile().read(name)
            with open(self.path / name, "rb") as f:
                return f.read()
        except (OSError, zipfile.BadZipFile, KeyError) as e:
            raise DatasetError(f"{self.path}: cannot read {name} ({e})") from None

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_zip"] = None
        state["_zip_pid"] = None
        return state

    def __len__(self) -> int:
        return self.num_raw * (2 if self.xflip else 1)

    def _load_raw(self, raw_index: int) -> tuple[np.ndarray, np.ndarray | None]:
        """Decode raw image `raw_index`: uint8 (R,R,3) and, with masks, uint8 (R,R)."""
        name = self._image_names[raw_index]
        label = f"{self.path}:{name}" if self.kind == "zip" else str(self.path / name)
        img = load_image_rgb(self._read(name), name=label)
        stored_size = img.size
        if img.size != (self.resolution, self.resolution):
            img = center_crop_resize(img, self.resolution)
        image = np.asarray(img)
        mask = None
        if self.return_masks:
            mask_name = self._mask_name(name)
            mask_label = f"{self.path}:{mask_name}" if self.kind == "zip" else str(self.path / mask_name)
            m = load_mask(self._read(mask_name), name=mask_label, num_classes=len(self.classes))
            if m.size != stored_size:
                raise DatasetError(f"{mask_label}: mask is {m.size[0]}x{m.size[1]} but its image is "
                                   f"{stored_size[0]}x{stored_size[1]}; masks must match their images.")
            if m.size != (self.resolution, self.resolution):
                m = center_crop_resize_mask(m, self.resolution)
            mask = np.asarray(m)
        return image, mask

    def __getitem__(self, index: int):
        n = self.num_raw
        raw, flip = self._raw_index(index)
        image = mask = None
        for attempt in range(n):
            j = (raw + attempt) % n
            if j in self._failed:
                continue
            try:
                image, mask = self._load_raw(j)
                break
            except DatasetError as e:
                # Warn once per file and process; the substitute is the next
                # readable index, so the result depends only on the index.
                self._failed.add(j)
                warnings.warn(f"{e} -- using the next readable image in its place.", stacklevel=2)
        if image is None:
            raise DatasetError(f"{self.path}: none of the {n} images could be decoded.")
        if flip:
            image = image[:, ::-1]
            if mask is not None:
                mask = mask[:, ::-1]
                if self._flip_lut is not None:
                    mask = self._flip_lut[mask]
        image_t = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))
        out = (image_t,) if mask is None else (image_t, torch.from_numpy(mask.astype(np.int64)))
        if self.return_cameras:
            # The camera of the image actually loaded (j differs from raw when raw failed to decode).
            camera = self._cameras[j]
            out += (torch.from_numpy(mirror_camera_labels(camera) if flip else camera.copy()),)
        return out[0] if len(out) == 1 else out

    # ------------------------------------------------------------------ identity
    @functools.cached_property
    def content_hash(self) -> str:
        """sha256 hex digest of the dataset content (not of resolution/xflip).

        Zips hash member names, CRC32s and sizes; folders hash relative names,
        sizes and modification times. Covers images, masks and the metadata
        files, so any edit gives a new hash.
        """
        h = hashlib.sha256()
        h.update(f"linkgan-data-v1\0{self.kind}\0".encode())
        names = list(self._image_names) + list(self.bad_files)
        if self.has_masks:
            names += [self._mask_name(n) for n in names]
        names += [n for n in (INFO_NAME, CLASSES_JSON) if n in self._all_names]
        for name in sorted(set(names)):
            if self._member_meta is not None:
                crc, size = self._member_meta[name]
                h.update(f"{name}\0{crc}\0{size}\n".encode())
            else:
                st = os.stat(self.path / name)
                h.update(f"{name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        return h.hexdigest()

    @property
    def num_classes(self) -> int | None:
        return len(self.classes) if self.classes is not None else None

    @property
    def image_names(self) -> list[str]:
        """Relative names of the usable images; index i of the dataset is image_names[i % num_raw]."""
        return list(self._image_names)

    def __repr__(self) -> str:
        return (
            f"ImageDataset({str(self.path)!r}, resolution={self.resolution}, num_raw={self.num_raw}, "
            f"xflip={self.xflip}, has_masks={self.has_masks}, return_masks={self.return_masks}, "
            f"has_cameras={self.has_cameras})"
        )

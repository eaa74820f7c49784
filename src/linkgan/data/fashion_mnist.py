"""Fashion-MNIST from Debian's dataset-fashion-mnist package, as a dataset archive.

The package (apt-get install dataset-fashion-mnist) installs the original
IDX files in /usr/share/datasets/fashion-mnist: 60k training and 10k test
images, 28x28 grey, light clothing on a black background. It is the
project's real-image benchmark and works offline.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
from PIL import Image

from .archive import write_archive
from .errors import DatasetError
from .images import center_crop_resize

DEFAULT_ROOT = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                         "Bag", "Ankle boot"]
_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_INSTALL = "sudo apt-get install dataset-fashion-mnist"


def _find(root: Path, stem: str) -> Path | None:
    for name in (stem + ".gz", stem):  # Debian ships .gz; accept unpacked copies too
        if (root / name).is_file():
            return root / name
    return None


def _read_idx(path: Path, magic: int, ndim: int) -> np.ndarray:
    """Parse an IDX file (big-endian header: magic, then one uint32 per dimension)."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as e:
        raise DatasetError(f"{path}: cannot read ({e}); reinstall with: {_INSTALL}") from None
    header = 4 + 4 * ndim
    if len(raw) < header or int.from_bytes(raw[:4], "big") != magic:
        raise DatasetError(f"{path}: not an IDX file with magic {magic}; reinstall with: {_INSTALL}")
    shape = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    if len(raw) - header != int(np.prod(shape)):
        raise DatasetError(f"{path}: truncated ({len(raw) - header} bytes of data for shape {shape}); "
                           f"reinstall with: {_INSTALL}")
    return np.frombuffer(raw, np.uint8, offset=header).reshape(shape)


def load_fashion_mnist(root: str | Path = DEFAULT_ROOT, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """Images uint8 (N, 28, 28) in [0, 255] and class labels uint8 (N,) in [0, 10).

    split: "train" (60k), "test" (10k) or "all" (train then test, 70k).
    """
    if split not in ("train", "test", "all"):
        raise DatasetError(f'split must be "train", "test" or "all", got {split!r}')
    root = Path(root)
    parts = ("train", "test") if split == "all" else (split,)
    paths = {}
    missing = []
    for part in parts:
        for stem in _FILES[part]:
            found = _find(root, stem)
            if found is None:
                missing.append(stem + ".gz")
            paths[stem] = found
    if missing:
        raise DatasetError(
            f"Fashion-MNIST files not found in {root} (missing {', '.join(missing)}). Install them with: "
            f"{_INSTALL} -- or pass root= a folder holding the *-idx3-ubyte.gz / *-idx1-ubyte.gz files."
        )
    images, labels = [], []
    for part in parts:
        img_stem, lab_stem = _FILES[part]
        x = _read_idx(paths[img_stem], 2051, 3)
        y = _read_idx(paths[lab_stem], 2049, 1)
        if len(x) != len(y):
            raise DatasetError(f"{root}: {img_stem} has {len(x)} images but {lab_stem} has {len(y)} labels; "
                               f"reinstall with: {_INSTALL}")
        images.append(x)
        labels.append(y)
    return np.concatenate(images), np.concatenate(labels)


def fashion_mnist_image(grey28: np.ndarray, res: int) -> np.ndarray:
    """One 28x28 grey image -> RGB uint8 (res, res, 3).

    The image is first padded with 2 black pixels per side to 32x32 (the
    background is black, so padding adds no edge, and at res=32 no pixel is
    resampled); other resolutions then resize the 32x32 image (BICUBIC up,
    LANCZOS down).
    """
    padded = np.pad(grey28, 2)
    img = Image.fromarray(padded, "L")
    if res != 32:
        img = center_crop_resize(img, res)
    return np.repeat(np.asarray(img)[:, :, None], 3, axis=2)


def make_fashion_mnist(out, res: int = 32, root: str = DEFAULT_ROOT, split: str = "train",
                       progress: bool = True) -> Path:
    """Write Fashion-MNIST as an archive of RGB images at res x res; returns `out` as a Path.

    No masks (classes is null). dataset.json stores each image's clothing
    class under "class_labels" (ints in [0, 10)) and the names under
    "class_label_names". Raises DatasetError (with the apt-get command) if
    the files are missing.
    """
    if not isinstance(res, (int, np.integer)) or res < 8:
        raise DatasetError(f"res must be an integer >= 8, got {res!r}")
    images, labels = load_fashion_mnist(root, split)
    write_archive(
        out, (fashion_mnist_image(x, int(res)) for x in images), int(res), classes=None,
        source=f"fashion-mnist split={split} ({root})", progress_total=len(images), progress=progress,
        extra_info={"class_labels": labels.tolist(), "class_label_names": FASHION_MNIST_CLASSES},
        desc=f"fashion-mnist {split}",
    )
    return Path(out)

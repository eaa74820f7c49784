"""Training data: the dataset archive format, ImageDataset, converters and generators.

- ImageDataset reads an archive (zip) or a folder of images, optionally with
  per-pixel class masks.
- convert_folder packs any image folder into an archive; make_toyfaces and
  make_scenes render procedural datasets with exact masks; make_toyheads
  renders posed 3D heads with cameras, depths and masks; make_fashion_mnist
  packs Debian's Fashion-MNIST.
- write_archive / read_dataset_info are the one place the archive format
  lives (see linkgan.data.archive).
"""

from .archive import ARCHIVE_FORMAT, ARCHIVE_VERSION, ArchiveWriter, read_dataset_info, write_archive
from .convert import convert_folder
from .dataset import ImageDataset
from .errors import DatasetError
from .fashion_mnist import FASHION_MNIST_CLASSES, load_fashion_mnist, make_fashion_mnist
from .images import (
    IMAGE_EXTENSIONS,
    center_crop_resize,
    center_crop_resize_mask,
    load_image_rgb,
    load_mask,
)
from .preview import colorize_mask, dataset_preview
from .scenes import SCENES_CLASSES, make_scenes
from .toyfaces import TOYFACES_CLASSES, TOYFACES_EYES_BOX, TOYFACES_MOUTH_BOX, make_toyfaces
from .toyheads import TOYHEADS_CLASSES, make_toyheads

__all__ = [
    "ARCHIVE_FORMAT",
    "ARCHIVE_VERSION",
    "ArchiveWriter",
    "DatasetError",
    "FASHION_MNIST_CLASSES",
    "IMAGE_EXTENSIONS",
    "ImageDataset",
    "SCENES_CLASSES",
    "TOYFACES_CLASSES",
    "TOYFACES_EYES_BOX",
    "TOYFACES_MOUTH_BOX",
    "TOYHEADS_CLASSES",
    "center_crop_resize",
    "center_crop_resize_mask",
    "colorize_mask",
    "convert_folder",
    "dataset_preview",
    "load_fashion_mnist",
    "load_image_rgb",
    "load_mask",
    "make_fashion_mnist",
    "make_scenes",
    "make_toyfaces",
    "make_toyheads",
    "read_dataset_info",
    "write_archive",
]

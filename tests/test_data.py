"""Behaviour of linkgan.data: archives, ImageDataset, convert_folder and the dataset generators."""

from __future__ import annotations

import gzip
import io
import json
import pickle
import struct
import warnings
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from linkgan.data import (
    SCENES_CLASSES,
    TOYFACES_CLASSES,
    TOYFACES_EYES_BOX,
    TOYFACES_MOUTH_BOX,
    DatasetError,
    ImageDataset,
    center_crop_resize,
    center_crop_resize_mask,
    convert_folder,
    load_image_rgb,
    make_fashion_mnist,
    make_scenes,
    make_toyfaces,
    read_dataset_info,
    write_archive,
)
from linkgan.data.fashion_mnist import DEFAULT_ROOT, load_fashion_mnist
from linkgan.data.scenes import scene
from linkgan.data.toyfaces import toyface

# ----------------------------------------------------------------------------- helpers


def png_bytes(arr: np.ndarray, mode: str | None = None) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr, mode).save(buf, "PNG")
    return buf.getvalue()


def save(path: Path, arr: np.ndarray, fmt: str | None = None, mode: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr, mode).save(path, fmt)
    return path


def noise(h: int, w: int, seed: int = 0, channels: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    shape = (h, w, channels) if channels > 1 else (h, w)
    return rng.integers(0, 256, shape, dtype=np.uint8)


def corrupt_pixels_png(data: bytes) -> bytes:
    """A PNG whose header and chunk CRCs are valid but whose pixel data is not zlib.

    Image.verify() accepts it; decoding fails. It stands for damage that a
    cheap check cannot see.
    """
    out, pos = bytearray(data[:8]), 8
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IDAT":
            body = bytes(255 - b for b in body)
        out += struct.pack(">I4s", length, kind) + body + struct.pack(">I", zlib.crc32(kind + body))
        pos += 12 + length
    return bytes(out)


def within_class_spread(image: np.ndarray, mask: np.ndarray) -> float:
    """Sum over classes of the colour variance inside the class (low when the mask follows the edges)."""
    img = image.reshape(-1, 3).astype(np.float64)
    ids = mask.reshape(-1)
    return float(sum(img[ids == c].var(axis=0).sum() * (ids == c).sum() for c in np.unique(ids)))


def no_partial_files(folder: Path) -> bool:
    return not any(p.name.endswith(".partial") for p in folder.iterdir())


# ----------------------------------------------------------------------------- generators


@pytest.mark.parametrize("make", [make_toyfaces, make_scenes])
def test_generator_output_depends_only_on_seed_not_on_worker_count(tmp_path, make):
    one = make(tmp_path / "a.zip", 6, res=32, seed=3, workers=1, progress=False)
    two = make(tmp_path / "b.zip", 6, res=32, seed=3, workers=2, progress=False)
    other = make(tmp_path / "c.zip", 6, res=32, seed=4, workers=1, progress=False)
    assert one.read_bytes() == two.read_bytes()
    with zipfile.ZipFile(one) as za, zipfile.ZipFile(other) as zc:
        names = [n for n in za.namelist() if n.startswith(("images/", "masks/"))]
        assert len(names) == 12
        assert all(za.read(n) != zc.read(n) for n in names if n.startswith("images/"))


def test_toyfaces_archive_has_documented_layout(tmp_path):
    out = make_toyfaces(tmp_path / "faces.zip", 3, res=32, seed=0, workers=1, progress=False)
    info = read_dataset_info(out)
    assert info["format"] == "linkgan-dataset" and info["version"] == 1
    assert info["resolution"] == 32 and info["num_images"] == 3
    assert info["classes"] == TOYFACES_CLASSES and info["labels"] is None
    assert info["source"] == "toyfaces seed=0"
    with zipfile.ZipFile(out) as zf:
        assert all(i.compress_type == zipfile.ZIP_STORED for i in zf.infolist())
        img = Image.open(io.BytesIO(zf.read("images/00000002.png")))
        mask = Image.open(io.BytesIO(zf.read("masks/00000002.png")))
    assert img.mode == "RGB" and img.size == (32, 32)
    assert mask.mode == "L" and mask.size == (32, 32)


def test_toyfaces_masks_line_up_with_the_face_parts():
    seen = set()
    for i in range(16):
        image, mask = toyface(0, i, 64)
        assert image.shape == (64, 64, 3) and image.dtype == np.uint8
        assert mask.shape == (64, 64) and mask.max() < len(TOYFACES_CLASSES)
        seen.update(np.unique(mask).tolist())
        for part in ("background", "skin", "left_eye", "right_eye", "nose", "mouth"):
            assert (mask == TOYFACES_CLASSES.index(part)).any(), f"face {i} has no {part}"
        lum = image.astype(float) @ [0.299, 0.587, 0.114]
        skin = np.median(lum[mask == 1])
        ys, xs = np.mgrid[0:64, 0:64]
        # left_eye is the eye on the image's left.
        assert xs[mask == 3].mean() < 32 < xs[mask == 4].mean()
        for eye in (3, 4):
            # Each eye holds a bright white and a pupil darker than the skin.
            assert lum[mask == eye].max() > lum[mask == eye].min() + 100
            assert lum[mask == eye].min() < skin
        # Nostrils make the nose darker somewhere than the skin around it.
        assert lum[mask == 5].min() < 0.9 * skin
        # Lips are redder than they are green, relative to the skin.
        mouth, face = image[mask == 6].astype(float), image[mask == 1].astype(float)
        assert (mouth[:, 0] / (mouth[:, 1] + 1)).mean() > (face[:, 0] / (face[:, 1] + 1)).mean()
        # The labels follow the colour edges: shifting the mask by 2 px mixes classes.
        spread = within_class_spread(image, mask)
        for shift in ((2, 0), (-2, 0), (0, 2), (0, -2)):
            assert spread < within_class_spread(image, np.roll(mask, shift, axis=(0, 1)))
    assert seen == set(range(len(TOYFACES_CLASSES)))


def test_toyfaces_eyes_and_mouth_stay_inside_their_fixed_boxes():
    def inside(mask, ids, box):
        ys, xs = np.nonzero(np.isin(mask, ids))
        r = mask.shape[0]
        x0, y0, x1, y1 = box
        return xs.min() >= x0 * r and (xs.max() + 1) <= x1 * r and ys.min() >= y0 * r and (ys.max() + 1) <= y1 * r

    for i in range(40):
        _, mask = toyface(11, i, 32)
        assert inside(mask, [3, 4], TOYFACES_EYES_BOX), f"eyes of face {i} leave {TOYFACES_EYES_BOX}"
        assert inside(mask, [6], TOYFACES_MOUTH_BOX), f"mouth of face {i} leaves {TOYFACES_MOUTH_BOX}"


def test_scenes_masks_line_up_with_sky_ground_and_objects():
    seen = set()
    for i in range(16):
        image, mask = scene(0, i, 64)
        assert image.shape == (64, 64, 3) and mask.max() < len(SCENES_CLASSES)
        seen.update(np.unique(mask).tolist())
        assert (mask == 0).any() and (mask == 1).any() and (mask == 2).any()
        ys = np.mgrid[0:64, 0:64][0]
        assert ys[mask == 0].mean() < ys[mask == 1].mean(), "sky should be above the ground"
        sky, ground = image[mask == 0].astype(float).mean(0), image[mask == 1].astype(float).mean(0)
        assert np.abs(sky - ground).sum() > 40
        # Just above the horizon line the sky differs from the ground just below it.
        cols = [x for x in range(64) if (mask[:, x] == 0).any() and (mask[:, x] == 1).any()]
        above = [image[np.nonzero(mask[:, x] == 0)[0].max(), x].astype(int) for x in cols]
        below = [image[np.nonzero(mask[:, x] == 1)[0].min(), x].astype(int) for x in cols]
        assert np.mean([np.abs(a - b).sum() > 15 for a, b in zip(above, below)]) > 0.9
    assert seen == set(range(len(SCENES_CLASSES)))


def test_rendered_labels_coincide_with_the_pixels_they_colour():
    from linkgan.data.procedural import Canvas, ellipse, polygon

    c = Canvas(16)
    c.fill(*ellipse(0.41, 0.53, 0.27, 0.19, angle=0.4), (1.0, 1.0, 1.0), 1)
    c.fill(*polygon([(0.6, 0.1), (0.95, 0.2), (0.7, 0.45)]), (1.0, 1.0, 1.0), 1)
    image, label = c.finish(2)
    # A pixel is labelled by majority and coloured by coverage: both say "more than half".
    assert np.array_equal(image[..., 0] > 128, label == 1)
    assert 0 < (label == 1).mean() < 0.5


def test_scene_layout_varies_between_images():
    masks = np.stack([scene(1, i, 32)[1] for i in range(12)])
    for cls in (0, 2):  # the sky and building regions move around
        coverage = (masks == cls).mean(axis=0)
        assert ((coverage > 0.05) & (coverage < 0.95)).mean() > 0.1


# ----------------------------------------------------------------------------- single images


def test_load_image_rgb_accepts_paths_bytes_and_files_and_names_bad_files(tmp_path):
    data = png_bytes(noise(5, 7))
    (tmp_path / "a.png").write_bytes(data)
    for src in (tmp_path / "a.png", str(tmp_path / "a.png"), data, io.BytesIO(data)):
        img = load_image_rgb(src)
        assert img.mode == "RGB" and img.size == (7, 5)
    (tmp_path / "fake.jpg").write_text("not an image")
    with pytest.raises(DatasetError, match="fake.jpg"):
        load_image_rgb(tmp_path / "fake.jpg")
    with pytest.raises(DatasetError, match="truncated|corrupt"):
        load_image_rgb(corrupt_pixels_png(data))


def test_load_image_rgb_refuses_decompression_bombs(monkeypatch):
    data = png_bytes(noise(40, 40))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 1600 pixels: above the limit, below twice it
    with pytest.raises(DatasetError, match="too large"):
        load_image_rgb(data, name="big.png")


def test_load_image_rgb_composites_transparency_over_white():
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[:, :2, 3] = 255  # left half opaque red, right half transparent
    img = np.asarray(load_image_rgb(png_bytes(rgba, "RGBA")))
    assert (img[:, :2] == [255, 0, 0]).all() and (img[:, 2:] == 255).all()


def test_center_crop_resize_keeps_the_middle_and_masks_keep_their_ids():
    arr = np.zeros((20, 40, 3), np.uint8)
    arr[:, 10:30] = 200  # the central square is uniform
    out = center_crop_resize(Image.fromarray(arr), 8)
    assert out.size == (8, 8) and (np.asarray(out) == 200).all()
    mask = np.zeros((30, 30), np.uint8)
    mask[:, 15:] = 6
    small = np.asarray(center_crop_resize_mask(Image.fromarray(mask, "L"), 7))
    assert set(np.unique(small)) == {0, 6}


# ----------------------------------------------------------------------------- convert_folder


def make_mixed_folder(root: Path) -> None:
    save(root / "rgb.png", noise(30, 40))
    save(root / "grey.jpg", noise(50, 50, channels=1), mode="L")
    rgba = noise(64, 20, channels=4)
    rgba[..., 3] = 0  # fully transparent -> white
    save(root / "alpha.png", rgba, mode="RGBA")
    pal = Image.fromarray(noise(16, 16)).convert("P", palette=Image.Palette.ADAPTIVE, colors=8)
    pal.save(root / "palette.png")
    save(root / "sub" / "nested.webp", noise(24, 24), "WEBP")
    save(root / "UPPER.JPG", noise(33, 21), "JPEG")
    (root / "broken.png").write_bytes(png_bytes(noise(32, 32))[:100])  # truncated
    (root / "fake.jpg").write_text("this is text, not a JPEG")
    (root / "notes.txt").write_text("ignored: not an image extension")


def test_convert_folder_handles_mixed_sizes_and_modes_and_skips_bad_files(tmp_path):
    src = tmp_path / "src"
    make_mixed_folder(src)
    with pytest.warns(UserWarning, match="skipped 2"):
        result = convert_folder(src, tmp_path / "out.zip", 16, progress=False, max_bad_fraction=0.5)
    assert result["written"] == 6
    assert sorted(result["skipped"]) == ["broken.png", "fake.jpg"]
    assert set(result["reasons"]) == {"broken.png", "fake.jpg"}
    info = read_dataset_info(tmp_path / "out.zip")
    assert info["resolution"] == 16 and info["num_images"] == 6 and info["classes"] is None
    assert info["source_files"] == ["UPPER.JPG", "alpha.png", "grey.jpg", "palette.png", "rgb.png",
                                    "sub/nested.webp"]
    ds = ImageDataset(tmp_path / "out.zip")
    assert len(ds) == 6 and ds.resolution == 16 and ds.bad_files == []
    images = [ds[i] for i in range(6)]
    assert all(x.shape == (3, 16, 16) and x.dtype == torch.uint8 for x in images)
    assert (images[1] == 255).all()  # transparent RGBA became white
    grey = images[2]
    assert torch.equal(grey[0], grey[1]) and torch.equal(grey[1], grey[2])


def test_convert_folder_with_too_many_bad_files_fails_and_writes_nothing(tmp_path):
    src = tmp_path / "src"
    for i in range(3):
        save(src / f"ok{i}.png", noise(8, 8, seed=i))
    (src / "fake.jpg").write_text("nope")
    out = tmp_path / "out" / "data.zip"
    with pytest.raises(DatasetError, match="fake.jpg"):
        convert_folder(src, out, 8, progress=False)
    assert not out.exists() and no_partial_files(out.parent)


def test_convert_folder_tolerates_up_to_ten_percent_bad_files_by_default(tmp_path):
    src = tmp_path / "src"
    for i in range(100):
        save(src / f"{i:03d}.png", noise(6, 6, seed=i))
    (src / "zzz.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.warns(UserWarning, match="zzz.png"):
        result = convert_folder(src, tmp_path / "out.zip", 8, progress=False)
    assert result["written"] == 100 and result["skipped"] == ["zzz.png"]


def test_convert_and_dataset_reject_empty_folders(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "texts").mkdir()
    (tmp_path / "texts" / "readme.txt").write_text("no images here")
    for folder in ("empty", "texts"):
        with pytest.raises(DatasetError, match="no images"):
            convert_folder(tmp_path / folder, tmp_path / "out.zip", 8, progress=False)
        with pytest.raises(DatasetError, match="no images"):
            ImageDataset(tmp_path / folder, resolution=8)
    assert not (tmp_path / "out.zip").exists()


def make_masked_folder(root: Path) -> None:
    for i, (h, w) in enumerate([(40, 40), (30, 60)]):
        save(root / f"img{i}.jpg", noise(h, w, seed=i), "JPEG")
        mask = np.zeros((h, w), np.uint8)
        mask[:, w // 2:] = 2  # right half is class 2
        save(root / "masks" / f"img{i}.png", mask, mode="L")
    (root / "classes.json").write_text(json.dumps(["bg", "a", "b"]))


def test_convert_folder_carries_masks_resized_nearest(tmp_path):
    src = tmp_path / "src"
    make_masked_folder(src)
    convert_folder(src, tmp_path / "out.zip", 10, progress=False)
    ds = ImageDataset(tmp_path / "out.zip", return_masks=True)
    assert ds.classes == ["bg", "a", "b"] and ds.has_masks
    for i in range(2):
        image, mask = ds[i]
        assert image.shape == (3, 10, 10) and mask.shape == (10, 10) and mask.dtype == torch.int64
        assert (mask[:, :5] == 0).all() and (mask[:, 5:] == 2).all()


def test_convert_folder_names_images_without_masks(tmp_path):
    src = tmp_path / "src"
    make_masked_folder(src)
    save(src / "lonely.png", noise(8, 8))
    with pytest.raises(DatasetError, match="lonely.png"):
        convert_folder(src, tmp_path / "out.zip", 8, progress=False)
    (src / "lonely.png").unlink()
    (src / "classes.json").unlink()
    with pytest.raises(DatasetError, match="classes.json"):
        convert_folder(src, tmp_path / "out.zip", 8, progress=False)
    assert not (tmp_path / "out.zip").exists()


def test_write_archive_leaves_nothing_behind_when_interrupted(tmp_path):
    def images():
        yield noise(8, 8)
        raise RuntimeError("crash while writing")

    out = tmp_path / "data.zip"
    with pytest.raises(RuntimeError):
        write_archive(out, images(), 8, progress=False)
    assert not out.exists() and no_partial_files(tmp_path)
    out.write_bytes(b"previous archive")
    with pytest.raises(RuntimeError):
        write_archive(out, images(), 8, progress=False)
    assert out.read_bytes() == b"previous archive"  # an old archive survives a failed rewrite


# ----------------------------------------------------------------------------- ImageDataset


@pytest.fixture(scope="module")
def faces_zip(tmp_path_factory):
    return make_toyfaces(tmp_path_factory.mktemp("faces") / "faces.zip", 5, res=32, seed=0, workers=1,
                         progress=False)


def test_dataset_over_archive_returns_uint8_images_and_int64_masks(faces_zip):
    ds = ImageDataset(faces_zip, return_masks=True)
    assert (ds.resolution, ds.num_raw, len(ds), ds.classes) == (32, 5, 5, TOYFACES_CLASSES)
    image, mask = ds[4]
    assert image.shape == (3, 32, 32) and image.dtype == torch.uint8
    assert mask.shape == (32, 32) and mask.dtype == torch.int64 and int(mask.max()) < 7
    plain = ImageDataset(faces_zip, resolution=16)
    assert plain[0].shape == (3, 16, 16)
    with pytest.raises(IndexError):
        plain[5]


def test_xflip_index_n_plus_i_is_the_mirror_of_i_with_left_and_right_swapped(faces_zip):
    ds = ImageDataset(faces_zip, xflip=True, return_masks=True)
    n = ds.num_raw
    assert len(ds) == 2 * n
    swap = torch.arange(7)
    swap[3], swap[4] = 4, 3  # left_eye <-> right_eye
    for i in range(n):
        (img, mask), (fimg, fmask) = ds[i], ds[i + n]
        assert torch.equal(fimg, img.flip(-1))
        assert torch.equal(fmask, swap[mask.flip(-1)])
        # Still true after the flip: left_eye is on the image's left.
        xs = torch.arange(32).expand(32, 32)
        assert xs[fmask == 3].float().mean() < 16 < xs[fmask == 4].float().mean()


def test_dataset_over_folder_needs_a_resolution_and_resizes(tmp_path):
    save(tmp_path / "a.png", noise(20, 30))
    save(tmp_path / "b" / "c.JPEG", noise(12, 12), "JPEG")
    with pytest.raises(DatasetError, match="resolution"):
        ImageDataset(tmp_path)
    ds = ImageDataset(tmp_path, resolution=8, xflip=True)
    assert ds.image_names == ["a.png", "b/c.JPEG"] and len(ds) == 4
    assert all(ds[i].shape == (3, 8, 8) for i in range(4))
    assert torch.equal(ds[3], ds[1].flip(-1))


def test_return_masks_without_masks_is_a_clear_error(tmp_path):
    save(tmp_path / "a.png", noise(8, 8))
    with pytest.raises(DatasetError, match="no masks"):
        ImageDataset(tmp_path, resolution=8, return_masks=True)


def test_dataset_folder_with_masks_and_classes_json(tmp_path):
    make_masked_folder(tmp_path)
    ds = ImageDataset(tmp_path, resolution=10, return_masks=True)
    assert ds.image_names == ["img0.jpg", "img1.jpg"]
    image, mask = ds[1]
    assert image.shape == (3, 10, 10) and (mask[:, 5:] == 2).all() and (mask[:, :5] == 0).all()


def test_dataset_skips_unreadable_files_with_one_warning_or_fails_above_the_limit(tmp_path):
    for i in range(4):
        save(tmp_path / f"{i}.png", noise(8, 8, seed=i))
    (tmp_path / "fake.jpg").write_text("text")
    with pytest.raises(DatasetError, match="fake.jpg"):
        ImageDataset(tmp_path, resolution=8)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = ImageDataset(tmp_path, resolution=8, max_bad_fraction=0.5)
    assert len([w for w in caught if "fake.jpg" in str(w.message)]) == 1
    assert ds.bad_files == ["fake.jpg"] and ds.num_raw == 4


def test_a_file_that_fails_only_at_decode_time_is_replaced_by_the_next_image(tmp_path):
    for i in range(4):
        save(tmp_path / f"{i}.png", noise(8, 8, seed=i))
    (tmp_path / "1.png").write_bytes(corrupt_pixels_png((tmp_path / "1.png").read_bytes()))
    ds = ImageDataset(tmp_path, resolution=8)
    assert ds.num_raw == 4  # verify() cannot see this damage
    with pytest.warns(UserWarning, match="1.png"):
        substitute = ds[1]
    assert torch.equal(substitute, ds[2])


def test_dataloader_workers_survive_bad_files(tmp_path):
    for i in range(12):
        save(tmp_path / f"{i:02d}.png", noise(8, 8, seed=i))
    (tmp_path / "notes.jpg").write_text("not an image")
    (tmp_path / "05.png").write_bytes(corrupt_pixels_png((tmp_path / "05.png").read_bytes()))
    with pytest.warns(UserWarning, match="notes.jpg"):
        ds = ImageDataset(tmp_path, resolution=8, xflip=True, max_bad_fraction=0.2)
    loader = torch.utils.data.DataLoader(ds, batch_size=5, num_workers=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        batches = list(loader)
    assert sum(len(b) for b in batches) == 24
    assert all(b.dtype == torch.uint8 and b.shape[1:] == (3, 8, 8) for b in batches)


def test_a_damaged_member_of_a_trusted_archive_is_replaced_not_fatal(tmp_path, faces_zip):
    damaged = tmp_path / "damaged.zip"
    with zipfile.ZipFile(faces_zip) as src, zipfile.ZipFile(damaged, "w") as dst:
        for name in src.namelist():
            data = src.read(name)
            dst.writestr(name, corrupt_pixels_png(data) if name == "images/00000001.png" else data)
    ds = ImageDataset(damaged, xflip=True)
    assert ds.num_raw == 5  # archives written by linkgan are not checked file by file
    with pytest.warns(UserWarning, match="00000001.png"):
        assert torch.equal(ds[1], ds[2])
    assert torch.equal(ds[6], ds[2].flip(-1))  # the mirrored copy gets the mirrored substitute


def test_plain_zip_of_images_with_masks_reads_like_a_folder(tmp_path):
    make_masked_folder(tmp_path / "src")
    plain = tmp_path / "plain.zip"
    with zipfile.ZipFile(plain, "w") as zf:
        for f in sorted((tmp_path / "src").rglob("*")):
            if f.is_file():
                zf.write(f, f.relative_to(tmp_path / "src").as_posix())
    with pytest.raises(DatasetError, match="resolution"):
        ImageDataset(plain)
    ds = ImageDataset(plain, resolution=10, return_masks=True)
    assert ds.image_names == ["img0.jpg", "img1.jpg"] and ds.classes == ["bg", "a", "b"]
    image, mask = ds[0]
    assert image.shape == (3, 10, 10) and (mask[:, 5:] == 2).all()


def test_zip_dataset_pickles_without_its_file_handle_and_reads_in_workers(faces_zip):
    ds = ImageDataset(faces_zip)
    first = ds[0]  # opens the zip in this process
    clone = pickle.loads(pickle.dumps(ds))
    assert torch.equal(clone[0], first)
    loader = torch.utils.data.DataLoader(ds, batch_size=5, num_workers=2)
    assert torch.equal(next(iter(loader))[0], first)


def test_content_hash_is_stable_and_tracks_content(tmp_path, faces_zip):
    assert ImageDataset(faces_zip).content_hash == ImageDataset(faces_zip, resolution=16).content_hash
    other = make_toyfaces(tmp_path / "other.zip", 5, res=32, seed=1, workers=1, progress=False)
    assert ImageDataset(other).content_hash != ImageDataset(faces_zip).content_hash
    assert len(ImageDataset(faces_zip).content_hash) == 64


def test_read_dataset_info_explains_non_archives(tmp_path):
    with pytest.raises(DatasetError, match="convert_folder"):
        read_dataset_info(tmp_path)
    with pytest.raises(DatasetError, match="no such"):
        read_dataset_info(tmp_path / "missing.zip")


# ----------------------------------------------------------------------------- Fashion-MNIST


def write_idx(path: Path, arr: np.ndarray, magic: int) -> None:
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in arr.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + arr.astype(np.uint8).tobytes())


def test_fashion_mnist_missing_files_say_how_to_install(tmp_path):
    with pytest.raises(DatasetError, match="apt-get install dataset-fashion-mnist"):
        make_fashion_mnist(tmp_path / "fm.zip", root=str(tmp_path), progress=False)
    assert not (tmp_path / "fm.zip").exists()


def test_fashion_mnist_conversion_pads_to_32_and_keeps_class_labels(tmp_path):
    images = noise(28, 28, channels=1)[None].repeat(3, 0)
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", images, 2051)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.array([7, 0, 9]), 2049)
    out = make_fashion_mnist(tmp_path / "fm.zip", res=32, root=str(tmp_path), split="test", progress=False)
    info = read_dataset_info(out)
    assert info["class_labels"] == [7, 0, 9] and info["classes"] is None and info["labels"] is None
    ds = ImageDataset(out)
    first = ds[0]
    assert first.shape == (3, 32, 32)
    assert torch.equal(first[0, 2:30, 2:30], torch.from_numpy(images[0]))  # exact pixels inside the padding
    assert int(first[:, :2].max()) == 0


def test_fashion_mnist_reads_and_converts_the_installed_debian_files(tmp_path):
    if not Path(DEFAULT_ROOT, "t10k-images-idx3-ubyte.gz").exists():
        pytest.skip("Debian package dataset-fashion-mnist is not installed")
    images, labels = load_fashion_mnist(split="test")
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (10000,) and set(np.unique(labels)) == set(range(10))
    # Convert a slice of the real photos (the whole split takes seconds).
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", images[:40], 2051)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", labels[:40], 2049)
    out = make_fashion_mnist(tmp_path / "fm.zip", res=16, root=str(tmp_path), split="test", progress=False)
    ds = ImageDataset(out)
    assert len(ds) == 40 and ds[0].shape == (3, 16, 16)
    assert read_dataset_info(out)["class_labels"] == labels[:40].tolist()


def test_dataset_convert_skips_and_reports_a_corrupt_file_and_the_threshold_is_a_flag(tmp_path, capsys):
    from linkgan.cli import main

    src = tmp_path / "src"
    for i in range(60):
        save(src / f"{i:03d}.png", noise(6, 6, seed=i))
    (src / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    out = tmp_path / "data.zip"
    assert main(["dataset", "convert", str(src), "--out", str(out), "--res", "8", "--no-progress"]) == 0
    captured = capsys.readouterr()
    assert "skipped broken.png:" in captured.err and "60 images, skipped 1" in captured.out
    assert main(["dataset", "convert", str(src), "--out", str(tmp_path / "strict.zip"), "--res", "8",
                 "--max-bad-fraction", "0", "--no-progress"]) == 2
    assert "--max-bad-fraction" in capsys.readouterr().err
    assert not (tmp_path / "strict.zip").exists() and no_partial_files(tmp_path)

"""toyheads: posed 3D heads whose cameras, depths and masks agree with each other and with the renderer."""

import json
import math
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from linkgan.cli import main
from linkgan.data import DatasetError, ImageDataset, make_toyfaces, make_toyheads
from linkgan.data.archive import ArchiveWriter, decode_depth_png, encode_depth_png
from linkgan.data.toyheads import (
    BACKGROUND,
    TOYHEADS_CLASSES,
    TOYHEADS_FOCAL,
    TOYHEADS_NEAR_FAR,
    TOYHEADS_PITCH,
    TOYHEADS_RADIUS,
    TOYHEADS_YAW,
    HeadSDF,
    render_toyhead,
    sample_toyhead,
    toyhead,
)
from linkgan.render3d import (
    RenderOptions,
    look_at,
    project,
    ray_bundle,
    render_rays,
    split_camera_labels,
)


@pytest.fixture(scope="module")
def heads_zip(tmp_path_factory):
    return make_toyheads(tmp_path_factory.mktemp("heads") / "heads.zip", 6, res=16, seed=3, workers=1,
                         progress=False)


def test_same_seed_same_heads_other_seed_other_heads():
    a, b = toyhead(0, 5, 32), toyhead(0, 5, 32)
    for key in ("image", "mask", "depth", "camera"):
        assert np.array_equal(a[key], b[key]), key
    assert not np.array_equal(a["image"], toyhead(1, 5, 32)["image"])
    assert not np.array_equal(a["camera"], toyhead(0, 6, 32)["camera"])


def test_archives_do_not_depend_on_the_worker_count(tmp_path, heads_zip):
    other = make_toyheads(tmp_path / "w2.zip", 6, res=16, seed=3, workers=2, progress=False)
    assert other.read_bytes() == heads_zip.read_bytes()


def test_cameras_are_eg3d_labels_looking_at_the_head_centre():
    for index in range(12):
        r = toyhead(0, index, 16)
        assert r["camera"].shape == (25,) and r["camera"].dtype == np.float32
        c2w, K = split_camera_labels(torch.from_numpy(r["camera"])[None])
        R, t = c2w[0, :3, :3], c2w[0, :3, 3]
        assert torch.allclose(R.T @ R, torch.eye(3), atol=1e-5) and abs(float(torch.linalg.det(R)) - 1) < 1e-5
        assert torch.equal(c2w[0, 3], torch.tensor([0.0, 0, 0, 1]))
        assert math.isclose(float(t.norm()), TOYHEADS_RADIUS, rel_tol=1e-5)
        assert torch.allclose(K[0], torch.tensor([[TOYHEADS_FOCAL, 0, 0.5], [0, TOYHEADS_FOCAL, 0.5], [0, 0, 1]]))
        # The camera position gives back a yaw and pitch inside the documented ranges.
        yaw, pitch = math.degrees(math.atan2(t[0], t[2])), math.degrees(math.asin(t[1] / t.norm()))
        assert abs(yaw) <= TOYHEADS_YAW + 1e-4 and abs(pitch) <= TOYHEADS_PITCH + 1e-4
        # The head centre (the world origin) projects to the image centre, and the head is there.
        uv, z = project(torch.zeros(1, 1, 3), c2w, K)
        assert torch.allclose(uv, torch.full((1, 1, 2), 0.5), atol=1e-5) and z.item() > 0
        assert r["mask"][7:9, 7:9].min() != BACKGROUND


def test_masks_are_background_exactly_where_there_is_no_depth():
    for index in range(8):
        r = toyhead(2, index, 32)
        background = r["mask"] == BACKGROUND
        assert np.array_equal(background, ~np.isfinite(r["depth"]))
        assert 0.2 < background.mean() < 0.8
        d = r["depth"][~background]
        lo, hi = TOYHEADS_NEAR_FAR
        assert (d > lo).all() and (d < hi).all(), "every surface lies within the documented near/far"


def test_depth_is_the_ray_distance_to_the_surface():
    p = sample_toyhead(np.random.default_rng([0, 1]))
    r = render_toyhead(p, 24, ss=1)  # one ray per pixel: the depth is that ray's hit
    c2w, K = split_camera_labels(torch.from_numpy(r["camera"])[None])
    origins, dirs = ray_bundle(c2w, K, 24)
    depth = torch.from_numpy(r["depth"]).reshape(1, -1, 1)
    hit = torch.isfinite(depth[..., 0])
    points = (origins + depth.nan_to_num(posinf=0.0) * dirs)[hit].numpy()
    sdf = np.abs(HeadSDF(p).distance(points[:, 0], points[:, 1], points[:, 2]))
    assert hit.sum() > 100
    # Rays that graze the silhouette count as hits within a quarter of the pixel's footprint;
    # every other hit lies on the surface.
    footprint = depth[..., 0][hit].numpy() / (TOYHEADS_FOCAL * 24)
    assert (sdf < 0.25 * footprint).all()
    assert np.mean(sdf < 1e-4) > 0.8 and np.median(sdf) < 1e-5


def test_volume_rendering_the_head_from_its_camera_label_reproduces_its_mask_and_depth():
    """The dataset's cameras mean to linkgan.render3d what they meant to the sphere tracer."""
    p = sample_toyhead(np.random.default_rng([4, 2]))
    r = render_toyhead(p, 24, ss=1)
    head = HeadSDF(p)

    def density(points, dirs):  # nearly opaque inside the head, empty outside
        x = points.reshape(-1, 3).double().numpy()
        sdf = torch.from_numpy(head.distance(x[:, 0], x[:, 1], x[:, 2])).float().reshape(*points.shape[:2], 1)
        return 400.0 * torch.sigmoid(-sdf / 0.002), torch.ones_like(sdf)

    c2w, K = split_camera_labels(torch.from_numpy(r["camera"])[None])
    origins, dirs = ray_bundle(c2w, K, 24)
    out = render_rays(density, origins, dirs, RenderOptions(*TOYHEADS_NEAR_FAR, 64, 64, jitter=False))
    opaque = (out["opacity"] > 0.5).reshape(24, 24).numpy()
    surface = r["mask"] != BACKGROUND
    assert (opaque == surface).mean() > 0.98
    both = opaque & surface
    volume_depth = out["depth"].reshape(24, 24).numpy()
    assert np.median(np.abs(volume_depth[both] - r["depth"][both])) < 0.003


def test_frontal_views_show_every_part_and_mirrored_views_mirror_the_mask():
    p = sample_toyhead(np.random.default_rng([0, 0]))
    front = render_toyhead(p, 32, yaw=0.0, pitch=0.0)
    assert set(np.unique(front["mask"])) >= {0, 1, 3, 4, 5}  # background, head, eyes, nose, mouth
    if p["hair_style"] != "bald":
        assert (front["mask"] == 2).any()
    # The heads are left-right symmetric, so the view from -yaw is the mirror image of the view from +yaw.
    left = render_toyhead(p, 32, yaw=math.radians(30), pitch=math.radians(10))["mask"]
    right = render_toyhead(p, 32, yaw=math.radians(-30), pitch=math.radians(10))["mask"]
    assert (left[:, ::-1] == right).mean() > 0.98
    assert (left != right).mean() > 0.02  # ... and not the same image


def test_archive_round_trip_through_the_dataset(heads_zip):
    info = json.loads(zipfile.ZipFile(heads_zip).read("dataset.json"))
    assert info["classes"] == TOYHEADS_CLASSES and info["labels"][0][0] == "images/00000000.png"
    assert info["depth"]["folder"] == "depths"
    ds = ImageDataset(heads_zip, xflip=True, return_masks=True, return_cameras=True)
    assert ds.has_cameras and ds.has_depth and len(ds) == 12
    for i in range(6):
        expect = toyhead(3, i, 16)
        image, mask, camera = ds[i]
        assert np.array_equal(image.permute(1, 2, 0).numpy(), expect["image"])
        assert np.array_equal(mask.numpy(), expect["mask"])
        assert torch.equal(camera, torch.from_numpy(expect["camera"]))
        assert torch.equal(ds.get_camera(i), camera)
        depth = ds.get_depth(i).numpy()
        finite = np.isfinite(expect["depth"])
        assert np.array_equal(np.isfinite(depth), finite)
        assert np.abs(depth[finite] - expect["depth"][finite]).max() < 1e-4  # 16-bit quantization
    # The flipped copy: mirrored image, mask and depth, and the mirrored camera (the one at -yaw).
    image, mask, camera = ds[6]
    assert torch.equal(image, ds[0][0].flip(-1)) and torch.equal(mask, ds[0][1].flip(-1))
    assert torch.equal(ds.get_depth(6), ds.get_depth(0).flip(-1))
    t = ds.get_camera(0)[[3, 7, 11]]
    yaw, pitch = math.atan2(t[0], t[2]), math.asin(t[1] / t.norm())
    assert torch.allclose(camera[:16], look_at(-yaw, pitch, TOYHEADS_RADIUS).reshape(16), atol=1e-5)
    assert ds.cameras.shape == (12, 25) and torch.equal(ds.cameras[6], camera)


def test_cli_writes_an_archive_the_dataset_reads(tmp_path, capsys):
    out = tmp_path / "heads.zip"
    assert main(["dataset", "toyheads", "--out", str(out), "--n", "3", "--res", "16", "--seed", "1",
                 "--workers", "1", "--no-progress"]) == 0
    ds = ImageDataset(out, return_cameras=True)
    image, camera = ds[2]
    assert image.shape == (3, 16, 16) and camera.shape == (25,)
    assert torch.equal(camera, torch.from_numpy(toyhead(1, 2, 16)["camera"]))


def test_a_dataset_without_cameras_says_so(tmp_path):
    faces = make_toyfaces(tmp_path / "faces.zip", 2, res=16, workers=1, progress=False)
    ds = ImageDataset(faces)
    assert not ds.has_cameras and ds.cameras is None and not ds.has_depth
    assert ds[0].shape == (3, 16, 16)  # unchanged behaviour without cameras
    with pytest.raises(DatasetError, match="no camera labels.*toyheads"):
        ImageDataset(faces, return_cameras=True)
    with pytest.raises(DatasetError, match="no camera labels"):
        ds.get_camera(0)


def test_eg3d_style_dataset_json_in_a_plain_folder_gives_cameras(tmp_path):
    labels = []
    for i in range(3):
        Image.fromarray(np.full((16, 16, 3), 40 * i, np.uint8)).save(tmp_path / f"img{i:08d}.png")
        labels.append([f"img{i:08d}.png", toyhead(0, i, 16)["camera"].tolist()])
    (tmp_path / "dataset.json").write_text(json.dumps({"labels": labels}))
    ds = ImageDataset(tmp_path, resolution=16, return_cameras=True)
    assert torch.equal(ds[1][1], torch.tensor(labels[1][1]))
    labels[2][1] = labels[2][1][:16]
    (tmp_path / "dataset.json").write_text(json.dumps({"labels": labels}))
    with pytest.raises(DatasetError, match="not 25-value cameras.*img00000002"):
        ImageDataset(tmp_path, resolution=16, return_cameras=True)


def test_depth_png_encoding_round_trip_and_range_check():
    depth = np.array([[2.0, np.inf], [3.2999, 2.5]], np.float32)
    back = decode_depth_png(encode_depth_png(depth, 1.5, 4.0), 1.5, 4.0)
    assert np.isinf(back[0, 1]) and np.abs(back[np.isfinite(back)] - depth[np.isfinite(depth)]).max() < 2e-5
    with pytest.raises(ValueError, match="outside the encoded range"):
        encode_depth_png(np.full((2, 2), 5.0), 1.5, 4.0)


def test_archive_writer_wants_labels_and_depths_for_all_images_or_none(tmp_path):
    img = np.zeros((8, 8, 3), np.uint8)
    with pytest.raises(ValueError, match="every image or for none"), ArchiveWriter(tmp_path / "a.zip", 8) as w:
        w.add(img, label=[1.0] * 25)
        w.add(img)
    with pytest.raises(ValueError, match="needs a depth map"), \
            ArchiveWriter(tmp_path / "b.zip", 8, depth_range=(1.0, 2.0)) as w:
        w.add(img)
    assert not list(tmp_path.iterdir()), "a failed archive leaves nothing behind"

"""The renderer against closed forms: cameras, rays, and volume rendering of analytic fields."""

import math

import numpy as np
import pytest
import torch

from linkgan.render3d import (
    RenderOptions,
    camera_labels,
    composite,
    focal_from_fov,
    intrinsics,
    look_at,
    mirror_camera_labels,
    project,
    ray_bundle,
    render_rays,
    split_camera_labels,
)


def sphere_field(radius=0.5, sigma=2.0, centre=(0.0, 0.0, 0.0), colour=(1.0, 0.5, -0.25)):
    """A uniform-density ball of a single colour: the decoder interface of render_rays."""
    c = torch.tensor(centre)
    col = torch.tensor(colour)

    def decoder(points, dirs):
        inside = ((points - c).norm(dim=-1, keepdim=True) < radius).float()
        return sigma * inside, col.expand(*points.shape[:-1], 3) * torch.ones_like(inside)
    return decoder


def sphere_chords(origins, dirs, radius=0.5, centre=(0.0, 0.0, 0.0)):
    """Entry distance t0 and chord length of each ray through the ball (0 chord: a miss)."""
    oc = origins - torch.tensor(centre)
    b = (dirs * oc).sum(-1)
    disc = b * b - (oc * oc).sum(-1) + radius * radius
    root = disc.clamp_min(0).sqrt()
    t0 = -b - root
    chord = torch.where(disc > 0, 2 * root, torch.zeros_like(root))
    return t0, chord


# ---------------------------------------------------------------------------- cameras
def test_look_at_gives_rigid_transforms_that_look_at_the_target():
    yaw = torch.tensor([0.0, 0.6, -0.6, 0.3])
    pitch = torch.tensor([0.0, 0.2, -0.25, 0.0])
    target = (0.1, -0.05, 0.02)
    c2w = look_at(yaw, pitch, 2.7, target=target)
    R, t = c2w[:, :3, :3], c2w[:, :3, 3]
    assert torch.allclose(R.transpose(1, 2) @ R, torch.eye(3).expand(4, 3, 3), atol=1e-6)
    assert torch.allclose(torch.linalg.det(R), torch.ones(4), atol=1e-6)
    assert torch.equal(c2w[:, 3], torch.tensor([0.0, 0, 0, 1]).expand(4, 4))
    to_target = torch.tensor(target) - t
    assert torch.allclose(to_target.norm(dim=-1), torch.full((4,), 2.7), atol=1e-5)
    assert torch.allclose(torch.nn.functional.normalize(to_target, dim=-1), R[:, :, 2], atol=1e-6)
    # The horizon stays level: the camera's x axis is horizontal, its y axis points down-ish.
    assert torch.allclose(R[:, 1, 0], torch.zeros(4), atol=1e-6) and (R[:, 1, 1] < 0).all()


def test_pose_conventions_front_view_yaw_and_pitch():
    front = look_at(0.0, 0.0, 2.7)[0]
    assert torch.allclose(front[:3, 3], torch.tensor([0.0, 0.0, 2.7]))
    # Frontal view: image right is world +x, image down is world -y, the view is along -z.
    assert torch.allclose(front[:3, :3], torch.diag(torch.tensor([1.0, -1.0, -1.0])), atol=1e-6)
    assert look_at(0.5, 0.0)[0, 0, 3] > 0, "positive yaw moves the camera towards +x"
    assert look_at(0.0, 0.3)[0, 1, 3] > 0, "positive pitch raises the camera"
    with pytest.raises(ValueError, match="pitch"):
        look_at(0.0, math.pi / 2)


def test_camera_labels_round_trip_in_eg3d_layout():
    c2w = look_at(torch.tensor([0.1, -0.4]), torch.tensor([0.05, 0.2]), 2.7)
    K = intrinsics(focal_from_fov(18.0))
    labels = camera_labels(c2w, K)
    assert labels.shape == (2, 25)
    assert torch.equal(labels[:, :16], c2w.reshape(2, 16))  # row-major cam2world first
    assert torch.equal(labels[0, 16:], torch.tensor([K[0, 0], 0, 0.5, 0, K[1, 1], 0.5, 0, 0, 1]))
    c2w2, K2 = split_camera_labels(labels)
    assert torch.equal(c2w2, c2w) and torch.equal(K2, K.expand(2, 3, 3))
    assert math.isclose(focal_from_fov(2 * math.degrees(math.atan(0.5 / 4.2647))), 4.2647, rel_tol=1e-6)
    with pytest.raises(ValueError, match=r"\(N, 25\)"):
        split_camera_labels(torch.zeros(2, 16))


def test_mirrored_camera_label_is_the_camera_at_minus_yaw():
    K = intrinsics(2.0)
    labels = camera_labels(look_at(0.4, 0.1), K)
    mirrored = camera_labels(look_at(-0.4, 0.1), K)
    assert torch.allclose(mirror_camera_labels(labels), mirrored, atol=1e-6)
    assert np.allclose(mirror_camera_labels(labels.numpy()), mirrored.numpy(), atol=1e-6)  # numpy too


def test_centre_pixel_looks_along_the_camera_axis_and_corners_match_the_focal_length():
    res, focal = 5, 1.7
    c2w = look_at(torch.tensor([0.3]), torch.tensor([-0.2]), 2.7)
    origins, dirs = ray_bundle(c2w, intrinsics(focal), res)
    assert origins.shape == dirs.shape == (1, res * res, 3)
    assert torch.allclose(dirs.norm(dim=-1), torch.ones(1, res * res), atol=1e-6)
    assert torch.allclose(origins[0], c2w[0, :3, 3].expand(res * res, 3))
    right, down, forward = c2w[0, :3, 0], c2w[0, :3, 1], c2w[0, :3, 2]
    centre = (res // 2) * res + res // 2
    assert torch.allclose(dirs[0, centre], forward, atol=1e-6)
    # Top-left pixel: centre at u = v = 0.5 / res, so tan(angle) = (0.5 - 0.5/res) / focal per axis.
    d = dirs[0, 0]
    expect = -(0.5 - 0.5 / res) / focal
    assert math.isclose(float(d @ right / (d @ forward)), expect, rel_tol=1e-5)
    assert math.isclose(float(d @ down / (d @ forward)), expect, rel_tol=1e-5)
    # Bottom-right pixel mirrors it.
    d = dirs[0, -1]
    assert math.isclose(float(d @ right / (d @ forward)), -expect, rel_tol=1e-5)


def test_projecting_points_on_the_rays_gives_back_the_pixel_centres():
    res = 4
    c2w = look_at(torch.tensor([0.5, -0.2]), torch.tensor([0.1, 0.15]), 2.5)
    K = intrinsics(torch.tensor([1.2, 2.0]))
    origins, dirs = ray_bundle(c2w, K, res)
    uv, z = project(origins + 2.0 * dirs, c2w, K)
    grid = (torch.arange(res) + 0.5) / res
    expect = torch.stack(torch.meshgrid(grid, grid, indexing="xy"), -1).reshape(-1, 2)
    assert torch.allclose(uv, expect.expand(2, -1, -1), atol=1e-5)
    assert (z > 0).all()
    # The look-at target lands on the principal point.
    uv0, _ = project(torch.zeros(2, 1, 3), c2w, K)
    assert torch.allclose(uv0, torch.full((2, 1, 2), 0.5), atol=1e-5)


# ---------------------------------------------------------------------------- volume rendering
@pytest.mark.parametrize("sigma", [0.7, 3.0])
def test_uniform_sphere_opacity_and_depth_match_the_closed_form(sigma):
    c2w = look_at(torch.tensor([0.4]), torch.tensor([0.1]), 2.7)
    origins, dirs = ray_bundle(c2w, intrinsics(1.6), 24)
    opts = RenderOptions(near=1.8, far=3.6, coarse_samples=64, fine_samples=64, jitter=False)
    out = render_rays(sphere_field(sigma=sigma), origins, dirs, opts)
    t0, chord = sphere_chords(origins, dirs)
    hit = chord > 0.15  # grazing rays have chords shorter than the bins
    assert hit.sum() > 100 and (chord == 0).sum() > 50
    opacity = 1 - torch.exp(-sigma * chord)
    e = torch.exp(-sigma * chord)
    depth = t0 + 1 / sigma - chord * e / (1 - e)  # E[t | the ray ends in the ball]
    assert (out["opacity"][..., 0][hit] - opacity[hit]).abs().max() < 0.01
    assert (out["depth"][..., 0][hit] - depth[hit]).abs().max() < 0.01
    colour = torch.tensor([1.0, 0.5, -0.25])
    assert torch.allclose(out["features"], out["opacity"] * colour, atol=1e-5)
    assert (out["opacity"][..., 0][chord == 0] == 0).all()


def test_a_ray_that_misses_everything_is_transparent_at_the_far_plane():
    origins = torch.tensor([[[0.0, 2.0, 2.7]]])  # above the ball, looking parallel to -z
    dirs = torch.tensor([[[0.0, 0.0, -1.0]]])
    opts = RenderOptions(near=2.0, far=3.5, coarse_samples=16, fine_samples=16, jitter=True)
    out = render_rays(sphere_field(), origins, dirs, opts, generator=torch.Generator().manual_seed(0))
    assert out["opacity"].item() == 0.0
    assert out["depth"].item() == pytest.approx(3.5)
    assert torch.equal(out["features"], torch.zeros(1, 1, 3))
    assert torch.isfinite(out["depths"]).all()


def test_importance_samples_concentrate_where_the_density_is():
    def slab(points, dirs):  # dense between z = 0.2 and z = 0.3 (t in [2.4, 2.5] along the ray)
        z = points[..., 2:3]
        dense = ((z > 0.2) & (z < 0.3)).float()
        return 20.0 * dense, dense.expand(*dense.shape[:-1], 2)

    origins = torch.tensor([0.0, 0.0, 2.7]).expand(1, 8, 3)
    dirs = torch.tensor([0.0, 0.0, -1.0]).expand(1, 8, 3)
    opts = RenderOptions(near=2.0, far=3.0, coarse_samples=16, fine_samples=32, jitter=True)
    out = render_rays(slab, origins, dirs, opts, generator=torch.Generator().manual_seed(1))
    t = out["depths"]
    assert t.shape == (1, 8, 48) and (t.diff(dim=-1) >= 0).all(), "merged samples are sorted"
    near_slab = ((t > 2.3) & (t < 2.6)).float().sum(-1)
    # Uniform sampling would put 30% of 48 = 14 samples there; importance sampling adds most of its 32.
    assert (near_slab >= 16 * 0.3 + 32 * 0.9).all()
    assert torch.allclose(out["depth"], torch.full((1, 8, 1), 2.45), atol=0.03)


def test_composite_weights_telescope_to_the_opacity():
    g = torch.Generator().manual_seed(0)
    sigma = torch.rand(2, 3, 10, generator=g) * 5
    depths = torch.sort(torch.rand(2, 3, 10, generator=g) + 2, dim=-1).values
    out = composite(sigma, torch.ones(2, 3, 10, 1), depths, 2.0, 3.0)
    assert torch.allclose(out["weights"].sum(-1, keepdim=True), out["opacity"], atol=1e-6)
    assert torch.allclose(out["features"], out["opacity"], atol=1e-6)
    assert ((out["depth"] >= 2.0) & (out["depth"] <= 3.0)).all()


def test_gradients_reach_the_field_through_coarse_and_fine_samples():
    density = torch.tensor(2.0, requires_grad=True)

    def field(points, dirs):
        inside = (points.norm(dim=-1, keepdim=True) < 0.5).float()
        return density * inside, torch.ones_like(inside)

    c2w = look_at(torch.tensor([0.0]), torch.tensor([0.0]))
    origins, dirs = ray_bundle(c2w, intrinsics(2.0), 4)
    out = render_rays(field, origins, dirs, RenderOptions(near=2.0, far=3.4, coarse_samples=8, fine_samples=8))
    out["opacity"].sum().backward()
    assert density.grad is not None and density.grad > 0


def test_decoder_with_wrong_output_shapes_is_named():
    def bad(points, dirs):
        return torch.zeros(points.shape[0], points.shape[1]), torch.zeros(*points.shape[:2], 3)

    origins, dirs = ray_bundle(look_at(0.0, 0.0), intrinsics(2.0), 2)
    with pytest.raises(ValueError, match="decoder must return sigma"):
        render_rays(bad, origins, dirs, RenderOptions(coarse_samples=4, fine_samples=0))

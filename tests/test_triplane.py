"""The tri-plane generator: StyleGAN2's networks producing planes, decoded and volume-rendered from a camera."""

import dataclasses
import math

import pytest
import torch

from linkgan.checkpoint import load_checkpoint, load_module, save_checkpoint
from linkgan.networks import (
    Generator,
    MappingNetwork,
    SynthesisNetwork,
    TriplaneConfig,
    TriplaneGenerator,
)
from linkgan.render3d import camera_labels, intrinsics, look_at

TINY = TriplaneConfig(z_dim=16, w_dim=16, mapping_layers=2, plane_resolution=16, plane_channels=8, channel_base=256,
                      channel_max=16, decoder_hidden=16, feature_channels=8, neural_resolution=16, sr_channels=16,
                      coarse_samples=6, fine_samples=6)


def cameras(yaws, pitch=0.0):
    yaw = torch.tensor([math.radians(y) for y in yaws])
    return camera_labels(look_at(yaw, torch.full_like(yaw, math.radians(pitch)), 2.7), intrinsics(2.6))


def make(**overrides):
    torch.manual_seed(0)
    return TriplaneGenerator(TINY, **overrides).eval()


def test_outputs_have_the_documented_shapes_and_ranges():
    G = make()
    z = torch.randn(2, 16)
    out = G(z, cameras([0, 20]), noise_mode="const")
    assert G.resolution == 32 and G.num_ws == G.backbone.num_ws
    assert out["image"].shape == (2, 3, 32, 32) and out["image_raw"].shape == (2, 3, 16, 16)
    assert out["depth"].shape == out["opacity"].shape == (2, 1, 16, 16)
    assert ((out["opacity"] >= 0) & (out["opacity"] <= 1)).all()
    assert ((out["depth"] >= TINY.near) & (out["depth"] <= TINY.far)).all()
    assert out["image_raw"].abs().max() <= 1.0
    raw = make(superresolution=False)(z, cameras([0, 20]), noise_mode="const")
    assert raw["image"].shape == (2, 3, 16, 16) and torch.equal(raw["image"], raw["image_raw"])
    assert G.synthesis(G.mapping(z, cameras([0, 0])), cameras([0, 0]), neural_resolution=8)["image"].shape \
        == (2, 3, 16, 16)


def test_the_2d_networks_are_reused_not_forked():
    G = make()
    assert type(G.backbone) is SynthesisNetwork and isinstance(G.mapping, MappingNetwork)
    assert G.backbone.img_channels == 3 * TINY.plane_channels
    # The 2D generator's mapping is untouched: same state-dict keys as before (no camera embedding).
    assert not any(k.startswith("mapping.embed") for k in Generator(16, z_dim=16, w_dim=16, mapping_layers=2,
                                                                    channel_base=256, channel_max=16).state_dict())


def test_gradients_flow_to_ws_and_every_network():
    G = make()
    G.train()
    ws = G.mapping(torch.randn(2, 16), cameras([0, 10])).detach().requires_grad_(True)
    out = G.synthesis(ws, cameras([-10, 25]), generator=torch.Generator().manual_seed(0))
    (out["image"].square().mean() + out["depth"].mean() + out["opacity"].mean()).backward()
    assert ws.grad is not None and ws.grad.abs().sum() > 0
    for name in ("backbone", "decoder", "superresolution"):
        grads = [p.grad for p in getattr(G, name).parameters() if p.grad is not None]
        assert grads and any(g.abs().sum() > 0 for g in grads), name


def test_same_latent_and_camera_give_the_same_image_and_only_the_camera_changes_the_view():
    G = make()
    ws = G.mapping(torch.randn(1, 16), cameras([0]))
    a = G.synthesis(ws, cameras([15]), noise_mode="const")
    b = G.synthesis(ws, cameras([15]), noise_mode="const")
    for key in a:
        assert torch.equal(a[key], b[key]), key
    c = G.synthesis(ws, cameras([-15]), noise_mode="const")
    assert (c["image"] - a["image"]).abs().mean() > 1e-3
    assert (c["depth"] - a["depth"]).abs().mean() > 1e-4
    # The conditioning camera changes w; the rendering camera alone changes the view, not the identity.
    assert not torch.equal(G.mapping(torch.zeros(1, 16), cameras([0])), G.mapping(torch.zeros(1, 16), cameras([30])))


def test_decoder_reads_each_plane_at_its_own_two_coordinates():
    G = make()
    ws = G.mapping(torch.randn(1, 16), cameras([0]))
    planes = G.planes(ws, noise_mode="const")
    points = torch.rand(1, 50, 3) - 0.5
    sigma, feats = G.decode(planes, points)
    assert sigma.shape == (1, 50, 1) and feats.shape == (1, 50, TINY.feature_channels) and (sigma >= 0).all()
    # Each plane reads its own two coordinates: moving a point along z changes only the xz and zy planes' reads.
    moved = points.clone()
    moved[..., 2] += 0.1
    xy_only = torch.zeros_like(planes)
    xy_only[:, 0] = planes[:, 0]
    assert torch.allclose(G.sample_planes(xy_only, points), G.sample_planes(xy_only, moved))


def test_mapping_checks_the_camera_shape():
    G = make()
    with pytest.raises(ValueError, match="25-value camera"):
        G.mapping(torch.randn(2, 16), torch.zeros(2, 16))
    with pytest.raises(ValueError, match="camera label per sample"):
        G.synthesis(G.mapping(torch.randn(2, 16), cameras([0, 0])), cameras([0]))


def test_checkpoint_round_trip_restores_the_generator(tmp_path):
    G = make()
    with torch.no_grad():
        G.mapping.w_avg.normal_()
    path = save_checkpoint(tmp_path / "ckpt-000000001.safetensors", {"G": G},
                           {"triplane": dataclasses.asdict(G.config)}, with_rng=False)
    ckpt = load_checkpoint(path)
    G2 = TriplaneGenerator.from_config(ckpt.config["triplane"]).eval()
    load_module(G2, ckpt, "G")
    z, c = torch.randn(2, 16), cameras([5, -25], pitch=8)
    a, b = G(z, c, truncation_psi=0.7, noise_mode="const"), G2(z, c, truncation_psi=0.7, noise_mode="const")
    assert G2.config == G.config
    for key in a:
        assert torch.equal(a[key], b[key]), key
    with pytest.raises(ValueError, match="unknown TriplaneConfig fields"):
        TriplaneGenerator.from_config({**dataclasses.asdict(G.config), "planes": 3})


def test_style_mixing_keeps_shapes_and_first_layers():
    G = make()
    c = cameras([0, 10])
    ws = G.mapping(torch.randn(2, 16), c)
    mixed = G.style_mix(ws, 1.0, c, generator=torch.Generator().manual_seed(0))
    assert mixed.shape == ws.shape and torch.equal(mixed[:, 0], ws[:, 0]) and not torch.equal(mixed, ws)

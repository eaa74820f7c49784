"""One generator interface for both model kinds: code that serves 2D and 3D models (the loss phases,
the regularizer, metrics, grids, editing) calls mapping(z, c), style_mix(ws, prob, c) and
render(ws, c) alike, with the cameras of G.frontal_cameras / G.view_cameras (None in 2D)."""

import pytest
import torch

from conftest import tiny_model
from linkgan.config import ModelConfig
from linkgan.networks.build import build_discriminator, build_generator
from linkgan.views import generate_grid


def tiny_3d() -> ModelConfig:
    return ModelConfig.from_options(kind="3d", resolution=16, z_dim=16, w_dim=16, mapping_layers=2, channel_base=256,
                                    channel_max=16, plane_resolution=16, plane_channels=8, decoder_hidden=16,
                                    feature_channels=8, sr_channels=16, coarse_samples=6, fine_samples=6)


@pytest.mark.parametrize("model", [tiny_model(16), tiny_3d()], ids=["2d", "3d"])
def test_both_kinds_answer_the_same_calls_with_the_same_types(model):
    torch.manual_seed(0)
    G, D = build_generator(model).eval(), build_discriminator(model)
    z = torch.randn(3, G.z_dim)
    c = G.frontal_cameras(3)
    assert (c is None) == (G.c_dim == 0)
    ws = G.mapping(z, c)
    assert ws.shape == (3, G.num_ws, G.w_dim)
    mixed = G.style_mix(ws, 1.0, c, generator=torch.Generator().manual_seed(1))
    assert mixed.shape == ws.shape and torch.equal(mixed[:, 0], ws[:, 0]) and not torch.equal(mixed, ws)
    out = G.render(ws, c, noise_mode="const", deterministic=True)
    assert isinstance(out, dict) and out["image"].shape == (3, 3, 16, 16)
    again = G.render(ws, c, noise_mode="const", deterministic=True)
    assert torch.equal(out["image"], again["image"])  # constant noise and fixed rays: one image per latent
    assert D(out, c).shape == (3, 1)  # D reads the render dict and the cameras (an unconditional D ignores them)
    grid = generate_grid(G, [0, 1, 2, 3], "cpu")
    assert grid.dtype.name == "uint8" and grid.ndim == 3 and grid.shape[2] == 3


def test_a_2d_render_is_its_synthesis_and_ignores_cameras():
    torch.manual_seed(0)
    G = build_generator(tiny_model(16))
    ws = G.mapping(torch.randn(2, G.z_dim))
    assert torch.equal(G.mapping(torch.zeros(1, G.z_dim)), G.mapping(torch.zeros(1, G.z_dim), torch.ones(1, 25)))
    assert torch.equal(G.render(ws, None, noise_mode="const")["image"], G.synthesis(ws, noise_mode="const"))
    assert G.view_cameras((-30, 0, 30)) is None


def test_a_3d_render_without_cameras_says_what_to_give():
    G = build_generator(tiny_3d())
    ws = G.mapping(torch.randn(1, G.z_dim), G.frontal_cameras(1))
    with pytest.raises(ValueError, match="frontal_cameras"):
        G.render(ws)
    assert G.view_cameras((-30, 0, 30)).shape == (3, 25)

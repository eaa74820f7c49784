"""Behaviour of the StyleGAN2 networks."""

import pytest
import torch

from linkgan.networks import Discriminator, Generator, ModulatedConv2d, channels_at
from linkgan.networks.layers import blur_downsample, upsample_2x

TINY = dict(z_dim=32, w_dim=32, mapping_layers=2, channel_base=256, channel_max=32)


@pytest.mark.parametrize("res", [16, 32, 64])
def test_generator_and_discriminator_shapes(res):
    G = Generator(res, **TINY)
    D = Discriminator(res, channel_base=256, channel_max=32)
    assert G.num_ws == 2 * (res.bit_length() - 1) - 2
    ws = G.mapping(torch.randn(3, 32))
    assert ws.shape == (3, G.num_ws, 32)
    img = G.synthesis(ws)
    assert img.shape == (3, 3, res, res)
    assert D(img).shape == (3, 1)


def test_widths_follow_channel_base_over_resolution_capped_at_channel_max():
    assert channels_at(4, 16384, 512) == 512
    assert channels_at(64, 16384, 512) == 256
    assert channels_at(256, 16384, 512) == 64
    G = Generator(64, z_dim=8, w_dim=8, mapping_layers=1, channel_base=2048, channel_max=64)
    widths = [b.conv1.conv.out_channels for b in G.synthesis.blocks]
    assert widths == [64, 64, 64, 64, 32]  # 2048/r capped at 64, for r = 4 ... 64


def test_bad_resolution_and_latent_shapes_are_rejected():
    with pytest.raises(ValueError, match="power of two"):
        Generator(48, **TINY)
    G = Generator(16, **TINY)
    with pytest.raises(ValueError, match="z must have shape"):
        G.mapping(torch.randn(2, 7))
    with pytest.raises(ValueError, match="ws must have shape"):
        G.synthesis(torch.randn(2, G.num_ws + 1, 32))


def test_demodulation_gives_unit_norm_weights_per_output_channel():
    conv = ModulatedConv2d(16, 8, 3, w_dim=12)
    styles = conv.affine(torch.randn(5, 12)) * 3.0
    w = conv.modulated_weight(styles)  # (N, out, in, k, k)
    norms = w.square().sum(dim=[2, 3, 4])
    assert torch.allclose(norms, torch.ones_like(norms), atol=1e-4)
    # ... so unit-variance inputs give unit-variance outputs (away from the zero-padded border).
    x = torch.randn(5, 16, 32, 32)
    y = conv(x, torch.randn(5, 12))
    assert abs(y[:, :, 2:-2, 2:-2].std().item() - 1.0) < 0.1


@pytest.mark.parametrize("up", [False, True])
def test_grouped_and_scaled_modconv_agree(up):
    conv = ModulatedConv2d(8, 6, 3, w_dim=10, up=up)
    x, w = torch.randn(4, 8, 8, 8), torch.randn(4, 10)
    conv.impl = "grouped"
    a = conv(x, w)
    conv.impl = "scaled"
    b = conv(x, w)
    assert torch.allclose(a, b, atol=1e-5)


def test_truncation_pulls_towards_w_avg_on_cutoff_layers_only():
    G = Generator(16, **TINY)
    G.mapping.w_avg.copy_(torch.randn(32))
    z = torch.randn(4, 32)
    ws = G.mapping(z)
    assert torch.allclose(G.mapping(z, truncation_psi=1.0), ws)
    assert torch.allclose(G.mapping(z, truncation_psi=0.0), G.mapping.w_avg.expand_as(ws))
    half = G.mapping(z, truncation_psi=0.5)
    assert torch.allclose(half, G.mapping.w_avg + 0.5 * (ws - G.mapping.w_avg), atol=1e-6)
    cut = G.mapping.truncate(ws, 0.0, cutoff=2)
    assert torch.allclose(cut[:, :2], G.mapping.w_avg.expand(4, 2, 32))
    assert torch.allclose(cut[:, 2:], ws[:, 2:])


def test_w_avg_tracks_the_mean_of_w_when_asked():
    G = Generator(16, **TINY)
    z = torch.randn(64, 32)
    before = G.mapping.w_avg.clone()
    G.mapping(z)
    assert torch.equal(G.mapping.w_avg, before)
    ws = G.mapping(z, update_w_avg=True)
    expected = before.lerp(ws[:, 0].mean(0), 1 - G.mapping.w_avg_beta)
    assert torch.allclose(G.mapping.w_avg, expected, atol=1e-6)


def test_style_mixing_swaps_layers_after_one_crossover_point():
    G = Generator(32, **TINY)
    ws = G.mapping(torch.randn(3, 32))
    torch.manual_seed(1)
    mixed = G.style_mix(ws, prob=1.0)
    same = (mixed == ws).all(dim=2).all(dim=0)  # (num_ws,) per layer
    k = int(same.float().sum().item())
    assert 1 <= k < G.num_ws
    assert same[:k].all() and not same[k:].any()  # first k layers kept, the rest replaced
    assert torch.equal(G.style_mix(ws, prob=0.0), ws)


def test_per_layer_noise_changes_images_only_when_random():
    G = Generator(16, **TINY)
    for block in G.synthesis.blocks:
        block.conv1.noise.strength.data.fill_(0.5)
    ws = G.mapping(torch.randn(2, 32))
    assert torch.equal(G.synthesis(ws, noise_mode="const"), G.synthesis(ws, noise_mode="const"))
    assert not torch.equal(G.synthesis(ws, noise_mode="random"), G.synthesis(ws, noise_mode="random"))


def test_resampling_filters_preserve_a_constant_image():
    x = torch.full((1, 2, 8, 8), 3.0)
    assert torch.allclose(upsample_2x(x), torch.full((1, 2, 16, 16), 3.0))
    down = blur_downsample(x)
    assert down.shape == (1, 2, 4, 4)
    assert torch.allclose(down[:, :, 1:-1, 1:-1], torch.full((1, 2, 2, 2), 3.0))


def test_gradients_reach_every_generator_parameter():
    G = Generator(16, **TINY)
    for block in G.synthesis.blocks:
        for m in block.modules():
            if hasattr(m, "strength"):
                m.strength.data.fill_(0.1)
    D = Discriminator(16, channel_base=256, channel_max=32)
    D(G(torch.randn(4, 32))).sum().backward()
    missing = [n for n, p in G.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert missing == []

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


# -- numerics: official (stylegan2-ada-pytorch's operators) and legacy (linkgan's first dialect)
def test_fir_upsampling_is_zero_insertion_then_the_zero_padded_filter():
    from linkgan.networks.layers import fir_upsample_2x

    x = torch.randn(2, 3, 5, 5)
    up = torch.zeros(2, 3, 10, 10)
    up[:, :, ::2, ::2] = x
    k = torch.tensor([1.0, 3.0, 3.0, 1.0])
    f = torch.outer(k, k) / 64 * 4
    ref = torch.nn.functional.conv2d(torch.nn.functional.pad(up, [2, 1, 2, 1]), f.expand(3, 1, 4, 4), groups=3)
    assert torch.allclose(fir_upsample_2x(x), ref, atol=1e-6)
    # Unlike the bilinear (edge-replicated) legacy filter, the border darkens: zero padding.
    ones = fir_upsample_2x(torch.ones(1, 1, 4, 4))
    assert ones[0, 0, 0, 0] < 0.6 and torch.allclose(ones[0, 0, 2:-2, 2:-2], torch.ones(4, 4))


def test_official_up_conv_is_a_transposed_conv_then_the_filter():
    conv = ModulatedConv2d(4, 5, 3, w_dim=6, up=True, numerics="official", impl="scaled")
    x, w = torch.randn(2, 4, 4, 4), torch.randn(2, 6)
    s = conv.affine(w)
    weight = conv.weight[None] * s[:, None, :, None, None]
    weight = weight * weight.square().sum([2, 3, 4], keepdim=True).add(1e-8).rsqrt()  # epsilon on the raw weight
    ref = []
    for n in range(2):
        y = torch.nn.functional.conv_transpose2d(x[n:n + 1], weight[n].transpose(0, 1), stride=2)  # (1,5,9,9)
        k = torch.tensor([1.0, 3.0, 3.0, 1.0])
        f = (torch.outer(k, k) / 64 * 4).expand(5, 1, 4, 4)
        ref.append(torch.nn.functional.conv2d(torch.nn.functional.pad(y, [1, 1, 1, 1]), f, groups=5))
    ref = torch.cat(ref)
    out = conv(x, w)
    assert out.shape == (2, 5, 8, 8) and torch.allclose(out, ref, atol=1e-5)
    conv.impl = "grouped"
    assert torch.allclose(conv(x, w), ref, atol=1e-5)


@pytest.mark.parametrize("impl", ["grouped", "scaled"])
def test_rosinality_numerics_move_only_the_demodulation_epsilon(impl):
    torch.manual_seed(0)
    convs = {n: ModulatedConv2d(4, 5, 3, w_dim=6, up=True, numerics=n, impl=impl) for n in ("official", "rosinality")}
    convs["rosinality"].load_state_dict(convs["official"].state_dict())
    x, w = torch.randn(2, 4, 4, 4), torch.randn(2, 6)
    with torch.no_grad():
        assert torch.allclose(convs["official"](x, w), convs["rosinality"](x, w), atol=1e-5)
        for conv in convs.values():
            conv.weight.mul_(1e-4)  # the epsilon matters once the weights are tiny
        s = convs["official"].affine(w)
        gain = convs["official"].weight_gain
        for name, g in (("official", 1.0), ("rosinality", gain)):
            wt = convs[name].weight[None] * g * s[:, None, :, None, None]
            expect = wt * wt.square().sum([2, 3, 4], keepdim=True).add(1e-8).rsqrt()
            assert torch.allclose(convs[name].modulated_weight(s), expect, rtol=1e-5)
        assert not torch.allclose(convs["official"](x, w), convs["rosinality"](x, w), rtol=0.1)


@pytest.mark.parametrize("numerics", ["official", "rosinality", "legacy"])
def test_every_numerics_has_the_same_parameters(numerics):
    G = Generator(32, **TINY, numerics=numerics)
    names = {k: v.shape for k, v in G.state_dict().items()}
    assert names == {k: v.shape for k, v in Generator(32, **TINY).state_dict().items()}
    D = Discriminator(32, channel_base=256, channel_max=32, numerics=numerics)
    assert set(D.state_dict()) == set(Discriminator(32, channel_base=256, channel_max=32).state_dict())


def test_the_numerics_differ_where_the_operators_do():
    torch.manual_seed(0)
    G = Generator(16, **TINY, numerics="official").eval()
    G_legacy = Generator(16, **TINY, numerics="legacy").eval()
    G_legacy.load_state_dict(G.state_dict())
    ws = G.mapping(torch.randn(2, 32))
    assert not torch.allclose(G.synthesis(ws, noise_mode="const"), G_legacy.synthesis(ws, noise_mode="const"), atol=1e-3)
    D = Discriminator(16, channel_base=256, channel_max=32, numerics="official")
    D_legacy = Discriminator(16, channel_base=256, channel_max=32, numerics="legacy")
    D_legacy.load_state_dict(D.state_dict())
    img = torch.randn(4, 3, 16, 16)
    assert not torch.allclose(D(img), D_legacy(img), atol=1e-4)


def test_official_torgb_is_clamped_and_legacy_is_not():
    from linkgan.networks.generator import ToRGB

    rgb = ToRGB(4, 3, 6, conv_clamp=0.5, numerics="official")
    rgb_legacy = ToRGB(4, 3, 6, conv_clamp=0.5, numerics="legacy")
    rgb_legacy.load_state_dict(rgb.state_dict())
    x, w = torch.randn(2, 4, 8, 8) * 10, torch.randn(2, 6)
    assert rgb(x, w).abs().max() <= 0.5 < rgb_legacy(x, w).abs().max()


def test_new_models_record_official_numerics_and_old_checkpoints_load_as_legacy(tmp_path):
    from linkgan.checkpoint import load_checkpoint, save_checkpoint
    from linkgan.config import RunConfig

    assert RunConfig().model.numerics == "official"
    config = RunConfig().to_dict()
    save_checkpoint(tmp_path / "new.safetensors", {"G": Generator(16, **TINY)}, config, with_rng=False)
    assert load_checkpoint(tmp_path / "new.safetensors").config["model"]["numerics"] == "official"
    del config["model"]["numerics"]  # what every checkpoint written before the field has
    save_checkpoint(tmp_path / "old.safetensors", {"G": Generator(16, **TINY)}, config, with_rng=False)
    assert load_checkpoint(tmp_path / "old.safetensors").config["model"]["numerics"] == "legacy"


def test_an_old_checkpoint_still_computes_its_images():
    """tests/data/legacy-tiny.safetensors and its outputs were written by linkgan before the official
    numerics existed (G_ema, D and conv_clamp 256): they must come out the same."""
    from pathlib import Path

    from safetensors.torch import load_file

    from linkgan.checkpoint import load_checkpoint, load_module
    from linkgan.config import RunConfig
    from linkgan.networks.build import build_discriminator, build_generator

    data = Path(__file__).parent / "data"
    ckpt = load_checkpoint(data / "legacy-tiny.safetensors")
    config = RunConfig.from_dict(ckpt.config)
    assert config.model.numerics == "legacy"
    G, D = build_generator(config.model).eval(), build_discriminator(config.model).eval()
    load_module(G, ckpt, "G_ema")
    load_module(D, ckpt, "D")
    ref = load_file(data / "legacy-tiny-outputs.safetensors")
    with torch.no_grad():
        img = G(ref["z"], noise_mode="const")
        assert torch.allclose(img, ref["img"], atol=1e-6, rtol=0)
        assert torch.allclose(G(ref["z"], truncation_psi=0.7, noise_mode="const"), ref["img_trunc"], atol=1e-6, rtol=0)
        assert torch.allclose(D(ref["img"]), ref["logits"], atol=1e-6, rtol=0)


def test_the_legacy_builtin_model_still_draws_its_images():
    from pathlib import Path

    from safetensors.torch import load_file

    from linkgan.pipeline import LinkGANPipeline

    pipe = LinkGANPipeline.load("builtin:toyfaces-legacy", device="cpu")
    assert pipe.config.model.numerics == "legacy"
    ref = load_file(Path(__file__).parent / "data" / "toyfaces-legacy-seeds0-3.safetensors")["images"]
    # 1e-5: CPUs of another vector width sum in another order (2e-6 on AVX-512 against this file's
    # reference); a change of the numerics themselves (legacy against official) moves them far more.
    assert torch.allclose(pipe.generate([0, 1, 2, 3], output="tensor"), ref, atol=1e-5, rtol=0)


def test_the_official_mapping_updates_w_avg_in_every_training_phase():
    from linkgan.losses import LossStats, StyleGAN2Loss

    for numerics, expect_d_update in (("official", True), ("legacy", False)):
        G = Generator(16, **TINY, numerics=numerics)
        D = Discriminator(16, channel_base=256, channel_max=32, numerics=numerics)
        loss = StyleGAN2Loss(G, D, r1_gamma=1.0, style_mixing=0.0)
        before = G.mapping.w_avg.clone()
        loss.accumulate("Dmain", torch.randn(4, 3, 16, 16), torch.randn(4, 32), 1.0, LossStats(), 0)
        assert (not torch.equal(G.mapping.w_avg, before)) == expect_d_update

"""The LinkGAN regularizer, the masked-MSE metric, and local edits."""

import json

import pytest
import torch
from torch import nn

from conftest import tiny_run
from linkgan.checkpoint import load_checkpoint
from linkgan.config import RunConfig
from linkgan.editing import edit_latents, transplant_latents
from linkgan.errors import InputError
from linkgan.losses import LossStats
from linkgan.metrics import masked_mse_metric, parse_metric_names
from linkgan.networks import Generator, UnconditionalGenerator
from linkgan.partition import LatentPartition
from linkgan.regularizer import TARGET_KIMG, TARGET_MIN_SCALE, LinkSettings, link_loss, masked_mse
from linkgan.training import Trainer, train

RES, W = 16, 32
BOX = [0.25, 0.25, 0.75, 0.5]


def _partition(**kw):
    return LatentPartition.from_specs([{"name": "box", "region": {"box": BOX}, "axes": 8}], W, RES, **kw)


def _two_boxes():
    """Links 'a' (top-left quarter) and 'b' (bottom-right quarter), 8 axes each, and their masks."""
    p = LatentPartition.from_specs([{"name": "a", "region": {"box": [0, 0, 0.5, 0.5]}, "axes": 8},
                                    {"name": "b", "region": {"box": [0.5, 0.5, 1, 1]}, "axes": 8}], W, RES)
    return p, {n: p.region_mask(n, RES).float() for n in p.names}


class SeparableG(UnconditionalGenerator):
    """A hand-built generator: pixels inside the box depend only on w[0:8] (the link's axes),
    pixels outside only on w[8:32]; ``entangled=True`` leaks every axis everywhere."""

    def __init__(self, mask: torch.Tensor, entangled: bool = False):
        super().__init__()
        self.z_dim = self.w_dim = W
        self.num_ws, self.resolution = 2, RES
        self.mask = mask.float()
        self.inside = nn.Linear(8, 3 * RES * RES)
        self.outside = nn.Linear(W - 8, 3 * RES * RES)
        self.entangled = entangled
        self.mapping = lambda z, c=None, truncation_psi=1.0, **_: z[:, None].repeat(1, 2, 1)

    def synthesis(self, ws, noise_mode="const", noise_repeats=1):
        w = ws[:, 0]
        a = self.inside(w[:, :8]).reshape(-1, 3, RES, RES)
        b = self.outside(w[:, 8:]).reshape(-1, 3, RES, RES)
        img = self.mask * a + (1 - self.mask) * b
        if self.entangled:
            img = img + 0.1 * (a + b)
        return torch.tanh(img)

    def parameters(self, recurse=True):
        return super().parameters(recurse)


def test_masked_mse_is_normalized_by_region_area():
    a, b = torch.zeros(2, 3, 4, 4), torch.zeros(2, 3, 4, 4)
    b[:, :, :2] = 1.0  # top half differs by 1
    top = torch.zeros(4, 4)
    top[:2] = 1
    assert torch.allclose(masked_mse(b, a, top), torch.ones(2))
    assert torch.allclose(masked_mse(b, a, 1 - top), torch.zeros(2))
    small = torch.zeros(4, 4)
    small[0, 0] = 1
    assert torch.allclose(masked_mse(b, a, small), torch.ones(2)), "a smaller region must not shrink the mean"


@pytest.mark.parametrize("samples", ["split", "all", "factorized"])
@pytest.mark.parametrize("form", ["absolute", "relative"])
def test_regularizer_is_zero_for_a_separable_generator_and_positive_for_an_entangled_one(form, samples):
    p = _partition()
    mask = p.region_mask("box", RES).float()
    ws = torch.randn(4, 2, W)
    sep = link_loss(SeparableG(mask), ws, p, {"box": mask}, alpha=1.0, form=form, samples=samples)
    assert sep["in/box"].item() == 0.0 and sep["out/box"].item() == 0.0
    ent = link_loss(SeparableG(mask, entangled=True), ws, p, {"box": mask}, alpha=1.0, form=form, samples=samples)
    assert ent["in/box"].item() > 1e-4 and ent["out/box"].item() > 1e-4
    if form == "relative":
        assert ent["in/box"].item() < 1 and ent["out/box"].item() < 1, "a share of the change is at most 1"


@pytest.mark.parametrize("samples,images_per_sample", [("all", 1 + 2 * 2), ("split", 3), ("factorized", 2 + 2)])
def test_regularizer_renders_every_image_in_one_batched_call_with_shared_noise(samples, images_per_sample):
    G = Generator(RES, z_dim=W, w_dim=W, mapping_layers=2, channel_base=256, channel_max=32)
    for m in G.modules():
        if hasattr(m, "strength"):
            m.strength.data.fill_(1.0)  # strong noise: unshared noise would show up as change
    calls = []
    original = G.synthesis.forward
    G.synthesis.forward = lambda ws, **kw: calls.append(ws.shape[0]) or original(ws, **kw)
    p, masks = _two_boxes()
    out = link_loss(G, G.mapping(torch.randn(3, W)), p, masks, alpha=0.0, samples=samples)
    assert calls == [3 * images_per_sample]
    terms = {"in/a", "out/a", "locality/a", "in/b", "out/b", "locality/b"}
    assert {k for k in out if "/" in k} == terms, "3 samples reach both links"
    # alpha = 0: x1 = x2 = x (up to float rounding of batched kernels), which holds only if
    # the noise maps are shared; unshared noise of strength 1 would differ by ~1.
    x, *edits = out["images"]
    assert all((e - x).abs().max().item() < 1e-4 for e in edits)


class LatentRecorder(UnconditionalGenerator):
    """A stand-in generator whose images are a copy of w's first channels, and which keeps
    every batch of latents it is asked to render in ``seen``."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def synthesis(self, ws, **kw):
        self.seen.append(ws.detach().clone())
        return ws[:, 0, :16].reshape(-1, 1, 4, 4).expand(-1, 3, RES // 4, RES // 4).repeat(1, 1, 4, 4)


def test_split_mode_moves_each_sample_only_along_its_own_links_axes():
    p, masks = _two_boxes()
    n = 6
    rec = LatentRecorder()
    link_loss(rec, torch.randn(n, 2, W), p, masks, alpha=1.0, generator=torch.Generator().manual_seed(0),
              samples="split")
    x, x1, x2 = rec.seen[0].split(n)
    moved1 = (x1 != x)[:, 0]  # (n, W): which axes moved in the link edit
    moved2 = (x2 != x)[:, 0]
    a, b = p.axes_mask("a"), p.axes_mask("b")
    owners = []
    for s in range(n):
        own = a if moved1[s][a].all() else b
        owners.append("a" if own is a else "b")
        assert torch.equal(moved1[s], own), "the link edit moves exactly the sample's link axes"
        assert torch.equal(moved2[s], ~own), "the complement edit moves exactly the other axes"
    assert owners.count("a") == owners.count("b") == n // 2, "samples are dealt out evenly"
    with pytest.raises(ValueError, match="sample mode"):
        link_loss(rec, torch.randn(2, 2, W), p, masks, alpha=1.0, samples="some")


def test_factorized_mode_moves_each_links_axes_then_only_the_free_axes():
    p, masks = _two_boxes()
    n = 3
    rec = LatentRecorder()
    link_loss(rec, torch.randn(n, 2, W), p, masks, alpha=1.0, samples="factorized")
    x, xa, xb, xf = rec.seen[0].split(n)
    a, b = p.axes_mask("a"), p.axes_mask("b")
    assert torch.equal((xa != x)[:, 0], a.expand(n, -1)) and torch.equal((xb != x)[:, 0], b.expand(n, -1))
    assert torch.equal((xf != x)[:, 0], (~(a | b)).expand(n, -1)), "the complement edit moves the free axes only"
    # With one link the complement is the free axes: the same draws give the same terms as 'all'.
    one = _partition()
    mask = one.region_mask("box", RES).float()
    G = Generator(RES, z_dim=W, w_dim=W, mapping_layers=2, channel_base=256, channel_max=32)
    ws = G.mapping(torch.randn(2, W))
    terms = {}
    for mode in ("all", "factorized"):
        torch.manual_seed(1)
        out = link_loss(G, ws, one, {"box": mask}, alpha=1.0, generator=torch.Generator().manual_seed(0),
                        samples=mode)
        terms[mode] = (out["in/box"].item(), out["out/box"].item())
    assert terms["all"] == pytest.approx(terms["factorized"], rel=1e-5)
    # Links that take every axis leave no free axes: one image per link plus x.
    full = LatentPartition.from_specs([{"name": "a", "region": {"box": [0, 0, 0.5, 1]}, "axes": W // 2},
                                       {"name": "b", "region": {"box": [0.5, 0, 1, 1]}, "axes": W // 2}], W, RES)
    rec = LatentRecorder()
    out = link_loss(rec, torch.randn(n, 2, W), full, {k: full.region_mask(k, RES).float() for k in "ab"},
                    alpha=1.0, samples="factorized")
    assert rec.seen[0].shape[0] == 3 * n and out["in/a"].item() == 0.0


@pytest.mark.parametrize("samples", ["all", "split", "factorized"])
def test_swap_edits_take_the_moved_axes_from_another_sample_of_the_batch(samples):
    p, masks = _two_boxes()
    n = 4
    ws = torch.randn(n, 1, W).repeat(1, 2, 1)
    donor = ws.roll(1, dims=0)
    rec = LatentRecorder()
    link_loss(rec, ws, p, masks, alpha=1.0, samples=samples, perturb="swap")
    x, *edits = rec.seen[0].split(n)
    assert torch.equal(x, ws)
    for e in edits:
        moved = (e != ws).any(1)  # (n, W): the axes this edit moved
        assert moved.any()
        assert torch.allclose(e[moved[:, None, :].expand_as(e)], donor[moved[:, None, :].expand_as(e)], atol=1e-6), \
            "every moved axis holds the other sample's value"
    # Half way at alpha 0.5; a batch of one has no other sample, so nothing moves.
    rec = LatentRecorder()
    link_loss(rec, ws, p, masks, alpha=0.5, samples="all", perturb="swap")
    a = p.axes_mask("a")
    assert torch.allclose(rec.seen[0].split(n)[1][:, :, a], (ws + donor)[:, :, a] / 2)
    rec = LatentRecorder()
    link_loss(rec, ws[:1], p, masks, alpha=1.0, samples="all", perturb="swap")
    assert all(torch.equal(e, ws[:1]) for e in rec.seen[0].split(1))
    # The perturbed fakes swap too, layer by layer (style mixing kept), on one group of axes.
    settings = LinkSettings.build(p, RES, "cpu", alpha=1.0, lambda_in=1.0, lambda_out=1.0, batch=4, fakes=0.5,
                                  perturb="swap")
    mixed = torch.randn(n, 2, W)
    out = settings.perturb_some(mixed)
    groups = [p.axes_mask("a"), p.axes_mask("b"), ~p.axes_mask("a"), ~p.axes_mask("b")]
    for s in range(2):
        moved = (out[s] != mixed[s]).any(0)
        assert any(torch.equal(moved, g) for g in groups)
        assert torch.allclose(out[s][:, moved], mixed.roll(1, dims=0)[s][:, moved], atol=1e-6)
    assert torch.equal(out[2:], mixed[2:])
    with pytest.raises(ValueError, match="perturbation must be one of"):
        link_loss(rec, ws, p, masks, alpha=1.0, perturb="uniform")


def test_swap_edits_refuse_a_glink_sub_batch_of_one(image_folder, tmp_path):
    """A lone sample has no other w to swap toward, so its regularizer would silently do nothing."""
    p, _ = _two_boxes()
    with pytest.raises(InputError, match="1 sample per process"):
        LinkSettings.build(p, RES, "cpu", alpha=1.0, lambda_in=1.0, lambda_out=1.0, batch=1, fakes=0.0,
                           perturb="swap")
    LinkSettings.build(p, RES, "cpu", alpha=1.0, lambda_in=1.0, lambda_out=1.0, batch=1, fakes=0.0)  # gaussian
    cfg = tiny_run(image_folder, tmp_path / "run", link_batch=1)
    cfg.links = [{"name": "box", "region": {"box": BOX}, "axes": 8}]
    with pytest.raises(InputError, match="raise --batch, --link-batch or --link-budget"):
        train(cfg, progress=False)
    assert not (tmp_path / "run" / "config.yaml").exists(), "refused before the run folder is written"


def test_gradients_of_the_regularizer_reach_the_synthesis_network():
    G = Generator(RES, z_dim=W, w_dim=W, mapping_layers=2, channel_base=256, channel_max=32)
    p = _partition()
    settings = LinkSettings.build(p, RES, "cpu", alpha=1.0, lambda_in=1.0, lambda_out=1.0, batch=4, fakes=0.0)
    loss, _ = settings.loss(G, G.mapping(torch.randn(4, W)))
    loss.backward()
    convs = [m for n, m in G.synthesis.named_parameters() if n.endswith("conv.weight")]
    assert convs and all(w.grad is not None and w.grad.abs().sum() > 0 for w in convs)


def test_perturbed_fakes_change_only_the_first_fraction_of_a_batch():
    p = _partition()
    settings = LinkSettings.build(p, RES, "cpu", alpha=1.0, lambda_in=1.0, lambda_out=1.0, batch=4, fakes=0.25)
    ws = torch.randn(8, 2, W)
    out = settings.perturb_some(ws)
    changed = (out != ws).flatten(1).any(1)
    assert changed[:2].all() and not changed[2:].any()


def test_masked_mse_metric_scores_a_separable_generator_as_perfectly_local():
    p = _partition()
    mask = p.region_mask("box", RES)
    r = masked_mse_metric(SeparableG(mask), p, n=16, batch=8, device="cpu")["box"]
    assert r["mse_in"] > 1e-3 and r["mse_out"] == 0.0 and r["mse_in_complement"] == 0.0 and r["locality"] == 0.0
    e = masked_mse_metric(SeparableG(mask, entangled=True), p, n=16, batch=8, device="cpu")["box"]
    assert e["mse_out"] > 0 and e["locality"] > 0
    assert parse_metric_names("mse1k") == ["mse1k"]
    assert parse_metric_names("fid50k_full, kid5k,mse2k") == ["fid50k_full", "kid5k", "mse2k"]
    for bad in ("psnr", "mse0k", "fid5"):
        with pytest.raises(ValueError, match=r"unknown metric.*mse<N>k.*fid<N>k"):
            parse_metric_names(bad)


class TintedG(SeparableG):
    """SeparableG whose last 8 axes tint the whole image, inside the box too: what shared axes carry."""

    def __init__(self, mask: torch.Tensor):
        super().__init__(mask)
        self.outside = nn.Linear(W - 16, 3 * RES * RES)
        self.tint = nn.Linear(8, 3)

    def synthesis(self, ws, noise_mode="const", noise_repeats=1):
        w = ws[:, 0]
        a = self.inside(w[:, :8]).reshape(-1, 3, RES, RES)
        b = self.outside(w[:, 8:W - 8]).reshape(-1, 3, RES, RES)
        return torch.tanh(self.mask * a + (1 - self.mask) * b + self.tint(w[:, W - 8:])[:, :, None, None])


def test_shared_axes_may_change_the_region_without_counting_against_the_link():
    shared, plain = _partition(shared=8), _partition()
    mask = shared.region_mask("box", RES)
    G = TintedG(mask)
    # the metric: the complement's edit leaves the shared axes, so the tint no longer counts inside
    r = masked_mse_metric(G, shared, n=16, batch=8, device="cpu")["box"]
    assert r["mse_out"] == 0.0 and r["mse_in_complement"] == 0.0 and r["mse_in"] > 1e-3
    assert masked_mse_metric(G, plain, n=16, batch=8, device="cpu")["box"]["mse_in_complement"] > 1e-4
    # the regularizer: L_in is zero only when the tint's axes are shared
    ws = torch.randn(4, 2, W)
    for samples in ("all", "split", "factorized"):
        assert link_loss(G, ws, shared, {"box": mask.float()}, alpha=1.0, samples=samples)["in/box"].item() < 1e-6
        assert link_loss(G, ws, plain, {"box": mask.float()}, alpha=1.0, samples=samples)["in/box"].item() > 1e-4
    # no edit of the regularizer, of the perturbed fakes or of `linkgan edit --complement` moves them
    rec = LatentRecorder()
    link_loss(rec, ws, shared, {"box": mask.float()}, alpha=1.0, samples="all", perturb="swap")
    assert all(torch.equal(e[..., W - 8:], ws[..., W - 8:]) for e in rec.seen[0].split(4))
    settings = LinkSettings.build(shared, RES, "cpu", alpha=1.0, lambda_in=1.0, lambda_out=1.0, batch=4, fakes=1.0)
    assert torch.equal(settings.perturb_some(ws)[..., W - 8:], ws[..., W - 8:])
    edited = edit_latents(G, shared, ws, "box", n=2, complement=True)
    assert torch.equal(edited[..., W - 8:], ws[:, None, :, W - 8:].expand_as(edited[..., W - 8:]))
    assert not torch.equal(edited[..., 8:W - 8], ws[:, None, :, 8:W - 8].expand_as(edited[..., 8:W - 8]))


def test_edits_move_only_the_region_of_a_separable_generator():
    p = _partition()
    mask = p.region_mask("box", RES)
    G = SeparableG(mask)
    ws = torch.randn(2, 2, W)
    for mode in ("resample", "perturb"):
        var = edit_latents(G, p, ws, "box", n=3, mode=mode)
        assert var.shape == (2, 3, 2, W)
        diff = (G.synthesis(var.flatten(0, 1)) - G.synthesis(ws.repeat_interleave(3, 0))).abs().amax(1)
        assert diff[:, ~mask].max() == 0 and diff[:, mask].max() > 0
    comp = edit_latents(G, p, ws, "box", n=2, complement=True)
    diff = (G.synthesis(comp.flatten(0, 1)) - G.synthesis(ws.repeat_interleave(2, 0))).abs().amax(1)
    assert diff[:, mask].max() == 0 and diff[:, ~mask].max() > 0
    moved = G.synthesis(transplant_latents(p, ws[:1], ws[1:], "box"))
    a, b = G.synthesis(ws[:1]), G.synthesis(ws[1:])
    assert torch.equal(moved[..., mask], b[..., mask]) and torch.equal(moved[..., ~mask], a[..., ~mask])


def test_a_short_fine_tune_with_a_link_makes_the_model_more_local(image_folder, tmp_path):
    from linkgan.training import train

    train(tiny_run(image_folder, tmp_path / "base", kimg=0.032, pl_weight=0.0), progress=False)
    results = {}
    for name, links in (("plain", []), ("link", [{"name": "box", "region": {"box": BOX}, "axes": 8}])):
        cfg = tiny_run(image_folder, tmp_path / name, kimg=0.4, init=str(tmp_path / "base"), pl_weight=0.0,
                       link_interval=1, link_lambda_in=10.0, link_lambda_out=40.0, link_loss="relative")
        cfg.links = links
        trainer = Trainer(cfg, progress=False)
        trainer.run()
        results[name] = masked_mse_metric(trainer.G, _partition(), n=64, batch=32)["box"]["locality"]
    assert results["link"] < 0.5 * results["plain"], results


def test_links_are_saved_in_the_checkpoint_config(image_folder, tmp_path):
    from linkgan import LinkGANPipeline
    from linkgan.training import train

    cfg = tiny_run(image_folder, tmp_path / "run", kimg=0.016, pl_weight=0.0)
    cfg.links = [{"name": "box", "region": {"box": BOX}, "axes": 8}]
    train(cfg, progress=False)
    pipe = LinkGANPipeline.load(tmp_path / "run")
    assert pipe.links.names == ["box"] and pipe.links["box"].axes == (0, 8)
    original, variants = pipe.edit(seed=1, link="box", n=3)
    assert len(variants) == 3 and original.size == (RES, RES)
    # Editing the same seed again reuses its cached latent and image: the same pixels as an
    # edit of the latent itself, which renders everything.
    again = pipe.edit(seed=1, link="box", n=3, output="tensor")
    direct = pipe.edit(latent=pipe.latents([1])[0], link="box", n=3, output="tensor")
    assert torch.allclose(again[0], direct[0], atol=1e-5) and torch.allclose(again[1], direct[1], atol=1e-5)
    assert (1, 1.0) in pipe._originals
    frames = pipe.interpolate(1, link="box", frames=4, output="tensor")
    assert frames.shape == (4, 3, RES, RES)
    assert torch.allclose(frames[0], pipe.generate([1], output="tensor")[0], atol=1e-5), "the loop starts at the image"
    moved = pipe.transplant(1, 2, link="box", output="tensor")
    assert moved.shape == (3, RES, RES)
    with pytest.raises(ValueError, match="target_seed"):
        pipe.interpolate(pipe.latents([1])[0], link="box")
    assert RunConfig.from_dict(RunConfig().to_dict()).links == []


def test_warm_up_delays_the_link_phase_and_disabling_fakes_turns_them_off(image_folder, tmp_path):
    cfg = tiny_run(image_folder, tmp_path / "run", link_start_kimg=0.08, link_fakes=0.0)
    cfg.links = [{"name": "box", "region": {"box": BOX}, "axes": 8}]
    trainer = Trainer(cfg, progress=False)
    glink = next(p for p in trainer.phases if p.name == "Glink")
    assert glink.start_step == 10 and glink.interval == 8  # 80 images at batch 8
    assert not glink.due(0) and not glink.due(8) and glink.due(16)
    ws = torch.randn(8, 2, W)
    assert torch.equal(trainer.link.perturb_some(ws), ws)


def test_ramp_scales_the_link_phase_from_zero_to_full_weight(image_folder, tmp_path):
    cfg = tiny_run(image_folder, tmp_path / "run", link_start_kimg=0.08, link_ramp_kimg=0.16)
    cfg.links = [{"name": "box", "region": {"box": BOX}, "axes": 8}]
    trainer = Trainer(cfg, progress=False)
    weights = {}
    for seen in (0, 80, 120, 160, 240, 10_000):
        trainer.images_seen = seen
        weights[seen] = trainer.link_weight()
    assert weights == pytest.approx({0: 0.0, 80: 0.0, 120: 0.25, 160: 0.5, 240: 1.0, 10_000: 1.0})
    gains = {}
    trainer.loss.accumulate = lambda phase, *a, gain, **k: gains.__setitem__(phase, gain)
    glink = next(p for p in trainer.phases if p.name == "Glink")
    trainer.step, trainer.images_seen = 2 * glink.interval, 120
    trainer.train_step(torch.zeros(8, 3, RES, RES, dtype=torch.uint8), LossStats())
    assert gains["Glink"] == pytest.approx(glink.interval * 0.25) and gains["Gmain"] == 1
    # With its own Adam the loss's scale does not matter, so the ramp scales the step instead.
    cfg.train.link.optimizer, cfg.train.link.lr = "separate", 0.004
    trainer = Trainer(cfg, progress=False)
    trainer.loss.accumulate = lambda *a, **k: None
    glink = next(p for p in trainer.phases if p.name == "Glink")
    trainer.step, trainer.images_seen = 2 * glink.interval, 120
    trainer.train_step(torch.zeros(8, 3, RES, RES, dtype=torch.uint8), LossStats())
    assert glink.opt.param_groups[0]["lr"] == pytest.approx(0.004 * 0.25)


@pytest.mark.parametrize("mode", ["shared", "separate"])
def test_link_optimizer_modes_wire_the_glink_phase(image_folder, tmp_path, mode):
    cfg = tiny_run(image_folder, tmp_path / "run", link_optimizer=mode, pl_weight=0.0, link_lr=0.01)
    cfg.links = [{"name": "box", "region": {"box": BOX}, "axes": 8}]
    trainer = Trainer(cfg, progress=False)
    phases = {p.name: p for p in trainer.phases}
    gmain, glink = phases["Gmain"].opt, phases["Glink"].opt
    if mode == "shared":
        assert glink is gmain
    else:
        assert isinstance(glink, torch.optim.Adam) and glink is not gmain
    # The lazy step-size correction k / (k + 1) only applies to phases that share G's Adam.
    lr_g = cfg.train.lr_g * (8 / 9 if mode == "shared" else 1.0)
    assert gmain.param_groups[0]["lr"] == pytest.approx(lr_g)
    expected = {"G", "D", "Glink"} if mode == "separate" else {"G", "D"}
    assert set(trainer.optimizers) == expected and trainer.optimizers["G"] is gmain
    # One step with Gmain and Glink due: a shared Adam takes both gradients into its moments,
    # a separate one only the adversarial gradient.
    trainer.train_step(torch.zeros(8, 3, RES, RES, dtype=torch.uint8), LossStats())
    p = next(iter(trainer.G.synthesis.parameters()))
    assert int(gmain.state[p]["step"]) == (2 if mode == "shared" else 1)
    if mode == "separate":
        assert int(glink.state[p]["step"]) == 1 and glink.param_groups[0]["lr"] == 0.01


def test_a_resumed_run_with_a_separate_link_optimizer_reproduces_the_uninterrupted_run(image_folder, tmp_path):
    def cfg(out):
        c = tiny_run(image_folder, out, link_optimizer="separate", link_interval=2)
        c.links = [{"name": "box", "region": {"box": BOX}, "axes": 8}]
        return c

    train(cfg(tmp_path / "full"), progress=False)
    train(cfg(tmp_path / "part"), progress=False, max_steps=3)
    resumed = train(cfg(tmp_path / "part"), resume=tmp_path / "part", progress=False)
    assert resumed.step == 6
    a, b = load_checkpoint(tmp_path / "full"), load_checkpoint(tmp_path / "part")
    assert any(k.startswith("opt.Glink.") for k in a.tensors), "the link phase's Adam moments are checkpointed"
    for key in a.tensors:
        if key.startswith(("G.", "G_ema.", "D.")):
            assert torch.allclose(a.tensors[key], b.tensors[key], atol=1e-5), key


def test_a_locality_target_steers_each_links_strength_within_its_bounds():
    part = LatentPartition.from_specs([{"name": "a", "region": {"box": BOX}, "axes": 4},
                                       {"name": "b", "region": {"box": [0, 0.6, 1, 1]}, "axes": 4}], w_dim=16)
    link = LinkSettings(part, {}, alpha=1.0, lambda_in=10.0, lambda_out=30.0, batch=8, fakes=0.0, form="relative",
                        samples="all", target=0.1)
    assert link.scale == {"a": 1.0, "b": 1.0}
    link.adapt({"a": 0.05, "b": 0.5}, images=TARGET_KIMG * 1000)  # a more local than needed, b less
    assert link.scale["a"] == pytest.approx(0.1) and link.scale["b"] == 1.0, "never above the lambdas"
    terms = {"in/a": torch.tensor(0.5), "out/a": torch.tensor(0.1)}
    assert link.weighted("a", terms).item() == pytest.approx(0.1 * (10 * 0.5 + 30 * 0.1))
    for _ in range(5):
        link.adapt({"a": 0.0}, images=TARGET_KIMG * 1000)  # b without a locality (a 3D box) stays put
    assert link.scale == {"a": pytest.approx(TARGET_MIN_SCALE), "b": 1.0}
    link.adapt({"a": 0.2}, images=TARGET_KIMG * 500)
    assert link.scale["a"] == pytest.approx(TARGET_MIN_SCALE * 10 ** 0.5), "it gains strength back when leaky"
    fixed = LinkSettings(part, {}, 1.0, 10.0, 30.0, 8, 0.0, "relative", "all", target=None)
    fixed.adapt({"a": 0.0, "b": 0.0}, images=10**6)
    assert fixed.scale == {"a": 1.0, "b": 1.0}


def test_a_resumed_run_with_a_locality_target_reproduces_the_uninterrupted_run(image_folder, tmp_path):
    """The steered strengths are logged, checkpointed and restored. A target above any locality lowers
    the scale by the same step after every Glink call, so its value after the run is known exactly."""
    def cfg(out, **options):
        c = tiny_run(image_folder, out, link_interval=2, **options)
        c.links = [{"name": "box", "region": {"box": BOX}, "axes": 8}]
        return c

    train(cfg(tmp_path / "full", link_target=50.0), progress=False)
    train(cfg(tmp_path / "part", link_target=50.0), progress=False, max_steps=3)
    train(cfg(tmp_path / "part", link_target=50.0), resume=tmp_path / "part", progress=False)
    a, b = load_checkpoint(tmp_path / "full"), load_checkpoint(tmp_path / "part")
    glink_calls = 3  # 6 steps of 8 images, every second one
    expected = 10 ** (-glink_calls * 2 * 8 / (TARGET_KIMG * 1000))
    assert a.tensors["state.link_scale"].tolist() == pytest.approx([expected])
    for key in a.tensors:
        if key.startswith(("G.", "G_ema.", "D.", "state.link_scale")):
            assert torch.allclose(a.tensors[key], b.tensors[key], atol=1e-5), key
    stats = [json.loads(line) for line in (tmp_path / "full" / "stats.jsonl").read_text().splitlines()]
    assert stats[-1]["Progress/link_scale/box"] == pytest.approx(expected)
    assert all(0 < r["Loss/link/locality/box"] for r in stats if "Loss/link/locality/box" in r)
    train(cfg(tmp_path / "fixed", link_target=None, kimg=0.016), progress=False)
    assert load_checkpoint(tmp_path / "fixed").tensors["state.link_scale"].tolist() == [1.0]
    assert "Progress/link_scale/box" not in (tmp_path / "fixed" / "stats.jsonl").read_text()


def test_factorized_mode_is_refused_for_overlapping_regions(image_folder, tmp_path):
    from linkgan.config import ConfigError

    cfg = tiny_run(image_folder, tmp_path / "run", link_samples="factorized")
    cfg.links = [{"name": "a", "region": {"box": [0, 0, 0.6, 0.6]}, "axes": 8},
                 {"name": "b", "region": {"box": [0.4, 0.4, 1, 1]}, "axes": 8}]
    cfg.allow_link_overlap = True
    with pytest.raises(ConfigError, match="factorized.*disjoint"):
        Trainer(cfg, progress=False)


def test_auto_sample_mode_and_render_budget_size_the_glink_phase(image_folder, tmp_path):
    """'auto' is factorized for disjoint links and 'all' for one link or overlapping regions; a
    budget of 3 renders per sample of the sub-batch (one link's cost) shrinks it as links are added."""
    boxes = [{"name": n, "region": {"box": b}, "axes": 8} for n, b in
             (("tl", [0, 0, 0.5, 0.5]), ("tr", [0.5, 0, 1, 0.5]), ("bl", [0, 0.5, 0.5, 1]), ("br", [0.5, 0.5, 1, 1]))]
    seen = {}
    for name, links, overlap, options in [
            ("one", boxes[:1], False, {}),
            ("four", boxes, False, {}),
            ("four-overlap", boxes, True, {}),
            ("four-all", boxes, False, {"link_samples": "all"}),
            ("four-split", boxes, False, {"link_samples": "split"}),
            ("four-nobudget", boxes, False, {"link_budget": None})]:
        cfg = tiny_run(image_folder, tmp_path / name, **{"link_samples": "auto", "link_budget": 3.0, **options})
        cfg.links, cfg.allow_link_overlap = [dict(link) for link in links], overlap
        link = Trainer(cfg, progress=False).link
        seen[name] = (link.samples, link.batch)
    # batch 8; four links of 8 of the 32 axes leave free axes: factorized renders 2 + 4 = 6 per sample
    assert seen == {"one": ("all", 8), "four": ("factorized", 4), "four-overlap": ("all", 2),
                    "four-all": ("all", 2), "four-split": ("split", 8), "four-nobudget": ("factorized", 8)}


def test_renders_per_sample_counts_what_link_loss_renders():
    from linkgan.regularizer import renders_per_sample

    p, masks = _two_boxes()
    full = LatentPartition.from_specs([{"name": "a", "region": {"box": [0, 0, 0.5, 1]}, "axes": W // 2},
                                       {"name": "b", "region": {"box": [0.5, 0, 1, 1]}, "axes": W // 2}], W, RES)
    G = Generator(resolution=RES, z_dim=W, w_dim=W, mapping_layers=1, channel_base=64, channel_max=8)
    calls = []
    original = G.synthesis.forward
    G.synthesis.forward = lambda ws, **kw: calls.append(ws.shape[0]) or original(ws, **kw)
    for part in (p, full):
        fixed = {name: part.region_mask(name, RES).float() for name in part.names}
        for samples in ("all", "split", "factorized"):
            calls.clear()
            link_loss(G, G.mapping(torch.randn(2, W)), part, fixed, alpha=1.0, samples=samples)
            assert calls == [2 * renders_per_sample(samples, part)], (samples, part)


def test_edit_and_metrics_commands_write_their_outputs(image_folder, tmp_path, capsys):
    import json

    from linkgan.cli import main
    from linkgan.training import train

    cfg = tiny_run(image_folder, tmp_path / "run", kimg=0.016, pl_weight=0.0)
    cfg.links = [{"name": "box", "region": {"box": BOX}, "axes": 8}]
    train(cfg, progress=False)
    run = str(tmp_path / "run")
    for extra, out in ((["--n", "2"], "grid.png"), (["--complement", "--mode", "perturb"], "c.png"),
                       (["--transplant", "7"], "t.png"), (["--interpolate", "--frames", "4"], "i.gif")):
        assert main(["edit", "--ckpt", run, "--link", "box", "--seeds", "0-1", "--out", str(tmp_path / out)]
                    + extra) == 0
        assert (tmp_path / out).stat().st_size > 0
    assert main(["edit", "--ckpt", run, "--link", "nose", "--out", str(tmp_path / "x.png")]) == 2
    assert "known links: 'box'" in capsys.readouterr().err
    assert main(["metrics", "--ckpt", run, "--metrics", "mse1k", "--out", str(tmp_path / "m.json"),
                 "--no-progress"]) == 0
    result = json.loads((tmp_path / "m.json").read_text())
    assert set(result["mse1k"]["box"]) == {"mse_in", "mse_out", "mse_in_complement", "locality"}


def test_a_links_weight_scales_only_its_own_terms():
    G = Generator(RES, z_dim=W, w_dim=W, mapping_layers=2, channel_base=256, channel_max=32)
    specs = [{"name": "a", "region": {"box": [0, 0, 0.5, 0.5]}, "axes": 8},
             {"name": "b", "region": {"box": [0.5, 0.5, 1, 1]}, "axes": 8}]
    ws = G.mapping(torch.randn(4, W)).detach()
    totals = {}
    for weight in (1.0, 3.0):
        specs[1]["weight"] = weight
        p = LatentPartition.from_specs(specs, W, RES)
        settings = LinkSettings.build(p, RES, "cpu", alpha=1.0, lambda_in=2.0, lambda_out=5.0, batch=4, fakes=0.0)
        torch.manual_seed(0)
        totals[weight], terms = settings.loss(G, ws)
    a = 2.0 * terms["in/a"] + 5.0 * terms["out/a"]
    b = 2.0 * terms["in/b"] + 5.0 * terms["out/b"]
    assert torch.allclose(totals[3.0], a + 3 * b, rtol=1e-5)
    assert torch.allclose(totals[1.0], a + b, rtol=1e-5)


def test_links_that_tile_the_image_without_shared_axes_get_a_note():
    """Four corners own the whole image: unless some axes are shared, nothing may change two corners at once,
    and training says so (with what to do); a single box, or the corners with shared axes, get no note."""
    corners = [{"name": f"c{i}", "region": {"box": [x, y, x + 0.5, y + 0.5]}, "axes": 6}
               for i, (x, y) in enumerate([(0, 0), (0.5, 0), (0, 0.5), (0.5, 0.5)])]

    def note(specs, shared=0):
        p = LatentPartition.from_specs(specs, W, resolution=RES, shared=shared)
        return LinkSettings.build(p, RES, "cpu", alpha=1.0, lambda_in=1.0, lambda_out=1.0, batch=4,
                                  fakes=0.0).tiling_note()

    text = note(corners)
    assert text and "c0, c1, c2, c3 cover 100%" in text and "--link-shared-axes" in text
    assert note(corners, shared=8) is None
    assert note(corners[:1]) is None
    assert note(corners[:2]) is None, "two corners cover half of the image"
    halves = [{"name": "top", "region": {"box": [0, 0, 1, 0.5]}, "axes": 8},
              {"name": "bottom", "region": {"box": [0, 0.5, 1, 1]}, "axes": 8}]
    assert "top, bottom" in note(halves)

"""3D-aware LinkGAN: training a tri-plane generator on posed data, the regularizer on rendered views
and on 3D boxes, multi-view edits and metrics (linkgan.threed, linkgan.views)."""

import math

import numpy as np
import pytest
import torch

from linkgan import LinkGANPipeline
from linkgan.checkpoint import load_checkpoint
from linkgan.cli import main as cli_main
from linkgan.config import ConfigError, ModelConfig, RunConfig, TrainConfig
from linkgan.data import DatasetError
from linkgan.data.toyheads import make_toyheads
from linkgan.losses import LossStats
from linkgan.metrics import masked_mse_metric
from linkgan.networks import CameraDiscriminator, TriplaneGenerator
from linkgan.networks.build import build_discriminator, build_generator
from linkgan.partition import LatentPartition
from linkgan.pipeline import TriplanePipeline
from linkgan.regions import Box3DRegion, RegionError, region_from_spec
from linkgan.regularizer import LinkSettings
from linkgan.render3d import camera_labels, intrinsics, look_at, project
from linkgan.threed import TriplaneLoss, volume_link_loss
from linkgan.training import Trainer, train

NOSE = [-0.07, -0.2, 0.18, 0.07, 0.02, 0.45]
LINKS = [{"name": "eyes", "region": {"box": [0.2, 0.3, 0.8, 0.5]}, "axes": 4},
         {"name": "nose", "region": {"box3d": NOSE}, "axes": 4}]


def tiny_model_3d(**overrides) -> ModelConfig:
    fields = dict(kind="3d", resolution=16, z_dim=16, w_dim=16, mapping_layers=2, channel_base=256, channel_max=16,
                  plane_resolution=16, plane_channels=8, decoder_hidden=16, feature_channels=8, sr_channels=16,
                  coarse_samples=6, fine_samples=6)
    fields.update(overrides)
    return ModelConfig.from_options(**fields)


def tiny_run_3d(data, out, links=(), **train) -> RunConfig:
    defaults = dict(data=str(data), out=str(out), batch=4, kimg=0.016, workers=0, tick_kimg=0.008, snapshot_kimg=1.0,
                    grid_size=2, seed=0, r1_interval=2, link_interval=2, xflip=True)
    defaults.update(train)
    return RunConfig(model=tiny_model_3d(), train=TrainConfig.from_options(**defaults), links=[dict(link) for link in links])


@pytest.fixture(scope="module")
def toyheads(tmp_path_factory):
    return make_toyheads(tmp_path_factory.mktemp("th") / "th16.zip", n=8, res=16, workers=1, progress=False)


@pytest.fixture(scope="module")
def run3d(toyheads, tmp_path_factory):
    out = tmp_path_factory.mktemp("run3d") / "run"
    result = train(tiny_run_3d(toyheads, out, LINKS), progress=False)
    return out, result


def _weights(path, prefix="G_ema."):
    ckpt = load_checkpoint(path)
    return {k: v for k, v in ckpt.tensors.items() if k.startswith(prefix)}


# ------------------------------------------------------------------------------ training
def test_a_3d_run_trains_with_both_link_kinds_and_saves_a_3d_checkpoint(run3d):
    out, result = run3d
    assert result.images_seen == 16 and result.step == 4
    ckpt = load_checkpoint(out)
    assert ckpt.config["model"]["kind"] == "3d"
    assert any(k.startswith("G_ema.decoder.") for k in ckpt.tensors)
    assert any(k.startswith("D.embed.") for k in ckpt.tensors), "D must be camera-conditioned"
    stats = (out / "stats.jsonl").read_text()
    for term in ("Loss/link/in/eyes", "Loss/link/out/eyes", "Loss/link/in/nose", "Loss/link/out/nose",
                 "Loss/link/out_image/nose"):
        assert term in stats
    assert (out / "samples-latest.png").is_file()


def test_a_resumed_3d_run_reproduces_the_uninterrupted_run(toyheads, run3d, tmp_path):
    full_dir, _ = run3d
    part = train(tiny_run_3d(toyheads, tmp_path / "part", LINKS), progress=False, max_steps=2)
    assert part.step == 2
    resumed = train(tiny_run_3d(toyheads, tmp_path / "part", LINKS), resume=tmp_path / "part", progress=False)
    assert resumed.step == 4
    a, b = _weights(full_dir), _weights(tmp_path / "part")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_a_3d_run_on_a_dataset_without_cameras_stops_with_a_clear_error(image_folder, tmp_path):
    with pytest.raises(DatasetError, match="camera"):
        Trainer(tiny_run_3d(image_folder, tmp_path / "r"))
    code = cli_main(["train", "--data", str(image_folder), "--out", str(tmp_path / "c"), "--kind", "3d",
                     "--res", "16", "--kimg", "0.004", "--no-progress"])
    assert code == 2


def test_a_box3d_link_on_a_2d_model_is_refused(image_folder, tmp_path):
    cfg = tiny_run_3d(image_folder, tmp_path / "r", LINKS[1:])
    cfg.model = ModelConfig(resolution=16, z_dim=16, w_dim=16, mapping_layers=2, channel_base=256, channel_max=16)
    with pytest.raises(ConfigError, match="box3d"):
        Trainer(cfg)


def test_2d_configs_without_3d_fields_still_load():
    d = RunConfig().to_dict()
    del d["model"]["kind"], d["model"]["triplane"], d["train"]["gpc_swap"]
    cfg = RunConfig.from_dict(d)
    assert cfg.model.kind == "2d" and cfg.model.triplane == RunConfig().model.triplane


def test_fakes_are_conditioned_on_swapped_poses_with_probability_gpc_swap():
    m = tiny_model_3d()
    G, D = build_generator(m), build_discriminator(m)
    c = G.view_cameras((-20, 0, 20, 30))
    assert torch.equal(TriplaneLoss(G, D, 1.0, gpc_swap=0.0).conditioning(c), c)
    assert torch.equal(TriplaneLoss(G, D, 1.0, gpc_swap=1.0).conditioning(c), c.roll(1, 0))


def test_the_discriminator_sees_the_camera_and_the_raw_render():
    torch.manual_seed(0)
    D = CameraDiscriminator(16, 8, channel_base=256, channel_max=16)
    img = torch.randn(2, 3, 16, 16)
    c = build_generator(tiny_model_3d()).view_cameras((0, 30))
    logits = D(img, c)
    assert logits.shape == (2, 1)
    assert not torch.allclose(D(img, c.flip(0)), logits), "another camera must change the verdict"
    raw = torch.randn(2, 3, 8, 8)
    assert not torch.allclose(D({"image": img, "image_raw": raw}, c), logits), "the raw render must count"
    with pytest.raises(ValueError, match="camera"):
        D(img)


# ------------------------------------------------------------------------------ the regularizer
def _loss_with_links(links, alpha=1.0, form="relative"):
    torch.manual_seed(0)
    m = tiny_model_3d()
    G, D = build_generator(m), build_discriminator(m)
    part = LatentPartition.from_specs(links, m.w_dim, m.resolution)
    link = LinkSettings.build(part, m.resolution, None, alpha=alpha, lambda_in=1.0, lambda_out=1.0, batch=2,
                              fakes=0.0, form=form)
    return G, TriplaneLoss(G, D, 1.0, link=link)


def test_the_glink_phase_on_rendered_views_runs_and_has_gradients():
    G, loss = _loss_with_links(LINKS[:1])
    G.requires_grad_(True)
    stats = LossStats()
    c = G.view_cameras((-20, 25))
    loss.accumulate("Glink", torch.zeros(2, 3, 16, 16), torch.randn(2, 16), gain=1.0, stats=stats, step=0,
                    c_real=c, c_gen=c)
    assert {"Loss/link/in/eyes", "Loss/link/out/eyes"} <= set(stats.means())
    for name in ("backbone", "decoder", "superresolution"):
        grads = [p.grad for p in getattr(G, name).parameters() if p.grad is not None]
        assert grads and any(g.abs().sum() > 0 for g in grads), name


def test_x_x1_and_x2_share_camera_noise_and_ray_samples():
    # With alpha = 0 the edits are no edits: every term must be exactly 0, in training mode too
    # (where ray samples would otherwise be jittered per image and noise drawn per image).
    G, loss = _loss_with_links(LINKS, alpha=0.0, form="absolute")
    G.train()
    total, terms = loss.link_terms(torch.randn(3, 16), G.view_cameras((-30, 0, 30)))
    assert total.item() == 0.0
    assert all(v.item() == 0.0 for k, v in terms.items() if "/" in k)


def _box_field(box, link_axes, leaky=False):
    """A field whose value at a point is the sum of the link's w axes [0, link_axes) inside the box (everywhere if
    leaky) plus the sum of the other axes outside it."""
    def field(ws, pts, k):
        w = ws[:, 0, :]
        inside = box.contains(pts).float()
        own = w[:, :link_axes].sum(-1, keepdim=True)
        rest = w[:, link_axes:].sum(-1, keepdim=True)
        if leaky:
            return (own + rest * (1 - inside)).unsqueeze(-1)
        return (own * inside + rest * (1 - inside)).unsqueeze(-1)
    return field


def test_the_3d_box_loss_is_zero_for_a_field_linked_to_its_box_and_known_for_a_leaky_one():
    part = LatentPartition.from_specs(LINKS[1:], 16, 16)
    box = part["nose"].region
    ws = torch.randn(3, 2, 16)
    gen = torch.Generator().manual_seed(0)
    exact = volume_link_loss(_box_field(box, 4), ws, part, ["nose"], 1.0, points=64, form="absolute",
                             generator=gen)
    assert float(exact["out/nose"]) == 0.0 and float(exact["in/nose"]) == 0.0
    # Leaky: the link's axes move the field equally everywhere, inside the box and out, so half of
    # the change lands outside it (relative L_out = 1/2); the complement still moves only outside.
    leaky = volume_link_loss(_box_field(box, 4, leaky=True), ws, part, ["nose"], 1.0, points=64,
                             generator=torch.Generator().manual_seed(0))
    assert float(leaky["out/nose"]) == pytest.approx(0.5, abs=1e-5)
    assert float(leaky["in/nose"]) == pytest.approx(0.0, abs=1e-6)


def test_the_3d_box_loss_reaches_the_generator_and_its_footprint_term_the_superresolution():
    G, loss = _loss_with_links(LINKS[1:])
    G.requires_grad_(True)
    loss.box_image_term = False
    total, terms = loss.link_terms(torch.randn(2, 16), G.view_cameras((0, 10)))
    total.backward()
    assert set(terms) == {"in/nose", "out/nose"} and math.isfinite(total.item())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in G.backbone.parameters())
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in G.superresolution.parameters()), \
        "the field loss does not see the super-resolution stage"
    G.zero_grad(set_to_none=True)
    loss.box_image_term = True
    total, terms = loss.link_terms(torch.randn(2, 16), G.view_cameras((0, 10)))
    total.backward()
    assert set(terms) == {"in/nose", "out/nose", "out_image/nose"} and 0 < terms["out_image/nose"].item() < 1
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in G.superresolution.parameters())


# ------------------------------------------------------------------------------ 3D-box regions
def test_box3d_regions_parse_round_trip_and_reject_inverted_boxes():
    region = region_from_spec({"box3d": NOSE})
    assert isinstance(region, Box3DRegion) and region_from_spec(region.to_spec()) == region
    assert region_from_spec("box3d:" + ",".join(map(str, NOSE))) == region
    with pytest.raises(RegionError, match="x0 < x1"):
        region_from_spec({"box3d": [0.1, 0, 0, 0.0, 1, 1]})
    with pytest.raises(RegionError, match="3D"):
        region.mask(16)


def test_a_box3d_footprint_holds_the_projection_of_its_centre_and_misses_far_pixels():
    box = Box3DRegion(*NOSE)
    cams = camera_labels(look_at(torch.tensor([-0.5, 0.0, 0.5]), torch.zeros(3), 2.7), intrinsics(2.8))
    masks = box.ray_masks(cams, 32)
    centre = torch.tensor([[(a + b) / 2 for a, b in zip(NOSE[:3], NOSE[3:])]]).expand(3, 1, 3)
    uv, z = project(centre, cams[:, :16].reshape(-1, 4, 4), cams[:, 16:].reshape(-1, 3, 3))
    for i in range(3):
        col, row = (uv[i, 0] * 32).long().tolist()
        assert masks[i, row, col] and z[i, 0] > 0
        assert 0 < masks[i].float().mean() < 0.25
    # Seen from the front, the box is symmetric about the image's vertical centre line.
    assert torch.equal(masks[1], masks[1].flip(-1))


# ------------------------------------------------------------------------------ pipeline, edits, metrics
def test_a_3d_checkpoint_loads_generates_edits_with_depth_and_measures_rgb_and_depth(run3d, tmp_path):
    out, _ = run3d
    pipe = LinkGANPipeline.load(out)
    assert isinstance(pipe, TriplanePipeline) and isinstance(pipe.G, TriplaneGenerator)
    imgs = pipe.generate([0, 1])
    assert imgs[0].size == (16, 16)
    assert np.array_equal(np.asarray(imgs[1]), pipe.generate([1], output="numpy")[0])
    original, variants = pipe.edit(seed=0, link="eyes", n=2, output="tensor")
    assert original.shape == (3, 16, 16) and variants.shape == (2, 3, 16, 16)
    assert cli_main(["edit", "--ckpt", str(out), "--link", "nose", "--seeds", "0-1", "--n", "2",
                     "--out", str(tmp_path / "e.png")]) == 0
    from PIL import Image
    grid = Image.open(tmp_path / "e.png")
    # 2 seeds x 3 yaws x (RGB row + depth row) = 12 rows of 2 + 2 cells of 16 px and 1 px gaps, shown 8x.
    assert grid.size == ((4 * 17 + 1) * 8, (12 * 17 + 1) * 8)
    m = masked_mse_metric(pipe.G, pipe.links, n=4, batch=4)
    for name in ("eyes", "nose"):
        assert {"mse_in", "mse_out", "mse_in_complement", "locality"} <= set(m[name])
        assert set(m[name]["depth"]) == {"mse_in", "mse_out", "mse_in_complement", "locality"}
        assert m[name]["views"] == [-30.0, 0.0, 30.0] and m[name]["mse_in"] > 0


def test_ada_augments_both_images_of_a_3d_discriminator(toyheads, tmp_path):
    from linkgan.training import Trainer

    trainer = Trainer(tiny_run_3d(toyheads, tmp_path / "ada", LINKS, aug="ada", aug_p=0.5, ada_kimg=0.01,
                                  ada_interval=1), progress=False)
    seen = []
    forward = trainer.augment.forward
    trainer.augment.forward = lambda images: (seen.append(sorted(images) if isinstance(images, dict) else "tensor"),
                                              forward(images))[1]
    trainer.run(max_steps=1)
    # fakes carry both images (and depth, opacity); reals are one image
    assert any(s != "tensor" and {"image", "image_raw"} <= set(s) for s in seen) and "tensor" in seen
    assert float(trainer.augment.p) != 0.5  # the controller moved p (one adjustment per step here)

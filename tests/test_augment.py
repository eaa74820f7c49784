"""ADA: the transforms, the p controller, its place in training, exact resume, and that the
LinkGAN regularizer never sees augmented images."""

import json
import math

import pytest
import torch

from conftest import tiny_run
from linkgan.augment import PIPELINES, AdaController, AugmentError, AugmentPipe
from linkgan.checkpoint import load_checkpoint
from linkgan.cli import main as cli_main
from linkgan.config import ConfigError
from linkgan.training import Trainer, train


def _images(n=8, res=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, res, res, generator=g) * 2 - 1


def test_p_zero_returns_the_images_untouched_and_p_one_changes_every_one():
    x = _images()
    assert AugmentPipe("bgc", 0.0)(x) is x
    torch.manual_seed(1)
    y = AugmentPipe("bgc", 1.0)(x)
    assert y.shape == x.shape and torch.isfinite(y).all()
    assert all(not torch.allclose(y[i], x[i]) for i in range(len(x)))


def test_blit_moves_whole_pixels_only():
    # flips, quarter turns and integer shifts (reflected at the borders) reuse the input's values
    # (to float rounding: the sampling grid is computed in [-1, 1] coordinates)
    x = _images(16, 16)
    torch.manual_seed(0)
    y = AugmentPipe("blit", 1.0)(x)
    for i in range(len(x)):
        nearest = (y[i].reshape(-1, 1) - x[i].reshape(1, -1)).abs().amin(1)
        assert nearest.max() < 1e-5, i
    assert (y != x).flatten(1).any(1).float().mean() > 0.8


def test_each_transform_follows_p():
    # with p = 0.5, each transform is on for about half of the images; check it on the matrices
    pipe = AugmentPipe("bgc", 0.5)
    torch.manual_seed(0)
    g = pipe.geometric(4000, 32)
    c = pipe.color(4000)
    changed_g = (g - torch.eye(3)).abs().flatten(1).amax(1) > 1e-6
    changed_c = (c - torch.eye(4)).abs().flatten(1).amax(1) > 1e-6
    # xflip and rotate90 draw the identity a half and a quarter of the time when on, so the
    # chance that an image keeps its geometry is about (1 - p/2)(1 - 3p/4)(1 - p)^5 ...
    assert 0.9 < changed_g.float().mean() < 1.0
    assert 0.9 < changed_c.float().mean() < 1.0
    pipe_small = AugmentPipe("color", 0.05)
    torch.manual_seed(0)
    c = pipe_small.color(4000)
    frac = ((c - torch.eye(4)).abs().flatten(1).amax(1) > 1e-6).float().mean()
    expected = 1 - (1 - 0.05) ** 4 * (1 - 0.05 / 2)  # lumaflip is a coin flip when on
    assert abs(float(frac) - expected) < 0.03


def test_color_keeps_grey_grey_under_hue_and_saturation():
    # hue rotates about the luma axis and saturation scales the chroma: a grey pixel stays where it is
    pipe = AugmentPipe("color", 1.0)
    pipe.ops = frozenset({"hue", "saturation"})
    grey = torch.full((4, 3, 8, 8), 0.3)
    torch.manual_seed(0)
    assert torch.allclose(pipe(grey), grey, atol=1e-6)


def test_augmentation_is_differentiable_and_the_same_for_both_images_of_a_3d_input():
    x = _images(4, 32).requires_grad_(True)
    torch.manual_seed(0)
    y = AugmentPipe("bgc", 1.0)(x)
    (grad,) = torch.autograd.grad(y.square().sum(), x)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0
    # 3D discriminators get {'image', 'image_raw'}: one transform, scaled to each size (flips and
    # quarter turns commute with the 2x downsampling from image to image_raw)
    image = _images(4, 32)
    raw = torch.nn.functional.avg_pool2d(image, 2)
    pipe = AugmentPipe("blit", 1.0)
    pipe.ops = frozenset({"xflip", "rotate90"})
    torch.manual_seed(3)
    out = pipe({"image": image, "image_raw": raw, "depth": torch.zeros(4, 1, 16, 16)})
    assert set(out) == {"image", "image_raw"} and not torch.equal(out["image"], image)
    assert torch.allclose(torch.nn.functional.avg_pool2d(out["image"], 2), out["image_raw"], atol=1e-6)


def test_bad_pipeline_and_p_are_refused():
    with pytest.raises(AugmentError, match="unknown augmentation pipeline 'bgcx'"):
        AugmentPipe("bgcx")
    with pytest.raises(AugmentError, match=r"\[0, 1\]"):
        AugmentPipe("bgc", 1.5)
    assert set(PIPELINES) == {"blit", "geom", "color", "bg", "bgc"}


def test_controller_moves_p_toward_the_target_at_the_papers_speed():
    pipe = AugmentPipe("bgc", 0.0)
    ada = AdaController(pipe, target=0.6, interval=4, ada_kimg=500, batch=32)
    assert ada.speed == pytest.approx(32 * 4 / 500_000)
    assert ada.adjust() is None and float(pipe.p) == 0  # no observations: no move
    ada.observe(torch.ones(32, 1))  # D is sure of every real: overfitting
    assert ada.adjust() == 1.0 and float(pipe.p) == pytest.approx(ada.speed)
    ada.observe(-torch.ones(32, 1))
    ada.adjust()
    ada.observe(-torch.ones(32, 1))
    ada.adjust()
    assert float(pipe.p) == 0.0  # clamped at 0
    fast = AdaController(pipe, ada_kimg=0.001, batch=32)
    for _ in range(3):
        fast.observe(torch.ones(8, 1))
        fast.adjust()
    assert float(pipe.p) == 1.0  # clamped at 1


def _ada_run(image_folder, out, **kw):
    opts = dict(aug="ada", aug_p=0.2, ada_kimg=0.05, ada_interval=2, kimg=0.064, r1_interval=3)
    opts.update(kw)
    return tiny_run(image_folder, out, **opts)


def test_ada_run_logs_and_saves_p_and_resumes_bit_identically(image_folder, tmp_path):
    full = train(_ada_run(image_folder, tmp_path / "full"), progress=False)
    part = train(_ada_run(image_folder, tmp_path / "part"), progress=False, max_steps=5)  # mid-interval
    assert part.step == 5
    train(_ada_run(image_folder, tmp_path / "part"), resume=tmp_path / "part", progress=False)
    rows = [[json.loads(line) for line in (tmp_path / d / "stats.jsonl").read_text().splitlines()]
            for d in ("full", "part")]
    ps = [[r["Progress/augment"] for r in rs] for rs in rows]
    assert ps[0] == ps[1] and len(set(ps[0])) > 2, "p must move, and move the same after resume"
    assert sum("Progress/ada_rt" in r for r in rows[0]) == 4  # every ada_interval (2) of the 8 steps
    ga, gb = load_checkpoint(tmp_path / "full"), load_checkpoint(tmp_path / "part")
    assert float(ga.tensors["state.aug_p"]) == ps[0][-1]
    for key in ga.tensors:
        if key.startswith(("G.", "G_ema.", "D.", "state.")):
            assert torch.equal(ga.tensors[key], gb.tensors[key]), key
    assert full.step == 8


def test_fixed_p_stays_and_noaug_builds_no_pipe(image_folder, tmp_path):
    trainer = Trainer(_ada_run(image_folder, tmp_path / "fixed", aug="fixed", aug_p=0.3), progress=False)
    trainer.run(max_steps=4)
    assert trainer.ada is None and float(trainer.augment.p) == pytest.approx(0.3)
    plain = Trainer(tiny_run(image_folder, tmp_path / "plain"), progress=False)
    assert plain.augment is None and plain.loss.augment is None


def test_every_d_call_of_every_phase_sees_augmented_images(image_folder, tmp_path):
    trainer = Trainer(_ada_run(image_folder, tmp_path / "r", aug="fixed", aug_p=1.0), progress=False)
    seen = []
    real_forward = trainer.augment.forward

    def spy(images):
        out = real_forward(images)
        seen.append(out is not images)
        return out

    trainer.augment.forward = spy
    calls = []
    d_forward = trainer.D.forward
    trainer.D.forward = lambda img, *a: (calls.append(1), d_forward(img, *a))[1]
    trainer.run(max_steps=3)
    # step 0: Gmain (fake), Dmain (fake, real), Dreg (real); steps 1, 2: Gmain, Dmain
    assert len(seen) == len(calls) == 4 + 3 + 3
    assert all(seen)


def test_link_regularizer_never_sees_augmentation(image_folder, tmp_path):
    links = [{"name": "corner", "region": {"box": [0.0, 0.0, 0.5, 0.5]}, "axes": 8}]

    def link_loss(aug, p):
        cfg = _ada_run(image_folder, tmp_path / f"l{aug}", aug=aug, aug_p=p)
        cfg.links = links
        trainer = Trainer(cfg, progress=False)
        if trainer.augment is not None:
            def refuse(images):
                raise AssertionError("the Glink phase called the augmentation")
            trainer.augment.forward = refuse
        torch.manual_seed(7)
        z = torch.randn(8, trainer.G.z_dim)
        loss, terms = trainer.loss.link_terms(z)
        return float(loss)

    with_aug = link_loss("fixed", 1.0)
    without = link_loss("noaug", 0.0)
    assert math.isfinite(with_aug) and with_aug == without


def test_bad_aug_options_name_the_flag(image_folder, tmp_path):
    with pytest.raises(ConfigError, match="--aug fixed needs the probability"):
        Trainer(_ada_run(image_folder, tmp_path / "a", aug="fixed", aug_p=0.0), progress=False)
    with pytest.raises(ConfigError, match="--aug-p 0.5 has no effect"):
        Trainer(_ada_run(image_folder, tmp_path / "b", aug="noaug", aug_p=0.5), progress=False)
    with pytest.raises(ConfigError, match="--aug-target must be above 0"):
        Trainer(_ada_run(image_folder, tmp_path / "c", aug_target=0.0), progress=False)
    out = tmp_path / "cli"
    assert cli_main(["train", "--data", str(image_folder), "--out", str(out), "--aug", "ada", "--aug-p", "2"]) == 2
    assert not out.exists()

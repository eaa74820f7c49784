"""GAN inversion: the projector, its losses and metrics, the encoder, pivotal tuning, the CLI."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import tiny_model
from linkgan.checkpoint import save_checkpoint
from linkgan.cli import main
from linkgan.config import RunConfig, TrainConfig
from linkgan.data.images import ImageLoadError, load_image
from linkgan.images import float_to_uint8, uint8_to_float
from linkgan.inversion import (
    Inversion,
    LatentEncoder,
    ReconstructionLoss,
    latent_locality,
    noise_regularization,
    pivotal_tuning,
    project,
    psnr,
    ssim,
    train_encoder,
)
from linkgan.networks.build import build_generator
from linkgan.pipeline import LinkGANPipeline

LINKS = [{"name": "top", "region": {"box": [0.0, 0.0, 1.0, 0.5]}, "axes": 8}]


@pytest.fixture(scope="module")
def toyfaces():
    """The trained 32 px toyfaces model that ships with the package (links: eyes, mouth)."""
    return LinkGANPipeline.load("builtin:toyfaces", device="cpu")


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory):
    """An untrained 16 px generator saved as a run checkpoint, with one link."""
    torch.manual_seed(0)
    cfg = RunConfig(model=tiny_model(16), train=TrainConfig(), links=LINKS)
    G = build_generator(cfg.model)
    path = tmp_path_factory.mktemp("run") / "ckpt-000000000.safetensors"
    save_checkpoint(path, {"G_ema": G}, cfg.to_dict(), state={"images_seen": 0}, with_rng=False)
    return path


def _own_sample(pipe, seed):
    """A sample of the model as a real image would arrive: quantized to 8 bits."""
    return uint8_to_float(float_to_uint8(pipe.generate([seed], output="tensor")))


def test_ssim_and_psnr_match_their_definitions():
    a = torch.rand(2, 3, 16, 16) * 2 - 1
    assert torch.allclose(ssim(a, a), torch.ones(2))
    assert float(ssim(a, -a).max()) < 0.2
    b = a + 0.02  # a constant error of 0.01 on [0, 1] pixels: PSNR = 10 log10(1 / 1e-4) = 40 dB
    assert torch.allclose(psnr(a, b), torch.full((2,), 40.0), atol=1e-3)


def test_noise_regularization_is_small_for_white_noise_and_large_for_structure():
    white = [torch.randn(1, 1, 32, 32, generator=torch.Generator().manual_seed(0))]
    ramp = torch.linspace(-1, 1, 32)
    smooth = [(ramp[None, :] * ramp[:, None] * 3)[None, None]]
    assert float(noise_regularization(white)) < 0.01 * float(noise_regularization(smooth))


def test_projection_recovers_an_image_the_model_generated(toyfaces):
    """Bound: 30 dB PSNR after 150 steps (measured: ~33 dB), far above the start at w_avg."""
    target = _own_sample(toyfaces, 12345)
    loss = ReconstructionLoss("ssim")  # the fallback keeps this test free of the Inception network
    start = project(toyfaces.G, target, steps=0, loss=loss)
    inv = project(toyfaces.G, target, space="w+", steps=150, loss=loss)
    assert inv.metrics["psnr"] > 30.0
    assert inv.metrics["psnr"] > start.metrics["psnr"] + 10
    assert inv.metrics["ssim"] > 0.95


def test_w_plus_reconstructs_at_least_as_well_as_w(toyfaces):
    """An image outside the model's range (a photo-like disc), where W+'s extra freedom matters."""
    yy, xx = np.mgrid[0:32, 0:32]
    img = np.full((32, 32, 3), (200, 150, 120), np.uint8)
    img[(xx - 16) ** 2 + (yy - 15) ** 2 < 100] = (90, 60, 40)
    target = load_image(img, 32)
    loss = ReconstructionLoss("ssim")
    w = project(toyfaces.G, target, space="w", steps=80, loss=loss, noise=False)
    wp = project(toyfaces.G, target, space="w+", steps=80, loss=loss, noise=False, wplus_weight=0.0)
    assert wp.metrics["psnr"] >= w.metrics["psnr"] - 0.1
    assert torch.allclose(w.ws, w.ws[:, :1].expand_as(w.ws))  # W: one w for every layer
    assert not torch.allclose(wp.ws, wp.ws[:, :1].expand_as(wp.ws))
    # The default cohesion penalty holds the layers' ws closer together than free W+ does.
    held = project(toyfaces.G, target, space="w+", steps=80, loss=loss, noise=False)

    def spread(inv):
        return float((inv.ws - inv.ws.mean(1, keepdim=True)).pow(2).sum(2).mean())

    assert spread(held) < 0.5 * spread(wp)


def test_projection_is_deterministic_for_a_seed(tiny_ckpt):
    pipe = LinkGANPipeline.load(tiny_ckpt, device="cpu")
    target = _own_sample(pipe, 3)
    a = project(pipe.G, target, steps=6, loss=ReconstructionLoss("ssim"), seed=1)
    b = project(pipe.G, target, steps=6, loss=ReconstructionLoss("ssim"), seed=1)
    c = project(pipe.G, target, steps=6, loss=ReconstructionLoss("ssim"), seed=2)
    assert torch.equal(a.ws, b.ws) and all(torch.equal(x, y) for x, y in zip(a.noise, b.noise))
    assert not torch.equal(a.ws, c.ws)


def test_optimized_noise_maps_stay_normalized_and_render_the_reconstruction(tiny_ckpt, tmp_path):
    pipe = LinkGANPipeline.load(tiny_ckpt, device="cpu")
    inv = project(pipe.G, _own_sample(pipe, 4), steps=5, loss=ReconstructionLoss("ssim"))
    assert len(inv.noise) == len(pipe.G.synthesis.noise_inputs())
    for n in inv.noise:
        assert abs(float(n.mean())) < 1e-4 and abs(float(n.std(unbiased=False)) - 1) < 1e-3
    loaded = Inversion.load(inv.save(tmp_path / "latent.safetensors"))
    assert torch.equal(loaded.ws, inv.ws) and loaded.metrics == inv.metrics
    # The pipeline renders a loaded latent with its own noise maps: the saved reconstruction.
    original, _ = pipe.edit(latent=loaded, link="top", n=1, output="tensor")
    assert torch.allclose(original, inv.image[0], atol=1e-5)


def test_latent_file_errors_are_clear(tiny_ckpt, tmp_path):
    with pytest.raises(ValueError, match="not a latent file"):
        Inversion.load(tiny_ckpt)
    with pytest.raises(FileNotFoundError, match="linkgan invert"):
        Inversion.load(tmp_path / "missing.safetensors")
    pipe = LinkGANPipeline.load(tiny_ckpt, device="cpu")
    wrong = Inversion(ws=torch.zeros(1, 3, 7))
    with pytest.raises(ValueError, match="inverted with another model"):
        pipe.edit(latent=wrong, link="top")


def test_load_image_handles_any_size_grey_and_rgba_and_refuses_non_images(tmp_path):
    grey = Image.fromarray(np.tile(np.arange(60, dtype=np.uint8), (40, 1)))  # 60 wide, 40 high
    t = load_image(grey, 16)
    assert t.shape == (1, 3, 16, 16) and float(t.min()) >= -1 and float(t.max()) <= 1
    assert torch.equal(t[:, 0], t[:, 1])  # grey stays grey
    rgba = np.zeros((20, 20, 4), np.uint8)  # fully transparent -> composited over white
    assert torch.allclose(load_image(rgba, 8), torch.ones(1, 3, 8, 8))
    squashed, cropped = load_image(grey, 16, align="none"), load_image(grey, 16, align="center")
    assert not torch.equal(squashed, cropped)  # 'none' keeps the whole width, 'center' crops it
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    with pytest.raises(ImageLoadError, match="notes.png"):
        load_image(bad, 16)


def test_encoder_output_shapes_and_training_lowers_its_latent_error(tiny_ckpt):
    pipe = LinkGANPipeline.load(tiny_ckpt, device="cpu")
    G = pipe.G
    for space in ("w", "w+"):
        enc = LatentEncoder(16, G.num_ws, G.w_dim, space=space, channels=8)
        ws = enc(torch.zeros(5, 3, 16, 16))
        assert ws.shape == (5, G.num_ws, G.w_dim)
        if space == "w":
            assert torch.equal(ws, ws[:, :1].expand_as(ws))
    losses = []
    enc = train_encoder(G, space="w", kimg=1.6, batch=16, channels=8, lr=3e-3, progress=False,
                        log=lambda step, d: losses.append(d["latent"]))
    assert np.mean(losses[-10:]) < 0.75 * np.mean(losses[:5])  # measured: 0.57 of the start after 100 steps
    assert enc(torch.zeros(1, 3, 16, 16)).shape == (1, G.num_ws, G.w_dim)


def test_pivotal_tuning_improves_the_reconstruction_and_locality_is_measured(toyfaces):
    target = _own_sample(toyfaces, 777)
    loss = ReconstructionLoss("ssim")
    inv = project(toyfaces.G, target, steps=20, loss=loss)
    before_weights = {k: v.clone() for k, v in toyfaces.G.state_dict().items()}
    tuned = pivotal_tuning(toyfaces.G, inv, steps=25, lr=1e-3, loss=loss)
    assert all(torch.equal(v, toyfaces.G.state_dict()[k]) for k, v in before_weights.items())  # G is untouched
    assert tuned.metrics["psnr"] > inv.metrics["psnr"]
    assert tuned.synthesis_state is not None
    before = latent_locality(toyfaces.G, toyfaces.links, inv.ws, n=4, noises=inv.noise)
    after = latent_locality(toyfaces.G, toyfaces.links, inv.ws, n=4, noises=inv.noise,
                            synthesis=tuned.synthesis(toyfaces.G))
    assert set(before) == set(after) == {"eyes", "mouth"}
    assert all(v["mse_in"] > 0 for v in after.values())


def test_invert_and_edit_cli_end_to_end(tiny_ckpt, tmp_path, capsys):
    pipe = LinkGANPipeline.load(tiny_ckpt, device="cpu")
    imgs = tmp_path / "photos"
    imgs.mkdir()
    pipe.generate([1])[0].resize((40, 30)).save(imgs / "a.png")  # any size: center-cropped
    Image.fromarray(np.full((24, 24), 128, np.uint8)).save(imgs / "grey.jpg")
    (imgs / "broken.png").write_bytes(b"\x89PNG garbage")
    out = tmp_path / "inv"
    assert main(["invert", "--ckpt", str(tiny_ckpt), "--images", str(imgs), "--out", str(out), "--steps", "4",
                 "--perceptual", "ssim", "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "broken.png" in err and "skipped" in err
    for name in ("a", "grey"):
        for f in ("latent.safetensors", "reconstruction.png", "side_by_side.png", "metrics.json"):
            assert (out / name / f).is_file()
        m = json.loads((out / name / "metrics.json").read_text())
        assert {"psnr", "ssim", "perceptual"} <= set(m)
    assert not list(out.rglob("*.tmp"))
    grid = tmp_path / "edit.png"
    assert main(["edit", "--ckpt", str(tiny_ckpt), "--latent", str(out / "a" / "latent.safetensors"),
                 "--link", "top", "--n", "3", "--out", str(grid)]) == 0
    assert Image.open(grid).size[0] > Image.open(grid).size[1]  # one row: original, 3 variants, heat map
    # A checkpoint given as a latent is refused with a message, not a stack trace.
    assert main(["edit", "--ckpt", str(tiny_ckpt), "--latent", str(tiny_ckpt), "--link", "top"]) == 2
    assert "not a latent file" in capsys.readouterr().err


def test_encoder_cli_then_invert_with_steps_zero(tiny_ckpt, tmp_path):
    enc_path = tmp_path / "enc.safetensors"
    assert main(["encoder", "train", "--ckpt", str(tiny_ckpt), "--out", str(enc_path), "--kimg", "0.064",
                 "--batch", "8", "--no-progress"]) == 0
    enc = LatentEncoder.load(enc_path)
    assert enc.config["space"] == "w+"
    pipe = LinkGANPipeline.load(tiny_ckpt, device="cpu")
    pipe.generate([2])[0].save(tmp_path / "x.png")
    out = tmp_path / "inv"
    assert main(["invert", "--ckpt", str(tiny_ckpt), "--images", str(tmp_path / "x.png"), "--out", str(out),
                 "--encoder", str(enc_path), "--steps", "0", "--perceptual", "ssim", "--no-progress"]) == 0
    inv = Inversion.load(out / "x" / "latent.safetensors")
    with torch.no_grad():
        guess = enc(load_image(tmp_path / "x.png", 16))
    assert torch.allclose(inv.ws, guess, atol=1e-6)  # steps 0: the encoder's guess itself
    with pytest.raises(ValueError, match="needs an encoder"):
        pipe.invert(tmp_path / "x.png", steps=0, encoder=None)

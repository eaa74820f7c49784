"""`linkgan import`: NVIDIA and rosinality weights become linkgan checkpoints that compute the same
networks, and no file can make the importer run code."""

from __future__ import annotations

import os
import pickle
import sys

import pytest
import torch

from foreign_models import (
    FILTER,
    Record,
    fake_nvidia_modules,
    generator_record,
    nvidia_pickle,
    rosinality_checkpoint,
    rosinality_state,
    tiny_networks,
)
from linkgan.checkpoint import load_checkpoint, load_module
from linkgan.cli import main
from linkgan.config import RunConfig
from linkgan.importer import ModelImportError, SafeUnpickler, import_model, read_pickle
from linkgan.networks import z_from_seeds
from linkgan.networks.build import build_discriminator, build_generator


def load_imported(path, name="G_ema"):
    ckpt = load_checkpoint(path)
    config = RunConfig.from_dict(ckpt.config)
    net = build_generator(config.model) if name.startswith("G") else build_discriminator(config.model)
    load_module(net, ckpt, name)
    return net.eval(), config, ckpt


def assert_same_generator(G, G2):
    z = z_from_seeds(range(3), G.z_dim)
    with torch.no_grad():
        for psi in (1.0, 0.7):
            assert torch.allclose(G.mapping(z, truncation_psi=psi), G2.mapping(z, truncation_psi=psi), atol=1e-6)
        assert torch.allclose(G(z, noise_mode="const"), G2(z, noise_mode="const"), atol=1e-5)


def test_nvidia_pickle_imports_to_the_same_networks(tmp_path):
    G, D = tiny_networks(conv_clamp=256.0)
    G_train, _ = tiny_networks(seed=1, conv_clamp=256.0)
    nvidia_pickle(tmp_path / "snapshot.pkl", G, D, G_train=G_train, conv_clamp=256)
    out = import_model(tmp_path / "snapshot.pkl", tmp_path / "model.safetensors")
    G2, config, ckpt = load_imported(out)
    assert config.model.numerics == "official" and config.model.conv_clamp == 256.0
    assert (config.model.resolution, config.model.w_dim, config.model.mapping_layers) == (16, 16, 2)
    assert (config.model.channel_base, config.model.channel_max) == (128, 16)
    assert_same_generator(G, G2)
    G_train2, _, _ = load_imported(out, "G")
    assert_same_generator(G_train, G_train2)
    D2, _, _ = load_imported(out, "D")
    img = torch.randn(4, 3, 16, 16)
    with torch.no_grad():
        assert torch.allclose(D(img), D2(img), atol=1e-6)
    info = ckpt.state["imported_from"]
    assert info["format"] == "stylegan2-ada-pytorch" and info["has"] == ["D", "G", "G_ema"]
    assert info["G_init_kwargs"]["mapping_kwargs"] == {"num_layers": 2}
    assert info["training_set_kwargs"]["path"] == "/data/faces.zip"


def test_reading_needs_none_of_the_pickled_modules(tmp_path):
    G, _ = tiny_networks()
    nvidia_pickle(tmp_path / "g.pkl", G)
    assert "torch_utils" not in sys.modules and "dnnlib" not in sys.modules
    data = read_pickle(tmp_path / "g.pkl")
    assert data["G_ema"].class_name == "Generator"
    assert "never executed" in data["G_ema"].module_src  # kept as text
    assert "torch_utils" not in sys.modules and "dnnlib" not in sys.modules


class RunsShell:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_malicious_pickle_is_refused_and_never_run(tmp_path):
    marker = tmp_path / "pwned"
    G, _ = tiny_networks()
    with fake_nvidia_modules() as (_, EasyDict):
        data = {"G_ema": generator_record(G, EasyDict), "payload": RunsShell(marker)}
        (tmp_path / "evil.pkl").write_bytes(pickle.dumps(data))
    with pytest.raises(ModelImportError, match=r"system.*will not load"):
        import_model(tmp_path / "evil.pkl", tmp_path / "out.safetensors")
    assert not marker.exists()
    assert not (tmp_path / "out.safetensors").exists()
    # Through the CLI: a one-line error, exit 2, nothing written, nothing run.
    assert main(["import", str(tmp_path / "evil.pkl"), "--out", str(tmp_path / "out.safetensors")]) == 2
    assert not marker.exists() and not list(tmp_path.glob("*.safetensors"))


@pytest.mark.parametrize("module,name", [("training.networks", "Generator"), ("builtins", "eval"),
                                         ("torch", "load"), ("subprocess", "Popen")])
def test_unknown_globals_are_refused_by_name(tmp_path, module, name):
    (tmp_path / "x.pkl").write_bytes(b"\x80\x02c" + f"{module}\n{name}\n".encode() + b")\x81.")
    with pytest.raises(ModelImportError, match=f"{module}.{name}"):
        read_pickle(tmp_path / "x.pkl")


def test_tf_era_pickles_are_refused_with_advice(tmp_path):
    (tmp_path / "tf.pkl").write_bytes(b"\x80\x02cdnnlib.tflib.network\nNetwork\n)\x81.")
    with pytest.raises(ModelImportError, match="TensorFlow-era.*legacy.py"):
        import_model(tmp_path / "tf.pkl", tmp_path / "o.safetensors")


@pytest.mark.parametrize("content,message", [(b"", "empty"), (b"\x80\x04\x95\x10\x00\x00", "ends early"),
                                             (b"hello world", "neither a pickle")])
def test_empty_truncated_and_foreign_files(tmp_path, content, message):
    (tmp_path / "bad.pkl").write_bytes(content)
    with pytest.raises(ModelImportError, match=message):
        import_model(tmp_path / "bad.pkl", tmp_path / "o.safetensors")


def test_a_truncated_real_snapshot_is_a_clear_error(tmp_path):
    G, D = tiny_networks()
    nvidia_pickle(tmp_path / "s.pkl", G, D)
    blob = (tmp_path / "s.pkl").read_bytes()
    (tmp_path / "cut.pkl").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(ModelImportError, match="cut.pkl"):
        import_model(tmp_path / "cut.pkl", tmp_path / "o.safetensors")


def test_unsupported_models_are_refused_by_name(tmp_path):
    G, D = tiny_networks()
    nvidia_pickle(tmp_path / "cond.pkl", G, c_dim=10)
    with pytest.raises(ModelImportError, match="conditional"):
        import_model(tmp_path / "cond.pkl", tmp_path / "o.safetensors")
    nvidia_pickle(tmp_path / "noema.pkl", G, with_ema=False)
    with pytest.raises(ModelImportError, match="no G_ema"):
        import_model(tmp_path / "noema.pkl", tmp_path / "o.safetensors")
    nvidia_pickle(tmp_path / "filter.pkl", G, filter_=torch.ones(4, 4) / 16)
    with pytest.raises(ModelImportError, match="resampling filter"):
        import_model(tmp_path / "filter.pkl", tmp_path / "o.safetensors")
    # StyleGAN3: an alias-free synthesis network (SynthesisInput and L* layers), not SynthesisBlocks.
    with fake_nvidia_modules() as (_, EasyDict):
        g = generator_record(G, EasyDict)
        synthesis = g.state["_modules"]["synthesis"]
        synthesis.state["_modules"] = {"input": Record("SynthesisInput"), "L0_36_512": Record("SynthesisLayer")}
        (tmp_path / "sg3.pkl").write_bytes(pickle.dumps({"G_ema": g}))
    with pytest.raises(ModelImportError, match="StyleGAN3"):
        import_model(tmp_path / "sg3.pkl", tmp_path / "o.safetensors")
    assert not list(tmp_path.glob("*.safetensors"))


def test_a_resolution_linkgan_cannot_represent_is_refused(tmp_path):
    G, _ = tiny_networks(res=8)
    nvidia_pickle(tmp_path / "r8.pkl", G)
    with pytest.raises(ModelImportError, match="resolution 8"):
        import_model(tmp_path / "r8.pkl", tmp_path / "o.safetensors")


def test_an_existing_output_needs_force(tmp_path, capsys):
    G, D = tiny_networks()
    nvidia_pickle(tmp_path / "s.pkl", G, D)
    out = tmp_path / "m.safetensors"
    assert main(["import", str(tmp_path / "s.pkl"), "--out", str(out)]) == 0
    before = out.read_bytes()
    assert main(["import", str(tmp_path / "s.pkl"), "--out", str(out)]) == 2
    assert "--force" in capsys.readouterr().err
    assert out.read_bytes() == before
    assert main(["import", str(tmp_path / "s.pkl"), "--out", str(out), "--force"]) == 0


def test_rosinality_checkpoint_imports_to_the_same_networks(tmp_path):
    G, D = tiny_networks()
    rosinality_checkpoint(tmp_path / "100000.pt", G, D)
    out = import_model(tmp_path / "100000.pt", tmp_path / "ros.safetensors")
    G2, config, ckpt = load_imported(out)
    assert config.model.conv_clamp is None and config.model.numerics == "rosinality"
    assert_same_generator(G, G2)
    D2, _, _ = load_imported(out, "D")
    img = torch.randn(4, 3, 16, 16)
    with torch.no_grad():
        assert torch.allclose(D(img), D2(img), atol=1e-6)
    assert ckpt.state["imported_from"]["args"]["size"] == 16


def test_rosinality_without_latent_avg_estimates_it(tmp_path):
    G, _ = tiny_networks()
    rosinality_checkpoint(tmp_path / "g.pt", G, with_latent_avg=False)
    G2, _, ckpt = load_imported(import_model(tmp_path / "g.pt", tmp_path / "g.safetensors"))
    with torch.no_grad():
        expect = G.mapping(torch.randn(4000, G.z_dim))[:, 0].mean(0)
    assert torch.allclose(G2.mapping.w_avg, expect, atol=0.1)
    assert "estimated" in ckpt.state["imported_from"]["w_avg"]


def test_rosinality_files_with_unexpected_content_are_refused(tmp_path):
    G, _ = tiny_networks()
    rosinality_checkpoint(tmp_path / "extra.pt", G, extra={"surprise": torch.zeros(1)})
    with pytest.raises(ModelImportError, match="surprise"):
        import_model(tmp_path / "extra.pt", tmp_path / "o.safetensors")
    torch.save({"g_ema": {**rosinality_state(G), "what.is.this": torch.zeros(1)}}, tmp_path / "keys.pt")
    with pytest.raises(ModelImportError, match="what.is.this"):
        import_model(tmp_path / "keys.pt", tmp_path / "o.safetensors")
    torch.save({"model": {}}, tmp_path / "other.pt")
    with pytest.raises(ModelImportError, match="not a rosinality"):
        import_model(tmp_path / "other.pt", tmp_path / "o.safetensors")


class Sneaky:
    def __reduce__(self):
        return os.system, ("echo nope",)


def test_rosinality_reader_uses_weights_only(tmp_path):
    torch.save({"g_ema": {}, "args": Sneaky()}, tmp_path / "evil.pt")
    with pytest.raises(ModelImportError, match="will not load"):
        import_model(tmp_path / "evil.pt", tmp_path / "o.safetensors")


def test_safe_unpickler_builds_only_data(tmp_path):
    import io

    blob = pickle.dumps({"t": torch.arange(4.0), "p": torch.nn.Parameter(torch.ones(2))})
    data = SafeUnpickler(io.BytesIO(blob), "mem").load()
    assert torch.equal(data["t"], torch.arange(4.0)) and type(data["p"]) is torch.Tensor
    assert FILTER.sum().item() == pytest.approx(1.0)


def test_an_imported_model_works_like_any_checkpoint(tmp_path):
    """generate, invert, LinkGANPipeline.load (what serve uses) and train --init with a box link take the
    imported file, and the fine-tuned run edits and measures like any other."""
    from linkgan.data import make_toyfaces
    from linkgan.pipeline import LinkGANPipeline

    G, D = tiny_networks()
    nvidia_pickle(tmp_path / "s.pkl", G, D)
    model = tmp_path / "m.safetensors"
    assert main(["import", str(tmp_path / "s.pkl"), "--out", str(model)]) == 0
    assert main(["generate", "--ckpt", str(model), "--seeds", "0-3", "--out", str(tmp_path / "g.png")]) == 0
    pipe = LinkGANPipeline.load(model, device="cpu")
    assert pipe.generate([0, 1], output="tensor").shape == (2, 3, 16, 16)
    data = make_toyfaces(tmp_path / "faces.zip", n=64, res=16, seed=0, workers=1, progress=False)
    run = tmp_path / "run"
    assert main(["train", "--init", str(model), "--data", str(data), "--out", str(run), "--kimg", "0.064",
                 "--batch", "8", "--workers", "0", "--snapshot-kimg", "1", "--grid-size", "4",
                 "--link", "eyes=box:0.2,0.3,0.8,0.5@4", "--no-progress"]) == 0
    assert main(["edit", "--ckpt", str(run), "--link", "eyes", "--seeds", "0-1", "--n", "2",
                 "--out", str(tmp_path / "e.png")]) == 0
    assert main(["metrics", "--ckpt", str(run), "--metrics", "mse1k", "--out", str(tmp_path / "m.json")]) == 0
    from PIL import Image

    Image.new("RGB", (20, 20), (200, 120, 90)).save(tmp_path / "photo.png")
    assert main(["invert", "--ckpt", str(model), "--images", str(tmp_path / "photo.png"), "--steps", "2",
                 "--out", str(tmp_path / "inv")]) == 0
    assert load_checkpoint(run).config["model"]["numerics"] == "official"


def test_a_non_finite_average_w_is_estimated_again(tmp_path, capsys):
    # stylegan2-ada-pytorch's training loop updates w_avg once from torch.empty() inputs; on the
    # CPU that memory can hold NaN, which then stays in every snapshot.
    G, D = tiny_networks()
    with torch.no_grad():
        G.mapping.w_avg.fill_(float("nan"))
    nvidia_pickle(tmp_path / "snapshot.pkl", G, D)
    assert main(["import", str(tmp_path / "snapshot.pkl"), "--out", str(tmp_path / "m.safetensors")]) == 0
    assert "average w was not finite in G_ema, G" in capsys.readouterr().err
    G2, _, ckpt = load_imported(tmp_path / "m.safetensors")
    assert ckpt.state["imported_from"]["w_avg_estimated"] == ["G_ema", "G"]
    assert torch.isfinite(G2.mapping.w_avg).all()
    with torch.no_grad():
        z = torch.randn(4096, G.z_dim, generator=torch.Generator().manual_seed(5))
        expected = G2.mapping(z)[:, 0].mean(0)
    assert torch.allclose(G2.mapping.w_avg, expected, atol=0.05 * expected.abs().max().item())

"""Checkpoints: atomic safetensors files that restore exactly and fail loudly when wrong."""

import pytest
import torch
from safetensors.torch import save_file

from conftest import tiny_model
from linkgan.checkpoint import (
    CheckpointError,
    list_checkpoints,
    load_checkpoint,
    load_module,
    load_optimizer,
    prune_checkpoints,
    resolve_checkpoint,
    save_checkpoint,
)
from linkgan.networks import Generator
from linkgan.pipeline import LinkGANPipeline
from linkgan.pretrained import PRETRAINED


def _gen(res=16):
    m = tiny_model(res)
    return Generator(res, z_dim=m.z_dim, w_dim=m.w_dim, mapping_layers=m.mapping_layers,
                     channel_base=m.channel_base, channel_max=m.channel_max)


def test_round_trip_restores_weights_optimizer_and_metadata(tmp_path):
    G = _gen()
    opt = torch.optim.Adam(G.parameters(), lr=1e-3, betas=(0.0, 0.99))
    G(torch.randn(2, 32)).sum().backward()
    opt.step()
    path = save_checkpoint(tmp_path / "ckpt-000000008.safetensors", {"G": G}, {"hello": 1},
                           optimizers={"G": opt}, state={"step": 7})
    assert not list(tmp_path.glob(".*tmp*")), "no temporary file may be left behind"
    ckpt = load_checkpoint(tmp_path)  # a directory means its newest checkpoint
    assert ckpt.path == path and ckpt.config == {"hello": 1} and ckpt.state["step"] == 7
    G2 = _gen()
    load_module(G2, ckpt, "G")
    for a, b in zip(G.state_dict().values(), G2.state_dict().values()):
        assert torch.equal(a, b)
    opt2 = torch.optim.Adam(G2.parameters(), lr=5.0, betas=(0.5, 0.5))
    load_optimizer(opt2, ckpt, "G")
    assert opt2.param_groups[0]["lr"] == 1e-3
    s1, s2 = opt.state_dict()["state"], opt2.state_dict()["state"]
    assert all(torch.equal(s1[i]["exp_avg_sq"], s2[i]["exp_avg_sq"]) for i in s1)


def test_loading_never_unpickles(tmp_path):
    # A torch.save pickle with a .safetensors name is rejected, not executed.
    path = tmp_path / "evil.safetensors"
    torch.save({"a": torch.zeros(1)}, path)
    with pytest.raises(CheckpointError, match="evil.safetensors"):
        load_checkpoint(path)


def test_truncated_file_is_named_in_the_error(tmp_path):
    G = _gen()
    path = save_checkpoint(tmp_path / "ckpt-000000001.safetensors", {"G": G}, {})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="ckpt-000000001.safetensors.*truncated"):
        load_checkpoint(path)


def test_foreign_safetensors_file_is_rejected(tmp_path):
    path = tmp_path / "other.safetensors"
    save_file({"x": torch.zeros(2)}, str(path))
    with pytest.raises(CheckpointError, match="not a linkgan checkpoint"):
        load_checkpoint(path)


def test_wrong_architecture_names_the_mismatching_tensors(tmp_path):
    save_checkpoint(tmp_path / "ckpt-000000001.safetensors", {"G": _gen(16)}, {})
    ckpt = load_checkpoint(tmp_path)
    with pytest.raises(CheckpointError, match="does not match.*missing"):
        load_module(_gen(32), ckpt, "G")


def test_missing_paths_and_empty_run_dirs_give_clear_errors(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        resolve_checkpoint(tmp_path / "nope.safetensors")
    with pytest.raises(CheckpointError, match="without checkpoints"):
        resolve_checkpoint(tmp_path)


def test_only_the_newest_k_checkpoints_are_kept(tmp_path):
    G = _gen()
    for n in (8, 16, 24, 32):
        save_checkpoint(tmp_path / f"ckpt-{n:09d}.safetensors", {"G": G}, {}, with_rng=False)
    prune_checkpoints(tmp_path, keep=2)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["ckpt-000000024.safetensors",
                                                            "ckpt-000000032.safetensors"]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    # Every project file (checkpoint, segmenter, latent, encoder) is written by write_tensors.
    import safetensors.torch

    from linkgan.tensorfile import read_tensors, write_tensors

    path = write_tensors(tmp_path / "f.safetensors", {"a": torch.ones(3)}, {"format": "x"})

    def broken(tensors, filename, metadata=None):
        with open(filename, "wb") as f:
            f.write(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(safetensors.torch, "save_file", broken)
    with pytest.raises(OSError, match="disk full"):
        write_tensors(path, {"a": torch.zeros(3)}, {"format": "x"})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.safetensors"]
    tensors, meta = read_tensors(path, "x")
    assert torch.equal(tensors["a"], torch.ones(3)) and meta == {"format": "x"}


@pytest.mark.parametrize("name", sorted(PRETRAINED))
def test_every_shipped_model_loads_by_name_and_draws_finite_images(name):
    ckpt = load_checkpoint(f"builtin:{name}")
    assert ckpt.has("G_ema")
    pipe = LinkGANPipeline.load(f"builtin:{name}", device="cpu")
    images = pipe.generate([0, 1], output="tensor")
    assert images.shape == (2, 3, pipe.resolution, pipe.resolution) and torch.isfinite(images).all()
    assert images.std() > 0.05  # a picture, not a constant
    if name.endswith("-base"):  # fine-tuning starts from G, G_ema and D
        assert ckpt.has("G") and ckpt.has("D")

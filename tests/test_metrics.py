"""The metrics registry: one decorated function makes a metric usable everywhere, with checks."""

import pytest
import torch

from linkgan import metrics
from linkgan.errors import InputError
from linkgan.partition import LatentPartition


class ConstG(torch.nn.Module):
    resolution = 16

    def __init__(self, kind: str = "2d"):
        super().__init__()
        self.kind = kind
        self.w = torch.nn.Parameter(torch.zeros(1))


@pytest.fixture
def registry(monkeypatch):
    monkeypatch.setattr(metrics, "METRICS", dict(metrics.METRICS))
    return metrics.METRICS


def test_a_registered_metric_is_parsed_checked_and_computed_in_groups(registry):
    calls = []

    @metrics.register_metric("ones", r"ones(\d+)k", "ones<N>k (a test metric)", kinds=("2d", "3d"))
    def ones(ctx, names):
        calls.append(list(names))
        return {n: float(metrics.metric_samples(n)) for n in names}

    assert "ones<N>k (a test metric)" in metrics.available_metrics()
    assert metrics.parse_metric_names("ones1k, ones2k") == ["ones1k", "ones2k"]
    out = metrics.compute_metrics(ConstG(), LatentPartition([], 8), ["ones2k", "ones1k"])
    assert out == {"ones2k": 2000.0, "ones1k": 1000.0} and list(out) == ["ones2k", "ones1k"]
    assert calls == [["ones2k", "ones1k"]]  # one call per group, with every name of the group
    with pytest.raises(ValueError, match="registered twice"):
        metrics.register_metric("ones", r"ones(\d+)k", "again")(ones)


def test_names_are_checked_against_what_each_metric_needs():
    none = LatentPartition([], 8)
    with pytest.raises(InputError, match=r"unknown metric 'ones1k'; available: mse<N>k.*fid<N>k.*pr<N>k"):
        metrics.parse_metric_names("ones1k")
    with pytest.raises(InputError, match="unknown metric 'fid0k'"):
        metrics.parse_metric_names("fid0k")
    with pytest.raises(InputError, match="mse1k: masked MSE needs links, and this model has none"):
        metrics.compute_metrics(ConstG(), none, ["mse1k"])
    with pytest.raises(InputError, match="fid2k compares generated images with real ones; give the dataset"):
        metrics.compute_metrics(ConstG(), none, ["fid2k"])
    with pytest.raises(InputError, match="pr1k: pr is not available for 3D models yet; metrics for them: mse<N>k"):
        metrics.compute_metrics(ConstG("3d"), none, ["pr1k"], data="x.zip")
    fid, kid, pr = (metrics.metric_of(n) for n in ("fid5k_full", "kid1k", "pr2k"))
    assert fid.group == kid.group == pr.group == "inception" and fid.check is not None


def test_training_refuses_bad_metrics_before_it_starts(image_folder, tmp_path, capsys):
    from linkgan.cli import main

    args = ["train", "--data", str(image_folder), "--out", str(tmp_path / "r"), "--res", "16", "--cbase", "256",
            "--cmax", "32", "--z-dim", "32", "--w-dim", "32", "--batch", "4", "--kimg", "0.004", "--workers", "0"]
    assert main([*args, "--metrics", "mse1k"]) == 2
    assert "--metrics mse1k: mse1k: masked MSE needs links" in capsys.readouterr().err
    assert main([*args, "--metrics", "psnr5k"]) == 2
    assert "unknown metric 'psnr5k'" in capsys.readouterr().err
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").glob("ckpt-*"))

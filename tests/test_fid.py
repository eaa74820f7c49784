"""Behaviour of linkgan.fid: the Fréchet and kernel distances, the Inception input protocol,
the dataset-statistics cache and the metric names. Few images pass through the real network
(it costs ~6 GFLOP per image); the cache and metric tests use a cheap stand-in extractor."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open

from conftest import tiny_model
from linkgan import fid
from linkgan.data import ImageDataset
from linkgan.images import float_to_uint8, save_png
from linkgan.networks import Generator, z_from_seeds


def network_installed() -> bool:
    try:
        fid.find_inception_file()
    except fid.MetricsExtraError:
        return False
    return True


needs_network = pytest.mark.skipif(not network_installed(), reason='needs pip install "linkgan[metrics]"')


class ProjectionFeatures:
    """A cheap stand-in for the Inception network: a fixed random projection of the pixels to
    16 features, counting the images it sees."""

    identity = "test-projection-v1"

    def __init__(self, pixels: int, dim: int = 16):
        self.matrix = torch.randn(pixels, dim, generator=torch.Generator().manual_seed(0))
        self.images_seen = 0

    def __call__(self, images: torch.Tensor) -> np.ndarray:
        self.images_seen += len(images)
        return (images.flatten(1).to(torch.float32) / 255 @ self.matrix).numpy()


def tiny_generator(res: int = 16) -> Generator:
    m = tiny_model(res)
    torch.manual_seed(0)
    return Generator(m.resolution, m.z_dim, m.w_dim, m.mapping_layers, channel_base=m.channel_base,
                     channel_max=m.channel_max).eval()


def write_images(folder, count: int, res: int = 8, seed: int = 0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        Image.fromarray(rng.integers(0, 256, (res, res, 3), dtype=np.uint8)).save(folder / f"{i:03d}.png")
    return folder


# ---------------------------------------------------------------------------------- distances
def random_covariance(rng, d):
    a = rng.standard_normal((d, d))
    return a @ a.T / d + 0.1 * np.eye(d)


def test_frechet_distance_is_zero_for_identical_statistics():
    rng = np.random.default_rng(0)
    mu, sigma = rng.standard_normal(32), random_covariance(rng, 32)
    assert fid.frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0, abs=1e-8)


def test_frechet_distance_matches_the_closed_form_for_diagonal_gaussians():
    rng = np.random.default_rng(1)
    mu1, mu2 = rng.standard_normal(16), rng.standard_normal(16)
    var1, var2 = rng.uniform(0.1, 3, 16), rng.uniform(0.1, 3, 16)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(var1) - np.sqrt(var2)) ** 2)
    assert fid.frechet_distance(mu1, np.diag(var1), mu2, np.diag(var2)) == pytest.approx(expected, rel=1e-9)


def test_frechet_distance_is_symmetric():
    rng = np.random.default_rng(2)
    a = rng.standard_normal(24), random_covariance(rng, 24)
    b = rng.standard_normal(24), random_covariance(rng, 24)
    assert fid.frechet_distance(*a, *b) == pytest.approx(fid.frechet_distance(*b, *a), rel=1e-8)


def test_frechet_distance_stays_finite_and_real_for_fewer_samples_than_dimensions():
    rng = np.random.default_rng(3)
    x, y = rng.random((10, 64)), rng.random((10, 64)) + 0.2  # rank-9 covariances in 64 dimensions
    value = fid.frechet_distance(*fid.mean_and_covariance(x), *fid.mean_and_covariance(y))
    assert np.isfinite(value) and value > 0


def pytorch_fid_frechet_distance():
    """pytorch_fid's ``calculate_frechet_distance``, taken from its installed source without importing
    the package (its module imports torchvision, which is broken beside the CPU torch here). CI installs
    it with ``pip install --no-deps pytorch-fid==0.3.0``."""
    import ast
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("pytorch_fid")
    if spec is None:
        pytest.skip("pytorch-fid is not installed (pip install --no-deps pytorch-fid==0.3.0)")
    source = (Path(spec.submodule_search_locations[0]) / "fid_score.py").read_text()
    func = next(n for n in ast.parse(source).body
                if isinstance(n, ast.FunctionDef) and n.name == "calculate_frechet_distance")
    from scipy import linalg

    namespace = {"np": np, "linalg": linalg}
    exec(compile(ast.Module(body=[func], type_ignores=[]), "fid_score.py", "exec"), namespace)
    return namespace["calculate_frechet_distance"]


def test_frechet_distance_agrees_with_pytorch_fid_on_the_same_features():
    reference = pytorch_fid_frechet_distance()
    rng = np.random.default_rng(7)
    a = rng.standard_normal((400, 64))
    b = rng.standard_normal((300, 64)) @ rng.standard_normal((64, 64)) * 0.3 + 0.2
    stats = [(x.mean(0), np.cov(x, rowvar=False)) for x in (a, b)]
    ours = fid.frechet_distance(*stats[0], *stats[1])
    theirs = reference(*stats[0], *stats[1])
    assert ours == pytest.approx(float(theirs), rel=1e-6, abs=1e-8)
    # Fewer samples than dimensions (singular covariances), where both add eps to the diagonal.
    c, d = rng.standard_normal((20, 64)), rng.standard_normal((20, 64)) + 0.1
    stats = [(x.mean(0), np.cov(x, rowvar=False)) for x in (c, d)]
    assert fid.frechet_distance(*stats[0], *stats[1]) == pytest.approx(float(reference(*stats[0], *stats[1])),
                                                                        rel=1e-3)


def test_fid_of_a_feature_set_against_itself_is_about_zero():
    feats = np.random.default_rng(3).standard_normal((500, 32))
    mu, sigma = feats.mean(0), np.cov(feats, rowvar=False)
    assert abs(fid.frechet_distance(mu, sigma, mu, sigma)) < 1e-6


def test_kid_agrees_with_a_direct_computation_on_a_small_case():
    """One subset holding all samples: KID is then exactly the unbiased MMD^2 written out by hand."""
    rng = np.random.default_rng(11)
    x, y = rng.standard_normal((6, 4)), rng.standard_normal((6, 4)) + 0.5

    def k(a, b):
        return (a @ b / 4 + 1) ** 3

    m = 6
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    kid, std = fid.kernel_inception_distance(y, x, num_subsets=1, max_subset_size=6)
    assert kid == pytest.approx(xx + yy - 2 * xy, rel=1e-5)
    assert std == 0


def test_kid_is_unbiased_near_zero_for_one_distribution_and_positive_for_shifted_ones():
    rng = np.random.default_rng(4)
    def sample(n, shift=0.0):
        return np.abs(rng.standard_normal((n, 32))) + shift
    same = [fid.kernel_inception_distance(sample(300), sample(300), num_subsets=10, max_subset_size=100, seed=s)[0]
            for s in range(20)]
    shifted, _ = fid.kernel_inception_distance(sample(300), sample(300, shift=0.5), num_subsets=10,
                                               max_subset_size=100)
    # Unbiased: estimates scatter around 0 on both sides, far below a real difference.
    assert min(same) < 0 < max(same)
    assert abs(np.mean(same)) < 0.02 * shifted
    assert shifted > 0


# ---------------------------------------------------------------------------------- network
@pytest.fixture(scope="module")
def inception():
    if not network_installed():
        pytest.skip('needs pip install "linkgan[metrics]"')
    return fid.load_inception(device="cpu")


def test_input_protocol_resizes_to_299_and_maps_0_255_to_minus1_and_127_over_128():
    x = torch.tensor([0, 128, 255], dtype=torch.uint8).reshape(1, 1, 1, 3).expand(1, 1, 3, 3)
    out = fid.inception_input(x)
    assert out.shape == (1, 3, 299, 299)
    assert out.min().item() == pytest.approx(-1.0) and out.max().item() == pytest.approx(127 / 128)
    assert torch.equal(fid.inception_input(torch.full((2, 3, 299, 299), 64.0)), torch.full((2, 3, 299, 299), -0.5))


def test_resize_samples_input_coordinate_i_times_in_over_out_like_tensorflow_1():
    h, w, size = 5, 7, 12
    x = torch.randn(2, 3, h, w)
    out = fid.tf1_bilinear_resize(x, size)

    def reference(img, i, j):  # TF1 resize_bilinear, align_corners=False, written out per pixel
        sy, sx = i * h / size, j * w / size
        y0, x0 = int(sy), int(sx)
        y1, x1 = min(y0 + 1, h - 1), min(x0 + 1, w - 1)
        fy, fx = sy - y0, sx - x0
        top = img[..., y0, x0] * (1 - fx) + img[..., y0, x1] * fx
        bottom = img[..., y1, x0] * (1 - fx) + img[..., y1, x1] * fx
        return top * (1 - fy) + bottom * fy

    expected = torch.stack([torch.stack([reference(x, i, j) for j in range(size)], -1) for i in range(size)], -2)
    assert torch.allclose(out, expected, atol=1e-5)
    assert torch.equal(out[..., 0, 0], x[..., 0, 0]), "pixel (0, 0) reads input (0, 0): no half-pixel shift"


@needs_network
def test_network_loads_offline_once_and_gives_2048_features_grey_as_rgb(inception):
    assert fid.load_inception(device="cpu") is inception
    images = torch.randint(0, 256, (3, 3, 32, 32), dtype=torch.uint8)
    feats = inception(images)
    assert feats.shape == (3, 2048) and feats.dtype == np.float32 and np.isfinite(feats).all()
    assert not np.allclose(feats[0], feats[1])
    grey = images[:2, :1]
    np.testing.assert_array_equal(inception(grey), inception(grey.expand(-1, 3, -1, -1)))


@needs_network
def test_generated_features_equal_the_features_of_their_saved_pngs(inception, tmp_path):
    G = tiny_generator()
    seeds = range(5, 9)
    with torch.no_grad():
        images = G(z_from_seeds(seeds, G.z_dim), noise_mode="const")
    for s, img in zip(seeds, float_to_uint8(images).permute(0, 2, 3, 1).numpy()):
        save_png(img, tmp_path / f"seed{s:04d}.png")  # what LinkGANPipeline.save_images writes
    generated = fid.features_from_generator(G, 4, seed=5, noise_mode="const", inception=inception)
    saved = fid.features_from_dataset(ImageDataset(tmp_path, resolution=16), inception=inception)
    np.testing.assert_allclose(generated, saved, rtol=0, atol=1e-5)


def test_missing_network_names_the_extra_to_install(monkeypatch, tmp_path):
    monkeypatch.delenv(fid.INCEPTION_ENV, raising=False)
    monkeypatch.setattr(fid.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(fid.MetricsExtraError, match=r'pip install "linkgan\[metrics\]"'):
        fid.load_inception(device="cpu")
    monkeypatch.setenv(fid.INCEPTION_ENV, str(tmp_path / "missing.pt"))
    with pytest.raises(fid.MetricsExtraError, match="missing.pt"):
        fid.find_inception_file()


# ---------------------------------------------------------------------------------- cache
def test_dataset_statistics_are_cached_as_safetensors_and_reused(tmp_path):
    ds = ImageDataset(write_images(tmp_path / "imgs", 12), resolution=8)
    extractor = ProjectionFeatures(3 * 8 * 8)
    cache = tmp_path / "cache"
    first = fid.dataset_statistics(ds, with_features=True, cache_dir=cache, inception=extractor)
    assert extractor.images_seen == 12
    feats = fid.features_from_dataset(ds, inception=extractor)
    np.testing.assert_allclose(first.mu, feats.mean(0), rtol=1e-6)
    np.testing.assert_allclose(first.sigma, np.cov(feats, rowvar=False), rtol=1e-6, atol=1e-9)

    seen = extractor.images_seen
    again = fid.dataset_statistics(ImageDataset(tmp_path / "imgs", resolution=8), with_features=True,
                                   cache_dir=cache, inception=extractor)
    assert extractor.images_seen == seen  # no image went through the network
    np.testing.assert_array_equal(again.sigma, first.sigma)
    np.testing.assert_array_equal(again.features, first.features)
    files = sorted(cache.iterdir())
    assert files and all(f.suffix == ".safetensors" for f in files)
    for f in files:  # readable without pickle
        with safe_open(str(f), framework="np") as st:
            assert st.keys()


def test_changed_dataset_or_subset_misses_the_cache(tmp_path):
    folder = write_images(tmp_path / "imgs", 12)
    extractor = ProjectionFeatures(3 * 8 * 8)
    cache = tmp_path / "cache"
    before = fid.dataset_statistics(ImageDataset(folder, resolution=8), cache_dir=cache, inception=extractor)

    seen = extractor.images_seen
    subset = fid.dataset_statistics(ImageDataset(folder, resolution=8), 5, cache_dir=cache, inception=extractor)
    assert subset.count == 5 and extractor.images_seen == seen + 5

    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(folder / "003.png")  # one image edited
    seen = extractor.images_seen
    after = fid.dataset_statistics(ImageDataset(folder, resolution=8), cache_dir=cache, inception=extractor)
    assert extractor.images_seen == seen + 12
    assert not np.allclose(after.mu, before.mu)


def test_statistics_from_another_network_are_not_reused(tmp_path):
    ds = ImageDataset(write_images(tmp_path / "imgs", 6), resolution=8)
    cache = tmp_path / "cache"
    fid.dataset_statistics(ds, cache_dir=cache, inception=ProjectionFeatures(3 * 8 * 8))
    other = ProjectionFeatures(3 * 8 * 8)
    other.identity = "another-network"
    fid.dataset_statistics(ds, cache_dir=cache, inception=other)
    assert other.images_seen == 6


def test_a_damaged_cache_file_is_recomputed(tmp_path):
    ds = ImageDataset(write_images(tmp_path / "imgs", 6), resolution=8)
    extractor = ProjectionFeatures(3 * 8 * 8)
    cache = tmp_path / "cache"
    fid.dataset_statistics(ds, cache_dir=cache, inception=extractor)
    (stats_file,) = cache.iterdir()
    stats_file.write_bytes(b"truncated")
    seen = extractor.images_seen
    fid.dataset_statistics(ds, cache_dir=cache, inception=extractor)
    assert extractor.images_seen == seen + 6


# ------------------------------------------------------------------------- precision and recall
def test_precision_and_recall_are_one_for_identical_sets_and_zero_for_disjoint_ones():
    x = np.random.default_rng(0).normal(size=(300, 16)).astype(np.float32)
    assert fid.precision_recall(x, x.copy()) == {"precision": 1.0, "recall": 1.0}
    assert fid.precision_recall(x, x + 100.0) == {"precision": 0.0, "recall": 0.0}


def test_a_collapsed_generator_keeps_precision_and_loses_recall():
    # the fakes cover one small part of the real distribution: realistic (precision ~1) but not
    # varied (recall ~ the share of the data they cover)
    rng = np.random.default_rng(1)
    real = rng.uniform(0, 1, size=(2000, 2)).astype(np.float32)
    fake = rng.uniform(0, 0.5, size=(2000, 2)).astype(np.float32)  # a quarter of the square
    pr = fid.precision_recall(real, fake, chunk=256)
    assert pr["precision"] > 0.97
    assert 0.2 < pr["recall"] < 0.32
    swapped = fid.precision_recall(fake, real)  # and the reverse: varied but a quarter realistic
    assert 0.2 < swapped["precision"] < 0.32 and swapped["recall"] > 0.97


def test_precision_recall_matches_a_direct_computation_with_k_neighbours():
    rng = np.random.default_rng(2)
    real, fake = rng.normal(size=(40, 3)), rng.normal(0.5, 1.0, size=(30, 3))

    def manifold_hits(probes, points, k):
        d_own = np.linalg.norm(points[:, None] - points[None], axis=2)
        radius = np.sort(d_own, axis=1)[:, k]  # column 0 is the point itself
        d = np.linalg.norm(probes[:, None] - points[None], axis=2)
        return float((d <= radius[None]).any(axis=1).mean())

    for k in (1, 3, 5):
        got = fid.precision_recall(real, fake, k=k, chunk=7)
        assert got["precision"] == pytest.approx(manifold_hits(fake, real, k))
        assert got["recall"] == pytest.approx(manifold_hits(real, fake, k))
    with pytest.raises(ValueError, match="needs more than 3 samples"):
        fid.precision_recall(real[:3], fake)


# ---------------------------------------------------------------------------------- metrics
def test_metric_names_parse_like_stylegan2_ada():
    assert fid.parse_inception_metric("fid5k") == fid.InceptionMetric("fid5k", "fid", 5000, False)
    assert fid.parse_inception_metric("kid50k_full") == fid.InceptionMetric("kid50k_full", "kid", 50000, True)
    assert fid.parse_inception_metric("pr50k_full") == fid.InceptionMetric("pr50k_full", "pr", 50000, True)
    for other in ("mse1k", "fid", "fid0k", "fid5k_ful", "is50k"):
        assert fid.parse_inception_metric(other) is None


def test_fid_of_a_generator_against_its_own_saved_images_is_zero(tmp_path):
    G = tiny_generator()
    with torch.no_grad():
        images = G(z_from_seeds(range(40), G.z_dim), noise_mode="const")
    for i, img in enumerate(float_to_uint8(images).permute(0, 2, 3, 1).numpy()):
        save_png(img, tmp_path / "own" / f"{i:03d}.png")
    extractor = ProjectionFeatures(3 * 16 * 16)
    real = fid.dataset_statistics(ImageDataset(tmp_path / "own", resolution=16), cache_dir=tmp_path / "cache",
                                  inception=extractor)
    fake = fid.features_from_generator(G, 40, noise_mode="const", inception=extractor)
    assert fid.frechet_distance(real.mu, real.sigma, *fid.mean_and_covariance(fake)) == pytest.approx(0, abs=1e-6)


def test_compute_fid_kid_returns_a_float_per_name_and_full_equals_subset_when_data_is_small(image_folder, tmp_path):
    G = tiny_generator()
    ds = ImageDataset(image_folder, resolution=16)  # 40 images, fewer than 1k: both real sides use all
    out = fid.compute_fid_kid(G, ds, ["fid1k", "fid1k_full", "kid1k", "pr1k"], cache_dir=tmp_path,
                              inception=ProjectionFeatures(3 * 16 * 16))
    pr = out.pop("pr1k")
    assert set(out) == {"fid1k", "fid1k_full", "kid1k"} and all(isinstance(v, float) for v in out.values())
    assert set(pr) == {"precision", "recall"} and all(0 <= v <= 1 for v in pr.values())
    assert out["fid1k"] == out["fid1k_full"] > 0
    with pytest.raises(ValueError, match="unknown metric"):
        fid.compute_fid_kid(G, ds, "fid5", inception=ProjectionFeatures(3 * 16 * 16))


def test_fid_and_pr_of_one_call_read_the_real_images_once(image_folder, tmp_path):
    class Counting(ProjectionFeatures):
        def __call__(self, images):
            self.seen += images.shape[0]
            return super().__call__(images)

    G, ds = tiny_generator(), ImageDataset(image_folder, resolution=16)
    extractor = Counting(3 * 16 * 16)
    extractor.seen = 0
    fid.compute_fid_kid(G, ds, ["fid1k", "pr1k"], cache_dir=tmp_path, inception=extractor)
    assert extractor.seen == 1000 + len(ds), "the generated images once, the real ones once"


def test_measuring_leaves_the_callers_random_stream_untouched():
    G = tiny_generator()
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    fid.features_from_generator(G, 4, inception=ProjectionFeatures(3 * 16 * 16))
    assert torch.equal(torch.rand(3), expected)



# ------------------------------------------------------------------ the metrics command and training
def test_metrics_command_reports_fid_kid_and_masked_mse_in_one_json(tmp_path, monkeypatch, image_folder):
    import json

    from conftest import tiny_run
    from linkgan.cli import main
    from linkgan.training import train

    stand_in = ProjectionFeatures(3 * 16 * 16)
    monkeypatch.setattr(fid, "load_inception", lambda path=None, device=None: stand_in)
    monkeypatch.setenv(fid.CACHE_ENV, str(tmp_path / "cache"))
    run = tmp_path / "run"
    cfg = tiny_run(image_folder, run, kimg=0.016, metrics="mse1k")
    cfg.links = [{"name": "box", "region": {"box": [0.0, 0.0, 0.5, 0.5]}, "axes": 8}]
    train(cfg, progress=False)
    logged = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    assert any("Metrics/mse1k/box/locality" in r for r in logged), "training logs its --metrics"

    out = tmp_path / "m.json"
    assert main(["metrics", "--ckpt", str(run), "--metrics", "fid1k,kid1k,mse1k", "--out", str(out),
                 "--no-progress"]) == 0, "the data defaults to the run's training data"
    result = json.loads(out.read_text())
    assert isinstance(result["fid1k"], float) and result["fid1k"] > 0
    assert isinstance(result["kid1k"], float) and set(result["mse1k"]) == {"box"}
    assert stand_in.images_seen >= 1000 + 40, "1000 generated images and the 40 real ones"


def test_metrics_command_names_the_extra_when_the_network_is_missing(tmp_path, monkeypatch, image_folder, capsys):
    from conftest import tiny_run
    from linkgan.cli import main
    from linkgan.training import train

    run = tmp_path / "run"
    train(tiny_run(image_folder, run, kimg=0.008), progress=False)
    monkeypatch.delenv(fid.INCEPTION_ENV, raising=False)
    monkeypatch.setattr(fid.importlib.util, "find_spec", lambda name: None)
    assert main(["metrics", "--ckpt", str(run), "--metrics", "fid1k", "--no-progress"]) == 2
    assert 'pip install "linkgan[metrics]"' in capsys.readouterr().err
    with pytest.raises(fid.MetricsExtraError):
        train(tiny_run(image_folder, tmp_path / "run2", kimg=0.008, metrics="fid1k"), progress=False)
    assert not (tmp_path / "run2").exists(), "a run that cannot measure its metrics stops before writing"

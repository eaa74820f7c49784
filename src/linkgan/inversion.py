"""GAN inversion: find the latent of a real image, so that it can be edited like a seed's.

The projector (``project``)
    Adam on the latent, starting from w_avg (or from an encoder's guess), in W (one w for
    every layer) or W+ (one w per layer). As in StyleGAN2's projector, the latent is
    jittered by Gaussian noise that fades out over the first three quarters of the steps,
    the learning rate ramps up over the first 5% and down (cosine) over the last 25%, and
    the per-layer noise maps are optimized too, with a penalty on their autocorrelation at
    every scale (so that they stay Gaussian noise instead of absorbing the image), and are
    re-normalized to zero mean and unit variance after every step. ``noise=False`` keeps
    the model's constant noise maps. In W+ a penalty keeps the layers' ws close to their
    mean (``wplus_weight``): links are trained on W latents, and a free W+ latent's edits
    leak outside their region. For one seed the run is deterministic.

The reconstruction loss (``ReconstructionLoss``)
    pixel MSE plus a perceptual term. LPIPS would download its backbone at run time, so the
    perceptual term is an LPIPS-style distance on intermediate features of the FID Inception
    network (``InceptionPerceptual``, from the ``metrics`` extra): the images are resized to
    128 px, features of three depths are unit-normalized over channels, and the squared
    differences are averaged over positions and summed over depths. Without the extra it
    falls back to a multi-scale pixel MSE + (1 - SSIM) loss, and says so (``loss.note``).

Encoder (``LatentEncoder``, ``train_encoder``)
    A small convolutional network that predicts W or W+ from an image in one pass. It is
    trained on the generator's own samples (latent MSE, plus pixel MSE of the regenerated
    image) and, where given, on real images (reconstruction loss only). It initializes the
    projector, or replaces it (``steps=0``).

Pivotal tuning (``pivotal_tuning``)
    As in PTI: after projecting, a copy of the synthesis network is fine-tuned briefly so that
    the pivot latent reproduces the image exactly. Whether the copy's links stay local is
    measured by ``latent_locality`` (not assumed).

Metrics: PSNR (dB, on [0, 1] pixels), SSIM (11 px Gaussian window, sigma 1.5, smaller for
small images) and the Inception perceptual distance above (``None`` without the extra).
"""

from __future__ import annotations

import copy
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from .errors import InputError
from .networks import Generator
from .tensorfile import read_tensors, write_tensors

SPACES = ("w", "w+")
PERCEPTUAL_KINDS = ("auto", "inception", "ssim")
LATENT_FORMAT = "linkgan-latent"
ENCODER_FORMAT = "linkgan-encoder"
FORMAT_VERSION = "1"


# ------------------------------------------------------------------------ image similarity
def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB of images (N,C,H,W) in [-1, 1], measured on [0, 1] pixels."""
    mse = ((a - b) / 2).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(1.0 / mse.clamp_min(1e-10))


def _gaussian_window(size: int, sigma: float, channels: int, device) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float32, device=device) - (size - 1) / 2
    g = torch.exp(-x ** 2 / (2 * sigma ** 2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).expand(channels, 1, size, size).contiguous()


def ssim(a: torch.Tensor, b: torch.Tensor, window: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Structural similarity (N,) of images (N,C,H,W) in [-1, 1], computed on [0, 1] pixels with a
    Gaussian window (no padding), per channel, averaged. The window shrinks to fit small images."""
    a, b = (a + 1) / 2, (b + 1) / 2
    size = min(window, a.shape[-1], a.shape[-2])
    size -= 1 - size % 2  # odd
    sigma = sigma * size / window
    c = a.shape[1]
    win = _gaussian_window(size, sigma, c, a.device)

    def blur(x):
        return F.conv2d(x, win, groups=c)

    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a ** 2
    var_b = blur(b * b) - mu_b ** 2
    cov = blur(a * b) - mu_a * mu_b
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))
    return s.flatten(1).mean(1)


class InceptionPerceptual(nn.Module):
    """LPIPS-style distance on the FID Inception network's intermediate features (no learned
    weights): d(a, b) = sum over depths of mean over positions of |f_a - f_b|^2, with f
    unit-normalized over channels. Images (N,3,H,W) in [-1, 1] -> (N,)."""

    LAYERS = ("conv_4", "mixed_2", "mixed_7")
    SIZE = 128

    def __init__(self, inception_path=None, device=None):
        super().__init__()
        from .fid import load_inception

        net = load_inception(inception_path, device).net  # the TorchScript module: .net.layers
        children = list(net.net.layers.named_children())
        last = max(i for i, (name, _) in enumerate(children) if name in self.LAYERS)
        self.names = [name for name, _ in children[:last + 1]]
        self.layers = nn.ModuleList([m for _, m in children[:last + 1]])
        self.requires_grad_(False)

    def features(self, images: torch.Tensor) -> list[torch.Tensor]:
        x = F.interpolate(images.to(torch.float32), size=(self.SIZE, self.SIZE), mode="bilinear",
                          align_corners=False)
        x = ((x + 1) * 127.5 - 128) / 128  # the network's input scaling of [0, 255] pixels
        out = []
        for name, layer in zip(self.names, self.layers):
            x = layer(x)
            if name in self.LAYERS:
                out.append(x / (x.pow(2).sum(1, keepdim=True).sqrt() + 1e-8))
        return out

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        fb = self.features(b) if b.shape[0] == a.shape[0] else [f.expand(a.shape[0], -1, -1, -1)
                                                                   for f in self.features(b)]
        return sum((x - y).pow(2).sum(1).mean((1, 2)) for x, y in zip(self.features(a), fb))


def load_perceptual(kind: str = "auto", device=None, inception_path=None) -> tuple[InceptionPerceptual | None, str]:
    """(network or None, note). kind 'auto' uses Inception when the metrics extra is installed."""
    from .fid import MetricsExtraError

    if kind not in PERCEPTUAL_KINDS:
        raise InputError(f"perceptual loss must be one of {PERCEPTUAL_KINDS}, not {kind!r}")
    if kind == "ssim":
        return None, "perceptual term: multi-scale pixel + SSIM (chosen)"
    try:
        return InceptionPerceptual(inception_path, device), "perceptual term: Inception features"
    except MetricsExtraError as e:
        if kind == "inception":
            raise
        return None, (f"perceptual term: multi-scale pixel + SSIM, because the Inception network is not installed "
                      f"({e})")


class ReconstructionLoss:
    """loss(x, target) -> scalar: pixel MSE + an Inception perceptual distance, or (fallback) a
    multi-scale pixel MSE + (1 - SSIM). ``kind`` is 'inception' or 'ssim' after construction;
    ``note`` says which one is used and why."""

    def __init__(self, perceptual: str = "auto", pixel_weight: float = 1.0, device=None, inception_path=None):
        self.net, self.note = load_perceptual(perceptual, device, inception_path)
        self.kind = "inception" if self.net is not None else "ssim"
        self.pixel_weight = pixel_weight
        self._target_key = None

    def per_image(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.net is not None:
            return self.net(x, target) + self.pixel_weight * (x - target).pow(2).flatten(1).mean(1)
        total = 0
        for k in range(3):  # 1, 1/2 and 1/4 of the resolution
            total = total + (x - target).pow(2).flatten(1).mean(1) + (1 - ssim(x, target))
            if min(x.shape[-2:]) < 16:
                break
            x, target = F.avg_pool2d(x, 2), F.avg_pool2d(target, 2)
        return total

    def __call__(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.per_image(x, target).mean()


def reconstruction_metrics(image: torch.Tensor, target: torch.Tensor,
                           perceptual: InceptionPerceptual | None = None) -> dict:
    """{psnr, ssim, perceptual} of one reconstruction (1,3,H,W) against its target, in [-1, 1]."""
    with torch.no_grad():
        image, target = image.to(torch.float32), target.to(image.device, torch.float32)
        # Measure the image as it is saved (8-bit), so the numbers match the PNG.
        image = ((image + 1) * 127.5).round().clamp(0, 255) / 127.5 - 1
        out = {"psnr": float(psnr(image, target).mean()), "ssim": float(ssim(image, target).mean())}
        out["perceptual"] = float(perceptual(image, target).mean()) if perceptual is not None else None
    return out


# ------------------------------------------------------------------------------- files
def _read_tensors(path: str | Path, fmt: str, what: str, made_by: str) -> tuple[dict, dict]:
    """(tensors, metadata) of a file whose metadata names format ``fmt``; ValueError otherwise."""
    return read_tensors(path, fmt, what, hint=f"write one with `{made_by}`")


# -------------------------------------------------------------------------------- results
@dataclass
class Inversion:
    """An inverted image: the latent ``ws`` (1, num_ws, w_dim), the optimized noise maps (one
    (1,1,r,r) per noise layer, or None for the model's constant maps), the reconstruction and
    target (1,3,R,R) in [-1, 1], metrics, and, after pivotal tuning, the tuned synthesis
    weights. ``LinkGANPipeline.edit(latent=inv)`` edits it like a seed."""

    ws: torch.Tensor
    noise: list[torch.Tensor] | None = None
    image: torch.Tensor | None = None
    target: torch.Tensor | None = None
    metrics: dict = field(default_factory=dict)
    info: dict = field(default_factory=dict)
    synthesis_state: dict[str, torch.Tensor] | None = None

    def synthesis(self, G: Generator) -> nn.Module:
        """The synthesis network to render this latent with: G's, or the pivotally tuned copy."""
        if self.synthesis_state is None:
            return G.synthesis
        key = id(G)
        cached = getattr(self, "_tuned", None)
        if cached is None or cached[0] != key:
            tuned = copy.deepcopy(G.synthesis)
            tuned.load_state_dict({k: v.to(next(G.parameters()).device) for k, v in self.synthesis_state.items()})
            self._tuned = (key, tuned.eval().requires_grad_(False))
        return self._tuned[1]

    def save(self, path: str | Path) -> Path:
        """One safetensors file (written atomically) with every tensor and JSON metadata."""
        tensors = {"ws": self.ws}
        for name, t in (("image", self.image), ("target", self.target)):
            if t is not None:
                tensors[name] = t
        for i, n in enumerate(self.noise or []):
            tensors[f"noise.{i}"] = n
        for k, v in (self.synthesis_state or {}).items():
            tensors[f"synthesis.{k}"] = v
        meta = {"format": LATENT_FORMAT, "version": FORMAT_VERSION, "metrics": json.dumps(self.metrics),
                "info": json.dumps(self.info), "num_noise": str(len(self.noise or []))}
        return write_tensors(path, {k: v.to(torch.float32) for k, v in tensors.items()}, meta)

    @classmethod
    def load(cls, path: str | Path, device="cpu") -> "Inversion":
        """Reads a file written by ``save``; a clear error for anything else (a checkpoint, say)."""
        try:
            tensors, meta = _read_tensors(path, LATENT_FORMAT, "latent", "linkgan invert")
        except ValueError as e:
            raise InputError(f"{e}; a checkpoint goes to --ckpt, a latent to --latent") from None
        noise = [tensors[f"noise.{i}"].to(device) for i in range(int(meta.get("num_noise", 0)))] or None
        state = {k[len("synthesis."):]: v for k, v in tensors.items() if k.startswith("synthesis.")} or None
        return cls(ws=tensors["ws"].to(device), noise=noise, image=tensors.get("image"), target=tensors.get("target"),
                   metrics=json.loads(meta.get("metrics", "{}")), info=json.loads(meta.get("info", "{}")),
                   synthesis_state=state)

    def check_generator(self, G: Generator) -> None:
        """Raises a clear error when this latent cannot belong to G."""
        want = (1, G.num_ws, G.w_dim)
        if tuple(self.ws.shape) != want:
            raise InputError(f"the latent has shape {tuple(self.ws.shape)} but this model needs {want}: it was "
                             f"inverted with another model ({self.info.get('checkpoint', 'unknown')})")
        if self.noise is not None and len(self.noise) != len(G.synthesis.noise_inputs()):
            raise InputError("the latent's noise maps do not match this model's layers")


# ------------------------------------------------------------------------------ projector
def noise_regularization(noises: list[torch.Tensor]) -> torch.Tensor:
    """Sum over maps and scales (down to 8 px) of the squared lag-1 autocorrelations along x and y;
    zero for white noise, large for maps that picked up image structure."""
    total = 0.0
    for n in noises:
        while True:
            total = total + (n * torch.roll(n, 1, dims=3)).mean() ** 2 + (n * torch.roll(n, 1, dims=2)).mean() ** 2
            if n.shape[-1] <= 8:
                break
            n = F.avg_pool2d(n, 2)
    return total


def w_statistics(G: Generator, n: int = 4096, seed: int = 0) -> tuple[torch.Tensor, float]:
    """(w_avg (w_dim,), w_std): the mean of n mapped latents and their RMS distance from it."""
    device = next(G.parameters()).device
    z = torch.randn(n, G.z_dim, generator=torch.Generator().manual_seed(seed)).to(device)
    with torch.no_grad():
        w = torch.cat([G.mapping(c)[:, 0] for c in z.split(1024)])
    w_avg = w.mean(0)
    return w_avg, float((w - w_avg).pow(2).sum(1).mean().sqrt())


def _lr_at(step: int, steps: int, lr: float, rampdown: float = 0.25, rampup: float = 0.05) -> float:
    """Linear warm-up over the first 5% of the steps, cosine decay over the last 25%."""
    down = min(1.0, (1.0 - step / steps) / rampdown)
    return lr * (0.5 - 0.5 * math.cos(down * math.pi)) * min(1.0, (step + 1) / max(1.0, rampup * steps))


def project(G: Generator, target: torch.Tensor, *, space: str = "w+", steps: int = 200, init_ws=None,
            noise: bool = True, lr: float = 0.1, noise_weight: float = 1e5, loss: ReconstructionLoss | None = None,
            wplus_weight: float = 10.0, prior_weight: float = 0.0, seed: int = 0, progress=None) -> Inversion:
    """Finds ws with G.synthesis(ws) ~ target.

    target: (1, 3, R, R) in [-1, 1] at G's resolution. space: 'w' or 'w+'. init_ws:
    (1, num_ws, w_dim) start (an encoder's guess) instead of w_avg; in W its layer mean is used.
    steps=0 returns the start. progress: callable(step, total, loss) or None.
    wplus_weight: in W+, a penalty on the spread of the layers' ws around their mean (in units of
    w_std^2). The links were trained on W latents: a free W+ latent (0) reconstructs ~2 dB better,
    but its edits leak several times more outside the region; at 10 (the default) edits of
    inverted images are as local as edits of the model's own samples (docs/results/inversion.md).
    prior_weight: a penalty on the distance of the mean w from w_avg (0 by default).
    """
    if space not in SPACES:
        raise InputError(f"space must be one of {SPACES}, not {space!r}")
    if steps < 0:
        raise InputError(f"steps must be >= 0, got {steps}")
    device = next(G.parameters()).device
    target = target.to(device, torch.float32)
    if target.shape != (1, G.img_channels, G.resolution, G.resolution):
        raise InputError(f"target must have shape (1, {G.img_channels}, {G.resolution}, {G.resolution}), got "
                         f"{tuple(target.shape)}")
    loss = loss or ReconstructionLoss(device=device)
    gen = torch.Generator().manual_seed(seed)
    w_avg, w_std = w_statistics(G, seed=seed)
    start = init_ws.to(device, torch.float32) if init_ws is not None else w_avg.expand(1, G.num_ws, -1)
    start = start.mean(1, keepdim=True) if space == "w" else start
    w = start.detach().clone().requires_grad_(steps > 0)
    layers = G.synthesis.noise_inputs()
    noises = [layer.const_noise.detach().clone()[None, None].to(device).requires_grad_(noise and steps > 0)
              for layer in layers] if noise else None
    params = [w] + (noises or [])
    opt = torch.optim.Adam(params, betas=(0.9, 0.999), lr=lr)
    was_training = G.training
    G.eval()
    value = float("nan")
    for step in range(steps):
        t = step / steps
        for group in opt.param_groups:
            group["lr"] = _lr_at(step, steps, lr)
        jitter = w_std * 0.05 * max(0.0, 1.0 - t / 0.75) ** 2
        w_in = w + jitter * torch.randn(w.shape, generator=gen).to(device)
        img = G.synthesis(w_in.expand(1, G.num_ws, -1), noise_mode="const", noises=noises)
        total = loss(img, target)
        if noises:
            total = total + noise_weight * noise_regularization(noises)
        if wplus_weight and space == "w+":  # keep the layers' ws together (closer to W, where links were trained)
            total = total + wplus_weight * (w - w.mean(1, keepdim=True)).pow(2).sum(2).mean() / w_std ** 2
        if prior_weight:  # keep w near the mapping's output distribution
            total = total + prior_weight * (w.mean(1) - w_avg).pow(2).sum() / w_std ** 2
        opt.zero_grad(set_to_none=True)
        total.backward()
        opt.step()
        if noises:
            with torch.no_grad():
                for n in noises:
                    n -= n.mean()
                    n /= n.pow(2).mean().sqrt()
        value = float(total.detach())
        if progress is not None:
            progress(step + 1, steps, value)
    G.train(was_training)
    ws = w.detach().expand(1, G.num_ws, -1).clone()
    noises = [n.detach() for n in noises] if noises else None
    with torch.no_grad():
        image = G.synthesis(ws, noise_mode="const", noises=noises)
    info = {"space": space, "steps": steps, "noise": bool(noise), "seed": seed, "loss": loss.kind,
            "wplus_weight": wplus_weight, "prior_weight": prior_weight,
            "loss_note": loss.note, "final_loss": value}
    return Inversion(ws=ws, noise=noises, image=image, target=target, info=info,
                     metrics=reconstruction_metrics(image, target, loss.net))


def pivotal_tuning(G: Generator, inv: Inversion, *, steps: int = 100, lr: float = 3e-4,
                   loss: ReconstructionLoss | None = None, progress=None) -> Inversion:
    """PTI: fine-tunes a copy of G's synthesis network so that inv.ws renders inv.target. Returns a
    new Inversion carrying the tuned weights (G is not changed)."""
    if inv.target is None:
        raise InputError("pivotal tuning needs the inversion's target image")
    device = next(G.parameters()).device
    loss = loss or ReconstructionLoss(device=device)
    tuned = copy.deepcopy(G.synthesis).train().requires_grad_(True)
    # The constant noise buffers are not trained; the learned noise strengths are weights like any other.
    opt = torch.optim.Adam(tuned.parameters(), lr=lr, betas=(0.9, 0.999))
    target = inv.target.to(device)
    ws = inv.ws.to(device)
    for step in range(steps):
        img = tuned(ws, noise_mode="const", noises=inv.noise)
        total = loss(img, target)
        opt.zero_grad(set_to_none=True)
        total.backward()
        opt.step()
        if progress is not None:
            progress(step + 1, steps, float(total.detach()))
    tuned.eval().requires_grad_(False)
    with torch.no_grad():
        image = tuned(ws, noise_mode="const", noises=inv.noise)
    info = dict(inv.info, pti_steps=steps, pti_lr=lr)
    metrics = dict(reconstruction_metrics(image, target, loss.net), before_pti=inv.metrics)
    state = {k: v.detach().cpu() for k, v in tuned.state_dict().items()}
    return Inversion(ws=inv.ws, noise=inv.noise, image=image, target=inv.target, metrics=metrics, info=info,
                     synthesis_state=state)


def latent_locality(G: Generator, partition, ws: torch.Tensor, *, n: int = 16, seed: int = 0,
                    synthesis: nn.Module | None = None, noises=None) -> dict[str, dict[str, float]]:
    """Masked MSE of n resample edits of each link around one latent ws (1, L, D):
    {link: {mse_in, mse_out, locality}}, pixels in [0, 1], means normalized by area as in
    ``linkgan metrics``. ``synthesis``: another synthesis network (a PTI-tuned copy) to render with."""
    from .editing import edit_latents
    from .regularizer import masked_mse

    synthesis = synthesis or G.synthesis
    res = G.resolution
    out = {}
    with torch.no_grad():
        x = (synthesis(ws, noise_mode="const", noises=noises) + 1) / 2
        for link in partition:
            variants = edit_latents(G, partition, ws, link.name, n, seed=seed)[0]
            moved = (synthesis(variants, noise_mode="const", noises=noises) + 1) / 2
            base = x.expand_as(moved)
            if link.region.is_fixed:
                m = partition.region_mask(link.name, res, device=ws.device).to(torch.float32)
            else:
                m = link.region.edit_masks(base * 2 - 1, moved * 2 - 1).float()
            mse_in = float(masked_mse(moved, base, m).mean())
            mse_out = float(masked_mse(moved, base, 1 - m).mean())
            out[link.name] = {"mse_in": mse_in, "mse_out": mse_out, "locality": mse_out / max(mse_in, 1e-12)}
    return out



def tuning_locality(G: Generator, partition, tuned: Inversion, n: int = 16, seed: int = 0) -> dict:
    """{'original': ..., 'tuned': ...}: ``latent_locality`` around a pivotally tuned inversion's latent,
    rendered by G and by the tuned copy, so that the question "do the links stay local after
    PTI?" is answered by a measurement."""
    ws = tuned.ws.to(next(G.parameters()).device)
    return {"original": latent_locality(G, partition, ws, n=n, seed=seed, noises=tuned.noise),
            "tuned": latent_locality(G, partition, ws, n=n, seed=seed, noises=tuned.noise,
                                     synthesis=tuned.synthesis(G))}

# -------------------------------------------------------------------------------- encoder
class LatentEncoder(nn.Module):
    """images (N, C, R, R) in [-1, 1] -> ws (N, num_ws, w_dim): w_avg plus a predicted offset
    (one offset for every layer in W, one per layer in W+). Convolutions halve the resolution
    down to 4x4, then a linear layer reads the latent out."""

    def __init__(self, resolution: int, num_ws: int, w_dim: int, space: str = "w+", channels: int = 64,
                 max_channels: int = 256, img_channels: int = 3):
        super().__init__()
        if space not in SPACES:
            raise InputError(f"space must be one of {SPACES}, not {space!r}")
        self.config = {"resolution": resolution, "num_ws": num_ws, "w_dim": w_dim, "space": space,
                       "channels": channels, "max_channels": max_channels, "img_channels": img_channels}
        self.num_ws, self.w_dim, self.space = num_ws, w_dim, space
        layers, ch, res = [nn.Conv2d(img_channels, channels, 3, padding=1), nn.LeakyReLU(0.2)], channels, resolution
        while res > 4:
            nxt = min(ch * 2, max_channels)
            layers += [nn.Conv2d(ch, ch, 3, padding=1), nn.LeakyReLU(0.2),
                       nn.Conv2d(ch, nxt, 3, stride=2, padding=1), nn.LeakyReLU(0.2)]
            ch, res = nxt, res // 2
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(ch * 16, (num_ws if space == "w+" else 1) * w_dim)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)
        self.register_buffer("w_avg", torch.zeros(w_dim))
        self.register_buffer("w_std", torch.ones([]))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        delta = self.head(self.features(images).flatten(1)).reshape(images.shape[0], -1, self.w_dim)
        return (self.w_avg + self.w_std / math.sqrt(self.w_dim) * delta).expand(-1, self.num_ws, -1)

    def check_generator(self, G: Generator) -> None:
        c = self.config
        if (c["resolution"], c["num_ws"], c["w_dim"]) != (G.resolution, G.num_ws, G.w_dim):
            raise InputError(f"the encoder was trained for a {c['resolution']} px model with {c['num_ws']} x "
                             f"{c['w_dim']} latents, but this model is {G.resolution} px with {G.num_ws} x "
                             f"{G.w_dim}; train one for it with `linkgan encoder train`")

    def save(self, path: str | Path, info: dict | None = None) -> Path:
        meta = {"format": ENCODER_FORMAT, "version": FORMAT_VERSION, "config": json.dumps(self.config),
                "info": json.dumps(info or {})}
        return write_tensors(path, self.state_dict(), meta)

    @classmethod
    def load(cls, path: str | Path, device="cpu") -> "LatentEncoder":
        tensors, meta = _read_tensors(path, ENCODER_FORMAT, "encoder", "linkgan encoder train")
        enc = cls(**json.loads(meta["config"]))
        enc.load_state_dict(tensors)
        enc.info = json.loads(meta.get("info", "{}"))
        enc.source = str(path)
        return enc.to(device).eval()


def train_encoder(G: Generator, *, space: str = "w+", kimg: float = 20.0, batch: int = 32, lr: float = 1e-3,
                  image_weight: float = 1.0, real=None, seed: int = 0, channels: int = 64, progress: bool = True,
                  log=None) -> LatentEncoder:
    """Trains a LatentEncoder for G on G's own samples (latent MSE in units of w_std^2, plus
    image_weight x pixel MSE of the regenerated image) and, when ``real`` (a dataset of uint8
    (C,R,R) images, e.g. linkgan.data.ImageDataset) is given, on real images too (every other
    batch, pixel MSE of the reconstruction only). In W+, half of the synthetic batches use style
    mixing so that the encoder sees per-layer variation. log: callable(step, dict) or None."""
    from tqdm.auto import tqdm

    from .images import uint8_to_float

    device = next(G.parameters()).device
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    enc = LatentEncoder(G.resolution, G.num_ws, G.w_dim, space, channels, img_channels=G.img_channels).to(device)
    w_avg, w_std = w_statistics(G, seed=seed)
    enc.w_avg.copy_(w_avg)
    enc.w_std.fill_(w_std)
    G.eval().requires_grad_(False)
    opt = torch.optim.Adam(enc.parameters(), lr=lr, betas=(0.9, 0.99))
    steps = max(1, int(round(kimg * 1000 / batch)))
    real_order = torch.randperm(len(real), generator=gen) if real is not None else None
    r = 0
    with tqdm(total=steps, desc="encoder", unit="step", disable=not progress) as bar:
        for step in range(steps):
            use_real = real is not None and step % 2 == 1
            if use_real:
                idx = [int(real_order[(r + k) % len(real)]) for k in range(batch)]
                r += batch
                items = [real[i] for i in idx]  # an image, or (image, mask/camera...) tuples
                imgs = torch.stack([torch.as_tensor(item[0] if isinstance(item, tuple) else item) for item in items])
                imgs = uint8_to_float(imgs).to(device)
                pred = enc(imgs)
                rec = G.synthesis(pred, noise_mode="const")
                latent_loss = torch.zeros((), device=device)
            else:
                z = torch.randn(batch, G.z_dim, generator=gen).to(device)
                with torch.no_grad():
                    ws = G.mapping(z)
                    if space == "w+" and step % 4 == 0:
                        ws = G.style_mix(ws, 1.0, generator=gen)
                    imgs = G.synthesis(ws, noise_mode="const")
                pred = enc(imgs)
                target_ws = ws if space == "w+" else ws.mean(1, keepdim=True).expand_as(ws)
                latent_loss = (pred - target_ws).pow(2).sum(2).mean() / w_std ** 2
                rec = G.synthesis(pred, noise_mode="const")
            pixel = (rec - imgs).pow(2).mean()
            total = latent_loss + image_weight * pixel
            opt.zero_grad(set_to_none=True)
            total.backward()
            opt.step()
            bar.update(1)
            bar.set_postfix(latent=f"{float(latent_loss.detach()):.3f}", pixel=f"{float(pixel.detach()):.4f}")
            if log is not None:
                log(step, {"latent": float(latent_loss.detach()), "pixel": float(pixel.detach()), "real": use_real})
    return enc.eval()

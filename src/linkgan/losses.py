"""StyleGAN2 training objective, organised as named phases.

A phase is one optimizer step on one network with one loss: ``Gmain`` (non-saturating
logistic loss), ``Greg`` (path-length regularization), ``Dmain`` (logistic loss on real
and fake) and ``Dreg`` (R1), and ``Glink`` (the LinkGAN regularizer, see linkgan.regularizer).
Regularization phases are *lazy*: they run every
``interval`` steps and their loss is multiplied by the interval, so that on average they
weigh as much as if they ran every step.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .networks import Discriminator, Generator
from .regularizer import LinkSettings


@dataclass
class Phase:
    """One optimizer step: ``name`` selects the loss terms, ``module`` the trained network."""

    name: str
    module: nn.Module
    opt: torch.optim.Optimizer
    interval: int = 1
    start_step: int = 0  # the phase is off before this step

    def due(self, step: int) -> bool:
        return step >= self.start_step and self.interval > 0 and step % self.interval == 0


@dataclass
class LossStats:
    """Per-phase scalars accumulated between two logging ticks."""

    values: dict[str, list[float]] = field(default_factory=dict)

    def add(self, name: str, value: torch.Tensor | float) -> None:
        v = float(value.detach().mean()) if torch.is_tensor(value) else float(value)
        self.values.setdefault(name, []).append(v)

    def means(self) -> dict[str, float]:
        return {k: float(np.mean(v)) for k, v in self.values.items() if v}

    def clear(self) -> None:
        self.values.clear()


class NonFiniteLossError(RuntimeError):
    """A loss, the weights or the optimizer state became NaN or Inf; training stops without
    writing a checkpoint, so the newest one on disk (if any) is from before it."""


def check_finite(name: str, value: torch.Tensor, step: int) -> None:
    if not torch.isfinite(value).all():
        raise NonFiniteLossError(
            f"loss '{name}' became {value.detach().flatten()[0].item()} at step {step}, so training stopped without "
            "a checkpoint. Lower the learning rates (--lr-g/--lr-d), raise --r1-gamma, or use fp32.")


class CompiledForward:
    """A module's torch.compile'd forward that runs the eager one inside ``eager_forwards()``:
    compiled graphs do not support double backward, which R1 and path length need."""

    eager_depth = 0

    def __init__(self, eager, compiled):
        self.eager, self.compiled = eager, compiled

    def __call__(self, *args, **kwargs):
        return (self.eager if CompiledForward.eager_depth else self.compiled)(*args, **kwargs)


@contextlib.contextmanager
def eager_forwards():
    CompiledForward.eager_depth += 1
    try:
        yield
    finally:
        CompiledForward.eager_depth -= 1


class StyleGAN2Loss:
    """Computes each phase's loss and backpropagates it (``accumulate``)."""

    def __init__(self, G: Generator, D: Discriminator, r1_gamma: float, *, style_mixing: float = 0.9,
                 pl_weight: float = 0.0, pl_batch_shrink: int = 2, pl_decay: float = 0.01,
                 autocast_dtype: torch.dtype | None = None, device: torch.device | None = None,
                 link: LinkSettings | None = None):
        self.G, self.D = G, D
        self.link = link
        self.link_localities: dict[str, float] = {}  # of the last Glink call (LinkSettings.localities)
        # stylegan2-ada-pytorch updates w_avg on every training-mode mapping call (G and D phases,
        # path length); linkgan's first dialect only in the main G phase.
        self.w_avg_in_every_phase = G.numerics != "legacy"
        self.r1_gamma = r1_gamma
        self.style_mixing = style_mixing
        self.pl_weight = pl_weight
        self.pl_batch_shrink = pl_batch_shrink
        self.pl_decay = pl_decay
        self.pl_mean = torch.zeros([], device=device)
        self.autocast_dtype = autocast_dtype
        self.device = device
        # 'random' in training; 'const' makes the G and D phases a deterministic function of
        # their latents (the data-parallel equivalence test uses it).
        self.noise_mode = "random"
        # ADA (linkgan.augment): every image D sees goes through ``augment`` when set; ``ada``
        # observes D's outputs on reals to tune its p. The Glink phase never calls D.
        self.augment = None
        self.ada = None

    def autocast(self):
        """Mixed precision for the main phases on CUDA; regularizers stay in fp32."""
        if self.autocast_dtype is None or self.device is None or self.device.type != "cuda":
            return contextlib.nullcontext()
        return torch.autocast("cuda", dtype=self.autocast_dtype)

    def conditioning(self, c: torch.Tensor | None) -> torch.Tensor | None:
        """The cameras the mapping network sees for fakes rendered from c (a 3D subclass swaps some)."""
        return c

    def sample_ws(self, z: torch.Tensor, update_w_avg: bool = True, c: torch.Tensor | None = None) -> torch.Tensor:
        c_cond = self.conditioning(c)
        ws = self.G.mapping(z, c_cond, update_w_avg=update_w_avg)
        ws = self.G.style_mix(ws, self.style_mixing, c_cond)
        if self.link is not None:
            ws = self.link.perturb_some(ws)
        return ws

    def run_G(self, z: torch.Tensor, update_w_avg: bool = True, c: torch.Tensor | None = None):
        """Fakes as G.render gives them ({"image": (N,3,R,R), ...}) and their ws; c: the cameras to
        render from (None for a 2D generator)."""
        ws = self.sample_ws(z, update_w_avg, c)
        return self.G.render(ws, c, noise_mode=self.noise_mode), ws

    def augmented(self, img):
        """``img`` (real images, or G.render's dict) as D sees it: through ADA when on."""
        return img if self.augment is None else self.augment(img)

    def run_D(self, img, c: torch.Tensor | None = None) -> torch.Tensor:
        return self.D(self.augmented(img), c)

    def observe_real(self, logits_real: torch.Tensor) -> None:
        if self.ada is not None:
            self.ada.observe(logits_real)

    def link_terms(self, z: torch.Tensor, c: torch.Tensor | None = None) -> tuple[torch.Tensor, dict]:
        """The Glink phase's weighted loss and its terms for latents z, rendered from the cameras c."""
        ws = self.G.mapping(z, c, update_w_avg=self.w_avg_in_every_phase)
        return self.link.loss(self.G, ws, c)

    def accumulate(self, phase: str, real: torch.Tensor, z: torch.Tensor, gain: float, stats: LossStats,
                   step: int, scaler=None, c_real: torch.Tensor | None = None,
                   c_gen: torch.Tensor | None = None) -> None:
        """Runs one phase's forward and backward pass.

        real: (N,3,R,R) in [-1,1]; z: (N, z_dim); gain: the lazy-regularization interval.
        c_real, c_gen: (N, c_dim) cameras of the real images and of the fakes to render (None in 2D).
        """
        backward = (lambda loss: scaler.scale(loss).backward()) if scaler is not None else (lambda loss: loss.backward())
        if phase == "Gmain":
            with self.autocast():
                fake, _ = self.run_G(z, c=c_gen)
                logits = self.run_D(fake, c_gen).float()
            loss = F.softplus(-logits).mean()
            check_finite("G", loss, step)
            stats.add("Loss/G/loss", loss)
            stats.add("Loss/scores/fake", logits)
            backward(loss * gain)
        elif phase == "Greg":
            n = max(1, z.shape[0] // self.pl_batch_shrink)
            with eager_forwards():  # double backward
                fake, ws = self.run_G(z[:n], update_w_avg=self.w_avg_in_every_phase,
                                      c=None if c_gen is None else c_gen[:n])
            fake = fake["image"]
            # Path length: |J_w^T y| for random image-space directions y, normalized by the
            # number of pixels so the penalty is resolution independent.
            y = torch.randn_like(fake) / np.sqrt(fake.shape[2] * fake.shape[3])
            (grad,) = torch.autograd.grad((fake * y).sum(), ws, create_graph=True)
            lengths = grad.square().sum(2).mean(1).sqrt()
            self.pl_mean.copy_(self.pl_mean.lerp(lengths.mean().detach(), self.pl_decay))
            penalty = (lengths - self.pl_mean).square().mean()
            loss = penalty * self.pl_weight
            check_finite("pl", loss, step)
            stats.add("Loss/pl_penalty", penalty)
            # The zero-weight term on the image keeps every synthesis parameter in the graph.
            backward((loss + fake[:, 0, 0, 0].sum() * 0) * gain)
        elif phase == "Glink":
            n = min(self.link.batch, z.shape[0])
            loss, terms = self.link_terms(z[:n], None if c_gen is None else c_gen[:n])
            self.link_localities = self.link.localities(terms)  # what the trainer steers --link-target by
            check_finite("link", loss, step)
            stats.add("Loss/link/total", loss)
            for key, value in terms.items():
                if "/" in key:
                    stats.add(f"Loss/link/{key}", value)
            backward(loss * gain)
        elif phase == "Dmain":
            with torch.no_grad(), self.autocast():
                fake, _ = self.run_G(z, update_w_avg=self.w_avg_in_every_phase, c=c_gen)
            fake = {k: v.float() for k, v in fake.items()}
            with self.autocast():
                logits_fake = self.run_D(fake, c_gen).float()
                logits_real = self.run_D(real, c_real).float()
            loss = F.softplus(logits_fake).mean() + F.softplus(-logits_real).mean()
            check_finite("D", loss, step)
            stats.add("Loss/D/loss", loss)
            stats.add("Loss/scores/real", logits_real)
            stats.add("Loss/signs/real", logits_real.sign())
            self.observe_real(logits_real)
            backward(loss * gain)
        elif phase == "Dreg":
            real = real.detach().requires_grad_(True)
            with eager_forwards():  # double backward
                logits = self.run_D(real, c_real)
            self.observe_real(logits)  # as stylegan2-ada-pytorch, whose R1 phase also reports sign(D(real))
            (grad,) = torch.autograd.grad(logits.sum(), real, create_graph=True)
            penalty = grad.square().sum(dim=[1, 2, 3])
            loss = (penalty * (self.r1_gamma / 2)).mean()
            check_finite("r1", loss, step)
            stats.add("Loss/r1_penalty", penalty)
            backward(loss * gain)
        else:
            raise ValueError(f"unknown phase {phase!r}")

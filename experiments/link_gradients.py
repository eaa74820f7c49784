"""How large is the lazy Glink step's gradient next to G's adversarial one?

With StyleGAN2-style lazy regularization (``link_optimizer: shared``) the Glink loss is
multiplied by the interval k and its gradient enters the same Adam second moments as the
adversarial gradient. If the link gradient is r times the adversarial one (per weight), the
moments settle near g_adv^2 * (1 + r^2 / k), and every adversarial step is shrunk by about
sqrt(1 + r^2 / k). This script measures r for a run's settings on its init checkpoint and
prints that estimate as JSON; docs/results/semantic.md uses it to explain why the scenes
model collapses at the default weights.

Usage:
  python experiments/link_gradients.py --config runs/semantic/scenes-shared/config.yaml [--init CKPT] [--batches 3]
"""

from __future__ import annotations

import argparse
import json
import tempfile

import torch

from linkgan.config import RunConfig, load_config_file
from linkgan.images import uint8_to_float
from linkgan.losses import LossStats
from linkgan.training import Trainer


def gradient(trainer: Trainer, phase: str, real: torch.Tensor, gain: float) -> torch.Tensor:
    """G's flattened gradient of one phase's loss (times ``gain``) on one batch."""
    G = trainer.G
    G.requires_grad_(True)
    G.zero_grad(set_to_none=True)
    trainer.loss.accumulate(phase, real, trainer.draw_latents(real.shape[0]).to(trainer.device), gain=gain,
                            stats=LossStats(), step=0)
    grads = torch.cat([p.grad.flatten() for p in G.parameters() if p.grad is not None])
    G.requires_grad_(False)
    return grads


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--config", required=True, help="a run's config.yaml (its links and link_* settings)")
    p.add_argument("--init", default=None, help="checkpoint to measure on (default: the config's train.init)")
    p.add_argument("--batches", type=int, default=3)
    args = p.parse_args()
    d = load_config_file(args.config)
    with tempfile.TemporaryDirectory() as tmp:
        d["train"].update(out=tmp, workers=0, **({"init": args.init} if args.init else {}))
        cfg = RunConfig.from_dict(d)
        cfg.train.link.ramp_kimg = 0.0
        torch.manual_seed(0)
        trainer = Trainer(cfg, progress=False)
        batches = iter(trainer._loader())
        k = cfg.train.link.interval
        adv, link = [], []
        for _ in range(args.batches):
            batch = next(batches)
            real = uint8_to_float(batch[0] if isinstance(batch, (tuple, list)) else batch).to(trainer.device)
            adv.append(gradient(trainer, "Gmain", real, 1.0))
            link.append(gradient(trainer, "Glink", real, float(k)))
    adv_rms = torch.stack(adv).square().mean(0).sqrt()
    ratio = (torch.stack(link).abs().mean(0) / adv_rms.clamp(min=1e-12)).median()
    print(json.dumps({
        "config": args.config, "interval": k,
        "lambda_in": cfg.train.link.lambda_in, "lambda_out": cfg.train.link.lambda_out,
        "grad_norm_adversarial": round(float(torch.stack(adv).norm(dim=1).mean()), 2),
        "grad_norm_link_times_interval": round(float(torch.stack(link).norm(dim=1).mean()), 2),
        "median_per_weight_ratio": round(float(ratio), 2),
        "adversarial_step_shrink_shared_adam": round(float((1 + ratio ** 2 / k).sqrt()), 2),
    }, indent=1))


if __name__ == "__main__":
    main()

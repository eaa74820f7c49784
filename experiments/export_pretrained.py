"""Export the models that ship inside the package (src/linkgan/assets/).

Takes G_ema of a run's checkpoint (``--networks G_ema``), or G, D and G_ema for a base that
users fine-tune (``--networks G,D,G_ema``), stores them as float16 (half the size; loading
casts back to float32) with the run's config, its training paths blanked, and checks the
copy: the largest pixel difference against the float32 model on 64 seeds, and masked MSE of
both on the same samples, so that the shipped model keeps the run's measured locality.

Usage (the runs are in docs/results/compat.md):
  python experiments/export_pretrained.py --ckpt runs/base32 --networks G,D,G_ema \
      --out src/linkgan/assets/toyfaces32-base.safetensors --measure 0
  python experiments/export_pretrained.py --ckpt runs/eyes_mouth32 \
      --out src/linkgan/assets/toyfaces32-eyes-mouth.safetensors --measure 1000
  python experiments/export_pretrained.py --ckpt runs/fm --networks G,D,G_ema \
      --out src/linkgan/assets/fmnist32-base.safetensors --measure 0      # docs/results/ada.md
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from linkgan.checkpoint import load_checkpoint, load_module, save_checkpoint
from linkgan.config import RunConfig
from linkgan.metrics import masked_mse_metric
from linkgan.networks.build import build_discriminator, build_generator
from linkgan.pipeline import LinkGANPipeline

SIZE_LIMIT = 12 * 1024 * 1024  # per file; the wheel must stay under 30 MB with all of them


def export(src: str, out: Path, networks: list[str]) -> Path:
    ckpt = load_checkpoint(src)
    config = RunConfig.from_dict(ckpt.config, str(ckpt.path))
    # The run's own paths mean nothing on a user's machine.
    config.train.data, config.train.out, config.train.init = "", "", ""
    nets = {}
    for name in networks:
        net = build_generator(config.model) if name.startswith("G") else build_discriminator(config.model)
        load_module(net, ckpt, name)
        nets[name] = net.half()
    state = {"kimg": ckpt.state.get("kimg"), "images_seen": ckpt.state.get("images_seen"),
             "exported_from": f"{ckpt.path.parent.name}/{ckpt.path.name}",
             "weights": f"{', '.join(networks)}, float16", "exported_by": "experiments/export_pretrained.py"}
    path = save_checkpoint(out, nets, config.to_dict(), state=state, with_rng=False)
    path.chmod(0o644)  # package data: readable by everyone who installs it
    size = path.stat().st_size
    if size > SIZE_LIMIT:
        raise SystemExit(f"{path} is {size / 2**20:.1f} MiB, over the {SIZE_LIMIT / 2**20:.0f} MiB package limit")
    return path


def check(src: str, out: Path, measure: int) -> dict:
    full = LinkGANPipeline.load(src, device="cpu")
    shipped = LinkGANPipeline.load(out, device="cpu")
    seeds = list(range(64))
    diff = (full.generate(seeds, output="tensor") - shipped.generate(seeds, output="tensor")).abs()
    report = {"file": str(out), "bytes": out.stat().st_size,
              "max_abs_pixel_diff_vs_fp32": float(diff.max()), "mean_abs_pixel_diff_vs_fp32": float(diff.mean())}
    if measure and len(shipped.links):
        for name, pipe in (("fp32", full), ("shipped", shipped)):
            report[f"mse{measure}_{name}"] = masked_mse_metric(pipe.G, pipe.links, n=measure, batch=50)
    return report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ckpt", required=True, help="The LinkGAN run's checkpoint (or run directory).")
    ap.add_argument("--out", default="src/linkgan/assets/toyfaces32-eyes-mouth.safetensors")
    ap.add_argument("--measure", type=int, default=1000, help="Samples of masked MSE to compare (0: skip).")
    ap.add_argument("--networks", default="G_ema", help="Comma-separated networks to ship: G_ema, or G,D,G_ema "
                                                       "for a base that is fine-tuned.")
    args = ap.parse_args()
    torch.set_grad_enabled(False)
    out = export(args.ckpt, Path(args.out), args.networks.split(","))
    print(json.dumps(check(args.ckpt, out, args.measure), indent=2))


if __name__ == "__main__":
    main()

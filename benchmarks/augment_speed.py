"""ADA's augmentation: linkgan.augment.AugmentPipe against kornia's augmentations, as JSON.

Why linkgan writes its own: kornia (differentiable, CPU and CUDA, no torchvision) was the
well-kept candidate. This measures, in one process and taking turns, forward + backward time of
a batch through

  * linkgan's 'bgc' pipeline (one composed grid_sample and one colour matrix per batch), and
  * the closest kornia pipeline: RandomHorizontalFlip, RandomRotation90, RandomTranslate
    (integer shifts are not offered: fractional, uniform), RandomAffine (rotation, uniform
    isotropic scale: not lognormal, no anisotropic scale), RandomBrightness, RandomContrast,
    RandomHue and RandomSaturation (HSV, on [0, 1] images, clamped), with no luma flip
    (RandomInvert is 1 - x, another transform);

and records which of the paper's transforms each can express exactly. Run it with kornia
installed (``pip install kornia``; it is not a linkgan dependency); without it only linkgan's
time is reported.

Usage: python benchmarks/augment_speed.py [--res 32,256] [--batch 32] [--p 0.5] [--rounds 7]
"""

import argparse
import json
import platform
import statistics
import time

import torch

from linkgan.augment import AugmentPipe

PAPER_TRANSFORMS = ["xflip", "rotate90", "xint", "scale (lognormal)", "rotate", "aniso (lognormal)", "xfrac (normal)",
                    "brightness", "contrast (lognormal)", "lumaflip", "hue (about luma)", "saturation (lognormal)"]
KORNIA_EXACT = ["xflip", "rotate90", "rotate"]  # the rest differ in distribution or are missing


def kornia_pipe(p: float):
    import kornia.augmentation as K

    return K.AugmentationSequential(
        K.RandomHorizontalFlip(p=p),
        K.RandomRotation90(times=(0, 3), p=p),
        K.RandomTranslate(0.125, 0.125, p=p, padding_mode="reflection"),
        K.RandomAffine(degrees=180, scale=(0.7, 1.4), p=p, padding_mode="reflection"),
        K.RandomBrightness((0.8, 1.2), p=p),
        K.RandomContrast((0.5, 2.0), p=p),
        K.RandomHue((-0.5, 0.5), p=p),
        K.RandomSaturation((0.25, 4.0), p=p),
    )


def time_pipe(fn, x, steps: int) -> float:
    """Seconds per forward + backward of ``fn`` on ``x``."""
    t0 = time.perf_counter()
    for _ in range(steps):
        xi = x.detach().requires_grad_(True)
        fn(xi).square().mean().backward()
    return (time.perf_counter() - t0) / steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--res", default="32,256")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--p", type=float, default=0.5)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--steps", type=int, default=5)
    args = ap.parse_args()
    try:
        import kornia
        kornia_version = kornia.__version__
    except ImportError:
        kornia_version = None
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    out = {"device": str(device), "cpu": platform.processor() or platform.machine(), "torch": torch.__version__,
           "kornia": kornia_version or "not installed", "batch": args.batch, "p": args.p,
           "paper_transforms": PAPER_TRANSFORMS, "kornia_exact": KORNIA_EXACT, "results": []}
    ours = AugmentPipe("bgc", args.p).to(device)
    theirs = kornia_pipe(args.p).to(device) if kornia_version else None
    for res in [int(r) for r in args.res.split(",")]:
        x = torch.rand(args.batch, 3, res, res, device=device) * 2 - 1
        arms = {"linkgan": lambda v: ours(v)}
        if theirs is not None:
            arms["kornia"] = lambda v: theirs((v + 1) / 2) * 2 - 1  # kornia's colour ops want [0, 1]
        for fn in arms.values():
            time_pipe(fn, x, 1)  # warm-up
        times = {k: [] for k in arms}
        for _ in range(args.rounds):
            for name, fn in arms.items():
                times[name].append(time_pipe(fn, x, args.steps))
        row = {"res": res, **{f"{k}_ms": round(1000 * statistics.median(v), 2) for k, v in times.items()}}
        if theirs is not None:
            row["kornia_over_linkgan"] = round(statistics.median(times["kornia"]) / statistics.median(times["linkgan"]), 2)
        out["results"].append(row)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()

"""Real-image inversion results: docs/results/inversion.md, .json and figures in docs/images/.

For one LinkGAN model and a set of real images it never saw, it measures
  * reconstruction: PSNR, SSIM and the Inception perceptual distance of W, W+, the encoder
    alone, and encoder + W+ (the encoder is trained first, on the model's samples and the
    training images);
  * locality of edits on the inverted latents: masked MSE of resampling each link's axes
    around the inverted latent, beside the same measure around the model's own samples;
  * pivotal tuning (PTI): reconstruction before/after, and whether the tuned copy's links
    stay local.
Everything measured is stored at once in docs/results/inversion.json under the model's
name, so an interrupted run resumes where it stopped.

Usage:
  python experiments/inversion.py --name toyfaces --ckpt builtin:toyfaces \\
      --images data/toyfaces-heldout.zip --train-data data/toyfaces32.zip
  python experiments/inversion.py --name fashion --ckpt runs/paper/fashion-top \\
      --images data/fmnist32-test.zip --train-data data/fmnist32-train.zip
  python experiments/inversion.py --report-only
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from lab import Results  # noqa: E402

from linkgan.data import ImageDataset  # noqa: E402
from linkgan.editing import edit_grid, edit_latents, region_outline  # noqa: E402
from linkgan.images import make_grid, save_png, uint8_to_float  # noqa: E402
from linkgan.inversion import (  # noqa: E402
    LatentEncoder,
    ReconstructionLoss,
    latent_locality,
    pivotal_tuning,
    project,
    train_encoder,
    tuning_locality,
)
from linkgan.pipeline import LinkGANPipeline  # noqa: E402

# w+free: StyleGAN2's projector (wplus_weight 0); w+ and encoder+w+ use the default cohesion penalty.
ARMS = ("w", "w+free", "w+", "encoder", "encoder+w+")


def mean_of(rows: list[dict], key: str) -> float | None:
    vals = [r[key] for r in rows if r.get(key) is not None]
    return float(np.mean(vals)) if vals else None


def run(args, res: Results) -> None:
    pipe = LinkGANPipeline.load(args.ckpt)
    G = pipe.G
    name = args.name
    work = Path(args.runs) / name
    work.mkdir(parents=True, exist_ok=True)
    res.put({"checkpoint": args.ckpt, "images": args.images, "n": args.n, "steps": args.steps,
             "encoder_kimg": args.encoder_kimg, "links": pipe.links.names}, name, "setup")
    # Encoder (W+), trained on the model's samples and the training images.
    enc_path = work / "encoder.safetensors"
    if not enc_path.is_file():
        t0 = time.time()
        real = ImageDataset(args.train_data, resolution=G.resolution) if args.train_data else None
        enc = train_encoder(G, space="w+", kimg=args.encoder_kimg, real=real)
        enc.save(enc_path, {"checkpoint": args.ckpt, "kimg": args.encoder_kimg})
        res.put(round((time.time() - t0) / 60, 1), name, "encoder_minutes")
    enc = LatentEncoder.load(enc_path, pipe.device)
    loss = ReconstructionLoss("auto", device=pipe.device)
    res.put(loss.note, name, "loss")
    held_out = ImageDataset(args.images, resolution=G.resolution)
    idx = np.random.default_rng(0).choice(len(held_out), size=min(args.n, len(held_out)), replace=False)
    inversions = {}
    for i in idx:
        key = f"img{int(i)}"
        item = held_out[int(i)]
        target = uint8_to_float((item if torch.is_tensor(item) else item[0])[None]).to(pipe.device)
        with torch.no_grad():
            guess = enc(target)
        for arm in ARMS:
            version = "v3" if arm in ("w+", "encoder+w+") else "v2"  # v3: the cohesion weight 10
            cache = work / f"{key}-{arm.replace('+', 'plus')}-{version}.safetensors"
            if cache.is_file():
                from linkgan.inversion import Inversion

                inv = Inversion.load(cache, pipe.device)
            else:
                t0 = time.time()
                steps = 0 if arm == "encoder" else args.steps
                inv = project(G, target, space="w" if arm == "w" else "w+", steps=steps,
                              init_ws=guess if arm.startswith("encoder") else None, loss=loss, seed=0,
                              wplus_weight=0.0 if arm == "w+free" else 10.0)
                inv.info["seconds"] = round(time.time() - t0, 1)
                inv.save(cache)
            inversions[(key, arm)] = inv
            if res.get(name, "recon", key, arm) is None:
                res.put(dict(inv.metrics, seconds=inv.info.get("seconds")), name, "recon", key, arm)
            if res.get(name, "locality", key, arm) is None and len(pipe.links):
                res.put(latent_locality(G, pipe.links, inv.ws.to(pipe.device), n=args.edits, noises=inv.noise),
                        name, "locality", key, arm)
        print(f"{name} {key}: " + ", ".join(f"{a} {res.get(name, 'recon', key, a)['psnr']:.1f} dB" for a in ARMS))
    # The reference: the same edits around the model's own samples.
    if res.get(name, "locality_samples") is None:
        rows = [latent_locality(G, pipe.links, pipe.latents([s]), n=args.edits) for s in range(args.n)]
        res.put({link: {k: float(np.mean([r[link][k] for r in rows])) for k in ("mse_in", "mse_out", "locality")}
                 for link in pipe.links.names}, name, "locality_samples")
    # Pivotal tuning on the first images' W+ inversions.
    for i in idx[:args.pti_images]:
        key = f"img{int(i)}"
        if res.get(name, "pti", key) is not None:
            continue
        inv = inversions[(key, "w+")]
        t0 = time.time()
        tuned = pivotal_tuning(G, inv, steps=args.pti_steps, loss=loss)
        loc = tuning_locality(G, pipe.links, tuned, n=args.edits)
        res.put({"before": inv.metrics, "after": {k: v for k, v in tuned.metrics.items() if k != "before_pti"},
                 "seconds": round(time.time() - t0, 1), "locality_original": loc["original"],
                 "locality_tuned": loc["tuned"]}, name, "pti", key)
        inversions[(key, "pti")] = tuned
    figures(pipe, name, idx, inversions, Path(args.docs), res)


def figures(pipe, name, idx, inversions, docs: Path, res: Results) -> None:
    """Reconstructions (target, W, W+, encoder, encoder+W+) and edits of the inverted images."""
    images = docs / "images"
    rows = []
    for i in idx[:6]:
        key = f"img{int(i)}"
        rows.append(inversions[(key, "w+")].target.cpu())
        rows += [inversions[(key, arm)].image.cpu() for arm in ARMS]
    up = max(1, 96 // pipe.resolution)
    save_png(make_grid(torch.cat(rows), ncols=1 + len(ARMS), pad=1), images / f"inversion-{name}-recon.png",
             upscale=up)
    for link in pipe.links.names:
        originals, variants = [], []
        for i in idx[:4]:
            inv = inversions[(f"img{int(i)}", "encoder+w+")]
            ws = inv.ws.to(pipe.device)
            v = edit_latents(pipe.G, pipe.links, ws, link, 5, seed=1)[0]
            originals.append(pipe.synthesize(ws, latent=inv))
            variants.append(pipe.synthesize(v, latent=inv))
        originals = torch.cat(originals)
        grid = edit_grid(originals, torch.stack(variants), region_outline(pipe.links, link, pipe.resolution, originals))
        targets = make_grid(torch.cat([inversions[(f"img{int(i)}", "w+")].target.cpu() for i in idx[:4]]), ncols=1,
                            pad=1)
        # The real images in a first column, then the edit grid's rows.
        h = min(targets.shape[0], grid.shape[0])
        both = np.concatenate([targets[:h], np.full((h, 2, 3), 255, np.uint8), grid[:h]], axis=1)
        save_png(both, images / f"inversion-{name}-edit-{link}.png", upscale=up)


def report(res: Results, docs: Path) -> Path:
    d = res.data
    lines = ["# Real-image inversion and editing", "",
             "Written by `experiments/inversion.py` from `inversion.json`. The images are real images the models never "
             "saw: the Fashion-MNIST **test** split for a Fashion-MNIST LinkGAN, and freshly rendered toyfaces (a "
             "dataset seed the model was not trained on) for the toyfaces LinkGAN. Each image is inverted four ways: "
             "the projector in W, in free W+ (StyleGAN2's projector) and in W+ with the layers held together "
             "(`wplus_weight` 10, the default) from w_avg, the encoder alone, and the projector in W+ (default) from the "
             "encoder's guess. The projector optimizes the noise maps too (with the autocorrelation penalty) and its loss is "
             "pixel MSE + the Inception-feature perceptual distance. Metrics on 8-bit reconstructions: PSNR (dB), "
             "SSIM, perceptual distance (Inception features, LPIPS-style; lower is better).", ""]
    for name, m in d.items():
        if not isinstance(m, dict) or "recon" not in m:
            continue
        s = m["setup"]
        lines += [f"## {name}", "",
                  f"Checkpoint `{s['checkpoint']}`, {len(m['recon'])} held-out images from `{Path(s['images']).name}`, "
                  f"{s['steps']} projector steps, encoder trained {s['encoder_kimg']} kimg "
                  f"({m.get('encoder_minutes', '?')} min). {m.get('loss', '')}.", "",
                  "| inversion | PSNR | SSIM | perceptual | seconds/image |", "|---|---|---|---|---|"]
        for arm in ARMS:
            rows = [r[arm] for r in m["recon"].values() if arm in r]
            lines.append(f"| {arm} | {mean_of(rows, 'psnr'):.2f} | {mean_of(rows, 'ssim'):.3f} | "
                         + (f"{mean_of(rows, 'perceptual'):.4f}" if mean_of(rows, 'perceptual') is not None else "–")
                         + f" | {mean_of(rows, 'seconds') or 0:.1f} |")
        links = s["links"]
        lines += ["", "Locality of edits (resampling a link's axes, masked MSE ×1e-3 on [0,1] pixels: MSE_in / MSE_out, "
                  "locality = MSE_out / MSE_in), around the inverted latents and around the model's own samples:", "",
                  "| latent | " + " | ".join(links) + " |", "|---|" + "---|" * len(links)]
        for arm in ARMS:
            rows = [r[arm] for r in m.get("locality", {}).values() if arm in r]
            if rows:
                cells = []
                for link in links:
                    mi = np.mean([r[link]["mse_in"] for r in rows])
                    mo = np.mean([r[link]["mse_out"] for r in rows])
                    cells.append(f"{mi * 1e3:.2f} / {mo * 1e3:.2f} ({mo / mi:.3f})")
                lines.append(f"| inverted, {arm} | " + " | ".join(cells) + " |")
        ref = m.get("locality_samples")
        if ref:
            lines.append("| the model's own samples | " + " | ".join(
                f"{ref[link]['mse_in'] * 1e3:.2f} / {ref[link]['mse_out'] * 1e3:.2f} ({ref[link]['locality']:.3f})"
                for link in links) + " |")
        if m.get("pti"):
            lines += ["", "Pivotal tuning (W+ pivot, then the synthesis copy tuned):", "",
                      "| image | PSNR before → after | perceptual before → after | "
                      + " | ".join(f"{link} locality original → tuned" for link in links) + " |",
                      "|---|---|---|" + "---|" * len(links)]
            for key, r in m["pti"].items():
                pb, pa = r["before"].get("perceptual"), r["after"].get("perceptual")
                lines.append(f"| {key} | {r['before']['psnr']:.2f} → {r['after']['psnr']:.2f} | "
                             + (f"{pb:.4f} → {pa:.4f}" if pb is not None else "–") + " | "
                             + " | ".join(f"{r['locality_original'][link]['locality']:.3f} → "
                                          f"{r['locality_tuned'][link]['locality']:.3f}" for link in links) + " |")
        lines += ["", f"![reconstructions](../images/inversion-{name}-recon.png)", "",
                  "*Each row: the real image, then W, free W+, W+, encoder, encoder + W+.*", ""]
        for link in links:
            lines += [f"![edits of {link}](../images/inversion-{name}-edit-{link}.png)", "",
                      f"*Real image, its encoder + W+ reconstruction, five resamples of the `{link}` link, and the "
                      f"mean |change| with the region outlined.*", ""]
        if m.get("notes"):
            lines += [m["notes"], ""]
    page = docs / "results" / "inversion.md"
    page.write_text("\n".join(lines) + "\n")
    return page


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--name", help="the model's name in the results (toyfaces, fashion)")
    p.add_argument("--ckpt", help="the LinkGAN checkpoint or run directory (or builtin:toyfaces)")
    p.add_argument("--images", help="held-out real images (an archive or folder)")
    p.add_argument("--train-data", help="the model's training images, for the encoder")
    p.add_argument("--n", type=int, default=8, help="images to invert")
    p.add_argument("--steps", type=int, default=150, help="projector steps")
    p.add_argument("--encoder-kimg", type=float, default=20.0)
    p.add_argument("--edits", type=int, default=16, help="resamples per link and image for locality")
    p.add_argument("--pti-images", type=int, default=3)
    p.add_argument("--pti-steps", type=int, default=100)
    p.add_argument("--runs", default="runs/inversion")
    p.add_argument("--docs", default="docs")
    p.add_argument("--report-only", action="store_true")
    args = p.parse_args()
    res = Results(Path(args.docs) / "results" / "inversion.json")
    if not args.report_only:
        if not (args.name and args.ckpt and args.images):
            p.error("--name, --ckpt and --images are needed (or --report-only)")
        run(args, res)
    print(report(res, Path(args.docs)))


if __name__ == "__main__":
    main()

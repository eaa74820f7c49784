"""`linkgan generate`, `edit` (seeds, inverted images, recipes), `invert` and `encoder train`."""

from __future__ import annotations

import sys
from pathlib import Path

from ..errors import InputError
from .common import COUNT, PSI, SEED, STEPS, _number_in, load_pipeline


def cmd_generate(args) -> int:
    from ..pipeline import LinkGANPipeline

    pipe = LinkGANPipeline.load(args.ckpt, device=args.device)
    paths = pipe.save_images(args.seeds, args.out, truncation=args.trunc, ncols=args.cols)
    print(paths[0] if len(paths) == 1 else f"wrote {len(paths)} images to {args.out}")
    return 0


def cmd_edit(args) -> int:
    from ..pipeline import parse_seeds

    if args.recipe:
        return cmd_edit_recipe(args)
    if not args.ckpt:
        raise InputError("give --ckpt RUN (a run directory or a checkpoint file), or --recipe FILE")
    pipe = load_pipeline(args)
    if not args.link:
        raise InputError(f"give --link NAME; this model's links: {pipe.links.names or 'none (pass --links FILE)'}")
    pipe.links.axes_mask(args.link)  # unknown names fail here, listing the known ones (and 'shared')
    latent, seeds = None, parse_seeds(args.seeds)
    if args.latent:  # an inverted real image (`linkgan invert`) instead of seeds
        from ..inversion import Inversion

        latent, seeds = Inversion.load(args.latent, pipe.device), [0]
        pipe.to_ws(latent)  # checks that the latent belongs to this model
    if args.interpolate:
        target = args.target_seed if args.target_seed is not None else seeds[0] + 1
        print(pipe.save_interpolation(latent if latent is not None else seeds[0], args.link, args.out, target,
                                      args.frames, args.fps, args.trunc))
        return 0
    if args.transplant is not None:
        print(pipe.save_transplant_grid(seeds, args.transplant, args.link, args.out, args.trunc, latent=latent))
        print("columns: image A, A with B's region, image B")
        return 0
    print(pipe.save_edit_grid(seeds, args.link, args.out, args.n, args.mode, args.strength, args.trunc, args.complement,
                              args.edit_seed, latent=latent))
    return 0


def cmd_edit_recipe(args) -> int:
    from ..images import float_to_uint8, save_png
    from ..recipe import load_recipe, render_recipe

    recipe = load_recipe(args.recipe)
    args.ckpt = args.ckpt or recipe.get("checkpoint") or None
    if not args.ckpt:
        raise InputError(f"recipe {args.recipe} names no checkpoint; give --ckpt RUN")
    image = render_recipe(load_pipeline(args), recipe)  # (1, 3, R, R), exactly as the editor showed it
    print(save_png(float_to_uint8(image)[0].permute(1, 2, 0).numpy(), Path(args.out)))
    return 0


def cmd_invert(args) -> int:
    import json

    import torch
    from tqdm.auto import tqdm

    from ..data import IMAGE_EXTENSIONS
    from ..data.images import ImageLoadError
    from ..images import make_grid, save_png
    from ..pipeline import LinkGANPipeline

    src = Path(args.images)
    if src.is_dir():
        files = sorted(p for p in src.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
        if not files:
            raise InputError(f"{src} holds no images ({', '.join(IMAGE_EXTENSIONS)})")
    elif src.is_file():
        files = [src]
    else:
        raise FileNotFoundError(f"--images {src}: no such file or folder")
    pipe = LinkGANPipeline.load(args.ckpt, device=args.device)
    encoder = None if args.encoder == "none" else args.encoder
    out = Path(args.out)
    summary, failed = {}, []
    for path in files:
        # One folder per image, named after its path below --images (so that a/x.png and b/x.png stay apart).
        single = len(files) == 1 or src.is_file()
        name = path.stem if single else str(path.relative_to(src).with_suffix("")).replace("/", "_")
        total = args.steps + (args.pti_steps if args.pti else 0)
        with tqdm(total=total, desc=f"invert {name}", unit="step", disable=args.no_progress) as bar:
            try:
                inv = pipe.invert(path, space=args.space, steps=args.steps, encoder=encoder, seed=args.seed,
                                  progress=lambda step, n, loss: (bar.update(1), bar.set_postfix(loss=f"{loss:.4f}")),
                                  pti=args.pti, pti_steps=args.pti_steps, perceptual=args.perceptual,
                                  align=args.align, noise=not args.no_noise, wplus_weight=args.wplus_weight)
            except ImageLoadError as e:
                print(f"skipped: {e}", file=sys.stderr)
                failed.append(str(path))
                continue
        d = out / name
        inv.info["source_image"] = str(path)
        inv.save(d / "latent.safetensors")
        save_png(make_grid(inv.image, ncols=1), d / "reconstruction.png")
        save_png(make_grid(torch.cat([inv.target.cpu(), inv.image.cpu()]), ncols=2, pad=1), d / "side_by_side.png",
                 upscale=max(1, 256 // pipe.resolution))
        metrics = dict(inv.metrics, space=args.space, steps=args.steps, loss=inv.info["loss"], pti=args.pti)
        if args.pti and len(pipe.links):
            from ..inversion import tuning_locality

            metrics["pti_locality"] = tuning_locality(pipe.G, pipe.links, inv)
        (d / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
        summary[name] = metrics
        print(f"{name}: PSNR {metrics['psnr']:.2f} dB, SSIM {metrics['ssim']:.3f}"
              + (f", perceptual {metrics['perceptual']:.4f}" if metrics.get("perceptual") is not None else "")
              + f"  -> {d}")
    if summary:
        print(inv.info["loss_note"])
        out.mkdir(parents=True, exist_ok=True)
        (out / "metrics.json").write_text(json.dumps(summary, indent=2) + "\n")
    if failed:
        print(f"{len(failed)} of {len(files)} files were not images and were skipped", file=sys.stderr)
    return 0 if summary else 2


def cmd_encoder(args) -> int:
    from ..inversion import train_encoder
    from ..pipeline import LinkGANPipeline

    pipe = LinkGANPipeline.load(args.ckpt, device=args.device)
    real = None
    if args.data:
        from ..data import ImageDataset

        real = ImageDataset(args.data, resolution=pipe.resolution)
    G = pipe.G
    enc = train_encoder(G, space=args.space, kimg=args.kimg, batch=args.batch, lr=args.lr, real=real,
                        seed=args.seed, progress=not args.no_progress)
    out = args.out or str(Path(pipe.source).parent / "encoder.safetensors")
    print(enc.save(out, {"checkpoint": str(pipe.source), "kimg": args.kimg, "data": args.data}))
    return 0


def add_image_commands(sub, fmt) -> None:
    """linkgan generate, edit, invert and encoder."""
    g = sub.add_parser("generate", help="Write images of a trained model for given seeds.",
                       description="Sample the EMA generator of a checkpoint at the given seeds.",
                       formatter_class=fmt)
    g.add_argument("--ckpt", required=True, help="A run directory (its newest checkpoint) or a checkpoint file.")
    g.add_argument("--seeds", default="0-15", help="Seeds, e.g. '0-15' or '1,5,9'.")
    g.add_argument("--trunc", type=PSI, default=1.0, help="Truncation psi (1 = none, 0.7 = typical).")
    g.add_argument("--out", default="grid.png", help="A .png path for one grid, or a folder for one PNG per seed.")
    g.add_argument("--cols", type=COUNT, default=None, help="Grid columns (default: square-ish).")
    g.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N.")
    g.set_defaults(func=cmd_generate)

    e = sub.add_parser("edit", help="Edit one region: resample/perturb a link's axes, transplant, interpolate.",
                       description="Writes one row per seed: the original, N variants with the link's axes "
                                   "resampled, and a heat map of |change| with the region's outline. "
                                   "--transplant and --interpolate make the other kinds of edit.",
                       formatter_class=fmt)
    e.add_argument("--ckpt", help="A run directory or a checkpoint file (with --recipe: the recipe's by default).")
    e.add_argument("--link", help="Name of the link to edit (see `linkgan info`); 'shared' edits the shared axes "
                                  "of a model trained with --link-shared-axes.")
    e.add_argument("--seeds", default="0-3", help="Seeds of the images to edit.")
    e.add_argument("--n", type=_number_in(int, 1, 256), default=6, help="Variants per image.")
    e.add_argument("--mode", default="resample", choices=["resample", "perturb"],
                   help="resample: the link's axes from a new w = mapping(z'); perturb: add STRENGTH * N(0, I).")
    e.add_argument("--strength", type=_number_in(float, 0.0, 100.0), default=1.0, help="Perturbation strength (--mode perturb).")
    e.add_argument("--complement", action="store_true", help="Edit every axis except the link's (the region "
                                                             "should hold still).")
    e.add_argument("--edit-seed", type=SEED, default=0, help="Seed of the random edits (same seed, same edits).")
    e.add_argument("--transplant", type=SEED, metavar="SEED_B", help="Copy the link's axes from image SEED_B.")
    e.add_argument("--interpolate", action="store_true", help="Write a looping GIF that interpolates the link's "
                                                              "axes towards --target-seed.")
    e.add_argument("--target-seed", type=SEED, help="Interpolation target (default: first seed + 1).")
    e.add_argument("--frames", type=_number_in(int, 2, 10000), default=30, help="GIF frames.")
    e.add_argument("--fps", type=_number_in(int, 1, 100), default=15, help="GIF frames per second.")
    e.add_argument("--trunc", type=PSI, default=1.0, help="Truncation psi of images and resampled axes.")
    e.add_argument("--links", help="Use the links of this YAML file instead of the model's (e.g. for a vanilla "
                                   "model).")
    e.add_argument("--segmenter", help="Segmenter for semantic links (a file or package.module:attr); overrides the one "
                                         "saved with the model.")
    e.add_argument("--latent", help="Edit an inverted real image (the latent.safetensors that `linkgan invert` "
                                    "wrote) instead of --seeds.")
    e.add_argument("--out", default="edit.png", help="Output PNG (or GIF with --interpolate).")
    e.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N.")
    e.add_argument("--recipe", metavar="JSON", help="Replay a recipe from the web editor (`linkgan serve`): its "
                   "image and every edit in order; writes the exact image as a PNG at the model's resolution.")
    e.set_defaults(func=cmd_edit)

    inv = sub.add_parser("invert", help="Invert real images into a model (GAN inversion), for editing them.",
                         description="For each image: Adam on the latent from w_avg (or from an encoder's guess) "
                                     "in W or W+, with the noise maps, minimizing pixel MSE plus a perceptual "
                                     "distance on the FID Inception network's features (metrics extra; else a "
                                     "multi-scale pixel + SSIM loss, as the output says). Writes DIR/NAME/"
                                     "latent.safetensors (edit it with `linkgan edit --latent`), reconstruction.png, "
                                     "side_by_side.png and metrics.json (PSNR, SSIM, perceptual distance).",
                         formatter_class=fmt)
    inv.add_argument("--ckpt", required=True, help="A run directory or a checkpoint file.")
    inv.add_argument("--images", required=True, help="An image file or a folder of images (any size; grey and "
                                                      "RGBA are converted).")
    inv.add_argument("--out", required=True, help="Output folder.")
    inv.add_argument("--space", default="w+", choices=["w", "w+"], help="W: one w for all layers; W+: one per "
                                                                        "layer (closer reconstructions).")
    inv.add_argument("--steps", type=STEPS, default=200, help="Projector steps (0: the encoder's guess alone).")
    inv.add_argument("--encoder", default="auto", help="Encoder file for the starting point; 'auto' uses "
                                                       "encoder.safetensors beside the checkpoint if present, "
                                                       "'none' starts from w_avg.")
    inv.add_argument("--pti", action="store_true", help="Pivotal tuning: then fine-tune a copy of the synthesis "
                                                        "network around the latent (stored in the latent file), "
                                                        "and report whether the links stay local.")
    inv.add_argument("--pti-steps", type=STEPS, default=100, help="Pivotal tuning steps.")
    inv.add_argument("--align", default="center", choices=["center", "none"],
                     help="center: crop the centred square; none: resize the whole image.")
    inv.add_argument("--perceptual", default="auto", choices=["auto", "inception", "ssim"],
                     help="Perceptual term: Inception features (auto, when installed) or pixel + SSIM.")
    inv.add_argument("--no-noise", action="store_true", help="Keep the model's constant noise maps instead of "
                                                            "optimizing them (edits stay closer to the model).")
    inv.add_argument("--wplus-weight", type=_number_in(float, 0.0), default=10.0,
                     help="W+ only: penalty on the layers' ws straying from their mean, which keeps edits of the "
                          "inverted image local. 0 is StyleGAN2's free W+ (about 2 dB better reconstructions, "
                          "but edits of the links leak outside their regions).")
    inv.add_argument("--seed", type=SEED, default=0, help="Seed of the projector's latent jitter.")
    inv.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N.")
    inv.add_argument("--no-progress", action="store_true", help="Hide the progress bars.")
    inv.set_defaults(func=cmd_invert)

    en = sub.add_parser("encoder", help="Train an encoder that predicts a model's latent from an image.")
    ensub = en.add_subparsers(dest="encoder_command", required=True, metavar="ACTION")
    et = ensub.add_parser("train", help="Train on the generator's own samples (and real images with --data).",
                          description="Trains a convolutional encoder image -> W or W+ on the model's samples "
                                      "(latent MSE plus pixel MSE of the regenerated image) and, with --data, "
                                      "on real images (reconstruction only). `linkgan invert` uses it as the "
                                      "projector's start, or alone with --steps 0.", formatter_class=fmt)
    et.add_argument("--ckpt", required=True, help="A run directory or a checkpoint file.")
    et.add_argument("--out", help="Encoder file (default: encoder.safetensors beside the checkpoint, which "
                                  "`linkgan invert` then finds by itself).")
    et.add_argument("--space", default="w+", choices=["w", "w+"], help="Latent space to predict.")
    et.add_argument("--kimg", type=_number_in(float, 0.0, low_ok=False), default=20.0, help="Thousands of training images.")
    et.add_argument("--batch", type=COUNT, default=32, help="Batch size.")
    et.add_argument("--lr", type=_number_in(float, 0.0, low_ok=False), default=1e-3, help="Adam learning rate.")
    et.add_argument("--data", help="Real images (an archive or folder) to train on as well.")
    et.add_argument("--seed", type=SEED, default=0, help="Random seed.")
    et.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N.")
    et.add_argument("--no-progress", action="store_true", help="Hide the progress bar.")
    et.set_defaults(func=cmd_encoder)

"""``LinkGANPipeline``: the one obvious entry point for using a trained model.

    from linkgan import LinkGANPipeline
    pipe = LinkGANPipeline.load("runs/NAME")     # a run directory or a checkpoint file
    images = pipe.generate(seeds=[0, 1, 2])      # list of PIL images
"""

from __future__ import annotations

import re
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch

from .checkpoint import load_checkpoint, load_module
from .config import RunConfig
from .device import select_device
from .errors import InputError
from .images import float_to_uint8, make_grid, save_png, to_pil
from .networks import MAX_SEED, Generator, z_from_seeds
from .networks.build import build_generator
from .views import DEFAULT_YAWS, depth_to_image, region_masks_for_view, render_views

MAX_SEEDS = 100_000  # per call: more would hold every image in memory; split the range instead


def parse_seeds(spec) -> list[int]:
    """'0-3,7,10-11' -> [0, 1, 2, 3, 7, 10, 11]; an int or any iterable of ints passes through.
    Seeds are from 0 to 2**32 - 1, at most MAX_SEEDS of them."""
    if isinstance(spec, int):
        spec = [spec]
    if not isinstance(spec, str):
        seeds = [int(s) for s in spec]
    else:
        seeds = []
        for part in str(spec).replace(" ", "").split(","):
            m = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
            if not m or (m.group(2) is not None and int(m.group(2)) < int(m.group(1))):
                raise InputError(f"cannot read seeds {spec!r}: use non-negative integers and ranges like '0-15' or '1,5,9'")
            lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
            if hi > MAX_SEED or len(seeds) + hi - lo + 1 > MAX_SEEDS:
                raise InputError(f"seeds {spec!r}: at most {MAX_SEEDS} seeds per call, each from 0 to {MAX_SEED}; "
                                 "split a longer range over several calls")
            seeds.extend(range(lo, hi + 1))
    if not seeds or min(seeds) < 0 or max(seeds) > MAX_SEED or len(seeds) > MAX_SEEDS:
        raise InputError(f"seeds must be a non-empty list of at most {MAX_SEEDS} integers from 0 to {MAX_SEED}, "
                         f"got {str(spec)[:80]!r}")
    return seeds


class LinkGANPipeline:
    """A trained generator (the EMA weights) with its config, ready to sample and edit."""

    def __init__(self, G: Generator, config: RunConfig, device: torch.device, source: Path | None = None):
        self.G = G.eval().requires_grad_(False)
        self.config = config
        self.device = device
        self.source = source
        self.links = config.partition()  # LatentPartition: the model's links by name
        # (seed, truncation) -> (ws, image) of the seeds edited most recently: an editor edits
        # one image many times, and then each edit renders only its variants.
        self._originals: OrderedDict = OrderedDict()

    def use_links(self, links_file: str | Path, segmenter: str | None = None) -> "LinkGANPipeline":
        """Replaces the links with those of a links YAML file (e.g. to measure a vanilla model on
        the same partition as a LinkGAN model); ``segmenter`` serves semantic links that name
        none, and is trusted (trust_segmenter) as your own choice. Returns self."""
        from .partition import load_links_file
        from .segment import trust_segmenter

        if segmenter is not None:
            trust_segmenter(segmenter)

        self.links = load_links_file(links_file, self.G.w_dim, self.G.resolution, segmenter=segmenter)
        return self

    def use_segmenter(self, segmenter: str) -> "LinkGANPipeline":
        """Makes every semantic link use ``segmenter`` (a path or ``module:attr``), e.g. when the
        checkpoint was moved away from the segmenter file it was trained with. ``segmenter`` is
        trusted (trust_segmenter) as your own choice, even if it is code. Returns self."""
        from .partition import LatentPartition
        from .segment import trust_segmenter

        trust_segmenter(segmenter)

        specs = self.links.to_specs()
        for spec in specs:
            if "semantic" in spec["region"]:
                spec["region"]["segmenter"] = segmenter
        self.links = LatentPartition.from_specs(specs, self.G.w_dim, self.G.resolution,
                                                allow_overlap=self.links.allow_overlap, shared=self.links.shared)
        return self

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device | None = "auto") -> "LinkGANPipeline":
        """Loads G_ema from a checkpoint file or a run directory's newest checkpoint."""
        ckpt = load_checkpoint(path)
        config = RunConfig.from_dict(ckpt.config, str(ckpt.path))
        device = select_device(device)
        G = build_generator(config.model)
        load_module(G, ckpt, "G_ema" if ckpt.has("G_ema") else "G")
        if config.model.kind == "3d" and cls is LinkGANPipeline:
            cls = TriplanePipeline  # renders from cameras; multi-view edits with depth
        return cls(G.to(device), config, device, ckpt.path)

    @property
    def resolution(self) -> int:
        return self.G.resolution

    def latents(self, seeds, truncation: float = 1.0) -> torch.Tensor:
        """The ws (N, num_ws, w_dim) of each seed, after truncation."""
        z = z_from_seeds(parse_seeds(seeds), self.G.z_dim, self.device)
        with torch.no_grad():
            return self.G.mapping(z, self.G.frontal_cameras(z.shape[0], self.device), truncation_psi=truncation)

    def synthesize(self, ws: torch.Tensor, noise_mode: str = "const", batch: int = 32, latent=None) -> torch.Tensor:
        """ws (N, num_ws, w_dim) -> images (N, 3, R, R) float in [-1, 1], on the CPU.

        latent: an Inversion whose noise maps (and pivotally tuned weights) render ws."""
        synthesis, noises = self._renderer(latent)
        out = []
        with torch.no_grad():
            for i in range(0, ws.shape[0], batch):
                out.append(synthesis(ws[i:i + batch].to(self.device), noise_mode=noise_mode, noises=noises).cpu())
        return torch.cat(out)

    def _renderer(self, latent):
        """(synthesis network, noise maps) for rendering: an Inversion's own, else G's constant ones."""
        from .inversion import Inversion

        if isinstance(latent, Inversion):
            latent.check_generator(self.G)
            noises = [n.to(self.device) for n in latent.noise] if latent.noise is not None else None
            return latent.synthesis(self.G), noises
        return self.G.synthesis, None

    def generate(self, seeds, truncation: float = 1.0, noise_mode: str = "const", output: str = "pil"):
        """Images for the given seeds ('0-15', [0, 1], or 3).

        output: 'pil' (list of PIL images), 'numpy' (uint8 (N,H,W,3)) or 'tensor' (float (N,3,H,W) in [-1,1]).
        Seeds map to z identically on every device, and noise is constant, so a seed always
        gives the same image.
        """
        imgs = self.synthesize(self.latents(seeds, truncation), noise_mode)
        if output == "tensor":
            return imgs
        if output == "numpy":
            return float_to_uint8(imgs).permute(0, 2, 3, 1).numpy()
        if output == "pil":
            return to_pil(imgs)
        raise InputError(f"output must be 'pil', 'numpy' or 'tensor', not {output!r}")

    def save_images(self, seeds, out: str | Path, truncation: float = 1.0, ncols: int | None = None,
                    upscale: int = 1) -> list[Path]:
        """Writes a grid PNG (``out`` ends in .png) or one PNG per seed (``out`` is a folder).

        ``upscale`` enlarges the grid by pixel repetition, for looking at small models."""
        seeds = parse_seeds(seeds)
        arr = self.generate(seeds, truncation, output="numpy")
        out = Path(out)
        if out.suffix.lower() == ".png":
            return [save_png(make_grid(arr, ncols), out, upscale=upscale)]
        out.mkdir(parents=True, exist_ok=True)
        return [save_png(a, out / f"seed{s:04d}.png") for s, a in zip(seeds, arr)]

    # -- editing -----------------------------------------------------------------------------
    def to_ws(self, seed_or_latent, truncation: float = 1.0) -> torch.Tensor:
        """The ws (1, L, D) of one image: a seed (int) is mapped; an Inversion (checked to belong to
        this model) or a latent tensor (L, D), (1, L, D) or (D,) passes through."""
        from .inversion import Inversion

        if isinstance(seed_or_latent, Inversion):
            seed_or_latent.check_generator(self.G)
            return seed_or_latent.ws.to(self.device, torch.float32)
        if torch.is_tensor(seed_or_latent):
            ws = seed_or_latent.to(self.device, torch.float32)
            if ws.ndim == 1:
                ws = ws[None].repeat(self.G.num_ws, 1)
            return ws.reshape(1, self.G.num_ws, self.G.w_dim)
        return self.latents([int(seed_or_latent)], truncation)

    def edit(self, seed=None, link: str = "", n: int = 6, mode: str = "resample", strength: float = 1.0,
             truncation: float = 1.0, complement: bool = False, edit_seed: int = 0, latent=None,
             output: str = "pil"):
        """The image of ``seed`` (or of ``latent``: a ws tensor or an Inversion from ``invert``) and n
        variants with ``link``'s axes resampled (or perturbed by ``strength``; or, with
        ``complement``, every other axis).

        Returns (original, [variants]) as PIL images (output='pil') or tensors in [-1, 1].
        """
        from .editing import edit_latents

        if seed is None and latent is None:
            raise InputError("give the image to edit: seed=N or latent=ws")
        if latent is not None:
            ws = self.to_ws(latent, truncation)
            original = None
        else:
            ws, original = self._original(int(seed), truncation)
        variants = edit_latents(self.G, self.links, ws, link, n, mode, strength, truncation, complement,
                                edit_seed)[0]
        if original is None:
            imgs = self.synthesize(torch.cat([ws, variants]), latent=latent)
        else:
            imgs = torch.cat([original, self.synthesize(variants)])
        if output == "tensor":
            return imgs[0], imgs[1:]
        pil = to_pil(imgs)
        return pil[0], pil[1:]

    CACHED_ORIGINALS = 64

    def _original(self, seed: int, truncation: float) -> tuple[torch.Tensor, torch.Tensor]:
        """The ws (1, L, D) and image (1, 3, R, R) of a seed, cached for the latest 64 seeds."""
        key = (seed, float(truncation))
        if key in self._originals:
            self._originals.move_to_end(key)
            return self._originals[key]
        ws = self.latents([seed], truncation)
        entry = (ws, self.synthesize(ws))
        self._originals[key] = entry
        if len(self._originals) > self.CACHED_ORIGINALS:
            self._originals.popitem(last=False)
        return entry

    def save_edit_grid(self, seeds, link: str, out: str | Path, n: int = 6, mode: str = "resample",
                       strength: float = 1.0, truncation: float = 1.0, complement: bool = False,
                       edit_seed: int = 0, latent=None) -> Path:
        """Writes rows of [original, n edited variants, |change| heat map with the region outline];
        one row per seed, or one row for ``latent`` (an Inversion or a ws tensor) when given."""
        from .editing import display_upscale, edit_grid, edit_latents, region_outline

        ws = self.to_ws(latent, truncation) if latent is not None else self.latents(seeds, truncation)
        variants = edit_latents(self.G, self.links, ws, link, n, mode, strength, truncation, complement, edit_seed)
        originals = self.synthesize(ws, latent=latent)
        imgs = self.synthesize(variants.flatten(0, 1), latent=latent).reshape(len(ws), n, *originals.shape[1:])
        grid = edit_grid(originals, imgs, region_outline(self.links, link, self.resolution, originals))
        return save_png(grid, out, upscale=display_upscale(self.resolution))

    # -- inversion ---------------------------------------------------------------------------
    def encoder_path(self) -> Path | None:
        """``encoder.safetensors`` beside the checkpoint (or in the run directory), if there is one."""
        if self.source is None:
            return None
        candidate = Path(self.source).parent / "encoder.safetensors"
        return candidate if candidate.is_file() else None

    def invert(self, image, space: str = "w+", steps: int | None = None, encoder="auto", seed: int = 0,
               progress=None, pti: bool = False, pti_steps: int = 100, perceptual: str = "auto",
               align: str = "center", noise: bool = True, wplus_weight: float = 10.0):
        """Inverts a real image into this model; ``edit(latent=...)`` then edits it like a seed.

        image: a path, PIL image or uint8 array of any size, grey or RGBA; it is center-cropped
        (``align='center'``) or squashed (``'none'``) to the model's resolution. encoder: 'auto'
        (``encoder.safetensors`` beside the checkpoint, if any), a path, a LatentEncoder, or None.
        steps: projector steps (default 200; 0 returns the encoder's guess). pti: pivotal tuning
        of a copy of the synthesis network afterwards. progress: callable(step, total, loss).
        Returns a linkgan.inversion.Inversion. Non-images raise linkgan.data.images.ImageLoadError.
        """
        from .data.images import load_image
        from .inversion import LatentEncoder, ReconstructionLoss, pivotal_tuning, project

        target = load_image(image, self.resolution, align).to(self.device)
        if encoder == "auto":
            encoder = self.encoder_path()
        if encoder is not None and not isinstance(encoder, LatentEncoder):
            encoder = LatentEncoder.load(encoder, self.device)
        steps = 200 if steps is None else int(steps)
        if steps == 0 and encoder is None:
            raise InputError("steps=0 needs an encoder (train one with `linkgan encoder train`)")
        init = None
        if encoder is not None:
            encoder.check_generator(self.G)
            with torch.no_grad():
                init = encoder(target)
        loss = ReconstructionLoss(perceptual, device=self.device)
        inv = project(self.G, target, space=space, steps=steps, init_ws=init, noise=noise, loss=loss, seed=seed,
                      wplus_weight=wplus_weight, progress=progress)
        inv.info.update(encoder=getattr(encoder, "source", "given") if encoder is not None else None,
                        checkpoint=str(self.source), align=align)
        if pti:
            inv = pivotal_tuning(self.G, inv, steps=pti_steps, loss=loss, progress=progress)
        return inv

    def transplant(self, a, b, link: str, truncation: float = 1.0, output: str = "pil"):
        """Image a with link's region taken from image b (seeds or latents)."""
        from .editing import transplant_latents

        ws = transplant_latents(self.links, self.to_ws(a, truncation), self.to_ws(b, truncation), link)
        img = self.synthesize(ws, latent=a)
        return img[0] if output == "tensor" else to_pil(img)[0]

    def interpolate(self, seed, link: str, target_seed: int | None = None, frames: int = 30,
                    truncation: float = 1.0, output: str = "pil"):
        """Frames in which the link's axes go from seed's value to target_seed's and back."""
        from .editing import interpolation_latents

        if target_seed is None:
            if not isinstance(seed, int):
                raise InputError("interpolating from a latent needs target_seed (a seed or a latent)")
            target_seed = int(seed) + 1
        target = self.to_ws(target_seed, truncation)
        imgs = self.synthesize(interpolation_latents(self.links, self.to_ws(seed, truncation), target, link, frames),
                               latent=seed)
        return imgs if output == "tensor" else to_pil(imgs)

    def save_transplant_grid(self, seeds, donor: int, link: str, out: str | Path, truncation: float = 1.0,
                             latent=None) -> Path:
        """Writes rows of [image A, A with donor seed B's ``link`` region, image B]: one row per seed,
        or one row for ``latent`` (an Inversion or a ws tensor) when given."""
        from .editing import display_upscale, transplant_latents

        ws = self.to_ws(latent, truncation) if latent is not None else self.latents(seeds, truncation)
        b_ws = self.latents([int(donor)], truncation)
        moved = transplant_latents(self.links, ws, b_ws.expand_as(ws), link)
        n = ws.shape[0]
        imgs = torch.cat([self.synthesize(torch.cat([ws, moved]), latent=latent), self.synthesize(b_ws)])
        rows = torch.stack([imgs[:n], imgs[n:2 * n], imgs[2 * n:].expand(n, -1, -1, -1)], dim=1).flatten(0, 1)
        return save_png(make_grid(rows, ncols=3, pad=1), out, upscale=display_upscale(self.resolution))

    def save_interpolation(self, seed, link: str, out: str | Path, target_seed: int | None = None, frames: int = 30,
                           fps: int = 15, truncation: float = 1.0) -> Path:
        """Writes the frames of ``interpolate`` as an animated GIF (``seed`` may be a latent)."""
        from .editing import display_upscale, save_gif

        imgs = self.interpolate(seed, link, target_seed, frames, truncation, output="tensor")
        return save_gif(imgs, out, fps=fps, upscale=display_upscale(self.resolution))

    def __repr__(self) -> str:
        m = self.config.model
        return (f"LinkGANPipeline(res={m.resolution}, w_dim={m.w_dim}, device={self.device}, "
                f"source={self.source})")


# ------------------------------------------------------------------------------ 3D
class TriplanePipeline(LinkGANPipeline):
    """LinkGANPipeline for a 3D checkpoint: seeds are mapped with the frontal camera; ``synthesize``,
    ``generate`` and ``edit`` render from the frontal view (or ``view_yaw``), and ``render_views``
    and ``save_edit_grid`` from several yaws, with depth."""

    view_yaw = 0.0  # degrees: the camera of synthesize (and so of generate, edit and transplant)

    def synthesize(self, ws: torch.Tensor, noise_mode: str = "const", batch: int = 32, latent=None) -> torch.Tensor:
        if latent is not None and not isinstance(latent, (int, torch.Tensor)):  # an Inversion
            raise NotImplementedError("inverted real images are not supported for 3D models yet")
        cam = self.G.view_cameras((self.view_yaw,), device=self.device)
        return render_views(self.G, ws, cam, batch, noise_mode)["image"][:, 0]

    def render_views(self, ws: torch.Tensor, yaws=DEFAULT_YAWS, pitch: float = 0.0) -> dict:
        """Every ws rendered from every yaw: image (N, V, 3, R, R), depth and opacity (N, V, 1, r, r)."""
        return render_views(self.G, ws, self.G.view_cameras(yaws, pitch, self.device))

    def edit(self, seed=None, link: str = "", n: int = 6, mode: str = "resample", strength: float = 1.0,
             truncation: float = 1.0, complement: bool = False, edit_seed: int = 0, latent=None,
             output: str = "pil"):
        from .editing import edit_latents
        from .images import to_pil

        if seed is None and latent is None:
            raise InputError("give the image to edit: seed=N or latent=ws")
        ws = self.to_ws(latent, truncation) if latent is not None else self.latents([int(seed)], truncation)
        variants = edit_latents(self.G, self.links, ws, link, n, mode, strength, truncation, complement,
                                edit_seed)[0]
        imgs = self.synthesize(torch.cat([ws, variants]))
        if output == "tensor":
            return imgs[0], imgs[1:]
        pil = to_pil(imgs)
        return pil[0], pil[1:]

    def save_edit_grid(self, seeds, link: str, out, n: int = 6, mode: str = "resample", strength: float = 1.0,
                       truncation: float = 1.0, complement: bool = False, edit_seed: int = 0, latent=None,
                       yaws=DEFAULT_YAWS) -> Path:
        """For each seed and each yaw, two rows: RGB [original, n variants, |change| map with the region's
        outline] and depth [the same, grey: near is white], so that changes of geometry show."""
        from .editing import change_heatmap, display_upscale, edit_latents
        from .images import float_to_uint8, make_grid, save_png
        from .regions import draw_outline

        ws = self.to_ws(latent, truncation) if latent is not None else self.latents(seeds, truncation)
        variants = edit_latents(self.G, self.links, ws, link, n, mode, strength, truncation, complement,
                                edit_seed)
        cams = self.G.view_cameras(yaws, device=self.device)
        b = ws.shape[0]
        rendered = self.render_views(torch.cat([ws, variants.flatten(0, 1)]), yaws)
        R, cfg = self.resolution, self.G.config
        cells = []

        def to_u8(t):
            return float_to_uint8(t).permute(0, 2, 3, 1).numpy()

        for i in range(b):
            idx = [i] + [b + i * n + j for j in range(n)]
            for v in range(len(yaws)):
                rgb = rendered["image"][idx, v]
                depth = depth_to_image(rendered["depth"][idx, v], rendered["opacity"][idx, v], cfg.near, cfg.far, R)
                outline = (None if self.links.names_shared(link)  # no region of their own
                           else draw_outline(region_masks_for_view(self.links, link, cams[v], R)))
                cells += list(to_u8(rgb)) + [change_heatmap(rgb[0], rgb[1:], outline)]
                cells += list(to_u8(depth)) + [change_heatmap(depth[0], depth[1:], outline)]
        grid = make_grid(np.stack(cells), ncols=n + 2, pad=1)
        return save_png(grid, out, upscale=display_upscale(R))

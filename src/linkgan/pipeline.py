"""``LinkGANPipeline``: the one obvious entry point for using a trained model.

    from linkgan import LinkGANPipeline
    pipe = LinkGANPipeline.load("runs/NAME")     # a run directory or a checkpoint file
    images = pipe.generate(seeds=[0, 1, 2])      # list of PIL images
"""

from __future__ import annotations

import re
from collections import OrderedDict
from pathlib import Path

import torch

from .checkpoint import load_checkpoint, load_module
from .config import RunConfig
from .device import select_device
from .images import float_to_uint8, make_grid, save_png, to_pil
from .networks import Generator, z_from_seeds
from .training import build_generator


def parse_seeds(spec) -> list[int]:
    """'0-3,7,10-11' -> [0, 1, 2, 3, 7, 10, 11]; an int or any iterable of ints passes through. Seeds are >= 0."""
    if isinstance(spec, int):
        spec = [spec]
    if not isinstance(spec, str):
        seeds = [int(s) for s in spec]
    else:
        seeds = []
        for part in str(spec).replace(" ", "").split(","):
            m = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
            if not m or (m.group(2) is not None and int(m.group(2)) < int(m.group(1))):
                raise ValueError(f"cannot read seeds {spec!r}: use non-negative integers and ranges like '0-15' or '1,5,9'")
            lo = int(m.group(1))
            seeds.extend(range(lo, int(m.group(2) or lo) + 1))
    if not seeds or min(seeds) < 0:
        raise ValueError(f"seeds must be a non-empty list of non-negative integers, got {spec!r}")
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
        none. Returns self."""
        from .partition import load_links_file

        self.links = load_links_file(links_file, self.G.w_dim, self.G.resolution, segmenter=segmenter)
        return self

    def use_segmenter(self, segmenter: str) -> "LinkGANPipeline":
        """Makes every semantic link use ``segmenter`` (a path or ``module:attr``), e.g. when the
        checkpoint was moved away from the segmenter file it was trained with. Returns self."""
        from .partition import LatentPartition

        specs = self.links.to_specs()
        for spec in specs:
            if "semantic" in spec["region"]:
                spec["region"]["segmenter"] = segmenter
        self.links = LatentPartition.from_specs(specs, self.G.w_dim, self.G.resolution,
                                                allow_overlap=self.links.allow_overlap)
        return self

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device | None = "auto") -> "LinkGANPipeline":
        """Loads G_ema from a checkpoint file or a run directory's newest checkpoint."""
        ckpt = load_checkpoint(path)
        config = RunConfig.from_dict(ckpt.config, str(ckpt.path))
        device = select_device(device)
        G = build_generator(config.model)
        load_module(G, ckpt, "G_ema" if ckpt.has("G_ema") else "G")
        return cls(G.to(device), config, device, ckpt.path)

    @property
    def resolution(self) -> int:
        return self.G.resolution

    def latents(self, seeds, truncation: float = 1.0) -> torch.Tensor:
        """The ws (N, num_ws, w_dim) of each seed, after truncation."""
        z = z_from_seeds(parse_seeds(seeds), self.G.z_dim, self.device)
        with torch.no_grad():
            return self.G.mapping(z, truncation_psi=truncation)

    def synthesize(self, ws: torch.Tensor, noise_mode: str = "const", batch: int = 32) -> torch.Tensor:
        """ws (N, num_ws, w_dim) -> images (N, 3, R, R) float in [-1, 1], on the CPU."""
        out = []
        with torch.no_grad():
            for i in range(0, ws.shape[0], batch):
                out.append(self.G.synthesis(ws[i:i + batch].to(self.device), noise_mode=noise_mode).cpu())
        return torch.cat(out)

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
        raise ValueError(f"output must be 'pil', 'numpy' or 'tensor', not {output!r}")

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
    def _ws(self, seed_or_latent, truncation: float) -> torch.Tensor:
        """A seed (int) -> its ws (1, L, D); a latent tensor (L, D) or (1, L, D) or (D,) passes through."""
        if torch.is_tensor(seed_or_latent):
            ws = seed_or_latent.to(self.device, torch.float32)
            if ws.ndim == 1:
                ws = ws[None].repeat(self.G.num_ws, 1)
            return ws.reshape(1, self.G.num_ws, self.G.w_dim)
        return self.latents([int(seed_or_latent)], truncation)

    def edit(self, seed=None, link: str = "", n: int = 6, mode: str = "resample", strength: float = 1.0,
             truncation: float = 1.0, complement: bool = False, edit_seed: int = 0, latent=None,
             output: str = "pil"):
        """The image of ``seed`` (or of ``latent``) and n variants with ``link``'s axes resampled
        (or perturbed by ``strength``; or, with ``complement``, every other axis).

        Returns (original, [variants]) as PIL images (output='pil') or tensors in [-1, 1].
        """
        from .editing import edit_latents

        if seed is None and latent is None:
            raise ValueError("give the image to edit: seed=N or latent=ws")
        if latent is not None:
            ws = self._ws(latent, truncation)
            original = None
        else:
            ws, original = self._original(int(seed), truncation)
        variants = edit_latents(self.G, self.links, ws, link, n, mode, strength, truncation, complement,
                                edit_seed)[0]
        if original is None:
            imgs = self.synthesize(torch.cat([ws, variants]))
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
                       edit_seed: int = 0) -> Path:
        """Writes rows of [original, n edited variants, |change| heat map with the region outline]."""
        from .editing import display_upscale, edit_grid, edit_latents, region_outline

        ws = self.latents(seeds, truncation)
        variants = edit_latents(self.G, self.links, ws, link, n, mode, strength, truncation, complement, edit_seed)
        originals = self.synthesize(ws)
        imgs = self.synthesize(variants.flatten(0, 1)).reshape(len(ws), n, *originals.shape[1:])
        grid = edit_grid(originals, imgs, region_outline(self.links, link, self.resolution, originals))
        return save_png(grid, out, upscale=display_upscale(self.resolution))

    def transplant(self, a, b, link: str, truncation: float = 1.0, output: str = "pil"):
        """Image a with link's region taken from image b (seeds or latents)."""
        from .editing import transplant_latents

        ws = transplant_latents(self.links, self._ws(a, truncation), self._ws(b, truncation), link)
        img = self.synthesize(ws)
        return img[0] if output == "tensor" else to_pil(img)[0]

    def interpolate(self, seed, link: str, target_seed: int | None = None, frames: int = 30,
                    truncation: float = 1.0, output: str = "pil"):
        """Frames in which the link's axes go from seed's value to target_seed's and back."""
        from .editing import interpolation_latents

        if target_seed is None:
            if torch.is_tensor(seed):
                raise ValueError("interpolating from a latent needs target_seed (a seed or a latent)")
            target_seed = int(seed) + 1
        target = self._ws(target_seed, truncation)
        imgs = self.synthesize(interpolation_latents(self.links, self._ws(seed, truncation), target, link, frames))
        return imgs if output == "tensor" else to_pil(imgs)

    def __repr__(self) -> str:
        m = self.config.model
        return (f"LinkGANPipeline(res={m.resolution}, w_dim={m.w_dim}, device={self.device}, "
                f"source={self.source})")


"""The web editor's logic, without a browser: edit state, undo history, recipes, uploads, rendering.

``Editor`` wraps one LinkGANPipeline shared by every visitor; each visitor's own state is an
``EditHistory`` (what the page keeps per session). Every action returns a new history or
raises ``EditorError`` with a message for the page. The gradio layout (``linkgan.webapp.app``)
only wires buttons to these methods.

What an edit is, and how it replays, lives in linkgan.recipe: the editor's image is always
``render_recipe`` of its recipe, so the downloaded recipe reproduces it exactly.
"""

from __future__ import annotations

import atexit
import hashlib
import inspect
import os
import random
import shutil
import tempfile
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont, ImageOps

from ..errors import InputError
from ..images import to_pil
from ..recipe import LatentImage, edited_latents, make_recipe, recipe_json, render_latents

# Uploads: what the page accepts. A photo is shrunk to the model's resolution anyway.
MAX_UPLOAD_BYTES = 10 * 1024 * 1024
MAX_UPLOAD_PIXELS = 40_000_000       # a 40-megapixel photo; a decompression bomb claims far more
GALLERY_SEEDS = tuple(range(12))
DISPLAY_SIZE = 384                   # the edited image is shown at about this many pixels
# Outline colours per link, in order (RGB), chosen to stand out on skin and background.
LINK_COLOURS = ((0, 220, 255), (255, 64, 160), (255, 200, 0), (80, 255, 80), (170, 120, 255), (255, 120, 40))


class EditorError(InputError):
    """A user's action that cannot be done; the message is shown in the page."""


@dataclass(frozen=True)
class EditState:
    """One image of the editor: where it starts (a seed or a LatentImage) and its edits, in order."""

    image: int | LatentImage = 0
    edits: tuple[dict, ...] = ()

    def describe(self) -> str:
        start = (f"seed {self.image}" if not isinstance(self.image, LatentImage)
                 else f"photo {self.image.source or '(uploaded)'}")
        return start + (f", {len(self.edits)} edit{'s' if len(self.edits) != 1 else ''}" if self.edits else "")


@dataclass
class EditHistory:
    """A visitor's session: the current state, the undo and redo stacks, and the random draws made."""

    current: EditState = field(default_factory=EditState)
    undo_stack: list[EditState] = field(default_factory=list)
    redo_stack: list[EditState] = field(default_factory=list)
    draws: int = 0
    # Consecutive moves of one slider on the same edit merge into one undo step.
    last_action: tuple | None = None

    def push(self, state: EditState, action: tuple | None = None) -> EditHistory:
        merge = action is not None and action == self.last_action
        undo = self.undo_stack if merge else self.undo_stack + [self.current]
        return EditHistory(state, undo[-Editor.MAX_UNDO:], [], self.draws, action)


@dataclass
class Rendered:
    """What the page shows: ``image`` (1, 3, R, R) in [-1, 1], the PNG-ready ``pil`` at the model's
    resolution, and ``display``, enlarged with each link's outline and name."""

    image: torch.Tensor
    pil: Image.Image
    display: Image.Image


class Editor:
    """The editor for one model: ``pipe`` a LinkGANPipeline, ``checkpoint`` how recipes name it."""

    MAX_UNDO = 100

    def __init__(self, pipe, checkpoint: str = "", truncation: float = 1.0, gallery_seeds=GALLERY_SEEDS,
                 invert_steps: int | None = 100, max_upload_bytes: int = MAX_UPLOAD_BYTES,
                 max_upload_pixels: int = MAX_UPLOAD_PIXELS, display_size: int = DISPLAY_SIZE,
                 out_dir: str | Path | None = None):
        self.pipe = pipe
        self.checkpoint = str(checkpoint)
        self.truncation = float(truncation)
        self.gallery_seeds = [int(s) for s in gallery_seeds]
        self.invert_steps = invert_steps
        self.max_upload_bytes = int(max_upload_bytes)
        self.max_upload_pixels = int(max_upload_pixels)
        self.scale = max(1, round(display_size / pipe.resolution))
        if out_dir is None:
            out_dir = tempfile.mkdtemp(prefix="linkgan-web-")
            atexit.register(shutil.rmtree, out_dir, True)
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)

    # -- model facts ----------------------------------------------------------------------------
    @property
    def link_names(self) -> list[str]:
        """What the editor can edit: the links, then 'shared' when the model has shared axes."""
        return self.pipe.links.edit_names

    def is_shared(self, name: str) -> bool:
        """Whether ``name`` stands for the model's shared axes (--link-shared-axes), which no region owns."""
        return self.pipe.links.names_shared(name)

    @property
    def can_invert(self) -> bool:
        return callable(getattr(self.pipe, "invert", None))

    def _link(self, link: str) -> str:
        if link not in self.link_names:
            raise EditorError(f"unknown link {link!r}; this model's links: {', '.join(self.link_names) or 'none'}")
        return link

    def _draw(self, history: EditHistory) -> tuple[EditHistory, int]:
        """A new edit seed: reproducible per image and per draw, different for every click."""
        image = history.current.image
        key = f"seed {image}" if not isinstance(image, LatentImage) else f"photo {image.source}"
        seed = random.Random(f"{key}:{history.draws}").randrange(2**31)
        return replace(history, draws=history.draws + 1), seed

    # -- actions ----------------------------------------------------------------------------------
    def start(self, seed: int = 0) -> EditHistory:
        return EditHistory(EditState(self._seed(seed)))

    @staticmethod
    def _seed(seed) -> int:
        try:
            value = float(seed)
        except (TypeError, ValueError):
            raise EditorError(f"a seed is a whole number from 0 to 2^31, not {seed!r}") from None
        if not value.is_integer() or not 0 <= value < 2**31:
            raise EditorError(f"a seed is a whole number from 0 to 2^31, not {seed!r}")
        return int(value)

    def pick_seed(self, history: EditHistory, seed) -> EditHistory:
        """Start over from the image of ``seed``."""
        return history.push(EditState(self._seed(seed)))

    def resample(self, history: EditHistory, link: str, edit_seed: int | None = None) -> EditHistory:
        """The link's axes get the value of a new random w' (a fresh look for its region only)."""
        self._link(link)
        if edit_seed is None:
            history, edit_seed = self._draw(history)
        edit = {"op": "resample", "link": link, "edit_seed": int(edit_seed), "mix": 1.0}
        return history.push(replace(history.current, edits=history.current.edits + (edit,)))

    def perturb(self, history: EditHistory, link: str, strength: float, edit_seed: int | None = None) -> EditHistory:
        """The link's axes move by ``strength`` times a new random direction."""
        self._link(link)
        if edit_seed is None:
            history, edit_seed = self._draw(history)
        edit = {"op": "perturb", "link": link, "edit_seed": int(edit_seed), "strength": float(strength), "mix": 1.0}
        return history.push(replace(history.current, edits=history.current.edits + (edit,)))

    def set_strength(self, history: EditHistory, link: str, strength: float) -> EditHistory:
        """Rescales the latest edit if it perturbs ``link``; otherwise perturbs it in a new direction."""
        self._link(link)
        edits = history.current.edits
        if edits and edits[-1]["link"] == link and edits[-1]["op"] == "perturb":
            last = dict(edits[-1], strength=float(strength))
            state = replace(history.current, edits=edits[:-1] + (last,))
            return history.push(state, ("strength", link, len(edits)))
        history = self.perturb(history, link, strength)
        return replace(history, last_action=("strength", link, len(history.current.edits)))

    def set_mix(self, history: EditHistory, link: str, mix: float) -> EditHistory:
        """Blends the latest edit of ``link`` between before (0) and after (1) it."""
        self._link(link)
        edits = history.current.edits
        if not edits or edits[-1]["link"] != link:
            raise EditorError(f"the {link} blend slider moves between the {link} before and after the latest "
                              f"edit of the {link}: resample or perturb the {link} first")
        last = dict(edits[-1], mix=float(np.clip(mix, 0.0, 1.0)))
        return history.push(replace(history.current, edits=edits[:-1] + (last,)), ("mix", link, len(edits)))

    def transplant(self, history: EditHistory, link: str, seed) -> EditHistory:
        """The link's region of the image of ``seed`` moves into the current image."""
        self._link(link)
        edit = {"op": "transplant", "link": link, "seed": self._seed(seed), "mix": 1.0}
        return history.push(replace(history.current, edits=history.current.edits + (edit,)))

    def undo(self, history: EditHistory) -> EditHistory:
        if not history.undo_stack:
            raise EditorError("nothing to undo")
        return EditHistory(history.undo_stack[-1], history.undo_stack[:-1],
                           history.redo_stack + [history.current], history.draws)

    def redo(self, history: EditHistory) -> EditHistory:
        if not history.redo_stack:
            raise EditorError("nothing to redo")
        return EditHistory(history.redo_stack[-1], history.undo_stack + [history.current],
                           history.redo_stack[:-1], history.draws)

    def revert(self, history: EditHistory) -> EditHistory:
        """Drops every edit (undoable)."""
        if not history.current.edits:
            raise EditorError("the image has no edits to revert")
        return history.push(replace(history.current, edits=()))

    # -- uploads ----------------------------------------------------------------------------------
    def check_upload(self, path: str | os.PathLike) -> Image.Image:
        """The uploaded file as an RGB PIL image, or EditorError saying why not (too large, not an
        image, a decompression bomb, damaged)."""
        path = Path(path)
        name = path.name
        try:
            size = path.stat().st_size
        except OSError:
            raise EditorError(f"the upload {name} could not be read; try again") from None
        if size > self.max_upload_bytes:
            raise EditorError(f"{name} is {size / 2**20:.1f} MB; the editor takes photos up to "
                              f"{self.max_upload_bytes / 2**20:.0f} MB")
        if size == 0:
            raise EditorError(f"{name} is empty; upload a PNG, JPEG or WebP photo")
        try:
            with warnings.catch_warnings():
                # PIL only warns between MAX_IMAGE_PIXELS and twice that; refuse those too.
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                with Image.open(path) as im:
                    w, h = im.size  # from the header: nothing is decoded yet
                    if w * h > self.max_upload_pixels:
                        raise EditorError(f"{name} claims {w}x{h} pixels ({w * h / 1e6:.0f} megapixels); the editor "
                                          f"takes images up to {self.max_upload_pixels / 1e6:.0f} megapixels, so "
                                          f"this looks like a decompression bomb or a huge scan: shrink it first")
                    im.load()
                    return _to_rgb(ImageOps.exif_transpose(im))  # phone photos: upright, as they are shown
        except EditorError:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise EditorError(f"{name} decompresses to too many pixels (a decompression bomb?); upload an "
                              f"ordinary photo") from None
        except Exception as e:  # PIL raises many kinds for damaged or foreign files
            from PIL import UnidentifiedImageError

            if isinstance(e, UnidentifiedImageError):
                raise EditorError(f"{name} is not an image; upload a PNG, JPEG or WebP photo") from None
            raise EditorError(f"{name} could not be read as an image ({type(e).__name__}: {e}); the file may be "
                              f"damaged") from None

    def invert_photo(self, history: EditHistory, path: str | os.PathLike, progress=None) -> EditHistory:
        """Inverts an uploaded photo (``progress(step, total)`` is called along the way) and makes
        it the image being edited."""
        photo = self.check_upload(path)
        if not self.can_invert:
            raise EditorError("this linkgan cannot invert photos yet (LinkGANPipeline.invert is missing)")
        try:
            from ..data.images import ImageLoadError
        except ImportError:  # an older linkgan: inversion reports bad images as ValueError
            ImageLoadError = ValueError
        options = {"space": "w+", "steps": self.invert_steps, "encoder": "auto", "seed": 0, "progress": progress,
                   # The model's own noise maps: a latent edits better without image detail in its noise.
                   "noise": False}
        accepted = inspect.signature(self.pipe.invert).parameters
        try:
            inv = self.pipe.invert(photo, **{k: v for k, v in options.items() if k in accepted})
        except ImageLoadError as e:
            raise EditorError(f"{Path(path).name}: {e}") from None
        # Recipes carry the latent and its noise maps; a pivotally tuned network is not used, so
        # that the recipe alone replays the image. gradio keeps an upload's own name as the file
        # name inside its cache folder.
        image = LatentImage.from_inversion(inv, source=Path(path).name)
        return history.push(EditState(image))

    # -- output ----------------------------------------------------------------------------------
    def recipe(self, history: EditHistory) -> dict:
        state = history.current
        return make_recipe(state.image, list(state.edits), self.truncation, self.checkpoint)

    def render(self, history: EditHistory, outlines: bool = True) -> Rendered:
        state = history.current
        ws = edited_latents(self.pipe, state.image, list(state.edits), self.truncation)
        image = render_latents(self.pipe, ws, state.image)
        pil = to_pil(image)[0]
        return Rendered(image, pil, self.annotate(image) if outlines else self._enlarge(pil))

    def _enlarge(self, pil: Image.Image) -> Image.Image:
        return pil.resize((pil.width * self.scale, pil.height * self.scale), Image.NEAREST)

    def region_masks(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        """Each link's region at display size, bool (S, S): the fixed shape drawn at that size, or
        a semantic link's mask of this very image, enlarged."""
        size = self.pipe.resolution * self.scale
        masks = {}
        for link in self.pipe.links:
            if link.region.is_fixed:
                masks[link.name] = link.region.mask(size)
            else:
                m = link.region.masks_for(image.to(self.pipe.device))[0].cpu()
                masks[link.name] = m.repeat_interleave(self.scale, 0).repeat_interleave(self.scale, 1)
        return masks

    def annotate(self, image: torch.Tensor) -> Image.Image:
        """The image enlarged, each link's region outlined in its colour and labelled with its name."""
        from ..regions import draw_outline

        base = np.array(self._enlarge(to_pil(image)[0]).convert("RGB"))
        labels = []
        for k, (name, mask) in enumerate(self.region_masks(image).items()):
            colour = LINK_COLOURS[k % len(LINK_COLOURS)]
            edge = draw_outline(mask)
            # Two pixels wide, so the outline reads on any background.
            edge = torch.nn.functional.max_pool2d(edge[None, None].float(), 3, 1, 1)[0, 0].bool() & mask
            base[edge.numpy()] = colour
            if bool(mask.any()):
                rows = torch.nonzero(mask.any(dim=1)).flatten()
                cols = torch.nonzero(mask.any(dim=0)).flatten()
                labels.append((name, colour, int(cols[0]), int(rows[0])))
        out = Image.fromarray(base)
        draw = ImageDraw.Draw(out)
        font = _label_font(max(11, self.scale * self.pipe.resolution // 28))
        for name, colour, x, y in labels:
            left, t, r, b = draw.textbbox((0, 0), name, font=font)
            ty = y - (b - t) - 6 if y - (b - t) - 6 >= 0 else y + 3
            draw.rectangle((x, ty, x + r - left + 6, ty + b - t + 4), fill=(0, 0, 0))
            draw.text((x + 3 - left, ty + 2 - t), name, fill=colour, font=font)
        return out

    def gallery(self) -> list[tuple[Image.Image, str]]:
        """(thumbnail, caption) of every gallery seed."""
        thumbs = []
        for seed in self.gallery_seeds:
            ws = edited_latents(self.pipe, seed, [], self.truncation)
            pil = to_pil(render_latents(self.pipe, ws))[0]
            up = max(1, 96 // pil.width)
            thumbs.append((pil.resize((pil.width * up, pil.height * up), Image.NEAREST), f"seed {seed}"))
        return thumbs

    def write_files(self, history: EditHistory, rendered: Rendered) -> tuple[Path, Path]:
        """The image (PNG at the model's resolution) and its recipe (JSON), named by content, for downloads."""
        state = history.current
        stem = (f"seed{state.image}" if not isinstance(state.image, LatentImage) else "photo") + \
            f"-{len(state.edits)}edits"
        text = recipe_json(self.recipe(history))
        digest = hashlib.sha1(text.encode()).hexdigest()[:12]
        folder = self.out_dir / digest
        folder.mkdir(exist_ok=True)
        png, js = folder / f"{stem}.png", folder / f"{stem}.recipe.json"
        if not png.exists():
            rendered.pil.save(png)
        if not js.exists():
            js.write_text(text + "\n")
        self._prune(keep=folder)
        return png, js

    KEEP_FILES = 256

    def _prune(self, keep: Path) -> None:
        """Deletes the oldest download folders beyond KEEP_FILES: gradio copies what it serves into
        its own cache, so a long-running server need not keep every image it ever showed."""
        folders = [f for f in self.out_dir.iterdir() if f.is_dir() and f != keep]
        if len(folders) < self.KEEP_FILES:
            return
        folders.sort(key=lambda f: f.stat().st_mtime)
        for f in folders[:len(folders) - self.KEEP_FILES + 1]:
            shutil.rmtree(f, ignore_errors=True)


def _to_rgb(im: Image.Image) -> Image.Image:
    """Any PIL image as RGB; transparency over white."""
    if im.mode in ("RGBA", "LA") or (im.mode == "P" and "transparency" in im.info):
        im = im.convert("RGBA")
        white = Image.new("RGBA", im.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, im).convert("RGB")
    return im.convert("RGB")


def _label_font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has one fixed-size bitmap font
        return ImageFont.load_default()


__all__ = ["EditHistory", "EditState", "Editor", "EditorError", "Rendered"]

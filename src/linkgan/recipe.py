"""Edit recipes: an image (a seed or a latent) and the sequence of local edits applied to it, as JSON.

The web editor writes one for every image it shows, and ``linkgan edit --recipe FILE``
replays it to the same pixels: both render through ``render_recipe``, one image at a time,
so the arithmetic is the same. A recipe::

    {"format": "linkgan-recipe", "version": 1,
     "checkpoint": "builtin:toyfaces",          # informational; --ckpt overrides it
     "truncation": 1.0,                         # of the seed's w, resampled values and donors
     "image": {"seed": 7},                      # or {"latent": {...}} or {"latent_file": "x.safetensors"}
     "edits": [
       {"op": "resample",   "link": "eyes",  "edit_seed": 1234, "mix": 1.0},
       {"op": "perturb",    "link": "mouth", "edit_seed": 99, "strength": 1.5, "mix": 1.0},
       {"op": "transplant", "link": "mouth", "seed": 9, "mix": 0.5}]}

Each edit changes only its link's W channels, in order:
  * ``resample``: the link's channels of w' = mapping(z), z drawn from ``edit_seed`` (the
    same draw as ``linkgan edit --edit-seed S --n 1``);
  * ``perturb``: w + ``strength`` * N(0, I) on the link's channels, drawn from ``edit_seed``;
  * ``transplant``: the link's channels of the image of ``seed`` (its region moves in);
  * ``mix`` in [0, 1] blends from the value before the edit (0) to the edit's value (1).

``image.latent`` holds an inverted photo inline: ``ws`` (1, num_ws, w_dim) and its optional
noise maps as base64 float32 (little endian), so the recipe alone reproduces the image bit
for bit. ``image.latent_file`` names a ``linkgan invert`` file instead (relative to the
recipe's folder).
"""

from __future__ import annotations

import base64
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .errors import InputError
from .networks import MAX_SEED

RECIPE_FORMAT = "linkgan-recipe"
RECIPE_VERSION = 1
EDIT_OPS = ("resample", "perturb", "transplant")
_EDIT_KEYS = {"resample": ("edit_seed",), "perturb": ("edit_seed", "strength"), "transplant": ("seed",)}


class RecipeError(InputError):
    """A recipe that cannot be read or does not fit the model; the message names the field."""


@dataclass
class LatentImage:
    """An image given by its latent (an inverted photo) instead of a seed.

    ws: (1, num_ws, w_dim). noise: None (the model's constant noise maps) or one map per noise
    layer of the synthesis network, each broadcastable to (1, 1, r, r). synthesis: the network to
    render with (a pivotally tuned copy), or None for the model's own. source: a label (file name).
    """

    ws: torch.Tensor
    noise: list[torch.Tensor] | None = None
    synthesis: torch.nn.Module | None = None
    source: str = ""

    @classmethod
    def from_inversion(cls, inv, source: str = "") -> LatentImage:
        """From a ``linkgan.inversion.Inversion`` (or anything with ``ws`` and ``noise``)."""
        noise = getattr(inv, "noise", None)
        if isinstance(noise, dict):  # keep the layer order of the mapping
            noise = list(noise.values())
        ws = inv.ws.detach().to("cpu", torch.float32)
        return cls(ws=ws, noise=[n.detach().to("cpu", torch.float32) for n in noise] if noise else None,
                   source=source)


# -- encoding tensors exactly -------------------------------------------------------------------
def encode_tensor(t: torch.Tensor) -> dict:
    """float32 tensor -> {"shape": [...], "float32": base64 of its little-endian bytes} (exact)."""
    arr = t.detach().to("cpu", torch.float32).contiguous().numpy().astype("<f4")
    return {"shape": list(arr.shape), "float32": base64.b64encode(arr.tobytes()).decode("ascii")}


def decode_tensor(d, where: str) -> torch.Tensor:
    if not isinstance(d, dict) or not isinstance(d.get("shape"), list) or not isinstance(d.get("float32"), str):
        raise RecipeError(f"{where} must be {{\"shape\": [...], \"float32\": \"<base64>\"}}")
    try:
        raw = base64.b64decode(d["float32"], validate=True)
        shape = [int(s) for s in d["shape"]]
        if any(s < 0 for s in shape) or len(shape) > 8:
            raise ValueError(f"shape {shape} is not a tensor shape")
        arr = np.frombuffer(raw, dtype="<f4").reshape(shape)
    except (ValueError, TypeError) as e:
        raise RecipeError(f"{where}: cannot decode the tensor ({e})") from None
    if not np.isfinite(arr).all():
        raise RecipeError(f"{where} holds NaN or Inf values")
    return torch.from_numpy(arr.astype(np.float32))


# -- reading and writing ------------------------------------------------------------------------
def make_recipe(image, edits: list[dict], truncation: float = 1.0, checkpoint: str = "") -> dict:
    """A recipe dict; ``image`` is a seed (int) or a LatentImage."""
    if isinstance(image, LatentImage):
        latent = {"ws": encode_tensor(image.ws)}
        if image.noise is not None:
            latent["noise"] = [encode_tensor(n) for n in image.noise]
        img: dict = {"latent": latent}
        if image.source:
            img["source"] = image.source
    else:
        img = {"seed": int(image)}
    return {"format": RECIPE_FORMAT, "version": RECIPE_VERSION, "checkpoint": str(checkpoint),
            "truncation": float(truncation), "image": img, "edits": [dict(e) for e in edits]}


def recipe_json(recipe: dict) -> str:
    return json.dumps(recipe, indent=1)


def load_recipe(path: str | Path) -> dict:
    """Reads and checks a recipe file; relative ``latent_file`` paths are taken from its folder."""
    path = Path(path)
    try:
        recipe = json.loads(path.read_text())
    except OSError as e:
        raise RecipeError(f"cannot read recipe {path}: {e.strerror or e}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise RecipeError(f"recipe {path} is not JSON ({e}); the web editor's 'Download recipe' writes one") from None
    except RecursionError:
        raise RecipeError(f"recipe {path} nests its JSON too deeply to be a recipe") from None
    try:
        check_recipe(recipe)
    except RecipeError as e:
        raise RecipeError(f"recipe {path}: {e}") from None
    img = recipe["image"]
    if "latent_file" in img and not Path(img["latent_file"]).is_absolute():
        img["latent_file"] = str(path.parent / img["latent_file"])
    return recipe


def _number(value, where: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise RecipeError(f"{where} must be a finite number, got {str(value)[:40]}")
    if not low <= value <= high:
        raise RecipeError(f"{where} must be from {low:g} to {high:g}, got {value:g}")
    return float(value)


def _seed(value, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SEED:
        raise RecipeError(f"{where} must be an integer from 0 to {MAX_SEED}, got {str(value)[:40]}")
    return value


def check_recipe(recipe, links=None) -> None:
    """Raises RecipeError naming the first bad field; ``links`` (a LatentPartition) checks link names."""
    if not isinstance(recipe, dict):
        raise RecipeError(f"a recipe is a JSON object, got {type(recipe).__name__}")
    if recipe.get("format") != RECIPE_FORMAT:
        raise RecipeError(f"format is {recipe.get('format')!r}, expected {RECIPE_FORMAT!r}")
    version = recipe.get("version")
    if not isinstance(version, int) or version > RECIPE_VERSION:
        raise RecipeError(f"version {version!r} is not one this linkgan reads (up to {RECIPE_VERSION}); "
                          f"upgrade linkgan")
    _number(recipe.get("truncation", 1.0), "truncation", -10.0, 10.0)
    img = recipe.get("image")
    if not isinstance(img, dict) or sum(k in img for k in ("seed", "latent", "latent_file")) != 1:
        raise RecipeError("image must hold exactly one of seed, latent or latent_file, e.g. {\"seed\": 7}")
    if "seed" in img:
        _seed(img["seed"], "image.seed")
    elif "latent" in img:
        lat = img["latent"]
        if not isinstance(lat, dict) or "ws" not in lat:
            raise RecipeError("image.latent must hold ws (and optionally noise)")
    elif not isinstance(img["latent_file"], str) or not img["latent_file"]:
        raise RecipeError("image.latent_file must be the path of a latent file")
    edits = recipe.get("edits", [])
    if not isinstance(edits, list):
        raise RecipeError("edits must be a list of edits")
    for i, e in enumerate(edits):
        where = f"edits[{i}]"
        if not isinstance(e, dict):
            raise RecipeError(f"{where} must be an object like {{\"op\": \"resample\", \"link\": \"eyes\", "
                              f"\"edit_seed\": 1}}")
        op = e.get("op")
        if op not in EDIT_OPS:
            raise RecipeError(f"{where}.op is {op!r}; it is one of {', '.join(EDIT_OPS)}")
        if not isinstance(e.get("link"), str):
            raise RecipeError(f"{where}.link must name a link, e.g. \"eyes\"")
        if links is not None and e["link"] not in links.edit_names:
            raise RecipeError(f"{where}.link {e['link']!r} is not a link of this model (its links: "
                              f"{', '.join(links.edit_names) or 'none'})")
        for key in _EDIT_KEYS[op]:
            if key not in e:
                raise RecipeError(f"{where} ({op}) needs {key}")
        if "edit_seed" in e:
            _seed(e["edit_seed"], f"{where}.edit_seed")
        if "seed" in e:
            _seed(e["seed"], f"{where}.seed")
        if "strength" in e:
            _number(e["strength"], f"{where}.strength", 0.0, 100.0)
        _number(e.get("mix", 1.0), f"{where}.mix", 0.0, 1.0)
        unknown = set(e) - {"op", "link", "mix", *_EDIT_KEYS[op]}
        if unknown:
            raise RecipeError(f"{where} has unknown key(s) {sorted(unknown)}")


def recipe_image(recipe: dict, pipe) -> int | LatentImage:
    """The recipe's starting image: a seed, or a LatentImage checked against the model."""
    img = recipe["image"]
    if "seed" in img:
        return int(img["seed"])
    if "latent" in img:
        lat = img["latent"]
        ws = decode_tensor(lat["ws"], "image.latent.ws")
        noise = lat.get("noise")
        if noise is not None:
            if not isinstance(noise, list):
                raise RecipeError("image.latent.noise must be a list of tensors")
            noise = [decode_tensor(n, f"image.latent.noise[{i}]") for i, n in enumerate(noise)]
        image = LatentImage(ws=ws, noise=noise, source=str(img.get("source", "")))
    else:
        from .inversion import Inversion

        inv = Inversion.load(img["latent_file"])
        image = LatentImage.from_inversion(inv, source=Path(img["latent_file"]).name)
        if getattr(inv, "synthesis_state", None) is not None:
            image.synthesis = inv.synthesis(pipe.G)
    G = pipe.G
    want = (1, G.num_ws, G.w_dim)
    if tuple(image.ws.shape) != want:
        raise RecipeError(f"image latent has shape {tuple(image.ws.shape)} but this model needs {want}: it belongs "
                          f"to another model")
    if image.noise is not None and len(image.noise) != len(G.synthesis.noise_inputs()):
        raise RecipeError(f"image latent has {len(image.noise)} noise maps but this model has "
                          f"{len(G.synthesis.noise_inputs())} noise layers: it belongs to another model")
    for i, (n, layer) in enumerate(zip(image.noise or [], G.synthesis.noise_inputs())):
        r = layer.resolution
        try:
            torch.broadcast_shapes(tuple(n.shape), (1, 1, r, r))
            ok = n.dim() <= 4 and n.numel() <= r * r
        except RuntimeError:
            ok = False
        if not ok:
            raise RecipeError(f"image.latent.noise[{i}] has shape {tuple(n.shape)}; this model's layer {i} takes a "
                              f"{r}x{r} map (shape (1, 1, {r}, {r}))")
    return image


# -- applying -----------------------------------------------------------------------------------
def apply_edit(pipe, ws: torch.Tensor, edit: dict, truncation: float = 1.0) -> torch.Tensor:
    """ws (1, num_ws, w_dim) after one edit (see the module docstring)."""
    from .editing import edit_latents, transplant_latents

    link, op = edit["link"], edit["op"]
    if op == "transplant":
        target = transplant_latents(pipe.links, ws, pipe.latents([int(edit["seed"])], truncation), link)
    else:
        target = edit_latents(pipe.G, pipe.links, ws, link, 1, op, float(edit.get("strength", 1.0)), truncation,
                              seed=int(edit["edit_seed"]))[:, 0]
    mix = float(edit.get("mix", 1.0))
    return target if mix == 1.0 else pipe.links.interpolate_axes(ws, target, link, mix)


def image_latents(pipe, image, truncation: float = 1.0) -> torch.Tensor:
    """ws (1, num_ws, w_dim) of a seed or a LatentImage."""
    if isinstance(image, LatentImage):
        return image.ws.to(pipe.device, torch.float32)
    return pipe.latents([int(image)], truncation)


def edited_latents(pipe, image, edits: list[dict], truncation: float = 1.0) -> torch.Tensor:
    ws = image_latents(pipe, image, truncation)
    with torch.no_grad():
        for edit in edits:
            ws = apply_edit(pipe, ws, edit, truncation)
    return ws


def render_latents(pipe, ws: torch.Tensor, image=None) -> torch.Tensor:
    """One image (1, 3, R, R) in [-1, 1] on the CPU, with the LatentImage's noise and network if any.

    Always one image per call: a batch may take another modulated-conv path and differ in the
    last bits, and a recipe must replay to the same pixels."""
    latent = image if isinstance(image, LatentImage) else None
    synthesis = latent.synthesis if latent is not None and latent.synthesis is not None else pipe.G.synthesis
    with torch.no_grad():
        if latent is not None and latent.noise is not None:
            noises = [n.to(pipe.device) for n in latent.noise]
            return synthesis(ws.to(pipe.device), noise_mode="const", noises=noises).cpu()
        return synthesis(ws.to(pipe.device), noise_mode="const").cpu()


def render_recipe(pipe, recipe: dict) -> torch.Tensor:
    """The recipe's image (1, 3, R, R) in [-1, 1]."""
    check_recipe(recipe, pipe.links)
    image = recipe_image(recipe, pipe)
    truncation = float(recipe.get("truncation", 1.0))
    return render_latents(pipe, edited_latents(pipe, image, recipe.get("edits", []), truncation), image)


__all__ = ["EDIT_OPS", "RECIPE_FORMAT", "RECIPE_VERSION", "LatentImage", "RecipeError", "apply_edit",
           "check_recipe", "edited_latents", "image_latents", "load_recipe", "make_recipe", "recipe_image",
           "recipe_json", "render_latents", "render_recipe"]

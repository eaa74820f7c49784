"""Models that ship inside the package, so that the editor works offline right after installing.

``builtin:NAME`` is accepted wherever a checkpoint is (``LinkGANPipeline.load("builtin:toyfaces")``,
``linkgan generate --ckpt builtin:toyfaces``); ``pretrained_path(NAME)`` gives the file itself.

  toyfaces         32 px StyleGAN2 (64 channels, official numerics) on the procedural toyfaces data,
                   with LinkGAN links ``eyes`` (W axes [0, 64)) and ``mouth`` ([64, 128)): toyfaces-base
                   fine-tuned with the regularizer. G_ema only, stored as float16 (loading casts it back
                   to float32).
  toyfaces-base    the vanilla 32 px toyfaces generator that ``toyfaces`` was fine-tuned from, with
                   everything fine-tuning needs (G, G_ema and D, float16): ``linkgan train --init
                   builtin:toyfaces-base --links ...`` (what ``linkgan demo`` does).
  fmnist32-base    a vanilla 32 px generator of Fashion-MNIST's real photos of clothes (``--preset
                   small32``, 150 kimg; all ten classes, docs/results/ada.md), with G, G_ema and D in
                   float16 for fine-tuning: ``linkgan train --init builtin:fmnist32-base --data
                   fmnist32.zip --links ...``.
  toyfaces-legacy  the model shipped before the official numerics (linkgan's first StyleGAN2 dialect,
                   ``numerics: legacy``): the eyes+mouth model behind docs/results/regularizer.md, kept
                   so that those results stay reproducible.

All are written by experiments/export_pretrained.py (docs/results/compat.md and ada.md have the runs).
"""

from __future__ import annotations

from pathlib import Path

from .errors import InputError

BUILTIN_PREFIX = "builtin:"
PRETRAINED = {"toyfaces": "toyfaces32-eyes-mouth.safetensors", "toyfaces-base": "toyfaces32-base.safetensors",
              "fmnist32-base": "fmnist32-base.safetensors", "toyfaces-legacy": "toyfaces32-eyes-mouth-legacy.safetensors"}
DEFAULT_MODEL = "toyfaces"


def pretrained_path(name: str = DEFAULT_MODEL) -> Path:
    """The file of the shipped model ``name`` (one of ``PRETRAINED``)."""
    if name not in PRETRAINED:
        raise InputError(f"no built-in model named {name!r}; built-in models: {', '.join(sorted(PRETRAINED))}")
    path = Path(__file__).resolve().parent / "assets" / PRETRAINED[name]
    if not path.is_file():
        raise FileNotFoundError(f"the built-in model {name!r} should be at {path} but is missing; reinstall "
                                f"linkgan (the wheel ships it as package data)")
    return path


def resolve_builtin(spec) -> Path | None:
    """``'builtin:NAME'`` -> the shipped file; anything else -> None."""
    text = str(spec)
    if not text.startswith(BUILTIN_PREFIX):
        return None
    return pretrained_path(text[len(BUILTIN_PREFIX):] or DEFAULT_MODEL)


__all__ = ["BUILTIN_PREFIX", "DEFAULT_MODEL", "PRETRAINED", "pretrained_path", "resolve_builtin"]

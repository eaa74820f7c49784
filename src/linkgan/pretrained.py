"""Models that ship inside the package, so that the editor works offline right after installing.

``builtin:NAME`` is accepted wherever a checkpoint is (``LinkGANPipeline.load("builtin:toyfaces")``,
``linkgan generate --ckpt builtin:toyfaces``); ``pretrained_path(NAME)`` gives the file itself.

  toyfaces   32 px StyleGAN2 (64 channels) on the procedural toyfaces data, with LinkGAN links
             ``eyes`` (W axes [0, 64)) and ``mouth`` ([64, 128)): a 100.8-kimg vanilla model
             fine-tuned 20 kimg with the regularizer (docs/results/regularizer.md, arm
             eyes_mouth). Only G_ema, stored as float16 (loading casts it back to float32).
             Written by experiments/export_pretrained.py.
"""

from __future__ import annotations

from pathlib import Path

BUILTIN_PREFIX = "builtin:"
PRETRAINED = {"toyfaces": "toyfaces32-eyes-mouth.safetensors"}
DEFAULT_MODEL = "toyfaces"


def pretrained_path(name: str = DEFAULT_MODEL) -> Path:
    """The file of the shipped model ``name`` (one of ``PRETRAINED``)."""
    if name not in PRETRAINED:
        raise ValueError(f"no built-in model named {name!r}; built-in models: {', '.join(sorted(PRETRAINED))}")
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

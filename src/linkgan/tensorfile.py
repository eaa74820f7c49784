"""Reading and writing the project's files: safetensors with string metadata, never pickle.

Checkpoints, segmenters, inverted latents and encoders are all one safetensors file whose
metadata names its ``format``. ``write_tensors`` writes atomically (a temporary file in the
same folder, flushed, then renamed), so an interrupted write never leaves a half-written
file under the real name. ``read_tensors`` opens the file once and turns every failure
into one exception that names the file.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import torch

from .errors import DISK_ERRNOS, InputError


class TensorFileError(InputError):
    """A file that is missing, unreadable, not of the expected format, or cannot be written."""


def write_tensors(path: str | Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> Path:
    """Writes ``tensors`` (moved to CPU, made contiguous) and ``metadata`` to ``path`` atomically."""
    from safetensors import SafetensorError
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        try:
            save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp), metadata=metadata)
        except SafetensorError as e:
            # The Rust writer reports I/O failures as "... I/O error: <text> (os error N)".
            found = re.search(r"os error (\d+)", str(e))
            if found is None:
                raise
            code = int(found.group(1))
            raise OSError(code, os.strerror(code)) from e
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        if e.errno not in DISK_ERRNOS:
            raise
        raise TensorFileError(f"cannot write {path} ({e.strerror}); the file there before, if any, is unchanged. "
                              "Free some space or write elsewhere") from None
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def read_tensors(path: str | Path, fmt: str | None = None, what: str = "linkgan",
                 hint: str = "") -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(tensors on CPU, metadata) of a safetensors file.

    With ``fmt``, the metadata's ``format`` must equal it. ``what`` names the kind of file in
    errors ("checkpoint", "segmenter", ...) and ``hint`` is appended to them, e.g. the command
    that writes such files. Raises TensorFileError (or FileNotFoundError for a missing file).
    """
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    suffix = f"; {hint}" if hint else ""
    if not path.is_file():
        raise FileNotFoundError(f"{what} file {path} does not exist{suffix}")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            metadata = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open is not iterable)
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise TensorFileError(f"{path} is not a readable safetensors file ({e}); it may be truncated or not a "
                              f"{what} file{suffix}") from None
    if fmt is not None and metadata.get("format") != fmt:
        raise TensorFileError(f"{path} is a safetensors file but not a {what} file (metadata format="
                              f"{metadata.get('format')!r}, expected {fmt!r}){suffix}")
    return tensors, metadata

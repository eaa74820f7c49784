"""Loading any segmenter by a spec string: built-in .safetensors, TorchScript, ONNX or ``module:attr``.

External models (TorchScript, ONNX) say what their classes are, and what input
they expect, in a class JSON (see parse_segmenter_info):
  TorchScript  an ``_extra_files={"linkgan.json": ...}`` entry saved in the file
  ONNX         the model's metadata_props key ``linkgan``
  either       a sidecar file ``<file>.json`` beside the model (e.g. parser.onnx.json),
               which wins over the embedded JSON so a user can fix e.g. the size
               without re-exporting
"""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path
from typing import Any

import torch

from ..device import select_device
from .base import Segmenter, SegmenterError, parse_segmenter_info
from .builtin import BuiltinSegmenter

BUILTIN_SUFFIXES = (".safetensors",)
TORCHSCRIPT_SUFFIXES = (".pt", ".pth", ".ts", ".torchscript")
ONNX_SUFFIXES = (".onnx",)
EMBEDDED_JSON = "linkgan.json"  # TorchScript extra-file name
ONNX_METADATA_KEY = "linkgan"
CALLABLE_PATTERN = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*")

ACCEPTED_FORMS = (
    "a built-in segmenter (.safetensors, from `linkgan segmenter train`), "
    f"a TorchScript file ({', '.join(TORCHSCRIPT_SUFFIXES)}), an ONNX file (.onnx), "
    "or a Python object as package.module:attr"
)


def _class_info(path: Path, embedded: str | bytes | None) -> dict:
    sidecar = path.with_name(path.name + ".json")
    if sidecar.is_file():
        return parse_segmenter_info(sidecar.read_text(), str(sidecar))
    if embedded:
        return parse_segmenter_info(embedded, str(path))
    raise SegmenterError(f'{path}: no class names; save them in the model ({EMBEDDED_JSON} extra file for '
                         f'TorchScript, metadata_props key "{ONNX_METADATA_KEY}" for ONNX) or write '
                         f'{sidecar} containing {{"classes": ["background", ...], "input": "minus_one_one", '
                         '"size": null}')


class TorchScriptSegmenter(Segmenter):
    """A TorchScript module (torch.jit.save) whose forward maps images to scores or ids."""

    def __init__(self, path: str | Path, batch_size: int = 64):
        path = Path(path)
        extra = {EMBEDDED_JSON: ""}
        try:
            module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
        except (RuntimeError, ValueError) as e:
            first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise SegmenterError(f"{path}: not a TorchScript file ({first_line}). A state dict or pickled model "
                                 "cannot be loaded safely; save it with torch.jit.save(torch.jit.script(model)) "
                                 "or export it to ONNX") from None
        info = _class_info(path, extra[EMBEDDED_JSON])
        super().__init__(info["classes"], info["input"], info["size"], batch_size, name=str(path))
        self.module = module.eval()

    def predict(self, x: torch.Tensor) -> Any:
        return self.module(x)

    def to(self, device: str | torch.device) -> TorchScriptSegmenter:
        super().to(device)
        self.module.to(self.device)
        return self


class OnnxSegmenter(Segmenter):
    """An ONNX model run by onnxruntime on the CPU; its first input takes the images, its first output is used.

    .to(device) only moves where inputs are staged; results come back on the
    images' device as with every Segmenter.
    """

    def __init__(self, path: str | Path, batch_size: int = 64):
        path = Path(path)
        try:
            import onnxruntime
        except ImportError:
            raise SegmenterError(f"{path}: ONNX segmenters need onnxruntime; pip install linkgan[onnx]") from None
        try:
            session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        except Exception as e:  # noqa: BLE001 -- onnxruntime raises its own types for unreadable models
            raise SegmenterError(f"{path}: onnxruntime cannot load this model ({e})") from None
        embedded = session.get_modelmeta().custom_metadata_map.get(ONNX_METADATA_KEY)
        info = _class_info(path, embedded)
        super().__init__(info["classes"], info["input"], info["size"], batch_size, name=str(path))
        self.session = session
        self.input_name = session.get_inputs()[0].name

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        out = self.session.run(None, {self.input_name: x.cpu().contiguous().numpy()})[0]
        return torch.from_numpy(out)


class CallableSegmenter(Segmenter):
    """A Python callable `fn(x) -> scores or ids` with a ``classes`` attribute.

    Optional attributes ``input`` and ``size`` say what it expects, as in the
    class JSON. An nn.Module is moved by .to(device).
    """

    def __init__(self, fn: Any, batch_size: int = 64, name: str | None = None):
        name = name or getattr(fn, "__name__", type(fn).__name__)
        super().__init__(fn.classes, getattr(fn, "input", "minus_one_one"), getattr(fn, "size", None),
                         batch_size, name=name)
        self.fn = fn.eval() if isinstance(fn, torch.nn.Module) else fn

    def predict(self, x: torch.Tensor) -> Any:
        return self.fn(x)

    def to(self, device: str | torch.device) -> CallableSegmenter:
        super().to(device)
        if isinstance(self.fn, torch.nn.Module):
            self.fn.to(self.device)
        return self


def _from_python(spec: str, batch_size: int) -> Segmenter:
    module_name, attr = spec.split(":")
    try:
        obj = importlib.import_module(module_name)
    except ImportError as e:
        raise SegmenterError(f"segmenter {spec}: cannot import module {module_name!r} ({e}); install it or put "
                             "its folder on PYTHONPATH") from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise SegmenterError(f"segmenter {spec}: {module_name} has no attribute {attr!r}")
        obj = getattr(obj, part)

    def wrap(candidate):
        if isinstance(candidate, Segmenter):
            return candidate
        if callable(candidate) and not inspect.isclass(candidate) and hasattr(candidate, "classes"):
            return CallableSegmenter(candidate, batch_size, name=spec)
        return None

    segmenter = wrap(obj)
    if segmenter is None and callable(obj):  # a zero-argument factory (a function or a class)
        segmenter = wrap(obj())
    if segmenter is None:
        raise SegmenterError(f"segmenter {spec}: expected a Segmenter, a callable with a `classes` attribute, or "
                             f"a zero-argument factory returning one; got {type(obj).__name__}")
    return segmenter


# Segmenter specs that run code when loaded (TorchScript files, package.module:attr) and that the
# user named in this process: on the command line (--segmenter) or in their own Python code. A spec
# read from a file (a checkpoint's config, a links or --config YAML, a recipe) is loaded only if
# it is data (.safetensors, .onnx) or is one of these.
_TRUSTED_SPECS: set[str] = set()


def normalize_spec(spec: str | Path) -> str:
    """The spec as the regions store it: ``package.module:attr`` as is (unless such a file exists),
    a file path made absolute."""
    text = str(spec)
    path = Path(text).expanduser()
    if CALLABLE_PATTERN.fullmatch(text) and not path.exists():
        return text
    return str(path.absolute())


def runs_code(spec: str | Path) -> bool:
    """Whether loading ``spec`` runs code: a Python callable, or a TorchScript program."""
    text = str(spec)
    return Path(text).suffix.lower() in TORCHSCRIPT_SUFFIXES or bool(
        CALLABLE_PATTERN.fullmatch(text) and not Path(text).exists())


def trust_segmenter(spec: str | Path) -> str:
    """Allows the segmenter ``spec`` to be loaded in this process even where a file names it (a
    checkpoint trained with it, a links YAML). The CLI calls this for --segmenter; call it in your
    own code for a TorchScript file or ``package.module:attr`` that a config names. Returns the
    normalized spec."""
    key = normalize_spec(spec)
    _TRUSTED_SPECS.add(key)
    return key


def untrust_segmenter(spec: str | Path) -> None:
    _TRUSTED_SPECS.discard(normalize_spec(spec))


def is_trusted(spec: str | Path) -> bool:
    return not runs_code(spec) or normalize_spec(spec) in _TRUSTED_SPECS


def load_segmenter(spec: str | Path, device: str | torch.device | None = None, batch_size: int = 64,
                   named_by: str | None = None) -> Segmenter:
    """A Segmenter from a spec: a .safetensors file written by train_segmenter, a TorchScript file
    (.pt .pth .ts .torchscript), an ONNX file (.onnx) or ``package.module:attr``.

    device: where the model runs; None or "auto" means CUDA when available, else the CPU.
    batch_size: larger batches are run in chunks of this many images.
    named_by: where the spec came from when a file named it (e.g. "the checkpoint's links"); then
    a spec that runs code is refused unless trust_segmenter() allowed it. Without it the caller is
    the user's own code, which may load anything.
    Raises SegmenterError naming the file and the fix (missing file, unknown form, no class names).
    """
    text = str(spec)
    if named_by is not None and not is_trusted(text):
        kind = "a TorchScript program" if Path(text).suffix.lower() in TORCHSCRIPT_SUFFIXES else "Python code"
        raise SegmenterError(
            f"segmenter {text} is {kind}, named by {named_by}; linkgan never runs code because a file says so. "
            f"If you trust it, name it yourself: --segmenter {text} on the command line, or "
            f"linkgan.segment.trust_segmenter({text!r}) (or pipe.use_segmenter) in Python")
    path = Path(text)
    suffix = path.suffix.lower()
    file_kinds = {**dict.fromkeys(BUILTIN_SUFFIXES, BuiltinSegmenter.load),
                  **dict.fromkeys(TORCHSCRIPT_SUFFIXES, TorchScriptSegmenter),
                  **dict.fromkeys(ONNX_SUFFIXES, OnnxSegmenter)}
    if suffix in file_kinds:
        if not path.is_file():
            raise SegmenterError(f"segmenter file {path} does not exist")
        segmenter = file_kinds[suffix](path, batch_size=batch_size)
    elif CALLABLE_PATTERN.fullmatch(text) and not path.exists():
        segmenter = _from_python(text, batch_size)
    else:
        raise SegmenterError(f"cannot load segmenter {text!r}: give {ACCEPTED_FORMS}")
    return segmenter.to(select_device(device))

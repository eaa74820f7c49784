"""Import StyleGAN2 weights trained elsewhere: NVIDIA stylegan2-ada-pytorch (and stylegan3-repo
``stylegan2``) pickles, and rosinality/stylegan2-pytorch checkpoints. ``import_model(src, out)``
writes an ordinary linkgan checkpoint (G, G_ema and D, with a config using the official
numerics), which every command then accepts: ``train --init``, ``generate``, ``edit``, ``invert``,
``serve``, ``metrics`` and ``LinkGANPipeline.load``.

Trust: an NVIDIA snapshot pickle carries the Python source of its networks, and NVIDIA's own
loader executes it. Nothing here imports or runs anything a file names:

* ``SafeUnpickler`` resolves only an allowlist of globals: torch's tensor and parameter rebuild
  functions, storage bytes (loaded with ``torch.load(weights_only=True)``), ``OrderedDict``,
  numpy scalars and dtypes. The persistence records of NVIDIA's networks
  (``torch_utils.persistence._reconstruct_persistent_obj``) become inert ``PersistentRecord``
  data holding the module's class name and attribute dict; their embedded source is never
  compiled. ``dnnlib.util.EasyDict`` becomes a plain dict. Any other global stops the import
  with an error naming it.
* rosinality checkpoints are zip files of ``torch.save``, read with ``weights_only=True``
  (argparse's ``Namespace`` is allowed there, for the saved training options).
"""

from __future__ import annotations

import argparse
import collections
import io
import json
import math
import pickle
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .checkpoint import FORMAT as CHECKPOINT_FORMAT
from .checkpoint import save_checkpoint
from .config import ModelConfig, RunConfig
from .errors import InputError

IMPORT_FORMATS = ("stylegan2-ada-pytorch", "rosinality")
STANDARD_FILTER = [1.0, 3.0, 3.0, 1.0]


class ModelImportError(InputError):
    """A file that cannot be imported: the message names the file and what is wrong with it."""


# ------------------------------------------------------------------------------ safe unpickling
@dataclass
class PersistentRecord:
    """An NVIDIA persistent-class object, as inert data: its class name, its attribute dict
    (``state``: ``_parameters``, ``_buffers``, ``_modules``, ``_init_kwargs``, ...), and the
    source text it carried (kept as a string, never compiled)."""

    class_name: str
    state: dict
    module_src: str = ""
    version: object = None

    def attr(self, name: str, default=None):
        return self.state.get(name, default)

    def child(self, name: str) -> "PersistentRecord | None":
        return (self.state.get("_modules") or {}).get(name)

    def children(self) -> dict:
        return dict(self.state.get("_modules") or {})


class _PlainDict(dict):
    """``dnnlib.util.EasyDict`` read back as a plain dict (pickle may BUILD it with a state)."""

    def __setstate__(self, state):
        if isinstance(state, dict):
            self.update(state)


def _persistent_record(meta) -> PersistentRecord:
    if not isinstance(meta, dict) or meta.get("type") != "class" or not isinstance(meta.get("state"), dict):
        raise pickle.UnpicklingError("a persistence record that is not a module (only 'class' records are read)")
    return PersistentRecord(str(meta.get("class_name", "")), meta["state"], str(meta.get("module_src") or ""),
                            meta.get("version"))


def _storage_from_bytes(data: bytes):
    if not isinstance(data, (bytes, bytearray)):
        raise pickle.UnpicklingError("storage record without bytes")
    return torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, *state):
    return data  # plain tensors: nothing here trains the foreign modules


def _numpy_scalar(dtype, data=None):
    if not isinstance(dtype, np.dtype) or dtype.hasobject or not isinstance(data, (bytes, bytearray)):
        raise pickle.UnpicklingError("numpy scalar that is not plain data")
    return np.frombuffer(bytes(data), dtype=dtype, count=1)[0]


def _numpy_dtype(spec, align=False, copy=False):
    dtype = np.dtype(spec)
    if dtype.hasobject:
        raise pickle.UnpicklingError("numpy object dtype")
    return dtype


_TORCH_DTYPES = {"float16", "float32", "float64", "bfloat16", "int8", "int16", "int32", "int64", "uint8", "bool"}
_ALLOWED = {
    ("torch._utils", "_rebuild_tensor"): torch._utils._rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch.storage", "_load_from_bytes"): _storage_from_bytes,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): _persistent_record,
    ("dnnlib.util", "EasyDict"): _PlainDict,
    ("numpy.core.multiarray", "scalar"): _numpy_scalar,
    ("numpy._core.multiarray", "scalar"): _numpy_scalar,
    ("numpy", "dtype"): _numpy_dtype,
}


class SafeUnpickler(pickle.Unpickler):
    """A pickle reader that builds data only (see the module docstring); ``source`` names the file in errors."""

    def __init__(self, file, source: str):
        super().__init__(file)
        self.source = source

    def find_class(self, module: str, name: str):
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        if module == "torch" and name in _TORCH_DTYPES:
            return getattr(torch, name)
        if module.startswith("dnnlib.tflib") or module.startswith("tensorflow"):
            raise ModelImportError(
                f"{self.source} is a TensorFlow-era StyleGAN/StyleGAN2 pickle ({module}.{name}), which linkgan does "
                "not read: convert it to a PyTorch pickle first (stylegan2-ada-pytorch's legacy.py, in an "
                "environment you trust, since that conversion runs the pickle's code), then import the result")
        raise ModelImportError(f"{self.source} refers to {module}.{name}, which linkgan will not load: a model "
                               "pickle may only hold tensors, plain containers and NVIDIA's persistent module "
                               "records (importing never runs code from a file)")

    def persistent_load(self, pid):
        raise ModelImportError(f"{self.source} holds persistent references ({str(pid)[:60]}); it is not a "
                               "stylegan2-ada-pytorch snapshot pickle")


def read_pickle(path: Path) -> object:
    """The data of a (NVIDIA) pickle, read with SafeUnpickler."""
    try:
        with open(path, "rb") as f:
            return SafeUnpickler(f, str(path)).load()
    except ModelImportError:
        raise
    except EOFError:
        raise ModelImportError(f"{path} ends early: it is empty or truncated (re-download or re-copy it)") from None
    except pickle.UnpicklingError as e:
        if "truncated" in str(e):
            raise ModelImportError(f"{path} ends early: it is truncated (re-download or re-copy it)") from None
        raise ModelImportError(f"{path} is not a readable model pickle ({str(e)[:200]})") from None
    except RecursionError:
        raise ModelImportError(f"{path} nests its data too deeply to be a model pickle") from None
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, RuntimeError,
            MemoryError, OverflowError, UnicodeDecodeError) as e:
        raise ModelImportError(f"{path} is not a readable model pickle ({type(e).__name__}: {str(e)[:200]}); it may "
                               "be truncated or of another kind") from None


# ------------------------------------------------------------------------------ result
@dataclass
class ImportedModel:
    """The linkgan-named state dicts of an imported model and its linkgan ModelConfig."""

    model: ModelConfig
    modules: dict[str, dict[str, torch.Tensor]]  # "G", "G_ema", "D" -> state dict
    source_format: str
    info: dict = field(default_factory=dict)  # what the source said: init kwargs, training options


def _fail(path, message: str):
    raise ModelImportError(f"{path}: {message}")


def _check_filter(path, where: str, f) -> None:
    if f is None:
        return
    f = torch.as_tensor(f, dtype=torch.float64)
    k = torch.tensor(STANDARD_FILTER, dtype=torch.float64)
    standard = torch.outer(k, k)
    standard = standard / standard.sum()
    ok = (f.shape == standard.shape and torch.allclose(f / f.sum(), standard, atol=1e-6)) or \
        (f.shape == (4,) and torch.allclose(f / f.sum(), k / k.sum(), atol=1e-6))
    if not ok:
        _fail(path, f"{where} uses the resampling filter {f.tolist()}; linkgan computes only the standard "
                    "[1, 3, 3, 1] filter")


def _widths_to_config(path, widths: dict[int, int], stated_base=None) -> tuple[int, int]:
    """(channel_base, channel_max) with min(channel_base // res, channel_max) == widths[res] for every res;
    the file's own ``stated_base`` when it fits, else the smallest that does."""
    channel_max = max(widths.values())
    below = sorted(r for r, c in widths.items() if c < channel_max)
    candidates = [stated_base] if isinstance(stated_base, int) and stated_base > 0 else []
    candidates += [widths[r] * r for r in below[:1]] or [channel_max * max(widths)]
    for base in candidates:
        if all(max(1, min(base // r, channel_max)) == c for r, c in widths.items()):
            return base, channel_max
    _fail(path, f"its layer widths per resolution {dict(sorted(widths.items()))} do not follow "
                "min(channel_base / res, channel_max), the only width rule linkgan can represent")
    raise AssertionError  # unreachable


def _check_resolution(path, res) -> int:
    if not isinstance(res, int) or res < 4 or res & (res - 1) or res > 1024:
        _fail(path, f"resolution {res!r} is not a power of two from 4 to 1024, which linkgan cannot represent")
    if res < 16:
        _fail(path, f"resolution {res} is below linkgan's smallest model resolution (16)")
    return res


# ------------------------------------------------------------------------------ NVIDIA
def _module_tensors(rec: PersistentRecord, prefix: str = "") -> dict[str, torch.Tensor]:
    """The state dict of a record tree, as ``module.state_dict()`` would name it."""
    out = {}
    for kind in ("_parameters", "_buffers"):
        skip = set(rec.attr("_non_persistent_buffers_set") or ()) if kind == "_buffers" else set()
        for name, value in (rec.attr(kind) or {}).items():
            if value is None or name in skip:
                continue
            if not torch.is_tensor(value):
                raise ModelImportError(f"{prefix}{name} is not a tensor")
            out[prefix + name] = value
    for name, child in rec.children().items():
        if child is None:
            continue
        if not isinstance(child, PersistentRecord):
            raise ModelImportError(f"module {prefix}{name} is of a class that is not an NVIDIA persistent module")
        out.update(_module_tensors(child, f"{prefix}{name}."))
    return out


def _nvidia_g_name(key: str) -> str | None:
    """An official G/G_ema tensor name -> linkgan's (None for the constant resampling filters)."""
    if key.endswith("resample_filter"):
        return None
    m = re.fullmatch(r"mapping\.fc(\d+)\.(weight|bias)", key)
    if m:
        return f"mapping.layers.{m.group(1)}.{m.group(2)}"
    if key == "mapping.w_avg":
        return key
    m = re.fullmatch(r"synthesis\.b(\d+)\.(.+)", key)
    if not m:
        raise KeyError(key)
    block = f"synthesis.blocks.{int(math.log2(int(m.group(1)))) - 2}"
    rest = m.group(2)
    if rest == "const":
        return f"{block}.const"
    layer = re.fullmatch(r"(conv0|conv1)\.(weight|bias|noise_strength|noise_const|affine\.weight|affine\.bias)", rest)
    if layer:
        tail = {"weight": "conv.weight", "bias": "bias", "noise_strength": "noise.strength",
                "noise_const": "noise.const_noise"}.get(layer.group(2), "conv." + layer.group(2))
        return f"{block}.{layer.group(1)}.{tail}"
    rgb = re.fullmatch(r"torgb\.(weight|bias|affine\.weight|affine\.bias)", rest)
    if rgb:
        return f"{block}.torgb.{'bias' if rgb.group(1) == 'bias' else 'conv.' + rgb.group(1)}"
    raise KeyError(key)


def _nvidia_d_name(key: str, resolution: int) -> str | None:
    if key.endswith("resample_filter"):
        return None
    m = re.fullmatch(r"b(\d+)\.(.+)", key)
    if not m:
        raise KeyError(key)
    res, rest = int(m.group(1)), m.group(2)
    if res == 4:
        if re.fullmatch(r"(conv|fc|out)\.(weight|bias)", rest):
            return rest
        raise KeyError(key)
    if rest in ("fromrgb.weight", "fromrgb.bias") and res == resolution:
        return "from_rgb." + rest.split(".")[1]
    if re.fullmatch(r"(conv0|conv1)\.(weight|bias)|skip\.weight", rest):
        return f"blocks.{int(math.log2(resolution)) - int(math.log2(res))}.{rest}"
    raise KeyError(key)


def _rename(path, what: str, tensors: dict, rename) -> dict[str, torch.Tensor]:
    out, unknown = {}, []
    for key, value in tensors.items():
        try:
            new = rename(key)
        except KeyError:
            unknown.append(key)
            continue
        if new is not None:
            out[new] = value
    if unknown:
        _fail(path, f"{what} has tensors that a StyleGAN2 '{'skip G' if what != 'D' else 'resnet D'}' does not "
                    f"have: {sorted(unknown)[:5]}{' ...' if len(unknown) > 5 else ''}")
    return out


def _kwargs(rec: PersistentRecord) -> dict:
    kw = rec.attr("_init_kwargs")
    return dict(kw) if isinstance(kw, dict) else {}


def _jsonable(obj):
    return json.loads(json.dumps(obj, default=lambda o: o.item() if isinstance(o, np.generic) else str(o)))


def _check_nvidia_generator(path, name: str, rec) -> dict:
    if not isinstance(rec, PersistentRecord):
        _fail(path, f"its '{name}' entry is not a network module")
    if rec.class_name != "Generator":
        _fail(path, f"its '{name}' is a {rec.class_name!r}, not a StyleGAN2 Generator")
    synthesis, mapping = rec.child("synthesis"), rec.child("mapping")
    if synthesis is None or mapping is None:
        _fail(path, f"its '{name}' has no mapping and synthesis networks")
    names = {c.class_name for c in synthesis.children().values() if isinstance(c, PersistentRecord)}
    if "SynthesisInput" in names or any(k.startswith("L") and "_" in k for k in synthesis.children()):
        _fail(path, "it is a StyleGAN3 (alias-free) generator; linkgan imports StyleGAN2 networks only "
                    "(stylegan3-repo pickles of the 'stylegan2' config import)")
    if "SynthesisBlock" not in names:
        _fail(path, f"its '{name}' synthesis network is not made of StyleGAN2 SynthesisBlocks ({sorted(names)})")
    kw = _kwargs(rec)
    c_dim = rec.attr("c_dim", kw.get("c_dim", 0))
    if c_dim:
        _fail(path, f"it is a conditional model (c_dim={c_dim}); linkgan imports unconditional generators only")
    for block in synthesis.children().values():
        arch = block.attr("architecture", "skip")
        if arch != "skip":
            _fail(path, f"its generator uses the '{arch}' architecture; linkgan computes the 'skip' generator")
        _check_filter(path, "its generator", (block.attr("_buffers") or {}).get("resample_filter"))
    mk = dict(kw.get("mapping_kwargs") or {})
    if mk.get("embed_features") not in (None, 0) or mk.get("layer_features") not in (None, rec.attr("w_dim")):
        _fail(path, f"its mapping network has widths linkgan cannot represent ({mk})")
    return kw


def convert_nvidia(path: Path, data) -> ImportedModel:
    """linkgan state dicts and config from the data of a stylegan2-ada-pytorch snapshot pickle."""
    if not isinstance(data, dict):
        _fail(path, f"holds a {type(data).__name__}, not a stylegan2-ada-pytorch snapshot (a dict with G_ema)")
    if "G_ema" not in data:
        _fail(path, f"holds no G_ema (keys: {sorted(map(str, data))}); linkgan imports snapshot pickles with "
                    "G_ema, as network-snapshot-*.pkl files from stylegan2-ada-pytorch's training have")
    kw = _check_nvidia_generator(path, "G_ema", data["G_ema"])
    g_ema = data["G_ema"]
    res = _check_resolution(path, g_ema.attr("img_resolution", kw.get("img_resolution")))
    img_channels = g_ema.attr("img_channels", kw.get("img_channels"))
    if img_channels != 3:
        _fail(path, f"it makes {img_channels}-channel images; linkgan models are RGB (3 channels)")
    mapping, synthesis = g_ema.child("mapping"), g_ema.child("synthesis")
    z_dim, w_dim = int(g_ema.attr("z_dim")), int(g_ema.attr("w_dim"))
    if z_dim < 1 or w_dim < 1:
        _fail(path, f"z_dim {z_dim} / w_dim {w_dim} must be positive")
    num_layers = int(mapping.attr("num_layers", (kw.get("mapping_kwargs") or {}).get("num_layers", 8)))
    fc0 = mapping.child("fc0")
    lr_mul = float(fc0.attr("bias_gain", 0.01)) if fc0 is not None else 0.01
    clamps = {b.child("conv1").attr("conv_clamp") for b in synthesis.children().values() if b.child("conv1")}
    if len(clamps) != 1:
        _fail(path, f"its layers use different conv_clamp values {sorted(map(str, clamps))}")
    conv_clamp = clamps.pop()
    widths = {int(b.attr("resolution")): int(b.child("conv1").attr("_parameters")["weight"].shape[0])
              for b in synthesis.children().values()}
    channel_base, channel_max = _widths_to_config(path, widths, (kw.get("synthesis_kwargs") or {}).get("channel_base"))

    modules, info = {}, {"G_init_kwargs": _jsonable(kw)}
    for name in ("G_ema", "G"):
        if name in data and data[name] is not None:
            if name == "G":
                _check_nvidia_generator(path, name, data[name])
            modules[name] = _rename(path, name, _module_tensors(data[name]), _nvidia_g_name)
    if "G" not in modules:
        modules["G"] = dict(modules["G_ema"])
    for name, tensors in modules.items():
        w_avg = tensors.get("mapping.w_avg")
        if w_avg is not None and not torch.isfinite(w_avg).all():
            # The official training loop runs G once in training mode on torch.empty() inputs (its
            # module summary), which updates w_avg; where that memory held NaN or inf, w_avg stays
            # non-finite for good. Nothing else in training reads it, so a fresh estimate is exact
            # enough for truncation.
            del tensors["mapping.w_avg"]
            info.setdefault("w_avg_estimated", []).append(name)
    if info.get("w_avg_estimated"):
        info["w_avg"] = ("estimated from 10000 samples of z: the file's average w was not finite in "
                         + ", ".join(info["w_avg_estimated"]))
    mbstd_group = 4
    d = data.get("D")
    if d is not None:
        if not isinstance(d, PersistentRecord) or d.class_name != "Discriminator":
            _fail(path, "its 'D' entry is not a StyleGAN2 Discriminator")
        dkw = _kwargs(d)
        info["D_init_kwargs"] = _jsonable(dkw)
        if d.attr("c_dim", dkw.get("c_dim", 0)):
            _fail(path, "its discriminator is conditional (c_dim > 0); linkgan imports unconditional models only")
        blocks = [c for c in d.children().values() if isinstance(c, PersistentRecord)]
        for block in blocks:
            if block.class_name == "DiscriminatorBlock":
                if block.attr("architecture", "resnet") != "resnet":
                    _fail(path, f"its discriminator uses the '{block.attr('architecture')}' architecture; linkgan "
                                "computes the 'resnet' discriminator")
                _check_filter(path, "its discriminator", (block.attr("_buffers") or {}).get("resample_filter"))
        epilogue = d.child("b4")
        mbstd = epilogue.child("mbstd") if epilogue is not None else None
        if mbstd is None:
            _fail(path, "its discriminator has no minibatch-stddev layer, which linkgan's D always has")
        if int(mbstd.attr("num_channels", 1)) != 1:
            _fail(path, f"its discriminator's minibatch stddev has {mbstd.attr('num_channels')} channels; linkgan's "
                        "has 1")
        mbstd_group = int(mbstd.attr("group_size") or 4)
        d_widths = {int(b.attr("resolution")): int(b.child("conv0").attr("_parameters")["weight"].shape[0])
                    for b in blocks if b.class_name == "DiscriminatorBlock"}
        d_widths[4] = int(epilogue.attr("in_channels"))
        expect = {r: max(1, min(channel_base // r, channel_max)) for r in d_widths}
        if d_widths != expect:
            _fail(path, f"its discriminator's widths {dict(sorted(d_widths.items()))} differ from the generator's "
                        f"rule (channel_base {channel_base}, channel_max {channel_max}); linkgan uses one for both")
        d_clamp = epilogue.child("conv").attr("conv_clamp") if epilogue.child("conv") else None
        if d_clamp != conv_clamp:
            _fail(path, f"its discriminator's conv_clamp {d_clamp} differs from the generator's {conv_clamp}")
        modules["D"] = _rename(path, "D", _module_tensors(d), lambda k: _nvidia_d_name(k, res))
    if data.get("training_set_kwargs") is not None:
        info["training_set_kwargs"] = _jsonable(dict(data["training_set_kwargs"]))
    model = ModelConfig(resolution=res, z_dim=z_dim, w_dim=w_dim, mapping_layers=num_layers, mapping_lr_mul=lr_mul,
                        channel_base=channel_base, channel_max=channel_max, img_channels=3, mbstd_group=mbstd_group,
                        conv_clamp=None if conv_clamp is None else float(conv_clamp), numerics="official")
    return ImportedModel(model, modules, "stylegan2-ada-pytorch", info)


# ------------------------------------------------------------------------------ rosinality
def _ros_g_name(key: str, n_mlp: int) -> str:
    m = re.fullmatch(r"style\.(\d+)\.(weight|bias)", key)
    if m and 1 <= int(m.group(1)) <= n_mlp:
        return f"mapping.layers.{int(m.group(1)) - 1}.{m.group(2)}"
    if key == "input.input":
        return "synthesis.blocks.0.const"
    m = re.fullmatch(r"noises\.noise_(\d+)", key)
    if m:
        i = int(m.group(1))  # noise layers: 4x4 conv1, then conv0/conv1 of every later block
        return f"synthesis.blocks.{(i + 1) // 2}.{'conv1' if i % 2 == 0 else 'conv0'}.noise.const_noise"
    m = re.fullmatch(r"(conv1|convs\.(\d+))\.(conv\.weight|conv\.modulation\.weight|conv\.modulation\.bias|"
                     r"noise\.weight|activate\.bias)", key)
    if m:
        if m.group(1) == "conv1":
            block, layer = 0, "conv1"
        else:
            i = int(m.group(2))
            block, layer = i // 2 + 1, ("conv0", "conv1")[i % 2]
        tail = {"conv.weight": "conv.weight", "conv.modulation.weight": "conv.affine.weight",
                "conv.modulation.bias": "conv.affine.bias", "noise.weight": "noise.strength",
                "activate.bias": "bias"}[m.group(3)]
        return f"synthesis.blocks.{block}.{layer}.{tail}"
    m = re.fullmatch(r"(to_rgb1|to_rgbs\.(\d+))\.(conv\.weight|conv\.modulation\.weight|conv\.modulation\.bias|bias)",
                     key)
    if m:
        block = 0 if m.group(1) == "to_rgb1" else int(m.group(2)) + 1
        tail = {"conv.weight": "conv.weight", "conv.modulation.weight": "conv.affine.weight",
                "conv.modulation.bias": "conv.affine.bias", "bias": "bias"}[m.group(3)]
        return f"synthesis.blocks.{block}.torgb.{tail}"
    raise KeyError(key)


def _ros_d_name(key: str) -> str | None:
    if re.fullmatch(r"convs\.\d+\.(conv2|skip)\.0\.kernel", key):
        return None  # the blur filters: checked separately, constant
    table = {"convs.0.0.weight": "from_rgb.weight", "convs.0.1.bias": "from_rgb.bias",
             "final_conv.0.weight": "conv.weight", "final_conv.1.bias": "conv.bias",
             "final_linear.0.weight": "fc.weight", "final_linear.0.bias": "fc.bias",
             "final_linear.1.weight": "out.weight", "final_linear.1.bias": "out.bias"}
    if key in table:
        return table[key]
    m = re.fullmatch(r"convs\.(\d+)\.(conv1\.0\.weight|conv1\.1\.bias|conv2\.1\.weight|conv2\.2\.bias|skip\.1\.weight)",
                     key)
    if m and int(m.group(1)) >= 1:
        tail = {"conv1.0.weight": "conv0.weight", "conv1.1.bias": "conv0.bias", "conv2.1.weight": "conv1.weight",
                "conv2.2.bias": "conv1.bias", "skip.1.weight": "skip.weight"}[m.group(2)]
        return f"blocks.{int(m.group(1)) - 1}.{tail}"
    raise KeyError(key)


def _ros_reshape(name: str, t: torch.Tensor) -> torch.Tensor:
    """rosinality's shapes -> linkgan's: modulated weights lose their leading 1, constants and noise
    their batch axes, biases of toRGB their singleton axes, noise strengths become scalars."""
    if name.endswith("conv.weight") and t.ndim == 5:
        return t[0]
    if name.endswith(".const") and t.ndim == 4:
        return t[0]
    if name.endswith("const_noise") and t.ndim == 4:
        return t[0, 0]
    if name.endswith("torgb.bias") and t.ndim == 4:
        return t.reshape(-1)
    if name.endswith("noise.strength"):
        return t.reshape([])
    return t


def convert_rosinality(path: Path, ckpt) -> ImportedModel:
    """linkgan state dicts and config from a rosinality/stylegan2-pytorch checkpoint dict."""
    if not isinstance(ckpt, dict) or "g_ema" not in ckpt or not isinstance(ckpt["g_ema"], dict):
        keys = sorted(map(str, ckpt)) if isinstance(ckpt, dict) else type(ckpt).__name__
        _fail(path, f"is a torch file but not a rosinality StyleGAN2 checkpoint (no 'g_ema' state dict; found {keys})")
    known = {"g", "d", "g_ema", "g_optim", "d_optim", "args", "ada_aug_p", "latent_avg"}
    unexpected = sorted(set(map(str, ckpt)) - known)
    if unexpected:
        _fail(path, f"has entries a rosinality checkpoint does not: {unexpected} (expected some of {sorted(known)})")
    g_ema = ckpt["g_ema"]
    args = ckpt.get("args")
    n_mlp = len([k for k in g_ema if re.fullmatch(r"style\.\d+\.weight", k)])
    if n_mlp == 0 or "input.input" not in g_ema or "to_rgb1.conv.weight" not in g_ema:
        _fail(path, "its g_ema is not a rosinality StyleGAN2 generator (no style.*, input.input or to_rgb1 tensors)")
    num_rgbs = len({k.split(".")[1] for k in g_ema if k.startswith("to_rgbs.")})
    res = _check_resolution(path, 2 ** (num_rgbs + 2))
    if args is not None and getattr(args, "size", res) != res:
        _fail(path, f"its saved options say size {getattr(args, 'size', None)} but the weights are for {res} px")
    w_dim = int(g_ema["style.1.weight"].shape[0])
    z_dim = int(g_ema["style.1.weight"].shape[1])
    rgb_channels = int(g_ema["to_rgb1.conv.weight"].shape[1])
    if rgb_channels != 3:
        _fail(path, f"it makes {rgb_channels}-channel images; linkgan models are RGB (3 channels)")
    widths = {4: int(g_ema["input.input"].shape[1])}
    for j in range(num_rgbs):
        widths[2 ** (j + 3)] = int(g_ema[f"convs.{2 * j}.conv.weight"].shape[1])
    channel_base, channel_max = _widths_to_config(path, widths, 16384 * getattr(args, "channel_multiplier", 0) or None)
    lr_mul = float(getattr(args, "lr_mlp", 0.01)) if args is not None else 0.01
    modules = {}
    for src, dst in (("g_ema", "G_ema"), ("g", "G")):
        if isinstance(ckpt.get(src), dict):
            sd = {k: v for k, v in ckpt[src].items() if not k.endswith("upsample.kernel") and not k.endswith("blur.kernel")}
            for k, v in ckpt[src].items():
                if k.endswith("kernel"):
                    _check_filter(path, f"its {src}", v / 4.0 if k.endswith("upsample.kernel") else v)
            renamed = _rename(path, src, sd, lambda k: _ros_g_name(k, n_mlp))
            modules[dst] = {k: _ros_reshape(k, v) for k, v in renamed.items()}
    if "G" not in modules:
        modules["G"] = dict(modules["G_ema"])
    latent_avg = ckpt.get("latent_avg")
    info = {"args": {k: v for k, v in vars(args).items() if isinstance(v, (int, float, str, bool))} if args is not None
            else {}}
    for dst in ("G_ema", "G"):
        if latent_avg is not None:
            modules[dst]["mapping.w_avg"] = torch.as_tensor(latent_avg, dtype=torch.float32).reshape(-1)
    info["w_avg"] = "latent_avg" if latent_avg is not None else "estimated from 10000 samples of z"
    if isinstance(ckpt.get("d"), dict):
        d = ckpt["d"]
        for k, v in d.items():
            if k.endswith(".0.kernel"):
                _check_filter(path, "its d", v)
        modules["D"] = _rename(path, "D", d, _ros_d_name)
    model = ModelConfig(resolution=res, z_dim=z_dim, w_dim=w_dim, mapping_layers=n_mlp, mapping_lr_mul=lr_mul,
                        channel_base=channel_base, channel_max=channel_max, img_channels=3, mbstd_group=4,
                        conv_clamp=None, numerics="rosinality")
    return ImportedModel(model, modules, "rosinality", info)


def read_torch_file(path: Path):
    """A torch.save file, with weights_only (only argparse.Namespace is added, for saved options)."""
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise ModelImportError(f"{path} holds objects that linkgan will not load ({str(e).splitlines()[0][:200]}); "
                               "a rosinality checkpoint holds only state dicts, its options and latent_avg") from None
    except (RuntimeError, EOFError, ValueError, zipfile.BadZipFile, OSError) as e:
        raise ModelImportError(f"{path} is not a readable torch checkpoint ({str(e).splitlines()[0][:200]}); it may "
                               "be truncated") from None


# ------------------------------------------------------------------------------ entry point
def detect_format(path: Path) -> str:
    """'rosinality' for torch.save files (zip, or the legacy pickle with torch's magic number),
    'stylegan2-ada-pytorch' for other pickles."""
    with open(path, "rb") as f:
        head = f.read(16)
    if not head:
        raise ModelImportError(f"{path} is empty")
    if zipfile.is_zipfile(path):
        return "rosinality"
    if head[:1] != b"\x80":
        raise ModelImportError(f"{path} is neither a pickle nor a torch checkpoint (it starts with {head[:8]!r})")
    # Legacy torch.save files start with a pickled magic number (protocol 2, LONG1 0x1950a86a20f9469cfc6c).
    if head[2:4] == b"\x8a\x0a" and head[4:14] == (0x1950a86a20f9469cfc6c).to_bytes(10, "little"):
        return "rosinality"
    return "stylegan2-ada-pytorch"


def load_foreign(src: str | Path) -> ImportedModel:
    """Reads and converts ``src`` (format detected from its bytes); nothing is written."""
    path = Path(src)
    if not path.is_file():
        raise ModelImportError(f"{path} does not exist" if not path.exists() else f"{path} is not a file")
    fmt = detect_format(path)
    if fmt == "rosinality":
        return convert_rosinality(path, read_torch_file(path))
    return convert_nvidia(path, read_pickle(path))


def _estimate_w_avg(G, n: int = 10000) -> torch.Tensor:
    """The mean w of n random z (for checkpoints that store no average w)."""
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        return torch.cat([G.mapping(torch.randn(1000, G.z_dim, generator=gen))[:, 0] for _ in range(n // 1000)]).mean(0)


def build_imported(imported: ImportedModel, path) -> dict[str, torch.nn.Module]:
    """linkgan networks holding the imported weights; every name and shape is checked."""
    from .networks.build import build_discriminator, build_generator

    nets = {}
    for name, sd in imported.modules.items():
        net = build_generator(imported.model) if name.startswith("G") else build_discriminator(imported.model)
        own = net.state_dict()
        if name.startswith("G") and "mapping.w_avg" not in sd:
            sd = dict(sd)
            sd["mapping.w_avg"] = None  # filled below, once the mapping weights are in
        missing = sorted(set(own) - set(sd))
        unexpected = sorted(set(sd) - set(own))
        wrong = [f"{k} {tuple(sd[k].shape)} (expected {tuple(own[k].shape)})" for k in own
                 if k in sd and sd[k] is not None and tuple(sd[k].shape) != tuple(own[k].shape)]
        if missing or unexpected or wrong:
            _fail(path, f"its {name} does not fit the StyleGAN2 it describes: "
                        + "; ".join(p for p in (f"missing {missing[:4]}" if missing else "",
                                                f"unexpected {unexpected[:4]}" if unexpected else "",
                                                f"wrong shapes {wrong[:3]}" if wrong else "") if p))
        bad = [k for k, v in sd.items() if v is not None and v.is_floating_point() and not torch.isfinite(v).all()]
        if bad:
            _fail(path, f"its {name} has non-finite weights in {bad[:3]}")
        net.load_state_dict({k: (own[k] if v is None else v.to(own[k].dtype)) for k, v in sd.items()})
        if name.startswith("G") and sd["mapping.w_avg"] is None:
            net.mapping.w_avg.copy_(_estimate_w_avg(net))
        nets[name] = net.eval()
    return nets


def import_model(src: str | Path, out: str | Path, force: bool = False) -> Path:
    """Converts ``src`` (an NVIDIA pickle or a rosinality checkpoint) into the linkgan checkpoint
    ``out``. Refuses an existing ``out`` unless ``force``. Returns the written path."""
    out = Path(out)
    if out.suffix != ".safetensors":
        raise ModelImportError(f"--out {out} must end in .safetensors (linkgan checkpoints are safetensors files)")
    if out.exists() and not force:
        raise ModelImportError(f"{out} exists; pass --force to overwrite it")
    if out.exists() and out.is_dir():
        raise ModelImportError(f"{out} is a directory; give a file name ending in .safetensors")
    imported = load_foreign(src)
    nets = build_imported(imported, src)
    config = RunConfig(model=imported.model)
    state = {"imported_from": {"source": str(Path(src).resolve()), "format": imported.source_format,
                               "has": sorted(nets), **imported.info}}
    return save_checkpoint(out, nets, config.to_dict(), state=state, with_rng=False)


__all__ = ["CHECKPOINT_FORMAT", "IMPORT_FORMATS", "ImportedModel", "ModelImportError", "PersistentRecord",
           "SafeUnpickler", "build_imported", "convert_nvidia", "convert_rosinality", "detect_format",
           "import_model", "load_foreign", "read_pickle"]

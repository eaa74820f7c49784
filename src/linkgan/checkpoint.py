"""Checkpoints as safetensors files: weights, optimizer and RNG state as tensors, the config
and counters as JSON metadata. Loading never unpickles anything.

Layout of one file:
  tensors   ``G.<param>``, ``D.<param>``, ``G_ema.<param>``   module state dicts
            ``opt.<name>.<index>.<key>``                     Adam moments per parameter
            ``rng.torch``, ``rng.cuda.<i>``                  RNG states as uint8
            ``state.<name>``                                 extra training tensors
  metadata  ``format`` = linkgan-checkpoint, ``version``, ``config`` (RunConfig JSON),
            ``state`` (JSON: step counters, optimizer hyper-parameters, numpy/python RNG)
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .config import ConfigError, migrate_config
from .errors import InputError
from .tensorfile import TensorFileError, read_tensors, write_tensors

FORMAT = "linkgan-checkpoint"
VERSION = 1
CKPT_PATTERN = re.compile(r"^ckpt-(\d+)\.safetensors$")
LEGACY_NUMERICS = "legacy"  # ModelConfig.numerics of checkpoints that do not record it


class CheckpointError(InputError):
    """A checkpoint is missing, corrupt, or does not fit the model; the message names the file."""


@dataclass
class Checkpoint:
    path: Path
    tensors: dict[str, torch.Tensor]
    config: dict
    state: dict

    def module_state(self, prefix: str) -> dict[str, torch.Tensor]:
        p = prefix + "."
        return {k[len(p):]: v for k, v in self.tensors.items() if k.startswith(p)}

    def has(self, prefix: str) -> bool:
        p = prefix + "."
        return any(k.startswith(p) for k in self.tensors)


def checkpoint_name(images_seen: int) -> str:
    return f"ckpt-{images_seen:09d}.safetensors"


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """Checkpoints of a run directory, oldest first."""
    run_dir = Path(run_dir)
    found = [(int(m.group(1)), p) for p in run_dir.glob("ckpt-*.safetensors") if (m := CKPT_PATTERN.match(p.name))]
    return [p for _, p in sorted(found)]


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint file, a run directory meaning its newest checkpoint, or ``builtin:NAME``
    (a model shipped with the package, see linkgan.pretrained)."""
    from .pretrained import resolve_builtin

    builtin = resolve_builtin(path)
    if builtin is not None:
        return builtin
    path = Path(path)
    if path.is_dir():
        ckpts = list_checkpoints(path)
        if not ckpts:
            raise CheckpointError(f"{path} is a directory without checkpoints (ckpt-*.safetensors); "
                                  "give a run directory that has trained for at least one snapshot, or a file")
        return ckpts[-1]
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist")
    return path


def _optimizer_tensors(name: str, opt: torch.optim.Optimizer) -> tuple[dict, dict]:
    sd = opt.state_dict()
    tensors = {}
    for idx, st in sd["state"].items():
        for key, val in st.items():
            t = val if torch.is_tensor(val) else torch.tensor(val)
            tensors[f"opt.{name}.{idx}.{key}"] = t.detach().cpu().contiguous()
    return tensors, {"param_groups": sd["param_groups"]}


def capture_rng() -> tuple[dict, dict]:
    """Every RNG state the training loop uses: torch (CPU and CUDA), numpy and python."""
    tensors = {"rng.torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = s
    np_state = np.random.get_state()
    meta = {"numpy": [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]), float(np_state[4])],
            "python": [random.getstate()[0], list(random.getstate()[1]), random.getstate()[2]]}
    return tensors, meta


def restore_rng(ckpt: Checkpoint) -> None:
    torch.set_rng_state(ckpt.tensors["rng.torch"])
    if torch.cuda.is_available():
        states = [ckpt.tensors[k] for k in sorted(ckpt.tensors) if k.startswith("rng.cuda.")]
        if len(states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(states)
    rng = ckpt.state.get("rng")
    if rng:
        n = rng["numpy"]
        np.random.set_state((n[0], np.array(n[1], dtype=np.uint32), n[2], n[3], n[4]))
        p = rng["python"]
        random.setstate((p[0], tuple(p[1]), p[2]))


def save_checkpoint(path: str | Path, modules: dict[str, nn.Module], config: dict,
                    optimizers: dict[str, torch.optim.Optimizer] | None = None, state: dict | None = None,
                    extra_tensors: dict[str, torch.Tensor] | None = None, with_rng: bool = True) -> Path:
    """Writes a checkpoint atomically: a temporary file in the same folder, then a rename."""
    path = Path(path)
    tensors: dict[str, torch.Tensor] = {}
    for name, module in modules.items():
        for k, v in module.state_dict().items():
            tensors[f"{name}.{k}"] = v.detach().cpu().contiguous()
    state = dict(state or {})
    opt_meta = {}
    for name, opt in (optimizers or {}).items():
        t, m = _optimizer_tensors(name, opt)
        tensors.update(t)
        opt_meta[name] = m
    state["optimizers"] = opt_meta
    if with_rng:
        t, m = capture_rng()
        tensors.update(t)
        state["rng"] = m
    for k, v in (extra_tensors or {}).items():
        tensors[f"state.{k}"] = v.detach().cpu().contiguous()
    metadata = {"format": FORMAT, "version": str(VERSION), "config": json.dumps(config),
                "state": json.dumps(state)}
    return write_tensors(path, tensors, metadata)


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Reads a checkpoint file or a run directory's newest checkpoint (no code is unpickled)."""
    path = resolve_checkpoint(path)
    try:
        tensors, metadata = read_tensors(path, FORMAT, "linkgan checkpoint")
    except TensorFileError as e:
        raise CheckpointError(str(e)) from None
    if int(metadata.get("version", 0)) > VERSION:
        raise CheckpointError(f"{path} was written by a newer linkgan (checkpoint version {metadata['version']}); "
                              "upgrade linkgan to load it")
    try:
        config = json.loads(metadata["config"])
        state = json.loads(metadata.get("state", "{}"))
    except (KeyError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path} has damaged metadata ({e})") from None
    if isinstance(config, dict) and isinstance(config.get("model"), dict):
        # Written before ModelConfig.numerics existed: those networks computed linkgan's first
        # dialect, and must keep computing exactly that.
        config["model"].setdefault("numerics", LEGACY_NUMERICS)
    if isinstance(config, dict):
        try:  # version-1 configs kept the link and 3D options flat; every reader sees version 2
            config = migrate_config(config)
        except ConfigError as e:
            raise CheckpointError(f"{path} has a damaged config ({e})") from None
    return Checkpoint(path, tensors, config, state)


def load_module(module: nn.Module, ckpt: Checkpoint, prefix: str) -> None:
    """Loads ``prefix.*`` tensors into ``module``, checking every key and shape first."""
    sd = ckpt.module_state(prefix)
    if not sd:
        raise CheckpointError(f"{ckpt.path} has no weights for '{prefix}'")
    own = module.state_dict()
    missing = sorted(set(own) - set(sd))
    unexpected = sorted(set(sd) - set(own))
    wrong = [f"{k}: file {tuple(sd[k].shape)} vs model {tuple(own[k].shape)}"
             for k in own if k in sd and sd[k].shape != own[k].shape]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} tensors (e.g. {missing[:3]})")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)} tensors (e.g. {unexpected[:3]})")
        if wrong:
            parts.append(f"wrong shapes: {wrong[:3]}")
        raise CheckpointError(f"{ckpt.path}: '{prefix}' does not match the model built from its config: "
                              + "; ".join(parts))
    bad = [k for k, v in sd.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise CheckpointError(f"{ckpt.path}: '{prefix}' holds NaN or Inf in {len(bad)} tensors (e.g. {bad[:3]}); "
                              "it would render nothing. Use an earlier checkpoint of the run")
    # Exported weights may be stored in float16 (the shipped models); the model computes in its own dtype.
    module.load_state_dict({k: v.to(own[k].dtype) if v.is_floating_point() else v for k, v in sd.items()})


def load_optimizer(opt: torch.optim.Optimizer, ckpt: Checkpoint, name: str) -> None:
    """Restores an optimizer saved under ``name`` (its moments and hyper-parameters)."""
    bad = [k for k, v in ckpt.tensors.items() if k.startswith(f"opt.{name}.") and v.is_floating_point()
           and not torch.isfinite(v).all()]
    if bad:
        raise CheckpointError(f"{ckpt.path}: the optimizer state of '{name}' holds NaN or Inf (e.g. {bad[:2]}), so "
                              "training would fail again at once. Resume from an earlier checkpoint of the run, or "
                              "start a new run with --init from a checkpoint whose weights are finite")
    meta = ckpt.state.get("optimizers", {}).get(name)
    if meta is None:
        raise CheckpointError(f"{ckpt.path} holds no state for optimizer '{name}' (is it a weights-only export?)")
    state: dict[int, dict] = {}
    prefix = f"opt.{name}."
    for k, v in ckpt.tensors.items():
        if k.startswith(prefix):
            idx, key = k[len(prefix):].split(".", 1)
            state.setdefault(int(idx), {})[key] = v
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def prune_checkpoints(run_dir: str | Path, keep: int) -> None:
    """Deletes all but the ``keep`` newest checkpoints of a run directory."""
    if keep <= 0:
        return
    for p in list_checkpoints(run_dir)[:-keep]:
        p.unlink(missing_ok=True)

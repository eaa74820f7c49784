"""The LinkGAN latent partition: which channels of W belong to which image region.

The partition is made in W (``w_dim`` channels, 512 in StyleGAN2), not in Z, because the
mapping network mixes every z axis. Each link ties a disjoint, contiguous group of W
channels ``[start, stop)`` to one region; every other channel of W is that link's
complement, except the optional shared channels (``shared``: the last channels of W, which no
link owns and no complement edit moves, so that they may set what spans several regions, such as
a colour of the whole image). The regularizer perturbs a group and its complement separately, and editing
resamples a group, so this module also holds the tensor helpers that touch exactly one
group and leave every other channel bit-identical.

A links file (YAML) looks like::

    links:
      - {name: eyes,  region: {box: [0.22, 0.36, 0.78, 0.52]}, axes: 64}
      - {name: mouth, region: {box: [0.32, 0.66, 0.68, 0.82]}, axes: 64}
    allow_overlap: false   # optional

``axes`` is either a channel count ``n`` ("the next free block of n channels") or an
explicit half-open range ``[start, stop]`` / ``"start:stop"``.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from .errors import InputError
from .regions import Region, RegionError, SemanticRegion, masks_overlap, parse_region_shorthand, region_from_spec

__all__ = [
    "EditBatch",
    "LatentPartition",
    "Link",
    "LinkError",
    "interpolate_channels",
    "load_links_file",
    "parse_link_shorthand",
    "perturb_channels",
    "replace_channels",
]

# Fixed regions are checked for overlap at this resolution when the training resolution
# is not known: fine enough to catch real overlaps, coarse enough to be instant.
OVERLAP_CHECK_RES = 256

_NAME_RE = re.compile(r"^[A-Za-z0-9_-]+$")
_AXES_HELP = "an integer n (the next free block of n channels) or a range [start, stop] / \"start:stop\""


class LinkError(InputError):
    """A link or a partition is invalid; the message names the link(s) and the fix.

    Problems with a link's region itself raise ``RegionError`` (also a ValueError), with
    the link's name in the message.
    """


@dataclass(frozen=True)
class Link:
    """One region tied to the W channels ``axes = (start, stop)``, half-open.

    ``weight`` scales this link's regularizer terms (lambda_in and lambda_out) against the
    training options' values, so that links of different difficulty can be held differently.
    """

    name: str
    region: Region
    axes: tuple[int, int]
    weight: float = 1.0

    def __post_init__(self) -> None:
        # Accept [start, stop] lists (as read from YAML) but store a hashable tuple.
        if isinstance(self.axes, list):
            object.__setattr__(self, "axes", tuple(self.axes))

    @property
    def size(self) -> int:
        """Number of W channels in the group."""
        return self.axes[1] - self.axes[0]

    def to_spec(self) -> dict:
        """``{name, region, axes: [start, stop]}`` (and ``weight`` unless 1), the form written to a links file."""
        spec = {"name": self.name, "region": self.region.to_spec(), "axes": [self.axes[0], self.axes[1]]}
        if self.weight != 1.0:
            spec["weight"] = self.weight
        return spec


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _parse_weight(name: str, weight) -> float:
    """A link's ``weight`` field: a finite number > 0."""
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight) or weight <= 0:
        raise LinkError(f"link '{name}': weight {weight!r} must be a number > 0 (the factor on its lambda_in and "
                        f"lambda_out; default 1)")
    return float(weight)


def _parse_axes(name: str, axes) -> int | tuple[int, int]:
    """A link's ``axes`` field as a channel count (int) or an explicit (start, stop) range."""
    if _is_int(axes):
        return axes
    if isinstance(axes, str):
        text = axes.strip()
        if re.fullmatch(r"[+-]?\d+", text):
            return int(text)
        parts = text.split(":")
        if len(parts) == 2 and all(re.fullmatch(r"\s*[+-]?\d+\s*", p) for p in parts):
            return int(parts[0]), int(parts[1])
    elif isinstance(axes, Sequence) and len(axes) == 2 and all(_is_int(v) for v in axes):
        return int(axes[0]), int(axes[1])
    raise LinkError(f"link '{name}': axes {axes!r} is not {_AXES_HELP}")


def _free_ranges(taken: list[tuple[int, int]], w_dim: int) -> list[tuple[int, int]]:
    """Gaps of [0, w_dim) not covered by the (possibly overlapping) ``taken`` ranges."""
    free, cursor = [], 0
    for start, stop in sorted(taken):
        if start > cursor:
            free.append((cursor, min(start, w_dim)))
        cursor = max(cursor, stop)
    if cursor < w_dim:
        free.append((cursor, w_dim))
    return [(a, b) for a, b in free if a < b]


def _fmt_range(r: tuple[int, int]) -> str:
    return f"[{r[0]}, {r[1]})"


class LatentPartition:
    """Disjoint groups of W channels, one per link, each tied to an image region.

    ``links``: the links, in declaration order. ``w_dim``: channels of W. ``resolution``:
    the training resolution, when known, to check that every fixed region covers at least
    one pixel (and to check overlaps at; 256 otherwise). ``allow_overlap``: accept fixed
    regions that share pixels. ``shared``: how many of the last channels of W are shared: in no
    link and in no link's complement, so that the regularizer lets them change every region
    (--link-shared-axes). Invalid partitions raise LinkError or RegionError.
    An empty partition (no links) is valid and describes a vanilla model.
    """

    def __init__(self, links: Sequence[Link], w_dim: int, resolution: int | None = None,
                 allow_overlap: bool = False, shared: int = 0) -> None:
        if not _is_int(w_dim) or w_dim < 1:
            raise LinkError(f"w_dim must be a positive integer, got {w_dim!r}")
        _check_shared(shared, w_dim)
        if resolution is not None and (not _is_int(resolution) or resolution < 1):
            raise LinkError(f"resolution must be a positive integer or None, got {resolution!r}")
        self.w_dim = int(w_dim)
        self.allow_overlap = bool(allow_overlap)
        self.shared = int(shared)
        self._links: dict[str, Link] = {}
        for link in links:
            if not isinstance(link, Link):
                raise LinkError(f"LatentPartition takes Link objects, got {link!r}; "
                                f"use LatentPartition.from_specs for dicts")
            self._check_name(link.name)
            if self.names_shared(link.name):
                raise LinkError(f"a link is named {SHARED!r}, the name that edits the {shared} shared axes "
                                f"(--link-shared-axes); rename the link")
            if link.name in self._links:
                raise LinkError(f"two links are named '{link.name}'; give each link a unique name")
            self._links[link.name] = link
        self._check_axes()
        self._check_regions(resolution)

    # -- construction -----------------------------------------------------------------
    @classmethod
    def from_specs(cls, specs: Sequence[Mapping], w_dim: int, resolution: int | None = None,
                   allow_overlap: bool = False, base_dir: str | os.PathLike | None = None,
                   segmenter: str | None = None, shared: int = 0) -> LatentPartition:
        """Build a partition from link specs ``{name, region, axes}`` as found in a links file.

        A spec may also give ``weight`` (a positive number, default 1): the factor on this
        link's lambda_in and lambda_out.

        Explicit ranges are placed first; then each link given as a channel count ``n`` takes,
        in declaration order, the lowest free block of ``n`` contiguous channels. With counts
        only, the first link gets ``[0, n)``, as in the paper. ``base_dir`` resolves relative
        mask and segmenter paths. ``segmenter`` serves the semantic regions that name none.
        ``shared``: the last ``shared`` channels of W are shared (see the class), and no link is
        placed there.
        """
        if not _is_int(w_dim) or w_dim < 1:
            raise LinkError(f"w_dim must be a positive integer, got {w_dim!r}")
        if isinstance(specs, (str, bytes, Mapping)) or not isinstance(specs, Sequence):
            raise LinkError(f"links must be a list of {{name, region, axes}} mappings, got {specs!r}")
        parsed: list[tuple[str, Region, int | tuple[int, int]]] = []
        weights: dict[str, float] = {}
        for k, spec in enumerate(specs):
            if not isinstance(spec, Mapping):
                raise LinkError(f"link #{k + 1} must be a mapping {{name, region, axes}}, got {spec!r}")
            name = spec.get("name")
            label = name if isinstance(name, str) and name else f"#{k + 1}"
            missing = [key for key in ("name", "region", "axes") if key not in spec]
            extra = [key for key in spec if key not in ("name", "region", "axes", "weight")]
            if missing or extra:
                problem = f"is missing {missing!r}" if missing else f"has unknown key(s) {extra!r}"
                raise LinkError(f"link '{label}' {problem}; a link is {{name: ..., region: {{box: [x0, y0, x1, y1]}}, "
                                f"axes: 64}}, optionally with weight: 1.0")
            cls._check_name(name)
            if any(name == seen for seen, _, _ in parsed):
                raise LinkError(f"two links are named '{name}'; give each link a unique name")
            try:
                region = region_from_spec(spec["region"], base_dir=base_dir)
                if isinstance(region, SemanticRegion):
                    region = region.with_segmenter(segmenter)
            except RegionError as err:
                raise RegionError(f"link '{name}': {err}") from None
            parsed.append((name, region, _parse_axes(name, spec["axes"])))
            weights[name] = _parse_weight(name, spec.get("weight", 1.0))

        # Validate what can be validated before assigning blocks, so that errors name the
        # user's own numbers rather than the ranges they were turned into.
        explicit = [(n, a) for n, _, a in parsed if isinstance(a, tuple)]
        counts = [(n, a) for n, _, a in parsed if isinstance(a, int)]
        for n, (start, stop) in explicit:
            _check_range(n, start, stop, w_dim)
        for n, size in counts:
            if size <= 0:
                raise LinkError(f"link '{n}' asks for {size} axes; give it at least 1 channel of W")
        _check_shared(shared, w_dim)
        requested = sum(a[1] - a[0] if isinstance(a, tuple) else a for _, _, a in parsed)
        if requested + shared > w_dim:
            detail = ", ".join(f"{n} {a[1] - a[0] if isinstance(a, tuple) else a}" for n, _, a in parsed)
            also = f" and {shared} shared axes" if shared else ""
            raise LinkError(f"the links ask for {requested} channels of W in total ({detail}){also} but w_dim is "
                            f"{w_dim}; give the links fewer axes" + (", share fewer axes" if shared else "")
                            + " or use a bigger --w-dim")

        taken = [a for _, a in explicit] + ([(w_dim - shared, w_dim)] if shared else [])
        assigned: dict[str, tuple[int, int]] = dict(explicit)
        for n, size in counts:
            block = next(((a, a + size) for a, b in _free_ranges(taken, w_dim) if b - a >= size), None)
            if block is None:
                free = ", ".join(_fmt_range(r) for r in _free_ranges(taken, w_dim)) or "none"
                raise LinkError(f"link '{n}' asks for {size} contiguous channels of W, but no free block is "
                                f"that long (free: {free}); give it fewer axes, an explicit range, or use a "
                                f"bigger --w-dim")
            taken.append(block)
            assigned[n] = block
        links = [Link(n, region, assigned[n], weights[n]) for n, region, _ in parsed]
        return cls(links, w_dim, resolution=resolution, allow_overlap=allow_overlap, shared=shared)

    # -- validation ---------------------------------------------------------------------
    @staticmethod
    def _check_name(name) -> None:
        if not isinstance(name, str) or not name:
            raise LinkError(f"link name {name!r} must be a non-empty string, e.g. eyes")
        if not _NAME_RE.match(name):
            raise LinkError(f"link name {name!r} may only use letters, digits, '_' and '-'; rename it, e.g. "
                            f"{re.sub(r'[^A-Za-z0-9_-]+', '_', name).strip('_') or 'region1'!r}")

    def _check_axes(self) -> None:
        for link in self._links.values():
            if (not isinstance(link.axes, tuple) or len(link.axes) != 2
                    or not all(_is_int(v) for v in link.axes)):
                raise LinkError(f"link '{link.name}': axes {link.axes!r} must be a (start, stop) pair of ints")
            _check_range(link.name, *link.axes, self.w_dim)
        ordered = sorted(self._links.values(), key=lambda link: link.axes)
        for a, b in zip(ordered, ordered[1:]):
            if b.axes[0] < a.axes[1]:
                raise LinkError(
                    f"links '{a.name}' {_fmt_range(a.axes)} and '{b.name}' {_fmt_range(b.axes)} share W channels; "
                    f"each link needs its own channels: move one range, or give axes as counts so they are "
                    f"assigned without overlap")
        if self.shared and ordered and ordered[-1].axes[1] > self.w_dim - self.shared:
            link = ordered[-1]
            raise LinkError(f"link '{link.name}' {_fmt_range(link.axes)} reaches into the {self.shared} shared "
                            f"axes {_fmt_range((self.w_dim - self.shared, self.w_dim))}; give it axes below "
                            f"{self.w_dim - self.shared} or share fewer axes")
        total = sum(link.size for link in self._links.values())
        if total + self.shared >= self.w_dim and len(self._links) == 1:
            (link,) = self._links.values()
            rest = f" with the {self.shared} shared axes" if self.shared else ""
            raise LinkError(f"link '{link.name}' takes all {self.w_dim} channels of W{rest}, leaving no complement "
                            f"to perturb; give it fewer axes" + (" or share fewer" if self.shared else ""))

    def _check_regions(self, resolution: int | None) -> None:
        fixed = [link for link in self._links.values() if link.region.is_fixed]
        for link in fixed:
            link.region.validate(resolution, link.name)
        if self.allow_overlap:
            return
        res = resolution or OVERLAP_CHECK_RES
        for i, a in enumerate(fixed):
            for b in fixed[i + 1:]:
                if masks_overlap(a.region, b.region, res):
                    shared = int((a.region.mask(res) & b.region.mask(res)).sum())
                    raise LinkError(
                        f"the regions of links '{a.name}' ({a.region.describe()}) and '{b.name}' "
                        f"({b.region.describe()}) overlap ({shared} shared pixels at {res}x{res}); LinkGAN "
                        f"regions are normally disjoint: shrink one of them, or set allow_overlap: true in "
                        f"the links file if this is intended")

    # -- queries ----------------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        """Link names, in declaration order."""
        return list(self._links)

    @property
    def edit_names(self) -> list[str]:
        """The names an edit may take: the links, then 'shared' when the partition has shared axes."""
        return self.names + ([SHARED] if self.shared else [])

    @property
    def links(self) -> list[Link]:
        return list(self._links.values())

    def __len__(self) -> int:
        return len(self._links)

    def __iter__(self) -> Iterator[Link]:
        return iter(self._links.values())

    def __contains__(self, name) -> bool:
        return name in self._links

    def __getitem__(self, name: str) -> Link:
        try:
            return self._links[name]
        except (KeyError, TypeError):
            known = ", ".join(repr(n) for n in self._links) or "none (this partition has no links)"
            also = f" (and {SHARED!r}, its {self.shared} shared axes, to edit)" if self.shared else ""
            raise LinkError(f"unknown link {name!r}; known links: {known}{also}") from None

    def __eq__(self, other) -> bool:
        return (isinstance(other, LatentPartition) and self.w_dim == other.w_dim
                and self.links == other.links and self.allow_overlap == other.allow_overlap
                and self.shared == other.shared)

    def __repr__(self) -> str:
        inner = ", ".join(f"{link.name}={_fmt_range(link.axes)}:{link.region.kind}" for link in self)
        shared = f", shared={self.shared}" if self.shared else ""
        return f"LatentPartition(w_dim={self.w_dim}, links=[{inner}]{shared})"

    def axes_tensor(self, device=None) -> torch.Tensor:
        """bool (K, w_dim): row k is True on the W channels of the k-th link (in ``names`` order).
        The partition as one tensor, built once per device."""
        device = torch.device(device) if device is not None else torch.device("cpu")
        cache = self.__dict__.setdefault("_axes_tensors", {})
        if device not in cache:
            axes = torch.zeros(len(self), self.w_dim, dtype=torch.bool)
            for k, link in enumerate(self):
                axes[k, link.axes[0]:link.axes[1]] = True
            cache[device] = axes.to(device)
        return cache[device]

    def axes_mask(self, name: str, device=None) -> torch.Tensor:
        """bool (w_dim,): True on the W channels of link ``name`` (a row of ``axes_tensor``), or on
        the shared channels for ``SHARED`` ('shared') when the partition has them, so that every
        edit of a link's axes (resample, perturb, transplant, interpolate) can edit them too."""
        if self.names_shared(name):
            return self.shared_mask(device)
        self[name]  # unknown names fail here, listing the known ones
        return self.axes_tensor(device)[self.names.index(name)].clone()

    def names_shared(self, name: str) -> bool:
        """Whether ``name`` stands for the shared axes ('shared', in a partition that has them)."""
        return name == SHARED and self.shared > 0

    def shared_mask(self, device=None) -> torch.Tensor:
        """bool (w_dim,): True on the shared channels (the last ``shared`` of W)."""
        mask = torch.zeros(self.w_dim, dtype=torch.bool, device=device)
        if self.shared:
            mask[-self.shared:] = True
        return mask

    def complement_mask(self, name: str, device=None) -> torch.Tensor:
        """bool (w_dim,): True on every W channel outside link ``name``'s group, except the shared ones."""
        return ~self.axes_mask(name, device=device) & ~self.shared_mask(device)

    def complement_tensor(self, device=None) -> torch.Tensor:
        """bool (K, w_dim): row k is link k's complement (``complement_mask``), in ``names`` order."""
        return ~self.axes_tensor(device) & ~self.shared_mask(device)

    def free_axes(self, device=None) -> torch.Tensor:
        """bool (w_dim,): True on the W channels that belong to no link and are not shared."""
        return ~self.axes_tensor(device).any(0) & ~self.shared_mask(device)

    def region_mask(self, name: str, res: int, device=None) -> torch.Tensor:
        """bool (res, res): the fixed region of link ``name``; semantic regions raise RegionError."""
        return self[name].region.mask(res, device=device)

    def to_specs(self) -> list[dict]:
        """Link specs with explicit ``[start, stop]`` axes, so that a saved config reproduces exactly."""
        return [link.to_spec() for link in self]

    def to_document(self) -> dict:
        """The whole links file as a dict: ``{links: [...], allow_overlap: bool}``."""
        return {"links": self.to_specs(), "allow_overlap": self.allow_overlap}

    # -- perturbation ---------------------------------------------------------------------
    def _mask_for(self, ws: torch.Tensor, name: str, complement: bool = False) -> torch.Tensor:
        if not torch.is_tensor(ws) or ws.dim() < 1 or ws.shape[-1] != self.w_dim:
            shape = tuple(ws.shape) if torch.is_tensor(ws) else type(ws).__name__
            raise LinkError(f"expected w of shape (N, {self.w_dim}) or ws of shape (N, num_ws, {self.w_dim}), "
                            f"got {shape}; the partition was built for w_dim={self.w_dim}")
        return self.complement_mask(name, device=ws.device) if complement else self.axes_mask(name, device=ws.device)

    def replace_axes(self, ws: torch.Tensor, source: torch.Tensor, name: str) -> torch.Tensor:
        """``ws`` with link ``name``'s channels taken from ``source`` (resample or transplant a region).

        ``ws``: (N, w_dim) or (N, num_ws, w_dim). ``source``: the same shape, or (N, w_dim) /
        (1, ...) broadcastable to it. Returns a new tensor shaped like ``ws``.
        """
        return replace_channels(ws, source, self._mask_for(ws, name))

    def perturb_axes(self, ws: torch.Tensor, name: str, delta: torch.Tensor) -> torch.Tensor:
        """``ws + delta`` on link ``name``'s channels only; ``delta`` shaped (N, w_dim) or like ``ws``."""
        return perturb_channels(ws, delta, self._mask_for(ws, name))

    def perturb_complement(self, ws: torch.Tensor, name: str, delta: torch.Tensor) -> torch.Tensor:
        """``ws + delta`` on link ``name``'s complement (every channel outside its group but the shared)."""
        return perturb_channels(ws, delta, self._mask_for(ws, name, complement=True))

    def replace_complement(self, ws: torch.Tensor, source: torch.Tensor, name: str) -> torch.Tensor:
        """``ws`` with link ``name``'s complement taken from ``source`` (its group and the shared
        channels stay ``ws``'s); shapes as in ``replace_axes``."""
        return replace_channels(ws, source, self._mask_for(ws, name, complement=True))

    def interpolate_axes(self, ws: torch.Tensor, target: torch.Tensor, name: str,
                         t: float | torch.Tensor) -> torch.Tensor:
        """Move link ``name``'s channels from ``ws`` (t=0) to ``target`` (t=1), linearly.

        ``t``: a float or an (N,) tensor, normally in [0, 1] (values outside extrapolate).
        """
        return interpolate_channels(ws, target, self._mask_for(ws, name), t)


# The name that edits the shared axes (`linkgan edit --link shared`) in a partition that has them.
SHARED = "shared"


def _check_shared(shared, w_dim: int) -> None:
    if not _is_int(shared) or not 0 <= shared < w_dim:
        raise LinkError(f"shared axes must be a whole number from 0 to {w_dim - 1} (w_dim is {w_dim}), got {shared!r}")


def _check_range(name: str, start: int, stop: int, w_dim: int) -> None:
    if start < 0:
        raise LinkError(f"link '{name}': axes [{start}, {stop}) start below channel 0; ranges are "
                        f"[start, stop) with 0 <= start < stop <= w_dim ({w_dim})")
    if start >= stop:
        raise LinkError(f"link '{name}': axes [{start}, {stop}) is an empty group; ranges are half-open "
                        f"[start, stop) with start < stop, e.g. [{start}, {start + 64}]")
    if stop > w_dim:
        raise LinkError(f"link '{name}': axes [{start}, {stop}) ask for channels up to {stop} but w_dim is "
                        f"{w_dim}; give the link fewer axes or use a bigger --w-dim")


# -- tensor helpers, on a channel mask ----------------------------------------------------
# torch.where copies unselected channels from the input unchanged, so everything outside
# the mask is bit-identical to the input (``ws + 0`` would be too, but ``lerp`` would not).

def _align(ws: torch.Tensor, other: torch.Tensor, what: str) -> torch.Tensor:
    """``other`` cast to ``ws``'s dtype/device, with (N, w_dim) lifted to (N, 1, w_dim) for ws (N, num_ws, w_dim)."""
    if not torch.is_tensor(other):
        other = torch.as_tensor(other)
    given = tuple(other.shape)
    other = other.to(device=ws.device, dtype=ws.dtype)
    if ws.dim() == 3 and other.dim() == 2:
        other = other.unsqueeze(1)
    try:
        shape = torch.broadcast_shapes(ws.shape, other.shape)
    except RuntimeError:
        shape = None
    if shape != ws.shape:
        raise LinkError(f"{what} of shape {given} does not broadcast to ws of shape "
                        f"{tuple(ws.shape)}; give it shape (N, w_dim) or the shape of ws")
    return other


def replace_channels(ws: torch.Tensor, source: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``ws`` with the channels where ``mask`` (bool (w_dim,)) is True taken from ``source``."""
    return torch.where(mask.to(ws.device), _align(ws, source, "source"), ws)


def perturb_channels(ws: torch.Tensor, delta: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``ws + delta`` where ``mask`` (bool (w_dim,)) is True, ``ws`` elsewhere."""
    return torch.where(mask.to(ws.device), ws + _align(ws, delta, "delta"), ws)


def interpolate_channels(ws: torch.Tensor, target: torch.Tensor, mask: torch.Tensor,
                         t: float | torch.Tensor) -> torch.Tensor:
    """``lerp(ws, target, t)`` where ``mask`` is True, ``ws`` elsewhere; ``t`` a float or (N,) tensor."""
    target = _align(ws, target, "target")
    if torch.is_tensor(t):
        t = t.to(device=ws.device, dtype=ws.dtype)
        if t.dim() == 1:
            if t.shape[0] not in (1, ws.shape[0]):
                raise LinkError(f"t of shape {tuple(t.shape)} must have one value per sample "
                                f"(N={ws.shape[0]}) or be a scalar")
            t = t.reshape(-1, *([1] * (ws.dim() - 1)))
        elif t.dim() != 0:
            raise LinkError(f"t must be a float or an (N,) tensor, got shape {tuple(t.shape)}")
    else:
        t = float(t)
    # torch.lerp returns exactly ``target`` at t = 1 and ``ws`` at t = 0.
    return torch.where(mask.to(ws.device), torch.lerp(ws, target.expand_as(ws), t), ws)


# -- the edit batch ------------------------------------------------------------------------------

class EditBatch:
    """Latents ws and edited copies of them, stacked to be rendered in ONE call and split back.

    Every LinkGAN loss and measurement compares an image with its edits, and only the latent
    edit may change pixels: so x = G(ws) and every G(ws + delta) are rendered together, the k
    chunks of the same N samples with the same noise maps (``noise_repeats=k``), the same
    cameras and deterministic ray samples. ``add`` appends an edited copy (or, with
    ``add_delta``, ws plus an (N, w_dim) move on every layer) and returns its chunk index;
    ``render`` renders them all; ``split`` cuts any stacked result (a tensor, or a dict of
    tensors, as the metric views return) back into k chunks of N, in the order added (0 is ws).

    ws: (N, num_ws, w_dim).
    """

    def __init__(self, ws: torch.Tensor):
        self.ws = ws
        self.parts = [ws]

    def add(self, edited: torch.Tensor) -> int:
        """Appends an edited copy shaped like ws; returns its chunk index."""
        if edited.shape != self.ws.shape:
            raise LinkError(f"an edited copy of shape {tuple(edited.shape)} must have ws's shape {tuple(self.ws.shape)}")
        self.parts.append(edited)
        return len(self.parts) - 1

    def add_delta(self, delta: torch.Tensor) -> int:
        """Appends ws + delta on every layer (delta: (N, w_dim)); returns its chunk index."""
        return self.add(self.ws + delta[:, None, :])

    @property
    def k(self) -> int:
        """How many chunks of N the stacked batch has (ws itself included)."""
        return len(self.parts)

    def stacked(self) -> torch.Tensor:
        """(k * N, num_ws, w_dim): ws, then every edited copy in the order added."""
        return torch.cat(self.parts)

    def render(self, G, c: torch.Tensor | None = None, noise_mode: str = "random") -> list[torch.Tensor]:
        """The k chunks of G.render's images: shared noise and, for a 3D generator, the same cameras
        c (N, 25) and deterministic ray samples for every chunk (c: None in 2D)."""
        cams = None if c is None else c.repeat(self.k, 1)
        out = G.render(self.stacked(), cams, noise_mode=noise_mode, noise_repeats=self.k, deterministic=True)
        return self.split(out["image"])

    def split(self, stacked):
        """A stacked result (k * N, ...) cut into k chunks of N; a dict is split value by value."""
        n = self.ws.shape[0]
        if isinstance(stacked, dict):
            return {key: list(value.split(n)) for key, value in stacked.items()}
        return list(stacked.split(n))


# -- files and shorthand ----------------------------------------------------------------------

def load_links_file(path: str | os.PathLike, w_dim: int, resolution: int | None = None,
                    segmenter: str | None = None) -> LatentPartition:
    """Read a YAML links file ``{links: [...], allow_overlap: bool}`` into a validated partition.

    Relative mask paths are taken from the file's folder. A bare list of links is also
    accepted.
    """
    import yaml

    path = Path(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise LinkError(f"cannot read links file {str(path)!r}: {err.strerror or err}; check the path") from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise LinkError(f"links file {str(path)!r} is not valid YAML: {err}") from None
    if doc is None:
        doc = {"links": []}
    if isinstance(doc, list):
        doc = {"links": doc}
    if not isinstance(doc, Mapping):
        raise LinkError(f"links file {str(path)!r} must hold a mapping {{links: [...], allow_overlap: false}}")
    extra = [k for k in doc if k not in ("links", "allow_overlap")]
    if extra:
        raise LinkError(f"links file {str(path)!r} has unknown key(s) {extra!r}; expected 'links' and "
                        f"optionally 'allow_overlap'")
    allow = doc.get("allow_overlap", False)
    if not isinstance(allow, bool):
        raise LinkError(f"links file {str(path)!r}: allow_overlap must be true or false, got {allow!r}")
    links = doc.get("links") or []
    try:
        return LatentPartition.from_specs(links, w_dim, resolution=resolution, allow_overlap=allow,
                                          base_dir=path.parent, segmenter=segmenter)
    except ValueError as err:
        raise type(err)(f"{path}: {err}") from None


def parse_link_shorthand(text: str) -> dict:
    """Parse ``NAME=REGION@AXES`` (e.g. ``eyes=box:0.22,0.36,0.78,0.52@64``) into a link spec dict.

    REGION is any ``parse_region_shorthand`` form; AXES is a count ``n`` or ``start:stop``.
    """
    example = "eyes=box:0.22,0.36,0.78,0.52@64"
    if not isinstance(text, str) or "=" not in text:
        raise LinkError(f"link {text!r} is not NAME=REGION@AXES, e.g. {example}")
    name, _, rest = text.partition("=")
    name = name.strip()
    LatentPartition._check_name(name)
    region_text, at, axes_text = rest.rpartition("@")
    if not at or not region_text.strip() or not axes_text.strip():
        raise LinkError(f"link {text!r} has no axes; end it with @n (a count) or @start:stop, e.g. {example}")
    axes = _parse_axes(name, axes_text)
    try:
        region = parse_region_shorthand(region_text.strip())
    except RegionError as err:
        raise RegionError(f"link '{name}': {err}") from None
    return {"name": name, "region": region.to_spec(),
            "axes": list(axes) if isinstance(axes, tuple) else axes}

"""The LinkGAN regularizer: ties each link's group of W axes to its image region.

For a link i with region mask M_i (1 inside) and x = G(w):

  x1 = G(w + alpha * p_i)        p_i   ~ N(0, I) on the link's axes, 0 elsewhere
  x2 = G(w + alpha * p_i^c)      p_i^c ~ N(0, I) on the complement axes, 0 on the link's
  (or, with ``perturb='swap'``, p = w' - w for another sample's w': see axis_deltas)
  L_in_i  = masked_mse(x2, x, M_i)        the region must hold still when the rest of w moves
  L_out_i = masked_mse(x1, x, 1 - M_i)    the outside must hold still when the link's axes move
  L_reg   = sum_i weight_i * (lambda_in * L_in_i + lambda_out * L_out_i)   (weight_i: the link's, default 1)

``masked_mse`` averages over the masked pixels (and channels), i.e. it is normalized by
the mask's area, so that lambda does not depend on the region's size.

That is the paper's form (``link_loss: absolute``). The default, ``relative``, divides each
term by the whole change of the same edit, so that it measures the *share* of an edit that
lands in the wrong place; see ``link_loss`` and docs/results/regularizer.md for why.

x, every x1 and every x2 are rendered by ONE batched synthesis call, with the same noise
maps for an image and its perturbed copies: otherwise the per-layer noise alone would
change pixels everywhere and the outside loss could never reach zero.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from .config import LinkConfig
from .errors import InputError
from .networks import Generator
from .partition import EditBatch, LatentPartition


def masked_mse(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of a and b over the pixels where ``mask`` is 1.

    a, b: (N, C, H, W); mask: (H, W) or (N, 1, H, W) or (N, H, W), in {0, 1} (floats allowed).
    Returns (N,): the per-sample mean over masked pixels and all channels (0 where the mask is empty).
    """
    if mask.ndim == 2:
        mask = mask[None, None]
    elif mask.ndim == 3:
        mask = mask[:, None]
    mask = mask.to(a.dtype)
    sq = (a - b).square() * mask
    area = mask.expand(a.shape[0], 1, *a.shape[2:]).sum(dim=[1, 2, 3]) * a.shape[1]
    return sq.sum(dim=[1, 2, 3]) / area.clamp(min=1.0)


PERTURB_MODES = ("gaussian", "swap")


def axis_deltas(ws: torch.Tensor, axes: torch.Tensor, alpha: float, perturb: str = "gaussian",
                generator: torch.Generator | None = None) -> torch.Tensor:
    """How each sample's w moves on ``axes``: (N, w_dim), to add to every layer of ``ws``.

    ws: (N, num_ws, w_dim) unmixed latents (every layer the same); axes: (w_dim,) or (N, w_dim),
    1 on the axes to move. perturb='gaussian' (the paper's) moves them by alpha * N(0, I).
    perturb='swap' moves them alpha of the way to the next sample's w in the batch (sample i
    takes from sample i - 1), so that at alpha 1 they are resampled from the model's own W
    distribution, the edit that `linkgan edit` makes and mse1k measures. A batch of one has
    no other sample to take from: its swap moves nothing.
    """
    if perturb == "gaussian":
        step = torch.randn(ws.shape[0], ws.shape[2], generator=generator).to(ws.device)
    elif perturb == "swap":
        step = (ws.roll(1, dims=0) - ws)[:, 0]
    else:
        raise InputError(f"link perturbation must be one of {PERTURB_MODES}, not {perturb!r}")
    return alpha * step * axes.to(ws.dtype)


def perturbation_deltas(partition: LatentPartition, name: str, ws: torch.Tensor, alpha: float,
                        generator: torch.Generator | None = None,
                        perturb: str = "gaussian") -> tuple[torch.Tensor, torch.Tensor]:
    """The move of the link's axes and the move of its complement (axis_deltas): (N, w_dim) each.
    The shared axes (--link-shared-axes) move in neither."""
    axes = partition.axes_mask(name, device=ws.device).to(ws.dtype)
    complement = partition.complement_mask(name, device=ws.device).to(ws.dtype)
    return (axis_deltas(ws, axes, alpha, perturb, generator),
            axis_deltas(ws, complement, alpha, perturb, generator))


LOSS_FORMS = ("absolute", "relative")


def share_of_change(term: torch.Tensor, rest: torch.Tensor) -> torch.Tensor:
    """A LinkGAN term in the 'relative' form: the share term / (term + rest) of an edit's change.

    term: the change where it should not be (per sample); rest: the same edit's change
    everywhere else.
    """
    return term / (term + rest + 1e-8)


SAMPLE_MODES = ("split", "all", "factorized")

# --link-target: how fast a link's strength follows its locality (a factor of 10 per this many kimg),
# and the least of it (a link never loses its regularizer entirely, so it cannot drift back unseen).
TARGET_KIMG = 2.0
TARGET_MIN_SCALE = 0.01
# Fixed regions of two or more links that cover this share of the image tile it (tiling_note).
TILING_COVER = 0.95


def resolve_sample_mode(samples: str, partition: LatentPartition) -> str:
    """The sample mode that ``samples`` names for ``partition``: 'auto' is 'factorized' for two or more
    image-space links whose regions may not overlap, 'all' otherwise; the other modes are themselves."""
    if samples != "auto":
        return samples
    image_links = [link for link in partition if not link.region.is_volume]
    return "factorized" if len(image_links) >= 2 and not partition.allow_overlap else "all"


def renders_per_sample(samples: str, partition: LatentPartition) -> int:
    """Images link_loss renders per sample of its sub-batch in mode ``samples`` (resolved) for the
    partition's image-space links: 1 + 2K ('all'), 3 ('split'), 2 + K or 1 + K without free axes
    ('factorized'); 0 without image links."""
    k = sum(1 for link in partition if not link.region.is_volume)
    if k == 0:
        return 0
    if samples == "split":
        return 3
    if samples == "factorized":
        return 1 + k + int(bool(partition.free_axes().any()))
    return 1 + 2 * k


def budgeted_batch(batch: int, budget: float | None, renders: int) -> int:
    """The Glink sub-batch under a render budget: at most ``budget`` x ``batch`` images in all, so
    ``budget * batch / renders`` samples (at least 1, at most ``batch``); ``batch`` without a budget."""
    if budget is None or renders == 0:
        return batch
    return max(1, min(batch, int(budget * batch // renders)))


def grow_mask(mask: torch.Tensor, pixels: int) -> torch.Tensor:
    """A {0,1} mask (N, H, W) or (N, 1, H, W) dilated by ``pixels`` (a square neighbourhood)."""
    return F.max_pool2d(mask, 2 * pixels + 1, stride=1, padding=pixels)


def _edit_terms(x: torch.Tensor, x1: torch.Tensor, x2: torch.Tensor, mask_in: torch.Tensor,
                mask_out: torch.Tensor, margin: int, form: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-sample L_in (x2 vs x inside ``mask_in``) and L_out (x1 vs x outside ``mask_out``), and the
    locality of the link's edit x1 over the batch (its mean change outside over its mean change inside,
    without gradient: what mse1k measures, on these edits).

    The two masks differ only for semantic regions in ``union`` or ``shared`` mode, where each
    is built from the region of x and the region of its edited image. margin > 0 (pixels, per
    mask, (N, H, W) masks only) leaves a band along the border out of both terms: for L_out the
    band just outside ``mask_out``, for L_in the band just inside ``mask_in``.
    """
    out_zone, in_zone = 1.0 - mask_out, mask_in
    if margin > 0:
        out_zone = 1.0 - grow_mask(mask_out, margin)
        in_zone = 1.0 - grow_mask(1.0 - mask_in, margin)
    inside, outside = masked_mse(x2, x, in_zone), masked_mse(x1, x, out_zone)
    edit_inside = masked_mse(x1, x, mask_out)
    locality = (outside.mean() / edit_inside.mean().clamp(min=1e-12)).detach()
    if form == "absolute":
        return inside, outside, locality
    return (share_of_change(inside, masked_mse(x2, x, 1.0 - mask_in)),
            share_of_change(outside, edit_inside), locality)


def _add_link_terms(out: dict, name: str, partition: LatentPartition, masks: dict[str, torch.Tensor],
                    x: torch.Tensor, x1: torch.Tensor, x2: torch.Tensor, form: str) -> None:
    """Puts link ``name``'s ``in/``, ``out/`` (means over the samples) and ``locality/`` terms into ``out``."""
    inside, outside, locality = _edit_terms(x, x1, x2, *_region_masks(partition, masks, name, x, x1, x2), form)
    out[f"in/{name}"], out[f"out/{name}"], out[f"locality/{name}"] = inside.mean(), outside.mean(), locality


def _region_masks(partition: LatentPartition, masks: dict[str, torch.Tensor], name: str, x: torch.Tensor,
                  x1: torch.Tensor, x2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
    """(mask_in, mask_out, margin in pixels) of link ``name``: its fixed mask, or per-sample segmenter masks."""
    if name in masks:
        return masks[name], masks[name], 0
    region = partition[name].region
    margin = region.margin_pixels(x.shape[-1])
    with torch.no_grad():  # one segmenter call for x, x1 and x2
        m, m1, m2 = region.masks_for(torch.cat([x, x1, x2])).to(x.dtype).split(x.shape[0])
    # x2 is the complement's edit, x1 the link's own (SemanticRegion.combine_masks has the modes).
    return region.combine_masks(m, m2, complement=True), region.combine_masks(m, m1), margin


def link_loss(G: Generator, ws: torch.Tensor, partition: LatentPartition, masks: dict[str, torch.Tensor],
              alpha: float, generator: torch.Generator | None = None,
              form: str = "relative", samples: str = "all", c: torch.Tensor | None = None,
              perturb: str = "gaussian") -> dict[str, torch.Tensor]:
    """Computes the LinkGAN terms for a batch.

    Every edit is rendered with ``G.render`` in one call, the k chunks of the same N samples
    with shared noise and, for a 3D generator, from the same cameras c (N, 25) with
    deterministic ray samples, so that only the latent edit changes pixels. c: None in 2D.

    ws: (N, num_ws, w_dim) latents; masks: link name -> (H, W) {0,1} fixed region mask at G's
    resolution. A link missing from ``masks`` must be semantic: its masks are computed per
    sample by its segmenter on the rendered images, without gradient (see
    SemanticRegion.mask_mode). Returns a dict with per-link ``in/<name>``, ``out/<name>``
    (scalars), ``locality/<name>`` (the locality of the link's edits in this batch, without
    gradient; LinkSettings.adapt steers by it) and ``images``, the rendered chunks of N
    (EditBatch.render; x first).

    samples='all' renders x1 and x2 of every link for every sample: (1 + 2K) * N
    images, so the cost grows with the number of links K, but x is shared, which makes it the
    cheapest per (link, sample) pair. samples='split' deals the samples out to the links in
    turn (from a random first link) and renders x, x1 and x2 of each sample's own link only:
    3 * N images whatever K is. Each link's terms are the mean over its own samples, so both
    modes estimate the same loss, 'split' from N / K samples per link; with one link they
    are the same. A link that gets no sample (N < K) is left out of that call.
    docs/results/regularizer.md measures both: with four links, 'split' is 1.35x faster but
    its noisier per-link estimate leaves locality 3-5x worse after the same kimg.

    samples='factorized' renders x, one x1 per link, and ONE complement edit x_f that moves
    only the free axes (those of no link): (2 + K) * N images, or (1 + K) * N when the links
    take every axis. L_out of each link is as in 'all'. L_in of link i asks that the free
    axes leave region i alone; the other links' axes are held to the same by their own L_out,
    since their regions lie outside region i (regions may not overlap unless the run allows
    it, in which case use 'all'). What it gives up is the joint move of several groups at once
    that 'all' renders. With one link it equals 'all' (the complement is the free axes).

    perturb: how the edits move w (axis_deltas): 'gaussian' (alpha * N(0, I), the paper's) or
    'swap' (toward another sample's w in the batch).

    form='absolute' is the paper's loss: the masked mean squared changes themselves.
    form='relative' divides each by the whole change of the same edit: L_out becomes the
    share of the link's edit that lands outside the region, out / (out + in), and L_in the
    share of the complement's edit that lands inside. It is scale free, so G cannot lower
    it by becoming insensitive to w (which the absolute form rewards early in fine-tuning),
    and it falls exactly when the locality ratio mse_out / mse_in falls. G can also lower it
    by making its edits change more inside the region (for L_in: more outside it); holding
    the denominator out of the gradient to forbid that made the scenes model collapse within
    2 kimg, since a sample whose edit barely changes anything then gets an unbounded
    gradient (docs/results/semantic.md).
    """
    if form not in LOSS_FORMS:
        raise InputError(f"link loss form must be one of {LOSS_FORMS}, not {form!r}")
    if samples not in SAMPLE_MODES:
        raise InputError(f"link sample mode must be one of {SAMPLE_MODES}, not {samples!r}")
    n = ws.shape[0]
    names = list(partition.names)
    out: dict = {}
    batch = EditBatch(ws)
    if samples == "all":
        for name in names:
            d_in, d_out = perturbation_deltas(partition, name, ws, alpha, generator, perturb)
            batch.add_delta(d_in)   # x1: the link's axes moved
            batch.add_delta(d_out)  # x2: the complement moved
        chunks = batch.render(G, c)
        x = chunks[0]
        for k, name in enumerate(names):
            x1, x2 = chunks[1 + 2 * k], chunks[2 + 2 * k]
            _add_link_terms(out, name, partition, masks, x, x1, x2, form)
    elif samples == "factorized":
        axes = partition.axes_tensor(ws.device)
        for k in range(len(names)):
            batch.add_delta(axis_deltas(ws, axes[k], alpha, perturb, generator))  # x1: the link's axes
        free = partition.free_axes(ws.device)
        has_free = bool(free.any())
        if has_free:
            batch.add_delta(axis_deltas(ws, free, alpha, perturb, generator))  # x_f: the free axes
        chunks = batch.render(G, c)
        x = chunks[0]
        xf = chunks[-1] if has_free else x  # no free axes: L_in rests on the other links' L_out
        for k, name in enumerate(names):
            x1 = chunks[1 + k]
            _add_link_terms(out, name, partition, masks, x, x1, xf, form)
    else:
        first = int(torch.randint(len(names), (), generator=generator))
        owner = (torch.arange(n) + first) % len(names)  # sample s trains link owner[s]
        index = owner.to(ws.device)
        own = partition.axes_tensor(ws.device).to(ws.dtype)[index]  # (N, w_dim): each sample's link axes
        rest = partition.complement_tensor(ws.device).to(ws.dtype)[index]  # and its complement
        batch.add_delta(axis_deltas(ws, own, alpha, perturb, generator))
        batch.add_delta(axis_deltas(ws, rest, alpha, perturb, generator))
        chunks = batch.render(G, c)
        x, x1, x2 = chunks
        for k, name in enumerate(names):
            idx = (owner == k).nonzero().flatten().to(ws.device)
            if idx.numel() == 0:
                continue
            _add_link_terms(out, name, partition, masks, x[idx], x1[idx], x2[idx], form)
    out["images"] = chunks
    return out


@dataclass
class LinkSettings:
    """What the Glink phase and the perturbed-fakes trick need, resolved for one run.

    The values come from a run's TrainConfig.link (from_config), which holds the defaults.
    masks: link name -> (H, W) float {0,1} region mask on the training device, for fixed
    regions; semantic links are absent (their segmenter gives masks per generated image).

    target: the locality that each link's strength is steered to (``adapt``), None for fixed
    weights. scale: link name -> its factor on lambda_in and lambda_out, in [TARGET_MIN_SCALE, 1]
    (1 for every link at first); part of a run's state, which the trainer checkpoints.
    """

    partition: LatentPartition
    masks: dict[str, torch.Tensor]
    alpha: float
    lambda_in: float
    lambda_out: float
    batch: int
    fakes: float
    form: str
    samples: str
    perturb: str = "gaussian"
    target: float | None = None
    scale: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in self.partition.names:
            self.scale.setdefault(name, 1.0)

    @classmethod
    def build(cls, partition: LatentPartition, resolution: int, device, *, alpha: float, lambda_in: float,
              lambda_out: float, batch: int, fakes: float, form: str = "relative",
              samples: str = "all", perturb: str = "gaussian", target: float | None = None) -> "LinkSettings":
        """Resolves the fixed regions' masks at ``resolution`` on ``device`` and loads every semantic
        link's segmenter now, so that a missing file fails before training; the options are named."""
        if perturb == "swap" and batch < 2 and len(partition):
            raise InputError("--link-perturb swap moves each sample's axes toward another sample's w in the Glink "
                             f"sub-batch, which here has {batch} sample per process: raise --batch, --link-batch "
                             "or --link-budget, or use --link-perturb gaussian")
        masks = {}
        for link in partition:
            if link.region.is_fixed:
                masks[link.name] = partition.region_mask(link.name, resolution, device=device).to(torch.float32)
            elif link.region.is_volume:
                continue  # a 3D-box region constrains a 3D generator's field (linkgan.threed), not pixels
            else:
                try:
                    link.region.model()  # load now: a missing file or unknown class fails before training
                except ValueError as err:
                    raise type(err)(f"link '{link.name}': {err}") from None
        return cls(partition, masks, alpha, lambda_in, lambda_out, batch, fakes, form, samples, perturb, target)

    def tiling_note(self) -> str | None:
        """A note for the user when the fixed regions of two or more links tile the image (cover
        TILING_COVER of it) and no axis is shared: every axis is then some link's, or in every link's
        complement, so nothing may change two regions at once (a skin tone, the light, a background's
        colour), which costs realism. None otherwise."""
        if len(self.masks) < 2 or self.partition.shared:
            return None
        cover = torch.stack(list(self.masks.values())).amax(0).mean().item()
        if cover < TILING_COVER:
            return None
        return (f"note: the regions of links {', '.join(self.masks)} cover {cover:.0%} of the image and no axis is "
                "shared, so no axis may change two of them at once (a skin tone, the light, a background's colour). "
                "Give the links fewer axes and share some with --link-shared-axes: on toyfaces, four corners of "
                "128 axes cost FID +42% over vanilla after 10 kimg, and of 96 axes with 128 shared +23-27% "
                "(docs/results/quality.md).")

    @classmethod
    def from_config(cls, partition: LatentPartition, resolution: int, device, options: LinkConfig,
                    batch: int) -> "LinkSettings":
        """``build`` with a run's link options (TrainConfig.link): the sample mode resolved ('auto') and
        ``batch``, the Glink sub-batch of this process, capped by the render budget."""
        samples = resolve_sample_mode(options.samples, partition)
        batch = budgeted_batch(batch, options.budget, renders_per_sample(samples, partition))
        return cls.build(partition, resolution, device, alpha=options.alpha,
                         lambda_in=options.strength * options.lambda_in, lambda_out=options.strength * options.lambda_out,
                         batch=batch, fakes=options.fakes, form=options.loss, samples=samples, perturb=options.perturb,
                         target=options.target)

    def loss(self, G: Generator, ws: torch.Tensor,
             c: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The weighted regularizer sum_i weight_i (lambda_in L_in_i + lambda_out L_out_i), and its terms.

        c: the cameras to render from (a 3D generator's; see link_loss)."""
        terms = link_loss(G, ws, self.partition, self.masks, self.alpha, form=self.form, samples=self.samples,
                          c=c, perturb=self.perturb)
        total = sum(self.weighted(n, terms) for n in self.partition.names if f"in/{n}" in terms)
        return total, terms

    def weighted(self, name: str, terms: dict[str, torch.Tensor]) -> torch.Tensor:
        """weight * scale * (lambda_in L_in + lambda_out L_out) of link ``name`` from its ``terms``."""
        weight = self.partition[name].weight * self.scale[name]
        return weight * (self.lambda_in * terms[f"in/{name}"] + self.lambda_out * terms[f"out/{name}"])

    def localities(self, terms: dict[str, torch.Tensor]) -> dict[str, float]:
        """Link name -> the ``locality/`` term of one Glink call, for the links that have one (not a
        3D-box link, nor a link without a sample in 'split' mode)."""
        return {n: float(terms[f"locality/{n}"]) for n in self.partition.names if f"locality/{n}" in terms}

    def adapt(self, localities: dict[str, float], images: int) -> None:
        """Steers each link's scale toward the locality ``target`` after a Glink call that stood for
        ``images`` training images: a link more local than the target loses strength, one less
        local gains it back, by a factor of 10 per TARGET_KIMG kimg, within [TARGET_MIN_SCALE, 1].
        localities: ``localities(terms)``, averaged over the processes; a link absent stays put."""
        if self.target is None:
            return
        step = images / (TARGET_KIMG * 1000)
        for name, value in localities.items():
            direction = (value > self.target) - (value < self.target)
            log_scale = math.log10(self.scale[name]) + direction * step
            self.scale[name] = 10.0 ** min(max(log_scale, math.log10(TARGET_MIN_SCALE)), 0.0)

    def perturb_some(self, ws: torch.Tensor) -> torch.Tensor:
        """Replaces the first ``fakes`` fraction of a batch by perturbed latents.

        Each chosen sample's w moves (as the regularizer's edits do, per ``perturb``) on one
        random link's axes or on its complement, so that D learns to reject unrealistic
        perturbed images and G is pushed to keep them realistic. A swap takes the axes from
        the next sample's w layer by layer, so style mixing is kept.
        """
        k = int(round(ws.shape[0] * self.fakes))
        if k == 0 or len(self.partition) == 0:
            return ws
        axes, complements = self.partition.axes_tensor(ws.device), self.partition.complement_tensor(ws.device)
        groups = torch.cat([axes, complements]).to(ws.dtype)  # (2K, w_dim): each link's axes, then complements
        choice = torch.randint(0, groups.shape[0], (k,)).to(ws.device)
        if self.perturb == "swap":  # layer by layer, unlike axis_deltas (whose ws are unmixed)
            delta = self.alpha * (ws.roll(1, dims=0)[:k] - ws[:k]) * groups[choice][:, None, :]
        else:
            delta = axis_deltas(ws[:k], groups[choice], self.alpha)[:, None, :]
        ws = ws.clone()
        ws[:k] = ws[:k] + delta
        return ws

"""The 3D-aware LinkGAN objective: what training a tri-plane generator adds to the 2D phases.

A model config with ``kind: 3d`` trains linkgan.networks.TriplaneGenerator (EG3D-style) against
a CameraDiscriminator on a dataset with camera labels (``linkgan dataset toyheads``). The 2D
training loop and loss phases serve both kinds through the generators' shared interface
(``mapping(z, c)``, ``style_mix(ws, prob, c)``, ``render(ws, c)``); fakes are rendered from
cameras drawn from the dataset and D sees the image, the raw neural render and the camera. This
module supplies what differs:

* ``TriplaneLoss`` (a StyleGAN2Loss): the mapping network's camera is swapped for another
  sample's with probability ``gpc_swap`` (EG3D's generator pose conditioning).
* The LinkGAN regularizer in image space (the paper's 3D method) is linkgan.regularizer's own:
  x, every x1 and every x2 are rendered from the SAME camera, with shared noise and
  deterministic ray samples (strata centres), so that only the latent edit changes pixels.
* The regularizer for 3D-box links (``{box3d: [x0, y0, z0, x1, y1, z1]}``, beyond the paper),
  ``volume_link_loss``: it compares the decoded field (density as the opacity of one ray
  step, and the colour features) of x, x1 and x2 at random 3D points: x1 against x outside
  the box, x2 against x inside it. The constraint is on the field, so it holds from every
  viewpoint; ``footprint_terms`` adds its image-space outside term.

Multi-view rendering for grids, edits and metrics is in linkgan.views; the networks are built in
linkgan.networks.build.
"""

from __future__ import annotations

import dataclasses

import torch

from .losses import StyleGAN2Loss
from .networks import TriplaneGenerator
from .partition import EditBatch, LatentPartition
from .regularizer import grow_mask, masked_mse, perturbation_deltas, share_of_change

VOLUME_POINTS = 256  # 3D points per sample (and per box) of the 3D-box regularizer


def check_camera_dataset(dataset) -> torch.Tensor:
    """The dataset's camera labels (len, 25); a clear error when it has none."""
    from .data import DatasetError

    if not getattr(dataset, "has_cameras", False):
        reason = getattr(dataset, "_no_cameras_reason", "") or "the dataset has no camera labels"
        raise DatasetError(f"model kind 3d needs a posed dataset: {reason}")
    dataset.return_cameras = True  # the training loop reads each real image's camera with it
    return dataset.cameras


# ------------------------------------------------------------------------------ regularizer
def split_partition(partition: LatentPartition) -> tuple[LatentPartition, list[str]]:
    """(the partition of the image-space links, the names of the 3D-box links)."""
    image_links = [link for link in partition if not link.region.is_volume]
    volume = [link.name for link in partition if link.region.is_volume]
    return LatentPartition(image_links, partition.w_dim, allow_overlap=True, shared=partition.shared), volume


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-sample mean of values (N, M) where mask (N, M) is 1."""
    return (values * mask).sum(1) / mask.sum(1).clamp(min=1.0)


def volume_link_loss(field, ws: torch.Tensor, partition: LatentPartition, names, alpha: float,
                     points: int = VOLUME_POINTS, half_extent: float = 0.5, form: str = "relative",
                     generator: torch.Generator | None = None, perturb: str = "gaussian") -> dict[str, torch.Tensor]:
    """LinkGAN terms of 3D-box links, on the generator's field at random 3D points.

    field: callable(ws (k*N, L, D), points (k*N, M, 3), k) -> values (k*N, M, C), for k chunks
    of the same N samples (shared noise). For each link i: x1 moves the link's axes by
    alpha * N(0, I) (or toward another sample's w: ``perturb``), x2 the complement's. Points: ``points`` uniform in the cube
    [-half_extent, half_extent]^3 plus ``points`` uniform in each link's box, the same for
    x, x1 and x2. L_out_i = mean squared change of x1 at the points outside box i;
    L_in_i = that of x2 at the points inside it (means over points and channels).
    form 'relative' divides each by the whole change of the same edit, as link_loss does.
    Returns {in/<name>, out/<name>} scalars.
    """
    n = ws.shape[0]
    boxes = [partition[name].region for name in names]
    cube = (torch.rand(n, points, 3, generator=generator) * 2 - 1) * half_extent
    pts = torch.cat([cube] + [box.sample_inside(n, points, generator) for box in boxes], dim=1).to(ws.device)
    batch = EditBatch(ws)
    for name in names:
        d_in, d_out = perturbation_deltas(partition, name, ws, alpha, generator, perturb)
        batch.add_delta(d_in)
        batch.add_delta(d_out)
    chunks = batch.split(field(batch.stacked(), pts.repeat(batch.k, 1, 1), batch.k))
    v = chunks[0]
    out = {}
    for j, (name, box) in enumerate(zip(names, boxes)):
        inside = box.contains(pts).to(v.dtype)
        change1 = (chunks[1 + 2 * j] - v).square().mean(-1)  # (N, M): the link's axes moved
        change2 = (chunks[2 + 2 * j] - v).square().mean(-1)  # the complement moved
        l_out, l_in = _masked_mean(change1, 1 - inside), _masked_mean(change2, inside)
        if form != "absolute":
            l_out = share_of_change(l_out, _masked_mean(change1, inside))
            l_in = share_of_change(l_in, _masked_mean(change2, 1 - inside))
        out[f"in/{name}"], out[f"out/{name}"] = l_in.mean(), l_out.mean()
    return out


def footprint_terms(G: TriplaneGenerator, ws: torch.Tensor, c: torch.Tensor, partition: LatentPartition, names,
                    alpha: float, form: str = "relative", dilate: int = 2,
                    generator: torch.Generator | None = None, perturb: str = "gaussian") -> dict[str, torch.Tensor]:
    """Image-space L_out of 3D-box links: {out_image/<name>} scalars.

    x and, per link, x1 (its axes moved as ``perturb`` says) are rendered from the cameras c
    (N, 25) with shared noise and ray samples. A pixel whose ray misses box i cannot see any
    point of it, so with a field linked to the box it must not change: L = masked MSE of
    x1 - x outside the box's footprint, dilated by ``dilate`` pixels for the reach of the
    super-resolution convolutions ('relative': divided by the whole change, as link_loss).
    """
    batch = EditBatch(ws)
    for name in names:
        d_in, _ = perturbation_deltas(partition, name, ws, alpha, generator, perturb)
        batch.add_delta(d_in)
    chunks = batch.render(G, c)
    x, out = chunks[0], {}
    for j, name in enumerate(names):
        m = partition[name].region.ray_masks(c, x.shape[-1]).to(x.dtype)[:, None]
        if dilate > 0:
            m = grow_mask(m, dilate)
        outside = masked_mse(chunks[1 + j], x, 1 - m)
        if form != "absolute":
            outside = share_of_change(outside, masked_mse(chunks[1 + j], x, m))
        out[f"out_image/{name}"] = outside.mean()
    return out


def triplane_field(G: TriplaneGenerator, noise_mode: str = "random"):
    """The field callable of volume_link_loss for a tri-plane generator: per point, the opacity of one
    ray step (1 - exp(-sigma * delta), delta = the mean sample spacing) and the decoded features."""
    cfg = G.config
    delta = (cfg.far - cfg.near) / max(1, cfg.coarse_samples + cfg.fine_samples)

    def field(all_ws, pts, k):
        planes = G.planes(all_ws, noise_mode=noise_mode, noise_repeats=k)
        sigma, features = G.decode(planes, pts)
        return torch.cat([-torch.expm1(-sigma * delta), features], dim=-1)

    return field


class TriplaneLoss(StyleGAN2Loss):
    """The StyleGAN2 phases for a TriplaneGenerator and a CameraDiscriminator (see the module docstring).

    gpc_swap: probability per sample that the mapping network sees another sample's camera.
    box_image_term: 3D-box links also get footprint_terms (TrainConfig.link_box3d_image).
    """

    def __init__(self, G, D, r1_gamma: float, *, gpc_swap: float = 0.5, box_image_term: bool = True, **kwargs):
        super().__init__(G, D, r1_gamma, **kwargs)
        self.gpc_swap = gpc_swap
        self.box_image_term = box_image_term
        self.image_links, self.volume_links = (split_partition(self.link.partition) if self.link is not None
                                               else (None, []))

    def conditioning(self, c: torch.Tensor) -> torch.Tensor:
        """The mapping network's cameras: c, with each row swapped for its neighbour's with probability gpc_swap."""
        if self.gpc_swap <= 0 or c.shape[0] < 2:
            return c
        swap = (torch.rand(c.shape[0]) < self.gpc_swap).to(c.device)
        return torch.where(swap[:, None], c.roll(1, dims=0), c)

    def link_terms(self, z: torch.Tensor, c: torch.Tensor | None = None) -> tuple[torch.Tensor, dict]:
        ws = self.G.mapping(z, c, update_w_avg=self.w_avg_in_every_phase)
        total, terms = ws.new_zeros([]), {}
        if len(self.image_links):
            settings = dataclasses.replace(self.link, partition=self.image_links)
            loss, image_terms = settings.loss(self.G, ws, c)
            total, terms = total + loss, dict(image_terms)
        if self.volume_links:
            vterms = volume_link_loss(triplane_field(self.G), ws, self.link.partition, self.volume_links,
                                      self.link.alpha, half_extent=self.G.config.box_size / 2, form=self.link.form,
                                      perturb=self.link.perturb)
            total = total + sum(self.link.weighted(n, vterms) for n in self.volume_links)
            terms.update(vterms)
            if self.box_image_term:
                fterms = footprint_terms(self.G, ws, c, self.link.partition, self.volume_links, self.link.alpha,
                                         self.link.form, perturb=self.link.perturb)
                total = total + sum(self.link.partition[n].weight * self.link.lambda_out * fterms[f"out_image/{n}"]
                                    for n in self.volume_links)
                terms.update(fterms)
        return total, terms


__all__ = ["TriplaneLoss", "check_camera_dataset", "footprint_terms", "split_partition", "triplane_field",
           "volume_link_loss"]

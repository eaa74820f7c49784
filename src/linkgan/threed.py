"""3D-aware LinkGAN: training, the regularizer, metrics and editing for tri-plane generators.

A model config with ``kind: 3d`` trains linkgan.networks.TriplaneGenerator (EG3D-style) against
a CameraDiscriminator on a dataset with camera labels (``linkgan dataset toyheads``). The 2D
training loop and loss phases are reused as they are; this module supplies what differs:

* ``TriplaneLoss`` (a StyleGAN2Loss): the mapping network is conditioned on a camera, which is
  swapped for another sample's camera with probability ``gpc_swap`` (EG3D's generator pose
  conditioning); fakes are rendered from cameras drawn from the dataset; D sees the image,
  the raw neural render and the camera.
* The LinkGAN regularizer in image space (the paper's 3D method): x, every x1 and every x2
  are rendered from the SAME camera, with shared noise and deterministic ray samples (strata
  centres), so that only the latent edit changes pixels.
* The regularizer for 3D-box links (``{box3d: [x0, y0, z0, x1, y1, z1]}``, beyond the paper),
  ``volume_link_loss``: it compares the decoded field (density as the opacity of one ray
  step, and the colour features) of x, x1 and x2 at random 3D points: x1 against x outside
  the box, x2 against x inside it. The constraint is on the field, so it holds from every
  viewpoint.
* The multi-view rendering that linkgan.metrics.masked_mse_metric measures 3D models with (RGB
  and depth averaged over several yaws) and that
  ``linkgan.pipeline.TriplanePipeline`` (what LinkGANPipeline.load returns for a 3D checkpoint)
  draws its edit grids with. The networks are built in linkgan.networks.build.

Cameras are EG3D labels in linkgan.render3d's conventions. The views used for grids, edits and
metrics sit at ModelConfig.camera_radius with focal camera_focal (toyheads' values by default),
at pitch 0 and the yaws given; the identity is mapped with the frontal camera.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch
import torch.nn.functional as F

from .errors import InputError
from .losses import StyleGAN2Loss
from .networks import (
    TriplaneGenerator,
    z_from_seeds,
)
from .partition import LatentPartition
from .regularizer import grow_mask, masked_mse, perturbation_deltas, share_of_change
from .render3d import camera_labels, intrinsics, look_at

DEFAULT_YAWS = (-30.0, 0.0, 30.0)  # degrees: the views of edit grids and metrics
VOLUME_POINTS = 256  # 3D points per sample (and per box) of the 3D-box regularizer


def check_camera_dataset(dataset) -> torch.Tensor:
    """The dataset's camera labels (len, 25); a clear error when it has none."""
    from .data import DatasetError

    if not getattr(dataset, "has_cameras", False):
        reason = getattr(dataset, "_no_cameras_reason", "") or "the dataset has no camera labels"
        raise DatasetError(f"model kind 3d needs a posed dataset: {reason}")
    dataset.return_cameras = True  # the training loop reads each real image's camera with it
    return dataset.cameras


def view_cameras(G, yaws=DEFAULT_YAWS, pitch: float = 0.0, device=None) -> torch.Tensor:
    """Camera labels (V, 25) looking at the origin from the given yaws (degrees) at one pitch."""
    radius, focal = getattr(G, "view_camera", (2.7, 2.8))
    yaw = torch.tensor([math.radians(float(y)) for y in yaws])
    cams = camera_labels(look_at(yaw, torch.full_like(yaw, math.radians(pitch)), radius), intrinsics(focal))
    return cams.to(device)


def frontal_cameras(G, n: int, device=None) -> torch.Tensor:
    return view_cameras(G, (0.0,), device=device).expand(n, -1)


# ------------------------------------------------------------------------------ regularizer
def split_partition(partition: LatentPartition) -> tuple[LatentPartition, list[str]]:
    """(the partition of the image-space links, the names of the 3D-box links)."""
    image_links = [link for link in partition if not getattr(link.region, "is_volume", False)]
    volume = [link.name for link in partition if getattr(link.region, "is_volume", False)]
    return LatentPartition(image_links, partition.w_dim, allow_overlap=True), volume


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
    batches = [ws]
    for name in names:
        d_in, d_out = perturbation_deltas(partition, name, ws, alpha, generator, perturb)
        batches += [ws + d_in[:, None, :], ws + d_out[:, None, :]]
    k = len(batches)
    values = field(torch.cat(batches), pts.repeat(k, 1, 1), k)
    chunks = values.split(n)
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
    n = ws.shape[0]
    batches = [ws]
    for name in names:
        d_in, _ = perturbation_deltas(partition, name, ws, alpha, generator, perturb)
        batches.append(ws + d_in[:, None, :])
    k = len(batches)
    images = G.synthesis(torch.cat(batches), c.repeat(k, 1), noise_mode="random", noise_repeats=k,
                         render_options=G.render_options(jitter=False))["image"]
    chunks = images.split(n)
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

    def __init__(self, G, D, r1_gamma: float, *args, gpc_swap: float = 0.5, box_image_term: bool = True, **kwargs):
        super().__init__(G, D, r1_gamma, *args, **kwargs)
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

    def sample_ws(self, z: torch.Tensor, update_w_avg: bool = True, c: torch.Tensor | None = None) -> torch.Tensor:
        c_cond = self.conditioning(c)
        ws = self.G.mapping(z, c_cond, update_w_avg=update_w_avg)
        ws = self.G.style_mix(ws, c_cond, self.style_mixing)
        if self.link is not None:
            ws = self.link.perturb_some(ws)
        return ws

    def run_G(self, z: torch.Tensor, update_w_avg: bool = True, c: torch.Tensor | None = None):
        if c is None:
            raise ValueError("a 3D generator renders from cameras: run_G needs c (N, 25)")
        ws = self.sample_ws(z, update_w_avg, c)
        return self.G.synthesis(ws, c, noise_mode=self.noise_mode), ws

    def run_D(self, img, c: torch.Tensor | None = None) -> torch.Tensor:
        return self.D(self.augmented(img), c)

    def link_terms(self, z: torch.Tensor, c: torch.Tensor | None = None) -> tuple[torch.Tensor, dict]:
        ws = self.G.mapping(z, c, update_w_avg=self.w_avg_in_every_phase)
        total, terms = ws.new_zeros([]), {}
        if len(self.image_links):
            # The same camera for x, x1 and x2; deterministic ray samples (the jitter would differ per copy).
            options = self.G.render_options(jitter=False)

            def render(all_ws, k):
                return self.G.synthesis(all_ws, c.repeat(k, 1), noise_mode="random", noise_repeats=k,
                                        render_options=options)["image"]

            settings = dataclasses.replace(self.link, partition=self.image_links)
            loss, image_terms = settings.loss(self.G, ws, render=render)
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


# ------------------------------------------------------------------------------ rendering helpers
def render_views(G, ws: torch.Tensor, cameras: torch.Tensor, batch: int = 16, noise_mode: str = "const") -> dict:
    """Renders every ws (N, L, D) from every camera (V, 25): image (N, V, 3, R, R), depth and opacity
    (N, V, 1, r, r), on the CPU, without gradient."""
    keys = ("image", "depth", "opacity")
    out = {k: [] for k in keys}
    device = next(G.parameters()).device
    with torch.no_grad():
        for v in range(cameras.shape[0]):
            parts = {k: [] for k in keys}
            for i in range(0, ws.shape[0], batch):
                chunk = ws[i:i + batch].to(device)
                r = G.synthesis(chunk, cameras[v:v + 1].to(device).expand(chunk.shape[0], -1), noise_mode=noise_mode)
                for k in keys:
                    parts[k].append(r[k].cpu())
            for k in keys:
                out[k].append(torch.cat(parts[k]))
    return {k: torch.stack(v, dim=1) for k, v in out.items()}


def depth_to_image(depth: torch.Tensor, opacity: torch.Tensor, near: float, far: float, size: int) -> torch.Tensor:
    """Depth (N, 1, r, r) -> a grey image (N, 3, size, size) in [-1, 1]: near is white, far and empty black."""
    t = ((far - depth) / (far - near)).clamp(0, 1) * opacity.clamp(0, 1)
    t = F.interpolate(t, size=(size, size), mode="nearest")
    return (t * 2 - 1).expand(-1, 3, -1, -1)


def sample_grid(G, seeds, device, truncation_psi: float = 1.0) -> np.ndarray:
    """uint8 grid (H, W, 3) of G's samples at the seeds, rendered from the frontal view."""
    from .images import make_grid

    z = z_from_seeds(seeds, G.z_dim, device)
    c = frontal_cameras(G, len(seeds), device)
    with torch.no_grad():
        ws = G.mapping(z, c, truncation_psi=truncation_psi)
        imgs = torch.cat([G.synthesis(ws[i:i + 32], c[i:i + 32], noise_mode="const")["image"].cpu()
                          for i in range(0, len(seeds), 32)])
    return make_grid(imgs)


def region_masks_for_view(partition: LatentPartition, name: str, camera: torch.Tensor, res: int) -> torch.Tensor:
    """bool (res, res): an image link's fixed region, or a 3D-box link's footprint from camera (25,)."""
    region = partition[name].region
    if getattr(region, "is_volume", False):
        return region.ray_masks(camera.reshape(1, 25).cpu(), res)[0]
    if not region.is_fixed:
        raise InputError(f"link '{name}': semantic regions are not supported on 3D models yet")
    return region.mask(res)


__all__ = ["TriplaneLoss", "check_camera_dataset", "render_views", "sample_grid",
           "view_cameras", "volume_link_loss"]

"""An EG3D-style tri-plane generator: the project's StyleGAN2 networks plus volume rendering.

It is a thin layer over the 2D generator's parts, not a fork of them:

  z, camera c --CameraMappingNetwork--> ws (N, num_ws, w_dim)   (MappingNetwork, camera-conditioned)
  ws --SynthesisNetwork--> (N, 3*C, P, P) = three C-channel feature planes xy, xz, zy
  3D point -> the planes' bilinear features, averaged -> TriplaneDecoder (a small MLP)
           -> density sigma >= 0 and F features, the first 3 of which are RGB in about [-1, 1]
  rays of the rendering camera --linkgan.render3d--> image_raw (N, 3, r, r), depth, opacity
  optional SuperResolution2x (modulated convs on w) -> image (N, 3, 2r, 2r)

Cameras are EG3D's 25-value labels in linkgan.render3d's conventions. The planes span the
cube [-box_size/2, box_size/2]^3 around the origin: plane xy is indexed by (x, y), xz by
(x, z) and zy by (z, y) (first coordinate along the plane's width). Outside the cube the
planes read zero, so the decoder sees the same constant features everywhere out there.

Mapping and rendering take separate cameras: ``forward(z, c)`` uses c for both, while
``mapping(z, c_cond)`` then ``synthesis(ws, c_render)`` renders one identity from any
viewpoint (multi-view renders, EG3D's pose swapping). In eval mode the sample positions
along each ray are deterministic, so the same ws and camera with noise_mode="const" give
the same image; in train mode they are jittered.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InputError
from ..render3d import (
    RenderOptions,
    camera_labels,
    intrinsics,
    look_at,
    ray_bundle,
    render_rays,
    split_camera_labels,
)
from .generator import (
    MappingNetwork,
    StyledConv,
    SynthesisNetwork,
    ToRGB,
    mix_styles,
    normalize_2nd_moment,
)
from .layers import EqualLinear, upsample_2x

# The plane each of the three feature planes spans, as the indices of the point coordinates
# that address it (width, height): xy, xz, zy.
PLANE_AXES = ((0, 1), (0, 2), (2, 1))


@dataclass
class TriplaneConfig:
    """Architecture of a TriplaneGenerator (saved with its checkpoints)."""

    z_dim: int = 512
    w_dim: int = 512
    c_dim: int = 25  # camera label size (EG3D: 16 cam2world + 9 intrinsics)
    mapping_layers: int = 8
    mapping_lr_mul: float = 0.01
    plane_resolution: int = 64  # P: the backbone's output resolution (EG3D uses 256)
    plane_channels: int = 32  # C per plane; the backbone outputs 3 * C channels
    channel_base: int = 16384
    channel_max: int = 512
    decoder_hidden: int = 64
    feature_channels: int = 32  # F decoded per point; the first 3 are the raw RGB
    neural_resolution: int = 32  # r: rays per image side
    superresolution: bool = True  # a 2x super-resolution stage: image is 2r x 2r
    sr_channels: int = 64
    box_size: float = 1.0
    near: float = 2.2  # ray segment rendered, in world units from the camera centre (toyheads: TOYHEADS_NEAR_FAR)
    far: float = 3.2
    coarse_samples: int = 24
    fine_samples: int = 24
    modconv: str = "auto"
    conv_clamp: float | None = None
    numerics: str = "official"  # of the 2D layers (linkgan.networks.layers); 'legacy' for older checkpoints

    @property
    def image_resolution(self) -> int:
        return self.neural_resolution * (2 if self.superresolution else 1)


class CameraMappingNetwork(MappingNetwork):
    """z (N, z_dim) and camera labels c (N, c_dim) -> ws (N, num_ws, w_dim), as in EG3D.

    The camera goes through a linear embedding of w_dim values; both z and the embedding are
    normalized to unit second moment and concatenated before the MappingNetwork's layers
    (built for z_dim + w_dim inputs); the tracked w_avg and truncation are the 2D network's.
    """

    def __init__(self, z_dim: int, c_dim: int, w_dim: int, num_ws: int, num_layers: int = 8,
                 lr_mul: float = 0.01, w_avg_beta: float = 0.995):
        super().__init__(z_dim + w_dim, w_dim, num_ws, num_layers, lr_mul, w_avg_beta)
        self.z_dim, self.c_dim = z_dim, c_dim
        self.embed = EqualLinear(c_dim, w_dim)

    def forward(self, z: torch.Tensor, c: torch.Tensor, truncation_psi: float = 1.0,
                truncation_cutoff: int | None = None, update_w_avg: bool = False) -> torch.Tensor:
        if z.ndim != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"z must have shape (N, {self.z_dim}), got {tuple(z.shape)}")
        if c is None or c.shape != (z.shape[0], self.c_dim):
            raise ValueError(f"c must hold one {self.c_dim}-value camera label per z: shape ({z.shape[0]}, "
                             f"{self.c_dim}), got {None if c is None else tuple(c.shape)}")
        x = torch.cat([normalize_2nd_moment(z.to(torch.float32)),
                       normalize_2nd_moment(self.embed(c.to(torch.float32)))], dim=1)
        return self.to_ws(self.layers(x), truncation_psi, truncation_cutoff, update_w_avg)


class TriplaneDecoder(nn.Module):
    """Plane features (N, M, C) -> density sigma (N, M, 1) >= 0 and features (N, M, F) in about [-1, 1].

    One hidden layer with softplus, as in EG3D. The density is softplus(raw - 1), which starts
    the volume nearly transparent; the features are squashed by a slightly widened sigmoid
    (so that -1 and 1 are reachable) and mapped to the image range.
    """

    def __init__(self, in_channels: int, hidden: int, out_features: int):
        super().__init__()
        self.fc0 = EqualLinear(in_channels, hidden)
        self.fc1 = EqualLinear(hidden, 1 + out_features)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.fc1(F.softplus(self.fc0(x)))
        sigma = F.softplus(x[..., :1] - 1.0)
        features = (torch.sigmoid(x[..., 1:]) * (1 + 2e-3) - 1e-3) * 2.0 - 1.0
        return sigma, features


class SuperResolution2x(nn.Module):
    """Raw RGB (N, 3, r, r) and features (N, F, r, r) -> image (N, 3, 2r, 2r), modulated by w.

    Two modulated 3x3 convs (the first upsamples) and a toRGB, added to the upsampled raw RGB:
    the stage only learns the detail the low-resolution render lacks.
    """

    def __init__(self, in_channels: int, channels: int, w_dim: int, out_resolution: int, impl: str = "auto",
                 conv_clamp: float | None = None, numerics: str = "official"):
        super().__init__()
        layer = {"impl": impl, "conv_clamp": conv_clamp, "numerics": numerics}
        self.conv0 = StyledConv(in_channels, channels, w_dim, out_resolution, up=True, **layer)
        self.conv1 = StyledConv(channels, channels, w_dim, out_resolution, **layer)
        self.torgb = ToRGB(channels, 3, w_dim, **layer)

    def forward(self, rgb: torch.Tensor, features: torch.Tensor, w: torch.Tensor, noise_mode: str = "random",
                noise_repeats: int = 1) -> torch.Tensor:
        x = self.conv0(features, w, noise_mode, noise_repeats=noise_repeats)
        x = self.conv1(x, w, noise_mode, noise_repeats=noise_repeats)
        return upsample_2x(rgb) + self.torgb(x, w).to(torch.float32)


class TriplaneGenerator(nn.Module):
    """EG3D-style 3D-aware generator (see the module docstring).

    ``G(z, c)`` -> dict with image (N, 3, R, R) in about [-1, 1] (R = image_resolution),
    image_raw (N, 3, r, r), depth (N, 1, r, r) (distance along each ray, far where the ray
    meets nothing), opacity (N, 1, r, r) in [0, 1]; z (N, z_dim), c (N, 25) camera labels.
    Build with a TriplaneConfig and/or keyword overrides of its fields.
    """

    kind = "3d"  # the model kind of ModelConfig.kind (checkpoints and the metrics registry record it)
    # (radius, focal) of the views of grids, edits and metrics, at pitch 0 looking at the origin;
    # linkgan.networks.build sets the model config's (ModelConfig.camera_radius, camera_focal).
    view_camera = (2.7, 2.8)

    def __init__(self, config: TriplaneConfig | None = None, **overrides):
        super().__init__()
        cfg = dataclasses.replace(config or TriplaneConfig(), **overrides)
        self.config = cfg
        self.z_dim, self.w_dim, self.c_dim = cfg.z_dim, cfg.w_dim, cfg.c_dim
        self.img_channels = 3
        self.numerics = cfg.numerics
        self.resolution = cfg.image_resolution
        self.neural_resolution = cfg.neural_resolution
        if cfg.feature_channels < 3:
            raise InputError(f"feature_channels must be at least 3 (RGB), got {cfg.feature_channels}")
        self.backbone = SynthesisNetwork(cfg.plane_resolution, cfg.w_dim, 3 * cfg.plane_channels, cfg.channel_base,
                                         cfg.channel_max, impl=cfg.modconv, conv_clamp=cfg.conv_clamp,
                                         numerics=cfg.numerics)
        self.num_ws = self.backbone.num_ws
        self.mapping = CameraMappingNetwork(cfg.z_dim, cfg.c_dim, cfg.w_dim, self.num_ws, cfg.mapping_layers,
                                            cfg.mapping_lr_mul)
        self.decoder = TriplaneDecoder(cfg.plane_channels, cfg.decoder_hidden, cfg.feature_channels)
        self.superresolution = None
        if cfg.superresolution:
            self.superresolution = SuperResolution2x(cfg.feature_channels, cfg.sr_channels, cfg.w_dim,
                                                     cfg.image_resolution, impl=cfg.modconv,
                                                     conv_clamp=cfg.conv_clamp, numerics=cfg.numerics)

    @classmethod
    def from_config(cls, config: dict | TriplaneConfig) -> TriplaneGenerator:
        """Rebuild from a TriplaneConfig or its dict (dataclasses.asdict), e.g. a checkpoint's config."""
        if isinstance(config, dict):
            names = {f.name for f in dataclasses.fields(TriplaneConfig)}
            unknown = sorted(set(config) - names)
            if unknown:
                raise InputError(f"unknown TriplaneConfig fields {unknown}; known: {sorted(names)}")
            config = TriplaneConfig(**config)
        return cls(config)

    def render_options(self, **overrides) -> RenderOptions:
        """The ray sampling of this generator: jittered in train mode, deterministic in eval mode."""
        cfg = self.config
        opts = {"near": cfg.near, "far": cfg.far, "coarse_samples": cfg.coarse_samples,
                "fine_samples": cfg.fine_samples, "jitter": self.training}
        opts.update(overrides)
        return RenderOptions(**opts)

    # ------------------------------------------------------------------ pieces
    def planes(self, ws: torch.Tensor, noise_mode: str = "random", noise_repeats: int = 1) -> torch.Tensor:
        """ws (N, num_ws, w_dim) -> feature planes (N, 3, C, P, P) (xy, xz, zy)."""
        x = self.backbone(ws, noise_mode, noise_repeats)
        n, _, p, _ = x.shape
        return x.reshape(n, 3, self.config.plane_channels, p, p)

    def sample_planes(self, planes: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
        """Bilinear plane features at world points (N, M, 3), averaged over the planes: (N, M, C)."""
        n, _, c, p, _ = planes.shape
        coords = points * (2.0 / self.config.box_size)  # the box maps to grid_sample's [-1, 1]
        grid = torch.stack([coords[..., list(axes)] for axes in PLANE_AXES], dim=1)  # (N, 3, M, 2)
        feats = F.grid_sample(planes.reshape(n * 3, c, p, p), grid.reshape(n * 3, 1, -1, 2).to(planes.dtype),
                              mode="bilinear", padding_mode="zeros", align_corners=False)  # (N*3, C, 1, M)
        return feats.reshape(n, 3, c, -1).mean(dim=1).transpose(1, 2)

    def decode(self, planes: torch.Tensor, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Density (N, M, 1) and features (N, M, F) at world points (N, M, 3): the radiance field of the planes."""
        return self.decoder(self.sample_planes(planes, points).to(torch.float32))

    # ------------------------------------------------------------------ generation
    def synthesis(self, ws: torch.Tensor, c: torch.Tensor, noise_mode: str = "random", noise_repeats: int = 1,
                  neural_resolution: int | None = None, render_options: RenderOptions | None = None,
                  generator: torch.Generator | None = None) -> dict:
        """Render ws (N, num_ws, w_dim) from the cameras c (N, 25). See the class docstring for the outputs.

        neural_resolution overrides r (a sharper or cheaper render; the super-resolution stage
        then doubles that, without its noise inputs); render_options overrides the ray sampling; generator seeds the
        sample jitter.
        """
        n = ws.shape[0]
        if c.ndim != 2 or c.shape != (n, 25):
            raise ValueError(f"c must hold one 25-value camera label per sample: shape ({n}, 25), got {tuple(c.shape)}")
        r = neural_resolution or self.neural_resolution
        planes = self.planes(ws, noise_mode, noise_repeats)
        cam2world, K = split_camera_labels(c.to(torch.float32))
        origins, dirs = ray_bundle(cam2world, K, r)
        out = render_rays(lambda points, _dirs: self.decode(planes, points), origins, dirs,
                          render_options or self.render_options(), generator)
        features = out["features"].transpose(1, 2).reshape(n, -1, r, r)
        image_raw = features[:, :3]
        image = image_raw
        if self.superresolution is not None:
            # Its noise maps exist at the configured resolution only; another one renders without noise.
            sr_noise = noise_mode if r == self.neural_resolution else "none"
            image = self.superresolution(image_raw, features, ws[:, -1], sr_noise, noise_repeats)
        return {"image": image, "image_raw": image_raw, "depth": out["depth"].reshape(n, 1, r, r),
                "opacity": out["opacity"].reshape(n, 1, r, r)}

    def forward(self, z: torch.Tensor, c: torch.Tensor, truncation_psi: float = 1.0, noise_mode: str = "random",
                **synthesis_kwargs) -> dict:
        """Map z with the camera c and render from the same camera."""
        return self.synthesis(self.mapping(z, c, truncation_psi), c, noise_mode, **synthesis_kwargs)

    def render(self, ws: torch.Tensor, c: torch.Tensor | None = None, noise_mode: str = "random",
               noise_repeats: int = 1, deterministic: bool = False) -> dict[str, torch.Tensor]:
        """``synthesis`` under the interface both generator kinds share (linkgan.networks.Generator.render):
        deterministic=True samples every ray at its strata centres, so that chunks of one batch
        that differ only in their latents differ only where the latents change the scene."""
        if c is None:
            raise ValueError("a 3D generator renders from cameras: give c (N, 25), e.g. G.frontal_cameras(N)")
        return self.synthesis(ws, c, noise_mode, noise_repeats,
                              render_options=self.render_options(jitter=False) if deterministic else None)

    def view_cameras(self, yaws=(0.0,), pitch: float = 0.0, device=None) -> torch.Tensor:
        """Camera labels (V, 25) looking at the origin from the given yaws (degrees) at one pitch,
        from ``view_camera``'s radius with its focal length."""
        radius, focal = self.view_camera
        yaw = torch.tensor([math.radians(float(y)) for y in yaws])
        cams = camera_labels(look_at(yaw, torch.full_like(yaw, math.radians(pitch)), radius), intrinsics(focal))
        return cams.to(device)

    def frontal_cameras(self, n: int, device=None) -> torch.Tensor:
        """The front view's camera (n, 25), with which identities are mapped for grids, edits and metrics."""
        return self.view_cameras((0.0,), device=device).expand(n, -1)

    def style_mix(self, ws: torch.Tensor, prob: float, c: torch.Tensor | None = None,
                  generator: torch.Generator | None = None) -> torch.Tensor:
        """Style mixing (linkgan.networks.generator.mix_styles), the second latents mapped with the cameras c."""
        return mix_styles(self, ws, prob, c, generator)

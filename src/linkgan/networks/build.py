"""Networks from a ModelConfig: the one place that turns a config's model kind into G and D.

``build_generator`` and ``build_discriminator`` return StyleGAN2's Generator and Discriminator for
``kind: 2d`` and the EG3D-style TriplaneGenerator and CameraDiscriminator for ``kind: 3d``.
"""

from __future__ import annotations

from ..config import ConfigError, ModelConfig
from .camera_discriminator import CameraDiscriminator
from .discriminator import Discriminator
from .generator import Generator
from .triplane import TriplaneConfig, TriplaneGenerator


def build_generator(m: ModelConfig) -> Generator | TriplaneGenerator:
    """G of a model config: StyleGAN2 (2d) or the tri-plane generator (3d)."""
    if m.kind == "3d":
        G = TriplaneGenerator(triplane_config(m))
        # The viewing sphere of grids, edits and metrics travels with the network (and its EMA copy).
        G.view_camera = (float(m.triplane.camera_radius), float(m.triplane.camera_focal))
        return G
    return Generator(resolution=m.resolution, z_dim=m.z_dim, w_dim=m.w_dim, mapping_layers=m.mapping_layers,
                     mapping_lr_mul=m.mapping_lr_mul, channel_base=m.channel_base, channel_max=m.channel_max,
                     img_channels=m.img_channels, modconv=m.modconv, conv_clamp=m.conv_clamp, numerics=m.numerics)


def build_discriminator(m: ModelConfig) -> Discriminator | CameraDiscriminator:
    """D of a model config; in 3d camera-conditioned, with the raw render as extra channels."""
    if m.kind == "3d":
        cfg = triplane_config(m)
        return CameraDiscriminator(m.resolution, cfg.neural_resolution if cfg.superresolution else None,
                                   cfg.c_dim, m.channel_base, m.channel_max, m.mbstd_group, m.conv_clamp,
                                   numerics=m.numerics)
    return Discriminator(resolution=m.resolution, img_channels=m.img_channels, channel_base=m.channel_base,
                         channel_max=m.channel_max, mbstd_group=m.mbstd_group, conv_clamp=m.conv_clamp,
                         numerics=m.numerics)


def triplane_config(m: ModelConfig) -> TriplaneConfig:
    """The TriplaneConfig of a 3D ModelConfig: --res is the final image, rays are cast at res/2 with
    super-resolution."""
    if m.img_channels != 3:
        raise ConfigError(f"a 3D generator renders RGB: img_channels must be 3, got {m.img_channels}")
    if m.triplane.superresolution and m.resolution % 2:
        raise ConfigError(f"with super-resolution the resolution must be even (rays are cast at res/2), "
                          f"got {m.resolution}")
    tp = m.triplane
    return TriplaneConfig(z_dim=m.z_dim, w_dim=m.w_dim, mapping_layers=m.mapping_layers, mapping_lr_mul=m.mapping_lr_mul,
                          plane_resolution=tp.plane_resolution, plane_channels=tp.plane_channels,
                          channel_base=m.channel_base, channel_max=m.channel_max, decoder_hidden=tp.decoder_hidden,
                          feature_channels=tp.feature_channels,
                          neural_resolution=m.resolution // 2 if tp.superresolution else m.resolution,
                          superresolution=tp.superresolution, sr_channels=tp.sr_channels, box_size=tp.box_size,
                          near=tp.ray_near, far=tp.ray_far, coarse_samples=tp.coarse_samples,
                          fine_samples=tp.fine_samples, modconv=m.modconv, conv_clamp=m.conv_clamp,
                          numerics=m.numerics)

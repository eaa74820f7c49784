"""Networks: the StyleGAN2 generator and discriminator in plain PyTorch, and the tri-plane 3D generator."""

from .camera_discriminator import CameraDiscriminator
from .discriminator import Discriminator
from .generator import (
    MAX_SEED,
    Generator,
    MappingNetwork,
    SynthesisNetwork,
    UnconditionalGenerator,
    channels_at,
    z_from_seeds,
)
from .layers import ModulatedConv2d
from .triplane import CameraMappingNetwork, TriplaneConfig, TriplaneGenerator

__all__ = ["MAX_SEED", "CameraDiscriminator", "CameraMappingNetwork", "Discriminator", "Generator", "MappingNetwork",
           "SynthesisNetwork", "ModulatedConv2d", "TriplaneConfig", "TriplaneGenerator", "UnconditionalGenerator",
           "channels_at", "z_from_seeds"]

"""Networks: the StyleGAN2 generator and discriminator in plain PyTorch."""

from .discriminator import Discriminator
from .generator import Generator, MappingNetwork, SynthesisNetwork, channels_at, z_from_seeds
from .layers import ModulatedConv2d

__all__ = ["Discriminator", "Generator", "MappingNetwork", "SynthesisNetwork", "ModulatedConv2d",
           "channels_at", "z_from_seeds"]

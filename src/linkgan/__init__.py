"""linkgan: GANs whose latent axes are explicitly linked to image regions (LinkGAN, ICCV 2023)."""

__version__ = "0.1.0"

from .pipeline import LinkGANPipeline  # noqa: E402
from .pretrained import pretrained_path  # noqa: E402

__all__ = ["LinkGANPipeline", "pretrained_path", "__version__"]

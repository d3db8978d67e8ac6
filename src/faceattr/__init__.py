"""faceattr: change one attribute of a face by searching a GAN's latent space (CN 107665339 B)."""

__version__ = "0.1.0"

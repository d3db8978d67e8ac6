"""Every network of faceattr, each with its config: the patent G-Net and D-Net, MobileStyleGAN, E-Net, the encoder."""

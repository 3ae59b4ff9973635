"""flexae: generative auto-encoders with learned latent priors (Mondal et al., UAI 2021)."""

__version__ = "0.1.0"

"""The one place networks are built for a data shape: Table 6 (synthetic data, (128,)) or
Tables 7-8 (images, (C, H, W)). Every model, the paper's and the baselines', gets its encoder,
decoder and critics here, so all share exactly the same layouts and initialisation.
"""

from __future__ import annotations

import importlib

from torch import nn

from flexae.config import ModelConfig
from flexae.errors import UserError
from flexae.trust import check_import


def user_network(reference: str, *args: object, cfg: ModelConfig | None = None, field: str = "") -> nn.Module:
    """Build a network of the user's own from its "module:Class" reference: Class(*args). The
    reference `cfg.<field>` of a config read from a file is imported only with consent (flexae.trust)."""
    module_name, _, qualname = reference.partition(":")
    if not module_name or not qualname or "<locals>" in qualname:
        raise UserError(f"network {reference!r}: give an importable 'module:Class' (a class defined at the top "
                        f"level of a module, so a saved run can build it again)")
    check_import(cfg, field, reference)  # before anything is imported
    try:
        target: object = importlib.import_module(module_name)
        for part in qualname.split("."):
            target = getattr(target, part)
    except ImportError as exc:
        raise UserError(f"network {reference!r}: cannot import {module_name} ({exc})") from None
    except AttributeError:
        raise UserError(f"network {reference!r}: {module_name} has no {qualname}") from None
    try:
        net = target(*args)  # type: ignore[operator]
    except Exception as exc:  # the user's constructor: any error, one line
        raise UserError(f"network {reference!r}{args!r} failed: {type(exc).__name__}: {exc}") from None
    if not isinstance(net, nn.Module):
        raise UserError(f"network {reference!r} built a {type(net).__name__}, not a torch.nn.Module")
    return net


def _own_networks(nets: dict[str, nn.Module], data_shape: tuple[int, ...], cfg: ModelConfig, encoder_out: int,
                  code_dim: int) -> dict[str, nn.Module]:
    """Replace encoder / decoder by the user's classes named in cfg.encoder / cfg.decoder."""
    if cfg.encoder:
        nets["encoder"] = user_network(cfg.encoder, tuple(data_shape), encoder_out, cfg=cfg, field="encoder")
    if cfg.decoder:
        nets["decoder"] = user_network(cfg.decoder, tuple(data_shape), code_dim, cfg=cfg, field="decoder")
    return nets


def paper_networks(data_shape: tuple[int, ...], cfg: ModelConfig, encoder_out: int) -> dict[str, nn.Module]:
    """{"encoder", "decoder", "prior_generator", "latent_critic"} (+ "smoothing_critic" for images)
    of the paper's models; `encoder_out` is m, or 2m for a Gaussian encoder. cfg.encoder /
    cfg.decoder replace the paper's encoder / decoder by classes of the user's own."""
    return _own_networks(_paper_networks(data_shape, cfg, encoder_out), data_shape, cfg, encoder_out, cfg.latent_dim)


def _paper_networks(data_shape: tuple[int, ...], cfg: ModelConfig, encoder_out: int) -> dict[str, nn.Module]:
    m, noise_dim = cfg.latent_dim, cfg.noise_dim or cfg.latent_dim
    if len(data_shape) == 1:
        from flexae.nets import synthetic as nets
        from flexae.nets.common import glorot_init_
        built = {"encoder": nets.synthetic_encoder(data_shape[0], encoder_out),
                 "decoder": nets.synthetic_decoder(m, data_shape[0]),
                 "prior_generator": nets.synthetic_prior_generator(noise_dim, m),
                 "latent_critic": nets.synthetic_latent_critic(m)}
        return {name: glorot_init_(net) for name, net in built.items()}  # the authors' Glorot init
    from flexae.nets.image import image_networks
    return image_networks(data_shape, m, noise_dim, variant=cfg.decoder_variant, bn_momentum=cfg.bn_momentum,
                          bn_eps=cfg.bn_eps, init=cfg.init, encoder_out_features=encoder_out)


def encoder_decoder(data_shape: tuple[int, ...], cfg: ModelConfig, encoder_out: int,
                    code_dim: int) -> tuple[nn.Module, nn.Module]:
    """The encoder and decoder of the baselines (see `_encoder_decoder`), or the user's own classes."""
    encoder, decoder = _encoder_decoder(data_shape, cfg, encoder_out, code_dim)
    nets = _own_networks({"encoder": encoder, "decoder": decoder}, data_shape, cfg, encoder_out, code_dim)
    return nets["encoder"], nets["decoder"]


def _encoder_decoder(data_shape: tuple[int, ...], cfg: ModelConfig, encoder_out: int,
                     code_dim: int) -> tuple[nn.Module, nn.Module]:
    """The encoder (data -> encoder_out) and decoder (code_dim -> data) of the baselines.

    Images: Table 7 (conv encoder with BN, deconv decoder with a sigmoid output); synthetic data:
    Table 6 (one hidden layer each, tanh output), Glorot-initialised as in `paper_networks`.
    """
    if len(data_shape) == 1:
        from flexae.nets import synthetic as nets
        from flexae.nets.common import glorot_init_
        return (glorot_init_(nets.synthetic_encoder(data_shape[0], encoder_out)),
                glorot_init_(nets.synthetic_decoder(code_dim, data_shape[0])))
    from flexae.nets.image import DECODER_VARIANTS, ImageDecoder, ImageEncoder
    if cfg.decoder_variant not in DECODER_VARIANTS:
        raise UserError(f"unknown decoder variant {cfg.decoder_variant!r}; choose from {sorted(DECODER_VARIANTS)}")
    kernel, activation = DECODER_VARIANTS[cfg.decoder_variant]
    bn = {"bn_momentum": cfg.bn_momentum, "bn_eps": cfg.bn_eps}
    encoder = ImageEncoder(data_shape, code_dim, encoder_out, **bn)  # type: ignore[arg-type]
    decoder = ImageDecoder(data_shape, code_dim, kernel, activation, **bn)  # type: ignore[arg-type]
    return encoder, decoder


def latent_critic(data_shape: tuple[int, ...], dim: int) -> nn.Module:
    """The WGAN-GP latent critic of Table 8 (images) or Table 6 (synthetic data) on codes of size dim."""
    if len(data_shape) == 1:
        from flexae.nets.common import glorot_init_
        from flexae.nets.synthetic import synthetic_latent_critic
        return glorot_init_(synthetic_latent_critic(dim))
    from flexae.nets.image import LatentCritic
    return LatentCritic(dim)


def prior_networks(data_shape: tuple[int, ...], latent_dim: int, noise_dim: int) -> tuple[nn.Module, nn.Module]:
    """(prior generator G_psi: noise (N, m') -> (N, m), latent critic C_kappa: (N, m) -> (N, 1)) of
    Table 8 (images) or Table 6 (synthetic data), for a prior fitted to a trained model's codes."""
    if len(data_shape) == 1:
        from flexae.nets import synthetic as nets
        from flexae.nets.common import glorot_init_
        return (glorot_init_(nets.synthetic_prior_generator(noise_dim, latent_dim)),
                glorot_init_(nets.synthetic_latent_critic(latent_dim)))
    from flexae.nets.image import LatentCritic, PriorGenerator
    return PriorGenerator(noise_dim, latent_dim), LatentCritic(latent_dim)


def mapping_network(in_dim: int, width: int, layers: int, out_dim: int) -> nn.Module:
    """ALAE's mapping F (z (N, in_dim) -> w (N, out_dim)): PixelNorm, then `layers` x [Linear ->
    LeakyReLU(0.2)], the last Linear of size out_dim and followed by the activation too, as in the
    original (`net.py` MappingF, MappingBlock). Glorot-initialised like the other MLPs here."""
    from flexae.nets.common import PixelNorm, glorot_init_
    blocks: list[nn.Module] = [PixelNorm()]
    for i in range(layers):
        blocks += [nn.Linear(in_dim if i == 0 else width, out_dim if i == layers - 1 else width),
                   nn.LeakyReLU(0.2)]
    return glorot_init_(nn.Sequential(*blocks))


def linear_head(dim: int, layers: int) -> nn.Module:
    """ALAE's discriminator head on w (N, dim) -> (N, 1): `layers` Linear layers of width dim with no
    activation between them, the last with one output (the original's MappingD, `net.py`)."""
    from flexae.nets.common import glorot_init_
    blocks = [nn.Linear(dim, 1 if i == layers - 1 else dim) for i in range(layers)]
    return glorot_init_(nn.Sequential(*blocks))

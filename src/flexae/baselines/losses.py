"""Loss functions of the baselines, as pure functions of tensors.

Shapes: z, z_prior (B, m) codes; mu, logvar (B, m) Gaussian posterior parameters; x (B, ...) data.
Every per-sample quantity is *summed* over its dimensions and averaged over the batch, like
`flexae.losses.reconstruction_loss` (L_AE), so weights are comparable across models.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

HALF_LOG_TWO_PI = 0.5 * math.log(2 * math.pi)

# Tolstikhin et al. (2018) sum IMQ kernels over these multiples of the base scale 2 m sigma_z^2.
IMQ_SCALES = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)


def imq_kernel(x: Tensor, y: Tensor, c: float) -> Tensor:
    """Inverse multiquadratics kernel k(x, y) = C / (C + ||x - y||^2); (N, m), (M, m) -> (N, M)."""
    return c / (c + torch.cdist(x, y).pow(2))


def mmd_imq(z: Tensor, z_prior: Tensor, prior_var: float = 1.0,
            scales: tuple[float, ...] = IMQ_SCALES) -> Tensor:
    """Unbiased MMD^2 estimate between codes z (n, m) and prior samples z_prior (n, m) (WAE-MMD).

    Sum over C = s * 2 m prior_var, s in `scales`, of
    [sum_{i != j} k(z_i, z_j) + sum_{i != j} k(p_i, p_j)] / (n (n - 1)) - 2 sum_{i, j} k(z_i, p_j) / n^2.
    """
    n, m = z.shape
    off_diagonal = 1 - torch.eye(n, device=z.device, dtype=z.dtype)
    total = z.new_zeros(())
    for s in scales:
        c = s * 2.0 * m * prior_var
        within = (imq_kernel(z, z, c) * off_diagonal).sum() + (imq_kernel(z_prior, z_prior, c) * off_diagonal).sum()
        total = total + within / (n * (n - 1)) - 2 * imq_kernel(z, z_prior, c).mean()
    return total


def scaled_cost(rec: Tensor, scale: float) -> Tensor:
    """The WAE authors' c(x, D(E(x))): `scale` times the batch mean of the per-image sum of squares
    `rec` (L_AE). Their `l2sq` cost is 0.05 * that sum on their data range (tolstikhin/wae, wae.py,
    `reconstruction_loss`, lines 339-342); 0.05 on [0, 1] images, 0.2 on [0, 1] images standing
    for their [-1, 1] ones (the squared error of 2x - 1 is 4 times that of x)."""
    return scale * rec


def js_adversary_loss(logits_prior: Tensor, logits_codes: Tensor, weight: float) -> Tensor:
    """WAE-GAN's adversary loss (wae.py, `gan_penalty`, lines 317-326): lambda * [BCE(prior logits,
    1) + BCE(code logits, 0)], each BCE a batch mean. Prior samples are "real", codes "fake";
    logits (B,) or (B, 1)."""
    real = F.binary_cross_entropy_with_logits(logits_prior, torch.ones_like(logits_prior))
    fake = F.binary_cross_entropy_with_logits(logits_codes, torch.zeros_like(logits_codes))
    return weight * (real + fake)


def js_encoder_penalty(logits_codes: Tensor) -> Tensor:
    """WAE-GAN's penalty on the encoder, the non-saturating GAN term (wae.py lines 323-328,
    `loss_Qz_trick`): BCE(code logits, 1) = mean log(1 + exp(-logit)), a batch mean."""
    return F.binary_cross_entropy_with_logits(logits_codes, torch.ones_like(logits_codes))


def prior_log_density_logits(logits: Tensor, z: Tensor, prior_var: float) -> Tensor:
    """The adversary's "gan_p_trick" (AVB; models.py, `z_adversary`, lines 340-354): logits (B,)
    plus log N(z; 0, prior_var I) as the authors write it, -||z||^2 / (2 prior_var) - log(2 pi) / 2
    - m log(prior_var) / 2, per code z (B, m). (Their (B, 1) - (B,) subtraction broadcasts to a
    (B, B) matrix; this is the per-sample form it means.)"""
    m = z.shape[1]
    return (logits - z.pow(2).sum(dim=1) / (2.0 * prior_var) - HALF_LOG_TWO_PI
            - 0.5 * m * math.log(prior_var))


def code_l2_penalty(z: Tensor) -> Tensor:
    """RAE's L_z as in the authors' code: batch mean of mean_j z_j^2 (the paper writes 1/2 ||z||^2)."""
    return z.pow(2).mean(dim=1).mean()


def squared_weight_sum(weights: list[Tensor]) -> Tensor:
    """RAE's L_REG: sum of squared weights (Keras l2 regulariser, without the 1/2)."""
    return torch.stack([w.pow(2).sum() for w in weights]).sum()


def gaussian_log_density(z: Tensor, mu: Tensor, logvar: Tensor) -> Tensor:
    """log N(z; mu, diag exp(logvar)) summed over the last dimension; broadcasts over the rest."""
    return -(HALF_LOG_TWO_PI + 0.5 * logvar + 0.5 * (z - mu).pow(2) * torch.exp(-logvar)).sum(dim=-1)


def standard_normal_log_density(z: Tensor) -> Tensor:
    """log N(z; 0, I) summed over the last dimension."""
    return -(HALF_LOG_TWO_PI + 0.5 * z.pow(2)).sum(dim=-1)


def gaussian_nll_learned_scale(target: Tensor, mean: Tensor, log_gamma: Tensor) -> Tensor:
    """-log N(target; mean, gamma^2 I) per sample, summed over dimensions, averaged over the batch,
    with one learned standard deviation gamma = exp(log_gamma) (Dai & Wipf's gamma_x, gamma_z)."""
    sq = (target - mean).pow(2).flatten(1)
    per_dim = 0.5 * sq * torch.exp(-2 * log_gamma) + log_gamma + HALF_LOG_TWO_PI
    return per_dim.sum(dim=1).mean()


def vamp_log_prior(z: Tensor, mu_k: Tensor, logvar_k: Tensor) -> Tensor:
    """log p(z) of the VampPrior, p(z) = 1/K sum_k N(z; mu_k, diag exp(logvar_k)).

    z (B, m), mu_k / logvar_k (K, m) -> (B,), by log-sum-exp over the K components.
    """
    per_component = gaussian_log_density(z[:, None, :], mu_k[None], logvar_k[None])  # (B, K)
    return torch.logsumexp(per_component, dim=1) - math.log(mu_k.shape[0])


def vq_losses(z_e: Tensor, z_q: Tensor) -> tuple[Tensor, Tensor]:
    """VQ-VAE's codebook loss ||sg[z_e] - e||^2 and commitment loss ||z_e - sg[e]||^2 (unweighted).

    z_e encoder outputs and z_q their nearest codebook entries, both (B, L, D); summed over L and D,
    averaged over the batch. The commitment weight beta is applied by the caller.
    """
    codebook = (z_e.detach() - z_q).pow(2).flatten(1).sum(dim=1).mean()
    commitment = (z_e - z_q.detach()).pow(2).flatten(1).sum(dim=1).mean()
    return codebook, commitment


def masked_variance_penalty(z: Tensor, mask: Tensor) -> Tensor:
    """MaskAAE's variance penalty: per-dimension batch variance of the *unmasked* codes z (B, m),
    weighted by exp(-10 alpha^2) so that dimensions the mask switches off (alpha ~ 0) are pushed
    to a constant; summed over dimensions (the authors' code averages them)."""
    weight = torch.exp(-10 * mask.pow(2))  # (m,): ~1 for masked-off dims, ~5e-5 for alpha = 1
    return ((z - z.mean(dim=0, keepdim=True)).pow(2).mean(dim=0) * weight).sum()


def polarising_penalty(mask: Tensor) -> Tensor:
    """MaskAAE's sum_j |alpha_j (1 - alpha_j)|: zero only for a binary mask."""
    return (mask * (1 - mask)).abs().sum()


# -- vae-iop (flexae.baselines.iop): the implicit optimal prior -----------------------------------

def iop_kl(mu: Tensor, logvar: Tensor, log_ratio: Tensor) -> Tensor:
    """VAE-IOP's estimate of KL(q(z|x) || q(z)) = KL(q(z|x) || N(0, I)) - E_q(z|x)[log q(z)/N(z)]:
    the closed-form Gaussian KL (summed over m) minus the estimated log ratio T(z) at the posterior
    sample z, averaged over the batch. mu, logvar (B, m); log_ratio (B,)."""
    closed_form = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(dim=1)  # (B,)
    return (closed_form - log_ratio).mean()


def density_ratio_loss(logits_q: Tensor, logits_p: Tensor) -> Tensor:
    """Logistic regression of codes (label 1, logits (B,)) against prior samples (label 0, (B',)):
    mean binary cross-entropy of each set, summed (the authors' two `BCEWithLogitsLoss` terms).
    Its minimiser's logit is log q(z) / p(z) when both sets are equally large."""
    return (torch.nn.functional.softplus(-logits_q).mean()    # -log sigmoid(T) on codes
            + torch.nn.functional.softplus(logits_p).mean())  # -log(1 - sigmoid(T)) on prior samples


def relative_ess(log_weights: Tensor) -> Tensor:
    """Effective sample size over n of self-normalised importance weights w = exp(log_weights) (n,):
    (sum w)^2 / (n sum w^2), in (0, 1]; 1 when all weights are equal."""
    log_w = log_weights - log_weights.max()
    return torch.exp(2 * torch.logsumexp(log_w, 0) - torch.logsumexp(2 * log_w, 0)) / log_weights.shape[0]


# -- ALAE (Pidhorskyi, Adjeroh, Doretto, CVPR 2020; the original's `losses.py`) -------------------
# d_real, d_fake (B,): discriminator scores D(x) = head(E(x)) of real and generated images.

def alae_discriminator_loss(d_fake: Tensor, d_real: Tensor) -> Tensor:
    """Non-saturating logistic loss of D: mean of softplus(D(G(F(z)))) + softplus(-D(x))."""
    return (F.softplus(d_fake) + F.softplus(-d_real)).mean()


def r1_penalty(d_real: Tensor, x: Tensor, gamma: float, input_scale: float = 1.0) -> Tensor:
    """R1: (gamma / 2) ||grad_x D(x)||^2 on real data, summed over each image, averaged over the
    batch; x (B, ...) must require grad and d_real (B,) be computed from it (graph kept for the
    update). `input_scale`: the gradient is taken with respect to x * input_scale, the original's
    data range (2 for images in [0, 1], which ALAE feeds in [-1, 1]): ||grad||^2 / input_scale^2."""
    (grad,) = torch.autograd.grad(d_real.sum(), x, create_graph=True)
    return 0.5 * gamma * grad.pow(2).flatten(1).sum(dim=1).mean() / input_scale ** 2


def alae_generator_loss(d_fake: Tensor) -> Tensor:
    """Non-saturating generator loss: mean softplus(-D(G(F(z))))."""
    return F.softplus(-d_fake).mean()


def latent_reconstruction_loss(w_rec: Tensor, w: Tensor) -> Tensor:
    """ALAE's L_ae: mean over batch and dimensions of (E(G(w)) - sg[w])^2, w = F(z) (B, m) with its
    gradient stopped as in the original (`model.py`, `s.detach()`); gradients reach E, G and F
    (through G's input)."""
    return (w_rec - w.detach()).pow(2).mean()


# -- Pioneer / AGE (Heljakka, Solin, Kannala, ACCV 2018; Ulyanov, Vedaldi, Lempitsky, CVPR 2018) ---

def age_kl(codes: Tensor) -> Tensor:
    """AGE's KL estimate of a batch of codes (B, m) to N(0, I): the batch's per-dimension Gaussian
    fit N(mean_j, var_j) (biased variance), KL(N(mean_j, var_j) || N(0, 1)) averaged over j, in
    Pioneer's form (its `train.py` KLN01Loss, direction "qp"):
    mean_j [(var_j + mean_j^2) / 2 - log(var_j) / 2 - 1/2]."""
    mean = codes.mean(dim=0)
    var = (codes - mean).pow(2).mean(dim=0)
    return ((var + mean.pow(2)) / 2 - 0.5 * var.log() - 0.5).mean()


def pioneer_image_loss(recon: Tensor, x: Tensor, input_scale: float = 1.0) -> Tensor:
    """Pioneer's image reconstruction error: mean |g(e(x)) - x| over every value (its L1
    `mismatch`), measured in the original's data range (`input_scale` 2 for images in [0, 1],
    which Pioneer feeds in [-1, 1])."""
    return input_scale * (recon - x).abs().mean()


def pioneer_code_loss(codes: Tensor, z: Tensor) -> Tensor:
    """Pioneer's latent reconstruction error (its "cos" `mismatch`): mean over batch and
    dimensions of 2 - u_j v_j, u, v the codes (B, m) and z projected on the unit sphere; note the
    mean over j, so the loss is 2 - cos(u, v) / m, as in the original."""
    u = codes / codes.norm(dim=1, keepdim=True)
    v = z / z.norm(dim=1, keepdim=True)
    return (2 - u * v).mean(dim=1).mean()

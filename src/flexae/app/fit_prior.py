"""`flexae fit-prior RUN_DIR`: learn a FlexAE prior on the frozen codes of a trained run's encoder
and write it into the run (`prior.pt`, flexae.runs.prior_file), so `sample`, `eval`, `export` and
`load_run` generate through it. `fit_prior(codes)` does the same for codes of any encoder.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import Tensor

from flexae.config import OptimConfig
from flexae.data import as_float, load_for_config, run_data_shape
from flexae.devices import resolve_device
from flexae.errors import UserError
from flexae.nets.factory import prior_networks
from flexae.priors import LearnedPrior
from flexae.runs import prior_file
from flexae.app.build import read_model
from flexae.runs.folder import RunFolderLock, checkpoint_path
from flexae.runs.layout import LOG_NAME
from flexae.runs.log import RunLog
from flexae.training.prior_fit import fit_learned_prior
from flexae.trust import allowing_code

ENCODE_BATCH = 256
NOT_SUPPORTED = {"vq-vae": "its codes are vector-quantised (a learned prior over continuous codes would decode "
                           "points between codebook entries)"}


@torch.no_grad()
def encode_all(encode, images: Tensor, device: torch.device, batch_size: int = ENCODE_BATCH) -> Tensor:
    """Codes (N, m) on `device` of uint8 images (N, C, H, W) (or float data), in batches."""
    parts = [encode(as_float(images[i:i + batch_size]).to(device)) for i in range(0, images.shape[0], batch_size)]
    return torch.cat(parts).float()


def fit_prior(codes: Tensor, *, noise_dim: int | None = None, networks: str = "image",
              optim: OptimConfig | None = None, steps: int = 5000, batch_size: int = 128, seed: int = 0,
              progress: bool = True) -> tuple[LearnedPrior, dict[str, float]]:
    """A FlexAE prior for codes (N, m) of your own encoder: returns (prior, statistics);
    `prior.sample(n)` gives (n, m) codes for your decoder. `networks`: "image" (Table 8: 4 x 1024
    wide MLPs) or "synthetic" (Table 6: 128 wide)."""
    if networks not in ("image", "synthetic"):
        raise UserError(f"networks must be 'image' (Table 8) or 'synthetic' (Table 6), got {networks!r}")
    if not isinstance(codes, Tensor) or codes.dim() != 2:
        raise UserError(f"codes must be a float tensor (N, m), got {getattr(codes, 'shape', type(codes).__name__)}")
    m = codes.shape[1]
    torch.manual_seed(seed)  # before the networks are built: their initialisation is part of the fit
    generator, critic = prior_networks((1, 8, 8) if networks == "image" else (1,), m, noise_dim or m)
    return fit_learned_prior(codes, generator, critic, noise_dim or m, optim, steps, batch_size, seed, progress)


def fit_prior_run(run_dir: str | Path, *, steps: int = 5000, batch_size: int | None = None,
                  fit_points: int = 0, noise_dim: int | None = None, data_dir: str | None = None,
                  device: str = "auto", seed: int | None = None, progress: bool = True,
                  trust_code: bool = False) -> dict[str, float]:
    """Learn a prior on the codes of a run's training images (all, or a random `fit_points`) and
    write RUN_DIR/prior.pt. The run's optimisers (optim.critic, optim.gen, critic_steps, gp_weight)
    and batch size are used unless given; `trust_code`: as for `load_run`."""
    path = checkpoint_path(run_dir)
    run_dir = path.parent
    torch_device = resolve_device(device)
    with allowing_code(trust_code):
        model, cfg, state = read_model(path, torch_device, with_sampler=False)  # the own prior: prior.pt is rewritten
    if cfg.model.name in NOT_SUPPORTED:
        raise UserError(f"fit-prior does not apply to {cfg.model.name}: {NOT_SUPPORTED[cfg.model.name]}")
    if fit_points < 0:
        raise UserError(f"--fit-points must be >= 0 (0: all training images), got {fit_points}")
    model = model.to(torch_device).eval()
    data = load_for_config(cfg.train, data_dir)
    train = data.train
    seed = cfg.train.seed if seed is None else seed
    if fit_points and fit_points < train.shape[0]:
        train = train[torch.randperm(train.shape[0], generator=torch.Generator().manual_seed(seed))[:fit_points]]
    codes = encode_all(model.encode, train, torch_device)
    m = codes.shape[1]
    noise_dim = noise_dim or cfg.model.noise_dim or m
    torch.manual_seed(seed)  # before the networks are built: same seed, same prior
    generator, critic = prior_networks(run_data_shape(cfg.train, path), m, noise_dim)
    with RunFolderLock(run_dir):  # not while a training process writes this run
        prior, stats = fit_learned_prior(codes, generator, critic, noise_dim, cfg.optim, steps,
                                         batch_size or cfg.train.batch_size, seed, progress)
        prior_file.save(run_dir, model, prior, int(state["step"]), stats)
        RunLog(run_dir / LOG_NAME).write({"step": int(state["step"]), "prior_fit": json.loads(json.dumps(stats))})
    return stats


__all__ = ["fit_prior", "fit_prior_run", "encode_all"]

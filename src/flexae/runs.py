"""Loading trained runs for use: `load_run(run_dir)` rebuilds the model from the checkpoint's
config (never from pickled objects) and loads its weights."""

from __future__ import annotations

from pathlib import Path

import torch

from flexae.config import RunConfig
from flexae.errors import UserError
from flexae.models import AutoEncoder, build_model
from flexae.training.checkpoint import CHECKPOINT_NAME, load_checkpoint


def load_run(run_dir: str | Path, device: str | torch.device = "cpu") -> tuple[AutoEncoder, RunConfig]:
    """Model in eval mode on `device`, and its RunConfig, from `run_dir/checkpoint.pt`."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"run folder {run_dir} does not exist")
    state = load_checkpoint(run_dir / CHECKPOINT_NAME, map_location=device)
    cfg = RunConfig.from_dict(state["config"])
    from flexae.data import DATASETS, SYNTHETIC
    from flexae.data.synthetic import DATA_DIM
    if cfg.train.dataset in SYNTHETIC:
        shape: tuple[int, ...] = (DATA_DIM,)
    elif cfg.train.dataset in DATASETS:
        from flexae.data.images import IMAGE_SHAPES
        shape = IMAGE_SHAPES[cfg.train.dataset]
    else:
        raise UserError(f"checkpoint in {run_dir} names an unknown data set {cfg.train.dataset!r}")
    model = build_model(cfg.model, shape)
    model.load_state_dict(state["model"])
    return model.to(device).eval(), cfg

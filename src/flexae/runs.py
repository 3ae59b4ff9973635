"""Loading trained runs for use: `load_run(run_dir)` rebuilds the model from the checkpoint's
config (never from pickled objects) and loads its weights; `load_run(file.safetensors)` does the
same for weights published with `flexae export` (see flexae.export)."""

from __future__ import annotations

from pathlib import Path

import torch

from flexae.config import RunConfig
from flexae.errors import UserError
from flexae.models import AutoEncoder, build_model
from flexae.training.checkpoint import CHECKPOINT_NAME, first_line, load_checkpoint
from flexae.validation import config_from_dict


def build_for_config(cfg: RunConfig, source: str | Path) -> AutoEncoder:
    """The (untrained) model `cfg` describes, for the data shape of its data set."""
    from flexae.data import DATASETS, SYNTHETIC
    from flexae.data.synthetic import DATA_DIM
    if cfg.train.dataset in SYNTHETIC:
        shape: tuple[int, ...] = (DATA_DIM,)
    elif cfg.train.dataset in DATASETS:
        from flexae.data.images import IMAGE_SHAPES
        shape = IMAGE_SHAPES[cfg.train.dataset]
    else:
        raise UserError(f"{source} names an unknown data set {cfg.train.dataset!r}")
    return build_model(cfg.model, shape)


def load_run(run_dir: str | Path, device: str | torch.device = "cpu") -> tuple[AutoEncoder, RunConfig]:
    """Model in eval mode on `device`, and its RunConfig, from `run_dir/checkpoint.pt` (or from an
    exported `.safetensors` file)."""
    run_dir = Path(run_dir)
    if run_dir.suffix == ".safetensors" and run_dir.is_file():
        from flexae.export import load_weights
        return load_weights(run_dir, device)
    if run_dir.is_file():
        raise UserError(f"{run_dir} is a file: give its run folder, or a .safetensors file from flexae export")
    if not run_dir.is_dir():
        raise UserError(f"run folder {run_dir} does not exist")
    state = load_checkpoint(run_dir / CHECKPOINT_NAME, map_location=device)
    cfg = config_from_dict(state["config"], run_dir / CHECKPOINT_NAME)
    model = build_for_config(cfg, run_dir / CHECKPOINT_NAME)
    try:
        model.load_state_dict(state["model"])
    except (RuntimeError, ValueError) as exc:  # missing, extra or mis-shaped tensors
        raise UserError(f"{run_dir / CHECKPOINT_NAME}: weights do not fit the model its config describes "
                        f"({first_line(exc)})") from None
    from flexae.baselines.samplers import load_into
    load_into(model, run_dir, state["step"])  # a fitted ex-post sampler (sampler.pt), if the model has one
    return model.to(device).eval(), cfg

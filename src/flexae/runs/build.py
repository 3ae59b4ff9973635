"""The model a run's config describes, and the one check of a checkpoint's model used by every
reader of checkpoints (load_run, resume, export): a config this flexae can rebuild, finite weights
and optimizer states, and weights that fit the model the config describes."""

from __future__ import annotations

from pathlib import Path

from flexae.config import RunConfig
from flexae.data import data_shape
from flexae.errors import UserError
from flexae.models import AutoEncoder
from flexae.files import first_line
from flexae.registry import build_model
from flexae.runs.checkpoint import check_finite_state
from flexae.validation import config_from_dict


def build_for_config(cfg: RunConfig, source: str | Path) -> AutoEncoder:
    """The (untrained) model `cfg` describes, for the data shape of its data set."""
    try:
        shape = data_shape(cfg.train.dataset)
    except UserError:
        raise UserError(f"{source} names an unknown data set {cfg.train.dataset!r}") from None
    return build_model(cfg.model, shape)


def model_from_checkpoint(state: dict, path: Path) -> tuple[AutoEncoder, RunConfig]:
    """(model with the checkpoint's weights, its RunConfig) from a loaded checkpoint `state`."""
    cfg = config_from_dict(state["config"], path)
    check_finite_state(state, path)
    model = build_for_config(cfg, path)
    try:
        model.load_state_dict(state["model"])
    except (RuntimeError, ValueError) as exc:  # missing, extra or mis-shaped tensors
        raise UserError(f"{path}: weights do not fit the model its config describes ({first_line(exc)})") from None
    return model, cfg

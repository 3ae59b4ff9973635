"""Published weights: a run's model as one `.safetensors` file, its config as JSON metadata.

A checkpoint is for resuming (optimizer states, RNG states) and is a zip of pickles that only
`torch.load(weights_only=True)` makes safe to open. For sharing a trained model, safetensors is
simpler and safe by construction: a JSON header and raw tensor bytes, no code path that can run
anything. `export_weights` writes the model's state dict with metadata

    format    "flexae-model"
    config    the run's RunConfig as JSON (the model is rebuilt from it, never unpickled)
    versions  flexae / torch / Python versions that wrote the run, as JSON
    step      the training iteration of the weights

and `load_weights` (also reached through `flexae.runs.load_run(path)`) checks all of it.
The fitted ex-post sampler of a baseline (`sampler.pt`) is part of the export (it is the model's
prior), so an exported ae-gmm, rae-gmm, 2s-vae or vq-vae model generates.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import torch

from flexae.config import RunConfig
from flexae.errors import UserError
from flexae.models import AutoEncoder
from flexae.files import atomic_write, first_line
from flexae.data import run_data_shape
from flexae.priors import LearnedPrior
from flexae.runs import prior_file
from flexae.runs.build import build_for_config, read_model
from flexae.runs.layout import PRIOR_NAME
from flexae.finite import require_finite
from flexae.runs.checkpoint import check_versions
from flexae.runs.folder import checkpoint_path
from flexae.validation import config_from_dict

FORMAT = "flexae-model"
SUFFIX = ".safetensors"


def export_weights(run_dir: str | Path, out: str | Path, overwrite: bool = False) -> Path:
    """Write the model weights of the run in `run_dir` to the safetensors file `out`."""
    from safetensors.torch import save

    run_dir, out = Path(run_dir), Path(out)
    if out.suffix != SUFFIX:
        raise UserError(f"{out}: give the exported file the {SUFFIX} suffix")
    if out.exists() and not overwrite:
        raise UserError(f"{out} exists; pass --overwrite to replace it")
    if not out.parent.is_dir():
        raise UserError(f"cannot write {out}: folder {out.parent} does not exist")
    path = checkpoint_path(run_dir)  # RUN_DIR's last checkpoint, or a checkpoint file (RUN_DIR/best.pt)
    run_dir = path.parent
    # The checks load_weights makes; the fitted ex-post sampler (sampler.pt) is part of the model's
    # state dict (its prior), so the exported file generates like the run does.
    model, _, state = read_model(path)
    if not model.can_generate():
        warnings.warn(f"{run_dir} has no fitted ex-post sampler (run `flexae fit-sampler {run_dir}` first); "
                      f"the exported model encodes and decodes but cannot generate", stacklevel=2)
    # Own, dense copies: safetensors refuses views and tensors sharing storage.
    tensors = {name: t.detach().cpu().contiguous().clone() for name, t in model.state_dict().items()}
    require_finite(tensors, run_dir, "not exported (its checkpoint, prior.pt or sampler.pt is damaged; fit "
                   "or train it again)")
    metadata = {"format": FORMAT, "config": json.dumps(state["config"]),
                "versions": json.dumps(state["versions"]), "step": str(state["step"])}
    if (run_dir / PRIOR_NAME).is_file() and isinstance(model.prior, LearnedPrior):  # fitted by `flexae fit-prior`
        metadata["learned_prior"] = json.dumps({"noise_dim": model.prior.noise_dim})
    atomic_write(out, lambda f: f.write(save(tensors, metadata)))
    return out


def _metadata(path: Path) -> tuple[dict, int]:
    """(config dict, step) from the header of a flexae safetensors file, checked."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except Exception as exc:  # SafetensorError, OSError, a header that is not JSON, ...
        raise UserError(f"cannot load {path}: not a readable safetensors file ({first_line(exc)})") from None
    if meta.get("format") != FORMAT:
        raise UserError(f"{path} is not a flexae model file (its metadata lacks format={FORMAT!r})")
    try:
        config, found_versions, step = json.loads(meta["config"]), json.loads(meta["versions"]), int(meta["step"])
    except (KeyError, ValueError, TypeError):
        raise UserError(f"{path}: garbled flexae metadata (config, versions or step)") from None
    check_versions(found_versions, path)
    return config, step


def _learned_prior(path: Path) -> int | None:
    """The noise size of the learned prior (`flexae fit-prior`) exported with the weights, or None."""
    from safetensors import safe_open
    with safe_open(str(path), framework="pt") as f:
        raw = (f.metadata() or {}).get("learned_prior")
    if raw is None:
        return None
    try:
        return int(json.loads(raw)["noise_dim"])
    except (ValueError, KeyError, TypeError):
        raise UserError(f"{path}: garbled learned_prior metadata") from None


def load_weights(path: str | Path, device: str | torch.device = "cpu") -> tuple[AutoEncoder, RunConfig]:
    """Model in eval mode on `device`, and its RunConfig, from a file written by `export_weights`."""
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise UserError(f"no model file at {path}")
    config, _ = _metadata(path)
    cfg = config_from_dict(config, path)
    model = build_for_config(cfg, path)
    learned = _learned_prior(path)
    if learned is not None:  # a prior learned after training replaces the model's own
        prior_file.attach(model, learned, run_data_shape(cfg.train, path), cfg.model.latent_dim)
    try:
        tensors = load_file(str(path), device="cpu")
    except Exception as exc:  # truncated data, offsets outside the file, bad dtypes
        raise UserError(f"cannot load {path}: truncated or corrupt ({first_line(exc)})") from None
    require_finite(tensors, path, "these weights cannot be used (export the run again)")
    try:
        model.load_state_dict(tensors)
    except (RuntimeError, ValueError) as exc:
        raise UserError(f"{path}: weights do not fit the model its config describes ({first_line(exc)})") from None
    return model.to(device).eval(), cfg

"""Loading trained runs for use: `load_run(run_dir)` rebuilds the model from the checkpoint's
config (never from pickled objects) and loads its weights; `load_run(file.safetensors)` does the
same for weights published with `flexae export` (see flexae.app.export)."""

from __future__ import annotations

from pathlib import Path

import torch

from flexae.config import RunConfig
from flexae.models import AutoEncoder
from flexae.app.build import read_model
from flexae.app.export import load_weights
from flexae.app.pretrained import is_pretrained_folder, load_folder
from flexae.runs.layout import CHECKPOINT_NAME
from flexae.runs.run_folder import RunFolder
from flexae.trust import allowing_code


def load_run(run_dir: str | Path, device: str | torch.device = "cpu", with_sampler: bool = True,
             checkpoint: str = "last", prior: str = "own",
             trust_code: bool = False) -> tuple[AutoEncoder, RunConfig]:
    """Model in eval mode on `device`, and its RunConfig, from `run_dir/checkpoint.pt`, from
    `best.pt` with checkpoint="best" (or a checkpoint file given as `run_dir`), or from an exported
    `.safetensors` file or folder (`flexae export --format folder`). `with_sampler=False` leaves a baseline's ex-post sampler unfitted instead
    of reading `sampler.pt` (for `flexae fit-sampler`, which rewrites it). `prior="fitted"`: the
    prior learned after training (`prior.pt`, `flexae fit-prior`) replaces the run's own (a one-line
    UserError if there is none), as does prior=NAME with the prior of that name (`fit-prior --name`);
    the default "own" never reads them. An exported file holds one prior, and `prior` must name it.
    A config naming code of its own ("module:Class", or a model "module:Name") is built only with
    `trust_code=True`, or when this process named that module itself (flexae.trust): importing it
    runs its code."""
    run_dir = Path(run_dir)
    with allowing_code(trust_code):
        if run_dir.suffix == ".safetensors" and run_dir.is_file():
            return load_weights(run_dir, device, prior)
        if is_pretrained_folder(run_dir) and not (run_dir / CHECKPOINT_NAME).exists():
            return load_folder(run_dir, device, prior=prior)
        _, path = RunFolder.of(run_dir, checkpoint)
        model, cfg, _ = read_model(path, device, with_sampler, prior)
    return model.to(device).eval(), cfg

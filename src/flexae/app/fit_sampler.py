"""The ex-post fit step of a run: some baselines (ae-gmm, rae-gmm, 2s-vae, vq-vae) generate
through a sampler fitted to the trained model's codes (flexae.baselines; the fit function is named
in flexae.registry). The fit is a step of its own (`fit_and_save`, CLI `flexae fit-sampler
RUN_DIR`, also called at the end of training) that writes `RUN_DIR/sampler.pt`
(flexae.runs.sampler_file).
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
from torch import Tensor, nn

from flexae.baselines.common import fit_options
from flexae.data import load_for_config
from flexae.devices import resolve_device
from flexae.errors import UserError
from flexae.finite import nonfinite_names
from flexae.registry import fit_sampler
from flexae.app.build import read_model
from flexae.runs.layout import SAMPLER_NAME
from flexae.runs.run_folder import RunFolder
from flexae.trust import allowing_code


def fit_and_save(model: nn.Module, run_dir: Path, train_data: Tensor, cfg: Any, step: int,
                 seed: int = 0, progress: bool = False,
                 log: Callable[[dict[str, Any]], None] | None = None) -> dict[str, float]:
    """The fit step of a run: fit with the settings of `cfg` (the model's options), save
    RUN_DIR/sampler.pt and log the statistics."""
    stats = fit_sampler(model, train_data, cfg, seed, progress)
    bad = nonfinite_names({"sampler": model.expost_sampler.state_dict(),
                           "stats": {k: np.float64(v) for k, v in stats.items()}})
    if bad:
        raise UserError(f"the ex-post sampler fit diverged: {bad[0]} is NaN or infinite; {SAMPLER_NAME} was "
                        f"not written (lower model.options.second_stage_lr / vq_prior_lr, or check the codes)")
    RunFolder(run_dir).save_sampler(model, step, stats)
    if log is not None:
        log({"step": int(step), "sampler_fit": json.loads(json.dumps(stats))})
    return stats


def ensure_fitted(model: nn.Module, run_dir: Path, train_data: Tensor, cfg: Any, step: int,
                  seed: int = 0, progress: bool = False,
                  log: Callable[[dict[str, Any]], None] | None = None) -> None:
    """End of training: reuse RUN_DIR/sampler.pt if it was fitted at `step`, else fit and save.
    A no-op for models without an ex-post sampler."""
    if model.expost_sampler is None:
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a stale sampler is simply refitted
        if RunFolder(run_dir).load_sampler(model, step):
            return
    fit_and_save(model, run_dir, train_data, cfg, step, seed, progress, log)


def fit_run(run_dir: str | Path, *, steps: int | None = None, fit_points: int | None = None,
            data_dir: str | None = None, device: str = "auto", progress: bool = True,
            trust_code: bool = False) -> dict[str, float]:
    """`flexae fit-sampler RUN_DIR`: fit the ex-post sampler of a trained run and save sampler.pt.

    `steps` / `fit_points` override the config's `sampler_steps` / `sampler_fit_points` for this fit;
    `trust_code`: as for `load_run`.
    """
    run, path = RunFolder.of(run_dir)
    device = resolve_device(device)  # "auto": the GPU where there is one
    with allowing_code(trust_code):
        model, cfg, state = read_model(path, device, with_sampler=False)  # the old sampler.pt is not read: it is rewritten
    model = model.to(device).eval()
    if model.expost_sampler is None:
        raise UserError(f"{cfg.model.name} has no ex-post sampler to fit (only ae-gmm, rae-gmm, 2s-vae and vq-vae do)")
    hp = _fit_settings(fit_options(model), steps, fit_points)
    step = int(state["step"])
    data = load_for_config(cfg.train, data_dir)
    with run.lock():  # not while a training process writes this run
        stats = fit_and_save(model, run.path, data.train, hp, step, cfg.train.seed, progress, run.log.write)
    steps_done = {"sampler_steps": float(hp.sampler_steps)} if hasattr(hp, "sampler_steps") else {}  # not a GMM's
    return {**stats, **steps_done}


def _fit_settings(options: Any, steps: int | None, fit_points: int | None) -> Any:
    """The model's options with this fit's `steps` / `fit_points` in place of its `sampler_steps` /
    `sampler_fit_points` (a GMM fit takes no steps: `steps` is not used for it)."""
    if (steps is not None and steps < 1) or (fit_points is not None and fit_points < 0):
        raise UserError("--steps must be positive and --fit-points >= 0")
    given = {"sampler_steps": steps, "sampler_fit_points": fit_points}
    names = {f.name for f in dataclasses.fields(options)}
    return dataclasses.replace(options, **{k: v for k, v in given.items() if v is not None and k in names})

"""`RunFolder(path)`: the one door to a run folder. Every file a run holds is read or written
through it: the config, checkpoints (checked loads, checksummed atomic saves), the log, the lock,
the two sidecar files (`sampler.pt`, the fitted priors), artifacts (text, figures; atomic, through
flexae.files) and where the run stands for a config (finished, resumable). It holds nothing but the
path; each method delegates to the module of the runs package that owns that part of the format
(layout, checkpoint, log, folder, status, sampler_file, prior_file), so the format is written once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from flexae.config import RunConfig
from flexae.files import atomic_write_text, save_figure
from flexae.runs import checkpoint as _checkpoint
from flexae.runs import folder as _folder
from flexae.runs import prior_file, sampler_file, status
from flexae.runs.layout import CHECKPOINT_NAME, CONFIG_NAME, EVAL_PATTERN, LOG_NAME, SAMPLER_NAME
from flexae.runs.log import RunLog, read_log, rewind_log


@dataclass(frozen=True)
class RunFolder:
    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))  # frozen: a str given is kept as a Path

    @classmethod
    def of(cls, run: str | Path, checkpoint: str = "last") -> tuple["RunFolder", Path]:
        """(the run folder, the checkpoint file) that a run reference names: RUN_DIR, RUN_DIR with
        checkpoint="best", or a checkpoint file in a run folder (flexae.runs.folder.checkpoint_path)."""
        path = _folder.checkpoint_path(run, checkpoint)
        return cls(path.parent), path

    def file(self, name: str) -> Path:
        """RUN_DIR/name, `name` one of flexae.runs.layout's."""
        return self.path / name

    # --- config and checkpoints -------------------------------------------------------------------

    def config(self) -> dict[str, Any]:
        """config.json as a dict ({} if there is none; a damaged one is a UserError)."""
        return status.saved_config(self.path)

    def write_config(self, payload: dict[str, Any]) -> None:
        self.save_text(CONFIG_NAME, json.dumps(payload, indent=2) + "\n")

    def checkpoint(self, name: str = CHECKPOINT_NAME, map_location: str | torch.device = "cpu",
                   finite: bool = False) -> dict[str, Any]:
        """The checkpoint `name`, checked (weights_only, keys, checksum, versions); with `finite`
        also refused when its weights or optimizer states hold NaN or infinity."""
        path = self.file(name)
        state = _checkpoint.load_checkpoint(path, map_location)
        if finite:
            _checkpoint.check_finite_state(state, path)
        return state

    def save_checkpoint(self, state: dict[str, Any], name: str = CHECKPOINT_NAME) -> None:
        _checkpoint.save_checkpoint(self.file(name), state)

    # --- log, lock, the folder as a whole ---------------------------------------------------------

    @property
    def log(self) -> RunLog:
        """The run's append-only log (`.write(record)`); `read_log()` reads it back."""
        return RunLog(self.file(LOG_NAME))

    def read_log(self) -> list[dict[str, Any]]:
        return read_log(self.path)

    def rewind_log(self, step: int) -> None:
        rewind_log(self.file(LOG_NAME), step)

    def lock(self) -> _folder.RunFolderLock:
        """`with run.lock():` this process is the folder's one writer."""
        return _folder.RunFolderLock(self.path)

    def check_new(self, overwrite: bool) -> None:
        _folder.check_new_run_dir(self.path, overwrite)

    def create(self) -> None:
        _folder.create_run_dir(self.path)

    def clear(self) -> None:
        """Remove the files an old run owned (only flexae's; flexae.runs.folder.clear_run_dir)."""
        _folder.clear_run_dir(self.path)

    def sweep_stale(self) -> int:
        return _folder.sweep_stale(self.path)

    def is_run(self) -> bool:
        return _folder.is_run_folder(self.path)

    # --- sidecars: sampler.pt, prior.pt and priors/NAME.pt (flexae.runs.sidecar) -------------------

    @property
    def sampler(self) -> Path:
        return self.file(SAMPLER_NAME)

    def load_sampler(self, model: nn.Module, step: int | None = None) -> bool:
        """Load sampler.pt into the model's sampler if it matches these weights; True if loaded."""
        return sampler_file.load_into(model, self.path, step)

    def save_sampler(self, model: nn.Module, step: int, stats: dict[str, float]) -> Path:
        return sampler_file.save(self.path, model, step, stats)

    def prior(self, name: str = prior_file.DEFAULT_NAME) -> Path:
        """The file of the fitted prior `name` (prior.pt for "fitted", else priors/NAME.pt)."""
        return prior_file.path_of(self.path, name)

    def fitted_priors(self) -> list[str]:
        return prior_file.fitted_names(self.path)

    def matching_prior(self, model: nn.Module, step: int, name: str = prior_file.DEFAULT_NAME,
                       required: bool = False) -> dict[str, Any] | None:
        """The fitted prior `name` if it was fitted to these weights at `step` (prior_file.matching_state)."""
        return prior_file.matching_state(model, self.path, step, name, required)

    def save_prior(self, name: str, kind: str, settings: dict[str, Any], model: nn.Module, prior: nn.Module,
                   step: int, stats: dict[str, float]) -> Path:
        return prior_file.save(self.path, name, kind, settings, model, prior, step, stats)

    # --- artifacts and status ---------------------------------------------------------------------

    def save_text(self, name: str, text: str) -> Path:
        """RUN_DIR/name written atomically (results, tables)."""
        path = self.file(name)
        atomic_write_text(path, text)
        return path

    def read_json(self, name: str) -> Any:
        """The JSON artifact RUN_DIR/name (eval.json, compare-priors.json, metrics.json); None when
        it is missing or unreadable (results are optional: a damaged one is as good as none)."""
        try:
            return json.loads(self.file(name).read_text())
        except (OSError, ValueError):
            return None

    def evaluation_files(self) -> list[str]:
        """The names of the run's `flexae eval` results (eval.json, eval-best.json, ...), sorted."""
        return sorted(p.name for p in self.path.glob(EVAL_PATTERN))

    def save_figure(self, name: str, fig: Any, dpi: int = 100) -> Path:
        """A matplotlib figure as RUN_DIR/name, atomically, in the format its suffix names."""
        return save_figure(fig, self.file(name), dpi)

    def finished(self, cfg: RunConfig) -> bool:
        """A finished run of exactly `cfg` (flexae.runs.status.finished)."""
        return status.finished(self.path, cfg)

    def resumable(self, cfg: RunConfig) -> bool:
        """Resuming it gives the run `cfg` describes (flexae.runs.status.resumable)."""
        return status.resumable(self.path, cfg)

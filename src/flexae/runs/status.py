"""Where a run folder stands for a given config: finished with it, resumable towards it, or
neither (then it is trained anew). The experiments' sweeps ask this before every run, so a sweep
run again trains only what is missing (flexae.app.train.ensure_run)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from flexae.config import RunConfig
from flexae.errors import UserError
from flexae.files import first_line
from flexae.runs.layout import CHECKPOINT_NAME, CONFIG_NAME, METRICS_NAME


def saved_config(run_dir: Path) -> dict[str, Any]:
    """RUN_DIR/config.json as a dict ({} if there is none); a damaged one (edited, cut short) is a
    one-line UserError: the folder is not replaced without the user's word (`--overwrite` only
    replaces what it recognises as a run)."""
    path = Path(run_dir) / CONFIG_NAME
    fix = f"delete {path.parent} to train that run again"
    try:
        value = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, ValueError) as exc:  # garbled, truncated, a folder in its place
        raise UserError(f"{path}: not readable JSON ({first_line(exc)}); {fix}") from None
    if not isinstance(value, dict):
        raise UserError(f"{path}: expected a JSON object, got {type(value).__name__}; {fix}")
    return value


def _legacy_options(saved: dict[str, Any], wanted: dict[str, Any]) -> dict[str, Any]:
    """The model section of an older run, whose baselines' settings were one flat model.baseline
    section, as the model.options it stands for: the keys the wanted options have (the others
    belong to other models; RunConfig.from_dict and flexae.registry.model_options read it so too)."""
    model = saved.get("model")
    if not isinstance(model, dict) or "baseline" not in model:
        return saved
    model = dict(model)
    legacy = model.pop("baseline")
    if isinstance(legacy, dict) and not model.get("options"):
        options = wanted.get("options")
        model["options"] = {k: legacy[k] for k in (options if isinstance(options, dict) else ()) if k in legacy}
    return {**saved, "model": model}


def _same(saved: dict[str, Any], cfg: RunConfig, sections: tuple[str, ...]) -> bool:
    wanted = cfg.to_dict()
    saved = _legacy_options(saved, wanted["model"])
    train = saved.get("train") if isinstance(saved.get("train"), dict) else {}
    saved = {**saved, "train": {**train, "image_shape": wanted["train"]["image_shape"]}}  # recorded at training
    return all(saved.get(k) == wanted[k] for k in sections)


def finished(run_dir: Path, cfg: RunConfig) -> bool:
    """The folder holds a finished run of exactly `cfg` (versions aside): its final metrics exist."""
    return (Path(run_dir) / METRICS_NAME).is_file() and _same(saved_config(run_dir), cfg, ("model", "optim", "train"))


def resumable(run_dir: Path, cfg: RunConfig) -> bool:
    """The folder holds a checkpoint of the same model and optimisation, trained for at most
    `cfg.train.steps` so far: resuming it to that many steps gives the run `cfg` describes."""
    saved = saved_config(run_dir)
    steps = saved.get("train", {}).get("steps", math.inf) if isinstance(saved.get("train"), dict) else math.inf
    return (Path(run_dir) / CHECKPOINT_NAME).is_file() and _same(saved, cfg, ("model", "optim")) \
        and isinstance(steps, int) and steps <= cfg.train.steps

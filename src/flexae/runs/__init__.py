"""The run folder: what it holds (`layout`), checkpoints (`checkpoint`), the log (`log`), the
ex-post sampler file (`samplers`), loading a trained model (`load`) and published weights
(`export`). Evaluation, inference and the CLI read runs only through this package.

    from flexae.runs import load_run
    model, cfg = load_run("runs/flexae-5d")   # eval mode, rebuilt from the saved config
"""

from flexae.runs.build import build_for_config
from flexae.runs.load import load_run

__all__ = ["build_for_config", "load_run"]

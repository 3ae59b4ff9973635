"""`flexae reproduce fig2` and `flexae reproduce fig3`: the paper's synthetic experiments.

Every model is trained with the same networks (Table 6), optimisers (Algorithm 1), batch size,
budget and seeds; only the prior and the presence of L_Gen differ. Finished runs are reused, an
interrupted run is resumed, so re-running a command only does the missing work.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from flexae.config import ModelConfig, RunConfig, TrainConfig
from flexae.data import load_dataset
from flexae.errors import UserError
from flexae.plots import plot_latent_distance, plot_latent_scatter
from flexae.runs import load_run
from flexae.runs.layout import CHECKPOINT_NAME
from flexae.runs.log import read_log
from flexae.training.loop import resume, train

FIG2_MODELS = ("wae", "flexae")
FIG3_MODELS = ("vae", "wae", "wae-gmm", "flexae")


@dataclass
class SyntheticExperiment:
    figure: str
    dataset: str
    latent_dim: int
    models: tuple[str, ...]


FIG2 = SyntheticExperiment("fig2", "synthetic-5d", 50, FIG2_MODELS)
FIG3 = SyntheticExperiment("fig3", "synthetic-2d", 2, FIG3_MODELS)


def _run_config(exp: SyntheticExperiment, model: str, seed: int, steps: int, device: str) -> RunConfig:
    eval_every = max(1, steps // 20)
    return RunConfig(ModelConfig(name=model, latent_dim=exp.latent_dim),
                     train=TrainConfig(dataset=exp.dataset, steps=steps, seed=seed, device=device,
                                       eval_every=eval_every, log_every=max(1, min(50, steps)),
                                       checkpoint_every=max(1, steps // 4)))


def _finished(run_dir: Path, cfg: RunConfig) -> bool:
    """A run counts as finished if its metrics exist for the same config (versions aside)."""
    config_path, metrics_path = run_dir / "config.json", run_dir / "metrics.json"
    if not (config_path.is_file() and metrics_path.is_file()):
        return False
    saved = json.loads(config_path.read_text())
    return all(saved.get(k) == v for k, v in cfg.to_dict().items())


def ensure_run(exp: SyntheticExperiment, model: str, seed: int, steps: int, out: Path,
               device: str, progress: bool) -> Path:
    """Train (or resume, or reuse) one run of an experiment; returns its folder."""
    run_dir = out / "runs" / f"{model}-seed{seed}"
    cfg = _run_config(exp, model, seed, steps, device)
    if _finished(run_dir, cfg):
        return run_dir
    if (run_dir / CHECKPOINT_NAME).is_file() and (run_dir / "config.json").is_file():
        saved = json.loads((run_dir / "config.json").read_text())
        same = {k: v for k, v in saved.items() if k in ("model", "optim")} == {
            k: v for k, v in cfg.to_dict().items() if k in ("model", "optim")}
        if same and saved["train"]["steps"] <= steps:
            return resume(run_dir, steps, progress=progress, device=device)
    return train(cfg, run_dir, overwrite=True, progress=progress)


def _record(model: str, seed: int, run_dir: Path) -> dict:
    metrics = json.loads((run_dir / "metrics.json").read_text())
    return {"model": model, "seed": seed, "fd": metrics["fd"], "w_latent": metrics["w_latent"]}


def _summary(records: list[dict], models: tuple[str, ...]) -> str:
    lines = ["| model | FD (mean ± std) | W1 latent (mean ± std) | seeds |", "|---|---|---|---|"]
    for model in models:
        fd = np.array([r["fd"] for r in records if r["model"] == model])
        w = np.array([r["w_latent"] for r in records if r["model"] == model])
        lines.append(f"| {model} | {fd.mean():.3f} ± {fd.std():.3f} | {w.mean():.3f} ± {w.std():.3f} | {len(fd)} |")
    return "\n".join(lines) + "\n"


def _check_args(seeds: int, steps: int) -> None:
    if seeds < 1:
        raise UserError(f"--seeds must be at least 1, got {seeds}")
    if steps < 1:
        raise UserError(f"--steps must be positive, got {steps}")


def _write_results(out: Path, records: list[dict], models: tuple[str, ...]) -> str:
    (out / "results.json").write_text(json.dumps(records, indent=2) + "\n")
    table = _summary(records, models)
    (out / "results.md").write_text(table)
    return table


def reproduce_fig2(out: str | Path, seeds: int = 1, steps: int = 3000, device: str = "auto",
                   progress: bool = True, models: tuple[str, ...] = FIG2_MODELS) -> str:
    """Fig 2: WAE vs FlexAE, m = 50 on synthetic-5d. Writes fig2.png, results.json, results.md."""
    _check_args(seeds, steps)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    records, curves, fds = [], {m: [] for m in models}, {m: [] for m in models}
    for seed in range(seeds):
        for model in models:
            run_dir = ensure_run(FIG2, model, seed, steps, out, device, progress)
            records.append(_record(model, seed, run_dir))
            evals = [r for r in read_log(run_dir) if "w_latent" in r]
            curves[model].append((np.array([r["step"] for r in evals]), np.array([r["w_latent"] for r in evals])))
            fds[model].append(records[-1]["fd"])
    plot_latent_distance(curves, fds, out / "fig2.png")
    return _write_results(out, records, models)


@torch.no_grad()
def _scatter_panel(model_name: str, run_dir: Path, test: torch.Tensor, labels: np.ndarray, fd: float) -> dict:
    model, _ = load_run(run_dir, device="cpu")
    gen = torch.Generator().manual_seed(0)
    codes = model.posterior_sample(test, gen).numpy()
    prior = model.sample_latent(test.shape[0], gen).numpy()
    return {"model": model_name, "codes": codes, "labels": labels, "prior": prior, "fd": fd}


def reproduce_fig3(out: str | Path, seeds: int = 1, steps: int = 3000, device: str = "auto",
                   progress: bool = True, models: tuple[str, ...] = FIG3_MODELS) -> str:
    """Fig 3: true latent, VAE, WAE-N(0,I), WAE-GMM, FlexAE with m = 2 on synthetic-2d.
    Writes fig3.png (first seed), results.json and results.md (all seeds)."""
    _check_args(seeds, steps)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    records = []
    for seed in range(seeds):
        for model in models:
            records.append(_record(model, seed, ensure_run(FIG3, model, seed, steps, out, device, progress)))
    data = load_dataset(FIG3.dataset)
    n = 3000  # points per scatter panel
    test, labels = data.test[:n], data.extras["test_labels"][:n]
    panels = [_scatter_panel(r["model"], out / "runs" / f"{r['model']}-seed0", test, labels, r["fd"])
              for r in records if r["seed"] == 0]
    plot_latent_scatter(data.extras["test_latents"][:n], labels, panels, out / "fig3.png")
    return _write_results(out, records, models)

"""`flexae reproduce table1 | table3 | table4`: the paper's image-data tables.

- Table 1 (reconstruction / generation FID) and Table 2 (precision / recall) for every model of
  `TABLE1_MODELS`, all trained with the same networks (Table 7), batch size, seed and number of
  iterations (the paper's footnote 2: "all the methods were trained for same number of iterations").
- Table 3: WAE-GAN, FlexAE with its prior fixed to N(0, I) (`wae`) and FlexAE-SR at latent sizes
  m_b, 2 m_b, 4 m_b (m_b = 32 MNIST / Fashion-MNIST, 64 CIFAR-10 / CelebA): reconstruction and
  generation FID.
- Table 4: PMS / IMS of FlexAE-SR (Tr-Tr, Gen-Tr, Tr-Te, Gen-Te).

Every model trains into `OUT/runs/NAME` (`NAME-mM` for Table 3). A finished run with the same
config is reused, an interrupted one resumed, so re-running a command only does the missing work;
evaluations are cached per run in `OUT/eval/` (keyed by step, n, metrics and seed). Each command
writes Markdown and JSON tables next to the paper's numbers, and a grid of 64 samples per model in
`OUT/samples/`. Metrics come from `flexae.evaluation.evaluate_generator` (paper protocol: n = 10k
test images; FID needs n >= 2048 for a full-rank covariance, smaller n is allowed for quick runs
and biases FID upward).
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
import time
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import torch

from flexae.config import ModelConfig, RunConfig, TrainConfig
from flexae.errors import UserError
from flexae.files import atomic_write_text
from flexae.data import data_source, default_latent_dim, find_source, load_for_config
from flexae.experiments.launch import Failed, LaunchSettings, RunJob, launch
from flexae.registry import set_options
from flexae.runs.layout import METRICS_NAME
from flexae.runs.run_folder import RunFolder

IMAGE_DATASETS = ("mnist", "fashion-mnist", "cifar10", "celeba")
TABLE1_MODELS = ("vae", "iaf-vae", "vamp-vae", "vae-iop", "vq-vae",
                 "wae-gan", "wae", "wae-mmd", "2s-vae", "ae-gmm", "rae-gmm", "mask-aae", "pioneer", "alae",
                 "flexae", "flexae-sr")
# ^ the paper's row order; `wae` (FlexAE with its prior fixed to N(0, I)) and wae-mmd are extra rows
TABLE3_MODELS = ("wae-gan", "wae", "flexae-sr")  # the paper's Table 3 "WAE" is its Table 1 WAE-GAN
TABLE3_BASE_DIM = {"mnist": 32, "fashion-mnist": 32, "cifar10": 64, "celeba": 64}  # m_b
TABLE4_MODEL = "flexae-sr"
MIN_FID_SAMPLES = 2048  # Inception pool3 features are 2048-d
SAMPLE_GRID = 64        # samples per model in OUT/samples/NAME.png
FAILED = "failed"       # the cells of a run whose training failed (its log: the JSON row, the error)

LABELS = {"vae": "VAE", "iaf-vae": "VAE + Flow (IAF)", "vamp-vae": "VAE-VampPrior", "vq-vae": "VQ-VAE",
          "wae-gan": "WAE-GAN", "wae": "FlexAE, prior fixed to N(0, I)", "wae-mmd": "WAE-MMD",
          "wae-gmm": "FlexAE, prior fixed to a GMM", "2s-vae": "2-S VAE",
          "ae-gmm": "AE + GMM", "rae-gmm": "RAE + GMM (L2)", "mask-aae": "MaskAAE", "flexae": "FlexAE",
          "flexae-sr": "FlexAE-SR"}
LABELS["vae-iop"] = "VAE-IOP"  # issue 19 rows
LABELS["pioneer"], LABELS["alae"] = "Pioneer (fixed resolution)", "ALAE"

# The paper's numbers (Tables 1-4), for side-by-side comparison: dataset -> model -> values.
PAPER_TABLE1 = {  # (rec. FID, gen. FID)
    "mnist": {"vae": (52.14, 56.07), "iaf-vae": (28.12, 33.27), "vamp-vae": (21.27, 55.76),
              "vq-vae": (10.95, 12.07), "wae-gan": (10.48, 13.60), "2s-vae": (10.83, 11.91),
              "ae-gmm": (9.69, 14.70), "rae-gmm": (9.25, 10.80), "mask-aae": (9.53, 10.12),
              "pioneer": (8.17, 7.30), "alae": (7.97, 7.07),
              "flexae": (8.28, 7.28), "flexae-sr": (7.63, 6.75)},
    "fashion-mnist": {"vae": (55.90, 63.01), "iaf-vae": (34.87, 49.32), "vamp-vae": (31.11, 50.56),
                      "vq-vae": (22.47, 25.73), "wae-gan": (25.93, 30.21), "2s-vae": (22.43, 28.57),
                      "ae-gmm": (21.59, 26.74), "rae-gmm": (19.71, 25.50), "mask-aae": (21.59, 27.29),
                      "pioneer": (15.91, 17.25), "alae": (13.25, 16.87),
                      "flexae": (14.68, 14.81), "flexae-sr": (14.17, 14.41)},
    "cifar10": {"vae": (166.45, 143.31), "iaf-vae": (90.98, 123.25), "vamp-vae": (109.43, 141.12),
                "vq-vae": (52.11, 85.98), "wae-gan": (51.36, 92.30), "2s-vae": (73.07, 94.57),
                "ae-gmm": (51.45, 95.77), "rae-gmm": (50.84, 90.40), "mask-aae": (71.40, 88.82),
                "pioneer": (51.07, 59.12), "alae": (50.93, 57.36),
                "flexae": (69.63, 74.45), "flexae-sr": (50.36, 54.61)},
    "celeba": {"vae": (56.66, 63.85), "iaf-vae": (39.21, 45.89), "vamp-vae": (51.31, 60.16),
               "vq-vae": (34.23, 42.15), "wae-gan": (32.49, 45.58), "2s-vae": (37.60, 44.85),
               "ae-gmm": (30.16, 43.79), "rae-gmm": (34.35, 44.72), "mask-aae": (39.75, 46.79),
               "pioneer": (25.35, 27.94), "alae": (24.39, 26.15),
               "flexae": (35.31, 36.99), "flexae-sr": (23.94, 25.78)},
}
PAPER_TABLE2 = {  # (precision, recall); the paper's Table 2 has no Pioneer row
    "mnist": {"vae": (0.68, 0.74), "2s-vae": (0.95, 0.98), "rae-gmm": (0.96, 0.97), "mask-aae": (0.94, 0.96),
              "alae": (0.98, 0.99), "flexae": (0.98, 0.99), "flexae-sr": (0.98, 0.99)},
    "fashion-mnist": {"vae": (0.61, 0.66), "2s-vae": (0.80, 0.78), "rae-gmm": (0.78, 0.77),
                      "mask-aae": (0.71, 0.83), "alae": (0.97, 0.96),
                      "flexae": (0.98, 0.98), "flexae-sr": (0.98, 0.99)},
    "cifar10": {"vae": (0.28, 0.44), "2s-vae": (0.44, 0.61), "rae-gmm": (0.49, 0.59), "mask-aae": (0.45, 0.62),
                "alae": (0.73, 0.85), "flexae": (0.65, 0.80), "flexae-sr": (0.79, 0.87)},
    "celeba": {"vae": (0.48, 0.57), "2s-vae": (0.72, 0.78), "rae-gmm": (0.67, 0.75), "mask-aae": (0.65, 0.62),
               "alae": (0.84, 0.81), "flexae": (0.71, 0.76), "flexae-sr": (0.85, 0.88)},
}
PAPER_TABLE3 = {  # multiple of m_b -> (rec. WAE(-GAN), rec. FlexAE-SR, gen. WAE(-GAN), gen. FlexAE-SR)
    "mnist": {1: (7.98, 6.19, 15.34, 5.86), 2: (5.61, 3.10, 24.58, 3.37), 4: (3.99, 1.64, 37.16, 2.79)},
    "fashion-mnist": {1: (20.71, 10.86, 40.5, 11.46), 2: (13.94, 7.20, 55.49, 8.41), 4: (10.04, 4.93, 78.31, 8.16)},
    "cifar10": {1: (51.36, 50.36, 92.3, 54.61), 2: (48.9, 43.59, 87.91, 53.94), 4: (30.47, 29.71, 89.82, 56.09)},
    "celeba": {1: (32.49, 23.94, 45.58, 25.78), 2: (25.72, 18.58, 87.1, 21.26), 4: (19.89, 16.21, 76.12, 22.18)},
}
PAPER_TABLE4 = {  # column -> (PMS, IMS)
    "mnist": {"Tr-Tr": (4.72, 7.11), "Gen-Tr": (4.66, 7.10), "Tr-Te": (4.77, 7.12), "Gen-Te": (4.66, 7.12)},
    "fashion-mnist": {"Tr-Tr": (4.01, 9.22), "Gen-Tr": (3.99, 9.13), "Tr-Te": (4.01, 9.26), "Gen-Te": (3.90, 9.16)},
    "cifar10": {"Tr-Tr": (9.75, 12.54), "Gen-Tr": (9.64, 14.40), "Tr-Te": (9.74, 12.51), "Gen-Te": (9.68, 14.40)},
    "celeba": {"Tr-Tr": (18.42, 8.73), "Gen-Tr": (18.01, 9.37), "Tr-Te": (18.50, 8.75), "Gen-Te": (17.86, 9.34)},
}
TABLE4_COLUMNS = ("Tr-Tr", "Gen-Tr", "Tr-Te", "Gen-Te")

# Issue 19 rows. VAE-IOP: Table 1's row (rec., gen. FID); Table 2 has no VAE-IOP row.
for _dataset, _fids in {"mnist": (28.01, 40.16), "fashion-mnist": (30.20, 45.39), "cifar10": (88.17, 134.72),
                        "celeba": (46.51, 59.35)}.items():
    PAPER_TABLE1[_dataset]["vae-iop"] = _fids


@dataclass
class TableSettings:
    """What every run and evaluation of one reproduce command shares."""

    dataset: str                      # an image data set of IMAGE_DATASETS, or folder:/npz:/npy:PATH
    steps: int                        # training iterations per model (the same for all)
    out: Path                         # output folder: runs/, eval/, samples/, the tables
    eval_n: int = 10000               # test images (and generated images) per evaluation
    seed: int = 0                     # training seed, evaluation seed
    device: str = "auto"              # training and evaluation device
    data_dir: str | None = None       # image data folder (or $FLEXAE_DATA_DIR)
    sampler_steps: int | None = None  # ex-post sampler iterations (2s-vae, vq-vae); None: the default
    sampler_fit_points: int | None = None  # training images encoded for the ex-post fits; None: all
    overrides: tuple[str, ...] = ()   # `section.field=value` applied to every run's config (CLI --set)
    progress: bool = True             # progress bars
    prior: str = "own"                # evaluation: each run's own prior, or "fitted" (its prior.pt, fit-prior)
    launch: LaunchSettings = field(default_factory=LaunchSettings)  # where the runs train (--launcher)
    report: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True)  # launchers' progress


# ----------------------------------------------------------------------------------------------
# Runs


def dataset_settings(cfg: RunConfig) -> RunConfig:
    """The baselines' paper values that depend on the data set (see docs/baselines.md)."""
    dataset = cfg.train.dataset
    if dataset == "cifar10":  # RAE authors' code: beta 1e-3, decoder decay 1e-6 on CIFAR-10
        set_options(cfg.model, rae_code_weight=1e-3, rae_decoder_decay=1e-6)
    # WAE authors' code (tolstikhin/wae configs.py; docs/baselines.md): the MNIST config for the grey
    # sets, the CelebA config for the colour sets (they scale those to [-1, 1]: cost 0.05 there is
    # 0.2 on our [0, 1] images). Their lr decay spans the whole run (the equal-budget rule).
    set_options(cfg.model, wae_gan_schedule_steps=cfg.train.steps)
    if dataset == "celeba":   # configs.py line 53: lambda = 100 (every version since 2018-01-29)
        set_options(cfg.model, mmd_weight=100.0, wae_gan_weight=100.0)
    if dataset in ("celeba", "cifar10"):
        set_options(cfg.model, wae_cost_scale=0.2, wae_gan_prior_trick=True, wae_gan_schedule="smooth")
        set_options(cfg.model, wae_gan_lr=3e-4, wae_gan_adversary_lr=1e-3)  # configs.py lines 20-21 (WAE-GAN lr: the comment)
    return cfg


def run_config(model: str, settings: TableSettings, latent_dim: int | None = None) -> RunConfig:
    """The config of one table run: the paper's m for the data set unless given, everything else
    default (Algorithm 1 optimisers, batch 128) unless overridden, checkpoints four times per run."""
    steps = settings.steps
    dataset = data_source(settings.dataset).resolved().name  # the user's own: by absolute path
    cfg = RunConfig(ModelConfig(name=model, latent_dim=latent_dim or 1),
                    train=TrainConfig(dataset=dataset, steps=steps, seed=settings.seed,
                                      device=settings.device, log_every=max(1, min(50, steps // 10)),
                                      eval_every=0, checkpoint_every=max(1, steps // 4)))
    if settings.sampler_steps is not None:
        set_options(cfg.model, sampler_steps=settings.sampler_steps)
    if settings.sampler_fit_points is not None:
        set_options(cfg.model, sampler_fit_points=settings.sampler_fit_points)
    cfg = dataset_settings(cfg)
    from flexae.validation import apply_override
    for item in settings.overrides:  # last, so they win over the data-set defaults
        apply_override(cfg, item)
    if latent_dim is None and not any(item.strip().startswith("model.latent_dim=") for item in settings.overrides):
        cfg.model.latent_dim = default_latent_dim(cfg.train.dataset, cfg.train.image_size)
    return cfg


def data_config(settings: TableSettings) -> TrainConfig:
    """The data part of every run's config (data set, image size, data seed) after the overrides."""
    return run_config(TABLE4_MODEL, settings, latent_dim=1).train


def _read_json(path: Path) -> dict[str, Any]:
    """A JSON object written earlier into the output folder, or {} if it is missing or damaged
    (then the run or evaluation it describes is simply done again)."""
    try:
        value = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:  # garbled, truncated, a folder in its place
        warnings.warn(f"{path} is unreadable ({exc}); redoing what it describes")
        return {}
    return value if isinstance(value, dict) else {}


def ensure_run(cfg: RunConfig, run_dir: Path, settings: TableSettings) -> Path:
    """Train one run, or resume it, or reuse it (flexae.app.train.ensure_run); returns its folder."""
    from flexae.app.train import ensure_run as train_resume_or_reuse

    return train_resume_or_reuse(cfg, run_dir, data_dir=settings.data_dir, progress=settings.progress)


def ensure_runs(configs: dict[Any, tuple[RunConfig, Path]], settings: TableSettings) -> dict[Any, Path | Failed]:
    """Train, resume or reuse every run with the command's launcher (flexae.experiments.launch):
    key -> (config, folder) in, key -> folder (or the run's failure) out."""
    if settings.launch.launcher == "inline":  # in this process, with progress bars, errors raised
        return {key: ensure_run(cfg, run_dir, settings) for key, (cfg, run_dir) in configs.items()}
    from flexae.trust import code_allowed

    if any(d.startswith("cuda") for d in settings.launch.devices) and settings.device not in ("auto", "cuda"):
        raise UserError(f"--devices {','.join(settings.launch.devices)} pins each worker to a GPU: use --device "
                        f"auto or cuda (got {settings.device})")
    jobs = {key: RunJob(run_dir.name, cfg.to_dict(), str(run_dir), settings.data_dir, code_allowed())
            for key, (cfg, run_dir) in configs.items()}
    return launch(jobs, settings.launch, settings.out, settings.report)


def failed_runs_error(runs: dict[Any, Path | Failed], table: Path | None) -> None:
    """After the table is written (failed runs marked; None: no table): a one-line error naming
    every failure."""
    failed = [r for r in runs.values() if isinstance(r, Failed)]
    if failed:
        logs = "; ".join(f"{f.name}: {f.reason} (log: {f.log})" for f in failed)
        where = f"marked in {table}" if table else "no table written"
        raise UserError(f"{len(failed)} of {len(runs)} runs failed ({where}): {logs}; run the same "
                        f"command again to resume them")


# ----------------------------------------------------------------------------------------------
# Evaluation


class Evaluator:
    """Loads the test (and, for Table 4, training) images and the Inception network once."""

    def __init__(self, settings: TableSettings, metrics: tuple[str, ...], need_train: bool = False):
        from flexae.data import as_float

        self.settings, self.metrics = settings, metrics
        data = load_for_config(data_config(settings), settings.data_dir)
        if settings.eval_n > data.test.shape[0]:
            raise UserError(f"--eval-n {settings.eval_n} exceeds the {data.test.shape[0]} test images of "
                            f"{settings.dataset}")
        self.test = as_float(data.test[:settings.eval_n])  # the protocol uses the first n test images
        self.train = None
        if need_train:  # two disjoint subsets of eval_n are drawn from these 2 * eval_n images
            g = torch.Generator().manual_seed(settings.seed)
            idx = torch.randperm(data.train.shape[0], generator=g)[:2 * settings.eval_n]
            self.train = as_float(data.train[idx])
        self._extractor = None

    def extractor(self):
        if self._extractor is None and {"fid", "prd", "ims"} & set(self.metrics):
            from flexae.metrics.inception import load_extractor
            self._extractor = load_extractor(device=self.settings.device, progress=self.settings.progress)
        return self._extractor

    def __call__(self, name: str, run_dir: Path) -> dict[str, Any]:
        """Results of `flexae.evaluation.evaluate_generator` for one run, cached in OUT/eval/."""
        from flexae.evaluation import evaluate_generator
        from flexae.app.load import load_run

        s = self.settings
        step = RunFolder(run_dir).read_json(METRICS_NAME)["step"]  # a finished run (ensure_run) has one
        key = {"run": str(run_dir.name), "step": step, "n": s.eval_n, "metrics": list(self.metrics), "seed": s.seed,
               "prior": s.prior, **_fitted_prior_digest(run_dir, s.prior)}
        cache, grid = s.out / "eval" / f"{run_dir.name}.json", s.out / "samples" / f"{run_dir.name}.png"
        stored = _read_json(cache)
        if stored.get("key") == key and grid.is_file():
            return stored["results"]
        model, _ = load_run(run_dir, device=_eval_device(s.device), prior=s.prior)
        write_sample_grid(model, grid, s.seed)
        if stored.get("key") == key:
            return stored["results"]
        device = next(model.parameters()).device
        gen = torch.Generator(device=device).manual_seed(s.seed)
        started = time.time()
        results = evaluate_generator(lambda k: model.generate(k, gen), lambda x: model.reconstruct(x.to(device)),
                                     self.test, self.train, n=s.eval_n, metrics=self.metrics,
                                     extractor=self.extractor(), device=_eval_device(s.device), seed=s.seed)
        results["seconds"] = round(time.time() - started, 1)
        results["prior"] = s.prior
        cache.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(cache, json.dumps({"key": key, "results": results}) + "\n")
        return results


def _fitted_prior_digest(run_dir: Path, prior: str) -> dict[str, str]:
    """{"prior_sha256": ...} of RUN_DIR/prior.pt when the evaluation uses it: a refit invalidates the cache."""
    path = RunFolder(run_dir).prior("fitted")  # RUN_DIR/prior.pt
    if prior != "fitted" or not path.is_file():
        return {}
    return {"prior_sha256": hashlib.sha256(path.read_bytes()).hexdigest()}


def _eval_device(device: str) -> str:
    from flexae.devices import resolve_device
    return str(resolve_device(device))


@torch.no_grad()
def write_sample_grid(model: torch.nn.Module, path: Path, seed: int, n: int = SAMPLE_GRID) -> Path:
    """An 8 x 8 grid of generated images (eval mode), for looking at."""
    from flexae.grids import write_images

    gen = torch.Generator(device=next(model.parameters()).device).manual_seed(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_images(path, model.generate(n, gen).float().clamp(0, 1).cpu(), overwrite=True)


def check_settings(settings: TableSettings, warn: Callable[[str], None]) -> None:
    source = find_source(settings.dataset)
    if source is None or not (source.own or settings.dataset in IMAGE_DATASETS):
        raise UserError(f"the tables use image data; choose --dataset from {', '.join(IMAGE_DATASETS)}, "
                        f"folder:PATH, npz:PATH or npy:PATH")
    if settings.steps < 1:
        raise UserError(f"--steps must be positive, got {settings.steps}")
    if settings.eval_n < 20:
        raise UserError(f"--eval-n must be at least 20 (precision/recall forms 20 clusters), got {settings.eval_n}")
    if settings.sampler_steps is not None and settings.sampler_steps < 1:
        raise UserError(f"--sampler-steps must be positive, got {settings.sampler_steps}")
    if settings.sampler_fit_points is not None and settings.sampler_fit_points < 0:
        raise UserError(f"--sampler-fit-points must be >= 0, got {settings.sampler_fit_points}")
    if settings.eval_n < MIN_FID_SAMPLES:
        warn(f"--eval-n {settings.eval_n} < {MIN_FID_SAMPLES}: FID from fewer samples than Inception "
             f"features is biased upward and not comparable with the paper (10k)")


def _check_models(models: tuple[str, ...]) -> tuple[str, ...]:
    from flexae.registry import model_names
    unknown = [m for m in models if m not in model_names()]
    if unknown or not models:
        raise UserError(f"unknown models {unknown}; choose from {', '.join(model_names())}")
    return models


# ----------------------------------------------------------------------------------------------
# Tables


def _num(value: float | None, digits: int = 2) -> str:
    return "-" if value is None or (isinstance(value, float) and not math.isfinite(value)) else f"{value:.{digits}f}"


def _pair(pair: tuple[float, float] | None, digits: int = 2) -> str:
    return "-" if pair is None else f"{_num(pair[0], digits)}/{_num(pair[1], digits)}"


def _header(settings: TableSettings, what: str) -> list[str]:
    return [f"# {what}: {settings.dataset}, {settings.steps} iterations per model, evaluation on "
            f"n = {settings.eval_n} test images, seed {settings.seed}, prior: {settings.prior}", ""]


def _cell(row: dict[str, Any], text: str) -> str:
    """A result cell, or FAILED for a run whose training failed (the row stays in the table)."""
    return FAILED if row.get("failed") else text


def table1_markdown(rows: list[dict[str, Any]], settings: TableSettings) -> str:
    paper1, paper2 = PAPER_TABLE1.get(settings.dataset, {}), PAPER_TABLE2.get(settings.dataset, {})
    lines = _header(settings, "Table 1 (FID, lower is better)")
    lines += ["| Model | Rec. | Gen. | paper Rec. | paper Gen. |", "|---|---|---|---|---|"]
    for r in rows:
        p = paper1.get(r["model"], (None, None))
        extra = "" if r["model"] in PAPER_TABLE1["mnist"] else " (extra row)"  # not a row of the paper's Table 1
        lines.append(f"| {LABELS.get(r['model'], r['model'])}{extra} | {_cell(r, _num(r.get('fid_rec')))} "
                     f"| {_cell(r, _num(r.get('fid_gen')))} | {_num(p[0])} | {_num(p[1])} |")
    lines += ["", "# Table 2 (precision/recall, higher is better)", "",
              "| Model | P/R | paper P/R |", "|---|---|---|"]
    for r in rows:
        pr = (r["precision"], r["recall"]) if r.get("precision") is not None else None
        lines.append(f"| {LABELS.get(r['model'], r['model'])} | {_cell(r, _pair(pr))} | {_pair(paper2.get(r['model']))} |")
    return "\n".join(lines) + "\n"


def _row(model: str, results: dict[str, Any]) -> dict[str, Any]:
    fid, prd = results.get("fid", {}), results.get("prd", {})
    return {"model": model, "fid_rec": fid.get("rec"), "fid_gen": fid.get("gen"),
            "precision": prd.get("precision"), "recall": prd.get("recall")}


def _row_of(model: str, evaluate: "Evaluator", name: str, run: Path | Failed) -> dict[str, Any]:
    """A run's row: its evaluation, or for a run whose training failed, its log and why."""
    if isinstance(run, Failed):
        return {**_row(model, {}), "failed": str(run.log), "reason": run.reason}
    return _row(model, evaluate(name, run))


def _write(out: Path, stem: str, markdown: str, payload: dict[str, Any]) -> str:
    atomic_write_text(out / f"{stem}.md", markdown)
    atomic_write_text(out / f"{stem}.json", json.dumps(payload, indent=2) + "\n")
    return markdown


def reproduce_table1(settings: TableSettings, models: tuple[str, ...] = TABLE1_MODELS,
                     metrics: tuple[str, ...] = ("fid", "prd"),
                     warn: Callable[[str], None] = lambda m: warnings.warn(m, stacklevel=2)) -> str:
    """Train (or reuse) every model at the same budget, evaluate, write table1.md / table1.json."""
    check_settings(settings, warn)
    models = _check_models(models)
    settings.out.mkdir(parents=True, exist_ok=True)
    runs = ensure_runs({m: (run_config(m, settings), settings.out / "runs" / m) for m in models}, settings)
    evaluate = Evaluator(settings, metrics)
    rows = [{**_row_of(m, evaluate, m, run), "run": str(settings.out / "runs" / m)} for m, run in runs.items()]
    payload = {"table": "1+2", "dataset": settings.dataset, "steps": settings.steps, "eval_n": settings.eval_n,
               "seed": settings.seed, "metrics": list(metrics), "rows": rows,
               "paper": {"table1": PAPER_TABLE1.get(settings.dataset, {}),
                         "table2": PAPER_TABLE2.get(settings.dataset, {})}}
    markdown = _write(settings.out, "table1", table1_markdown(rows, settings), payload)
    failed_runs_error(runs, settings.out / "table1.md")
    return markdown


def reproduce_table3(settings: TableSettings, models: tuple[str, ...] = TABLE3_MODELS,
                     multiples: tuple[int, ...] = (1, 2, 4),
                     warn: Callable[[str], None] = lambda m: warnings.warn(m, stacklevel=2)) -> str:
    """Latent-size sweep m = k m_b for WAE-GAN, the fixed-prior FlexAE (`wae`) and FlexAE-SR;
    writes table3.md / table3.json."""
    check_settings(settings, warn)
    models = _check_models(models)
    settings.out.mkdir(parents=True, exist_ok=True)
    # m_b of the paper; images of your own: 32 for greyscale (as MNIST), 64 for colour
    base = TABLE3_BASE_DIM.get(settings.dataset) or (32 if run_config(models[0], settings).model.latent_dim == 20
                                                     else 64)
    runs = ensure_runs({(m, k): (run_config(m, settings, k * base), settings.out / "runs" / f"{m}-m{k * base}")
                        for k in multiples for m in models}, settings)
    evaluate = Evaluator(settings, ("fid",))
    rows = [{**_row_of(m, evaluate, f"{m}-m{k * base}", run), "multiple": k, "latent_dim": k * base}
            for (m, k), run in runs.items()]
    paper = PAPER_TABLE3.get(settings.dataset, {})
    lines = _header(settings, f"Table 3 (FID against latent size, m_b = {base})")
    cols = " | ".join(f"Rec. {LABELS.get(m, m)}" for m in models) + " | " + \
        " | ".join(f"Gen. {LABELS.get(m, m)}" for m in models)
    lines += [f"| m | {cols} | paper Rec. WAE-GAN / FlexAE-SR | paper Gen. WAE-GAN / FlexAE-SR |",
              "|---|" + "---|" * (2 * len(models) + 2)]
    for k in multiples:
        by_model = {r["model"]: r for r in rows if r["multiple"] == k}
        rec = " | ".join(_cell(by_model[m], _num(by_model[m]["fid_rec"])) for m in models)
        gen = " | ".join(_cell(by_model[m], _num(by_model[m]["fid_gen"])) for m in models)
        p = paper.get(k)
        paper_cells = f"{_pair(p[:2])} | {_pair(p[2:])}" if p else "- | -"
        lines.append(f"| {k} m_b = {k * base} | {rec} | {gen} | {paper_cells} |")
    payload = {"table": "3", "dataset": settings.dataset, "steps": settings.steps, "eval_n": settings.eval_n,
               "m_b": base, "rows": rows, "paper": {str(k): v for k, v in paper.items()}}
    markdown = _write(settings.out, "table3", "\n".join(lines) + "\n", payload)
    failed_runs_error(runs, settings.out / "table3.md")
    return markdown


def reproduce_table4(settings: TableSettings, model: str = TABLE4_MODEL,
                     warn: Callable[[str], None] = lambda m: warnings.warn(m, stacklevel=2)) -> str:
    """PMS / IMS of one model (FlexAE-SR in the paper); writes table4.md / table4.json."""
    check_settings(replace(settings, eval_n=max(settings.eval_n, MIN_FID_SAMPLES)), warn)
    _check_models((model,))
    settings.out.mkdir(parents=True, exist_ok=True)
    run_dir = settings.out / "runs" / model
    runs = ensure_runs({model: (run_config(model, settings), run_dir)}, settings)
    failed_runs_error(runs, None)  # one run: no table without it
    results = Evaluator(settings, ("pms", "ims"), need_train=True)(model, run_dir)
    paper = PAPER_TABLE4.get(settings.dataset, {})
    pms, ims = results.get("pms", {}), results.get("ims", {})
    lines = _header(settings, f"Table 4 (PMS/IMS of {LABELS.get(model, model)})")
    lines += ["| | " + " | ".join(TABLE4_COLUMNS) + " |", "|---|" + "---|" * len(TABLE4_COLUMNS),
              f"| {settings.dataset} | " + " | ".join(_pair((pms.get(c), ims.get(c))) for c in TABLE4_COLUMNS) + " |",
              "| paper | " + " | ".join(_pair(paper.get(c)) for c in TABLE4_COLUMNS) + " |"]
    payload = {"table": "4", "dataset": settings.dataset, "model": model, "steps": settings.steps,
               "eval_n": settings.eval_n, "pms": pms, "ims": ims, "paper": paper, "run": str(run_dir)}
    return _write(settings.out, "table4", "\n".join(lines) + "\n", payload)

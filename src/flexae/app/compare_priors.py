"""`flexae compare-priors RUN_DIR`: which prior gives the best samples from this auto-encoder's codes?

Every kind (flexae.app.prior_kinds) is fitted on the same codes (the run's training images, encoded
once), saved as the run's named prior (`--prior KIND` then samples through it; the adversarial one
is "fitted", prior.pt), and evaluated by one protocol:

- latent: exact W1 and IMQ MMD^2 between 1000 prior draws and the same 1000 codes (every run);
- images (image runs): FID and KID of n decoded samples against the first n test images, with one
  Inception extractor, and an 8 x 8 grid of samples per prior (grids/priors-NAME.png).

"own" in the kinds adds the run's own prior (N(0, I) of a WAE, the fitted sampler of ae-gmm, ...)
as a row. The table is written to RUN_DIR/compare-priors.md and .json.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import torch

from flexae.app.fit_prior import default_name, encode_run
from flexae.app.prior_kinds import PriorFitConfig, fit_kind, latent_distances
from flexae.data import as_float, load_for_config, run_data_shape
from flexae.devices import resolve_device
from flexae.errors import UserError
from flexae.runs import prior_file
from flexae.runs.run_folder import RunFolder
from flexae.runs.layout import COMPARE_JSON, COMPARE_MD, prior_grid_name

GRID = 64                 # samples per prior grid (8 x 8)
KID_SUBSET = 1000         # KID's subset size (at most n)


def compare_priors(run_dir: str | Path, kinds: tuple[str, ...] = prior_file.KINDS, *, n: int = 10_000,
                   fit: PriorFitConfig | None = None, fit_points: int = 0, mode: str = "pytorch-fid",
                   weights: str | None = None, data_dir: str | None = None, device: str = "auto", seed: int = 0,
                   progress: bool = True, trust_code: bool = False) -> dict[str, Any]:
    """Fit and evaluate each prior of `kinds` (and "own") on the run's codes; returns the results
    (with their Markdown table under "markdown") and writes them into the run."""
    kinds = _check_kinds(kinds)
    fit = (fit or PriorFitConfig()).check()
    model, cfg, state, codes = encode_run(run_dir, fit_points, data_dir, device, seed, trust_code, with_sampler=True)
    run, _ = RunFolder.of(run_dir)
    run_dir = run.path
    data = load_for_config(cfg.train, data_dir)
    image_eval = _ImageProtocol(data, n, mode, weights, device, progress) if data.is_image else None
    fit = dataclasses.replace(fit, noise_dim=fit.noise_dim or cfg.model.noise_dim)  # G_psi's m': the run's
    own_prior, rows = model.prior, []
    with run.lock():  # the fitted priors are saved into the run
        for kind in kinds:
            started = time.time()
            if kind == prior_file.OWN:
                if not model.can_generate():
                    raise UserError(f"{run_dir}: the run's own prior is an unfitted sampler; run `flexae "
                                    f"fit-sampler {run_dir}` or leave 'own' out of --kinds")
                row = {"name": "own", "kind": type(own_prior).__name__, "settings": {}, "stats": {}}
                module = own_prior
            else:
                fitted = fit_kind(kind, codes, run_data_shape(cfg.train, run_dir), fit, cfg.optim, seed, progress)
                name = default_name(kind)
                run.save_prior(name, kind, fitted.settings, model, fitted.module, int(state["step"]), fitted.stats)
                row = {"name": name, "kind": kind, "settings": fitted.settings, "stats": fitted.stats}
                module = fitted.module
            row["fit_seconds"] = round(time.time() - started, 1)
            row["latent"] = {k: v for k, v in latent_distances(module, codes, seed).items()
                             if k in ("w1_prior", "mmd_prior")}
            if image_eval is not None:
                model.prior = module
                row.update(image_eval(model, run_dir / prior_grid_name(row["name"]), seed))
            rows.append(row)
    model.prior = own_prior
    results = {"run": str(run_dir), "model": cfg.model.name, "dataset": cfg.train.dataset, "step": int(state["step"]),
               "codes": int(codes.shape[0]), "seed": seed, "fit": dataclasses.asdict(fit),
               "protocol": _protocol(image_eval), "rows": rows}
    markdown = table_markdown(results)
    run.save_text(COMPARE_JSON, json.dumps(results, indent=2) + "\n")
    run.save_text(COMPARE_MD, markdown)
    return {**results, "markdown": markdown}


def _check_kinds(kinds: tuple[str, ...]) -> tuple[str, ...]:
    if not kinds:
        raise UserError(f"--kinds needs at least one of {', '.join(prior_file.KINDS)}, own")
    for kind in kinds:
        if kind != prior_file.OWN:
            prior_file.check_kind(kind)
    if len(set(kinds)) != len(kinds):
        raise UserError(f"--kinds names a kind twice: {', '.join(kinds)}")
    return tuple(kinds)


class _ImageProtocol:
    """FID / KID of n samples against the first n test images (features computed once), and a grid."""

    def __init__(self, data: Any, n: int, mode: str, weights: str | None, device: str, progress: bool):
        from flexae.metrics.inception import load_extractor
        if n > data.test.shape[0]:
            raise UserError(f"--n {n} exceeds the {data.test.shape[0]} test images")
        self.n, self.device = n, resolve_device(device)
        self.extractor = load_extractor(weights, device=self.device, progress=progress, mode=mode)
        self.test_features = self.extractor(as_float(data.test[:n]))

    def __call__(self, model: torch.nn.Module, grid: Path, seed: int) -> dict[str, Any]:
        from flexae import inference
        from flexae.grids import write_images
        from flexae.metrics.fid import fid_from_features
        from flexae.metrics.kid import kid_from_features
        gen = torch.Generator(device=self.device).manual_seed(seed)
        with torch.no_grad():
            images = torch.cat([model.generate(min(256, self.n - s), gen).float().clamp(0, 1).cpu()
                                for s in range(0, self.n, 256)])             # (n, C, H, W)
        features = self.extractor(images, cache=False)
        kid = kid_from_features(features, self.test_features, subset_size=min(KID_SUBSET, self.n), seed=seed)
        grid.parent.mkdir(exist_ok=True)
        write_images(grid, inference.sample(model, GRID, seed), overwrite=True)
        return {"fid": fid_from_features(features, self.test_features), "kid": kid.mean, "kid_std": kid.std,
                "grid": str(grid.relative_to(grid.parent.parent))}

    def settings(self) -> dict[str, Any]:
        return {"n": self.n, "inception": self.extractor.settings, "mode": self.extractor.resize,
                "precision": self.extractor.precision, "kid_subset_size": min(KID_SUBSET, self.n)}


def _protocol(image_eval: _ImageProtocol | None) -> dict[str, Any]:
    latent = {"latent_points": 1000, "latent_w1": "exact", "latent_mmd": "IMQ kernel MMD^2 (WAE-MMD), "
              "scales from the codes' variance"}
    return {**latent, **({"images": image_eval.settings()} if image_eval is not None else {})}


def table_markdown(results: dict[str, Any]) -> str:
    """The comparison as a Markdown table, one row per prior."""
    images = "images" in results["protocol"]
    head = "| Prior | Kind | Latent W1 | Latent MMD^2 |" + (" FID | KID |" if images else "") + " Fit s |"
    lines = [f"Priors compared on {results['codes']} codes of {results['run']} ({results['model']}, "
             f"{results['dataset']}, step {results['step']}, seed {results['seed']}).", "", head,
             "|" + "---|" * (head.count("|") - 1)]
    for row in results["rows"]:
        cells = [row["name"], row["kind"], f"{row['latent']['w1_prior']:.4g}", f"{row['latent']['mmd_prior']:.4g}"]
        if images:
            cells += [f"{row['fid']:.2f}", f"{row['kid']:.4f}"]
        lines.append("| " + " | ".join(cells + [f"{row['fit_seconds']:.1f}"]) + " |")
    if images:
        proto = results["protocol"]["images"]
        lines += ["", f"FID / KID: n = {proto['n']} samples vs the first n test images, Inception mode "
                      f"{proto['mode']}, {proto['precision']}; a grid of samples per prior: {prior_grid_name('NAME')}."]
    return "\n".join(lines) + "\n"


__all__ = ["compare_priors", "table_markdown"]

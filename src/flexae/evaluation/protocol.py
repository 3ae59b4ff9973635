"""The paper's evaluation protocol for a trained generative auto-encoder (Tables 1, 2 and 4).

- Generation FID: n generated images vs the first n test images.
- Reconstruction FID: reconstructions of the first n test images vs those same n images.
- Precision/recall (Sajjadi et al. 2018): n generated vs the same n test images.
- PMS / IMS (Table 4): Tr-Tr (two disjoint random training subsets of n), Gen-Tr, Tr-Te, Gen-Te.

Images are float (N, C, H, W) in [0, 1]. Test and training features are cached on disk by the
extractor, so they are computed once per data set; generated ones are not cached. Unlike the
authors' code, generated images are not stretched to [min, max] before FID, and nothing picks the
best of several checkpoints on the test set.
"""

from __future__ import annotations

from typing import Callable, Iterable

import torch

from flexae.config import INCEPTION_BATCH_SIZE
from flexae.errors import UserError
from flexae.metrics.fid import fid_from_features
from flexae.metrics.inception import InceptionExtractor, load_extractor
from flexae.metrics.memorization import TABLE4_COLUMNS, table4, train_subsets
from flexae.metrics.prd import prd_from_features

METRICS = ("fid", "prd", "pms", "ims")


def check_metrics(metrics: Iterable[str]) -> tuple[str, ...]:
    """The metric names, stripped; UserError if none is given (nothing would be computed) or one is unknown."""
    names = tuple(m.strip() for m in metrics if m.strip())
    if not names:
        raise UserError(f"no metrics to compute; give at least one of {', '.join(METRICS)}")
    unknown = sorted(set(names) - set(METRICS))
    if unknown:
        raise UserError(f"unknown metrics {unknown}; choose from {list(METRICS)}")
    return names


def _in_batches(produce: Callable[[int, int], torch.Tensor], n: int, batch_size: int) -> torch.Tensor:
    """Concatenate produce(start, count) over batches, checked and moved to CPU."""
    parts = []
    for start in range(0, n, batch_size):
        count = min(batch_size, n - start)
        out = produce(start, count).detach().float().cpu()
        if len(out) != count:
            raise UserError(f"model returned {len(out)} images for a batch of {count}")
        if not torch.isfinite(out).all():
            raise UserError("model returned NaN or infinite pixel values")
        parts.append(out.clamp(0, 1))  # decoders may overshoot [0, 1] slightly; FID expects [0, 1]
    return torch.cat(parts)


def evaluate_generator(generate: Callable[[int], torch.Tensor] | None,
                       reconstruct: Callable[[torch.Tensor], torch.Tensor] | None,
                       test_images: torch.Tensor, train_images: torch.Tensor | None = None,
                       n: int = 10000, metrics: Iterable[str] = METRICS,
                       extractor: InceptionExtractor | None = None,
                       device: str | torch.device = "auto", batch_size: int = INCEPTION_BATCH_SIZE,
                       seed: int = 0, prd_runs: int = 10) -> dict:
    """Run the paper protocol; returns a JSON-ready dict (see :func:`results_markdown`).

    generate(k) -> k new images (k, C, H, W) in [0, 1]; reconstruct(x) -> reconstructions of a test
    batch x (b, C, H, W), given on the CPU (move it to the model's device). Either may be None to skip the metrics needing it. test_images (>= n, C, H, W)
    and train_images (>= 2n, C, H, W, needed for PMS/IMS) are float in [0, 1]. Model calls are made in
    batches of ``batch_size`` and run under torch.no_grad(); outputs are clamped to [0, 1].
    ``seed`` picks the two training subsets of Table 4 and seeds PRD's k-means.
    """
    metrics = check_metrics(metrics)
    if n < 2 or len(test_images) < n:
        raise UserError(f"need 2 <= n <= number of test images ({len(test_images)}), got n={n}")
    if {"pms", "ims"} & set(metrics) and train_images is None:
        raise UserError("PMS/IMS need training images")
    needs_features = bool({"fid", "prd", "ims"} & set(metrics))
    if extractor is None and needs_features:
        extractor = load_extractor(device=device)

    test = test_images[:n].float()
    with torch.no_grad():
        generated = (_in_batches(lambda _, k: generate(k), n, batch_size) if generate is not None else None)
        reconstructed = (_in_batches(lambda s, k: reconstruct(test[s:s + k]), n, batch_size)
                         if reconstruct is not None and "fid" in metrics else None)

    results: dict = {"n": n, "seed": seed}
    test_feats = gen_feats = None
    if needs_features:
        results["inception"] = extractor.settings
        results["resize"] = extractor.resize  # the preprocessing mode, as `flexae metrics` prints it
        results["precision"] = extractor.precision  # of the Inception features
        test_feats = extractor(test)
        gen_feats = extractor(generated, cache=False) if generated is not None else None
    if "fid" in metrics:
        results["fid"] = {}
        if reconstructed is not None:
            results["fid"]["rec"] = fid_from_features(extractor(reconstructed, cache=False), test_feats)
        if gen_feats is not None:
            results["fid"]["gen"] = fid_from_features(gen_feats, test_feats)
    if "prd" in metrics and gen_feats is not None:
        results["prd"] = prd_from_features(gen_feats, test_feats, num_runs=prd_runs, seed=seed).to_dict(curve=True)
    if {"pms", "ims"} & set(metrics):
        idx_a, idx_b = train_subsets(len(train_images), n, seed)
        train_a, train_b = train_images[idx_a].float(), train_images[idx_b].float()
        if "pms" in metrics:
            results["pms"] = table4(train_a, train_b, test, generated)
        if "ims" in metrics:
            results["ims"] = table4(extractor(train_a), extractor(train_b), test_feats, gen_feats,
                                    device=extractor.device)
    return results


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def results_markdown(results: dict, label: str = "model") -> str:
    """Markdown tables in the paper's layout: Table 1 (FID Rec./Gen.), Table 2 (P/R), Table 4 (PMS/IMS)."""
    prior = f", prior: {results['prior']}" if "prior" in results else ""  # the run's own, or fitted after training
    lines = [f"Evaluation on n = {results.get('n', '?')} images{prior}.", ""]
    if "fid" in results:
        fid = results["fid"]
        lines += ["| Model | FID Rec. | FID Gen. |", "|---|---|---|",
                  f"| {label} | {_fmt(fid.get('rec'))} | {_fmt(fid.get('gen'))} |", ""]
    if "prd" in results:
        prd = results["prd"]
        lines += ["| Model | Precision/Recall |", "|---|---|",
                  f"| {label} | {_fmt(prd['precision'])}/{_fmt(prd['recall'])} |", ""]
    if "pms" in results or "ims" in results:
        pms, ims = results.get("pms", {}), results.get("ims", {})
        cells = [f"{_fmt(pms.get(col))}/{_fmt(ims.get(col))}" for col in TABLE4_COLUMNS]
        lines += ["| Model (PMS/IMS) | " + " | ".join(TABLE4_COLUMNS) + " |",
                  "|---|" + "---|" * len(TABLE4_COLUMNS),
                  f"| {label} | " + " | ".join(cells) + " |", ""]
    return "\n".join(lines)

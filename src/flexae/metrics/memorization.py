"""Memorization scores of the paper (section 4.2.3, Table 4) and the nearest-neighbour search behind them.

For sets A and B, score(A, B) = mean over a in A of the L2 distance from a to its nearest
neighbour in B. PMS (Pixel Memorization Score) works on images in [0, 1], flattened; IMS
(Inception Memorization Score) on Inception pool3 features. A generator that copies its training
set gets Gen-Tr ~ 0, far below Tr-Tr (two disjoint training subsets); one that generalises has
Gen-Tr ~ Tr-Tr and Gen-Te ~ Tr-Te. The paper's MNIST values are about 4.7 (PMS) and 7.1 (IMS).

Argument order: (A, B) = (queries, reference), e.g. (generated, training). Not symmetric.
"""

from __future__ import annotations

import numpy as np
import torch

from flexae.errors import UserError
from flexae.metrics.inception import InceptionExtractor

TABLE4_COLUMNS = ("Tr-Tr", "Gen-Tr", "Tr-Te", "Gen-Te")


def _flat(x: torch.Tensor | np.ndarray, name: str) -> torch.Tensor:
    x = torch.as_tensor(x)
    if x.ndim < 2 or len(x) < 1:
        raise UserError(f"{name} must have shape (N, ...) with N >= 1, got {tuple(x.shape)}")
    return x.reshape(len(x), -1).float()


@torch.inference_mode()
def nearest_neighbours(queries: torch.Tensor | np.ndarray, reference: torch.Tensor | np.ndarray, k: int = 1,
                       chunk_size: int = 1024, reference_chunk_size: int = 16384,
                       device: str | torch.device = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """k nearest reference rows of each query row, by L2 distance.

    queries (N, ...) and reference (M, ...) are flattened to vectors. Returns distances (N, k) and
    indices (N, k) into reference, nearest first, on CPU. Works in chunks of
    ``chunk_size x reference_chunk_size`` distances, so 10k x 60k MNIST fits in a few hundred MB.
    """
    q_all, r_all = _flat(queries, "queries"), _flat(reference, "reference")
    if q_all.shape[1] != r_all.shape[1]:
        raise UserError(f"queries and reference differ in size per item: {q_all.shape[1]} vs {r_all.shape[1]}")
    if not 1 <= k <= len(r_all):
        raise UserError(f"k must be between 1 and the reference size {len(r_all)}, got {k}")
    device = torch.device(device)
    r_all = r_all.to(device)
    distances, indices = [], []
    for start in range(0, len(q_all), chunk_size):
        q = q_all[start:start + chunk_size].to(device)
        best_d = torch.full((len(q), k), float("inf"), device=device)
        best_i = torch.zeros((len(q), k), dtype=torch.long, device=device)
        for r_start in range(0, len(r_all), reference_chunk_size):
            d = torch.cdist(q, r_all[r_start:r_start + reference_chunk_size])   # (n, m), via matmul
            cand_d, cand_i = d.topk(min(k, d.shape[1]), dim=1, largest=False)
            best_d, order = torch.cat([best_d, cand_d], 1).topk(k, dim=1, largest=False)
            best_i = torch.cat([best_i, cand_i + r_start], 1).gather(1, order)
        # cdist's matmul form loses precision near 0 (an exact copy may come out as 1e-3); it is
        # only used to pick neighbours, whose distances are then recomputed directly.
        exact = (q[:, None, :] - r_all[best_i]).norm(dim=-1)                    # (n, k)
        exact, order = exact.sort(dim=1)
        distances.append(exact.cpu())
        indices.append(best_i.gather(1, order).cpu())
    return torch.cat(distances), torch.cat(indices)


def memorization_score(a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray,
                       device: str | torch.device = "cpu") -> float:
    """Mean L2 distance from each row of A (N, ...) to its nearest row of B (M, ...)."""
    distances, _ = nearest_neighbours(a, b, k=1, device=device)
    return float(distances.mean())


def pms(a_images: torch.Tensor, b_images: torch.Tensor, device: str | torch.device = "cpu") -> float:
    """Pixel Memorization Score of images A (N, C, H, W) against B (M, C, H, W), both in [0, 1]."""
    if tuple(a_images.shape[1:]) != tuple(b_images.shape[1:]):
        raise UserError(f"PMS needs images of the same shape, got {tuple(a_images.shape[1:])} and "
                        f"{tuple(b_images.shape[1:])}")
    return memorization_score(a_images, b_images, device=device)


def ims(a_images: torch.Tensor, b_images: torch.Tensor, extractor: InceptionExtractor,
        cache_a: bool = False) -> float:
    """Inception Memorization Score of images A (N, C, H, W) against B (M, C, H, W) in [0, 1].

    B's features go through the extractor's disk cache; A's only when ``cache_a``.
    """
    return memorization_score(extractor(a_images, cache=cache_a), extractor(b_images), device=extractor.device)


def train_subsets(num_train: int, n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices of two disjoint random training subsets of size n (Tr and Tr' of Table 4)."""
    if num_train < 2 * n:
        raise UserError(f"Table 4 needs two disjoint training subsets of {n}: have {num_train} "
                        f"training items, need {2 * n}; lower n")
    perm = torch.randperm(num_train, generator=torch.Generator().manual_seed(seed))
    return perm[:n], perm[n:2 * n]


def table4(train_a: torch.Tensor, train_b: torch.Tensor, test: torch.Tensor,
           generated: torch.Tensor | None = None, device: str | torch.device = "cpu") -> dict[str, float]:
    """Table 4 scores on vectors of any kind: images for PMS, Inception features for IMS.

    ``train_a`` and ``train_b`` are disjoint training subsets (see :func:`train_subsets`), ``test``
    test items, ``generated`` samples; all (n, ...). Tr-Tr = score(train_a, train_b),
    Gen-Tr = score(generated, train_b), Tr-Te = score(train_a, test), Gen-Te = score(generated, test):
    each Gen column shares its reference set with the Tr column it is compared with.
    Without ``generated`` only the Tr columns are returned (the data's own baseline).
    """
    out = {"Tr-Tr": memorization_score(train_a, train_b, device),
           "Tr-Te": memorization_score(train_a, test, device)}
    if generated is not None:
        out["Gen-Tr"] = memorization_score(generated, train_b, device)
        out["Gen-Te"] = memorization_score(generated, test, device)
    return {key: out[key] for key in TABLE4_COLUMNS if key in out}

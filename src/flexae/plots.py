"""Figures of the synthetic experiments (paper Fig 2 and Fig 3), drawn with matplotlib (Agg)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from flexae.files import save_figure

LABELS = {"flexae": "FlexAE", "wae": "FlexAE, prior fixed to N(0,I)",
          "wae-gmm": "FlexAE, prior fixed to GMM (circle)", "vae": "VAE",
          "flexae-sr": "FlexAE-SR", "wae-gmm-supplement": "FlexAE, prior fixed to GMM (true mixture)"}


def final_fd_label(fd: np.ndarray) -> str:
    """The legend's FD of one model over seeds (fd: (seeds,)); one seed has no spread to show."""
    if len(fd) == 1:
        return f"final FD {fd[0]:.2f}, 1 seed"
    return f"final FD {fd.mean():.2f} ± {fd.std():.2f}, {len(fd)} seeds"


def plot_latent_distance(curves: dict[str, list[tuple[np.ndarray, np.ndarray]]],
                         final_fd: dict[str, list[float]], path: Path) -> None:
    """Fig 2: W1(prior samples, codes) against training step; one line per model (mean over seeds,
    shaded min-max), the legend giving the final FD as mean +- std over seeds."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for model, runs in curves.items():
        steps = runs[0][0]
        values = np.stack([w for _, w in runs])
        fd = np.array(final_fd[model])
        label = f"{LABELS.get(model, model)} ({final_fd_label(fd)})"
        line, = ax.plot(steps, values.mean(0), label=label)
        if len(runs) > 1:
            ax.fill_between(steps, values.min(0), values.max(0), color=line.get_color(), alpha=0.2)
    ax.set_xlabel("training iteration")
    ax.set_ylabel("W1(prior samples, encoder codes)")
    ax.set_title("Latent Wasserstein distance, synthetic-5d, m = 50")
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path, dpi=120)
    plt.close(fig)


def plot_convergence(curves: dict[str, list[dict[str, list[float]]]], path: Path) -> None:
    """FD and latent W1 against training iteration, one line per model: the mean over seeds,
    shaded between the lowest and highest seed. `curves[model]` holds one dict per seed with
    equal-length lists "step", "fd", "w_latent"."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for model, runs in curves.items():
        steps = np.array(runs[0]["step"])
        for ax, key in zip(axes, ("fd", "w_latent")):
            values = np.array([r[key] for r in runs])  # (seeds, evaluations)
            line, = ax.plot(steps, values.mean(0), marker="o", ms=3, label=f"{LABELS.get(model, model)}")
            if len(runs) > 1:
                ax.fill_between(steps, values.min(0), values.max(0), color=line.get_color(), alpha=0.15)
    seeds = len(next(iter(curves.values())))
    axes[0].set_ylabel("FD (generated vs test points, 128-D)")
    axes[1].set_ylabel("W1(prior samples, encoder codes)")
    axes[1].set_yscale("log")
    for ax in axes:
        ax.set_xlabel("training iteration")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"synthetic-2d, m = 2: mean over {seeds} seed(s), band = min..max", fontsize=10)
    fig.tight_layout()
    save_figure(fig, path, dpi=120)
    plt.close(fig)


def _limits(*points: np.ndarray, margin: float = 0.08) -> tuple[tuple[float, float], tuple[float, float]]:
    """Axis limits covering the 0.5-99.5 percentiles of all points (so a few outliers do not
    shrink the rest), with a margin; x and y separately."""
    both = np.concatenate(points)
    lo, hi = np.percentile(both, 0.5, axis=0), np.percentile(both, 99.5, axis=0)
    pad = margin * np.maximum(hi - lo, 1e-6)
    return (lo[0] - pad[0], hi[0] + pad[0]), (lo[1] - pad[1], hi[1] + pad[1])


def _num(v: float) -> str:
    """2-3 significant figures without exponents: 23, 4.1, 0.37."""
    return f"{v:.0f}" if abs(v) >= 10 else f"{v:.1f}" if abs(v) >= 1 else f"{v:.2f}"


def _extent(z: np.ndarray) -> str:
    """The 1-99 percentile box of 2-D points, e.g. "[-23, 4.1] x [0.37, 12]"."""
    lo, hi = np.percentile(z, 1, axis=0), np.percentile(z, 99, axis=0)
    return f"[{_num(lo[0])}, {_num(hi[0])}] x [{_num(lo[1])}, {_num(hi[1])}]"


def plot_latent_scatter(true_latents: np.ndarray, true_labels: np.ndarray,
                        panels: list[dict], path: Path) -> None:
    """Fig 3: panel (a) the true 2-D latents, then per model its encoder codes (coloured by the
    true component) and prior samples (black, drawn on top), in a 3-column grid. Every panel
    has its own axis limits covering codes and prior; the title gives the model's FD and the
    1-99 percentile extent of its codes and prior samples, so scales can be compared.

    Each panel dict holds: model, codes (n, 2), labels (n,), prior (n, 2), fd.
    """
    cols = 3
    rows = -(-(len(panels) + 1) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.3 * cols, 4.2 * rows), squeeze=False)
    axes = axes.ravel()
    axes[0].scatter(true_latents[:, 0], true_latents[:, 1], c=true_labels, cmap="tab10", s=2, vmin=0, vmax=9)
    axes[0].set_title(f"(a) true latent\nextent {_extent(true_latents)}", fontsize=9)
    for i, (ax, p) in enumerate(zip(axes[1:], panels)):
        ax.scatter(p["codes"][:, 0], p["codes"][:, 1], c=p["labels"], cmap="tab10", s=2, vmin=0, vmax=9)
        ax.scatter(p["prior"][:, 0], p["prior"][:, 1], c="k", s=1, alpha=0.35, label="prior samples")
        xlim, ylim = _limits(p["codes"], p["prior"])
        ax.set_xlim(*xlim)
        ax.set_ylim(*ylim)
        ax.set_title(f"({chr(ord('b') + i)}) {LABELS.get(p['model'], p['model'])}: FD = {p['fd']:.2f}\n"
                     f"codes {_extent(p['codes'])}\nprior {_extent(p['prior'])}", fontsize=9)
        ax.legend(loc="upper right", fontsize=7, markerscale=5)
    for ax in axes[len(panels) + 1:]:
        ax.axis("off")
    for ax in axes[:len(panels) + 1]:
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.2)
    fig.suptitle("Latent spaces on synthetic-2d (m = 2): codes of 3000 test points coloured by true "
                 "component, prior samples in black", fontsize=10)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)
    plt.close(fig)

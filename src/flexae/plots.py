"""Figures of the synthetic experiments (paper Fig 2 and Fig 3), drawn with matplotlib (Agg)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

LABELS = {"flexae": "FlexAE", "wae": "WAE-N(0,I)", "wae-gmm": "WAE-GMM", "vae": "VAE", "flexae-sr": "FlexAE-SR"}


def plot_latent_distance(curves: dict[str, list[tuple[np.ndarray, np.ndarray]]],
                         final_fd: dict[str, list[float]], path: Path) -> None:
    """Fig 2: W1(prior samples, codes) against training step; one line per model (mean over seeds,
    shaded min-max), the legend giving the final FD as mean +- std over seeds."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for model, runs in curves.items():
        steps = runs[0][0]
        values = np.stack([w for _, w in runs])
        fd = np.array(final_fd[model])
        label = f"{LABELS.get(model, model)} (final FD {fd.mean():.2f} ± {fd.std():.2f}, {len(fd)} seeds)"
        line, = ax.plot(steps, values.mean(0), label=label)
        if len(runs) > 1:
            ax.fill_between(steps, values.min(0), values.max(0), color=line.get_color(), alpha=0.2)
    ax.set_xlabel("training iteration")
    ax.set_ylabel("W1(prior samples, encoder codes)")
    ax.set_title("Latent Wasserstein distance, synthetic-5d, m = 50")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_latent_scatter(true_latents: np.ndarray, true_labels: np.ndarray,
                        panels: list[dict], path: Path) -> None:
    """Fig 3: panel (a) the true 2-D latents, then per model its encoder codes (coloured by the
    true component) and prior samples (grey), with the model's FD in the title.

    Each panel dict holds: model, codes (n, 2), labels (n,), prior (n, 2), fd.
    """
    fig, axes = plt.subplots(1, len(panels) + 1, figsize=(3.2 * (len(panels) + 1), 3.4))
    axes[0].scatter(true_latents[:, 0], true_latents[:, 1], c=true_labels, cmap="tab10", s=2, vmin=0, vmax=9)
    axes[0].set_title("(a) true latent")
    for i, (ax, p) in enumerate(zip(axes[1:], panels)):
        ax.scatter(p["prior"][:, 0], p["prior"][:, 1], c="0.6", s=2, label="prior samples")
        ax.scatter(p["codes"][:, 0], p["codes"][:, 1], c=p["labels"], cmap="tab10", s=2, vmin=0, vmax=9)
        ax.set_title(f"({chr(ord('b') + i)}) {LABELS.get(p['model'], p['model'])}\nFD = {p['fd']:.2f}", fontsize=9)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    axes[1].legend(loc="lower left", fontsize=7, markerscale=4)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)

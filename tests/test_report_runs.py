"""`flexae report` of hand-written run folders (no training): sample sizes beside metrics, the FID
bias warning, and one colour per run across every panel."""

import json
from pathlib import Path

import matplotlib.colors as mcolors
import matplotlib.pyplot as plt

from flexae.metrics.fid import fid_bias_warning
from flexae.report import curves_figure, read_run, run_colours, write_report


def _run_folder(folder: Path, model: str, losses: list[dict], metrics: list[dict], config_train: dict,
                evaluation: dict | None = None) -> Path:
    folder.mkdir(parents=True)
    config = {"model": {"name": model, "latent_dim": 8}, "train": {"dataset": "mnist", "steps": 4, **config_train}}
    (folder / "config.json").write_text(json.dumps(config))
    lines = [{"kind": "losses", **r} for r in losses] + [{"kind": "metrics", **r} for r in metrics]
    (folder / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    if metrics:
        (folder / "metrics.json").write_text(json.dumps(metrics[-1]))
    if evaluation is not None:
        (folder / "eval.json").write_text(json.dumps(evaluation))
    return folder


def test_report_shows_n_beside_metrics_and_warns_for_fid_below_2048(tmp_path):
    small = _run_folder(tmp_path / "small", "wae", [{"step": 1, "loss_ae": 1.0}],
                        [{"step": 4, "fid": 80.5, "kid": 0.05, "kid_std": 0.01}], {"eval_images": 200},
                        evaluation={"n": 500, "seed": 0, "fid": {"gen": 70.25}})
    large = _run_folder(tmp_path / "large", "flexae", [{"step": 1, "loss_ae": 1.0}],
                        [{"step": 4, "fid": 20.5}], {"eval_images": 5000},
                        evaluation={"n": 10000, "seed": 0, "fid": {"gen": 10.25}})
    page = write_report([small, large], tmp_path / "out")
    text, markdown = page.read_text(), (page.parent / "report.md").read_text()
    for doc in (text, markdown):
        assert "80.5 (n = 200)" in doc and "0.05 (n = 200)" in doc and "20.5 (n = 5000)" in doc
        assert "70.25 (n = 500)" in doc and "10.25 (n = 10000)" in doc
        # the same words as `flexae metrics fid` warns with, once per small n, none for the large run
        assert f"small: {fid_bias_warning(200)}" in doc and f"small: {fid_bias_warning(500)}" in doc
        assert "large: FID" not in doc and doc.count("rank deficient") == 2


def _line_colours(fig: plt.Figure) -> dict[tuple[str, str], str]:
    """(panel title, run) -> the line's colour as #rrggbb, read back from the figure."""
    return {(ax.get_title(), line.get_label()): mcolors.to_hex(line.get_color())
            for ax in fig.axes for line in ax.get_lines()}


def test_each_run_keeps_its_colour_in_panels_where_the_other_logged_nothing(tmp_path):
    # WAE logs only loss_ae; FlexAE logs loss_ae and loss_gen. Before, loss_gen's only line took
    # the cycle's first colour: WAE's.
    wae = _run_folder(tmp_path / "wae", "wae", [{"step": s, "loss_ae": 1.0 / s} for s in (1, 2, 3)], [], {})
    flexae = _run_folder(tmp_path / "flexae", "flexae",
                         [{"step": s, "loss_ae": 2.0 / s, "loss_gen": 0.5 * s} for s in (1, 2, 3)], [], {})
    runs = [read_run(wae), read_run(flexae)]
    colours = run_colours(runs)
    assert colours["wae"] != colours["flexae"]
    fig = curves_figure(runs, "losses")
    try:
        drawn = _line_colours(fig)
        assert drawn == {("loss_ae", "wae"): mcolors.to_hex(colours["wae"]),
                         ("loss_ae", "flexae"): mcolors.to_hex(colours["flexae"]),
                         ("loss_gen", "flexae"): mcolors.to_hex(colours["flexae"])}
        legend = fig.axes[0].get_legend()
        assert {t.get_text(): mcolors.to_hex(h.get_color()) for t, h in zip(legend.get_texts(), legend.legend_handles)} \
            == {name: mcolors.to_hex(c) for name, c in colours.items()}
    finally:
        plt.close(fig)
    # Runs listed the other way round swap colours, but stay one colour each across panels.
    fig = curves_figure(runs[::-1], "losses")
    try:
        drawn = _line_colours(fig)
        assert drawn[("loss_gen", "flexae")] == drawn[("loss_ae", "flexae")] != drawn[("loss_ae", "wae")]
    finally:
        plt.close(fig)

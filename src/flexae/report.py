"""`flexae report RUN_DIR [RUN_DIR ...]`: one self-contained HTML page (and a Markdown twin) per run
or comparison of runs: the config, loss curves per update, metric curves, the latest sample and
reconstruction grids, `eval.json` when present, and timing.

The page embeds its pictures as `data:` URIs, so it is a single file to mail or attach; `report.md`
links the same pictures as PNG files written beside it. Everything is read from the run folders
(`flexae.runs`); nothing is recomputed, so a report of a running training is safe to make.
"""

from __future__ import annotations

import base64
import html
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from flexae.errors import UserError  # noqa: E402
from flexae.files import atomic_write, atomic_write_text, first_line, save_figure  # noqa: E402
from flexae.runs.layout import CONFIG_NAME, EVAL_JSON, GRIDS_DIR, LOG_NAME, METRICS_NAME  # noqa: E402
from flexae.runs.run_folder import RunFolder  # noqa: E402

METRIC_KEYS = ("fd", "w_latent", "fid", "kid")  # evaluation records, as opposed to losses


@dataclass
class RunRecords:
    """What a report shows of one run, read from its folder."""

    name: str
    folder: Path
    config: dict[str, Any]
    losses: list[dict[str, Any]] = field(default_factory=list)    # {"step", "time", "loss_*", ...}
    metrics: list[dict[str, Any]] = field(default_factory=list)   # {"step", "fd", "w_latent", ...}
    events: list[dict[str, Any]] = field(default_factory=list)    # stopped, diverged, sampler fit
    final: dict[str, Any] = field(default_factory=dict)           # metrics.json
    evaluation: dict[str, Any] = field(default_factory=dict)      # eval.json
    grids: dict[str, Path] = field(default_factory=dict)          # latest samples / reconstructions PNG


def kind(record: dict[str, Any]) -> str:
    """"losses", "metrics" or "event": the `kind` field of newer logs, inferred for older ones."""
    if "kind" in record:
        return record["kind"]
    if "event" in record or "sampler_fit" in record:
        return "event"
    return "metrics" if any(k in record for k in METRIC_KEYS) else "losses"


def inside_run(folder: Path, path: Path) -> bool:
    """True for a regular file of the run itself: not a symlink (nor under a symlinked folder), and
    inside the run folder once resolved. Only such files are read into a report, so a symlink in a
    shared run cannot have the report embed a file from elsewhere (a private key, say)."""
    if path.is_symlink() or not path.is_file():
        return False
    between = path.parent  # the folders from the file up to the run folder (grids/): no symlinks
    while between != folder and between != between.parent:
        if between.is_symlink():
            return False
        between = between.parent
    return path.resolve().is_relative_to(folder.resolve())


def _refuse_symlink(folder: Path, path: Path) -> bool:
    """True if `path` may be read; a file that exists but is not the run's own is skipped with a warning."""
    if inside_run(folder, path):
        return True
    if path.is_symlink() or path.exists():
        warnings.warn(f"{path} is a symbolic link or not a regular file inside the run; not included in the report")
    return False


def read_run(folder: str | Path) -> RunRecords:
    folder = Path(folder)
    if (folder / CONFIG_NAME).is_symlink():
        raise UserError(f"{folder / CONFIG_NAME} is a symbolic link; a report reads only the run's own files")
    if not (folder / CONFIG_NAME).is_file():
        raise UserError(f"{folder} is not a run folder (no {CONFIG_NAME})")
    try:
        config = json.loads((folder / CONFIG_NAME).read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"{folder / CONFIG_NAME}: unreadable ({first_line(exc)})") from None
    if not isinstance(config, dict):  # an edited file: a list, a string, null
        raise UserError(f"{folder / CONFIG_NAME}: not a flexae config (expected a JSON object with sections "
                        f"model, optim and train, got {type(config).__name__})")
    run = RunRecords(folder.resolve().name, folder, config)
    if (folder / LOG_NAME).exists() and _refuse_symlink(folder, folder / LOG_NAME):
        for record in RunFolder(folder).read_log():
            getattr(run, {"losses": "losses", "metrics": "metrics"}.get(kind(record), "events")).append(record)
    run.final = _json_or_empty(folder / METRICS_NAME) if _refuse_symlink(folder, folder / METRICS_NAME) else {}
    run.evaluation = _json_or_empty(folder / EVAL_JSON) if _refuse_symlink(folder, folder / EVAL_JSON) else {}
    for name in ("samples", "reconstructions"):
        found = sorted(p for p in (folder / GRIDS_DIR).glob(f"{name}-*.png") if _refuse_symlink(folder, p))
        if found:
            run.grids[name] = found[-1]  # names carry the zero-padded step: the last is the latest
    return run


def _json_or_empty(path: Path) -> dict[str, Any]:
    value = RunFolder(path.parent).read_json(path.name)
    return value if isinstance(value, dict) else {}


# --- figures -----------------------------------------------------------------------------------

def _series(records: list[dict[str, Any]], key: str) -> tuple[list[float], list[float]]:
    points = [(r["step"], r[key]) for r in records  # records of an edited log may lack either
              if isinstance(r.get(key), (int, float)) and isinstance(r.get("step"), (int, float))]
    return [p[0] for p in points], [p[1] for p in points]


def _keys(runs: list[RunRecords], attribute: str, skip: tuple[str, ...]) -> list[str]:
    keys: dict[str, None] = {}
    for run in runs:
        for record in getattr(run, attribute):
            keys.update({k: None for k, v in record.items()
                         if k not in skip and isinstance(v, (int, float)) and not isinstance(v, bool)})
    return list(keys)


def run_colours(runs: list[RunRecords]) -> dict[str, str]:
    """One colour per run (matplotlib's cycle, by the run's place in the list), the same in every
    panel: a run that logs a quantity others do not (FlexAE's loss_gen beside WAE) keeps its own."""
    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    return {run.name: cycle[i % len(cycle)] for i, run in enumerate(runs)}


def curves_figure(runs: list[RunRecords], attribute: str) -> plt.Figure | None:
    """One panel per logged quantity (a loss per update, or a metric), one line per run in the
    run's colour (:func:`run_colours`); None when nothing was logged. The caller closes it."""
    keys = _keys(runs, attribute, skip=("step", "time", "kind"))
    if not keys:
        return None
    colours = run_colours(runs)
    columns = min(3, len(keys))
    rows = -(-len(keys) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 2.8 * rows), squeeze=False)
    for ax, key in zip(axes.flat, keys):
        for run in runs:
            steps, values = _series(getattr(run, attribute), key)
            if steps:
                ax.plot(steps, values, label=run.name, color=colours[run.name],
                        marker="." if len(steps) < 30 else None)
        ax.set_title(key, fontsize=10)
        ax.set_xlabel("iteration", fontsize=8)
        ax.tick_params(labelsize=8)
    for ax in list(axes.flat)[len(keys):]:
        ax.axis("off")
    if len(runs) > 1:  # every run in the legend, even one absent from the first panel
        handles = [Line2D([], [], color=colours[run.name], label=run.name) for run in runs]
        axes.flat[0].legend(handles=handles, fontsize=7)
    fig.tight_layout()
    return fig


def curves_png(runs: list[RunRecords], attribute: str, path: Path) -> Path | None:
    """:func:`curves_figure` written to `path` (PNG); None when nothing was logged."""
    fig = curves_figure(runs, attribute)
    if fig is None:
        return None
    save_figure(fig, path, dpi=100)
    plt.close(fig)
    return path


# --- the page ----------------------------------------------------------------------------------

def _timing(run: RunRecords) -> str:
    timed = [r for r in run.losses if isinstance(r.get("time"), (int, float))]
    if not timed:
        return "no iterations logged yet"
    last = timed[-1]
    per_iter = last["time"] / last["step"] if last["step"] else float("nan")
    return f"step {last['step']} after {last['time']:.0f} s of training ({1000 * per_iter:.0f} ms per iteration)"


def _summary_rows(runs: list[RunRecords]) -> list[tuple[str, list[str]]]:
    def get(run: RunRecords, section: str, key: str) -> str:
        values = run.config.get(section)  # an edited config may hold anything here
        return str(values.get(key, "")) if isinstance(values, dict) else ""

    rows = [("model", [get(r, "model", "name") for r in runs]),
            ("data set", [get(r, "train", "dataset") for r in runs]),
            ("latent dim", [get(r, "model", "latent_dim") for r in runs]),
            ("steps", [get(r, "train", "steps") for r in runs]),
            ("precision / device", [f"{get(r, 'train', 'precision')} / {r.config.get('device', '')}" for r in runs]),
            ("timing", [_timing(r) for r in runs])]
    for key in sorted({k for r in runs for k in r.final if k != "step"}):
        rows.append((f"final {key}", [_with_n(r.final.get(key), metric_n(r, key)) for r in runs]))
    for r_index, run in enumerate(runs):
        for metric, value in _flatten(run.evaluation).items():
            row = next((row for row in rows if row[0] == f"eval {metric}"), None)
            if row is None:
                row = (f"eval {metric}", [""] * len(runs))
                rows.append(row)
            row[1][r_index] = _with_n(value, _eval_n(run, metric))
    stopped = [next((f"{e['event']} at step {e.get('step')}" for e in reversed(r.events) if "event" in e), "")
               for r in runs]
    if any(stopped):
        rows.append(("last event", stopped))
    return rows


def metric_n(run: RunRecords, key: str) -> int | None:
    """Samples behind a metric the training loop logged (None: not a metric, or unknown).

    fid / kid: train.eval_images generated vs test images; fd: every synthetic test point
    (flexae.app.train.synthetic_metrics); w_latent: train.eval_samples codes vs prior samples."""
    train = run.config.get("train", {}) if isinstance(run.config, dict) else {}
    train = train if isinstance(train, dict) else {}  # an edited config.json: no sample sizes shown
    base = key.split(".")[0]
    if base in ("fid", "kid", "kid_std") and train.get("eval_images"):
        return int(train["eval_images"])
    if base in ("fd", "w_latent") and _synthetic(train.get("dataset")):
        from flexae.data.synthetic import NUM_TEST
        return NUM_TEST if base == "fd" else min(int(train.get("eval_samples", NUM_TEST)), NUM_TEST)
    return None


def _synthetic(dataset: Any) -> bool:
    """A named synthetic data set (a config.json read as JSON: any value may stand there)."""
    from flexae.data import DATASET_INFO
    info = DATASET_INFO.get(dataset) if isinstance(dataset, str) else None
    return info is not None and not info.is_image


def _eval_n(run: RunRecords, metric: str) -> int | None:
    """eval.json: every metric but its own n and seed is computed on n images."""
    n = run.evaluation.get("n")
    return n if isinstance(n, int) and metric not in ("n", "seed") else None


def _with_n(value: Any, n: int | None) -> str:
    return _fmt(value) if n is None or value is None else f"{_fmt(value)} (n = {n})"


def fid_warnings(runs: list[RunRecords]) -> list[str]:
    """One line per run whose FID (logged or in eval.json) comes from fewer than 2048 images,
    in the words `flexae metrics fid` warns with."""
    from flexae.metrics.fid import fid_bias_warning
    from flexae.metrics.inception import FEATURE_DIM

    lines = []
    for run in runs:
        logged = "fid" in run.final or any("fid" in r for r in run.metrics)
        sizes = {metric_n(run, "fid")} if logged else set()
        sizes |= {_eval_n(run, m) for m in _flatten(run.evaluation) if m.startswith("fid")}
        for n in sorted(n for n in sizes if n is not None and n < FEATURE_DIM):
            lines.append(f"{run.name}: {fid_bias_warning(n, FEATURE_DIM)}")
    return lines


def _flatten(evaluation: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out = {}
    for key, value in evaluation.items():
        if key in ("run", "model", "dataset"):
            continue
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        elif isinstance(value, (int, float)):
            out[f"{prefix}{key}"] = value
    return out


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else ("" if value is None else str(value))


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


# On load, the page records how many of its pictures decoded (checked by the tests in a browser).
_LOAD_CHECK = """<script>
window.addEventListener("load", () => {
  const images = Array.from(document.images);
  const ok = images.filter(i => i.complete && i.naturalWidth > 0).length;
  document.body.setAttribute("data-images-loaded", ok + "/" + images.length);
});
</script>"""


def render_html(runs: list[RunRecords], figures: dict[str, Path]) -> str:
    title = "flexae report: " + ", ".join(r.name for r in runs)
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
             "<style>body{font-family:sans-serif;margin:2em;max-width:1400px}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}img{max-width:100%}"
             ".grid-images{display:flex;gap:2em;flex-wrap:wrap}pre{background:#f6f6f6;padding:1em;overflow:auto}</style>",
             "</head><body>", f"<h1>{html.escape(title)}</h1>", "<h2>Summary</h2><table>",
             "<tr><th></th>" + "".join(f"<th>{html.escape(r.name)}</th>" for r in runs) + "</tr>"]
    for label, values in _summary_rows(runs):
        parts.append(f"<tr><td>{html.escape(label)}</td>" + "".join(f"<td>{html.escape(v)}</td>" for v in values)
                     + "</tr>")
    parts.append("</table>")
    parts += [f"<p class='warning'>warning: {html.escape(line)}</p>" for line in fid_warnings(runs)]
    for heading, key in (("Losses per update", "losses"), ("Metrics", "metrics")):
        if key in figures:
            parts.append(f"<h2>{heading}</h2><img alt='{key}' src='{_data_uri(figures[key])}'>")
    for run in runs:
        if run.grids:
            parts.append(f"<h2>Latest grids: {html.escape(run.name)}</h2><div class='grid-images'>")
            for name, path in run.grids.items():
                parts.append(f"<figure><img alt='{name}' src='{_data_uri(path)}'>"
                             f"<figcaption>{html.escape(path.name)}</figcaption></figure>")
            parts.append("</div>")
    for run in runs:
        parts.append(f"<h2>Config: {html.escape(run.name)}</h2><pre>"
                     f"{html.escape(json.dumps(run.config, indent=2))}</pre>")
    parts += [_LOAD_CHECK, "</body></html>"]
    return "\n".join(parts)


def render_markdown(runs: list[RunRecords], figures: dict[str, Path], out: Path) -> str:
    lines = ["# flexae report: " + ", ".join(r.name for r in runs), "",
             "| | " + " | ".join(r.name for r in runs) + " |", "|---|" + "---|" * len(runs)]
    lines += [f"| {label} | " + " | ".join(values) + " |" for label, values in _summary_rows(runs)]
    warned = fid_warnings(runs)
    lines += [""] + [f"> warning: {line}" for line in warned] if warned else []
    for heading, key in (("Losses per update", "losses"), ("Metrics", "metrics")):
        if key in figures:
            lines += ["", f"## {heading}", "", f"![{key}]({figures[key].relative_to(out)})"]
    for run in runs:
        for name, path in run.grids.items():
            copy = out / f"{run.name}-{path.name}"
            atomic_write(copy, lambda f, path=path: f.write(path.read_bytes()))
            lines += ["", f"## {name}: {run.name}", "", f"![{name}]({copy.name})"]
    return "\n".join(lines) + "\n"


def write_report(run_dirs: list[str | Path], out: str | Path | None = None) -> Path:
    """Write report.html and report.md (with their PNGs) to `out` (default RUN_DIR/report for one
    run); returns the HTML file."""
    if not run_dirs:
        raise UserError("give at least one run folder")
    runs = [read_run(d) for d in run_dirs]
    for i, run in enumerate(runs):  # two runs/seed0 folders compared: tell them apart
        if [r.name for r in runs].count(run.name) > 1:
            run.name = f"{run.name}-{i + 1}"
    if out is None:
        if len(runs) > 1:
            raise UserError("comparing runs needs --out FOLDER for the report")
        out = runs[0].folder / "report"
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create report folder {out} ({exc.strerror or exc})") from None
    figures = {key: path for key in ("losses", "metrics")
               if (path := curves_png(runs, key, out / f"{key}.png")) is not None}
    atomic_write_text(out / "report.md", render_markdown(runs, figures, out))
    page = out / "report.html"
    atomic_write_text(page, render_html(runs, figures))
    return page

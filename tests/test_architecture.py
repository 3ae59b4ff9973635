"""The shape of the library: no import cycles (imports inside functions count), the layering rules
hold, and a model defined outside flexae needs one module plus one registry line."""

import ast
from pathlib import Path
from typing import Any

import pytest
import torch

from flexae.config import ModelConfig, RunConfig, TrainConfig

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "flexae"

# The layers of docs/architecture.md, top to bottom. A module may import modules of its own layer
# or of any layer below it, never above (imports inside functions count). "" is the package's
# own __init__ (the config classes and lazy names of `import flexae`).
LAYERS = [
    ("cli", "__main__"),                                   # the command line
    ("experiments", "bench", "report"),                    # one function per paper table / figure
    ("app",),                                              # commands that open a run and build from it
    ("validation",),                                       # configs checked against what exists
    ("registry",),                                         # model name -> builder, trainer, sampler fit
    ("baselines",),                                        # the Table 1 baselines
    ("training",),                                         # the engine: steps, trainers, precision, graphs
    ("evaluation", "inference"),                           # the evaluation protocol; sampling
    ("models", "priors", "losses"),                        # networks-only containers, priors, pure losses
    ("nets",),                                             # Tables 6-8 networks
    ("metrics", "grids", "plots"),                         # FD, W1, Inception, PRD, PMS/IMS; images, figures
    ("runs",),                                             # the run folder's format
    ("data", "config", "files", "devices", "eta", "errors", "version", "trust", "finite", "ranges", ""),  # the ground floor
]

# Within-layer rules the order cannot express: (importer prefix, imported prefix).
NEVER = [("models", "losses"), ("priors", "models"), ("evaluation", "inference"), ("inference", "evaluation"),
         ("metrics", "plots")]


def layer_of(module: str) -> int:
    """Index in LAYERS of a flexae module ("flexae.app.train" -> 2); the longest prefix wins."""
    rest = module[len(PACKAGE) + 1:] if module != PACKAGE else ""
    top = rest.split(".")[0]
    for i, names in enumerate(LAYERS):
        if top in names:
            return i
    raise AssertionError(f"{module} is in no layer of LAYERS: add it to docs/architecture.md and the test")


def _modules() -> dict[str, Path]:
    mods = {}
    for path in (SRC / PACKAGE).rglob("*.py"):
        parts = path.relative_to(SRC).with_suffix("").parts
        mods[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return mods


def _import_graph() -> dict[str, set[str]]:
    """Module -> the flexae modules it imports anywhere in its body (functions included)."""
    mods, edges = _modules(), {}
    for name, path in mods.items():
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                candidates = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                candidates = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            else:
                continue
            for candidate in candidates:
                while candidate and candidate not in mods:
                    candidate = candidate.rpartition(".")[0]
                if candidate and candidate != name:
                    targets.add(candidate)
        edges[name] = targets
    return edges


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module, except a package's __init__ with
    its own children (re-exports, not a cycle)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack, on_stack, found = [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in edges:
        if v not in index:
            visit(v)
    return [c for c in found if not all(m == c[0] or m.startswith(c[0] + ".") for m in c)]


def _under(module: str, prefix: str) -> bool:
    full = PACKAGE if prefix == "*" else f"{PACKAGE}.{prefix}"
    return prefix == "*" or module == full or module.startswith(full + ".")


def test_no_import_cycles():
    assert _cycles(_import_graph()) == []


def test_the_cycle_check_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == [["a", "b", "c"]]


def test_every_module_has_a_layer():
    for module in _modules():
        layer_of(module)


def test_no_import_points_up():
    edges = _import_graph()
    upward = sorted(f"{m} -> {t}" for m, targets in edges.items() for t in targets if layer_of(t) < layer_of(m))
    assert upward == []


def test_the_layer_check_sees_an_upward_import():
    assert layer_of("flexae.runs.checkpoint") > layer_of("flexae.app.train") > layer_of("flexae.cli")
    assert layer_of("flexae") == len(LAYERS) - 1


@pytest.mark.parametrize("importer,imported", NEVER, ids=lambda x: x)
def test_layering_within_a_layer(importer, imported):
    edges = _import_graph()
    broken = sorted(f"{m} -> {t}" for m, targets in edges.items() for t in targets
                    if _under(m, importer) and _under(t, imported) and not _under(m, imported))
    assert broken == []


def test_the_layer_list_is_the_documented_one():
    """docs/architecture.md draws the same layers, in the same order."""
    doc = (SRC.parent / "docs" / "architecture.md").read_text()
    drawn = doc.split("```")[1].strip().splitlines()
    names = [tuple(n.strip() for n in line.split("  ")[0].split(",")) for line in drawn]
    assert names == [tuple(n for n in layer if n) for layer in LAYERS]


def test_baseline_models_import_no_training_code():
    edges = _import_graph()
    broken = sorted(f"{m} -> {t}" for m, targets in edges.items() for t in targets
                    if m.startswith(f"{PACKAGE}.baselines") and not m.endswith("_train")
                    and t.startswith(f"{PACKAGE}.training"))
    assert broken == []


def test_loading_a_run_imports_no_training_code(tmp_path):
    """In a fresh process: load a trained run and generate from it; no flexae.training module
    and no trainer is imported on the way."""
    import subprocess
    import sys

    from flexae.app.train import train

    cfg = RunConfig(ModelConfig(name="ae-gmm", latent_dim=3),
                    train=TrainConfig(dataset="synthetic-2d", steps=2, batch_size=16, eval_samples=50,
                                      device="cpu"))
    run_dir = train(cfg, tmp_path / "run", progress=False)
    code = ("import sys; from flexae import load_run; model, cfg = load_run(sys.argv[1]); "
            "assert model.generate(4).shape == (4, 128); "
            "print(' '.join(m for m in sys.modules if m.startswith('flexae.training') or m.endswith('_train')))")
    out = subprocess.run([sys.executable, "-c", code, str(run_dir)], capture_output=True, text=True, check=True,
                         env={**__import__("os").environ, "PYTHONPATH": str(SRC)})
    assert out.stdout.strip() == ""


def test_cli_help_lists_come_from_the_registries_without_importing_torch():
    """`--model`, `--dataset` and the prior kinds of the CLI's help are read from the registry,
    flexae.data's table and config.PRIOR_KINDS (a model or data set added there shows up in the
    help with no edit to cli.py), and `import flexae.cli` still imports no torch."""
    import subprocess
    import sys

    from click.testing import CliRunner

    from flexae.cli import cli
    from flexae.config import PRIOR_KINDS
    from flexae.data import DATASETS, IMAGES
    from flexae.registry import BASELINE_NAMES, MODELS, PAPER_MODELS

    assert set(PAPER_MODELS + BASELINE_NAMES) == set(MODELS)  # the help's two groups cover the registry
    runner = CliRunner()

    def help_text(*command: str) -> str:
        return " ".join(runner.invoke(cli, [*command, "--help"], terminal_width=10_000).output.split())

    train = help_text("train")
    assert all(f" {name}" in train for name in MODELS) and all(name in train for name in DATASETS)
    assert "FlexAE with its prior fixed to N(0, I)" in train  # a registered summary
    table = help_text("reproduce", "table1")
    assert all(name in table for name in IMAGES) and "synthetic-5d" not in table
    assert ",".join(PRIOR_KINDS) in help_text("compare-priors")
    code = "import sys, flexae.cli; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**__import__("os").environ, "PYTHONPATH": str(SRC)})
    assert out.stdout.strip() == "False"


@pytest.fixture
def toy_registered():
    from flexae.registry import MODELS, ModelSpec, register
    from toy_model import ToyTrainer, build_toy

    register("toy-ae", ModelSpec(build_toy, ToyTrainer))  # the one registry line
    yield
    MODELS.pop("toy-ae")


def test_a_model_from_outside_trains_saves_loads_and_resumes(toy_registered, tmp_path):
    from flexae.app.load import load_run
    from flexae.runs.log import read_log
    from flexae.app.train import resume, train

    cfg = RunConfig(ModelConfig(name="toy-ae", latent_dim=3),
                    train=TrainConfig(dataset="synthetic-2d", steps=4, batch_size=16, checkpoint_every=2,
                                      log_every=1, eval_samples=50, device="cpu"))
    run_dir = train(cfg, tmp_path / "toy", progress=False)
    model, loaded = load_run(run_dir)
    assert loaded.model.name == "toy-ae" and model.generate(5).shape == (5, 128)
    resume(run_dir, steps=6, progress=False)
    steps = [r["step"] for r in read_log(run_dir) if "loss_ae" in r]
    assert steps == [1, 2, 3, 4, 5, 6]
    assert torch.isfinite(torch.tensor([r["loss_ae"] for r in read_log(run_dir) if "loss_ae" in r])).all()


def test_configs_of_older_runs_spell_the_authors_variants_code():
    from flexae.validation import config_from_dict

    old = RunConfig().to_dict()
    old["model"]["decoder_variant"], old["optim"]["feed"] = "code", "code"
    cfg = config_from_dict(old, "old run")
    assert (cfg.model.decoder_variant, cfg.optim.feed) == ("authors", "authors")


def _flexae(*args: str, cwd) -> Any:
    import os
    import subprocess
    import sys

    tests = Path(__file__).resolve().parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), str(tests)])}
    return subprocess.run([sys.executable, "-m", "flexae", *args], capture_output=True, text=True, cwd=cwd, env=env)


def test_a_model_of_your_own_with_its_own_settings_trains_resumes_and_samples_from_the_cli(tmp_path):
    """One module outside flexae (tests/tests_pkg/my_model.py), no edit to flexae: --model
    module:Name, its own typed setting by --set, then resume and sample in fresh processes."""
    import json

    run = tmp_path / "mine"
    out = _flexae("train", "--model", "tests_pkg.my_model:MyModel", "--dataset", "synthetic-2d", "--latent-dim",
                  "2", "--steps", "3", "--batch-size", "16", "--set", "model.options.width=16", "--set",
                  "train.eval_samples=50", "--quiet", "--out", str(run), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    saved = json.loads((run / "config.json").read_text())
    assert saved["model"]["name"] == "tests_pkg.my_model:MyModel"
    assert saved["model"]["options"] == {"width": 16, "code_weight": 0.0}
    out = _flexae("train", "--resume", str(run), "--steps", "5", "--quiet", cwd=tmp_path)
    assert out.returncode == 2 and "names model code 'tests_pkg.my_model:MyModel'" in out.stderr  # no consent
    out = _flexae("train", "--resume", str(run), "--steps", "5", "--quiet", "--trust-code", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    import os
    import subprocess
    import sys

    code = ("import sys; from flexae import load_run; model, cfg = load_run(sys.argv[1], trust_code=True); "
            "assert model.encoder[0].out_features == cfg.model.options.width == 16; "
            "print(tuple(model.generate(4).shape))")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), str(Path(__file__).resolve().parent)])}
    out = subprocess.run([sys.executable, "-c", code, str(run)], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "(4, 128)"


def test_a_setting_the_model_does_not_have_is_one_line(tmp_path):
    out = _flexae("train", "--model", "tests_pkg.my_model:MyModel", "--dataset", "synthetic-2d", "--steps", "1",
                  "--set", "model.options.depth=3", "--out", str(tmp_path / "r"), cwd=tmp_path)
    assert out.returncode == 2
    assert "has no setting model.options.depth; its settings: code_weight, width" in out.stderr
    assert "Traceback" not in out.stderr
    out = _flexae("train", "--model", "tests_pkg.my_model:MyModel", "--dataset", "synthetic-2d", "--steps", "1",
                  "--set", "model.options.width=0", "--out", str(tmp_path / "r1"), cwd=tmp_path)
    assert out.returncode == 2 and "model.options.width must be" in out.stderr  # the range it declares
    out = _flexae("train", "--model", "flexae", "--dataset", "synthetic-2d", "--steps", "1",
                  "--set", "model.options.width=3", "--out", str(tmp_path / "r2"), cwd=tmp_path)
    assert out.returncode == 2 and "has no settings of its own" in out.stderr
    out = _flexae("train", "--model", "tests_pkg.nowhere:Model", "--dataset", "synthetic-2d", "--steps", "1",
                  "--out", str(tmp_path / "r3"), cwd=tmp_path)
    assert out.returncode == 2 and "cannot import 'tests_pkg.nowhere'" in out.stderr


def _source_lines():
    for path in sorted((SRC / PACKAGE).rglob("*.py")):
        rel = path.relative_to(SRC / PACKAGE).as_posix()
        for number, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#")[0]
            yield rel, number, code


def test_every_write_goes_through_flexae_files():
    """docs/architecture.md: `flexae.files` is the one writer (atomic writes), so no module writes
    a file in place; the run-folder lock (runs/folder.py) is the one file opened for writing."""
    import re

    direct = re.compile(r"\.write_text\(|\.write_bytes\(|\.savefig\(\s*(path|out|[a-z_]*dir)|open\([^)]*[\"'][wa]b?[\"']")
    found = [f"{rel}:{n}: {code.strip()}" for rel, n, code in _source_lines()
             if rel != "files.py" and direct.search(code)]
    assert found == []


def test_run_folder_file_names_are_spelled_only_in_runs_layout():
    import re

    from flexae.runs import layout

    names = [v for k, v in vars(layout).items() if k.isupper() and isinstance(v, str)]
    literal = re.compile("|".join(rf"[\"']{re.escape(name)}[\"']" for name in names))
    found = [f"{rel}:{n}: {code.strip()}" for rel, n, code in _source_lines()
             if rel != "runs/layout.py" and literal.search(code)]
    assert found == []

"""Issue 24 (the first hour with flexae): honest defaults, skip reasons, a light `--help`, light exports."""

import subprocess
import sys
from pathlib import Path

import numpy as np
from click.testing import CliRunner

from flexae.cli import cli
from flexae.plots import final_fd_label

REPO = Path(__file__).resolve().parents[1]


def test_fig2_default_of_one_seed_is_what_the_docs_and_legend_say():
    help_text = CliRunner().invoke(cli, ["reproduce", "fig2", "--help"]).output
    assert "[default: 1]" in " ".join(help_text.split())
    assert "`reproduce fig2` runs **1 seed** by default" in (REPO / "docs" / "synthetic.md").read_text()
    # One seed: no "± 0.00, 1 seeds"; several: mean ± population std.
    assert final_fd_label(np.array([4.4])) == "final FD 4.40, 1 seed"
    assert final_fd_label(np.array([1.0, 3.0])) == "final FD 2.00 ± 1.00, 2 seeds"


def _pytest(args: list[str], shared: Path) -> subprocess.CompletedProcess:
    env = {**__import__("os").environ, "FLEXAE_SHARED_DATA": str(shared)}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


def test_skips_for_missing_mnist_are_counted_in_one_line_that_says_how_to_enable_them(tmp_path):
    # Four tests of test_image_data need MNIST (marks) and are cheap to collect; point the variable
    # at an empty folder.
    tests = ["tests/test_image_data.py::test_raw_idx_equals_gz",
             "tests/test_image_data.py::test_env_var_and_flat_directory",
             "tests/test_image_data.py::test_truncated_raw_idx_names_file"]
    result = _pytest(tests, tmp_path)
    lines = [line for line in result.stdout.splitlines() if "tests skipped: no MNIST" in line]
    assert lines == [f"3 tests skipped: no MNIST files in FLEXAE_SHARED_DATA={tmp_path}/mnist; to run them: "
                     "flexae data fetch mnist --data-dir DIR && ln -s MNIST/raw DIR/mnist, then "
                     "FLEXAE_SHARED_DATA=DIR (default: ../shared/data beside the repository)"], result.stdout
    readme = (REPO / "README.md").read_text()
    assert "FLEXAE_SHARED_DATA" in readme and "flexae data fetch mnist" in readme


def test_the_enabling_recipe_is_a_layout_the_tests_read(tmp_path):
    # What `flexae data fetch mnist --data-dir DIR` leaves (torchvision's DIR/MNIST/raw, .gz kept),
    # made offline from the shared files, plus the symlink the summary line names.
    from conftest import SHARED_DATA
    import pytest
    if not (SHARED_DATA / "mnist").is_dir():
        pytest.skip(f"shared MNIST files absent at {SHARED_DATA}")
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for path in (SHARED_DATA / "mnist").glob("*-ubyte.gz"):
        (raw / path.name).write_bytes(path.read_bytes())
    (tmp_path / "mnist").symlink_to("MNIST/raw")
    result = _pytest(["tests/test_image_data.py::test_raw_idx_equals_gz"], tmp_path)
    assert result.returncode == 0 and "1 passed" in result.stdout and "skipped" not in result.stdout, result.stdout


def _imported_by_help(*args: str) -> set[str]:
    """Top-level modules `python -X importtime -m flexae ARGS --help` imports (its stderr lists them)."""
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "flexae", *args, "--help"],
                            cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    names = [line.split("|")[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")]
    return {name.split(".")[0] for name in names}


def test_help_imports_neither_torch_nor_scikit_learn():
    for args in ((), ("metrics",), ("metrics", "kid"), ("train",), ("eval",)):
        imported = _imported_by_help(*args)
        assert "flexae" in imported and not imported & {"torch", "sklearn", "scipy"}, (args, imported & {"torch", "sklearn", "scipy"})


def _options():
    import click

    def walk(command, path):
        if isinstance(command, click.Group):
            for name, sub in command.commands.items():
                yield from walk(sub, [*path, name])
        else:
            for param in command.params:
                if isinstance(param, click.Option) and param.name != "help":
                    yield " ".join(path), param
    return list(walk(cli, ["flexae"]))


def test_every_option_has_help_and_shows_its_default():
    for command, option in _options():
        assert option.help, f"{command} {option.opts[0]} has no help"
        has_default = option.default is not None and "UNSET" not in repr(option.default)  # click 8.2: required
        if has_default and not option.is_flag and not option.multiple:
            assert option.show_default, f"{command} {option.opts[0]}: default {option.default!r} not shown"
    train_steps = next(o for c, o in _options() if c == "flexae train" and o.name == "steps")
    assert "5000" in str(train_steps.show_default)


def test_one_data_dir_type_and_one_inception_batch_size():
    import click

    from flexae.config import INCEPTION_BATCH_SIZE
    from flexae.metrics import cli as metrics_cli
    from flexae.metrics import inception
    data_dirs = [(c, o) for c, o in _options() if o.name == "data_dir"]
    assert len(data_dirs) > 10 and all(isinstance(o.type, click.Path) for _, o in data_dirs), \
        [c for c, o in data_dirs if not isinstance(o.type, click.Path)]
    inception_batches = {c: o.default for c, o in _options() if o.name == "batch_size"
                         and (c == "flexae eval" or c.startswith("flexae metrics"))}
    assert len(inception_batches) == 6 and set(inception_batches.values()) == {INCEPTION_BATCH_SIZE}, inception_batches
    # written out in the metrics CLI so that its options import no torch
    assert metrics_cli.PRECISION_CHOICES == inception.PRECISION_CHOICES
    assert (metrics_cli.RESIZE_MODE, metrics_cli.RESIZE_MODES) == (inception.RESIZE_MODE, inception.RESIZE_MODES)

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

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

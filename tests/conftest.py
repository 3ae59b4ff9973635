import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("FLEXAE_SHARED_DATA", REPO.parent / "shared" / "data"))

# Substrings of the skip reasons of every test that needs the MNIST files under SHARED_DATA (this
# fixture's, and the `needs_shared` marks of test_image_data / test_reliability_metrics).
MNIST_SKIP_REASONS = ("shared data folder not found", "shared MNIST files absent")
# How to run them, printed once after the tests (`flexae data fetch` writes torchvision's MNIST/raw/).
MNIST_HOW_TO = ("to run them: flexae data fetch mnist --data-dir DIR && ln -s MNIST/raw DIR/mnist, "
                "then FLEXAE_SHARED_DATA=DIR (default: ../shared/data beside the repository)")


@pytest.fixture(autouse=True)
def _seed_and_threads():
    torch.manual_seed(0)
    yield


@pytest.fixture
def shared_data() -> Path:
    if not (SHARED_DATA / "mnist").is_dir():
        pytest.skip(f"shared data folder not found at {SHARED_DATA}")
    return SHARED_DATA


def _skip_reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    return longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """One line: how many tests skipped for want of MNIST, and how to enable them."""
    skipped = terminalreporter.stats.get("skipped", [])
    missing = sum(any(r in _skip_reason(report) for r in MNIST_SKIP_REASONS) for report in skipped)
    if missing:
        terminalreporter.write_line(f"{missing} tests skipped: no MNIST files in "
                                    f"FLEXAE_SHARED_DATA={SHARED_DATA}/mnist; {MNIST_HOW_TO}")

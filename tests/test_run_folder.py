"""RunFolder, the one door to a run folder, and the one sidecar format behind sampler.pt and the
fitted priors: old run folders (tests/golden/legacy_runs) read through it as they did before."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from flexae.errors import UserError
from flexae.runs import sampler_file, sidecar
from flexae.runs.run_folder import RunFolder

LEGACY = Path(__file__).parent / "golden" / "legacy_runs"


def test_a_legacy_run_reads_through_run_folder(tmp_path: Path) -> None:
    run = RunFolder(shutil.copytree(LEGACY / "ae-gmm", tmp_path / "run"))
    assert run.config() == json.loads((run.path / "config.json").read_text())
    state = run.checkpoint(finite=True)
    assert state["step"] == run.read_log()[-1]["step"]
    folder, path = RunFolder.of(run.path / "checkpoint.pt")
    assert folder == run and path == run.path / "checkpoint.pt"
    with run.lock(), pytest.raises(UserError, match="another flexae process"):
        with RunFolder(str(run.path)).lock():
            pass


def test_the_legacy_sampler_file_reads_bit_for_bit_and_its_checksum_is_unchanged(tmp_path: Path) -> None:
    path = LEGACY / "ae-gmm" / "sampler.pt"
    raw = torch.load(path, weights_only=True)
    checked = sampler_file.read(path)
    assert checked["step"] == raw["step"] and checked["fingerprint"] == raw["fingerprint"]
    assert all(torch.equal(checked["sampler"][k], v) for k, v in raw["sampler"].items())
    assert "checksum" not in raw  # written by a flexae before checksums: still read as it was
    # Written again through the shared format: same keys, same checksum function, readable again.
    again = sidecar.save(tmp_path / "sampler.pt", {k: raw[k] for k in ("step", "fingerprint", "stats", "sampler")},
                         sampler_file._digest)
    rewritten = torch.load(again, weights_only=True)
    assert set(rewritten) == {"step", "fingerprint", "stats", "sampler", "checksum"}
    assert rewritten["checksum"] == sampler_file._digest(rewritten)
    assert sampler_file.read(again)["step"] == raw["step"]


def test_a_sidecar_holds_tensors_and_plain_values_only(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="plain values only"):
        sidecar.save(tmp_path / "x.pt", {"step": 1, "bad": object()}, lambda state: "")
    assert not (tmp_path / "x.pt").exists()


def test_a_damaged_sidecar_is_one_line_naming_the_command_that_rewrites_it(tmp_path: Path) -> None:
    run = RunFolder(shutil.copytree(LEGACY / "ae-gmm", tmp_path / "run"))
    run.sampler.write_bytes(run.sampler.read_bytes()[:100])  # cut short
    with pytest.raises(UserError) as info:
        sampler_file.read(run.sampler)
    assert "\n" not in str(info.value) and f"flexae fit-sampler {run.path}" in str(info.value)

"""Safe loading: a checkpoint that would run code is refused before any of it runs; checkpoints from a
newer flexae, or with a garbled layout, get a one-line message instead of a traceback."""

from __future__ import annotations

import builtins
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from flexae.cli import cli, main
from flexae.config import ModelConfig, RunConfig, TrainConfig
from flexae.errors import UserError
from flexae.registry import build_model
from flexae.app.load import load_run
from flexae.runs.checkpoint import (UnsafeCheckpointError, load_checkpoint, rng_state, save_checkpoint,
                                        versions)


def _state() -> dict:
    """The state a real run saves (untrained weights are enough to load and sample)."""
    cfg = RunConfig(ModelConfig(name="flexae", latent_dim=2), train=TrainConfig(dataset="synthetic-2d"))
    model = build_model(cfg.model, (128,))
    return {"config": cfg.to_dict(), "step": 5, "model": model.state_dict(),
            "optimizers": {"ae": torch.optim.Adam(model.parameters()).state_dict()},
            "rng": rng_state(), "versions": versions()}


class SystemPayload:
    """Unpickling this calls os.system: the classic hostile-checkpoint payload."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


class ExecPayload:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return builtins.exec, (f"open({str(self.marker)!r}, 'w').close()",)


def _plant(run: Path, kind: str, marker: Path) -> None:
    """Write a hostile checkpoint.pt that looks like a real one except for one entry."""
    run.mkdir(parents=True, exist_ok=True)
    state = _state()
    if kind == "zip-system":  # torch's own zip format, payload in place of the weights
        state["model"] = SystemPayload(marker)
        torch.save(state, run / "checkpoint.pt")
    elif kind == "zip-exec-in-versions":  # hidden in a small entry
        state["versions"] = ExecPayload(marker)
        torch.save(state, run / "checkpoint.pt")
    elif kind == "raw-pickle":  # a bare pickle stream, as older torch versions wrote
        (run / "checkpoint.pt").write_bytes(pickle.dumps({"config": {}, "model": SystemPayload(marker)}))
    else:
        raise ValueError(kind)


KINDS = ["zip-system", "zip-exec-in-versions", "raw-pickle"]


def _payload_is_live(tmp_path: Path, kind: str) -> bool:
    """The same payload, loaded the unsafe way, does run (so a refusal is not a broken payload)."""
    probe, marker = tmp_path / "probe", tmp_path / "probe-marker"
    _plant(probe, kind, marker)
    try:
        torch.load(probe / "checkpoint.pt", weights_only=False)
    except Exception:
        pass  # the raw pickle runs its payload, then fails torch's format check
    return marker.exists()


def _run_cli(capsys, *args: str) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exit_info:
        main([*args])
    return exit_info.value.code, capsys.readouterr().err


@pytest.mark.parametrize("kind", KINDS)
def test_hostile_checkpoint_is_refused_without_running(tmp_path, capsys, kind):
    marker = tmp_path / "PWNED"
    run = tmp_path / "run"
    _plant(run, kind, marker)
    with pytest.raises(UnsafeCheckpointError, match="refused to load") as info:
        load_run(run)
    assert "\n" not in str(info.value) and "nothing in the file was run" in str(info.value)

    code, err = _run_cli(capsys, "train", "--resume", str(run), "--quiet")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "refused to load" in err, err
    if "sample" in cli.commands:  # the sample command of the image-usage work, when present
        code, err = _run_cli(capsys, "sample", str(run), "--out", str(tmp_path / "s.png"))
        assert code == 2 and "refused to load" in err, err
    assert not marker.exists(), "the payload ran"
    assert _payload_is_live(tmp_path, kind), "the planted payload would not have run anyway"


def test_hostile_checkpoint_refused_by_the_installed_command(tmp_path):
    """The same through a separate process, as a user runs it: one line, exit 2, no marker."""
    marker = tmp_path / "PWNED"
    run = tmp_path / "run"
    _plant(run, "zip-system", marker)
    proc = subprocess.run([sys.executable, "-m", "flexae", "train", "--resume", str(run), "--quiet"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "refused to load" in lines[0] and "posix.system" in lines[0], proc.stderr
    assert not marker.exists()


def _save_raw(run: Path, state: dict) -> Path:
    """Write a state dict as is (plain data, loadable), bypassing flexae's own checks."""
    run.mkdir(parents=True, exist_ok=True)
    torch.save(state, run / "checkpoint.pt")
    return run


@pytest.mark.parametrize("change, message", [
    (lambda s: s.update(versions={"flexae": "99.1.0", "torch": "9", "python": "3"}),
     "written by flexae 99.1.0, a newer major version"),
    (lambda s: s.pop("versions"), "missing or garbled 'versions' entry"),
    (lambda s: s.update(versions="0.1.0"), "missing or garbled 'versions' entry"),
    (lambda s: s.update(versions={"flexae": "banana"}), "missing or garbled 'versions' entry"),
    (lambda s: s.update(step="ten"), "garbled step"),
    (lambda s: s.update(model=[1, 2, 3]), "garbled model weights"),
    (lambda s: s.pop("rng"), "lacks rng"),
    (lambda s: s["config"]["train"].update(no_such_field=1), "does not fit this flexae"),
    (lambda s: s["model"].update({"encoder.0.weight": torch.zeros(3, 3)}), "do not fit the model"),
    (lambda s: s.clear(), "lacks config"),
])
def test_bad_checkpoints_give_one_line_errors(tmp_path, capsys, change, message):
    state = _state()
    change(state)
    run = _save_raw(tmp_path / "run", state)
    with pytest.raises(UserError, match=message) as info:
        load_run(run)
    assert "\n" not in str(info.value)


def test_newer_major_version_is_refused_by_resume(tmp_path, capsys):
    state = _state()
    state["versions"]["flexae"] = "7.0.0"
    run = _save_raw(tmp_path / "run", state)
    code, err = _run_cli(capsys, "train", "--resume", str(run), "--quiet")
    assert code == 2 and "newer major version" in err and "upgrade flexae" in err


def test_same_major_version_loads(tmp_path):
    state = _state()
    major = versions()["flexae"].split(".")[0]
    state["versions"]["flexae"] = f"{major}.999.0"
    model, cfg = load_run(_save_raw(tmp_path / "run", state))
    assert cfg.model.latent_dim == 2 and model.generate(3).shape == (3, 128)


def test_checkpoint_holds_only_tensors_and_plain_data(tmp_path):
    """What flexae saves loads with weights_only=True and contains nothing but plain types."""
    save_checkpoint(tmp_path / "checkpoint.pt", _state())
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)

    def plain(x) -> bool:
        if isinstance(x, dict):
            return all(isinstance(k, (str, int)) and plain(v) for k, v in x.items())
        if isinstance(x, (list, tuple)):
            return all(plain(v) for v in x)
        return x is None or isinstance(x, (bool, int, float, str, torch.Tensor))

    assert plain(state)
    assert load_checkpoint(tmp_path / "checkpoint.pt")["step"] == 5


def test_non_finite_weights_are_never_saved(tmp_path):
    good = _state()
    save_checkpoint(tmp_path / "checkpoint.pt", good)
    before = (tmp_path / "checkpoint.pt").read_bytes()
    bad = _state()
    next(iter(bad["model"].values())).view(-1)[0] = float("nan")
    with pytest.raises(UserError, match="refused to save .* holds NaN or infinity"):
        save_checkpoint(tmp_path / "checkpoint.pt", bad)
    assert (tmp_path / "checkpoint.pt").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]  # no temporary left


# --- published weights (safetensors) -------------------------------------------------------------

def test_export_round_trip_and_checks(tmp_path, capsys):
    from safetensors.torch import save_file

    run = _save_raw(tmp_path / "run", _state())
    out = tmp_path / "model.safetensors"
    main_args = ["export", str(run), "--out", str(out), "--with-critics"]  # every weight
    main(main_args)  # returns on success (errors exit with status 2)
    exported, cfg = load_run(out)
    original, _ = load_run(run)
    for (name, a), b in zip(exported.state_dict().items(), original.state_dict().values()):
        assert torch.equal(a, b), name
    assert cfg.model.latent_dim == 2 and not exported.training

    code, err = _run_cli(capsys, *main_args)  # no silent overwrite
    assert code == 2 and "pass --overwrite" in err

    weights = {k: v.contiguous() for k, v in original.state_dict().items()}
    for metadata, message in [
        (None, "is not a flexae model file"),
        ({"format": "flexae-model", "config": "{not json", "versions": "{}", "step": "1"}, "garbled flexae metadata"),
        ({"format": "flexae-model", "config": "{}", "versions": '{"flexae": "42.0"}', "step": "1"},
         "newer major version"),
    ]:
        bad = tmp_path / "bad.safetensors"
        save_file(weights, bad, metadata)
        with pytest.raises(UserError, match=message):
            load_run(bad)

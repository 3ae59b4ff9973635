"""Image runs evaluated while they train (train.eval_images): FID and KID logged every
eval_every iterations, best.pt kept and usable wherever a run is given."""

import json
import shutil
from pathlib import Path

import pytest
import torch

from conftest import SHARED_DATA

from flexae.cli import main
from flexae.config import ModelConfig, OptimConfig, RunConfig, TrainConfig
from flexae.errors import UserError
from flexae.app.load import load_run
from flexae.runs.checkpoint import load_checkpoint
from flexae.runs.log import read_log
from flexae.app.train import resume, train


def _metric_records(run: Path) -> list[dict]:
    return [r for r in read_log(run) if r.get("kind") == "metrics"]


@pytest.fixture(scope="module")
def evaluated_run(tmp_path_factory) -> Path:
    if not (SHARED_DATA / "mnist").is_dir():
        pytest.skip(f"shared data folder not found at {SHARED_DATA}")
    cfg = RunConfig(ModelConfig(name="wae", latent_dim=8), OptimConfig(critic_steps=1),
                    TrainConfig(dataset="mnist", steps=4, batch_size=8, log_every=1, eval_every=2, eval_images=12,
                                grid_every=0, device="cpu", data_dir=str(SHARED_DATA)))
    return train(cfg, tmp_path_factory.mktemp("eval") / "wae", progress=False)


def test_fid_and_kid_are_logged_and_the_best_checkpoint_kept(evaluated_run):
    records = _metric_records(evaluated_run)
    assert [r["step"] for r in records] == [2, 4]
    assert all(r["fid"] > 0 and "kid" in r and r["kid_std"] >= 0 for r in records)
    best = min(records, key=lambda r: r["fid"])
    state = load_checkpoint(evaluated_run / "best.pt")
    assert state["step"] == best["step"] and state["best"]["value"] == pytest.approx(best["fid"])
    final = json.loads((evaluated_run / "metrics.json").read_text())
    assert final["fid"] == pytest.approx(records[-1]["fid"])


def test_best_is_usable_wherever_a_run_is_given(evaluated_run, tmp_path, capsys):
    best_step = load_checkpoint(evaluated_run / "best.pt")["step"]
    model, _ = load_run(evaluated_run, checkpoint="best")
    same, _ = load_run(evaluated_run / "best.pt")
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), same.state_dict().values()))
    main(["sample", str(evaluated_run / "best.pt"), "--out", str(tmp_path / "best.npz"), "-n", "4"])
    main(["export", str(evaluated_run / "best.pt"), "--out", str(tmp_path / "best.safetensors")])
    exported, _ = load_run(tmp_path / "best.safetensors")
    assert torch.equal(exported.generate(2, torch.Generator().manual_seed(0)),
                       model.generate(2, torch.Generator().manual_seed(0)))
    assert best_step in (2, 4) and "wrote" in capsys.readouterr().out


def test_resume_keeps_the_best_so_far(evaluated_run, tmp_path):
    run = Path(shutil.copytree(evaluated_run, tmp_path / "run"))
    resume(run, steps=6, progress=False)
    records = _metric_records(run)
    assert [r["step"] for r in records] == [2, 4, 6]
    best = min(records, key=lambda r: r["fid"])  # over the whole run, across the resume
    assert load_checkpoint(run / "best.pt")["step"] == best["step"]


def test_no_best_without_evaluation(tmp_path):
    (tmp_path / "run").mkdir()
    with pytest.raises(UserError, match="has no best.pt"):
        load_run(tmp_path / "run", checkpoint="best")

"""Publishing a trained model as a folder (`flexae export --format folder`): it loads with
`flexae.from_pretrained` in a fresh process and generates the images the run generates, for a
model with a learned prior (FlexAE) and one with an ex-post sampler (ae-gmm); any file replaced
by a pickle is refused without running it; the Hub needs its optional package."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import flexae
from flexae.app.load import load_run
from flexae.cli import cli
from flexae.errors import UserError
from flexae.inference import sample

SRC = Path(__file__).resolve().parents[1] / "src"


def _image_run(tmp_path: Path, model: str, *extra: str) -> Path:
    rng = np.random.default_rng(0)
    data = tmp_path / "digits.npy"
    if not data.exists():
        np.save(data, rng.integers(0, 256, (24, 28, 28), dtype=np.uint8))
    run = tmp_path / model
    result = CliRunner().invoke(cli, ["train", "--model", model, "--dataset", f"npy:{data}", "--steps", "2",
                                      "--batch-size", "4", "--latent-dim", "4", "--out", str(run), "--quiet",
                                      "--set", "train.grid_every=0", *extra], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return run


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("pretrained")
    return {"flexae": _image_run(tmp, "flexae"),
            "ae-gmm": _image_run(tmp, "ae-gmm", "--set", "model.options.expost_gmm_components=2")}


def _export(run: Path, out: Path, *extra: str) -> Path:
    result = CliRunner().invoke(cli, ["export", str(run), "--format", "folder", "--out", str(out), *extra],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return out


@pytest.mark.parametrize("model", ["flexae", "ae-gmm"])
def test_an_exported_folder_generates_the_runs_images_in_a_fresh_process(runs, model, tmp_path: Path) -> None:
    folder = _export(runs[model], tmp_path / "published")
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json", "eval.json", "model.safetensors",
                                                        "prior.safetensors"]
    card = (folder / "README.md").read_text()
    assert "FlexAE: Flexibly Learning Latent Priors" in card and f"--model {model}" in card
    run_model, _ = load_run(runs[model])
    expected = sample(run_model, 6, seed=3)
    script = ("import sys, torch, flexae\n"
              "model = flexae.from_pretrained(sys.argv[1])\n"
              "torch.save(flexae.sample(model, 6, seed=3), sys.argv[2])\n")
    done = subprocess.run([sys.executable, "-c", script, str(folder), str(tmp_path / "images.pt")],
                          capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(SRC)})
    assert done.returncode == 0, done.stderr
    fresh = torch.load(tmp_path / "images.pt", weights_only=True)
    assert fresh.shape == expected.shape
    assert torch.allclose(fresh, expected, atol=1e-5)  # round-off of another process's thread split at most
    # The folder is also a model for every command that takes a run (load_run, flexae sample).
    same, _ = load_run(folder)
    assert torch.equal(sample(same, 6, seed=3), sample(flexae.from_pretrained(folder), 6, seed=3))


def test_a_fitted_prior_is_published_by_name_with_its_evaluation(runs, tmp_path: Path) -> None:
    run = runs["ae-gmm"]
    result = CliRunner().invoke(cli, ["fit-prior", str(run), "--kind", "flow-matching", "--steps", "3",
                                      "--width", "8", "--ode-steps", "2", "--quiet"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    (run / "eval.json").write_text(json.dumps({"prior": "flow-matching", "n": 8, "seed": 0, "resize": "pytorch-fid",
                                               "fid": {"gen": 123.0}, "step": 2}))
    folder = _export(run, tmp_path / "fm", "--prior", "flow-matching")
    config = json.loads((folder / "config.json").read_text())
    assert config["prior"]["kind"] == "flow-matching" and config["prior"]["settings"]["ode_steps"] == 2
    evaluations = json.loads((folder / "eval.json").read_text())["evaluations"]
    assert evaluations[0]["results"]["fid"]["gen"] == 123.0 and "--prior flow-matching" in evaluations[0]["command"]
    assert "FID gen 123.00" in (folder / "README.md").read_text()
    model, _ = load_run(run, prior="flow-matching")
    assert torch.equal(sample(flexae.from_pretrained(folder), 4, seed=1), sample(model, 4, seed=1))
    with pytest.raises(UserError, match="holds the prior 'flow-matching', not prior='own'"):
        load_run(folder)


def test_a_pickle_planted_in_any_file_of_the_folder_is_refused(runs, tmp_path: Path) -> None:
    folder = _export(runs["flexae"], tmp_path / "published")
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    for path in sorted(folder.iterdir()):
        good = path.read_bytes()
        path.write_bytes(pickle.dumps(Payload()))
        with pytest.raises(UserError) as caught:
            flexae.from_pretrained(folder)
        assert "\n" not in str(caught.value) and (path.name in str(caught.value) or "config.json" in str(caught.value))
        path.write_bytes(good)
    assert not marker.exists()
    flexae.from_pretrained(folder)  # restored: loads again


def test_the_hub_without_huggingface_hub_is_a_one_line_error(runs, tmp_path: Path) -> None:
    try:
        import huggingface_hub  # noqa: F401
        pytest.skip("huggingface_hub is installed (the error is for its absence; nothing downloads in tests)")
    except ImportError:
        pass
    with pytest.raises(UserError, match=r"needs the optional package huggingface_hub: pip install 'flexae\[hub\]'"):
        flexae.from_pretrained("someone/some-model")
    result = CliRunner().invoke(cli, ["push", str(runs["flexae"]), "--repo-id", "someone/some-model"])
    assert isinstance(result.exception, UserError) and "huggingface_hub" in str(result.exception)
    with pytest.raises(UserError, match="neither a folder nor a Hub repository id"):
        flexae.from_pretrained(str(tmp_path / "missing" / "deep" / "path"))
    with pytest.raises(UserError, match="is not empty; pass --overwrite"):
        (tmp_path / "full").mkdir()
        (tmp_path / "full" / "x").write_text("x")
        from flexae.app.pretrained import export_folder
        export_folder(runs["flexae"], tmp_path / "full")

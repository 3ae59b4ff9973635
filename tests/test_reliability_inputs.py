"""Validated inputs (every flag and config value checked up front, one-line errors) and reproducibility
(`--seed` makes CPU runs bit-identical; the run folder records versions and the full config)."""

from __future__ import annotations

import json
import platform
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import flexae
from flexae.cli import main
from flexae.config import Adam, ModelConfig, OptimConfig, RunConfig, TrainConfig
from flexae.errors import UserError
from flexae.validation import apply_override, parse_value, validate_config


def _cli(capsys, *args: object) -> tuple[int, str]:
    """Exit code and stderr of the command line, run in this process."""
    try:
        main([*map(str, args)])
        code = 0
    except SystemExit as exit_info:
        code = exit_info.code
    return code, capsys.readouterr().err.strip()


@pytest.mark.parametrize("args, message", [
    (["--set", "optim.gen=3"], "optim.gen is a section; set one of its fields, e.g. optim.gen.lr="),
    (["--set", "train=5"], "train is a section"),
    (["--set", "nothing"], "--set takes KEY=VALUE"),
    (["--set", "optim.gen.lr=inf"], "optim.gen.lr must be a finite number"),
    (["--set", "optim.gen.lr=nan"], "optim.gen.lr must be a finite number"),
    (["--set", "optim.critic.lr=-1e-4"], "optim.critic.lr must be positive"),
    (["--set", "optim.gen.beta1=1"], "optim.gen betas must lie in [0, 1)"),
    (["--set", "train.steps=1.5"], "cannot read '1.5' as a value for train.steps (expected an integer)"),
    (["--set", "train.eval_every=-1"], "train.eval_every must be >= 0"),
    (["--set", "train.checkpoint_every=0"], "train.checkpoint_every must be positive"),
    (["--set", "model.bn_momentum=2"], "model.bn_momentum must lie in [0, 1]"),
    (["--set", "model.gmm_std=0"], "model.gmm_std must be positive"),
    (["--set", "model.decoder_variant=big"], "unknown decoder variant 'big'"),
    (["--set", "model.gmm_layout=ring"], "unknown gmm layout 'ring'; choose from circle, supplement"),
    (["--set", "optim.feed=both"], "unknown feed 'both'"),
    (["--set", "train.data_seed=-2"], "train.data_seed must lie in [0, "),
    (["--seed", "-1"], "train.seed must lie in [0, 9223372036854775807], got -1"),
    (["--seed", str(2**64)], "train.seed must lie in [0, "),
    (["--steps", "-5"], "train.steps must be positive"),
    (["--batch-size", "100000000"], "train.batch_size must be at most"),
    (["--latent-dim", "1000000"], "model.latent_dim must be at most"),
    (["--noise-dim", "0"], "model.noise_dim must be positive"),
    (["--device", "gpu"], "unknown device 'gpu'; use auto, cpu, cuda, cuda:N or mps"),
    (["--precision", "fp8"], "'fp8' is not one of 'fp32', 'bf16', 'fp16'"),
    (["--data-dir", "/definitely/not/here"], "--data-dir /definitely/not/here is not an existing folder"),
])
def test_bad_values_are_refused_before_anything_runs(tmp_path, capsys, args, message):
    code, err = _cli(capsys, "train", "--out", tmp_path / "run", "--steps", "2", "--quiet", *args)
    assert code == 2 and len(err.splitlines()) == 1 and message in err, err
    assert not (tmp_path / "run").exists(), "a run folder was created for a refused command"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message of a machine without CUDA")
def test_unavailable_device_is_named(tmp_path, capsys):
    code, err = _cli(capsys, "train", "--out", tmp_path / "run", "--device", "cuda:1", "--quiet")
    assert code == 2 and "'cuda:1' requested but CUDA is not available" in err


def test_paths_are_checked(tmp_path, capsys):
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    code, err = _cli(capsys, "train", "--out", a_file, "--quiet")
    assert code == 2 and f"run folder {a_file} exists and is not a folder" in err
    code, err = _cli(capsys, "train", "--out", a_file / "run", "--quiet")
    assert code == 2 and f"{a_file} is not a folder" in err
    code, err = _cli(capsys, "train", "--resume", a_file, "--quiet")
    assert code == 2 and "--resume takes the run folder, not a file" in err
    code, err = _cli(capsys, "train", "--resume", tmp_path / "absent", "--quiet")
    assert code == 2 and "does not exist" in err


def test_resume_refuses_flags_it_would_ignore_and_fewer_steps(tmp_path, capsys):
    run = tmp_path / "run"
    code, err = _cli(capsys, "train", "--latent-dim", "4", "--steps", "3", "--out", run, "--quiet",
                     "--set", "train.eval_every=0", "--set", "train.eval_samples=20")
    assert code == 0, err
    for flag in (["--seed", "4"], ["--model", "wae"], ["--set", "optim.ae.lr=1"], ["--batch-size", "8"]):
        code, err = _cli(capsys, "train", "--resume", run, *flag)
        assert code == 2 and f"{flag[0]} cannot be combined with --resume" in err, err
    code, err = _cli(capsys, "train", "--resume", run, "--steps", "2", "--quiet")
    assert code == 2 and "already at step 3; --steps counts all iterations, so give at least 3" in err


@pytest.mark.parametrize("cfg, message", [
    (RunConfig(train=TrainConfig(steps="100")), "train.steps must be an integer, got '100'"),
    (RunConfig(train=TrainConfig(steps=True)), "train.steps must be an integer, got True"),
    (RunConfig(ModelConfig(latent_dim=2.5)), "model.latent_dim must be an integer"),
    (RunConfig(ModelConfig(noise_dim="4")), "model.noise_dim must be an integer or None"),
    (RunConfig(optim=OptimConfig(gen=Adam(float("inf"), 0.5, 0.9))), "optim.gen.lr must be a finite number"),
    (RunConfig(optim=OptimConfig(gen={"lr": 1e-4})), "optim.gen must be a section of settings"),
    (RunConfig(ModelConfig(name="flexae-sr")), "flexae-sr needs image data"),
    (RunConfig(train=TrainConfig(dataset="imagenet")), "unknown data set 'imagenet'"),
])
def test_python_api_configs_are_validated(cfg, message):
    with pytest.raises(UserError, match=re.escape(message)):
        validate_config(cfg)


def test_typed_override_parsing():
    cfg = RunConfig()
    apply_override(cfg, "train.steps=1e3")           # an integral float is read as an integer
    apply_override(cfg, "model.noise_dim=none")
    apply_override(cfg, "optim.gen.lr=2e-4")
    apply_override(cfg, "train.device=cpu")
    assert (cfg.train.steps, cfg.model.noise_dim, cfg.optim.gen.lr) == (1000, None, 2e-4)
    assert isinstance(cfg.train.steps, int) and cfg.train.device == "cpu"
    assert parse_value("yes", bool, "k") is True and parse_value("Off", bool, "k") is False
    with pytest.raises(UserError, match="cannot read 'maybe' as a value for k"):
        parse_value("maybe", bool, "k")
    with pytest.raises(UserError, match="unknown config key 'optim.gen.momentum'; known here: optim.gen.lr"):
        apply_override(cfg, "optim.gen.momentum=0.9")
    validate_config(cfg)


# --- reproducibility ----------------------------------------------------------------------------

TINY = ["--latent-dim", "4", "--steps", "6", "--quiet", "--set", "train.eval_every=0",
        "--set", "train.eval_samples=20", "--set", "train.checkpoint_every=3"]


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return torch.load(run / "checkpoint.pt", weights_only=True)["model"]


def test_seed_makes_cpu_runs_bit_identical_and_the_folder_records_everything(tmp_path, capsys):
    # One run in a separate process, two in this one: the seed alone decides the result.
    proc = subprocess.run([sys.executable, "-m", "flexae", "train", "--seed", "5", "--out", tmp_path / "a",
                           "--device", "cpu", *TINY], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    for name, seed in (("b", 5), ("c", 6)):
        code, err = _cli(capsys, "train", "--seed", seed, "--out", tmp_path / name, "--device", "cpu", *TINY)
        assert code == 0, err
    a, b, c = (_weights(tmp_path / n) for n in "abc")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a if a[k].is_floating_point())

    config = json.loads((tmp_path / "a" / "config.json").read_text())
    assert config["versions"] == {"flexae": flexae.__version__, "torch": str(torch.__version__),
                                  "python": platform.python_version()}
    checkpoint = torch.load(tmp_path / "a" / "checkpoint.pt", weights_only=True)
    recorded = {k: v for k, v in config.items() if k not in ("versions", "device", "processes")}
    assert recorded == checkpoint["config"]  # the full resolved config, also inside the checkpoint
    assert RunConfig.from_dict(recorded).to_dict() == recorded
    assert recorded["train"]["seed"] == 5 and recorded["model"]["latent_dim"] == 4
    assert checkpoint["versions"] == config["versions"]


# --- declared ranges, settings a model reads, empty paths (issue 25, item 8) ----------------------

@pytest.mark.parametrize("args, message", [
    (["--model", "wae-gmm", "--set", "model.gmm_components=100000000"], "model.gmm_components must be at most 10000"),
    (["--set", "train.log_every=1e18"], "train.log_every must be at most 1000000000"),
    (["--set", "model.bn_eps=1e-320"], "model.bn_eps must be >= 1e-10, got 1e-320"),
    (["--model", "wae-gmm", "--set", "model.gmm_std=1e-320"], "model.gmm_std must be >= 1e-06"),
    (["--set", "train.cpu_threads=100000"], "train.cpu_threads must be at most"),
    (["--set", f"train.cpu_threads={40 * (__import__('os').cpu_count() or 1)}"], "per CPU of this machine"),
    (["--set", "train.eval_samples=100000000"], "train.eval_samples must be at most 100000"),
    (["--set", "optim.critic_steps=100000"], "optim.critic_steps must be at most 1000"),
    (["--model", "vq-vae", "--set", "model.options.vq_codebook_size=0"],
     "model.options.vq_codebook_size must be positive, got 0"),
    # the spelling of before issue 20, model.baseline.X, is an alias of model.options.X
    (["--model", "wae-mmd", "--set", "model.baseline.mmd_weight=1e300"], "model.options.mmd_weight must be at most"),
    (["--set", "model.options.vq_codebook_size=16"], "model 'flexae' has no settings of its own (a setting of: vq-vae)"),
    (["--model", "wae", "--set", "model.gmm_std=2"], "wae does not read model.gmm_std (read by: wae-gmm)"),
    (["--model", "ae-gmm", "--set", "model.options.mmd_weight=3"],
     "model 'ae-gmm' has no setting model.options.mmd_weight; its settings: expost_gmm_components, "
     "sampler_fit_points (a setting of: wae-mmd)"),
    (["--resume", ""], "--resume is empty"),
    (["--data-dir", ""], "--data-dir is empty"),
    (["--dataset", "folder:"], "--dataset folder: needs a path after the colon"),
    (["--dataset", "npz: "], "needs a path after the colon"),
])
def test_absurd_values_unread_settings_and_empty_paths_are_refused(tmp_path, capsys, args, message):
    out = [] if "--resume" in args else ["--out", tmp_path / "run"]
    code, err = _cli(capsys, "train", *out, "--steps", "2", "--quiet", *args)
    assert code == 2 and len(err.splitlines()) == 1 and message in err, err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("command", [["sample", "", "--out", "x.npz"], ["export", "", "--out", "m.safetensors"],
                                     ["fit-sampler", ""], ["fit-prior", ""], ["eval", ""], ["report", ""]])
def test_empty_run_folder_is_refused_everywhere(tmp_path, capsys, monkeypatch, command):
    monkeypatch.chdir(tmp_path)  # '' would otherwise mean this folder
    code, err = _cli(capsys, *command)
    assert code == 2 and len(err.splitlines()) == 1 and "is empty" in err, err


def test_every_numeric_field_has_a_declared_range_and_every_default_passes():
    from flexae.ranges import check_ranges, numeric_fields, range_of
    from flexae.registry import COMMON_MODEL_SETTINGS, MODELS

    cfg = RunConfig()
    keys = [key for key, _ in numeric_fields(cfg)]
    assert len(keys) > 30 and not [k for k in keys if range_of(k) is None]  # the models' own: the next test
    check_ranges(cfg)  # the defaults
    validate_config(cfg, check_device=False)
    model_fields = {key[len("model."):] for key in _all_keys(cfg) if key.startswith("model.")}
    for name, entry in MODELS.items():  # each model's declared settings are fields of ModelConfig
        assert entry.settings is None or set(entry.settings) <= model_fields, name
        assert set(COMMON_MODEL_SETTINGS) <= model_fields


def test_every_numeric_setting_of_a_built_in_model_declares_its_range_and_its_default_passes():
    import dataclasses
    from flexae.ranges import Range, check_options, numeric_fields
    from flexae.registry import BUILT_IN, options_type

    for name in BUILT_IN:
        kind = options_type(name)
        if kind is None:
            continue
        declared = {f.name for f in dataclasses.fields(kind) if isinstance(f.metadata.get("range"), Range)}
        assert {key for key, _ in numeric_fields(kind())} <= declared, name
        check_options(kind())


def _all_keys(node, prefix=""):
    import dataclasses
    for f in dataclasses.fields(node):
        value = getattr(node, f.name)
        if dataclasses.is_dataclass(value):
            yield from _all_keys(value, f"{prefix}{f.name}.")
        else:
            yield f"{prefix}{f.name}"


def test_ranges_guard_models_built_in_python():
    from flexae.registry import build_model

    cfg = ModelConfig(name="vq-vae", latent_dim=4, options={"vq_prior_layers": 10**6})
    with pytest.raises(UserError, match="model.options.vq_prior_layers must be at most 1000"):
        build_model(cfg, (1, 28, 28))

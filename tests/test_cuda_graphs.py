"""CUDA-graph training (flexae.training.graphs): the setting, the fallback, and checkpoints whose
optimizer flags come from another kind of run, on the CPU; capture and replay themselves in the
tests marked `cuda`, which run only where CUDA is present (benchmarks/gpu.sh runs them)."""

from __future__ import annotations

import warnings

import pytest
import torch

from flexae.bench import random_dataset
from flexae.config import ModelConfig, OptimConfig, RunConfig, TrainConfig
from flexae.data import RandomBatches
from flexae.errors import UserError
from flexae.registry import build_model, make_trainer, model_names, spec
from flexae.runs.checkpoint import load_checkpoint, save_checkpoint
from flexae.runs.layout import CHECKPOINT_NAME
from flexae.training.graphs import GraphedTrainer, cuda_graphs_reason, make_capturable, maybe_graphed
from flexae.app.train import Run, resume, train
from flexae.training.precision import set_tf32
from flexae.training.steps import load_optimizer_state
from flexae.validation import validate_config

CUDA = torch.device("cuda")  # a device object only: nothing here runs on it without CUDA
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _trainer(name: str, dataset: str = "synthetic-5d"):
    data = random_dataset(dataset, 64)
    model = build_model(ModelConfig(name=name, latent_dim=5 if dataset.startswith("synthetic") else 8), data.shape)
    return make_trainer(model, OptimConfig(critic_steps=1), RandomBatches(data.train, 8))


def _cfg(steps: int = 6, device: str = "cpu", model: str = "flexae", **train) -> RunConfig:
    return RunConfig(ModelConfig(name=model, latent_dim=5),
                     train=TrainConfig(dataset="synthetic-5d", steps=steps, batch_size=16, device=device,
                                       log_every=1, eval_every=0, checkpoint_every=3, **train))


# -- the setting ---------------------------------------------------------------------------------

def test_auto_is_off_silently_on_the_cpu_and_on_is_refused_there():
    trainer = _trainer("flexae")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning for the CPU default
        assert cuda_graphs_reason("auto", torch.device("cpu"), trainer) == "off"
        assert maybe_graphed(trainer, "auto", torch.device("cpu"), "flexae") is trainer
    assert cuda_graphs_reason("off", CUDA, trainer) == "off"
    with pytest.raises(UserError, match="needs a CUDA device"):
        cuda_graphs_reason("on", torch.device("cpu"), trainer)


def test_the_paper_models_are_graphed_on_cuda_and_mask_aae_says_why_not():
    """Every trainer either declares itself capturable or gives the reason its iteration needs the
    host; of the models flexae trains, MaskAAE and WAE-GAN do (their schedules follow the step count)."""
    unsafe = {}
    for name in model_names():
        dataset = "mnist" if spec(name).images_only else "synthetic-5d"
        reason = cuda_graphs_reason("auto", CUDA, _trainer(name, dataset))
        if reason is not None:
            unsafe[name] = reason
    assert set(unsafe) == {"mask-aae", "wae-gan"}
    assert "iteration count" in unsafe["mask-aae"] and "iteration count" in unsafe["wae-gan"]


def test_an_uncapturable_trainer_warns_once_and_trains_eagerly():
    trainer = _trainer("mask-aae", "mnist")
    with pytest.warns(UserWarning, match="CUDA graphs off for mask-aae: its learning rates"):
        assert maybe_graphed(trainer, "auto", CUDA, "mask-aae") is trainer


def test_the_config_refuses_an_unknown_cuda_graphs_value():
    cfg = _cfg()
    cfg.train.cuda_graphs = "sometimes"
    with pytest.raises(UserError, match="unknown cuda_graphs 'sometimes'; choose from auto, on, off"):
        validate_config(cfg)


def test_tf32_switches_are_set_both_ways_on_cuda_and_left_alone_elsewhere():
    matmul = torch.backends.cuda.matmul
    if not hasattr(matmul, "fp32_precision"):
        pytest.skip("torch < 2.9 has only the allow_tf32 flags")
    before = (matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision)
    try:
        set_tf32(True, CUDA)
        assert (matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision) == ("tf32", "tf32")
        set_tf32(False, CUDA)  # also cuDNN, which PyTorch lets use TF32 by default
        assert (matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision) == ("ieee", "ieee")
        set_tf32(True, torch.device("cpu"))
        assert matmul.fp32_precision == "ieee"
    finally:
        matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision = before


# -- optimizer states across kinds of run ----------------------------------------------------------

def _stepped_adam(fused: bool) -> tuple[torch.optim.Adam, torch.nn.Linear]:
    net = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2, fused=fused, foreach=None if fused else True)
    for _ in range(3):
        opt.zero_grad()
        net(torch.randn(4, 3)).square().sum().backward()
        opt.step()
    return opt, net


@pytest.mark.parametrize("fused", [False, True])
def test_a_capturable_state_dict_loads_into_a_cpu_optimizer_with_its_own_flags(fused):
    """What a graphed CUDA run saves (capturable and fused groups, step counters as float32
    tensors) loads into a CPU optimizer, which keeps its own flags and steps on."""
    source, _ = _stepped_adam(fused=True)
    state = source.state_dict()
    for group in state["param_groups"]:
        group.update(capturable=True, fused=True, foreach=None)
    target, net = _stepped_adam(fused=fused)
    load_optimizer_state(target, state)
    group = target.param_groups[0]
    assert group["capturable"] is False and bool(group["fused"]) is fused
    steps = [s["step"] for s in target.state.values()]
    assert all(s.device.type == "cpu" and s.dtype == torch.float32 and float(s) == 3.0 for s in steps)
    target.zero_grad()
    net(torch.randn(4, 3)).square().sum().backward()
    target.step()  # raised "capturable=True ... must be on supported devices" before the flags were kept
    assert all(float(s["step"]) == 4.0 for s in target.state.values())


def test_make_capturable_marks_every_group():
    trainer = _trainer("flexae-sr", "mnist")
    make_capturable(trainer.optimizers)
    assert all(g["capturable"] for o in trainer.optimizers.values() for g in o.param_groups)


def test_a_checkpoint_with_capturable_flags_resumes_on_the_cpu_exactly(tmp_path):
    """A run whose checkpoint says capturable and cuda_graphs=on (as a graphed GPU run's may)
    resumes on the CPU and ends bit for bit where an uninterrupted CPU run ends: the flags of the
    saving process change nothing that is computed."""
    whole = train(_cfg(steps=6), tmp_path / "whole", progress=False)
    part = train(_cfg(steps=3), tmp_path / "part", progress=False)
    path = part / CHECKPOINT_NAME
    state = load_checkpoint(path)
    for opt_state in state["optimizers"].values():
        for group in opt_state["param_groups"]:
            group["capturable"] = True
    state["config"]["train"]["cuda_graphs"] = "on"  # as a run started with graphs forced on says
    save_checkpoint(path, state)
    resume(part, steps=6, progress=False)
    a, b = load_checkpoint(whole / CHECKPOINT_NAME), load_checkpoint(path)
    for name, tensor in a["model"].items():
        assert torch.equal(tensor, b["model"][name]), name
    flags = [g["capturable"] for o in b["optimizers"].values() for g in o["param_groups"]]
    assert flags and not any(flags)  # the CPU run saved its own flags


# -- on a CUDA device ------------------------------------------------------------------------------

def _losses(run: Run, steps: int) -> list[dict[str, float]]:
    out = []
    for _ in range(steps):
        logs = run.trainer.step()
        out.append({k: float(v) for k, v in logs.items()})
    return out


@cuda
@pytest.mark.parametrize("model", ["flexae-sr", "wae"])
def test_graphed_iterations_compute_what_eager_ones_do(tmp_path, model):
    """Same seed, same data: 8 graphed iterations (3 warm-up, 1 captured, 4 replayed) give the
    losses and weights of 8 eager ones."""
    results = {}
    for setting in ("off", "on"):
        cfg = RunConfig(ModelConfig(name=model, latent_dim=8),
                        train=TrainConfig(dataset="mnist", batch_size=16, device="cuda", cuda_graphs=setting))
        run = Run(cfg, tmp_path / setting, CUDA, random_dataset("mnist", 256))
        run.model.train()
        results[setting] = (_losses(run, 8), {k: v.detach().clone() for k, v in run.model.state_dict().items()})
        assert isinstance(run.trainer, GraphedTrainer) == (setting == "on")
        if setting == "on":
            assert run.trainer.captured
    (eager, w_eager), (graphed, w_graphed) = results["off"], results["on"]
    for i, (a, b) in enumerate(zip(eager, graphed)):
        for k in a:
            assert b[k] == pytest.approx(a[k], rel=1e-3, abs=1e-4), (i, k)
    for k in w_eager:
        if w_eager[k].is_floating_point():
            torch.testing.assert_close(w_graphed[k], w_eager[k], rtol=1e-3, atol=1e-4)


@cuda
def test_every_model_trains_graphed_or_warns_why_not(tmp_path):
    for name in model_names():
        dataset = "mnist" if spec(name).images_only else "synthetic-5d"
        cfg = RunConfig(ModelConfig(name=name, latent_dim=8),
                        train=TrainConfig(dataset=dataset, batch_size=16, device="cuda", cuda_graphs="on"))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            run = Run(cfg, tmp_path / name, CUDA, random_dataset(dataset, 256))
            run.model.train()
            losses = _losses(run, 6)
        graphed = isinstance(run.trainer, GraphedTrainer) and run.trainer.captured
        assert graphed or any("CUDA graph" in str(w.message) for w in caught), name
        assert all(torch.isfinite(torch.tensor(list(step.values()))).all() for step in losses), name


@cuda
def test_a_graphed_run_resumes_graphed_and_on_the_cpu(tmp_path):
    """Checkpoints of a graphed run (capturable states on the device) resume on CUDA (captured
    again) and on the CPU (eager), and a CPU checkpoint resumes graphed."""
    out = train(_cfg(steps=8, device="cuda", cuda_graphs="on"), tmp_path / "run", progress=False)
    resume(out, steps=12, progress=False)                 # CUDA, graphed again
    resume(out, steps=16, progress=False, device="cpu")   # eager on the CPU
    resume(out, steps=24, progress=False, device="cuda")  # and back
    state = load_checkpoint(out / CHECKPOINT_NAME)
    assert state["step"] == 24
    assert all(torch.isfinite(t).all() for t in state["model"].values() if t.is_floating_point())


@cuda
def test_fp16_with_gradient_scalers_is_captured_or_falls_back(tmp_path):
    cfg = RunConfig(ModelConfig(name="flexae-sr", latent_dim=8),
                    train=TrainConfig(dataset="mnist", batch_size=16, device="cuda", precision="fp16",
                                      cuda_graphs="on"))
    run = Run(cfg, tmp_path / "fp16", CUDA, random_dataset("mnist", 256))
    run.model.train()
    losses = _losses(run, 8)
    assert all(torch.isfinite(torch.tensor(list(s.values()))).all() for s in losses)


@cuda
def test_previews_and_evaluation_between_replays_change_nothing(tmp_path):
    """The loop's work between replays (preview grids: eval-mode passes with their own seeds)
    leaves the graphed iterations computing what undisturbed ones compute."""
    results = {}
    for disturbed in (False, True):
        cfg = RunConfig(ModelConfig(name="flexae-sr", latent_dim=8),
                        train=TrainConfig(dataset="mnist", batch_size=16, device="cuda", cuda_graphs="on"))
        run = Run(cfg, tmp_path / str(disturbed), CUDA, random_dataset("mnist", 256))
        losses = []
        for _ in range(8):
            run.model.train()
            losses.append({k: float(v) for k, v in run.trainer.step().items()})
            if disturbed:
                run.previews.write(run.model, len(losses))
        results[disturbed] = losses
    for a, b in zip(results[False], results[True]):
        assert b == pytest.approx(a, rel=1e-3, abs=1e-4)  # cuDNN may pick non-deterministic kernels


@cuda
def test_a_diverging_graphed_run_is_stopped_before_its_first_checkpoint(tmp_path):
    from flexae.training.divergence import TrainingDiverged

    cfg = _cfg(steps=40, device="cuda", cuda_graphs="on")
    cfg.train.log_every, cfg.train.checkpoint_every = 10, 300
    cfg.optim.ae.lr = 1e9
    with pytest.raises(TrainingDiverged) as info:
        train(cfg, tmp_path / "run", progress=False)
    assert info.value.step <= 10 and "no checkpoint was written" in str(info.value)


@cuda
def test_the_benchmark_times_graph_replays():
    from flexae.bench import bench_train_step

    cfg = RunConfig(ModelConfig(name="wae", latent_dim=8),
                    train=TrainConfig(dataset="mnist", batch_size=16, device="cuda", cuda_graphs="on"))
    result = bench_train_step(cfg, steps=5, warmup=1)
    assert result["cuda_graphs"] is True and result["ms_per_iter"] > 0

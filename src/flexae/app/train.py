"""The training loop: seeding, progress bar, logging, evaluation, checkpoints, resume.

The run folder it writes (names, checkpoint format, log) belongs to `flexae.runs`; models and
their trainers come from `flexae.registry`. The loop calls `trainer.step()` as it is: precision
and memory format are the trainer's own (flexae.training.precision), never an autocast here.
"""

from __future__ import annotations

import contextlib
import copy
import json
import time
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from flexae import eta
from flexae.config import RunConfig
from flexae.data import Dataset, RandomBatches, given_data_name, load_for_config, resolve_data
from flexae.devices import resolve_device
from flexae.errors import UserError
from flexae.files import first_line
from flexae.metrics.frechet import frechet_distance_from_samples
from flexae.metrics.wasserstein import wasserstein1_exact
from flexae.models import AutoEncoder
from flexae.registry import build_model, make_trainer
from flexae.runs.checkpoint import CheckpointWriter, NonFiniteStateError, rng_state, set_rng_state, versions
from flexae.runs.layout import BEST_NAME, CHECKPOINT_NAME, METRICS_NAME, TENSORBOARD_DIR
from flexae.runs.run_folder import RunFolder
from flexae.app.fit_sampler import ensure_fitted
from flexae.training import distributed
from flexae.training.divergence import DivergenceMonitor, TrainingDiverged
from flexae.app.image_eval import ImageEvaluator, evaluation_split
from flexae.training.graphs import GraphedTrainer, maybe_graphed
from flexae.training.precision import set_tf32, step_options
from flexae.app.previews import Previews, TensorBoard
from flexae.training.signals import GracefulStop, StopNow, TrainingStopped
from flexae.training.steps import Trainer, load_optimizer_state
from flexae.validation import config_from_dict, validate_config, validate_resume_steps
from flexae.trust import allowing_code

EVAL_SEED = 12345


def set_cpu_threads(requested: int, is_image: bool) -> None:
    if requested > 0:
        torch.set_num_threads(requested)
    elif not is_image:
        torch.set_num_threads(1)


@torch.no_grad()
def synthetic_metrics(model: AutoEncoder, data: Dataset, n_latent: int) -> dict[str, float]:
    """FD between |test| generated points and the test set (data space, 128-D), and the exact W1
    between n_latent prior samples and the codes of n_latent test points."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    # A private generator: evaluation neither consumes nor depends on the training RNG, so
    # resumed runs match uninterrupted ones and every evaluation sees the same noise.
    gen = torch.Generator(device=device).manual_seed(EVAL_SEED)
    test = data.test.to(device)
    generated = model.generate(test.shape[0], gen)
    fd = frechet_distance_from_samples(generated.double().cpu().numpy(), test.double().cpu().numpy())
    n = min(n_latent, test.shape[0])
    codes = model.posterior_sample(test[:n], gen).cpu().numpy()
    prior = model.sample_latent(n, gen).cpu().numpy()
    model.train(was_training)
    return {"fd": fd, "w_latent": wasserstein1_exact(prior, codes)}


def _writer_lock(out: Path) -> contextlib.AbstractContextManager:
    """The run folder's lock, held by rank 0 (the only process that writes into it)."""
    return RunFolder(out).lock() if distributed.is_main() else contextlib.nullcontext()


def _replace_run_dir(out: Path, overwrite: bool) -> None:
    """Under the lock, once the new run's data are loaded and its model is built: check the folder
    again (another run may have written it meanwhile) and remove the old run's files."""
    folder = RunFolder(out)
    folder.check_new(overwrite)
    folder.clear()


class Run:
    """Everything one training run holds in memory."""

    def __init__(self, cfg: RunConfig, out: Path, device: torch.device, data: Dataset):
        self.cfg, self.out, self.device, self.data = cfg, out, device, data
        self.folder = RunFolder(out)
        set_cpu_threads(cfg.train.cpu_threads, data.is_image)
        torch.manual_seed(cfg.train.seed)
        self.model = build_model(cfg.model, data.shape).to(device)
        distributed.seed_rank(cfg.train.seed, 0)  # torchrun ranks > 0: their own batches and noise
        # With train.eval_images, a validation slice of the training images is held out (image_eval).
        tc = cfg.train
        train_images, reference = evaluation_split(data.train, data.test, tc.eval_images if data.is_image else 0,
                                                   tc.best_split, tc.data_seed)
        self.batches = RandomBatches(distributed.shard(train_images).to(device), cfg.train.batch_size)
        set_tf32(cfg.train.tf32, device)
        trainer = make_trainer(self.model, cfg.optim, self.batches, step_options(cfg.train, device),
                               cfg.train.batchnorm_stats, cfg.train.seed)
        # On CUDA one whole iteration is captured once and replayed (flexae.training.graphs).
        self.trainer: Trainer = maybe_graphed(trainer, cfg.train.cuda_graphs, device, cfg.model.name)
        self.step = 0
        self.elapsed_before = 0.0  # seconds of training before this process (resumed runs)
        self.started = time.time()
        self.log = self.folder.log
        self.writer = checkpoint_writer(device)  # in a thread on accelerators
        # Fixed-input preview grids of image runs; they use their own seeds, never the training RNG.
        self.previews = Previews(out, data.test, cfg.train.seed) if data.is_image else None
        # FID / KID while training (image runs with train.eval_images), and the best value so far.
        self.image_eval = (ImageEvaluator(reference, tc.eval_images, tc.seed, device)
                           if reference is not None else None)
        self.best: dict[str, Any] | None = None  # {"metric", "value", "step"} of best.pt

    def state(self) -> dict[str, Any]:
        return {"config": self.cfg.to_dict(), "step": self.step, "model": self.model.state_dict(),
                "optimizers": {k: o.state_dict() for k, o in self.trainer.optimizers.items()},
                "rng": rng_state(), "versions": versions(), "elapsed": self.elapsed(), "best": self.best}

    def elapsed(self) -> float:
        """Training seconds so far, across resumes."""
        return self.elapsed_before + time.time() - self.started

    def load_state(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        for name, opt in self.trainer.optimizers.items():  # this run's flags (capturable, fused) kept
            load_optimizer_state(opt, state["optimizers"][name])
        if isinstance(self.trainer, GraphedTrainer):
            self.trainer.invalidate()  # the optimizer states are new tensors
        self.step = int(state["step"])
        elapsed = state.get("elapsed", 0.0)
        self.elapsed_before = float(elapsed) if isinstance(elapsed, (int, float)) else 0.0
        self.best = state.get("best") if isinstance(state.get("best"), dict) else None
        set_rng_state(state["rng"])
        distributed.seed_rank(self.cfg.train.seed, self.step)  # the checkpoint holds rank 0's stream

    def save(self) -> None:
        self.writer.save(self.out / CHECKPOINT_NAME, self.state())

    def evaluate(self) -> dict[str, float]:
        if not self.model.can_generate():  # ex-post samplers are fitted after training
            return {}
        if self.data.is_image:
            return self.image_eval(self.model) if self.image_eval is not None else {}
        return synthetic_metrics(self.model, self.data, self.cfg.train.eval_samples)

    def keep_if_best(self, metrics: dict[str, float]) -> None:
        """Save best.pt when `train.best_metric` (lower is better) improves on the best so far."""
        name = self.cfg.train.best_metric
        if self.image_eval is None or name not in metrics:
            return
        if self.best is None or metrics[name] < self.best["value"]:
            self.best = {"metric": name, "value": float(metrics[name]), "step": self.step}
            self.writer.save(self.out / BEST_NAME, self.state())


def checkpoint_writer(device: torch.device) -> CheckpointWriter:
    """Checkpoints written in the foreground on the CPU (a writer thread would take cores from
    training), in a background thread elsewhere (flexae.runs.checkpoint.CheckpointWriter)."""
    return CheckpointWriter(background=device.type != "cpu")


def _write_config(run: Run) -> None:
    payload = {**run.cfg.to_dict(), "versions": versions(), "device": str(run.device),
               "processes": distributed.world_size()}
    run.folder.write_config(payload)


def train(cfg: RunConfig, out: str | Path, *, overwrite: bool = False, data_dir: str | None = None,
          progress: bool = True, data: Any = None) -> Path:
    """Train a fresh run into folder `out`; returns the folder. See `resume` to continue one.
    `data`: images given in Python instead of `cfg.train.dataset` (uint8 numpy N x H x W [x C],
    torch (N, C, H, W), or {"train": ..., "test": ...}; see flexae.data.load_for_config)."""
    cfg = copy.deepcopy(cfg)  # the run records its own resolved config; the caller's is not edited
    if data is not None:
        cfg.train.dataset = given_data_name(cfg.train)  # "array", unless it names the files the images came from
    validate_config(cfg)
    out = Path(out)
    distributed.init_from_environment(cfg.train.device)  # under torchrun: join the process group
    distributed.on_main(RunFolder(out).check_new, overwrite)  # nothing is touched yet
    device = resolve_device(cfg.train.device)
    cfg.train, data = resolve_data(cfg.train, data_dir, data)
    run = Run(cfg, distributed.rank_folder(out), device, data)  # only rank 0 writes into `out`
    distributed.on_main(RunFolder(out).create)
    with _writer_lock(out):
        # Only now, with the data loaded and the model built, is an old run replaced.
        distributed.on_main(_replace_run_dir, out, overwrite)
        _write_config(run)
        _loop(run, progress and distributed.is_main())
    return out


def resume(out: str | Path, steps: int | None = None, *, data_dir: str | None = None,
           progress: bool = True, device: str | None = None, tensorboard: bool | None = None,
           trust_code: bool = False) -> Path:
    """Continue the run in `out` from its checkpoint, up to `steps` total iterations if given
    (`trust_code`: as for `load_run`)."""
    out = Path(out)
    with _writer_lock(out), allowing_code(trust_code):
        return _resume(out, steps, data_dir, progress, device, tensorboard)


def ensure_run(cfg: RunConfig, run_dir: str | Path, *, data_dir: str | None = None, progress: bool = True) -> Path:
    """Reuse the run in `run_dir` if it finished with `cfg`, resume it if it can get there, else
    train it anew (replacing what the folder held): the one "train, resume or reuse" of every sweep."""
    run_dir = Path(run_dir)
    if RunFolder(run_dir).finished(cfg):
        return run_dir
    if RunFolder(run_dir).resumable(cfg):
        return resume(run_dir, cfg.train.steps, data_dir=data_dir, progress=progress, device=cfg.train.device)
    return train(cfg, run_dir, overwrite=True, data_dir=data_dir, progress=progress)


def _resume(out: Path, steps: int | None, data_dir: str | None, progress: bool, device: str | None,
            tensorboard: bool | None) -> Path:
    state = RunFolder(out).checkpoint(finite=True)
    cfg = config_from_dict(state["config"], out / CHECKPOINT_NAME)
    if steps is not None:
        cfg.train.steps = steps
    if device is not None:
        cfg.train.device = device
    if tensorboard is not None:  # a logging sink: switching it changes nothing that is computed
        cfg.train.tensorboard = tensorboard
    validate_config(cfg)
    validate_resume_steps(cfg.train.steps, state["step"], out)
    distributed.init_from_environment(cfg.train.device)  # any number of processes, also not the run's
    torch_device = resolve_device(cfg.train.device)
    if cfg.train.cuda_graphs == "on" and torch_device.type != "cuda":
        cfg.train.cuda_graphs = "auto"  # how a step runs, not what it computes: a graphed run resumes anywhere
    data = load_for_config(cfg.train, data_dir)
    run = Run(cfg, distributed.rank_folder(out), torch_device, data)  # only rank 0 writes into `out`
    try:
        run.load_state(state)
    except (RuntimeError, KeyError, ValueError, TypeError) as exc:  # shapes or names do not match
        raise UserError(f"{out / CHECKPOINT_NAME} does not fit the model its config describes "
                        f"({first_line(exc)})") from None
    run.folder.rewind_log(run.step)  # the iterations after the checkpoint are run (and logged) again
    _write_config(run)
    _loop(run, progress and distributed.is_main())
    return out


def _log_losses(run: Run, logs: dict[str, torch.Tensor]) -> dict[str, float]:
    values = {k: float(v) for k, v in logs.items()}
    run.log.write({"step": run.step, "kind": "losses", "time": round(run.elapsed(), 3), **values})
    return values


def _fit_expost_sampler(run: Run, progress: bool) -> None:
    """Models that generate through an ex-post sampler (some baselines) get it fitted on the final
    model as a step of its own, saved to sampler.pt (reused if already fitted; flexae.app.fit_sampler)."""
    if run.model.expost_sampler is None:
        return
    ensure_fitted(run.model, run.out, run.data.train, run.model.options, run.step,
                           run.cfg.train.seed, progress, log=run.log.write)
    if run.previews is not None:  # now with the sample grid the training previews had to leave out
        run.previews.write(run.model, run.step, run.log.tensorboard)


def _loop(run: Run, progress: bool) -> Path:
    # SIGINT/SIGTERM finish the iteration, save and raise TrainingStopped; divergence is logged.
    tc = run.cfg.train
    bar = tqdm(total=tc.steps, initial=run.step, desc=f"{run.cfg.model.name} {tc.dataset}",
               disable=not progress, dynamic_ncols=True)
    notice = _training_notice(run, progress)
    with GracefulStop() as stop, bar:  # the bar is closed before any message is printed
        try:
            return _iterate(run, bar, stop, notice)
        except TrainingDiverged as exc:
            run.log.write({"step": exc.step, "event": "diverged", "message": str(exc)})
            raise
        finally:
            run.writer.wait(raise_error=False)  # a write in flight completes (errors: raised already, or moot)


def _training_notice(run: Run, progress: bool) -> eta.Notice:
    """The note of how long the remaining iterations take, timed on the first ones (the first,
    which builds lazy state and captures CUDA graphs, is not timed); silent with --quiet."""
    tc = run.cfg.train
    left = tc.steps - run.step
    return eta.training_notice(f"{left} iterations of {run.cfg.model.name} on {tc.dataset}", left,
                               "pass --steps N for fewer (a run continues later with --resume RUN_DIR --steps N)",
                               str(run.device), enabled=progress, sync=eta.synchronizer(run.device))


def _save(run: Run, monitor: DivergenceMonitor, wait: bool = False) -> None:
    """Save the checkpoint (and with `wait`, until it is on disk: a background write included)."""
    try:
        run.save()
        if wait:
            run.writer.wait()
    except NonFiniteStateError as exc:  # e.g. Adam's second moments overflowed, weights still finite
        more = f" and {len(exc.names) - 1} more tensors" if len(exc.names) > 1 else ""
        raise monitor.diverged(run.step, f"non-finite {exc.names[0]}{more} (losses and weights were "
                                         f"finite)") from None
    monitor.saved_step = run.step


def _wait_for_checkpoint(run: Run, monitor: DivergenceMonitor) -> None:
    try:
        run.writer.wait()
    except NonFiniteStateError as exc:  # written in the background: reported here
        raise monitor.diverged(run.step, f"non-finite {exc.names[0]} in the checkpoint of step "
                                         f"{monitor.saved_step}") from None


def _stop(run: Run, monitor: DivergenceMonitor, stop: GracefulStop) -> None:
    """Save the state after the current iteration (unless just saved) and raise TrainingStopped."""
    if monitor.saved_step != run.step:
        monitor.check(run.step)
        _save(run, monitor, wait=True)
    else:
        _wait_for_checkpoint(run, monitor)
    run.log.write({"step": run.step, "event": "stopped", "signal": stop.signal_name})
    raise TrainingStopped(run.out, run.step, run.cfg.train.steps, stop.signal_name or "signal")


def _iterate(run: Run, bar: tqdm, stop: GracefulStop, notice: eta.Notice) -> Path:
    tc = run.cfg.train
    run.started = time.time()  # `elapsed` counts this process's training from here
    if run.step == 0 and not run.data.is_image:
        run.log.write({"step": 0, "kind": "metrics", **run.evaluate()})
    if tc.tensorboard:
        run.log.tensorboard = TensorBoard(run.out / TENSORBOARD_DIR, start_step=run.step)
    run.model.train()
    final: dict[str, float] = {}
    monitor = DivergenceMonitor(run.model, run.device, run.out, run.trainer.optimizers)
    monitor.saved_step = run.step or None  # a resumed run starts from its checkpoint
    while run.step < tc.steps:
        logs = run.trainer.step()
        run.step += 1
        bar.update(1)
        notice.tick()  # the note of how long the rest takes, once timed
        monitor.observe(run.step, logs)  # CPU: raises now; accelerators: recorded without a sync
        if run.step % tc.log_every == 0 or run.step % tc.checkpoint_every == 0 or run.step == tc.steps or (
                tc.eval_every and run.step % tc.eval_every == 0):
            monitor.check(run.step)  # before anything is logged, evaluated or saved
        if run.step % tc.log_every == 0 or run.step == tc.steps:
            values = _log_losses(run, logs)
            bar.set_postfix({k: f"{v:.3g}" for k, v in values.items()}, refresh=False)
        if (tc.eval_every and run.step % tc.eval_every == 0) or run.step == tc.steps:
            metrics = final = run.evaluate()
            if metrics:
                run.log.write({"step": run.step, "kind": "metrics", **metrics})
                run.keep_if_best(metrics)
        if run.previews is not None and tc.grid_every > 0 and (
                run.step % tc.grid_every == 0 or run.step == tc.steps):
            run.previews.write(run.model, run.step, run.log.tensorboard)  # eval mode, fp32
        if run.step % tc.checkpoint_every == 0 or run.step == tc.steps:
            _save(run, monitor)
        if stop.requested and run.step < tc.steps:
            _stop(run, monitor, stop)
    bar.close()
    _wait_for_checkpoint(run, monitor)  # the last step's checkpoint is on disk before anything follows
    _finish(run, stop, progress=not bar.disable, final=final)
    return run.out


def _finish(run: Run, stop: GracefulStop, progress: bool, final: dict[str, float]) -> None:
    """After the last iteration (its checkpoint is saved): the ex-post sampler fit and the final
    evaluation. A stop signal ends them at once (nothing of theirs is half-written: sampler.pt and
    metrics.json are written atomically at their very end)."""
    phase = "the ex-post sampler fit"
    try:
        if run.model.expost_sampler is not None:
            with stop.at_once():
                _fit_expost_sampler(run, progress)
        if not final and not run.data.is_image:  # else evaluated at the last iteration already
            phase = "the final evaluation"
            with stop.at_once():
                final = run.evaluate()
    except StopNow as exc:
        run.log.write({"step": run.step, "event": "stopped", "signal": str(exc), "during": phase})
        raise TrainingStopped(run.out, run.step, run.cfg.train.steps, str(exc), during=phase) from None
    run.folder.save_text(METRICS_NAME, json.dumps({"step": run.step, **final}, indent=2) + "\n")
    if run.log.tensorboard is not None:
        run.log.tensorboard.close()

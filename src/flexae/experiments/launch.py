"""Where a table sweep trains its runs: `--launcher inline | local | submitit`.

A table (`flexae reproduce table1|table3|table4`) is many independent runs. Every launcher trains
each of them through the same idempotent `flexae.app.train.ensure_run` (reuse a finished run,
resume an interrupted one, else train it), so a sweep started again, by any launcher, trains only
what is missing; the run folder's lock keeps two writers out of one run. The evaluation then runs
in the submitting process, reading each run's folder (`flexae.experiments.tables`).

- `inline`: one run after another in this process (exceptions propagate, as before launchers).
- `local`: at most `workers` processes at once on this machine, one run each
  (`python -m flexae.experiments.launch JOB.json`). A worker slot is pinned to one device of
  `devices` (`cuda:1` -> CUDA_VISIBLE_DEVICES=1, so the run's config, device "auto" or "cuda",
  is the same as inline); without GPUs the CPU threads are split evenly among the workers.
- `submitit`: one SLURM job per run through the `submitit` package (a job array of at most
  `slurm_array_parallelism` jobs at once); `submitit_cluster="local"` runs the same submitit
  code as local processes (the tests). A preempted or timed-out job is requeued by submitit and
  resumes from its checkpoint.

Progress: one line per run and change (queued / running at step k / done / failed, with the
log's path). A failed run is returned as `Failed`, so the table marks it instead of dropping it;
the next invocation resumes it from its checkpoint.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Hashable

from flexae.errors import UserError
from flexae.files import atomic_write_text, open_regular

LAUNCHERS = ("inline", "local", "submitit")
JOBS_DIR, LOGS_DIR, SUBMITIT_DIR = "jobs", "logs", "submitit"  # folders of the sweep's output folder


@dataclass
class LaunchSettings:
    """How the runs of one reproduce command are trained (the CLI's --launcher options)."""

    launcher: str = "inline"               # inline | local | submitit
    workers: int = 1                       # local: processes at once
    devices: tuple[str, ...] = ()          # local: "cuda:N" / "cpu" per worker slot (cycled); (): CPU
    slurm_partition: str | None = None     # submitit: SLURM partition (None: the cluster's default)
    slurm_time: int = 240                  # submitit: minutes per job before SLURM stops (and requeues) it
    slurm_gpus_per_job: int = 1            # submitit: GPUs per job
    slurm_cpus_per_job: int | None = None  # submitit: CPUs per job (None: the cluster's default)
    slurm_array_parallelism: int = 32      # submitit: jobs of the array running at once
    submitit_cluster: str | None = None    # None: submitit picks SLURM; "local": local processes
    poll_seconds: float = 0.5              # how often the workers and their logs are looked at


@dataclass
class RunJob:
    """One run to train: what a worker process (or SLURM job) needs, written as JSON."""

    name: str                      # the run's folder name, for progress lines
    config: dict[str, Any]         # RunConfig.to_dict()
    run_dir: str
    data_dir: str | None = None
    trust_code: bool = False       # the submitting command had --trust-code
    threads: int = 0               # torch CPU threads (0: leave torch's default)


@dataclass
class Failed:
    """A run whose training process failed: the table marks it; `log` says why."""

    name: str
    log: Path
    reason: str


Report = Callable[[str], None]


# ----------------------------------------------------------------------------------------------
# The worker side: the same for every launcher


def train_job(job: RunJob) -> str:
    """Train, resume or reuse one run (flexae.app.train.ensure_run); returns its folder. Runs in
    a worker process or SLURM job; the config is the submitting command's own, so the modules it
    names were named by the user (flexae.trust) and are importable like in the submitting process."""
    import torch

    from flexae.app.train import ensure_run
    from flexae.config import RunConfig
    from flexae.trust import allowing_code, note_named

    if job.threads > 0:
        torch.set_num_threads(job.threads)
    cfg = RunConfig.from_dict(job.config)
    for reference in (cfg.model.name, cfg.model.encoder, cfg.model.decoder):
        if reference and ":" in str(reference):
            note_named(str(reference))
    with allowing_code(job.trust_code):
        return str(ensure_run(cfg, job.run_dir, data_dir=job.data_dir, progress=False))


class _Requeueable:
    """train_job for submitit: on preemption or timeout submitit calls `checkpoint` and requeues
    the same job, which resumes from the run's last checkpoint (ensure_run is idempotent)."""

    def __init__(self, job: RunJob):
        self.job = job

    def __call__(self) -> str:
        return train_job(self.job)

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        import submitit
        return submitit.helpers.DelayedSubmission(_Requeueable(self.job))


# ----------------------------------------------------------------------------------------------
# The submitting side


def launch(jobs: dict[Hashable, RunJob], settings: LaunchSettings, out: Path,
           report: Report) -> dict[Hashable, Path | Failed]:
    """Train every job with the chosen launcher; returns each job's run folder or its failure."""
    check_launch(settings)
    if settings.launcher == "inline":
        return {key: Path(train_job(job)) for key, job in jobs.items()}
    for job in jobs.values():
        report(f"queued   {job.name}")
    if settings.launcher == "local":
        return _launch_local(jobs, settings, out, report)
    return _launch_submitit(jobs, settings, out, report)


def check_launch(settings: LaunchSettings) -> None:
    if settings.launcher not in LAUNCHERS:
        raise UserError(f"--launcher {settings.launcher!r}: choose from {', '.join(LAUNCHERS)}")
    if settings.workers < 1:
        raise UserError(f"--workers must be positive, got {settings.workers}")
    bad = [d for d in settings.devices if d != "cpu" and not (d.startswith("cuda:") and d[5:].isdigit())]
    if bad:
        raise UserError(f"--devices {','.join(bad)}: give cuda:N or cpu, comma-separated")
    if settings.slurm_time < 1 or settings.slurm_gpus_per_job < 0 or settings.slurm_array_parallelism < 1:
        raise UserError("--slurm-time and --slurm-array-parallelism must be positive, --slurm-gpus-per-job >= 0")


class _Progress:
    """Prints a run's line when its state changes: running at step k (from its log), done, failed."""

    def __init__(self, jobs: dict[Hashable, RunJob], report: Report):
        self.jobs, self.report, self.shown = jobs, report, {}

    def running(self, key: Hashable) -> None:
        from flexae.runs.layout import LOG_NAME
        from flexae.runs.run_folder import RunFolder

        run = RunFolder(self.jobs[key].run_dir)
        records = run.read_log() if run.file(LOG_NAME).is_file() else []  # none before its first step
        steps = [r["step"] for r in records if isinstance(r.get("step"), int)]
        line = f"running  {self.jobs[key].name} at step {steps[-1] if steps else 0}"
        if self.shown.get(key) != line:
            self.shown[key] = line
            self.report(line)

    def finished(self, key: Hashable, result: Path | Failed) -> Path | Failed:
        name = self.jobs[key].name
        self.report(f"done     {name}" if isinstance(result, Path) else
                    f"failed   {name}: {result.reason}; log: {result.log}")
        return result


# --- local ------------------------------------------------------------------------------------


def _worker_slots(settings: LaunchSettings) -> list[tuple[dict[str, str], int]]:
    """(environment additions, torch threads) of each worker slot."""
    devices = settings.devices or ("cpu",)
    cpu_workers = sum(devices[w % len(devices)] == "cpu" for w in range(settings.workers))
    threads = max(1, (os.cpu_count() or 1) // max(1, cpu_workers))
    slots = []
    for w in range(settings.workers):
        device = devices[w % len(devices)]
        if device == "cpu":  # OMP_NUM_THREADS also bounds the threads torch starts before set_num_threads
            slots.append(({"OMP_NUM_THREADS": str(threads), "CUDA_VISIBLE_DEVICES": ""}, threads))
        else:
            slots.append(({"CUDA_VISIBLE_DEVICES": device.split(":")[1]}, 0))
    return slots


def _start_worker(job: RunJob, slot: tuple[dict[str, str], int], out: Path) -> tuple[subprocess.Popen, Path]:
    env, threads = slot
    job_file, log = out / JOBS_DIR / f"{job.name}.json", out / LOGS_DIR / f"{job.name}.log"
    job_file.parent.mkdir(parents=True, exist_ok=True)
    log.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(job_file, json.dumps(asdict(RunJob(**{**asdict(job), "threads": threads}))) + "\n")
    fd = open_regular(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        proc = subprocess.Popen([sys.executable, "-m", "flexae.experiments.launch", str(job_file)],
                                stdout=fd, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env={**os.environ, **env})
    finally:
        os.close(fd)  # the child holds its own copy
    return proc, log


def _launch_local(jobs: dict[Hashable, RunJob], settings: LaunchSettings, out: Path,
                  report: Report) -> dict[Hashable, Path | Failed]:
    slots, progress = _worker_slots(settings), _Progress(jobs, report)
    pending, running, results = list(jobs), {}, {}  # running: slot -> (key, process, log)
    try:
        while pending or running:
            for slot in [s for s in range(len(slots)) if s not in running][:len(pending)]:
                key = pending.pop(0)
                running[slot] = (key, *_start_worker(jobs[key], slots[slot], out))
            time.sleep(settings.poll_seconds)
            for slot, (key, proc, log) in list(running.items()):
                if proc.poll() is None:
                    progress.running(key)
                    continue
                del running[slot]
                result = Path(jobs[key].run_dir) if proc.returncode == 0 else \
                    Failed(jobs[key].name, log, _exit_reason(proc.returncode, log))
                results[key] = progress.finished(key, result)
    finally:  # Ctrl-C of the sweep: the workers save and stop too (their runs resume next time)
        for _, proc, _ in running.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        for _, proc, _ in running.values():
            proc.wait()
    return {key: results[key] for key in jobs}


def _exit_reason(code: int, log: Path) -> str:
    if code < 0:
        return f"killed by signal {signal.Signals(-code).name}"
    return _last_line(log) or f"exit code {code}"


def _last_line(log: Path) -> str:
    try:
        lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    return lines[-1] if lines else ""


# --- submitit ---------------------------------------------------------------------------------


def _executor(settings: LaunchSettings, folder: Path) -> Any:
    try:
        import submitit
    except ImportError:
        raise UserError("--launcher submitit needs the submitit package: pip install 'flexae[submitit]'") from None
    executor = submitit.AutoExecutor(folder=folder, cluster=settings.submitit_cluster)
    params: dict[str, Any] = {"name": "flexae", "timeout_min": settings.slurm_time,
                              "gpus_per_node": settings.slurm_gpus_per_job,
                              "slurm_array_parallelism": settings.slurm_array_parallelism}
    if settings.slurm_partition:
        params["slurm_partition"] = settings.slurm_partition
    if settings.slurm_cpus_per_job:
        params["cpus_per_task"] = settings.slurm_cpus_per_job
    executor.update_parameters(**params)
    return executor


def _launch_submitit(jobs: dict[Hashable, RunJob], settings: LaunchSettings, out: Path,
                     report: Report) -> dict[Hashable, Path | Failed]:
    executor, progress = _executor(settings, out / SUBMITIT_DIR), _Progress(jobs, report)
    threads = settings.slurm_cpus_per_job or 0  # torch would otherwise count the node's cores
    with executor.batch():  # one job array, one job per run
        submitted = {key: executor.submit(_Requeueable(RunJob(**{**asdict(job), "threads": threads})))
                     for key, job in jobs.items()}
    results: dict[Hashable, Path | Failed] = {}
    while len(results) < len(submitted):
        time.sleep(settings.poll_seconds)
        for key, job in submitted.items():
            if key in results:
                continue
            if not job.done():
                if job.state not in ("PENDING", "UNKNOWN", "REQUEUED"):
                    progress.running(key)
                continue
            error = job.exception()
            results[key] = progress.finished(key, Path(jobs[key].run_dir) if error is None else Failed(
                jobs[key].name, Path(job.paths.stderr), _first_line(error)))
    return {key: results[key] for key in jobs}


def _first_line(error: BaseException) -> str:
    """The last line of a job's error (submitit wraps the worker's traceback into its message)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__


def main(argv: list[str]) -> None:
    """`python -m flexae.experiments.launch JOB.json`: a local worker trains the job's run."""
    from flexae.errors import UserError as Error

    job = RunJob(**json.loads(Path(argv[0]).read_text()))
    try:
        train_job(job)
    except Error as exc:
        print(f"flexae: error: {exc}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main(sys.argv[1:])

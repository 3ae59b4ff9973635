"""The run folder as a whole: whether a path may become one, replacing an old run only once the
new one is ready, and the lock that keeps two processes from writing one folder at once.

Lock: `RUN_DIR/.lock` is held with an exclusive `flock` for as long as a process writes the run
(train, resume, fit-sampler). The kernel releases it when the process dies, however it dies, so a
lock left by a killed process is taken over without any clean-up; the file holds the holder's PID
for the message a second writer gets. (No `flock` on Windows: there the lock is not enforced.)
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from flexae.errors import UserError
from flexae.runs.layout import (BEST_NAME, CHECKPOINT_NAME, CONFIG_NAME, LOCK_NAME, LOG_NAME, OWNED_DIRS,
                                 OWNED_FILES)

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]


def is_run_folder(path: Path) -> bool:
    """A folder some flexae run wrote: it holds a config, a checkpoint or a log."""
    return any((Path(path) / name).is_file() for name in (CONFIG_NAME, CHECKPOINT_NAME, LOG_NAME))


def check_new_run_dir(out: Path, overwrite: bool) -> None:
    """Refuse, before anything is loaded or written, a path that must not become (or be replaced
    by) a new run: the working directory itself, a file, a non-empty folder without --overwrite,
    and with --overwrite a non-empty folder that is not a run folder."""
    out = Path(out)
    if str(out).strip() in ("", ".") or out.resolve() == Path.cwd().resolve():
        raise UserError("refusing to write a run into the working directory itself (an empty or unset --out?); "
                        "give --out a folder of its own")
    if out.exists() and not out.is_dir():
        raise UserError(f"run folder {out} exists and is not a folder")
    if out.is_dir() and any(p.name != LOCK_NAME for p in out.iterdir()):
        if not overwrite:
            raise UserError(f"run folder {out} is not empty; pass --overwrite to replace it or --resume to continue it "
                            f"(in Python: train(..., overwrite=True) or resume(...))")
        if not is_run_folder(out):
            raise UserError(f"{out} is not a flexae run folder (no {CONFIG_NAME}, {CHECKPOINT_NAME} or {LOG_NAME}); "
                            f"--overwrite only replaces runs: give another --out")


def checkpoint_path(run: str | Path, checkpoint: str = "last") -> Path:
    """The checkpoint file a run reference names: RUN_DIR (its last checkpoint, or best.pt with
    checkpoint="best"), or a checkpoint file inside a run folder (RUN_DIR/best.pt)."""
    if not str(run).strip():  # Path("") is the working directory
        raise UserError("the run folder is empty (''); give a path")
    run = Path(run)
    if checkpoint not in ("last", "best"):
        raise UserError(f"checkpoint must be 'last' or 'best', got {checkpoint!r}")
    if run.is_file():
        if run.suffix != ".pt":
            raise UserError(f"{run} is a file: give its run folder, a checkpoint in it (RUN_DIR/best.pt), "
                            f"or a .safetensors file from flexae export")
        return run
    if not run.is_dir():
        raise UserError(f"run folder {run} does not exist")
    path = run / (BEST_NAME if checkpoint == "best" else CHECKPOINT_NAME)
    if checkpoint == "best" and not path.is_file():
        raise UserError(f"{run} has no {BEST_NAME}: it is written by image runs evaluated while training "
                        f"(--set train.eval_images=N)")
    return path


def create_run_dir(out: Path) -> None:
    try:
        Path(out).mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # read-only or virtual file system, a file in the way, permissions
        raise UserError(f"cannot create run folder {out} ({exc.strerror or exc})") from None


def clear_run_dir(out: Path) -> None:
    """Remove every file and folder the replaced run owned (its config, log, checkpoint, metrics,
    sampler, eval results, grids, TensorBoard logs); anything else is left alone."""
    out = Path(out)
    for name in OWNED_FILES:
        (out / name).unlink(missing_ok=True)
    for name in OWNED_DIRS:
        shutil.rmtree(out / name, ignore_errors=True)


class RunFolderLock:
    """`with RunFolderLock(run_dir):` exclusive writer of the run folder (see the module docstring)."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / LOCK_NAME
        self._fd: int | None = None

    def __enter__(self) -> "RunFolderLock":
        if fcntl is None:
            return self
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise UserError(f"cannot lock {self.path.parent} ({exc.strerror or exc})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise UserError(f"run folder {self.path.parent} is being written by another flexae process "
                            f"(PID {holder}); wait for it to finish or stop it") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing releases the flock; the file stays (see the module docstring)
            self._fd = None

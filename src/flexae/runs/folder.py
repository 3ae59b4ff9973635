"""The run folder as a whole: whether a path may become one, replacing an old run only once the
new one is ready, and the lock that keeps two processes from writing one folder at once.

Lock: `RUN_DIR/.lock` is held with an exclusive `flock` for as long as a process writes the run
(train, resume, fit-sampler). The kernel releases it when the process dies, however it dies, so a
lock left by a killed process is taken over without any clean-up; the file holds the holder's PID
for the message a second writer gets. (No `flock` on Windows: there the lock is not enforced.)
The lock file is opened without following symlinks and is refused unless it is a regular file
of flexae's own (one link, holding at most a PID), so it cannot be aimed at a file of the user's.
Whoever takes the lock first removes the temporary files of writers that died (`sweep_stale`).

`--overwrite` replaces only a run recognised by its content (`is_run_folder`: a config.json that
flexae wrote, or a checkpoint the checkpoint check accepts), and removes only the files flexae
writes there (`clear_run_dir`).
"""

from __future__ import annotations

import json
import os
import re
import stat
import sys
from pathlib import Path

from flexae.errors import UserError
from flexae.files import NOFOLLOW, stale_tmp_files
from flexae.runs.layout import (BEST_NAME, CHECKPOINT_NAME, CONFIG_NAME, GRIDS_DIR, LOCK_NAME, OWNED_FILES,
                                 PRIORS_DIR, TENSORBOARD_DIR)

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]


# The files flexae writes inside grids/ (flexae.training.previews) and tensorboard/ (SummaryWriter).
GRID_FILE = re.compile(r"(samples|reconstructions)-\d+\.png|priors-[a-z0-9][a-z0-9_-]*\.png")
PRIOR_FILE = re.compile(r"[a-z0-9][a-z0-9_-]*\.pt")  # priors/NAME.pt (flexae.runs.prior_file)
TENSORBOARD_FILE = re.compile(r"events\.out\.tfevents\..+")


def _regular(path: Path) -> bool:
    return path.is_file() and not path.is_symlink()


def _flexae_config(path: Path) -> bool:
    """config.json as flexae writes it: model / optim / train sections and flexae's version stamp."""
    try:
        d = json.loads(path.read_text(encoding="utf-8")) if _regular(path) else None
    except (OSError, ValueError):
        return False
    return (isinstance(d, dict) and all(isinstance(d.get(k), dict) for k in ("model", "optim", "train"))
            and isinstance(d.get("versions"), dict) and isinstance(d["versions"].get("flexae"), str))


def _flexae_checkpoint(path: Path) -> bool:
    from flexae.runs.checkpoint import load_checkpoint  # torch: only when there is a checkpoint
    if not _regular(path):
        return False
    try:
        load_checkpoint(path)
    except UserError:
        return False
    return True


def is_run_folder(path: Path) -> bool:
    """A folder a flexae run wrote, recognised by content, not by file names: its config.json was
    written by flexae (sections and version stamp), or its checkpoint passes the checkpoint check."""
    path = Path(path)
    return _flexae_config(path / CONFIG_NAME) or _flexae_checkpoint(path / CHECKPOINT_NAME)


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
            raise UserError(f"{out} is not a flexae run folder (no {CONFIG_NAME} written by flexae, nor a flexae "
                            f"{CHECKPOINT_NAME}); --overwrite only replaces runs and deleted nothing: give another --out")


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
    """Remove the files the replaced run owned: its config, log, checkpoint, metrics, sampler, eval
    results (names of flexae.runs.layout), and inside grids/, tensorboard/ and priors/ only flexae's
    grids, event files and named priors (those folders go if that empties them). Anything else is left alone; a symlink is
    removed itself, never what it points to."""
    out = Path(out)
    for name in OWNED_FILES:
        if (out / name).is_symlink() or (out / name).is_file():
            (out / name).unlink()
    for name, pattern in ((GRIDS_DIR, GRID_FILE), (TENSORBOARD_DIR, TENSORBOARD_FILE), (PRIORS_DIR, PRIOR_FILE)):
        folder = out / name
        if folder.is_symlink() or not folder.is_dir():
            continue
        for entry in folder.iterdir():
            if pattern.fullmatch(entry.name) and (entry.is_symlink() or entry.is_file()):
                entry.unlink()
        if not any(folder.iterdir()):
            folder.rmdir()


EVAL_FILE = re.compile(r"eval-[^/]+\.(json|md)")  # eval-best.json, ...: `flexae eval RUN_DIR/best.pt`


def _written(tmp: Path) -> str:
    """The name of the file a temporary NAME.PID.tmp was to become: NAME."""
    return tmp.name[:-len(".tmp")].rpartition(".")[0]


def sweep_stale(run_dir: Path) -> int:
    """Remove the temporary files NAME.PID.tmp of dead writers from the run folder (under its lock),
    with one note on stderr; a temporary file of a live process is never touched."""
    removed = 0
    run_dir = Path(run_dir)
    grids = run_dir / GRIDS_DIR
    candidates = [(tmp, EVAL_FILE.fullmatch(_written(tmp)) or _written(tmp) in OWNED_FILES)
                  for tmp in stale_tmp_files(run_dir)]
    if grids.is_dir() and not grids.is_symlink():
        candidates += [(tmp, GRID_FILE.fullmatch(_written(tmp))) for tmp in stale_tmp_files(grids)]
    for tmp, flexae_wrote_it in candidates:
        if not flexae_wrote_it:  # only temporaries of files flexae writes: a user's NAME.123.tmp stays
            continue
        try:
            tmp.unlink()
            removed += 1
        except OSError:  # gone meanwhile, or a read-only folder: nothing to sweep then
            pass
    if removed:
        print(f"flexae: note: removed {removed} stale temporary file(s) left in {run_dir} by processes "
              f"that died while writing", file=sys.stderr)
    return removed


def _open_lock(path: Path) -> int:
    """The lock file's descriptor, never through a symlink, and only a regular file of flexae's own:
    one link (not a hard link to a file elsewhere) holding nothing but a PID."""
    if path.is_symlink():
        raise UserError(f"cannot lock {path.parent}: {path} is a symbolic link, which flexae never makes; "
                        f"remove it")
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | NOFOLLOW | os.O_NONBLOCK, 0o644)
    except OSError as exc:
        raise UserError(f"cannot lock {path.parent} ({exc.strerror or exc})") from None
    info = os.fstat(fd)
    problem = None
    if not stat.S_ISREG(info.st_mode):
        problem = "is not a regular file"
    elif info.st_nlink != 1:
        problem = f"has {info.st_nlink} hard links (flexae's lock has one)"
    elif not re.fullmatch(rb"\d*\n?", os.pread(fd, 64, 0)):
        problem = "holds something other than the PID flexae writes there"
    if problem:
        os.close(fd)
        raise UserError(f"cannot lock {path.parent}: {path} {problem}, so flexae did not write it; remove it")
    return fd


class RunFolderLock:
    """`with RunFolderLock(run_dir):` exclusive writer of the run folder (see the module docstring)."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / LOCK_NAME
        self._fd: int | None = None

    def __enter__(self) -> "RunFolderLock":
        if fcntl is None:
            return self
        fd = _open_lock(self.path)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise UserError(f"run folder {self.path.parent} is being written by another flexae process "
                            f"(PID {holder}); wait for it to finish or stop it") from None
        os.ftruncate(fd, 0)  # our own lock file (checked by _open_lock)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        sweep_stale(self.path.parent)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing releases the flock; the file stays (see the module docstring)
            self._fd = None

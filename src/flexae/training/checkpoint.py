"""Checkpoints and the other run-folder files, written so that a crash at any moment leaves a usable run.

Writes: every file is written to a temporary name, flushed and fsync'ed, then renamed over the old one
(`os.replace` is atomic on POSIX and Windows), and the folder entry is fsync'ed. A crash, SIGKILL or
power cut therefore leaves either the old complete file or the new complete file, never a mix; the
previous checkpoint stays in place until its successor is complete. `log.jsonl` is append-only: a
torn last line is skipped when read, and `rewind_log` drops it (and records of steps after the
checkpoint) when a run is resumed.

Loads: checkpoints hold only tensors and plain data (dicts, lists, numbers, strings) and are read with
`torch.load(weights_only=True)`, whose unpickler refuses every global outside that set, so a hostile
file raises before any of its code runs. The loaded dict is then checked field by field, so a file
that unpickles but is not a flexae checkpoint (or comes from a newer flexae) gets a one-line message.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import sys
import warnings
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterable

import torch

import flexae
from flexae.errors import UserError

CHECKPOINT_NAME = "checkpoint.pt"
REQUIRED_KEYS = ("config", "step", "model", "optimizers", "rng", "versions")


class UnsafeCheckpointError(UserError):
    """The file asks to import or call something a checkpoint never contains; nothing of it ran."""


class NonFiniteStateError(UserError):
    """Refused to save a state whose weights or optimizer moments hold NaN or infinity."""

    def __init__(self, message: str, names: list[str]):
        super().__init__(message)
        self.names = names


# --- versions and RNG -----------------------------------------------------------------------------

def rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def versions() -> dict[str, str]:
    return {"flexae": flexae.__version__, "torch": str(torch.__version__), "python": sys.version.split()[0]}


def _major(version: str) -> int | None:
    match = re.match(r"(\d+)\.\d+", version)
    return int(match.group(1)) if match else None


def check_versions(found: Any, path: Path) -> None:
    """A checkpoint must name the flexae version that wrote it, and not a newer major version."""
    written_by = found.get("flexae") if isinstance(found, dict) else None
    if not isinstance(written_by, str) or _major(written_by) is None:
        raise UserError(f"{path}: missing or garbled 'versions' entry ({found!r:.60}); it was not written "
                        f"by flexae, or was altered since")
    ours = _major(flexae.__version__)
    if _major(written_by) > ours:  # type: ignore[operator]
        raise UserError(f"{path} was written by flexae {written_by}, a newer major version than this "
                        f"flexae {flexae.__version__}; upgrade flexae to load it")


# --- atomic writes --------------------------------------------------------------------------------

def _fsync_folder(folder: Path) -> None:
    """Make a rename durable: fsync the folder entry (POSIX only; Windows cannot open folders)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Write `path` through `write(file)` so that readers only ever see the old or the new content."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")  # one fixed name: a crash leaves at most one stale file
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:  # also a second Ctrl-C: leave no half-written temporary behind
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError):  # disk full, permissions: the old file is still intact
            raise UserError(f"cannot write {path} ({exc.strerror or exc}); its previous version is kept") from None
        raise
    _fsync_folder(path.parent)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))


# --- saving ---------------------------------------------------------------------------------------

def _tensors(tree: Any, prefix: str = "") -> Iterable[tuple[str, torch.Tensor]]:
    """(dotted name, tensor) for every tensor in nested dicts and lists."""
    if isinstance(tree, torch.Tensor):
        yield prefix, tree
    elif isinstance(tree, dict):
        for key, value in tree.items():
            yield from _tensors(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(tree, (list, tuple)):
        for i, value in enumerate(tree):
            yield from _tensors(value, f"{prefix}.{i}")


def nonfinite_tensors(tree: Any) -> list[str]:
    """Names of the floating-point tensors in `tree` that hold a NaN or an infinity."""
    return [name for name, t in _tensors(tree)
            if t.is_floating_point() and not bool(torch.isfinite(t).all())]


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Atomically write `state` (tensors, dicts, lists, numbers, strings) to `path`.

    A state whose model or optimizer tensors are not finite is refused: the previous checkpoint is
    the last good one and must not be replaced by a diverged model.
    """
    bad = nonfinite_tensors({"model": state.get("model"), "optimizers": state.get("optimizers")})
    if bad:
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        raise NonFiniteStateError(f"refused to save {path}: {bad[0]}{more} holds NaN or infinity; "
                                  f"the previous checkpoint is kept", bad)
    atomic_write(Path(path), lambda f: torch.save(state, f))


# --- loading --------------------------------------------------------------------------------------

def _refusal(exc: pickle.UnpicklingError) -> str | None:
    """What torch's weights-only unpickler refused ("GLOBAL posix.system"), or None if it did not refuse."""
    text = str(exc)
    if "Weights only load failed" not in text:
        return None
    match = re.search(r"GLOBAL ([\w.]+)", text) or re.search(r"Unsupported (?:operand|class) ([^\s.]+)", text)
    return match.group(0) if match else "an object that is not a tensor or plain data"


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message, for one-line errors (its type if it has none)."""
    lines = str(exc).strip().splitlines()
    if not lines:
        return type(exc).__name__
    line = lines[0]
    if len(line) > 120:  # long library messages: the first sentence says what happened
        line = line.split(". ")[0]
    return line[:200]


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """The checked state dict of the flexae checkpoint at `path`; every problem is a one-line UserError."""
    path = Path(path)
    if not path.is_file():
        hint = ""
        if (path.parent / "config.json").is_file():
            hint = (": the run stopped before its first checkpoint (train.checkpoint_every); start it "
                    "again with --overwrite")
        raise UserError(f"no checkpoint at {path}{hint}")
    try:
        with warnings.catch_warnings():  # e.g. "Detected pickle protocol 4": noise for a user
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        refused = _refusal(exc)
        if refused is not None:
            raise UnsafeCheckpointError(
                f"refused to load {path}: it asks for {refused}, which a flexae checkpoint never holds "
                f"(only tensors and plain data are accepted; nothing in the file was run)") from None
        raise UserError(f"cannot load checkpoint {path}: truncated or corrupt ({first_line(exc)})") from None
    except Exception as exc:  # zip, EOF, storage and decoding errors all mean a damaged file
        raise UserError(f"cannot load checkpoint {path}: truncated or corrupt ({first_line(exc)})") from None
    check_state(state, path)
    return state


def check_state(state: Any, path: Path) -> None:
    """Check the layout of a loaded checkpoint, so later code can index it without surprises."""
    if not isinstance(state, dict):
        raise UserError(f"{path} is not a flexae checkpoint (it holds a {type(state).__name__}, not a dict)")
    if "versions" in state:  # first: a newer flexae may have changed the other entries
        check_versions(state["versions"], path)
    missing = [k for k in REQUIRED_KEYS if k not in state]
    if missing and missing != ["versions"]:
        raise UserError(f"{path} is not a flexae checkpoint: it lacks {', '.join(missing)}")
    if missing:
        check_versions(None, path)
    step = state["step"]
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        raise UserError(f"{path}: garbled step {step!r:.40}")
    if not isinstance(state["config"], dict):
        raise UserError(f"{path}: garbled config (a {type(state['config']).__name__}, not a dict)")
    model = state["model"]
    if not (isinstance(model, dict) and model
            and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in model.items())):
        raise UserError(f"{path}: garbled model weights (expected a dict of names to tensors)")
    if not isinstance(state["optimizers"], dict):
        raise UserError(f"{path}: garbled optimizer states")
    rng = state["rng"]
    if not (isinstance(rng, dict) and isinstance(rng.get("torch"), torch.Tensor)
            and rng["torch"].dtype == torch.uint8):
        raise UserError(f"{path}: garbled random-number-generator state")


# --- the JSONL log --------------------------------------------------------------------------------

def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Records of a JSONL file; a torn last line (a crash while appending) is skipped."""
    lines = Path(path).read_text(encoding="utf-8", errors="replace").splitlines()
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            if number == len(lines):
                break  # torn by a crash mid-write
            raise UserError(f"{path}, line {number}: not a JSON record") from None
        if isinstance(record, dict):
            records.append(record)
    return records


def rewind_log(path: Path, step: int) -> None:
    """Keep the records of steps <= `step` (those the checkpoint has seen), dropping a torn last line.

    A resumed run repeats the iterations after its checkpoint; without this, the log would hold
    them twice, the first time from the run that crashed.
    """
    path = Path(path)
    if not path.exists():
        return
    kept = [r for r in read_jsonl(path) if not (isinstance(r.get("step"), (int, float)) and r["step"] > step)]
    atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in kept))

"""Checkpoints, written so that a crash at any moment leaves a usable run.

Writes go through `flexae.files.atomic_write` (temporary file, fsync, rename): a crash, SIGKILL or
power cut leaves either the old complete checkpoint or the new complete one, never a mix; the
previous checkpoint stays in place until its successor is complete.

Loads: checkpoints hold only tensors and plain data (dicts, lists, numbers, strings) and are read with
`torch.load(weights_only=True)`, whose unpickler refuses every global outside that set, so a hostile
file raises before any of its code runs. The loaded dict is then checked field by field, so a file
that unpickles but is not a flexae checkpoint (or comes from a newer flexae) gets a one-line message.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import re
import sys
import threading
import warnings
from pathlib import Path
from typing import Any, Iterable

import torch

from flexae.errors import UserError
from flexae.finite import nonfinite_names, require_finite
from flexae.version import __version__
from flexae.files import atomic_write, first_line
from flexae.runs.layout import CONFIG_NAME

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
    return {"flexae": __version__, "torch": str(torch.__version__), "python": sys.version.split()[0]}


def _major(version: str) -> int | None:
    match = re.match(r"(\d+)\.\d+", version)
    return int(match.group(1)) if match else None


def check_versions(found: Any, path: Path) -> None:
    """A checkpoint must name the flexae version that wrote it, and not a newer major version."""
    written_by = found.get("flexae") if isinstance(found, dict) else None
    if not isinstance(written_by, str) or _major(written_by) is None:
        raise UserError(f"{path}: missing or garbled 'versions' entry ({found!r:.60}); it was not written "
                        f"by flexae, or was altered since")
    ours = _major(__version__)
    if _major(written_by) > ours:  # type: ignore[operator]
        raise UserError(f"{path} was written by flexae {written_by}, a newer major version than this "
                        f"flexae {__version__}; upgrade flexae to load it")


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
    return nonfinite_names(tree)


def tensor_digest(tree: Any, extra: str = "") -> str:
    """sha256 over the names, dtypes, shapes and bytes of every tensor in `tree` (and `extra`)."""
    digest = hashlib.sha256(extra.encode())
    for name, t in _tensors(tree):
        flat = t.detach().cpu().contiguous().reshape(-1)
        digest.update(f"|{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(memoryview(flat.view(torch.uint8).numpy()) if flat.numel() else b"")
    return digest.hexdigest()


def _state_digest(state: dict[str, Any]) -> str:
    body = {k: state.get(k) for k in ("model", "optimizers", "rng")}
    return tensor_digest(body, json.dumps([state.get("config"), state.get("step")], sort_keys=True, default=str))


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Atomically write `state` (tensors, dicts, lists, numbers, strings) to `path`, with a
    checksum of its config, step and tensors that `load_checkpoint` verifies.

    A state whose model or optimizer tensors are not finite is refused: the previous checkpoint is
    the last good one and must not be replaced by a diverged model.
    """
    bad = nonfinite_tensors({"model": state.get("model"), "optimizers": state.get("optimizers")})
    if bad:
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        raise NonFiniteStateError(f"refused to save {path}: {bad[0]}{more} holds NaN or infinity; "
                                  f"the previous checkpoint is kept", bad)
    state = {**state, "checksum": _state_digest(state)}
    atomic_write(Path(path), lambda f: torch.save(state, f))


def host_copy(tree: Any) -> Any:
    """`tree` with every tensor copied to host memory: a snapshot that later in-place updates of
    the originals (the next training iterations) do not reach."""
    if isinstance(tree, torch.Tensor):
        return tree.detach().to("cpu", copy=True)
    if isinstance(tree, dict):
        return {key: host_copy(value) for key, value in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(host_copy(value) for value in tree)
    return tree


class CheckpointWriter:
    """`save_checkpoint`, at once or in a writer thread.

    In the foreground (the CPU: a thread would only take cores from training) `save` returns once
    the file is written. In the background (accelerators) `save` copies the state to host memory
    (a consistent snapshot of this step, the one stall) and returns; a thread checks, hashes and
    writes it while the device trains on. A FlexAE-SR MNIST checkpoint is ~480 MB, seconds of
    hashing and writing that would otherwise stop a GPU iterating every few milliseconds.
    The next `save` and `wait` wait for the write; `wait` re-raises what the write raised
    (a full disk, a non-finite tensor). An interrupted write leaves the previous file (atomic_write).
    """

    def __init__(self, background: bool):
        self.background = background
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def save(self, path: Path, state: dict[str, Any]) -> None:
        self.wait()
        if not self.background:
            save_checkpoint(path, state)
            return
        snapshot = host_copy(state)
        self._thread = threading.Thread(target=self._write, args=(Path(path), snapshot),
                                        name="flexae-checkpoint")  # not a daemon: exit waits for it
        self._thread.start()

    def _write(self, path: Path, state: dict[str, Any]) -> None:
        try:
            save_checkpoint(path, state)
        except BaseException as exc:  # noqa: BLE001 - handed to the training thread by wait()
            self._error = exc

    def wait(self, raise_error: bool = True) -> None:
        """Until the write in flight (if any) is done; then raise its error, if any and asked to."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        error, self._error = self._error, None
        if error is not None and raise_error:
            raise error


def check_finite_state(state: dict[str, Any], path: Path) -> None:
    """A loaded checkpoint's weights and optimizer states are finite (save_checkpoint never writes
    others, so a non-finite one was altered, or written by something else)."""
    require_finite({"model": state.get("model"), "optimizers": state.get("optimizers")}, path,
                   "this checkpoint cannot be used (train again with --overwrite, or use a good copy)")


# --- loading --------------------------------------------------------------------------------------

def _refusal(exc: pickle.UnpicklingError, path: Path) -> str | None:
    """What torch's weights-only unpickler refused ("GLOBAL posix.system"), or None if it did not refuse."""
    text = str(exc)
    if "Weights only load failed" not in text:
        return None
    # A refused import or class is an attempt to run code; so is a bare pickle stream (it starts
    # with the PROTO opcode 0x80) using opcodes the safe unpickler does not accept. Any other error
    # (random bytes, a truncated file) is damage, reported as such.
    match = re.search(r"GLOBAL ([\w.]+)", text) or re.search(r"Unsupported class ([^\s.]+)", text)
    if match:
        return match.group(0)
    operand = re.search(r"Unsupported operand \d+", text)
    with open(path, "rb") as f:
        is_pickle_stream = f.read(1) == b"\x80"
    return "a pickle stream that is not tensors and plain data" if operand and is_pickle_stream else None


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """The checked state dict of the flexae checkpoint at `path`; every problem is a one-line UserError."""
    path = Path(path)
    if not path.is_file():
        hint = ""
        if (path.parent / CONFIG_NAME).is_file():
            hint = (": the run stopped before its first checkpoint (train.checkpoint_every); start it "
                    "again with --overwrite")
        raise UserError(f"no checkpoint at {path}{hint}")
    try:
        with warnings.catch_warnings():  # e.g. "Detected pickle protocol 4": noise for a user
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        refused = _refusal(exc, path)
        if refused is not None:
            raise UnsafeCheckpointError(
                f"refused to load {path}: it asks for {refused}, which a flexae checkpoint never holds "
                f"(only tensors and plain data are accepted; nothing in the file was run)") from None
        raise UserError(f"cannot load checkpoint {path}: truncated or corrupt ({first_line(exc)})") from None
    except Exception as exc:  # zip, EOF, storage and decoding errors all mean a damaged file
        raise UserError(f"cannot load checkpoint {path}: truncated or corrupt ({first_line(exc)})") from None
    check_state(state, path)
    check_checksum(state, path)
    return state


def check_checksum(state: dict[str, Any], path: Path) -> None:
    """Checkpoints written by this flexae carry a checksum (older ones none): a file whose bytes
    changed after it was written (a flipped bit inside a tensor) is reported as damaged."""
    if "checksum" not in state:
        return
    if state["checksum"] != _state_digest(state):
        raise UserError(f"{path} is damaged: its contents do not match the checksum written with them "
                        f"(the file changed after it was saved); use a good copy, or train again with --overwrite")


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

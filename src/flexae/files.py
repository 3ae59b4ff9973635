"""The one way flexae writes files: atomically, so a crash at any moment leaves either the old
complete file or the new complete file, never a mix. Also the JSONL reader, one-line error text
and a file's content id.

Every file is written to a temporary name beside the target, flushed and fsync'ed, then renamed over
the old one (`os.replace` is atomic on POSIX and Windows), and the folder entry is fsync'ed. Run
folders (flexae.runs), feature and data caches and image grids all write through `atomic_write`.

Nothing is written through a symbolic link: the temporary file is created new (`O_EXCL |
O_NOFOLLOW`), and the rename replaces a symlink at the target itself, never the file it points to;
`append_jsonl` refuses a symlink or any non-regular file. A temporary file is named
`NAME.PID.tmp` (`tmp_name`), so a stale one left by a killed process can be recognised
(`stale_tmp_files`) and swept.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterator

from flexae.errors import UserError


def content_id(path: Path) -> str:
    """``NAME:HASH`` of a file (the first 16 hex digits of its SHA-256), so that what is derived from
    it (cached features, statistics) changes when its content does."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 22), b""):
            digest.update(chunk)
    return f"{Path(path).name}:{digest.hexdigest()[:16]}"


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message, for one-line errors (its type if it has none)."""
    lines = str(exc).strip().splitlines()
    if not lines:
        return type(exc).__name__
    line = lines[0]
    if len(line) > 120:  # long library messages: the first sentence says what happened
        line = line.split(". ")[0]
    return line[:200]


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


# Flags that never follow a symbolic link at the last path component (0 where the OS has none).
NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def tmp_name(path: Path, pid: int | None = None) -> Path:
    """The temporary file of `path` written by process `pid` (this one): NAME.PID.tmp."""
    return path.with_name(f"{path.name}.{os.getpid() if pid is None else pid}.tmp")


def _new_file(tmp: Path) -> BinaryIO:
    """Create `tmp` afresh for writing, never through a symlink; an old file of that name (left by
    an earlier process with this PID) is removed first (unlink removes a symlink, not its target)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | NOFOLLOW | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(tmp, flags, 0o666)
    except FileExistsError:
        tmp.unlink()
        fd = os.open(tmp, flags, 0o666)
    return os.fdopen(fd, "wb")


# torch.save turns a failed write (a full disk) into RuntimeErrors of its zip writer with these texts.
_TORCH_WRITE_FAILURES = ("inline_container.cc", "PytorchStreamWriter", "file write failed")


def _write_failure(exc: BaseException) -> str | None:
    """Why a write failed, for a one-line error; None for errors that are not write failures."""
    if isinstance(exc, OSError):
        return " ".join(str(exc.strerror or exc).split())
    if isinstance(exc, RuntimeError) and any(text in str(exc) for text in _TORCH_WRITE_FAILURES):
        return f"the write failed, is the disk full? torch: {first_line(exc)}"
    return None


def atomic_write(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Write `path` through `write(file)` so that readers only ever see the old or the new content."""
    path = Path(path)
    # A name of this process's own: two writers never share a temporary file.
    tmp = tmp_name(path)
    try:
        with _new_file(tmp) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:  # also a second Ctrl-C: leave no half-written temporary behind
        try:
            tmp.unlink(missing_ok=True)
        except OSError:  # e.g. a read-only file system, where the temporary was never created
            pass
        reason = _write_failure(exc)
        if reason is not None:  # disk full, permissions: the old file is still intact
            kept = "its previous version is kept" if path.exists() else "nothing was written"
            raise UserError(f"cannot write {path} ({reason}); {kept}") from None
        raise
    _fsync_folder(path.parent)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def save_figure(fig: Any, path: Path, dpi: int = 100) -> Path:
    """Write a matplotlib figure atomically, in the format its suffix names (.png, .pdf, .svg)."""
    path = Path(path)
    atomic_write(path, lambda f: fig.savefig(f, format=path.suffix.lstrip(".") or "png", dpi=dpi))
    return path


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Records of a JSONL file; a torn last line (a crash while appending) is skipped."""
    try:
        lines = Path(path).read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as exc:  # a folder in its place, permissions
        raise UserError(f"cannot read {path} ({exc.strerror or exc})") from None
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


def open_regular(path: Path, flags: int, what: str = "write", mode: int = 0o644) -> int:
    """os.open(path, flags) that refuses a symbolic link or a non-regular file (a FIFO, a device,
    a folder) with a one-line UserError, so a file in a run folder cannot be aimed elsewhere."""
    if Path(path).is_symlink():
        raise UserError(f"cannot {what} {path}: it is a symbolic link (flexae writes only regular files "
                        f"there); remove it")
    fd = os.open(path, flags | NOFOLLOW | os.O_NONBLOCK, mode)  # O_NONBLOCK: a FIFO must not hang us
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise UserError(f"cannot {what} {path}: it is not a regular file; remove it")
    return fd


def append_jsonl(path: Path, record: dict[str, Any]) -> None:
    """Append one record as a line; append-only, so a crash tears at most the last line."""
    try:
        fd = open_regular(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, "append to")
        with os.fdopen(fd, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
    except OSError as exc:  # disk full, read-only file system, a folder in its place
        raise UserError(f"cannot append to {path} ({exc.strerror or exc})") from None


def stale_tmp_files(folder: Path) -> Iterator[Path]:
    """Temporary files NAME.PID.tmp (see `tmp_name`) in `folder` whose writer process is dead."""
    for entry in Path(folder).glob("*.*.tmp"):
        pid = entry.name[:-len(".tmp")].rpartition(".")[2]
        if pid.isdigit() and not _alive(int(pid)) and (entry.is_file() or entry.is_symlink()):
            yield entry


def _alive(pid: int) -> bool:
    """Whether process `pid` exists (this one counts; Windows: assumed alive, nothing is swept)."""
    if pid == os.getpid() or os.name != "posix":
        return True
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: it exists, owned by someone else
        return True
    return True

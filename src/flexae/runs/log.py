"""The run's JSONL log: append-only, so a crash tears at most its last line, which is skipped when
read; `rewind_log` drops it (and the records of steps after the checkpoint) when a run is resumed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from flexae.files import append_jsonl, atomic_write_text, read_jsonl
from flexae.runs.layout import LOG_NAME


class RunLog:
    """Append-only JSONL log; floats are rounded for readability."""

    def __init__(self, path: Path):
        self.path = path
        self.tensorboard: Any = None  # an object with .scalars(record) mirroring every record, when set

    def write(self, record: dict[str, Any]) -> None:
        clean = {k: (round(v, 6) if isinstance(v, float) else v) for k, v in record.items()}
        append_jsonl(self.path, clean)
        if self.tensorboard is not None:
            self.tensorboard.scalars(record)


def read_log(run_dir: Path) -> list[dict[str, Any]]:
    return read_jsonl(Path(run_dir) / LOG_NAME)  # skips a line torn by a crash


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

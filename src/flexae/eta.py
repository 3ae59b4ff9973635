"""How long a command will take: one `flexae: note: ...` line on stderr, before the long part.

A :class:`Notice` times the first units of the real work (training iterations, Inception images),
extrapolates to all of them and, only when the estimate exceeds :func:`threshold_seconds` (60 s,
or ``$FLEXAE_NOTICE_SECONDS``), says what will run, about how long it takes on this device and how
to shorten it. It is silent for short runs, and off with ``enabled=False`` (``--quiet``).

:func:`sequence` groups the training runs of one command (``flexae reproduce``): the first run
that trains gives one note for all of them, the later runs none.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator, TypeVar

from flexae.errors import UserError

THRESHOLD_ENV = "FLEXAE_NOTICE_SECONDS"
DEFAULT_THRESHOLD_S = 60.0
T = TypeVar("T")


def threshold_seconds() -> float:
    """Estimates above this many seconds are announced: $FLEXAE_NOTICE_SECONDS, default 60."""
    text = os.environ.get(THRESHOLD_ENV, "").strip()
    if not text:
        return DEFAULT_THRESHOLD_S
    try:
        value = float(text)
    except ValueError:
        raise UserError(f"{THRESHOLD_ENV} must be a number of seconds, got {text!r}") from None
    if value < 0:
        raise UserError(f"{THRESHOLD_ENV} must be >= 0, got {text!r}")
    return value


def duration_text(seconds: float) -> str:
    """Rounded for a person: 45 s, 12 min, 3 h 20 min, 2 d 5 h."""
    if seconds < 60:
        return f"{max(1, round(seconds))} s"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(round(seconds / 3600), 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def rate_text(seconds_per_unit: float, unit: str) -> str:
    """"27.5 s per iteration", "310 ms per iteration", or "3.2 images/s" where units are fast."""
    if seconds_per_unit >= 1:
        return f"{seconds_per_unit:.3g} s per {unit}"
    if seconds_per_unit >= 1e-3 and unit != "image":
        return f"{seconds_per_unit * 1e3:.3g} ms per {unit}"
    return f"{1 / seconds_per_unit:.3g} {unit}s/s"


def _stderr(line: str) -> None:
    """Through tqdm, so that a progress bar on stderr is redrawn below the line, not cut by it."""
    from tqdm.auto import tqdm
    tqdm.write(line, file=sys.stderr)


@dataclass
class RunSequence:
    """The training runs of one command: ``runs`` of them at most (finished ones are reused)."""

    label: str      # e.g. "reproduce fig2"
    runs: int       # at most this many runs train
    shorten: str    # how to shorten the whole command
    decided: bool = False  # a run has been timed: later runs say nothing


_SEQUENCE: contextvars.ContextVar[RunSequence | None] = contextvars.ContextVar("flexae_eta_sequence", default=None)


@contextlib.contextmanager
def sequence(label: str, runs: int, shorten: str) -> Iterator[RunSequence]:
    """Within this block, :func:`training_notice` speaks once for all ``runs`` runs."""
    token = _SEQUENCE.set(RunSequence(label, max(1, runs), shorten))
    try:
        yield _SEQUENCE.get()
    finally:
        _SEQUENCE.reset(token)


@dataclass
class Notice:
    """Times the real work as it runs; announces once, when the estimate is known.

    Call :meth:`tick` after each unit (or batch of units) of work; the first ``warmup`` ticks
    (set-up: lazy initialisation, CUDA graph capture) are not timed. The estimate is made once
    ``min_seconds`` have been timed or ``max_units`` units done, whichever comes first.
    """

    what: str                  # what will run, e.g. "5000 iterations of flexae-sr on mnist"
    total: int                 # units of work in all (those still to do)
    shorten: str               # how to make it shorter, e.g. "pass --steps N for fewer"
    device: str                # where it runs, as the note names it
    unit: str = "iteration"
    warmup: int = 1            # ticks not timed
    min_seconds: float = 2.0   # time at least this long before estimating...
    max_units: int = 20        # ...unless this many units are done first
    enabled: bool = True       # False: never speaks (--quiet)
    scale: float = 1.0         # the estimate covers `scale` times this work (a sequence of runs)
    write: Callable[[str], None] = _stderr
    clock: Callable[[], float] = time.perf_counter
    sync: Callable[[], None] | None = None  # waits for queued accelerator work before the clock is read
    on_decided: Callable[[], None] | None = None
    line: str | None = field(default=None, init=False)  # what was announced, if anything
    _done: int = field(default=0, init=False)
    _ticks: int = field(default=0, init=False)
    _timed_units: int = field(default=0, init=False)
    _start: float | None = field(default=None, init=False)
    _decided: bool = field(default=False, init=False)

    def begin(self) -> None:
        """Start the clock now, unless a tick already did (for work whose first unit is timed)."""
        if self._start is None:
            self._start = self._now()

    def _now(self) -> float:
        if self.sync is not None:
            self.sync()
        return self.clock()

    def tick(self, units: int = 1) -> None:
        """``units`` more units of work are done."""
        if self._decided or not self.enabled:
            return
        self._done += units
        self._ticks += 1
        if self._ticks <= self.warmup:
            self._start = self._now()  # the timed span starts after the warm-up
            return
        if self._start is None:  # no begin(): this first tick only starts the clock
            self._start = self._now()
            return
        self._timed_units += units
        elapsed = self._now() - self._start
        if elapsed < self.min_seconds and self._timed_units < self.max_units and self._done < self.total:
            return
        self._decide(elapsed / self._timed_units)

    def _decide(self, seconds_per_unit: float) -> None:
        self._decided = True
        if self.on_decided is not None:
            self.on_decided()
        self.line = notice_line(self.what, seconds_per_unit, self.total * self.scale, self.device,
                                self.shorten, self.unit, self._timed_units)
        if self.line is not None:
            self.write(self.line)


def estimate_seconds(seconds_per_unit: float, units: float) -> float:
    """The whole work's time from the timed rate (extrapolated linearly)."""
    return seconds_per_unit * units


def notice_line(what: str, seconds_per_unit: float, units: float, device: str, shorten: str,
                unit: str = "iteration", timed: int = 1, threshold: float | None = None) -> str | None:
    """The one-line note, or None when the estimate is under the threshold."""
    seconds = estimate_seconds(seconds_per_unit, units)
    if seconds <= (threshold_seconds() if threshold is None else threshold):
        return None
    plural = unit if timed == 1 else unit + "s"
    return (f"flexae: note: {what} will take about {duration_text(seconds)} on {device} "
            f"({rate_text(seconds_per_unit, unit)}, timed on {timed} {plural}); {shorten}")


def training_notice(what: str, total: int, shorten: str, device: str, enabled: bool = True,
                    unit: str = "iteration", sync: Callable[[], None] | None = None) -> Notice:
    """A notice for a training loop; inside :func:`sequence`, one for all of its runs."""
    seq = _SEQUENCE.get()
    if seq is None:
        return Notice(what, total, shorten, device, unit=unit, enabled=enabled, sync=sync)
    if seq.decided:
        return Notice(what, total, shorten, device, unit=unit, enabled=False)

    def decided() -> None:
        seq.decided = True

    return Notice(f"{seq.label} (up to {seq.runs} runs like this one: {what})", total, seq.shorten, device,
                  unit=unit, enabled=enabled, scale=seq.runs, sync=sync, on_decided=decided)


def synchronizer(device) -> Callable[[], None] | None:
    """For a torch device: CUDA runs work asynchronously, so the clock is read once the queued
    work is done; None elsewhere (the CPU's work is done when the call returns)."""
    if getattr(device, "type", None) != "cuda":
        return None
    import torch
    return lambda: torch.cuda.synchronize(device)


def timed(items: Iterable[T], notice: Notice) -> Iterator[T]:
    """Yield ``items``, ticking ``notice`` after the loop body has run for each."""
    for item in items:
        yield item
        notice.tick()

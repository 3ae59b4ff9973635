"""Graceful stop: SIGINT (Ctrl-C) and SIGTERM (`kill`, job schedulers) end a run at the next
iteration boundary, with a checkpoint, instead of killing it mid-step.

While `GracefulStop` is active the first such signal only sets `signal_name`; the training loop
sees it after the current iteration, saves a checkpoint and raises `TrainingStopped`, which the CLI
prints (with the command that resumes the run) before exiting with status 128 + the signal
(130 for SIGINT, 143 for SIGTERM). A second signal raises
KeyboardInterrupt at once, for a user who does not want to wait; checkpoint writes are atomic, so
even that leaves the previous checkpoint intact.

After the last iteration (the checkpoint is saved; the ex-post sampler fit and the final evaluation
follow) there is no iteration boundary to wait for: inside `stop.at_once()` a stop signal raises
`StopNow` immediately, and the loop reports what was saved and what is left to do.

Handlers can only be installed from the main thread; elsewhere (e.g. a training thread in a
notebook server) `GracefulStop` does nothing and signals keep their usual effect. A signal that the
process was started with ignored (SIG_IGN, e.g. SIGINT for background jobs) stays ignored.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Any, Iterator

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class TrainingStopped(Exception):
    """The run stopped on request after saving a checkpoint at `step`; not an error."""

    def __init__(self, run_dir: Path, step: int, steps: int, signal_name: str, during: str | None = None):
        self.run_dir, self.step, self.steps, self.signal_name = Path(run_dir), step, steps, signal_name
        if during is None:
            message = (f"stopped by {signal_name} at step {step} of {steps}; checkpoint saved in "
                       f"{run_dir}. Resume with: flexae train --resume {run_dir}")
        else:  # after the last iteration: training is complete, a later phase was cut short
            message = (f"stopped by {signal_name} during {during}; training finished (step {step}) and its "
                       f"checkpoint is saved in {run_dir}")
            if during.startswith("the ex-post sampler fit"):
                message += f". Fit the sampler with: flexae fit-sampler {run_dir}"
        super().__init__(message)


class StopNow(Exception):
    """A stop signal inside `GracefulStop.at_once()`."""


class GracefulStop:
    """Context manager turning SIGINT/SIGTERM into a stop request (`requested`, `signal_name`)."""

    def __init__(self, signals: tuple[signal.Signals, ...] = STOP_SIGNALS):
        self.signals = signals
        self.signal_name: str | None = None
        self._previous: dict[signal.Signals, Any] = {}
        self._at_once = False

    @property
    def requested(self) -> bool:
        return self.signal_name is not None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        # Runs in the main thread between two bytecodes; it only records the request, so the step,
        # an evaluation or a checkpoint write in progress completes normally.
        if self.signal_name is not None:
            raise KeyboardInterrupt  # a second signal: the user does not want to wait
        self.signal_name = signal.Signals(signum).name
        if self._at_once:
            raise StopNow(self.signal_name)

    @contextlib.contextmanager
    def at_once(self) -> Iterator[None]:
        """A phase with nothing left to save: a stop signal (also one received before) raises StopNow."""
        if self.signal_name is not None:
            raise StopNow(self.signal_name)
        self._at_once = True
        try:
            yield
        finally:
            self._at_once = False

    def __enter__(self) -> "GracefulStop":
        if threading.current_thread() is not threading.main_thread():
            return self
        for sig in self.signals:
            previous = signal.getsignal(sig)
            if previous is signal.SIG_IGN:
                continue
            self._previous[sig] = previous
            signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous if previous is not None else signal.SIG_DFL)
        self._previous.clear()

"""Progress of a run, two ways (both implement `etl.pipeline.Progress`):

- `TerminalProgress`: one line redrawn in place on a terminal (done/total, rate, failures,
  elapsed time and ETA); log lines are written above it, never over it (it registers itself
  with `etl.logs`).
- `ProgressLog`: when stderr is not a terminal (cron, systemd, a container), one INFO log line
  every `every` seconds with `done`, `total`, `rate`, `failures`, `elapsed_s` and `eta_s`
  (fields in JSON logs).

The ETA is the ids left at the average rate since the start; it is unknown (None, `ETA ?`)
until an id is done, and when the total is unknown (ids streamed from a pipe).

Both take the clock as a parameter, so that tests can move time without sleeping.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TextIO

from . import logs

log = logging.getLogger(__name__)

Clock = Callable[[], float]
_CLEAR = "\r\x1b[2K"  # back to column 0 and erase the line
_BAR_WIDTH = 24


class _Counts:
    """done, total, failures and the rate since start."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.total: int | None = None
        self.done = 0
        self.failures = 0
        self.started = clock()

    def begin(self, total: int | None) -> None:
        self.total = total
        self.started = self.clock()

    def add(self, done: int, failures: int) -> None:
        self.done += done
        self.failures = failures

    def rate(self, now: float) -> float:
        elapsed = now - self.started
        return self.done / elapsed if elapsed > 0 else 0.0

    def elapsed(self, now: float) -> float:
        return max(0.0, now - self.started)

    def eta(self, now: float) -> float | None:
        """Seconds left at the average rate so far; None while it cannot be known."""
        rate = self.rate(now)
        if self.total is None or rate <= 0:
            return None
        return max(0, self.total - self.done) / rate


def duration(seconds: float | None) -> str:
    """42s, 3m05s, 2h07m; `?` for None."""
    if seconds is None:
        return "?"
    whole = int(round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


class ProgressLog:
    """A progress log line every `every` seconds of the run (checked as ids finish)."""

    def __init__(self, every: float, clock: Clock = time.monotonic) -> None:
        self.every = every
        self._counts = _Counts(clock)
        self._last = self._counts.started

    def start(self, total: int | None) -> None:
        self._counts.begin(total)
        self._last = self._counts.started

    def advance(self, done: int, failures: int = 0) -> None:
        self._counts.add(done, failures)
        now = self._counts.clock()
        if self.every > 0 and now - self._last >= self.every:
            self._last = now
            self._emit(now)

    def _emit(self, now: float) -> None:
        c = self._counts
        rate = round(c.rate(now), 2)
        elapsed = round(c.elapsed(now), 1)
        eta = c.eta(now)
        eta_s = None if eta is None else round(eta, 1)
        of = f"/{c.total}" if c.total is not None else ""
        log.info(
            "progress: %d%s ids done, %.1f ids/s, %d failed, %s elapsed, ETA %s",
            c.done,
            of,
            rate,
            c.failures,
            duration(elapsed),
            duration(eta),
            extra={
                "done": c.done,
                "total": c.total,
                "rate": rate,
                "failures": c.failures,
                "elapsed_s": elapsed,
                "eta_s": eta_s,
            },
        )

    def close(self) -> None:
        """Nothing to undo (same interface as TerminalProgress)."""


class TerminalProgress:
    """`fetching [#######-----] 120/1000 12% 34.5 ids/s 2 failed 3s ETA 26s`, redrawn at most
    every `interval` seconds."""

    def __init__(
        self,
        stream: TextIO,
        clock: Clock = time.monotonic,
        label: str = "fetching",
        interval: float = 0.1,
    ) -> None:
        self.stream = stream
        self.label = label
        self.interval = interval
        self._counts = _Counts(clock)
        self._drawn_at: float | None = None
        self._open = False

    def start(self, total: int | None) -> None:
        self._counts.begin(total)
        self._open = True
        logs.set_status_line(self)
        self.redraw()

    def advance(self, done: int, failures: int = 0) -> None:
        self._counts.add(done, failures)
        now = self._counts.clock()
        finished = self._counts.total is not None and self._counts.done >= self._counts.total
        if finished or self._drawn_at is None or now - self._drawn_at >= self.interval:
            self.redraw()

    def line(self) -> str:
        c = self._counts
        now = c.clock()
        parts = [self.label]
        if c.total:
            filled = min(_BAR_WIDTH, _BAR_WIDTH * c.done // c.total)
            parts.append(f"[{'#' * filled}{'-' * (_BAR_WIDTH - filled)}]")
            parts.append(f"{c.done}/{c.total} {100 * c.done // c.total}%")
        else:
            parts.append(f"{c.done}/{'?' if c.total is None else c.total}")
        parts.append(f"{c.rate(now):.1f} ids/s")
        parts.append(f"{c.failures} failed")
        parts.append(duration(c.elapsed(now)))
        if c.total is not None:
            parts.append(f"ETA {duration(c.eta(now))}")
        return " ".join(parts)

    def clear(self) -> None:
        if self._open:
            self.stream.write(_CLEAR)

    def redraw(self) -> None:
        if not self._open:
            return
        self.stream.write(_CLEAR + self.line())
        self.stream.flush()
        self._drawn_at = self._counts.clock()

    def close(self) -> None:
        """Leave the last state on its own line and stop coordinating with the logs."""
        if self._open:
            self.redraw()
            self.stream.write("\n")
            self.stream.flush()
            self._open = False
        logs.set_status_line(None)

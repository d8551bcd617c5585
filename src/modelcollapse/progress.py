"""Progress of a long loop as log lines, for jobs that train for minutes.

A progress bar redraws one terminal line; under Snakemake two jobs share the terminal,
and a job's log file would keep nothing of it. :class:`Progress` logs a whole line
instead, through the job's logger (so to the terminal and to ``logs/...``), at most
every ``interval`` seconds and once at the end::

    lm train: step 120/400 (30%), 3.1 step/s, 12,700 tokens/s, loss 2.314, 1m30s left

Display only: nothing computed depends on it, and it draws no random numbers.
"""

from __future__ import annotations

import logging
import time

log = logging.getLogger("modelcollapse")

# Seconds between two progress lines of one loop.
INTERVAL_SECONDS = 15.0


def duration(seconds: float) -> str:
    """``95`` -> ``"1m35s"``; ``3700`` -> ``"1h01m"``; under a minute ``"42s"``."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, sec = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{sec:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


class Progress:
    """Count ``total`` steps of ``what`` (``unit`` each); log a line now and then.

    ``update(items=...)`` also counts the items a step processed (tokens, images),
    reported as a rate in ``items_unit``; keyword ``values`` (a loss) are printed as
    given at the time of the line. ``enabled=False`` logs nothing.
    """

    def __init__(
        self,
        what: str,
        total: int,
        unit: str = "step",
        *,
        items_unit: str | None = None,
        interval: float = INTERVAL_SECONDS,
        enabled: bool = True,
        clock=time.perf_counter,
    ) -> None:
        self.what, self.total, self.unit = what, int(total), unit
        self.items_unit, self.interval, self.enabled = items_unit, interval, enabled
        self.clock = clock
        self.done = 0
        self.items = 0
        self.values: dict[str, float] = {}
        self.started = clock()
        self.last = self.started
        self.lines = 0

    def update(self, steps: int = 1, *, items: int = 0, **values: float) -> None:
        self.done += steps
        self.items += items
        self.values.update(values)
        now = self.clock()
        if self.enabled and self.done < self.total and now - self.last >= self.interval:
            self._line(now)

    def close(self) -> None:
        """The last line (total steps, average rates, elapsed time)."""
        if self.enabled and self.total > 0:
            self._line(self.clock(), final=True)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()

    def line(self, now: float, final: bool = False) -> str:
        elapsed = max(now - self.started, 1e-9)
        parts = [
            f"{self.what}: {self.unit} {self.done}/{self.total}"
            f" ({100 * self.done / max(self.total, 1):.0f}%)",
            f"{self.done / elapsed:.3g} {self.unit}/s",
        ]
        if self.items_unit and self.items:
            parts.append(f"{self.items / elapsed:,.0f} {self.items_unit}/s")
        parts += [f"{name} {value:.4g}" for name, value in self.values.items()]
        if final:
            parts.append(f"done in {duration(elapsed)}")
        elif self.done:
            parts.append(f"{duration(elapsed / self.done * (self.total - self.done))} left")
        return ", ".join(parts)

    def _line(self, now: float, final: bool = False) -> None:
        log.info("%s", self.line(now, final))
        self.last = now
        self.lines += 1

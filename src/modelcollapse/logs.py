"""Logging for the entry points: one log file per job, plus stderr."""

from __future__ import annotations

import logging
import sys
from pathlib import Path


def _log_uncaught(exc_type, exc, tb) -> None:
    """An entry point's uncaught error goes to its job log too, not only to stderr."""
    if issubclass(exc_type, KeyboardInterrupt):
        sys.__excepthook__(exc_type, exc, tb)
        return
    logging.getLogger("modelcollapse").critical(
        "%s: %s", exc_type.__name__, exc, exc_info=(exc_type, exc, tb)
    )


def setup_logging(
    log_file: str | Path | None = None, level: int = logging.INFO, context: str = ""
) -> None:
    """Log to stderr and ``log_file``; uncaught errors are logged to both as well.
    ``context`` (``"lm_replace gen 2"``) is put on every line: under Snakemake, the
    lines of jobs running side by side share one terminal."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file, mode="w"))
    where = f" [{context}]" if context else ""
    logging.basicConfig(
        level=level,
        handlers=handlers,
        force=True,
        format=f"%(asctime)s %(levelname)s %(name)s{where}: %(message)s",
    )
    logging.captureWarnings(True)
    sys.excepthook = _log_uncaught

"""Training progress from `spacy train` as numbers, not as its console table.

``student.train`` runs `spacy train` in a subprocess with ``spacy_evokd.ProgressLogger.v1`` wrapped
around the config's own logger: the config's logger still writes the table to the run's
train.log, and each evaluation also writes one line ``PREFIX + JSON`` (epoch, step, dev score,
losses) that ``parse`` reads back. The saved student gets its own logger block back
(``restore_logger``), so a shipped config does not need this package to train again.
"""

import json
import sys
from typing import Any, Callable, Dict, Optional

PREFIX = "[evokd-progress] "
LOGGER = "spacy_evokd.ProgressLogger.v1"


def make_logger(console: Optional[Callable] = None) -> Callable:
    """A spaCy logger (``setup(nlp, stdout, stderr) -> (log_step, finalize)``) that runs
    ``console`` (the config's own logger, already resolved) and adds one progress line per
    evaluation (spaCy calls ``log_step`` with None between evaluations)."""

    def setup(nlp, stdout=sys.stdout, stderr=sys.stderr):
        log_inner, finalize_inner = console(nlp, stdout, stderr) if console else (None, None)

        def log_step(info: Optional[Dict[str, Any]]) -> None:
            if log_inner is not None:
                log_inner(info)
            if info is None:
                return
            row = {
                "epoch": info.get("epoch"),
                "step": info.get("step"),
                "score": info.get("score"),
                "losses": {k: float(v) for k, v in (info.get("losses") or {}).items()},
            }
            stdout.write(PREFIX + json.dumps(row) + "\n")
            stdout.flush()

        def finalize() -> None:
            if finalize_inner is not None:
                finalize_inner()

        return log_step, finalize

    return setup


def wrap_logger(training: Dict[str, Any]) -> None:
    """Put the progress logger around ``training``'s logger block (in place)."""
    inner = training.get("logger") or {"@loggers": "spacy.ConsoleLogger.v1", "progress_bar": False}
    if inner.get("@loggers") != LOGGER:
        training["logger"] = {"@loggers": LOGGER, "console": inner}


def restore_logger(training: Dict[str, Any]) -> None:
    """The config's own logger block again (in place): what ``wrap_logger`` wrapped."""
    block = training.get("logger") or {}
    if block.get("@loggers") == LOGGER:
        training["logger"] = block["console"]


def parse(line: str) -> Optional[Dict[str, Any]]:
    """The progress row of a line the logger wrote, None for any other line (the table, warnings)."""
    if not line.startswith(PREFIX):
        return None
    try:
        row = json.loads(line[len(PREFIX) :])
    except ValueError:
        return None
    return row if isinstance(row, dict) else None

"""Checks a run makes before any work: whatever can be known to be wrong before the seed round
trains (minutes of CPU) or the first teacher request is paid for is reported then, in one line.

The [evokd] settings are checked by the schema in config.py and data files by data.read_docbin;
this module adds what needs the whole picture: the output directory, the seed's label coverage
and the teacher (its API key, and one cheap GET to its server).
"""

import logging
import os
from pathlib import Path
from typing import Any, Sequence

from spacy.tokens import Doc

from .config import ConfigError
from .data import DataError
from .ty import Task

logger = logging.getLogger("spacy_evokd.preflight")


class OutputDirError(ConfigError):
    """The output directory can't be used: a file is in the way, or it is not writable."""


def check_output_dir(path: Path) -> None:
    """``path`` is a writable directory, or can be created as one. Nothing is created here: a
    run that fails a later check leaves no empty directory behind."""
    path = Path(path)
    if path.exists() or path.is_symlink():
        if not path.is_dir():
            raise OutputDirError(f"output directory {path} exists and is not a directory: choose another path")
        where = path
    else:
        where = next(p for p in path.absolute().parents if p.exists())  # the one mkdir would write in
        if not where.is_dir():
            raise OutputDirError(f"output directory {path} can't be created: {where} is a file, not a directory")
    # os.access also says no for a read-only file system, even to root
    if not os.access(where, os.W_OK | os.X_OK):
        raise OutputDirError(f"output directory {path} can't be written: {where} is read-only for this user")


def check_label_coverage(docs: Sequence[Doc], task: Task, labels: Sequence[str], where: str) -> None:
    """Every configured label has an example in the seed round's training data. spaCy fixes a
    component's labels from its first training data and warm-started rounds keep them, so a
    label missing there would never be learned, however many samples the teacher writes."""
    found = {label for d in docs for label in task.doc_labels(d)}
    missing = [l for l in labels if l not in found]
    if missing:
        raise DataError(
            f"seed data {where} has no {task.label_unit} of label {missing[0]!r} ([evokd] labels {list(labels)}): "
            "add one, or remove the label from [evokd] labels (a label missing in round 0 is never learned)"
        )


def check_templates(teacher: Any, grounded: bool, plain: bool) -> None:
    """The prompt templates a prompted teacher reads only when first used (``grounded``:
    rewrite.<task>, ``plain`` (analysis = "none"): write.<task>) exist: a task from outside the
    package may bring none, and the run would stop after its seed round had trained."""
    template = getattr(teacher, "template", None)
    for step, needed in (("rewrite", grounded), ("write", plain)):
        if needed and template is not None:
            try:
                template(step)
            except ValueError as e:
                raise ConfigError(f"teacher: {e}") from None


def check_teacher(teacher: Any, reach: bool = True) -> None:
    """An LLM teacher's API key is set, and (``reach``) its server answers. Teachers without a
    server (the simulated one) and models that don't offer these checks pass."""
    model = getattr(teacher, "model", None)
    if hasattr(model, "check_api_key"):
        model.check_api_key()
    if reach and hasattr(model, "check_reachable"):
        from .models.openai_compatible import TeacherRequestError

        try:
            model.check_reachable()
        except TeacherRequestError as e:
            raise TeacherRequestError(
                f"teacher check: {e}; start the server or fix base_url "
                "(--skip-teacher-check or [evokd] check_teacher = false skips this check)"
            ) from None
        logger.info("teacher %s: server reachable", getattr(model, "base_url", "?"))

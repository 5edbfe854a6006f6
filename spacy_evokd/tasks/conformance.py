"""A module for the type checker only (nothing imports it): mypy, run by .ci/run, proves here that
each shipped task has every member of ty.Task (its factory in ``tasks/__init__.py`` returns a Task
too) and the optional capabilities the package relies on it having. A task that loses a member, or
changes one's type, fails the check here, not in the middle of a run."""

from typing import List

from ..ty import CountScored, Reviewable, Task
from .ner import NERTask
from .textcat import TextcatTask
from .textcat_multilabel import TextcatMultilabelTask


def shipped_tasks(textcat: TextcatTask, multilabel: TextcatMultilabelTask, ner: NERTask) -> None:
    # each list element is checked against the declared protocol
    _required: List[Task] = [textcat, multilabel, ner]
    _scored_by_counts: List[CountScored] = [textcat, multilabel, ner]
    _review_files: List[Reviewable] = [textcat, multilabel, ner]

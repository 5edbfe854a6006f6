"""A module for the type checker only (nothing imports it): mypy, run by .ci/run, proves here that
each shipped task has every member of ty.Task (its factory in ``tasks/__init__.py`` returns a Task
too) and the optional capabilities the package relies on it having. A task that loses a member, or
changes one's type, fails the check here, not in the middle of a run."""

from ..ty import CountScored, Reviewable, Task
from .ner import NERTask
from .textcat import TextcatTask
from .textcat_multilabel import TextcatMultilabelTask


def textcat(task: TextcatTask) -> None:
    _required: Task = task
    _counts: CountScored = task
    _review: Reviewable = task


def textcat_multilabel(task: TextcatMultilabelTask) -> None:
    _required: Task = task
    _counts: CountScored = task
    _review: Reviewable = task


def ner(task: NERTask) -> None:
    _required: Task = task
    _counts: CountScored = task
    _review: Reviewable = task

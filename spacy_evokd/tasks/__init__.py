"""The task registry: ``[evokd] task = "textcat"`` names one of these; ``get_task`` gives its
Task object (ty.Task), which owns everything task-specific.

A new task is a module here with a class implementing ty.Task and one line in ``_MODULES``, or
a Task object from anywhere given to ``register_task``; the loop, student, validator, teachers,
selection and report need no change. Modules are imported
on first use: the config schema needs only the names, and ``import spacy_evokd.tasks`` stays cheap.
"""
import importlib
from typing import Dict, List, Tuple, Union

from ..ty import Task

# task name -> (module under spacy_evokd.tasks, class); versioned like the registered functions
_MODULES: Dict[str, Tuple[str, str]] = {
    "textcat": ("textcat", "TextcatTask"),
    "ner": ("ner", "NERTask"),
    "textcat_multilabel": ("textcat_multilabel", "TextcatMultilabelTask"),
}
TASK_NAMES: Tuple[str, ...] = tuple(_MODULES)

_loaded: Dict[str, Task] = {}


def register_task(name: str, task: Task) -> None:
    """Make ``task`` the Task named ``name`` ([evokd] task = name), e.g. a task a test or another
    package brings; a built-in name is replaced."""
    _loaded[name] = task


def task_names() -> Tuple[str, ...]:
    """The built-in tasks' names, then the registered ones'."""
    return TASK_NAMES + tuple(name for name in _loaded if name not in _MODULES)


def get_task(task: Union[str, Task]) -> Task:
    """The Task named ``task`` (a Task passes through, so callers may hold either); DataError
    for a name that is no task."""
    if not isinstance(task, str):
        return task
    if task not in _loaded:
        if task not in _MODULES:
            from ..data import DataError

            raise DataError(f"unknown task {task!r}: expected one of {', '.join(task_names())}")
        module, cls = _MODULES[task]
        _loaded[task] = getattr(importlib.import_module(f"{__name__}.{module}"), cls)()
    return _loaded[task]


def all_tasks() -> List[Task]:
    return [get_task(name) for name in task_names()]

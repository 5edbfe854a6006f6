"""The task registry: ``[evokd] task = "textcat"`` names a registered task; ``get_task`` gives its
Task object (ty.Task), which owns everything task-specific.

Tasks are registered the way spacy-llm registers its tasks: in a catalogue registry,
``spacy.util.registry.evokd_tasks``, under versioned names ("spacy_evokd.textcat.v1") whose
function takes no arguments and returns the Task. Another package adds a task with
``@registry.evokd_tasks("my_pkg.spancat.v1")`` or, without being imported first, with an entry
point in the group ``thinc_evokd_tasks`` (spaCy creates its registries in thinc's namespace, as
spacy-llm's ``thinc_llm_tasks``); its config says ``task = "my_pkg.spancat.v1"``. The short names
of this package's tasks ("textcat", "ner", "textcat_multilabel", what configs and ``--task``
have always said) stand for the current version of each.

Only the edges look a task up by name (the CLI, the config, ``init``, the teachers built from a
config, a run directory read back): every module below them takes a Task object, so a task module
can import them without an import circle (tests/test_structure.py checks it). Each factory imports
its module on first lookup: spaCy imports our entry points on every pipeline it creates, and the
config schema needs only the names.
"""

from typing import Callable, Dict, List, Tuple

from spacy.util import registry

from ..ty import Task

if not hasattr(registry, "evokd_tasks"):  # one process-wide registry: a second import must not recreate it
    registry.create("evokd_tasks", entry_points=True)
# registry.create sets the attribute at run time: spaCy's registry class doesn't declare it for mypy
TASK_REGISTRY = registry.evokd_tasks  # type: ignore[attr-defined]

# the config's short name -> the registered name of the current version
SHORT_NAMES: Dict[str, str] = {
    "textcat": "spacy_evokd.textcat.v1",
    "ner": "spacy_evokd.ner.v1",
    "textcat_multilabel": "spacy_evokd.textcat_multilabel.v1",
}


@TASK_REGISTRY("spacy_evokd.textcat.v1")
def make_textcat_task() -> Task:
    from .textcat import TextcatTask

    return TextcatTask()


@TASK_REGISTRY("spacy_evokd.ner.v1")
def make_ner_task() -> Task:
    from .ner import NERTask

    return NERTask()


@TASK_REGISTRY("spacy_evokd.textcat_multilabel.v1")
def make_textcat_multilabel_task() -> Task:
    from .textcat_multilabel import TextcatMultilabelTask

    return TextcatMultilabelTask()


def task_names() -> Tuple[str, ...]:
    """The names a config may give: the short names, then every other package's registered tasks
    (this package's versioned names are accepted too; each is listed by its short name)."""
    aliased = set(SHORT_NAMES.values())
    others = sorted(name for name in TASK_REGISTRY.get_all() if name not in aliased)
    return tuple(SHORT_NAMES) + tuple(others)


TASK_NAMES: Tuple[str, ...] = tuple(SHORT_NAMES)  # this package's tasks; task_names() adds the registered others

_loaded: Dict[str, Task] = {}


def register_task(name: str, task: Task) -> None:
    """Register the Task object ``task`` under ``name`` (a task a test or a notebook builds, with
    no factory of its own), like any other registered task: the config, ``task_names`` and
    ``get_task`` see it. A name already registered (a short name: its current version) is replaced."""
    registered = SHORT_NAMES.get(name, name)
    TASK_REGISTRY.register(registered, func=lambda: task)
    _loaded[registered] = task


def unregister_task(name: str) -> None:
    """Forget a task ``register_task`` registered (a test's toy task must not outlive the test: the
    config's list of known tasks would name it)."""
    import catalogue

    registered = SHORT_NAMES.get(name, name)
    catalogue._remove(TASK_REGISTRY.namespace + (registered,))
    _loaded.pop(registered, None)


def is_task_name(name: str) -> bool:
    """Whether ``name`` is a short name or a registered task (imports none of our task modules)."""
    return name in SHORT_NAMES or name in TASK_REGISTRY


def get_task(name: str) -> Task:
    """The Task named ``name`` (a short name or a registered one), one object per task (a short
    name and its versioned name give the same); DataError for a name that is no task."""
    registered = SHORT_NAMES.get(name, name)
    if registered not in _loaded:
        if not is_task_name(name):
            from ..data import DataError

            raise DataError(f"unknown task {name!r}: expected one of {', '.join(task_names())}")
        factory: Callable[[], Task] = TASK_REGISTRY.get(registered)
        _loaded[registered] = factory()
    return _loaded[registered]


def all_tasks() -> List[Task]:
    """One Task of each registered task (a short name's task once, under its short name)."""
    return [get_task(name) for name in task_names()]

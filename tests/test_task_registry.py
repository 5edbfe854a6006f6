"""The task registry (spacy_evokd/tasks/__init__.py): versioned registered names, the short config
names, tasks another package adds (by decorator or entry point), and lazy task modules."""

import subprocess
import sys
from importlib.metadata import EntryPoint, EntryPoints

import catalogue
import pytest
from spacy.util import registry

from spacy_evokd import tasks
from spacy_evokd.config import ConfigError, validate_settings
from spacy_evokd.data import DataError
from spacy_evokd.tasks import TASK_NAMES, get_task, task_names
from spacy_evokd.tasks.textcat import TextcatTask
from spacy_evokd.ty import Task


class ToyTask(TextcatTask):
    """Another package's task: textcat under its own name."""

    name = "acme_toy"


def make_toy_task() -> Task:  # what another package's entry point names
    return ToyTask()


@pytest.fixture
def forget():
    """Names this test registers, removed from catalogue's process-wide registry afterwards."""
    names = []
    yield names
    for name in names:
        catalogue.REGISTRY.pop(("thinc", "evokd_tasks", name), None)
        tasks._loaded.pop(name, None)


def test_short_and_versioned_names_are_one_task():
    # first the short names (then whatever else this process registered: tests/test_toy_task.py's task)
    assert TASK_NAMES == ("textcat", "ner", "textcat_multilabel") == task_names()[:3]
    for short in TASK_NAMES:
        task = get_task(short)
        assert isinstance(task, Task) and task.name == short
        assert get_task(f"spacy_evokd.{short}.v1") is task
        assert registry.evokd_tasks.get(f"spacy_evokd.{short}.v1")().name == short
    with pytest.raises(DataError, match="unknown task 'pos': expected one of textcat, ner, textcat_multilabel"):
        get_task("pos")


def test_the_config_takes_a_versioned_name():
    settings = validate_settings({"task": "spacy_evokd.ner.v1", "labels": ["PER"]})
    assert settings.task == "spacy_evokd.ner.v1" and settings.task_object is get_task("ner")
    assert settings.metric == "entity F1"
    with pytest.raises(ConfigError, match=r"\[evokd\] task: 3 is not a string"):
        validate_settings({"task": 3, "labels": ["PER"]})


def test_another_packages_task_by_decorator(forget):
    forget.append("acme.toy.v1")
    registry.evokd_tasks("acme.toy.v1")(make_toy_task)
    assert get_task("acme.toy.v1").name == "acme_toy" and get_task("acme.toy.v1") is get_task("acme.toy.v1")
    assert "acme.toy.v1" in task_names()[3:]
    assert validate_settings({"task": "acme.toy.v1", "labels": ["a"]}).task_object.name == "acme_toy"
    with pytest.raises(ConfigError, match="expected one of 'textcat', 'ner', 'textcat_multilabel'.* 'acme.toy.v1'"):
        validate_settings({"task": "acme.toy", "labels": ["a"]})


def test_another_packages_task_by_entry_point(monkeypatch, forget):
    """An installed package's entry point in the group thinc_evokd_tasks, found without
    importing the package first (catalogue reads the installed entry points once: patched here)."""
    forget.append("acme.ep.v1")
    ep = EntryPoint(name="acme.ep.v1", value=f"{__name__}:make_toy_task", group="thinc_evokd_tasks")
    monkeypatch.setattr(catalogue, "AVAILABLE_ENTRY_POINTS", EntryPoints([ep]))
    assert registry.evokd_tasks.entry_point_namespace == "thinc_evokd_tasks"
    assert "acme.ep.v1" in task_names() and get_task("acme.ep.v1").name == "acme_toy"


def test_importing_the_registry_loads_no_task_module():
    code = (
        "import sys, spacy_evokd.tasks as t; loaded = lambda: sorted(m for m in sys.modules if m.startswith('spacy_evokd.tasks.')); "
        "print(loaded()); t.get_task('ner'); print(loaded())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.splitlines()
    assert out == ["[]", "['spacy_evokd.tasks.base', 'spacy_evokd.tasks.ner']"]

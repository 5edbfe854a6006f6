"""The [evokd] config section: loop settings + the teacher block.

It lives in the student's config (next to [nlp], [components], [training]) so one file says
everything about a run and `--evokd.rounds 3` style overrides work; the student's training config
never contains it (see student.student_config).
"""
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from confection import Config

from .data import DataError
from .teachers.base import TASKS, Teacher


class ConfigError(ValueError):
    pass


@dataclass
class EvokdSettings:
    task: str
    labels: List[str]
    task_description: str = ""  # what the texts are; shown to LLM teachers
    label_definitions: Dict[str, str] = field(default_factory=dict)  # one line per label
    rounds: int = 5
    analyses_per_round: int = 4  # several analyses (each: hard + easy inputs) make one batch
    n_hard: int = 2
    n_easy: int = 2  # 0 = ablation "no easy samples"
    show_correct: bool = True  # False = ablation "no correct samples" in the analysis
    review_history: bool = True  # False = ablation "no history review"
    separate_labelling: bool = True  # False = ablation "no separate labelling"
    history_window: int = 3  # earlier rounds whose analyses the teacher reviews
    history_replay: float = 1.0  # fraction of earlier rounds' samples replayed in training
    extra_train: str = ""  # DocBin or folder of DocBins (e.g. an LLKD selection) added to every round's training
    warm_start: bool = True
    warm_start_steps: int = 0  # training.max_steps of a warm-started round (0 = the same as a cold one)
    patience: int = 0  # stop after this many rounds without dev gain (0 = off)
    max_tokens: int = 0  # teacher token budget for the run (0 = unlimited)
    max_cost: float = 0.0  # teacher cost budget in USD (0 = unlimited)
    max_tokens_per_round: int = 0  # the same per round (0 = unlimited); all checked before each request
    max_cost_per_round: float = 0.0
    max_examples_shown: int = 8
    max_chars: int = 1000
    seed: int = 0
    gpu_id: int = -1

    @property
    def metric(self) -> str:
        return "macro-F1" if self.task == "textcat" else "entity F1"


def _read(path: Path, overrides: Dict[str, Any]) -> Config:
    if not path.exists():
        raise ConfigError(f"{path}: config file not found")
    try:
        return Config().from_disk(path, overrides=overrides, interpolate=False)
    except Exception as e:  # confection's errors span many lines: one line with what matters
        lines = [l.strip() for l in str(e).splitlines() if l.strip() and not l.startswith("Make sure")]
        raise ConfigError(f"{path}: {'; '.join(lines)[:300]}") from None


def load_config(path: Path, overrides: Dict[str, Any], teacher: Optional[Path] = None) -> Config:
    """The run config; ``teacher`` is a file whose [evokd.teacher] block replaces the config's
    (configs/teachers/*.cfg), so one student config serves every teacher. Overrides for the
    teacher block (``--evokd.teacher.model.name``) apply after the swap."""
    base_overrides = {k: v for k, v in overrides.items() if not k.startswith("evokd.teacher.")}
    config = _read(Path(path), base_overrides if teacher else overrides)
    if teacher:
        block = _read(Path(teacher), {})
        if "teacher" not in block.get("evokd", {}):
            raise ConfigError(f"{teacher}: no [evokd.teacher] block")
        config.setdefault("evokd", {})["teacher"] = block["evokd"]["teacher"]
        teacher_overrides = {k: v for k, v in overrides.items() if k.startswith("evokd.teacher.")}
        if teacher_overrides:
            config = Config(config).merge(Config(_dotted(teacher_overrides)))
    return config


def _dotted(overrides: Dict[str, Any]) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for key, value in overrides.items():
        node = out
        *parents, last = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    return out


def resolve_evokd(config: Config) -> Tuple[EvokdSettings, Teacher]:
    """Build the settings and the teacher from [evokd] (registered functions resolved)."""
    from spacy.util import registry

    from . import registrations  # noqa: F401  (registers our functions and spacy-llm's registries)

    if "evokd" not in config:
        raise ConfigError("config has no [evokd] section (loop settings and [evokd.teacher])")
    section = config.interpolate()["evokd"]
    if "teacher" not in section:
        raise ConfigError("config has no [evokd.teacher] block: say which teacher to use, e.g. "
                          '@misc = "spacy_evokd.SimulatedTeacher.v1"')
    known = {f.name for f in fields(EvokdSettings)}
    unknown = sorted(set(section) - known - {"teacher"})
    if unknown:
        raise ConfigError(f"[evokd] has unknown setting {unknown[0]!r}; known: {sorted(known)}")
    values = {k: v for k, v in section.items() if k != "teacher"}
    try:
        settings = EvokdSettings(**values)
    except TypeError as e:
        raise ConfigError(f"[evokd]: {e}") from None
    if settings.task not in TASKS:
        raise ConfigError(f"[evokd] task {settings.task!r}: expected one of {TASKS}")
    if not settings.labels:
        raise ConfigError("[evokd] labels is empty")
    try:
        teacher = registry.resolve({"teacher": section["teacher"]})["teacher"]
    except DataError:
        raise
    except Exception as e:
        raise ConfigError(f"[evokd.teacher]: {str(e).strip().splitlines()[0]}") from e
    if set(teacher.labels) != set(settings.labels):
        raise ConfigError(f"[evokd.teacher] labels {teacher.labels} differ from [evokd] labels {settings.labels}")
    return settings, teacher

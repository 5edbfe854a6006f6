"""The [evokd] config section: loop settings + the teacher block.

It lives in the student's config (next to [nlp], [components], [training]) so one file says
everything about a run and `--evokd.rounds 3` style overrides work; the student's training config
never contains it (see student.student_config).
"""

import logging
import re
from pathlib import Path
from typing import Any, Dict, List, Literal, Optional, Tuple

from confection import Config
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .data import DataError
from .tasks import get_task, is_task_name, task_names
from .ty import ConfigError, EvokdError, Task, Teacher  # ConfigError: still importable from here

# what [evokd] preset = "paper" pins (the paper's loop; the defaults today, kept if those change)
PAPER_SETTINGS: Dict[str, Any] = {
    "source": "generate",
    "analysis": "llm",
    "generations_per_brief": 1,
    "unlabelled_pool": "",
    "grounded": False,
    "second_vote": False,
}


# the source of a config that gives an unlabelled_pool and names no source (without a pool:
# "generate"): auto, whose generation share is plain generation under the default analysis =
# "none" (the bench arm auto_plain, not measured yet). Measured on demo_textcat (3 seeds,
# bench/real_teacher.md): auto with the student's brief behind plain generation, tied with the
# LLM-labelled random pool
POOL_DEFAULT_SOURCE = "auto"


class EvokdSettings(BaseModel):
    """The [evokd] loop settings, validated before any work the way spaCy validates [training]
    (spacy/schemas.py): strict types (no "abc" for rounds, no 1 for true), ranges, no unknown
    keys. A bad value would otherwise surface after the seed round has trained, or never."""

    model_config = ConfigDict(extra="forbid", strict=True)

    # "paper": EvoKD as published (Liu et al., 2024) and kept so: generation aimed by the teacher's
    # analysis, one generation per analysis, no pool, no second vote; PAPER_SETTINGS pins them and
    # a config that sets one of them otherwise is refused. The paper's four ablations (n_easy = 0,
    # show_correct, review_history, separate_labelling = false) stay open.
    preset: Literal["", "paper"] = ""
    task: str  # a registered task's name (tasks.task_names: "textcat", "ner", ...); get it as task_object
    labels: List[str] = Field(min_length=1)
    task_description: str = ""  # what the texts are; shown to LLM teachers
    label_definitions: Dict[str, str] = Field(default_factory=dict)  # one line per label
    rounds: int = Field(5, ge=0)
    analyses_per_round: int = Field(4, ge=1)  # several analyses (each: hard + easy inputs) make one batch
    n_hard: int = Field(2, ge=0)
    n_easy: int = Field(2, ge=0)  # 0 = ablation "no easy samples"
    show_correct: bool = True  # False = ablation "no correct samples" in the analysis
    review_history: bool = True  # False = ablation "no history review"
    # False = ablation "no separate labelling"; not set: true, but false with analysis = "none"
    # (plain generation: the label a text was written for is its label, as measured)
    separate_labelling: bool = True
    history_window: int = Field(3, ge=0)  # earlier rounds whose analyses the teacher reviews
    history_replay: float = Field(1.0, ge=0.0, le=1.0)  # fraction of earlier rounds' samples replayed in training
    extra_train: str = ""  # DocBin or folder of DocBins (e.g. an LLKD selection) added to every round's training
    warm_start: bool = True
    warm_start_steps: int = Field(0, ge=0)  # training.max_steps of a warm-started round (0 = the same as a cold one)
    # the training regime (student.regime_steps): each round trains train_epochs passes over its
    # data, at least min_train_steps and at most training.max_steps steps (0 = training.max_steps as written)
    train_epochs: int = Field(0, ge=0)
    min_train_steps: int = Field(0, ge=0)
    patience: int = Field(0, ge=0)  # stop after this many rounds without dev gain (0 = off)
    max_tokens: int = Field(0, ge=0)  # teacher token budget for the run (0 = unlimited)
    max_cost: float = Field(0.0, ge=0.0)  # teacher cost budget in USD (0 = unlimited)
    max_tokens_per_round: int = Field(0, ge=0)  # the same per round (0 = unlimited); all checked before each request
    max_cost_per_round: float = Field(0.0, ge=0.0)
    max_examples_shown: int = Field(8, ge=1)
    max_chars: int = Field(1000, ge=1)
    seed: int = 0
    gpu_id: int = Field(-1, ge=-1)
    check_teacher: bool = True  # GET base_url/models before the run (--skip-teacher-check: false)
    # where a round's inputs come from: the teacher writes them ("generate", EvoKD), the analysis'
    # evidence picks unlabelled pool texts for the teacher to label ("pool"), or half each
    # ("both"); the student picks pool texts by uncertainty x diversity and the teacher only labels
    # them ("active", active.py); or each round splits its samples between "generate" and
    # "active" by what they bought in the last rounds ("auto", sources.py; generation alone
    # without a pool)
    source: Literal["generate", "pool", "both", "active", "auto"] = "generate"
    # unlabelled texts for source = "pool" | "both" | "active" | "auto": JSONL ("text" or "tokens")
    # or DocBin; not the simulated teacher's labelled examples ([evokd.teacher] labelled_pool).
    # Old name: pool
    unlabelled_pool: str = ""
    # the weakness brief generation is aimed with: the teacher's analysis call ("llm", the paper),
    # the student's own scores, confusions and wrong examples, for free ("student",
    # weakness.student_brief), or none ("none": plain generation, each request asks for texts of
    # one label, the labels in turn; with separate_labelling = false the label asked for is the
    # label, else the labelling call decides and a text it labels otherwise is dropped, off_target).
    # "none" by default: at equal teacher tokens plain generation was ahead of the loop's arms
    # (bench/real_teacher.md); preset = "paper" pins "llm"
    analysis: Literal["llm", "student", "none"] = "none"
    generations_per_brief: int = Field(1, ge=1)  # generation requests each brief feeds (the paper: 1)
    auto_floor: float = Field(
        0.2, ge=0.0, le=0.5
    )  # source = "auto": the least share of a round's samples a source gets
    pool_embedder: Literal["student", "minilm"] = "student"  # what "nearest" means (pool_source.py)
    # a second labelling vote (Teacher.vote) for labelled texts the round's student labels
    # differently, or whose teacher confidence is under second_vote_below (where the teacher gives
    # one); the sample is kept only when both votes agree
    second_vote: bool = False
    second_vote_below: float = Field(0.0, ge=0.0, le=1.0)
    # grounded generation: each generation request rewrites real unlabelled_pool texts nearest to
    # the student's worst confusions toward the confused-away label (loop._rewrite), instead of
    # writing texts from nothing; rewrites closer than grounded_max_similarity (cosine, the pool
    # embedder) to the seed, earlier rounds or this round's texts are dropped before labelling
    grounded: bool = False
    grounded_max_similarity: float = Field(0.95, gt=0.0, le=1.0)
    # per-round students under OUTPUT_DIR/models (model-best only; model-last is never read): "all"
    # keeps every round's (the report scores each on test); "best" keeps the best one and the
    # latest (the next round starts from it)
    keep_models: Literal["all", "best"] = "all"

    @field_validator("task")
    @classmethod
    def _task_is_registered(cls, task: str) -> str:
        # a validator, not a Literal of the names: another package's task is registered at run time
        if not is_task_name(task):
            names = [repr(n) for n in task_names()]
            raise ValueError(f"{task!r}: expected one of {', '.join(names[:-1])} or {names[-1]}")
        return task

    @field_validator("labels")
    @classmethod
    def _labels_are_distinct_names(cls, labels: List[str]) -> List[str]:
        for label in labels:
            if not label.strip():
                raise ValueError(f"{label!r} is not a label name")
        dupes = sorted({l for l in labels if labels.count(l) > 1})
        if dupes:
            raise ValueError(f"{dupes[0]!r} is listed twice")
        return labels

    @model_validator(mode="after")
    def _consistent(self) -> "EvokdSettings":
        # label_definitions naming other labels are the LLM teacher's to refuse (the simulated
        # one ignores them, and data with unknown labels is reported by file and line)
        if self.n_hard + self.n_easy == 0:
            raise ValueError("n_hard and n_easy are both 0: each analysis must ask for at least one input")
        if self.unlabelled_pool and "source" not in self.model_fields_set and self.preset != "paper":
            self.source = POOL_DEFAULT_SOURCE  # a pool given and no source named: use the pool
        if self.preset == "paper":
            for name, value in PAPER_SETTINGS.items():
                if name in self.model_fields_set and getattr(self, name) != value:
                    raise ValueError(
                        f'preset = "paper" runs EvoKD as published: {name} = {getattr(self, name)!r} is not '
                        f"the paper's ({value!r}); drop the preset or the setting"
                    )
                setattr(self, name, value)
        if "analysis" not in self.model_fields_set and (self.source in ("pool", "both") or self.grounded):
            self.analysis = "llm"  # they pick or rewrite pool texts by a brief: the analysis writes it
        if "separate_labelling" not in self.model_fields_set:
            self.separate_labelling = self.analysis != "none"
        if self.analysis == "none" and (self.source in ("pool", "both") or self.grounded):
            what = "grounded = true" if self.grounded else f"source = {self.source!r}"
            raise ValueError(
                f'analysis = "none" writes texts label by label, without a brief; {what} picks or '
                'rewrites pool texts by the student\'s weaknesses: use analysis = "student" or "llm"'
            )
        if self.source not in ("generate", "auto") and not self.unlabelled_pool:
            raise ValueError(f"source = {self.source!r} needs unlabelled_pool: a file of unlabelled texts")
        if self.grounded and not self.unlabelled_pool:
            raise ValueError("grounded = true needs unlabelled_pool: the real texts the rewrites start from")
        if self.grounded and self.source in ("pool", "active"):
            raise ValueError(f"grounded = true rewrites generated texts: source = {self.source!r} generates none")
        if self.source == "generate" and self.unlabelled_pool and not self.grounded:
            raise ValueError(
                'unlabelled_pool is read only with source = "pool", "both", "active" or "auto", or grounded = true '
                "(unlabelled texts the teacher labels); the simulated teacher's labelled examples go in "
                "[evokd.teacher] labelled_pool"
            )
        return self

    @property
    def task_object(self) -> Task:
        """The Task ``task`` names: the loop, `estimate` and `select` take it from here."""
        return get_task(self.task)

    @property
    def metric(self) -> str:
        return self.task_object.metric_name


# pydantic's error types -> what a user reads after "[evokd] <setting>: <value> ..."
_TYPE_WORDS = {
    "int_type": "an integer",
    "bool_type": "true or false",
    "float_type": "a number",
    "string_type": "a string",
    "list_type": "a list",
    "dict_type": "a section or dict",
}


def _describe(error: Dict[str, Any]) -> str:
    """One pydantic error as '[evokd] rounds: 'abc' is not an integer'."""
    loc = ".".join(str(x) for x in error["loc"])
    kind, value, ctx = error["type"], error.get("input"), error.get("ctx") or {}
    if kind == "extra_forbidden":
        return f"[evokd] has unknown setting {loc!r}; known: {sorted(EvokdSettings.model_fields)}"
    if kind == "missing":
        return f"[evokd] {loc} is not set"
    if kind in _TYPE_WORDS:
        what = f"{value!r} is not {_TYPE_WORDS[kind]}"
    elif kind in ("greater_than_equal", "less_than_equal"):
        op, bound = (">=", ctx["ge"]) if kind == "greater_than_equal" else ("<=", ctx["le"])
        what = f"must be {op} {bound}, got {value!r}"
    elif kind == "literal_error":
        what = f"{value!r}: expected one of {ctx['expected']}"
    elif kind == "too_short":
        what = "is empty"
    elif kind == "value_error":
        what = str(ctx.get("error", error["msg"]))
    else:
        what = f"{error['msg'][0].lower()}{error['msg'][1:]}, got {value!r}"
    return f"[evokd] {loc}: {what}" if loc else f"[evokd] {what}"


def validate_settings(section: Dict[str, Any]) -> EvokdSettings:
    """[evokd] without its teacher block -> settings, or one ConfigError line naming every
    bad setting (at most three)."""
    values = {k: v for k, v in section.items() if k != "teacher"}
    if "pool" in values:  # the old name, easily taken for the simulated teacher's labelled pool
        if "unlabelled_pool" in values:
            raise ConfigError("[evokd] sets both pool and unlabelled_pool: pool is the old name; keep unlabelled_pool")
        logging.getLogger("spacy_evokd").warning(
            '[evokd] pool is deprecated: call it unlabelled_pool (unlabelled texts for source = "pool"/"both")'
        )
        values["unlabelled_pool"] = values.pop("pool")
    try:
        return EvokdSettings(**values)
    except ValidationError as e:
        errors = [_describe(err) for err in e.errors()]
        more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
        raise ConfigError("; ".join(errors[:3]) + more) from None


def _teacher_error(error: Exception) -> str:
    """A failure to build the teacher as one line; confection's validation errors (a wrong type
    in [evokd.teacher.model]) name the section and setting."""
    errors = getattr(error, "errors", None)
    if errors and errors[0].get("loc"):
        *parents, key = ".".join(str(x) for x in errors[0]["loc"]).split(".")
        msg = re.sub(r"<class '(\w+)'>", r"\1", str(errors[0].get("msg", "")).replace("at root: ", ""))
        return f"[{'.'.join(['evokd'] + parents)}] {key}: {msg}"
    return f"[evokd.teacher]: {_one_line(error)}"


def _one_line(error: Exception) -> str:
    """confection's errors span many lines: one line with what matters."""
    lines = [l.strip() for l in str(error).splitlines() if l.strip() and not l.startswith("Make sure")]
    return "; ".join(lines)[:300]


def _read(path: Path, overrides: Dict[str, Any]) -> Config:
    if not path.exists():
        raise ConfigError(f"{path}: config file not found")
    try:
        return Config().from_disk(path, overrides=overrides, interpolate=False)
    except Exception as e:
        raise ConfigError(f"{path}: {_one_line(e)}") from None


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
    try:
        section = config.interpolate()["evokd"]
    except Exception as e:  # a ${...} reference to a missing setting
        raise ConfigError(f"config: {_one_line(e)}") from None
    settings = validate_settings(section)  # before the teacher is built (it may read a pool)
    if "teacher" not in section:
        raise ConfigError(
            "config has no [evokd.teacher] block: say which teacher to use, e.g. "
            '@misc = "spacy_evokd.SimulatedTeacher.v1"'
        )
    try:
        teacher = registry.resolve({"teacher": section["teacher"]})["teacher"]
    except (DataError, ConfigError):  # already one line naming the setting
        raise
    except EvokdError as e:  # a teacher setting checked when it is built (e.g. its base_url): already one line
        raise ConfigError(str(e)) from None
    except Exception as e:
        raise ConfigError(_teacher_error(e)) from e
    if set(teacher.labels) != set(settings.labels):
        raise ConfigError(f"[evokd.teacher] labels {teacher.labels} differ from [evokd] labels {settings.labels}")
    return settings, teacher

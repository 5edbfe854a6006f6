"""The typed records of a run directory: ``RoundRecord`` (rounds/round_NNN.json, written by the
loop; its presence commits round N) and ``SelectionBatch`` (selected_NNNN.json, written by
`select`; its presence commits batch N). Written and read back through these classes only: the
loop, the model-best meta stamp, the report and the benchmarks get attributes, not dict keys.

Schema versions:
  1  the records of spacy-evokd 0.1 (no ``schema_version`` key): read as version 1; a round
     record's task is told by its dev scores (only textcat and ner existed then)
  2  adds ``task`` (the task's name) and ``schema_version``; optional fields with defaults
     (``rejected_samples``: the first REJECTED_KEPT samples validation rejected, for review) are
     added without a new version: readers fill what a record lacks and drop what they don't know

A damaged file is one RunDirError line naming it (run_files.read_round_record checks what the
readers use), never a KeyError deep in the loop or the report.
"""

from collections import Counter
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

from .run_files import RunDirError, read_json, read_round_record, write_json
from .ty import Judged, Sample, Task
from .untrusted import storable

SCHEMA_VERSION = 2
REJECTED_KEPT = 50  # rejected samples kept per round record (for review); all are counted
REJECTED_TEXT_CHARS = 500
# version 1 round records: the dev score key that tells their task
_V1_TASK_BY_SCORE_KEY = {"ents_f": "ner", "macro_f": "textcat"}


def _known(cls, rec: Dict[str, Any]) -> Dict[str, Any]:
    """The keys of ``rec`` that are fields of ``cls`` (a newer writer's extra keys are left out)."""
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in rec.items() if k in names}


@dataclass
class RoundRecord:
    round: int
    teacher: str
    simulated: bool
    analyses: List[str]
    generated: int
    accepted: int
    rejected: Dict[str, int]
    accepted_per_label: Dict[str, int]
    usage: Dict[str, Any]
    batch_scores: Optional[Dict[str, Any]]  # student N-1 on the new batch
    dev: Dict[str, Any]  # student N on dev
    feedback: Dict[str, List[Dict]]  # student N-1's correct/wrong predictions on the new batch (Judged.to_dict)
    train_size: int
    seconds: Dict[str, float]
    stopped_by: Optional[str] = None
    repaired: Dict[str, int] = field(default_factory=dict)  # counted repairs (untrusted.py), e.g. analysis_truncated
    budget_hit: Optional[str] = None  # the budget that ended this round's teacher calls early
    # label disagreement, parse rate, structured-output form (Teacher.round_checks)
    teacher_checks: Optional[Dict[str, Any]] = None
    task: str = ""  # the task's name (tasks.get_task)
    # samples validation rejected: {text, reason, intent, annotation}, at most REJECTED_KEPT (rejected_samples())
    rejected_samples: List[Dict[str, Any]] = field(default_factory=list)
    # where the round's tokens went (sources.py): "split" (source = "auto"'s decision: samples per
    # source, the values it weighed, why), per source {"slots", "tokens", "cost", "accepted",
    # "wrong"}, "dev_gain", the planner's stop ("planned_stop") and, under source = "auto", where
    # active labelling stopped at its share of the tokens ("active_share_used")
    sources: Dict[str, Any] = field(default_factory=dict)
    # usage per ledger step ("analysis", "generate", "label", "active_label", "label_vote", ...): the analysis' share of tokens
    usage_by_step: Dict[str, Dict[str, Any]] = field(default_factory=dict)
    analysis_repeats: int = 0  # analyses that repeated an earlier one of the round word for word (normalised)
    schema_version: int = SCHEMA_VERSION

    @classmethod
    def load(cls, path: Union[str, Path], n: Optional[int] = None) -> "RoundRecord":
        """The committed record at ``path`` (round ``n`` when given); RunDirError naming the
        file when it is damaged."""
        rec = read_round_record(path, n)
        version = rec.get("schema_version", 1)
        if version == 1:
            rec = dict(
                rec,
                schema_version=1,
                task=next((task for key, task in _V1_TASK_BY_SCORE_KEY.items() if key in rec["dev"]), "textcat"),
            )
        return cls(**_known(cls, rec))

    def save(self, path: Union[str, Path]) -> None:
        write_json(path, asdict(self))  # atomic: a kill leaves no half record

    def judged(self, task: Task) -> List[Judged]:
        """The feedback as Judged samples (of ``task``, the record's), correct ones first."""
        return [Judged.from_dict(item, task) for item in self.feedback["correct"] + self.feedback["wrong"]]


def teacher_checks(agreement: Counter, stats: Counter) -> Dict[str, Any]:
    """A round record's ``teacher_checks``: label proposals the labelling call saw and how many
    it labelled differently (validation.label_disagreements), answers asked and parsed per step
    (``Teacher.drain_stats``) with the parse rate. Teachers add their own (Teacher.round_checks)."""
    compared, disagreed = agreement.get("compared", 0), agreement.get("disagreed", 0)
    checks: Dict[str, Any] = {
        "label_compared": compared,
        "label_disagreement": disagreed,
        "label_disagreement_rate": round(disagreed / compared, 4) if compared else None,
    }
    if stats:
        checks.update(sorted(stats.items()))
        answers = sum(v for k, v in stats.items() if k.endswith("_answers"))
        parsed = sum(v for k, v in stats.items() if k.endswith("_parsed"))
        checks["parse_rate"] = round(parsed / answers, 4) if answers else None
    return checks


def describe_checks(checks: Dict[str, Any]) -> str:
    """The progress-line part of ``teacher_checks``: "parsed 4/4, label disagreement 1/7" ("" if none)."""
    parts = []
    answers = sum(v for k, v in checks.items() if k.endswith("_answers"))
    if answers:
        parsed = sum(v for k, v in checks.items() if k.endswith("_parsed"))
        parts.append(f"parsed {parsed}/{answers}")
    if checks.get("label_compared"):
        parts.append(f"label disagreement {checks['label_disagreement']}/{checks['label_compared']}")
    return ", ".join(parts)


def rejected_samples(rejects: List[Tuple[Sample, str]], task: Task) -> List[Dict[str, Any]]:
    """What a round record keeps of the samples validation rejected: the first REJECTED_KEPT,
    texts cut to REJECTED_TEXT_CHARS and made storable (they are teacher output: untrusted)."""
    kept = []
    for sample, reason in rejects[:REJECTED_KEPT]:
        text = storable(sample.text)
        annotation = (
            {} if sample.annotation is None else {task.annotation_key: task.annotation_to_json(sample.annotation)}
        )
        kept.append(
            {
                "text": text if len(text) <= REJECTED_TEXT_CHARS else text[: REJECTED_TEXT_CHARS - 1] + "…",
                "reason": reason,
                "intent": sample.intent,
                "annotation": _storable(annotation),
            }
        )
    return kept


def _storable(value: Any) -> Any:
    """``value`` with every string in it made storable (labels of a rejected answer are untrusted)."""
    if isinstance(value, str):
        return storable(value)
    if isinstance(value, dict):
        return {storable(str(k)): _storable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_storable(v) for v in value]
    return value


@dataclass
class SelectionBatch:
    """One committed batch of `select`: what was kept and the thresholds after it (a resumed
    selection continues with them)."""

    batch: int
    pool: int
    valid: int
    kept: int
    rejected: Dict[str, int]
    methods: Dict[str, int]  # confidence method -> texts
    thresholds: Dict[str, Any]  # selection.Selector.state()
    usage: Dict[str, Any]
    texts: List[str]  # the valid texts (a resumed selection never takes them again)
    task: str = ""
    schema_version: int = SCHEMA_VERSION

    @classmethod
    def load(cls, path: Union[str, Path]) -> "SelectionBatch":
        try:
            rec = read_json(path)
            batch = cls(**dict(_known(cls, rec), schema_version=rec.get("schema_version", 1)))
            if not (
                isinstance(batch.thresholds.get("teacher"), dict) and isinstance(batch.thresholds.get("student"), dict)
            ):
                raise KeyError("thresholds")
            if not isinstance(batch.texts, list):
                raise TypeError("'texts' is not a list")
        except (KeyError, TypeError, AttributeError) as e:
            raise RunDirError(
                f"{path}: damaged batch record ({type(e).__name__}: {e}); "
                "delete it and the later batches' records to redo them"
            ) from None
        return batch

    def save(self, path: Union[str, Path]) -> None:
        write_json(path, asdict(self), indent=1)  # atomic: its presence commits the batch

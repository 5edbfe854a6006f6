"""Student predictions -> WeaknessReport, the feedback the teacher analyses.

Per-label scores come from the dev set (stable, what the user cares about); the correct and
wrong *examples* come from the last generated batch, as in EvoKD (round 1: the seed docs), so
no dev text is ever shown to the teacher.
"""
from dataclasses import replace
from typing import Dict, List, Sequence, Tuple, Union

from .tasks import get_task
from .ty import Judged, Task, WeaknessReport


def is_correct(j: Judged, task: Union[str, Task]) -> bool:
    task = get_task(task)
    return task.answer_key(j.gold) == task.answer_key(j.pred)


def confusions(judged: Sequence[Judged], task: Union[str, Task]) -> Dict[Tuple[str, str], int]:
    """(gold, predicted) counts (the task's: for NER "O" marks a missed or a spurious entity)."""
    return get_task(task).confusions(judged)


def build_report(
    task: Union[str, Task],
    labels: Sequence[str],
    dev_scores: Dict,
    judged: Sequence[Judged],
    evaluated_on: str,
) -> WeaknessReport:
    task = get_task(task)
    overall = {k: v for k, v in dev_scores.items() if isinstance(v, (int, float))}
    return WeaknessReport(
        task=task.name,
        labels=list(labels),
        per_label=dev_scores.get("per_label", {}),
        overall=overall,
        correct=[j for j in judged if is_correct(j, task)],
        wrong=[j for j in judged if not is_correct(j, task)],
        confusions=confusions(judged, task),
        evaluated_on=evaluated_on,
    )


def window(report: WeaknessReport, index: int, size: int, show_correct: bool = True) -> WeaknessReport:
    """The report for the index-th analysis of a round: a different slice of the examples each
    time (so several analyses per round see different evidence); no correct examples when the
    "no correct samples" ablation is on."""

    def take(items: List[Judged]) -> List[Judged]:
        if len(items) <= size:
            return list(items)
        start = (index * size) % len(items)
        return (items + items)[start : start + size]

    return replace(report, correct=take(report.correct) if show_correct else [], wrong=take(report.wrong))

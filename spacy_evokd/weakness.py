"""Student predictions -> WeaknessReport, the feedback the teacher analyses.

Per-label scores come from the dev set (stable, what the user cares about); the correct and
wrong *examples* come from the last generated batch, as in EvoKD (round 1: the seed docs), so
no dev text is ever shown to the teacher.
"""
from collections import Counter
from dataclasses import replace
from typing import Dict, List, Sequence, Tuple

from .teachers.base import Judged, WeaknessReport


def is_correct(j: Judged, task: str) -> bool:
    if task == "textcat":
        return j.gold.label == j.pred.label
    return sorted(j.gold.entities or []) == sorted(j.pred.entities or [])


def confusions(judged: Sequence[Judged], task: str) -> Dict[Tuple[str, str], int]:
    """(gold, predicted) counts; for NER "O" marks a missed or a spurious entity."""
    counts: Counter = Counter()
    for j in judged:
        if task == "textcat":
            if j.gold.label != j.pred.label:
                counts[(j.gold.label, j.pred.label)] += 1
            continue
        gold = {(s, e): l for s, e, l in j.gold.entities or []}
        pred = {(s, e): l for s, e, l in j.pred.entities or []}
        for span, label in gold.items():
            if pred.get(span) != label:
                counts[(label, pred.get(span, "O"))] += 1
        for span, label in pred.items():
            if span not in gold:
                counts[("O", label)] += 1
    return dict(counts)


def build_report(
    task: str,
    labels: Sequence[str],
    dev_scores: Dict,
    judged: Sequence[Judged],
    evaluated_on: str,
) -> WeaknessReport:
    overall = {k: v for k, v in dev_scores.items() if isinstance(v, (int, float))}
    return WeaknessReport(
        task=task,
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

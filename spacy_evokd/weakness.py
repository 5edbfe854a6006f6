"""Student predictions -> WeaknessReport, the feedback the teacher analyses.

Per-label scores come from the dev set (stable, what the user cares about); the correct and
wrong *examples* come from the last generated batch, as in EvoKD (round 1: the seed docs), so
no dev text is ever shown to the teacher.
"""

from dataclasses import replace
from typing import Dict, List, Sequence, Tuple

from .ty import Analysis, Judged, Task, WeaknessReport


def is_correct(j: Judged, task: Task) -> bool:
    return task.answer_key(j.gold) == task.answer_key(j.pred)


def confusions(judged: Sequence[Judged], task: Task) -> Dict[Tuple[str, str], int]:
    """(gold, predicted) counts (the task's: for NER "O" marks a missed or a spurious entity)."""
    return task.confusions(judged)


def build_report(
    task: Task,
    labels: Sequence[str],
    dev_scores: Dict,
    judged: Sequence[Judged],
    evaluated_on: str,
) -> WeaknessReport:
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


def label_focus(report: WeaknessReport) -> Dict[str, float]:
    """label -> how much attention it needs: 1 - dev F1, plus 0.1 per confusion it is part of
    (the simulated teacher's analysis ranks labels the same way)."""
    focus = {label: 1.0 - (report.per_label.get(label, {}).get("f", 0.0) or 0.0) for label in report.labels}
    for (gold, pred), n in report.confusions.items():
        for label in (gold, pred):
            if label in focus:
                focus[label] += 0.1 * n
    return focus


def student_brief(report: WeaknessReport, task: Task, examples: int = 4) -> Analysis:
    """The weakness brief written from the student's own numbers, without an analysis call
    (``[evokd] analysis = "student"``): its per-label dev scores, its most confused label pairs
    and its wrong examples, those of the most frequent confusion first. The generation prompt gets it where the paper's
    loop puts the teacher's analysis; ``focus`` is what the simulated teacher aims at."""
    focus = label_focus(report)
    pairs = sorted(report.confusions.items(), key=lambda kv: (-kv[1], kv[0]))[:3]
    lines = ["Weakness report of the student (its own dev scores and mistakes; no analysis was asked for):"]
    scores = ", ".join(
        f"{label} F1 {report.per_label.get(label, {}).get('f', 0.0) or 0.0:.2f}"
        for label in sorted(report.labels, key=lambda l: -focus[l])
    )
    lines.append(f"- per-label scores, weakest first: {scores}")
    if pairs:
        lines.append(
            "- most confused (correct -> student's answer): " + ", ".join(f"{g} -> {p} x{n}" for (g, p), n in pairs)
        )
    rank = {pair: i for i, (pair, _) in enumerate(pairs)}  # examples of the most frequent confusion first
    wrong = sorted(
        report.wrong, key=lambda j: min([rank.get(pair, len(rank)) for pair in task.confusions([j])] or [len(rank)])
    )
    for j in wrong[:examples]:
        lines.append(
            f'- got wrong: "{j.gold.text}" (correct: {task.describe(j.gold)}; student: {task.describe(j.pred)})'
        )
    lines.append(f"Aim the hard texts at the weakest labels and these confusions (evidence: {report.evaluated_on}).")
    return Analysis(text="\n".join(lines), conversation=[], focus=focus)

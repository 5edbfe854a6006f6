"""Majority votes over a teacher's sampled answers (LLKD's agreement confidence)."""

from collections import Counter
from typing import Sequence, Tuple

from ..ty import Sample, Task


def majority(answers: Sequence[Sample], task: Task) -> Tuple[Sample, float]:
    """The most common answer (the task's ``answer_key`` says which are the same; ties: the first
    seen) and its share of ``answers`` (not empty)."""
    keys = [task.answer_key(a) for a in answers]
    top, n = Counter(keys).most_common(1)[0]
    return answers[keys.index(top)], n / len(answers)

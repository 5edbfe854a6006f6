"""The second labelling vote (`[evokd] second_vote`): which labelled samples are in doubt, and
what their two votes decide.

Why: a small teacher's labels are its weakest output (bench/real_teacher.md: 60-76% right on
pool texts); self-consistency on the texts where teacher and student disagree, or where the
teacher is unsure, drops the labels most likely wrong for a third more labelling requests.
The loop (loop._second_vote) asks Teacher.vote and books the requests.
"""

from typing import List, Optional, Sequence

from .ty import Sample, Task

# the round record's teacher_checks["second_vote"]: samples in doubt, and what their second vote gave
VOTE_COUNTS = ("asked", "agreed", "disagreed", "unanswered", "one_vote")


def in_doubt(samples: List[Sample], nlp, task: Task, labels: Sequence[str], max_chars: int, below: float) -> List[int]:
    """Indexes of the samples that get a second vote: those the student ``nlp`` labels
    differently (the task's ``comparable``: ner compares the entity sets), or whose teacher
    confidence is under ``below``. Unusable annotations and texts over max_chars are left to the
    validator, which rejects them anyway."""
    usable = [
        i for i, x in enumerate(samples) if len(x.text.strip()) <= max_chars and task.comparable(x, labels) is not None
    ]
    preds = [task.predicted_sample(d, nlp) for d in nlp.pipe(samples[i].text for i in usable)]
    out = []
    for i, pred in zip(usable, preds):
        confidence = samples[i].confidence
        unsure = confidence is not None and confidence < below
        if unsure or task.comparable(pred, labels) != task.comparable(samples[i], labels):
            out.append(i)
    return out


def outcome(first: Sample, second: Optional[Sample], task: Task, labels: Sequence[str], unasked: bool) -> str:
    """What a doubtful sample's votes give: "one_vote" (a budget left it unasked: kept),
    "unanswered" (no usable second annotation: dropped), "agreed" (kept), "disagreed" (dropped).
    ``second``: the second vote's answer for the text (None: not answered)."""
    if unasked:
        return "one_vote"
    again = task.comparable(second, labels) if second is not None else None
    if again is None:  # not answered, or answered with an unusable annotation
        return "unanswered"
    return "agreed" if again == task.comparable(first, labels) else "disagreed"

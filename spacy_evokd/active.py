"""Active pool labelling (`[evokd] source = "active"`): the student picks the pool texts, the
teacher only labels them.

Why: at a fixed teacher budget, student-side selection is cheap and the teacher labels real
texts far better than it writes new ones (LLMaAA, EMNLP Findings 2023; bench/real_teacher.md).

A pick's score is the student's uncertainty (tasks' ``uncertainty``: normalised entropy for
textcat, beam marginals for ner) times its distance from what is already covered: 1 - the
largest cosine similarity to the texts chosen so far and the training texts the student
*predicts the same label for* (so each predicted label is covered on its own). Picks are greedy,
one at a time, the coverage updated after each. In the first round (a student trained on a few
seed texts knows nearly nothing) the uncertainty is left out and the picks go round-robin over
the predicted labels: label-stratified coverage.

``need`` (the uncertainty) goes with each pick: LLKD's weight = teacher confidence x need
(selection.llkd_weights), which the loop's training honours (augment.copies).
"""

from dataclasses import dataclass
from typing import Dict, List, Sequence, Set

import numpy

from .pool_source import PoolSource
from .ty import Task
from .validation import normalise


@dataclass
class Pick:
    text: str
    need: float  # the student's uncertainty on it, in [0, 1]
    predicted: str  # the student's predicted class


def _classes(nlp, task: Task, texts: Sequence[str]) -> List[str]:
    return [task.sample_class(task.predicted_sample(doc, nlp)) for doc in nlp.pipe(texts)]


def pick(
    pool: PoolSource, nlp, task: Task, n: int, seen: Set[str], covered: Sequence[str], stratified: bool
) -> List[Pick]:
    """``n`` unused pool texts (``seen``: normalised texts already used; the picks are added to
    it). ``covered``: the texts the student trains on already (seed and earlier rounds)."""
    if n <= 0:
        return []
    if pool.vectors is None:
        raise RuntimeError("PoolSource.use_student() must be called before picking")
    idx = [i for i, t in enumerate(pool.texts) if normalise(t) not in seen]
    if not idx:
        return []
    texts = [pool.texts[i] for i in idx]
    vectors = pool.vectors[idx]
    need = numpy.clip(numpy.asarray(task.uncertainty(nlp, texts), dtype="float32"), 0.0, 1.0)
    classes = _classes(nlp, task, texts)
    nearest = numpy.zeros(len(idx), dtype="float32")  # largest similarity to covered texts of the same class
    if covered:
        cov_vectors = pool.embed(list(covered))
        cov_classes = numpy.asarray(_classes(nlp, task, covered))
        for c in set(classes):
            rows = numpy.asarray([k for k, x in enumerate(classes) if x == c])
            same = cov_vectors[cov_classes == c]
            if len(same):
                nearest[rows] = numpy.clip((vectors[rows] @ same.T).max(axis=1), 0.0, 1.0)
    classes_arr = numpy.asarray(classes)
    chosen: List[Pick] = []
    taken: Dict[str, int] = {}
    available = numpy.ones(len(idx), dtype=bool)
    for _ in range(min(n, len(idx))):
        score = (1.0 - nearest) * (1.0 if stratified else need)
        if stratified:  # the least-covered predicted class first
            counts = {c: taken.get(c, 0) for c in set(classes_arr[available])}
            least = min(counts, key=lambda c: (counts[c], c))
            mask = available & (classes_arr == least)
        else:
            mask = available
        k = int(numpy.argmax(numpy.where(mask, score, -1.0)))
        available[k] = False
        c = classes[k]
        taken[c] = taken.get(c, 0) + 1
        same = classes_arr == c
        nearest[same] = numpy.maximum(nearest[same], numpy.clip(vectors[same] @ vectors[k], 0.0, 1.0))
        seen.add(normalise(texts[k]))
        chosen.append(Pick(texts[k], float(need[k]), c))
    return chosen

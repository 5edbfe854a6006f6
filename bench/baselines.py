"""Pool-sampling baselines for the targeting benchmark, run by the same loop as EvoKD.

Both are simulated teachers over the same labelled pool as `SimulatedTeacher` and add the same
number of samples per round (`analyses_per_round` x (`n_hard` + `n_easy`)); only *which* pool
samples they pick differs:
  - random:  uniform draws, no targeting (passive learning);
  - stratified: uniform draws balanced over labels (the gold labels of the pool, as the EvoKD arm
             sees them), so class balancing alone is not credited to targeting;
  - entropy: the pool texts the current student is least sure of (uncertainty sampling, the
             classic active-learning baseline; spacy_evokd.uncertainty gives the signal).
Importing this module registers them in spaCy's `misc` registry (bench processes only).
"""

from collections import Counter
from typing import List

import spacy
from spacy.util import registry

from spacy_evokd.tasks import get_task
from spacy_evokd.teachers.simulated import SimulatedTeacher
from spacy_evokd.ty import Analysis, Proposal, RoundContext, Sample


class RandomPoolTeacher(SimulatedTeacher):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.name = self.name.replace("simulated teacher", "simulated random-sampling baseline")

    def _pick(self, n: int) -> List[Sample]:
        candidates = [s for s in self.pool if s.text not in self._used]
        return self._rng.sample(candidates, min(n, len(candidates)))

    def propose(self, analysis: Analysis, n_hard: int, n_easy: int, with_labels: bool = False) -> Proposal:
        picked = self._pick(n_hard + n_easy)
        self._used.update(s.text for s in picked)
        self._usage.requests += 1
        return Proposal(samples=[self._copy(s, "random", with_labels) for s in picked])


def _labels_of(task, sample: Sample) -> List[str]:
    """A pool sample's labels: the task's (its class, its label set or its entity labels; "O": a
    text without entities)."""
    return task.sample_labels(sample) or ["O"]


class StratifiedPoolTeacher(RandomPoolTeacher):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.name = self.name.replace("random-sampling", "label-stratified random-sampling")
        self._count: Counter = Counter()

    def begin_round(self, ctx: RoundContext) -> None:
        super().begin_round(ctx)
        self._count = Counter()  # balance within a round, over all of its calls

    def _pick(self, n: int) -> List[Sample]:
        """Round-robin over labels, each turn a uniform draw among the unused texts with the label
        picked least so far this round (ties in label order, so a run is reproducible)."""
        by_label = {}
        for s in self.pool:
            if s.text not in self._used:
                for label in _labels_of(self.task, s):
                    by_label.setdefault(label, []).append(s)
        picked, taken = [], set()
        while len(picked) < n:
            open_labels = [l for l in sorted(by_label) if any(s.text not in taken for s in by_label[l])]
            if not open_labels:
                break
            label = min(open_labels, key=lambda l: self._count[l])
            choice = self._rng.choice([s for s in by_label[label] if s.text not in taken])
            picked.append(choice)
            taken.add(choice.text)
            self._count.update(_labels_of(self.task, choice))
        return picked


class EntropyPoolTeacher(RandomPoolTeacher):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.name = self.name.replace("random-sampling", "entropy-sampling")
        self._uncertainty = {}

    def begin_round(self, ctx: RoundContext) -> None:
        """Score the unused pool once per round with the student the round starts from (the
        loop names it in the round's context; product teachers never look at it)."""
        super().begin_round(ctx)
        if ctx.student is None:  # outside a run: no student, no ranking (tests set one)
            return
        nlp = spacy.load(ctx.student)
        texts = [s.text for s in self.pool if s.text not in self._used]
        self._uncertainty = dict(zip(texts, self.task.uncertainty(nlp, texts)))

    def _pick(self, n: int) -> List[Sample]:
        candidates = [s for s in self.pool if s.text not in self._used]
        tiebreak = {s.text: self._rng.random() for s in candidates}
        candidates.sort(key=lambda s: (-self._uncertainty.get(s.text, 0.0), tiebreak[s.text]))
        return candidates[:n]


@registry.misc("spacy_evokd_bench.RandomPoolTeacher.v1")
def random_pool_teacher(labelled_pool: str, task: str, labels: List[str], seed: int = 0) -> RandomPoolTeacher:
    return RandomPoolTeacher(labelled_pool, get_task(task), labels, seed=seed)


@registry.misc("spacy_evokd_bench.StratifiedPoolTeacher.v1")
def stratified_pool_teacher(labelled_pool: str, task: str, labels: List[str], seed: int = 0) -> StratifiedPoolTeacher:
    return StratifiedPoolTeacher(labelled_pool, get_task(task), labels, seed=seed)


@registry.misc("spacy_evokd_bench.EntropyPoolTeacher.v1")
def entropy_pool_teacher(labelled_pool: str, task: str, labels: List[str], seed: int = 0) -> EntropyPoolTeacher:
    return EntropyPoolTeacher(labelled_pool, get_task(task), labels, seed=seed)

"""Pool-sampling baselines for the targeting benchmark, run by the same loop as EvoKD.

Both are simulated teachers over the same labelled pool as `SimulatedTeacher` and add the same
number of samples per round (`analyses_per_round` x (`n_hard` + `n_easy`)); only *which* pool
samples they pick differs:
  - random:  uniform draws, no targeting (passive learning);
  - entropy: the pool texts the current student is least sure of (uncertainty sampling, the
             classic active-learning baseline; spacy_evokd.uncertainty gives the signal).
Importing this module registers them in spaCy's `misc` registry (bench processes only).
"""
from pathlib import Path
from typing import List

import spacy
from spacy.util import registry

from spacy_evokd.teachers.base import Analysis, Proposal, Sample
from spacy_evokd.teachers.simulated import SimulatedTeacher
from spacy_evokd.uncertainty import student_uncertainty


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


class EntropyPoolTeacher(RandomPoolTeacher):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.name = self.name.replace("random-sampling", "entropy-sampling")
        self._uncertainty = {}

    def see_student(self, model_path: Path) -> None:
        """Score the unused pool once per round with the student the round starts from."""
        nlp = spacy.load(model_path)
        texts = [s.text for s in self.pool if s.text not in self._used]
        self._uncertainty = dict(zip(texts, student_uncertainty(nlp, texts, self.task)))

    def _pick(self, n: int) -> List[Sample]:
        candidates = [s for s in self.pool if s.text not in self._used]
        tiebreak = {s.text: self._rng.random() for s in candidates}
        candidates.sort(key=lambda s: (-self._uncertainty.get(s.text, 0.0), tiebreak[s.text]))
        return candidates[:n]


@registry.misc("spacy_evokd_bench.RandomPoolTeacher.v1")
def random_pool_teacher(pool: str, task: str, labels: List[str], seed: int = 0) -> RandomPoolTeacher:
    return RandomPoolTeacher(pool, task, labels, seed=seed)


@registry.misc("spacy_evokd_bench.EntropyPoolTeacher.v1")
def entropy_pool_teacher(pool: str, task: str, labels: List[str], seed: int = 0) -> EntropyPoolTeacher:
    return EntropyPoolTeacher(pool, task, labels, seed=seed)

"""The real-teacher benchmark's rival arm: the same LLM teacher and loop as EvoKD, used the way
the usual alternative uses it. It lives in bench/ (not the product) and subclasses LLMTeacher, so
transport, cache, ledger, validation and budgets are the product's own.

  llm_pool  LLM-labelled pool: uniformly random unlabelled pool texts, labelled by the teacher
            in the usual separate call (what spacy-llm + `spacy train` gives); `stratified`
            draws them evenly over the pool's gold labels instead (ner: a text's first entity
            type, or none), which a user could not do but the teacher never sees.

The other rival, plain generation (AugGPT / ZeroGen style: labelled texts per label in turn,
no analysis, no feedback), is the product's own `[evokd] analysis = "none"` (LLMTeacher.write).
``analyse`` returns a fixed note without calling the model (the loop records it, so reports show
the arm had none). Importing this module registers it in spaCy's `misc` registry (bench processes only).
"""

import random
from typing import Any, Dict, List, Sequence

from spacy.util import registry

from spacy_evokd.pool_source import read_pool_texts
from spacy_evokd.tasks import get_task
from spacy_evokd.teachers.llm import LLMTeacher
from spacy_evokd.ty import Analysis, Proposal, RoundContext, Sample, WeaknessReport
from spacy_evokd.validation import normalise


class RandomPoolLLMTeacher(LLMTeacher):
    NOTE = "no analysis: uniformly random pool texts, labelled by the teacher"

    def __init__(self, *args, pool: str, seed: int = 0, stratified: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.pool_texts = read_pool_texts(pool)
        self.strata = _gold_strata(pool, self.task, self.labels) if stratified else {}
        self.seed = seed
        self._rng = random.Random(seed)
        self._used: set = set()

    def begin_round(self, ctx: RoundContext) -> None:
        super().begin_round(ctx)
        self._rng = random.Random(f"{self.seed}:{ctx.round}")  # the same draws on resume
        self._used = {normalise(t) for t in ctx.seen_texts}

    def analyse(self, report: WeaknessReport, history: Sequence[str]) -> Analysis:
        return Analysis(text=self.NOTE, conversation=[])

    def propose(self, analysis: Analysis, n_hard: int, n_easy: int, with_labels: bool = False) -> Proposal:
        if self.strata:
            picked = self._stratified(n_hard + n_easy)
        else:
            free = [t for t in self.pool_texts if normalise(t) not in self._used]
            picked = self._rng.sample(free, min(n_hard + n_easy, len(free)))
        self._used.update(normalise(t) for t in picked)
        return Proposal(samples=[Sample(t, intent="random") for t in picked])

    def _stratified(self, n: int) -> List[str]:
        """n unused texts, one gold stratum after another (the strata in a random order each draw)."""
        free = {k: [t for t in ts if normalise(t) not in self._used] for k, ts in self.strata.items()}
        keys = sorted(free)
        self._rng.shuffle(keys)
        for ts in free.values():
            self._rng.shuffle(ts)
        picked: List[str] = []
        while len(picked) < n and any(free.values()):
            for k in keys:
                if free[k] and len(picked) < n:
                    picked.append(free[k].pop())
        return picked


def _gold_strata(pool: str, task, labels: List[str]) -> Dict[str, List[str]]:
    """The pool's texts by gold stratum: a text's first gold label (ner: first entity type, "" for none)."""
    import spacy

    from spacy_evokd.data import jsonl_to_docs

    strata: Dict[str, List[str]] = {}
    for doc in jsonl_to_docs(pool, task, spacy.blank("en"), labels):
        gold = [e.label_ for e in doc.ents] if task.name == "ner" else [k for k, v in sorted(doc.cats.items()) if v]
        strata.setdefault(gold[0] if gold else "", []).append(doc.text)
    return strata


def _teacher(
    cls, model: Any, task: str, labels: List[str], label_definitions: Dict[str, str], task_description: str, **extra
):
    return cls(
        model=model,
        task=get_task(task),
        labels=list(labels),
        label_definitions=dict(label_definitions),
        task_description=task_description,
        **extra,
    )


@registry.misc("spacy_evokd_bench.RandomPoolLLMTeacher.v1")
def random_pool_llm_teacher(
    model: Any,
    task: str,
    labels: List[str],
    pool: str,
    label_definitions: Dict[str, str] = {},
    task_description: str = "",
    seed: int = 0,
    stratified: bool = False,
) -> RandomPoolLLMTeacher:
    return _teacher(
        RandomPoolLLMTeacher,
        model,
        task,
        labels,
        label_definitions,
        task_description,
        pool=pool,
        seed=seed,
        stratified=stratified,
    )

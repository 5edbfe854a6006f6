"""SimulatedTeacher: an offline stand-in for an LLM teacher, for demos, tests and benchmarks.

It answers the three EvoKD calls with *real labelled examples from a pool* instead of generated
text: the "analysis" ranks labels by the student's weakness (low dev F1, frequent confusions),
"hard" inputs are drawn from the weak labels, "easy" ones from the strong labels, and "labelling"
returns the pool's gold label (optionally flipped with ``label_noise``). It never pretends to be
an LLM: its name starts with "simulated", every log line says so, and the loop marks reports.
"""
import logging
import random
from collections import Counter
from pathlib import Path
from typing import Dict, Iterable, List, Sequence

from ..data import load_samples
from .base import Analysis, Labelled, Proposal, Sample, Usage, WeaknessReport

logger = logging.getLogger("spacy_evokd.teacher")

_FLOOR = 0.05  # every label keeps some probability, so no label starves


class SimulatedTeacher:
    simulated = True

    def __init__(self, pool: str, task: str, labels: List[str], label_noise: float = 0.0, seed: int = 0, lang: str = "en"):
        if not 0.0 <= label_noise <= 1.0:
            raise ValueError(f"label_noise must be in [0, 1], got {label_noise}")
        self.task = task
        self.labels = list(labels)
        self.label_noise = label_noise
        self.seed = seed
        self.name = f"simulated teacher (pool {Path(pool).name})"
        self.pool: List[Sample] = load_samples(pool, task, labels)
        self._by_text: Dict[str, Sample] = {s.text: s for s in self.pool}
        self._used: set = set()
        self._rng = random.Random(seed)
        self._usage = Usage()

    def _log(self, msg: str, *args) -> None:
        logger.info("[simulated teacher] " + msg, *args)

    def begin_round(self, round_id: int, seen_texts: Iterable[str]) -> None:
        """Reseed per round and skip texts already used, so a resumed run draws the same
        samples as an uninterrupted one."""
        self._rng = random.Random(f"{self.seed}:{round_id}")
        self._used = set(seen_texts)

    # -- the three calls -------------------------------------------------------------------

    def analyse(self, report: WeaknessReport, history: Sequence[str]) -> Analysis:
        weakness = {}
        for label in self.labels:
            f = report.per_label.get(label, {}).get("f", 0.0) or 0.0
            weakness[label] = 1.0 - f
        for (gold, pred), n in report.confusions.items():
            for label in (gold, pred):
                if label in weakness:
                    weakness[label] += 0.1 * n
        ranked = sorted(weakness, key=weakness.get, reverse=True)
        conf = sorted(report.confusions.items(), key=lambda kv: -kv[1])[:3]
        text = (
            "[simulated teacher] No LLM was asked. Weakest labels by dev F1 and confusions: "
            + ", ".join(f"{l} ({1 - min(1.0, weakness[l]):.2f})" for l in ranked[:3])
            + ("; frequent confusions: " + ", ".join(f"{g}->{p} x{n}" for (g, p), n in conf) if conf else "")
            + f". Evidence: {len(report.wrong)} wrong, {len(report.correct)} correct samples from {report.evaluated_on}."
        )
        self._usage.requests += 1
        self._log("analysis: focus on %s", ", ".join(ranked[:3]))
        return Analysis(text=text, conversation=[], focus=weakness)

    def propose(self, analysis: Analysis, n_hard: int, n_easy: int, with_labels: bool = False) -> Proposal:
        focus = analysis.focus or {l: 1.0 for l in self.labels}
        top = max(focus.values()) if focus else 1.0
        hard_w = {l: _FLOOR + w for l, w in focus.items()}
        easy_w = {l: _FLOOR + (top - w) for l, w in focus.items()}
        samples = [self._copy(s, "hard", with_labels) for s in self._draw(hard_w, n_hard)]
        samples += [self._copy(s, "easy", with_labels) for s in self._draw(easy_w, n_easy)]
        self._usage.requests += 1
        self._log("proposed %d hard + %d easy pool samples", n_hard, n_easy)
        return Proposal(samples=samples)

    def _golds(self, texts: Sequence[str], rejected: Counter) -> Iterable[Sample]:
        """The pool's gold sample per text; texts not in the pool are counted (unknown_text)."""
        for text in texts:
            gold = self._by_text.get(text)
            if gold is None:
                rejected["unknown_text"] += 1
            else:
                yield gold

    def label(self, texts: Sequence[str]) -> Labelled:
        rejected = Counter()
        out = [self._noisy(gold) for gold in self._golds(texts, rejected)]
        self._usage.requests += 1
        self._log("labelled %d texts (label_noise=%.2f)", len(out), self.label_noise)
        return Labelled(samples=out, rejected=rejected)

    def pseudo_label(self, texts: Sequence[str], k: int = 5) -> Labelled:
        """LLKD pseudo-labels: k noisy draws of the pool's gold label per text; the majority is
        the label and its share the confidence ("simulated_agreement_k", seeded per text, so a
        rerun gives the same answers). Texts not in the pool can't be labelled."""
        out, rejected = [], Counter()
        for gold in self._golds(texts, rejected):
            rng, self._rng = self._rng, random.Random(f"{self.seed}:{gold.text}")
            draws = [self._noisy(gold) for _ in range(max(1, k))]
            self._rng = rng
            keys = [d.label if self.task == "textcat" else tuple(sorted(d.entities)) for d in draws]
            top, n = Counter(keys).most_common(1)[0]
            pick = draws[keys.index(top)]
            pick.confidence, pick.confidence_method = n / len(draws), f"simulated_agreement_{len(draws)}"
            out.append(pick)
        self._usage.requests += 1
        self._log("pseudo-labelled %d texts (k=%d, label_noise=%.2f)", len(out), k, self.label_noise)
        return Labelled(samples=out, rejected=rejected)

    def drain_usage(self) -> Usage:
        usage, self._usage = self._usage, Usage()
        return usage

    # -- helpers ---------------------------------------------------------------------------

    def _labels_of(self, s: Sample) -> List[str]:
        if self.task == "textcat":
            return [s.label]
        return sorted({e[2] for e in s.entities or []})

    def _draw(self, weights: Dict[str, float], n: int) -> List[Sample]:
        """Weighted draw without replacement; a sample weighs as its heaviest label (NER
        sentences without entities weigh as the floor)."""
        chosen: List[Sample] = []
        candidates = [s for s in self.pool if s.text not in self._used]
        for _ in range(n):
            if not candidates:
                break
            w = [max([weights.get(l, 0.0) for l in self._labels_of(s)] or [_FLOOR]) for s in candidates]
            pick = self._rng.choices(range(len(candidates)), weights=w, k=1)[0]
            chosen.append(candidates.pop(pick))
            self._used.add(chosen[-1].text)
        return chosen

    def _copy(self, s: Sample, intent: str, with_labels: bool) -> Sample:
        if with_labels:
            noisy = self._noisy(s)
            noisy.intent = intent
            return noisy
        return Sample(s.text, intent=intent)

    def _noisy(self, gold: Sample) -> Sample:
        flip = self.label_noise > 0 and self._rng.random() < self.label_noise
        if self.task == "textcat":
            label = gold.label
            if flip and len(self.labels) > 1:
                label = self._rng.choice([l for l in self.labels if l != gold.label])
            return Sample(gold.text, label=label, confidence=1.0 - self.label_noise, confidence_method="simulated")
        ents = list(gold.entities or [])
        if flip and ents and len(self.labels) > 1:
            i = self._rng.randrange(len(ents))
            s, e, l = ents[i]
            ents[i] = (s, e, self._rng.choice([x for x in self.labels if x != l]))
        return Sample(gold.text, entities=ents, confidence=1.0 - self.label_noise, confidence_method="simulated")

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
from dataclasses import replace
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence

from ..data import load_samples
from ..pool_source import PoolSource
from ..records import teacher_checks
from ..ty import Analysis, Anchor, Labelled, Proposal, RoundContext, Sample, Task, Usage, WeaknessReport
from ..validation import normalise
from ..weakness import label_focus
from .votes import majority

logger = logging.getLogger("spacy_evokd.teacher")

_FLOOR = 0.05  # every label keeps some probability, so no label starves
HARD_FROM = ("weak_labels", "near_wrong")


class SimulatedTeacher:
    simulated = True

    def __init__(
        self,
        pool: str,
        task: Task,
        labels: List[str],
        label_noise: float = 0.0,
        seed: int = 0,
        lang: str = "en",
        hard_from: str = "weak_labels",
        embedder: str = "student",
    ):
        if not 0.0 <= label_noise <= 1.0:
            raise ValueError(f"label_noise must be in [0, 1], got {label_noise}")
        if hard_from not in HARD_FROM:
            raise ValueError(f"hard_from must be one of {', '.join(HARD_FROM)}, got {hard_from!r}")
        self.task = task
        self.labels = list(labels)
        self.label_noise = label_noise
        self.seed = seed
        self.name = f"simulated teacher (pool {Path(pool).name})"
        self.hard_from = hard_from
        # near_wrong: "hard" = the pool texts nearest to the student's wrong samples, as EvoKD's
        # hard samples are meant to be (weak_labels only aims at the weak labels)
        self._near = PoolSource(pool, embedder) if hard_from == "near_wrong" else None
        self._wrong_texts: List[str] = []
        if self._near is not None:
            self.name = self.name[:-1] + ", hard = nearest to the student's wrong samples)"
        self.pool: List[Sample] = load_samples(pool, self.task, labels)
        self._by_text: Dict[str, Sample] = {s.text: s for s in self.pool}
        self._used: set = set()
        self._rng = random.Random(seed)
        self._round = 0
        self._usage = Usage()

    def _log(self, msg: str, *args) -> None:
        logger.info("[simulated teacher] " + msg, *args)

    def begin_round(self, ctx: RoundContext) -> None:
        """Reseed per round and skip texts already used, so a resumed run draws the same
        samples as an uninterrupted one. No budget: a simulated teacher spends no tokens."""
        self._rng = random.Random(f"{self.seed}:{ctx.round}")
        self._round = ctx.round
        self._used = set(ctx.seen_texts)
        if self._near is not None and ctx.student is not None:
            import spacy

            self._near.use_student(spacy.load(ctx.student))

    def use_cache(self, cache: Any) -> None:
        """Nothing to cache: answers come from the pool."""

    def drain_stats(self) -> Counter:
        return Counter()  # every answer is well-formed: no parse rate to report

    def round_checks(self, agreement: Counter) -> Dict[str, Any]:
        return teacher_checks(agreement, self.drain_stats())

    # -- the three calls -------------------------------------------------------------------

    def analyse(self, report: WeaknessReport, history: Sequence[str]) -> Analysis:
        weakness = label_focus(replace(report, labels=self.labels))
        f1 = {label: report.per_label.get(label, {}).get("f", 0.0) or 0.0 for label in self.labels}
        confused: Counter = Counter()
        for (gold, pred), n in report.confusions.items():
            confused.update({label: n for label in {gold, pred} if label in weakness})
        ranked = sorted(weakness, key=lambda label: weakness[label], reverse=True)
        conf = sorted(report.confusions.items(), key=lambda kv: -kv[1])[:3]
        # the dev F1 as it is, and the confusions that also raised the label's weakness
        text = (
            "[simulated teacher] No LLM was asked. Weakest labels (low dev F1, frequent confusions): "
            + ", ".join(
                f"{l} (dev F1 {f1[l]:.2f}{f', in {confused[l]} confusions' if confused[l] else ''})" for l in ranked[:3]
            )
            + ("; frequent confusions: " + ", ".join(f"{g}->{p} x{n}" for (g, p), n in conf) if conf else "")
            + f". Evidence: {len(report.wrong)} wrong, {len(report.correct)} correct samples from {report.evaluated_on}."
        )
        self._usage.requests += 1
        self._wrong_texts = [j.gold.text for j in report.wrong]
        self._log("analysis: focus on %s", ", ".join(ranked[:3]))
        return Analysis(text=text, conversation=[], focus=weakness)

    def propose(self, analysis: Analysis, n_hard: int, n_easy: int, with_labels: bool = False) -> Proposal:
        focus = analysis.focus or {l: 1.0 for l in self.labels}
        top = max(focus.values()) if focus else 1.0
        hard_w = {l: _FLOOR + w for l, w in focus.items()}
        easy_w = {l: _FLOOR + (top - w) for l, w in focus.items()}
        hard = self._nearest_to_wrong(n_hard) if self._near is not None else []
        hard += self._draw(hard_w, n_hard - len(hard))  # no student or no wrong samples yet: by label
        samples = [self._copy(s, "hard", with_labels) for s in hard]
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
        rejected: Counter = Counter()
        out = [self._noisy(gold) for gold in self._golds(texts, rejected)]
        self._used.update(texts)  # labelled this round (pool picks too): never drawn again
        self._usage.requests += 1
        self._log("labelled %d texts (label_noise=%.2f)", len(out), self.label_noise)
        return Labelled(samples=out, rejected=rejected)

    def rewrite(self, anchors: Sequence[Anchor]) -> Proposal:
        """Grounded generation, simulated: no text is rewritten. For each anchor an unused pool
        sample whose gold annotation has the target label stands in for the rewrite (unlabelled,
        with its ``target``; none left: nothing for that anchor). The labelling call then decides
        as for any text, so label noise shows up as off-target rewrites."""
        samples = []
        for anchor in anchors:
            fits = [s for s in self.pool if s.text not in self._used and anchor.target in self.task.sample_labels(s)]
            if fits:
                pick = self._rng.choice(fits)
                self._used.add(pick.text)
                samples.append(Sample(pick.text, intent="hard", target=anchor.target))
        self._usage.requests += 1
        self._log("rewrite: no LLM; %d unused pool samples of the target labels stand in for rewrites", len(samples))
        return Proposal(samples=samples)

    def write(self, label: str, n: int, with_labels: bool = False) -> Proposal:
        """Plain generation, simulated: ``n`` unused pool samples whose gold annotation has
        ``label`` (fewer when the pool has run out of them), with their (noisy) labels or, for
        the labelling call, unlabelled with ``target`` = ``label``."""
        fits = [s for s in self.pool if s.text not in self._used and label in self.task.sample_labels(s)]
        picks = self._rng.sample(fits, min(n, len(fits)))
        self._used.update(s.text for s in picks)
        samples = [self._copy(s, "plain", with_labels) for s in picks]
        if not with_labels:
            samples = [replace(s, target=label) for s in samples]
        self._usage.requests += 1
        self._log("write: no LLM; %d unused pool samples of %s", len(samples), label)
        return Proposal(samples=samples)

    def vote(self, texts: Sequence[str]) -> Labelled:
        """The second labelling vote ([evokd] second_vote): the pool's gold label with a fresh draw
        of the label noise per text, seeded by seed, round and text (a redone round votes the
        same). Independent of the first vote, as an LLM's sampled answers are not quite."""
        rejected: Counter = Counter()
        out = [
            self._noisy(gold, random.Random(f"{self.seed}:{self._round}:vote:{gold.text}"))
            for gold in self._golds(texts, rejected)
        ]
        self._usage.requests += 1
        self._log("second vote on %d texts (label_noise=%.2f)", len(out), self.label_noise)
        return Labelled(samples=out, rejected=rejected)

    def pseudo_label(self, texts: Sequence[str], k: int = 5) -> Labelled:
        """LLKD pseudo-labels: k noisy draws of the pool's gold label per text; the majority is
        the label and its share the confidence ("simulated_agreement_k", seeded per text, so a
        rerun gives the same answers). Texts not in the pool can't be labelled."""
        out: List[Sample] = []
        rejected: Counter = Counter()
        for gold in self._golds(texts, rejected):
            rng, self._rng = self._rng, random.Random(f"{self.seed}:{gold.text}")
            draws = [self._noisy(gold) for _ in range(max(1, k))]
            self._rng = rng
            pick, share = majority(draws, self.task)
            pick.confidence, pick.confidence_method = share, f"simulated_agreement_{len(draws)}"
            out.append(pick)
        self._usage.requests += 1
        self._log("pseudo-labelled %d texts (k=%d, label_noise=%.2f)", len(out), k, self.label_noise)
        return Labelled(samples=out, rejected=rejected)

    def drain_usage(self) -> Usage:
        usage, self._usage = self._usage, Usage()
        return usage

    # -- helpers ---------------------------------------------------------------------------

    def _draw(self, weights: Dict[str, float], n: int) -> List[Sample]:
        """Weighted draw without replacement; a sample weighs as its heaviest label (NER
        sentences without entities weigh as the floor)."""
        chosen: List[Sample] = []
        candidates = [s for s in self.pool if s.text not in self._used]
        for _ in range(n):
            if not candidates:
                break
            w = [max([weights.get(l, 0.0) for l in self.task.sample_labels(s)] or [_FLOOR]) for s in candidates]
            pick = self._rng.choices(range(len(candidates)), weights=w, k=1)[0]
            chosen.append(candidates.pop(pick))
            self._used.add(chosen[-1].text)
        return chosen

    def _nearest_to_wrong(self, n: int) -> List[Sample]:
        """The unused pool samples nearest to the wrong samples the analysis saw (the student's
        own vectors or MiniLM, as the pool mode chooses)."""
        near = self._near
        if near is None or not self._wrong_texts or near._pool_vectors is None:
            return []
        seen = {normalise(t) for t in self._used}
        chosen = [self._by_text[t] for t, _ in near.choose(self._wrong_texts, [], n, 0, seen) if t in self._by_text]
        self._used.update(s.text for s in chosen)
        return chosen

    def _copy(self, s: Sample, intent: str, with_labels: bool) -> Sample:
        if with_labels:
            noisy = self._noisy(s)
            noisy.intent = intent
            return noisy
        return Sample(s.text, intent=intent)

    def _noisy(self, gold: Sample, rng: Optional[random.Random] = None) -> Sample:
        rng = rng or self._rng
        flip = self.label_noise > 0 and rng.random() < self.label_noise
        answer = self.task.mislabel(gold, self.labels, rng) if flip else gold
        return replace(answer, intent=None, confidence=1.0 - self.label_noise, confidence_method="simulated")

"""The EvoKD round loop: resume, the round's steps, stopping (the run directory: run_state.py).

Round N reads in the order of its data flow:
  teach            the WeaknessReport (dev per-label scores of student N-1 + its correct and
                   wrong predictions on batch N-1) -> `analyses_per_round` x (analyse, propose
                   hard+easy, label), within the budget
  accept           validate the candidates -> the new batch (Docs)
  train and score  student N-1 on the new batch (feedback for round N+1) -> train student N on
                   seed + batch + replayed history, warm-started from student N-1 -> dev scores
  record           commit the round (model, DocBin, then the round record) and model-best
"""
import logging
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import spacy
from spacy.tokens import Doc

from . import preflight, student, weakness
from .budget import RunBudget
from .cache import ResponseCache, UsageLedger
from .config import load_config, resolve_evokd
from .data import DataError, read_docbin, write_docbin
from .pool_source import PoolSource
from .records import RoundRecord, rejected_samples
from .run_files import hold_run_dir
from .run_state import RunState
from .tasks import get_task
from .teachers.llm import describe_checks, round_checks
from .ty import Analysis, BudgetExceeded, Judged, Proposal, RoundContext, Sample, Teacher, Usage, WeaknessReport
from .untrusted import bound_history, cap_analysis, judge_analysis
from .validation import Validator, label_disagreements, normalise

logger = logging.getLogger("spacy_evokd.loop")

__all__ = ["EvoKDLoop", "RunState", "evolve"]  # RunState: where the kill tests have always found it


class Progress:
    """One line per event, prefixed so a simulated run can't be mistaken for an LLM run."""

    def __init__(self, teacher: Teacher, echo: Callable[[str], None] = print):
        self.prefix = "[evokd | simulated teacher]" if teacher.simulated else "[evokd]"
        self.echo = echo

    def __call__(self, msg: str) -> None:
        self.echo(f"{self.prefix} {msg}")
        logger.info("%s %s", self.prefix, msg)


@dataclass
class Teaching:
    """What a round's teacher calls gave (the teach step), as the later steps need it."""

    analyses: List[str] = field(default_factory=list)  # the kept ones
    candidates: List[Sample] = field(default_factory=list)  # labelled, not yet validated
    rejected: Counter = field(default_factory=Counter)  # by reason (the accept step adds its own)
    repaired: Counter = field(default_factory=Counter)
    agreement: Counter = field(default_factory=Counter)  # generation call's intended labels vs the labelling call's
    step: str = "analysis"  # the call in progress: a budget that stops it books its usage there
    budget_hit: Optional[str] = None  # the budget that ended the calls early
    stopped_by: Optional[str] = None  # set when that budget was the run's: the run stops after this round
    checks: Dict[str, Any] = field(default_factory=dict)  # teachers/llm.round_checks
    seconds: float = 0.0
    rejects: List[Tuple[Sample, str]] = field(default_factory=list)  # what validation rejected, and why


@dataclass
class Trained:
    """The train-and-score step's result."""

    model: Path  # the new student (work/round_NNN/model/model-best)
    batch_scores: Optional[Dict[str, Any]]  # student N-1 on the new batch
    batch_judged: List[Judged]
    dev: Dict[str, Any]  # student N on dev
    train_size: int
    seconds: Dict[str, float]


class EvoKDLoop:
    def __init__(self, config, output_dir: Path, echo: Callable[[str], None] = print):
        self.config = config
        self.settings, self.teacher = resolve_evokd(config)
        s = self.settings
        self.task = get_task(s.task)
        self.dir = Path(output_dir)
        preflight.check_output_dir(self.dir)  # before anything is read, trained or asked
        self.state = RunState(self.dir)
        self.progress = Progress(self.teacher, echo)
        paths = config.interpolate()["paths"]
        self.nlp = spacy.blank(config["nlp"]["lang"])
        self.seed_docs = self._read("paths.train", paths.get("train"))
        self.dev_docs = self._read("paths.dev", paths.get("dev"))
        test_docs = self._read("paths.test", paths["test"]) if paths.get("test") else []
        if not self.seed_docs:
            raise DataError(f"seed data {paths.get('train')} is empty: the loop needs at least one labelled example per label")
        self._check_labels(self.seed_docs, str(paths.get("train")))
        self._check_labels(self.dev_docs, str(paths.get("dev")))
        self.extra_docs = self._read_extra(s.extra_train)
        where = str(paths.get("train")) + (f" (with extra_train {s.extra_train})" if s.extra_train else "")
        preflight.check_label_coverage(self.seed_docs + self.extra_docs, self.task, s.labels, where)
        self.validator = Validator(
            self.nlp, self.task, s.labels,
            max_chars=s.max_chars,
            blocked_texts=[d.text for d in self.dev_docs + test_docs], definitions=s.label_definitions,
        )  # fmt: skip
        # source = "pool" | "both": unlabelled texts chosen by the analysis' evidence (pool_source.py)
        self.pool_source = None
        if s.source != "generate":
            self.pool_source = PoolSource(s.unlabelled_pool, s.pool_embedder, blocked_texts=[d.text for d in self.dev_docs + test_docs])
        preflight.check_teacher(self.teacher, reach=s.check_teacher)  # last: the only check that goes out
        self.dir.mkdir(parents=True, exist_ok=True)
        self.cache = ResponseCache(self.dir / "cache.sqlite")
        self.ledger = UsageLedger(self.dir / "cache.sqlite")
        self.teacher.use_cache(self.cache)

    # -- setup helpers ---------------------------------------------------------------------

    def _read(self, key: str, path) -> List[Doc]:
        if not path:
            raise DataError(f"config: {key} is not set")
        return read_docbin(path, self.nlp.vocab)

    def _read_extra(self, where: str) -> List[Doc]:
        """Extra labelled docs for every round's training (unweighted here; the augmenter in
        `spacy train` honours their weights)."""
        if not where:
            return []
        path = Path(where)
        files = sorted(path.glob("*.spacy")) if path.is_dir() else [path]
        docs = [d for f in files for d in read_docbin(f, self.nlp.vocab)]
        self._check_labels(docs, where)
        return docs

    def _check_labels(self, docs: List[Doc], where: str) -> None:
        s = self.settings
        found = {label for d in docs for label in self.task.doc_labels(d)}
        unknown = sorted(found - set(s.labels))
        if unknown:
            raise DataError(f"{where}: label {unknown[0]!r} is not in [evokd] labels {s.labels}")

    # -- run -------------------------------------------------------------------------------

    def run(self) -> Dict[str, Any]:
        """Run or resume, holding OUTPUT_DIR/.lock throughout: a second process on the same
        directory would discard this one's round in progress, so it is refused (run_files.py)."""
        with hold_run_dir(self.dir):
            return self._run()

    def _run(self) -> Dict[str, Any]:
        s = self.settings
        self.state.discard_uncommitted()
        done = self.state.committed()
        self.ledger.drop_rounds_after(done[-1] if done else -1)
        if done:
            self.progress(f"resuming after round {done[-1]} ({len(done) - 1} of {s.rounds} rounds committed)")
        else:
            self.config.to_disk(self.dir / "config.cfg")
        if 0 not in done:
            self._seed_round()
        stopped_by = None
        for n in range(len(self.state.committed()), s.rounds + 1):
            stopped_by = self._should_stop(n)
            if stopped_by:
                break
            stopped_by = self._round(n)
            if stopped_by:
                break
        best_n, best = self.state.update_best()
        totals = self.ledger.totals()
        reason = stopped_by or f"{len(self.state.committed()) - 1} rounds done"
        self.progress(f"finished: {reason}; best dev {s.metric} {best:.3f} (round {best_n}); "
                      f"teacher tokens {totals.total_tokens:,}, cost ${totals.cost:.4f}; model: {self.dir / 'model-best'}")
        return {"best_round": best_n, "best_dev": best, "stopped_by": reason, "usage": totals.to_dict()}

    def _should_stop(self, n: int) -> Optional[str]:
        s = self.settings
        spent = RunBudget(s, self.ledger, n).run_exhausted()
        if spent:
            return spent
        if s.patience:
            scores = [self.state.load_record(i).dev["score"] for i in self.state.committed()]
            best_at = max(range(len(scores)), key=scores.__getitem__)
            if len(scores) - 1 - best_at >= s.patience:
                return f"no dev gain for {s.patience} rounds (patience)"
        return None

    def _seed_round(self) -> None:
        s = self.settings
        t0 = time.time()
        self.progress(f"round 0: training the student on {len(self.seed_docs)} seed docs")
        work = self.state.work_dir / "round_000"
        seed_path = work / "train.spacy"
        write_docbin(self.seed_docs + self.extra_docs, seed_path)
        model = student.train(self.config, seed_path, self._dev_path(), work / "model", gpu_id=s.gpu_id,
                              progress=lambda line: self.progress(f"round 0: {line}"))
        t_train = time.time() - t0
        nlp = student.load(model)
        dev, _ = student.evaluate(nlp, self.dev_docs, self.task, s.labels)
        _, fb = student.evaluate(nlp, self.seed_docs, self.task, s.labels)
        record = RoundRecord(
            round=0, teacher=self.teacher.name, simulated=self.teacher.simulated,
            analyses=[], generated=0, accepted=0, rejected={}, accepted_per_label={}, usage=Usage().to_dict(),
            batch_scores=None, dev=dev, feedback=self._feedback(fb), train_size=len(self.seed_docs) + len(self.extra_docs),
            seconds={"train": round(t_train, 2), "total": round(time.time() - t0, 2)}, task=self.task.name,
        )  # fmt: skip
        self.state.commit(0, record, None, work / "model")
        self.state.update_best()
        self.progress(f"round 0 committed: dev {s.metric} {dev['score']:.3f}")

    def _dev_path(self) -> Path:
        path = self.state.work_dir / "dev.spacy"
        if not path.exists():
            write_docbin(self.dev_docs, path)
        return path

    def _feedback(self, judged: List[Judged]) -> Dict[str, List[Dict]]:
        correct = [weakness.is_correct(j, self.task) for j in judged]
        return {
            "correct": [j.to_dict() for j, ok in zip(judged, correct) if ok],
            "wrong": [j.to_dict() for j, ok in zip(judged, correct) if not ok],
        }

    def _seen_texts(self, upto: int) -> List[str]:
        """Texts never to be generated again: the seed, earlier rounds' samples, and samples a
        person removed in review (`import-review`: they are gone from the round DocBins)."""
        from .review import removed_texts

        texts = [d.text for d in self.seed_docs]
        for n in range(1, upto):
            texts += [d.text for d in read_docbin(self.state.docbin_path(n), self.nlp.vocab)]
        return texts + sorted(removed_texts(self.state.dir))

    def _history(self, upto: int) -> List[str]:
        """Earlier rounds' analyses for the history review, oldest first; the prompt shows the
        newest that fit untrusted.HISTORY_MAX_CHARS. Records written before analyses were judged
        may hold anything: they are judged again here (untrusted.py)."""
        s = self.settings
        if not s.review_history:
            return []
        lines = []
        for n in range(max(1, upto - s.history_window), upto):
            for a in self.state.load_record(n).analyses:
                if isinstance(a, str) and judge_analysis(a) is None:
                    lines.append(f"Round {n}: {a}")
        return lines

    # -- one round -------------------------------------------------------------------------

    def _round(self, n: int) -> Optional[str]:
        """teach -> accept -> train and score -> record. Returns why the run stops after this
        round (a run budget reached), or None."""
        t0 = time.time()
        prev = self.state.load_record(n - 1)
        report = weakness.build_report(self.task, self.settings.labels, prev.dev, prev.judged(),
                                       "the seed data" if n == 1 else f"the round {n - 1} batch")  # fmt: skip
        seen_texts = self._seen_texts(n)
        teaching = self._teach(n, report, seen_texts)
        docs = self._accept(n, teaching, seen_texts)
        if not docs:
            self.progress(f"round {n}: no valid samples (rejected: {dict(teaching.rejected)})")
            if teaching.stopped_by:  # nothing to train on: the round is not committed
                return teaching.stopped_by
        trained = self._train_and_score(n, docs)
        self._record(n, prev, teaching, docs, trained, t0)
        return teaching.stopped_by

    def _teach(self, n: int, report: WeaknessReport, seen_texts: List[str]) -> Teaching:
        """The round's teacher calls. A budget reached midway ends them: what was generated and
        labelled so far is kept; a run budget stops the run after this round, a round budget
        only ends the round (equal spend per round)."""
        s = self.settings
        t0 = time.time()
        self.teacher.begin_round(RoundContext(
            round=n, seen_texts=seen_texts, run_seed=s.seed, budget=RunBudget(s, self.ledger, n),
            student=self.state.student_path(n - 1),
        ))  # fmt: skip
        history = self._history(n)
        pool_seen = {normalise(t) for t in seen_texts}  # pool texts already used are never offered again
        if self.pool_source is not None:
            self.pool_source.use_student(student.load(self.state.student_path(n - 1)))
        out = Teaching()
        try:
            for i in range(s.analyses_per_round):
                self._teach_once(n, i, report, history, pool_seen, out)
        except BudgetExceeded as e:
            self._book(n, out.step)
            out.budget_hit = str(e)
            out.stopped_by = None if e.per_round else out.budget_hit
            self.progress(f"round {n}: {out.budget_hit}; keeping the {len(out.candidates)} samples labelled so far"
                          + ("" if e.per_round else "; the run stops after this round"))
        out.seconds = time.time() - t0
        out.checks = round_checks(self.teacher, out.agreement)
        return out

    def _teach_once(self, n: int, i: int, report: WeaknessReport, history: List[str], pool_seen: set,
                    out: Teaching) -> None:  # fmt: skip
        """The i-th analysis (a different window of the report's examples each time) and the
        inputs it asks for (generated and/or pool texts), labelled."""
        s = self.settings
        shown = weakness.window(report, i, s.max_examples_shown, s.show_correct)
        out.step = "analysis"
        review = bound_history(history + [f"Round {n}: {a}" for a in out.analyses])
        analysis = self.teacher.analyse(shown, review)
        self._book(n, out.step)
        reason = self._judge(analysis, review, out.repaired)
        if reason:  # not stored, not replayed, and no generation is asked for on top of it
            out.rejected[reason] += 1
            logger.info("round %d: analysis %d rejected (%s)", n, i + 1, reason)
            return
        out.analyses.append(analysis.text)
        picked = self._pool_picks(shown, pool_seen)
        proposal = Proposal(samples=[])
        if s.source != "pool":
            out.step = "generate"
            proposal = self.teacher.propose(analysis, s.n_hard, s.n_easy, with_labels=not s.separate_labelling)
            self._book(n, out.step)
            out.rejected.update(proposal.rejected)
        # pool texts are always labelled in the separate call: they come without labels
        to_label = picked + (proposal.samples if s.separate_labelling else [])
        if not s.separate_labelling:
            out.candidates += proposal.samples
        if to_label:
            out.step = "label"
            labelled = self.teacher.label([p.text for p in to_label])
            self._book(n, out.step)
            out.rejected.update(labelled.rejected)
            out.agreement.update(label_disagreements(to_label, labelled.samples, self.task, s.labels))
            intents = {p.text: p.intent for p in to_label}
            for sample in labelled.samples:
                sample.intent = intents.get(sample.text)
            out.candidates += labelled.samples

    @staticmethod
    def _judge(analysis: Analysis, review: List[str], repaired: Counter) -> Optional[str]:
        """Cap a talkative analysis (the generation call continues the chat with the kept part),
        then the reason to reject it, or None (untrusted.py)."""
        capped = cap_analysis(analysis.text)
        if capped != analysis.text:
            repaired["analysis_truncated"] += 1
            analysis.text = capped
            if analysis.conversation and analysis.conversation[-1].role == "assistant":
                analysis.conversation[-1].content = capped
        prompt = "\n".join(m.content for m in analysis.conversation if m.role != "assistant")
        return judge_analysis(analysis.text, prompt, review)

    def _accept(self, n: int, teaching: Teaching, seen_texts: List[str]) -> List[Doc]:
        """The candidates that pass validation, as Docs tagged with their round and teacher; the
        rejected ones are counted in ``teaching.rejected``."""
        docs, invalid = self.validator.validate(teaching.candidates, {normalise(t) for t in seen_texts}, teaching.rejects)
        teaching.rejected.update(invalid)
        for d in docs:
            d.user_data.setdefault("evokd", {}).update({"round": n, "teacher": self.teacher.name})
        return docs

    def _train_and_score(self, n: int, docs: List[Doc]) -> Trained:
        s = self.settings
        # student N-1 on the new batch before training on it: next round's feedback
        t_eval = time.time()
        prev_nlp = student.load(self.state.student_path(n - 1))
        batch_scores, batch_judged = student.evaluate(prev_nlp, docs, self.task, s.labels) if docs else (None, [])
        t_eval = time.time() - t_eval
        work = self.state.work_dir / f"round_{n:03d}"
        train_docs = self.seed_docs + self.extra_docs + docs + self._replay(n)
        write_docbin(train_docs, work / "train.spacy")
        warm = self.state.student_path(n - 1) if s.warm_start else None
        t1 = time.time()
        model = student.train(self.config, work / "train.spacy", self._dev_path(), work / "model",
                              warm_start_from=warm, max_steps=s.warm_start_steps if warm else None, gpu_id=s.gpu_id,
                              progress=lambda line: self.progress(f"round {n}: {line}"))
        t_train = time.time() - t1
        t2 = time.time()
        dev, _ = student.evaluate(student.load(model), self.dev_docs, self.task, s.labels)
        t_eval += time.time() - t2
        return Trained(model=model, batch_scores=batch_scores, batch_judged=batch_judged, dev=dev,
                       train_size=len(train_docs), seconds={"train": round(t_train, 2), "eval": round(t_eval, 2)})  # fmt: skip

    def _record(self, n: int, prev: RoundRecord, teaching: Teaching, docs: List[Doc], trained: Trained, t0: float) -> None:
        """Commit round n and say how it went."""
        s = self.settings
        usage = self.ledger.totals(round=n)
        rejected = teaching.rejected
        record = RoundRecord(
            round=n, teacher=self.teacher.name, simulated=self.teacher.simulated,
            analyses=teaching.analyses, generated=len(docs) + sum(rejected.values()), accepted=len(docs),
            rejected=dict(rejected), accepted_per_label=dict(Counter(l for d in docs for l in self.task.doc_labels(d))),
            usage=usage.to_dict(), batch_scores=trained.batch_scores, dev=trained.dev,
            feedback=self._feedback(trained.batch_judged) if docs else prev.feedback, train_size=trained.train_size,
            seconds={"teacher": round(teaching.seconds, 2), **trained.seconds, "total": round(time.time() - t0, 2)},
            stopped_by=teaching.stopped_by, teacher_checks=teaching.checks, repaired=dict(teaching.repaired),
            rejected_samples=rejected_samples(teaching.rejects),
            budget_hit=teaching.budget_hit, task=self.task.name,
        )  # fmt: skip
        self.state.commit(n, record, docs, trained.model.parent)
        best_n, best = self.state.update_best()
        # model-last is never read: "all" keeps every round's model-best, "best" two of them
        self.state.prune_models(keep=(best_n, n) if s.keep_models == "best" else self.state.committed())
        rej = ", ".join(f"{k}: {v}" for k, v in sorted(rejected.items())) or "none"
        quality = describe_checks(teaching.checks)
        totals = self.ledger.totals()
        self.progress(
            f"round {n}/{s.rounds}: accepted {len(docs)}, rejected {sum(rejected.values())} ({rej}) | "
            f"tokens {usage.total_tokens:,} (run {totals.total_tokens:,}), cost ${totals.cost:.4f} | "
            f"dev {s.metric} {trained.dev['score']:.3f} (best {best:.3f}, round {best_n})" + (f" | teacher: {quality}" if quality else "")
        )

    def _pool_picks(self, shown: WeaknessReport, seen: set) -> List[Sample]:
        """Pool texts for one analysis' slots (source = "pool" | "both"): hard ones nearest to the
        wrong samples it saw, easy ones nearest to the correct ones; [] for source = "generate"."""
        if self.pool_source is None:
            return []
        s = self.settings
        picks = self.pool_source.choose([j.gold.text for j in shown.wrong], [j.gold.text for j in shown.correct],
                                        s.n_hard, s.n_easy, seen)  # fmt: skip
        return [Sample(text, intent=intent) for text, intent in picks]

    def _book(self, n: int, step: str) -> None:
        self.ledger.record(round=n, step=step, model=self.teacher.name, usage=self.teacher.drain_usage())

    def _replay(self, n: int) -> List[Doc]:
        """Earlier rounds' samples mixed into this round's training (fraction history_replay)."""
        s = self.settings
        docs = []
        for m in range(1, n):
            docs += read_docbin(self.state.docbin_path(m), self.nlp.vocab)
        if s.history_replay >= 1.0 or not docs:
            return docs
        rng = random.Random(f"{s.seed}:{n}")
        return rng.sample(docs, int(round(len(docs) * s.history_replay)))


def evolve(config_path: Path, output_dir: Path, overrides: Optional[Dict[str, Any]] = None,
           teacher: Optional[Path] = None, echo: Callable[[str], None] = print) -> Dict[str, Any]:
    config = load_config(config_path, overrides or {}, teacher=teacher)
    return EvoKDLoop(config, output_dir, echo=echo).run()

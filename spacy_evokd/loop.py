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
import shutil
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Set, Tuple

from spacy.tokens import Doc

from . import active, grounding, preflight, second_vote, sources, student, weakness
from .augment import copies, doc_weight
from .budget import RunBudget
from .cache import ResponseCache, UsageLedger
from .config import load_config
from .data import DataError, read_docbin, write_docbin
from .doc_meta import DocMeta, update_meta
from .pool_source import PoolSource
from .records import RoundRecord, describe_checks, rejected_samples
from .run_setup import RunSetup
from .run_state import RunState
from .selection import llkd_weights
from .ty import Analysis, BudgetExceeded, Judged, Proposal, RoundContext, Sample, Teacher, Usage, WeaknessReport
from .untrusted import bound_history, cap_analysis, judge_analysis
from .validation import label_disagreements, normalise

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
    checks: Dict[str, Any] = field(default_factory=dict)  # Teacher.round_checks
    seconds: float = 0.0
    rejects: List[Tuple[Sample, str]] = field(default_factory=list)  # what validation rejected, and why
    analysis_repeats: int = 0  # analyses that repeated an earlier one of the round (normalised)
    split: Dict[str, Any] = field(default_factory=dict)  # samples per source (sources.split)
    planned_stop: Optional[str] = None  # a call not started because its texts could not be labelled in budget
    # source = "auto": where active labelling stopped at its share of the tokens (generation goes on)
    active_share_used: Optional[str] = None
    needs: Dict[str, float] = field(default_factory=dict)  # active picks: normalised text -> the student's uncertainty
    student: Any = None  # the round's starting student, loaded when pool picks or second votes need it
    votes: Counter = field(default_factory=Counter)  # second_vote: asked, agreed, disagreed, unanswered, one_vote
    seen_vectors: Any = None  # grounded: the seen texts' embeddings, computed once per round


@dataclass
class SeenTexts:
    """The texts a round must not use again, built once per round by the loop (their one owner):
    ``texts`` (seed, earlier rounds, removed in review; the teacher gets them), ``known`` their
    normalised forms (validation starts from a copy), ``taken`` known + this round's pool picks
    (the pickers add theirs)."""

    texts: List[str]
    known: Set[str]
    taken: Set[str]

    @classmethod
    def of(cls, texts: List[str]) -> "SeenTexts":
        keys = {normalise(t) for t in texts}
        return cls(list(texts), keys, set(keys))


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
    """A run: ``__init__`` checks every input (run_setup.py), ``run`` holds OUTPUT_DIR and runs
    or resumes the rounds."""

    cache: ResponseCache  # opened by ``run``, inside the lock
    ledger: UsageLedger

    def __init__(self, config, output_dir: Path, echo: Callable[[str], None] = print):
        self.setup = setup = RunSetup.of(config, output_dir)
        self.config, self.settings, self.teacher = config, setup.settings, setup.teacher
        s = self.settings
        self.task, self.dir, self.nlp = setup.task, setup.dir, setup.nlp
        self.state = RunState(self.dir)
        self.progress = Progress(self.teacher, echo)
        paths = setup.paths
        self.seed_docs = setup.read("train")
        self.dev_docs = setup.read("dev")
        test_docs = setup.read("test", required=False)
        if not self.seed_docs:
            raise DataError(
                f"seed data {paths.get('train')} is empty: the loop needs at least one labelled example per label"
            )
        self._check_labels(self.seed_docs, str(paths.get("train")))
        self._check_labels(self.dev_docs, str(paths.get("dev")))
        self.extra_docs = self._read_extra(s.extra_train)
        where = str(paths.get("train")) + (f" (with extra_train {s.extra_train})" if s.extra_train else "")
        preflight.check_label_coverage(self.seed_docs + self.extra_docs, self.task, s.labels, where)
        self.validator = setup.validator(self.dev_docs + test_docs, definitions=s.label_definitions)
        # unlabelled texts: source = "pool" | "both" (chosen by the analysis' evidence, pool_source.py),
        # "active" | "auto" (picked by the student, active.py), grounded = true (rewritten, _rewrite)
        self.pool_source = None
        if s.unlabelled_pool:  # read only where used (config: source and grounded)
            self.pool_source = PoolSource(
                s.unlabelled_pool,
                s.pool_embedder,
                blocked_texts=[d.text for d in self.dev_docs + test_docs],
                max_chars=s.max_chars,
            )
            if self.pool_source.too_long:
                self.progress(
                    f"pool {s.unlabelled_pool}: {self.pool_source.too_long} texts over max_chars {s.max_chars} skipped"
                )
        setup.check_teacher()  # last: the only check that goes out
        self.costs = sources.StepCosts()  # recent tokens per request / labelled text: the round plans with them
        self.doubt = Counter()  # second_vote: labelled texts checked and found in doubt (the plan's vote share)

    # -- setup helpers ---------------------------------------------------------------------

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
        with self.setup.hold() as (self.cache, self.ledger):
            return self._run()

    def _run(self) -> Dict[str, Any]:
        s = self.settings
        self.state.discard_uncommitted()
        done = self.state.committed()
        self.ledger.drop_rounds_after(done[-1] if done else -1)
        if done:
            self.progress(f"resuming after round {done[-1]} ({len(done) - 1} of {s.rounds} rounds committed)")
        else:
            self.config.to_disk(self.state.config_path)
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
        self.progress(
            f"finished: {reason}; best dev {s.metric} {best:.3f} (round {best_n}); "
            f"teacher tokens {totals.total_tokens:,}, cost ${totals.cost:.4f}; model: {self.state.model_best}"
        )
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
        work = self.state.work_round_dir(0)
        seed_path = work / "train.spacy"
        write_docbin(self.seed_docs + self.extra_docs, seed_path)
        model = student.train(
            self.config,
            seed_path,
            self._dev_path(),
            work / "model",
            gpu_id=s.gpu_id,
            progress=lambda line: self.progress(f"round 0: {line}"),
        )
        t_train = time.time() - t0
        nlp = student.load(model)
        dev, _ = student.evaluate(nlp, self.dev_docs, self.task, s.labels)
        _, fb = student.evaluate(nlp, self.seed_docs, self.task, s.labels)
        record = RoundRecord(
            round=0,
            teacher=self.teacher.name,
            simulated=self.teacher.simulated,
            analyses=[],
            generated=0,
            accepted=0,
            rejected={},
            accepted_per_label={},
            usage=Usage().to_dict(),
            batch_scores=None,
            dev=dev,
            feedback=self._feedback(fb),
            train_size=len(self.seed_docs) + len(self.extra_docs),
            seconds={"train": round(t_train, 2), "total": round(time.time() - t0, 2)},
            task=self.task.name,
        )
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
            "correct": [j.to_dict(self.task) for j, ok in zip(judged, correct) if ok],
            "wrong": [j.to_dict(self.task) for j, ok in zip(judged, correct) if not ok],
        }

    def _seen_texts(self, upto: int) -> List[str]:
        """Texts never to be generated again: the seed, earlier rounds' samples, and samples a
        person removed in review (`import-review`: they are gone from the round DocBins)."""
        texts = [d.text for d in self.seed_docs]
        for n in range(1, upto):
            texts += [d.text for d in self.state.docs(n, self.nlp.vocab)]
        return texts + sorted(self.state.removed_texts())

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
        report = weakness.build_report(
            self.task,
            self.settings.labels,
            prev.dev,
            prev.judged(self.task),
            "the seed data" if n == 1 else f"the round {n - 1} batch",
        )
        seen = SeenTexts.of(self._seen_texts(n))
        teaching = self._teach(n, report, seen)
        docs = self._accept(n, teaching, seen)
        if not docs:
            self.progress(f"round {n}: no valid samples (rejected: {dict(teaching.rejected)})")
        if not docs and teaching.stopped_by:
            # the run budget is spent: commit the round (budget_hit, nothing accepted) with round
            # n-1's student instead of training on nothing new, so a resume doesn't pay for it again
            trained = self._unchanged_student(n, prev)
        else:
            trained = self._train_and_score(n, docs)
        self._record(n, prev, teaching, docs, trained, t0)
        return teaching.stopped_by

    def _teach(self, n: int, report: WeaknessReport, seen: SeenTexts) -> Teaching:
        """The round's teacher calls: active pool picks labelled, then briefs and the generation
        they feed, as the round's split says (sources.py). Calls are planned within the token
        budget (a call whose texts could not be labelled is not started); a budget reached midway
        ends them: what was generated so far is kept (labelled, or with its intended labels); a
        run budget stops the run after this round, a round budget only ends the round."""
        s = self.settings
        t0 = time.time()
        self.teacher.begin_round(
            RoundContext(
                round=n,
                seen_texts=seen.texts,
                run_seed=s.seed,
                budget=RunBudget(s, self.ledger, n),
                student=self.state.student_path(n - 1),
            )
        )
        history = self._history(n)
        nlp = None
        if self.pool_source is not None or s.second_vote:
            nlp = student.load(self.state.student_path(n - 1))
        if self.pool_source is not None:
            self.pool_source.use_student(nlp)
        out = Teaching(split=self._split(n), student=nlp)
        try:
            if out.split["active"]:
                self._teach_active(n, out.split["active"], nlp, seen, out)
            self._teach_generation(n, out.split["generate"], report, history, seen, out)
        except BudgetExceeded as e:
            self._book(n, out.step)
            out.budget_hit = str(e)
            out.stopped_by = None if e.per_round else out.budget_hit
            self.progress(
                f"round {n}: {out.budget_hit}; keeping the {len(out.candidates)} samples generated so far"
                + ("" if e.per_round else "; the run stops after this round")
            )
        out.seconds = time.time() - t0
        out.checks = self.teacher.round_checks(out.agreement)
        if s.second_vote:
            out.checks["second_vote"] = {k: out.votes[k] for k in second_vote.VOTE_COUNTS}
        return out

    def _split(self, n: int) -> Dict[str, Any]:
        """Samples this round asks of each source: all of them of the configured one, or
        source = "auto"'s split by what the last rounds bought."""
        s = self.settings
        per_request = s.n_hard + s.n_easy
        slots = s.analyses_per_round * s.generations_per_brief * per_request
        if s.source == "active":
            return {"generate": 0, "active": slots, "why": "source = active"}
        if s.source != "auto":
            return {"generate": slots, "active": 0, "why": f"source = {s.source}"}
        history = [self.state.load_record(m).sources for m in range(1, n)]
        return sources.split(slots, per_request, history, s.auto_floor, self.pool_source is not None)

    def _teach_active(self, n: int, slots: int, nlp, seen: SeenTexts, out: Teaching) -> None:
        """Pool texts the student picks (active.py), as many as can be labelled in the budget;
        the first round's picks are label-stratified (the seed student knows next to nothing).
        Under source = "auto" with a token budget, active labelling spends at most its share of
        the tokens left (``_active_cap``): labelled a request's worth at a time, it stops before
        the share is used up, so generation gets the rest (else active, labelled first, would
        take the whole round budget whatever the split said)."""
        lefts = [left for _, _, left in RunBudget(self.settings, self.ledger, n).tokens_left()]
        cap = self._active_cap(lefts, out.split)
        per_text = self.costs.estimate("active_label")
        left = min(lefts + ([cap] if cap is not None else []), default=None)
        if left is not None and per_text and left // per_text < slots:
            fits = int(left // per_text)
            out.planned_stop = f"planned: {fits} of {slots} pool texts can be labelled in the {left} tokens left"
            if not fits and cap is None:
                self._plan(n, f"labelling {slots} pool texts", out, active_label=slots)  # raises
            slots = fits
        picks = active.pick(self.pool_source, nlp, self.task, slots, seen.taken, seen.texts, stratified=n == 1)
        chunk = len(picks) if cap is None else self.settings.n_hard + self.settings.n_easy
        spent_before = self.ledger.totals(round=n).total_tokens
        for i in range(0, len(picks), max(1, chunk)):
            part = picks[i : i + chunk]
            spent = self.ledger.totals(round=n).total_tokens - spent_before
            if cap is not None and i and spent + self.costs.estimate("active_label", len(part)) > cap:
                out.active_share_used = f"active share ({cap} tokens) used after {i} pool texts"
                for p in picks[i:]:  # never labelled: free for later rounds
                    seen.taken.discard(normalise(p.text))
                break
            out.needs.update({normalise(p.text): p.need for p in part})
            self._label(n, [Sample(p.text, intent="active") for p in part], out, "active_label")

    def _active_cap(self, lefts: List[int], split: Dict[str, Any]) -> Optional[int]:
        """source = "auto": the tokens active labelling may spend this round: its share of the
        round's samples x the tokens left of the tightest token budget (``lefts``; None: no token
        budget, or active alone)."""
        total = split["active"] + split["generate"]
        if self.settings.source != "auto" or not lefts or not split["generate"] or not total:
            return None
        return int(min(lefts) * split["active"] / total)

    def _teach_generation(
        self, n: int, slots: int, report: WeaknessReport, history: List[str], seen: SeenTexts, out: Teaching
    ) -> None:
        """``slots`` samples written by the teacher: briefs (one per window of the report), each
        feeding up to ``generations_per_brief`` generation requests (the paper: 1); with
        analysis = "none", plain requests without a brief (``_teach_plain``)."""
        s = self.settings
        requests = slots // (s.n_hard + s.n_easy)
        if s.analysis == "none":
            self._teach_plain(n, requests, out)
            return
        i = 0
        while requests > 0:
            k = min(s.generations_per_brief, requests)
            self._teach_once(n, i, report, history, seen, out, k)
            requests -= k
            i += 1

    def _teach_plain(self, n: int, requests: int, out: Teaching) -> None:
        """analysis = "none": ``requests`` requests for n_hard + n_easy texts of one label each,
        the labels in turn, in an order drawn per round (every label gets its turn in a round
        that ends early as often as any other; the same order on resume)."""
        s = self.settings
        order = random.Random(f"{s.seed}:{n}:write").sample(s.labels, len(s.labels))
        for i in range(requests):
            label = order[i % len(order)]
            proposal = self._generate(
                n, out, lambda: self.teacher.write(label, s.n_hard + s.n_easy, with_labels=not s.separate_labelling)
            )
            if s.separate_labelling:
                self._label(n, proposal.samples, out, "label")  # drops a text labelled off its target
            else:
                out.candidates += proposal.samples

    def _generate(self, n: int, out: Teaching, ask: Callable[[], Proposal]) -> Proposal:
        """One generation request (``ask``), planned with the labelling of its texts."""
        s = self.settings
        self._plan(n, "a generation request", out, generate=1, label=s.n_hard + s.n_easy if s.separate_labelling else 0)
        out.step = "generate"
        proposal = ask()
        self._book(n, out.step)
        out.rejected.update(proposal.rejected)
        return proposal

    def _teach_once(
        self,
        n: int,
        i: int,
        report: WeaknessReport,
        history: List[str],
        seen: SeenTexts,
        out: Teaching,
        proposals: int = 1,
    ) -> None:
        """The i-th brief (a different window of the report's examples each time) and the inputs
        it asks for (generated and/or pool texts), labelled."""
        s = self.settings
        shown = weakness.window(report, i, s.max_examples_shown, s.show_correct)
        analysis = self._brief(n, shown, history, out, proposals)
        if analysis is None:
            return
        picked = self._pool_picks(shown, seen.taken)
        # pool texts and rewrites are always labelled in the separate call: they come without labels
        separate = s.separate_labelling or s.grounded
        for _ in range(proposals):
            proposal = Proposal(samples=[])
            if s.source != "pool" and s.grounded:
                proposal = self._rewrite(n, shown, seen, out, picked)
            elif s.source != "pool":
                proposal = self._generate(
                    n, out, lambda: self.teacher.propose(analysis, s.n_hard, s.n_easy, not s.separate_labelling)
                )
            to_label = picked + (proposal.samples if separate else [])
            picked = []
            if not separate:
                out.candidates += proposal.samples
            self._label(n, to_label, out, "label")

    def _rewrite(self, n: int, shown: WeaknessReport, seen: SeenTexts, out: Teaching, picked: List[Sample]) -> Proposal:
        """Grounded generation: the request's slots as anchors (``grounding.anchors``) the teacher rewrites
        toward their targets (ledger step "rewrite"); rewrites too close to a text already had
        are dropped before they are labelled (``_drop_similar``)."""
        s = self.settings
        per_request = s.n_hard + s.n_easy
        self._plan(n, "a rewrite request", out, rewrite=1, label=per_request)
        assert self.pool_source is not None  # config: grounded needs unlabelled_pool
        anchors = grounding.anchors(self.pool_source, self.task, s.labels, shown, per_request, seen.taken)
        if len(anchors) < per_request:  # not a rejection: nothing was asked for those slots
            self.progress(f"round {n}: the pool has {len(anchors)} unused texts for {per_request} rewrites")
        if not anchors:
            return Proposal(samples=[])
        out.step = "rewrite"
        proposal = self.teacher.rewrite(anchors)
        self._book(n, out.step)
        out.rejected.update(proposal.rejected)
        proposal.samples = self._drop_similar(proposal.samples, seen, out, picked)
        return proposal

    def _drop_similar(
        self, samples: List[Sample], seen: SeenTexts, out: Teaching, picked: List[Sample]
    ) -> List[Sample]:
        """Rewrites whose cosine similarity (the pool embedder) to the seed, earlier rounds, this
        round's candidates (pool picks, rewrites) or each other reaches grounded_max_similarity
        (``rejected["near_duplicate_embedding"]``); over max_chars: left to the validator."""
        assert self.pool_source is not None
        if not samples:
            return samples
        if out.seen_vectors is None:  # once per round: the seed and earlier rounds don't change
            out.seen_vectors = self.pool_source.embed(seen.texts) if seen.texts else None
        refs = [v for v in (out.seen_vectors,) if v is not None]
        this_round = [c.text for c in out.candidates + picked]
        if this_round:
            refs.append(self.pool_source.embed(this_round))
        close = grounding.too_similar(self.pool_source, samples, refs, self.settings.grounded_max_similarity)
        for x in (x for x, c in zip(samples, close) if c):
            out.rejected["near_duplicate_embedding"] += 1
            out.rejects.append((x, "near_duplicate_embedding"))
        return [x for x, c in zip(samples, close) if not c]

    def _brief(
        self, n: int, shown: WeaknessReport, history: List[str], out: Teaching, proposals: int
    ) -> Optional[Analysis]:
        """The brief generation is aimed with: the student's own (analysis = "student", no call)
        or the teacher's analysis, judged (None: rejected, or not started within the budget)."""
        s = self.settings
        if s.analysis == "student":
            brief = weakness.student_brief(shown, self.task, s.max_examples_shown)
            out.analyses.append(brief.text)
            return brief
        generating = s.source != "pool"
        self._plan(
            n,
            "an analysis and the generation it feeds",
            out,
            analysis=1,
            generate=proposals if generating else 0,
            label=proposals * (s.n_hard + s.n_easy) if s.separate_labelling and generating else 0,
        )
        out.step = "analysis"
        review = bound_history(history + [f"Round {n}: {a}" for a in out.analyses])
        analysis = self.teacher.analyse(shown, review)
        self._book(n, out.step)
        reason = self._judge(analysis, review, out.repaired)
        if reason:  # not stored, not replayed, and no generation is asked for on top of it
            out.rejected[reason] += 1
            logger.info("round %d: analysis rejected (%s)", n, reason)
            return None
        if normalise(analysis.text) in {normalise(a) for a in out.analyses}:
            out.analysis_repeats += 1
        out.analyses.append(analysis.text)
        return analysis

    def _plan(self, n: int, what: str, out: Optional[Teaching] = None, **texts_per_step: int) -> None:
        """A call (with the labelling of its texts, and their expected second votes) is not started
        when the estimated tokens of ``texts_per_step`` exceed what is left of a token budget: the BudgetExceeded it would run
        into is raised before it (recorded as the round's ``planned_stop``)."""
        need = sum(self.costs.estimate(step, count) for step, count in texts_per_step.items() if count)
        if self.settings.second_vote:
            need += sources.vote_tokens(self.costs, texts_per_step, self.doubt["asked"], self.doubt["checked"])
        stop = sources.planned_stop(RunBudget(self.settings, self.ledger, n).tokens_left(), need, what)
        if stop is not None:
            if out is not None:
                out.planned_stop = str(stop)
            raise stop

    def _label(self, n: int, to_label: List[Sample], out: Teaching, step: str) -> None:
        """The separate labelling call. Texts a budget leaves unlabelled are kept with the label
        their generation call intended (``repaired["kept_unlabelled"]``); pool texts have none
        (``rejected["unlabelled_at_budget"]``). The budget is raised again after that."""
        if not to_label:
            return
        out.step = step
        try:
            labelled = self.teacher.label([p.text for p in to_label])
        except BudgetExceeded:
            self._keep_unlabelled(to_label, out)
            raise
        self._book(n, step, len(to_label) - len(labelled.unasked))
        out.rejected.update(labelled.rejected)
        out.agreement.update(label_disagreements(to_label, labelled.samples, self.task, self.settings.labels))
        intents = {p.text: (p.intent, p.target) for p in to_label}
        on_target = []
        for sample in labelled.samples:
            sample.intent, sample.target = intents.get(sample.text, (None, None))
            if sample.target is not None and sample.target not in self.task.sample_labels(sample):
                out.rejected["off_target"] += 1  # a rewrite the labelling call did not give its target
                out.rejects.append((sample, "off_target"))
            else:
                on_target.append(sample)
        kept, stop = on_target, None
        if self.settings.second_vote:
            kept, stop = self._second_vote(n, on_target, out, step, budget_hit=labelled.budget is not None)
        out.candidates += kept
        if labelled.budget is not None:
            unasked = set(labelled.unasked)
            self._keep_unlabelled([p for p in to_label if p.text in unasked], out)
            raise labelled.budget
        if stop is not None:
            raise stop

    def _second_vote(
        self, n: int, samples: List[Sample], out: Teaching, step: str, budget_hit: bool
    ) -> Tuple[List[Sample], Optional[BudgetExceeded]]:
        """[evokd] second_vote: the labelled samples in doubt (``second_vote.in_doubt``) are labelled again
        (Teacher.vote, booked as the step "<step>_vote"); one whose votes differ is dropped
        (``rejected["vote_disagreed"]``), one the second vote left unlabelled too
        (``rejected["vote_unanswered"]``). A budget reached before the vote keeps them with one
        vote (``repaired["one_vote_at_budget"]``) and is returned to be raised after."""
        s = self.settings
        doubtful = second_vote.in_doubt(samples, out.student, self.task, s.labels, s.max_chars, s.second_vote_below)
        out.votes["asked"] += len(doubtful)
        self.doubt.update(asked=len(doubtful), checked=len(samples))
        if not doubtful:
            return samples, None
        if budget_hit:
            out.repaired["one_vote_at_budget"] += len(doubtful)
            out.votes["one_vote"] += len(doubtful)
            return samples, None
        out.step = f"{step}_vote"
        try:
            votes = self.teacher.vote([samples[i].text for i in doubtful])
        except BudgetExceeded as e:
            out.repaired["one_vote_at_budget"] += len(doubtful)
            out.votes["one_vote"] += len(doubtful)
            return samples, e
        self._book(n, out.step, len(doubtful) - len(votes.unasked))
        unasked, second = set(votes.unasked), {v.text: v for v in votes.samples}
        dropped = set()
        for i in doubtful:
            text = samples[i].text
            reason = second_vote.outcome(samples[i], second.get(text), self.task, self.settings.labels, text in unasked)
            out.votes[reason] += 1
            if reason == "one_vote":
                out.repaired["one_vote_at_budget"] += 1
            elif reason in ("unanswered", "disagreed"):
                out.rejected[f"vote_{reason}"] += 1
                out.rejects.append((samples[i], f"vote_{reason}"))
                dropped.add(i)
        return [x for i, x in enumerate(samples) if i not in dropped], votes.budget

    def _keep_unlabelled(self, samples: List[Sample], out: Teaching) -> None:
        for p in samples:
            if self.task.comparable(p, self.settings.labels) is None:
                out.rejected["unlabelled_at_budget"] += 1
            else:
                out.repaired["kept_unlabelled"] += 1
                out.candidates.append(p)

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

    def _accept(self, n: int, teaching: Teaching, seen: SeenTexts) -> List[Doc]:
        """The candidates that pass validation, as Docs tagged with their round, teacher and
        source; active picks get LLKD's weight. The rejected ones are counted in ``teaching.rejected``."""
        docs, invalid = self.validator.validate(teaching.candidates, set(seen.known), teaching.rejects)
        teaching.rejected.update(invalid)
        for d in docs:
            update_meta(d, round=n, teacher=self.teacher.name, source=_source(d))
        self._weigh_active([d for d in docs if _source(d) == "active"], teaching.needs)
        return docs

    @staticmethod
    def _weigh_active(docs: List[Doc], needs: Dict[str, float]) -> None:
        """LLKD's weight for active picks: the teacher's confidence x the student's need (its
        uncertainty when it picked the text), mean 1 over the round's picks, in [0.1, 10]."""
        conf = [DocMeta.of(d).confidence or 1.0 for d in docs]
        need = [needs.get(normalise(d.text), 1.0) for d in docs]
        for i, w in llkd_weights(list(range(len(docs))), conf, need):
            update_meta(docs[i], weight=round(w, 4), student_uncertainty=round(need[i], 4))

    def _train_and_score(self, n: int, docs: List[Doc]) -> Trained:
        s = self.settings
        # student N-1 on the new batch before training on it: next round's feedback
        t_eval = time.time()
        prev_nlp = student.load(self.state.student_path(n - 1))
        batch_scores, batch_judged = student.evaluate(prev_nlp, docs, self.task, s.labels) if docs else (None, [])
        t_eval = time.time() - t_eval
        work = self.state.work_round_dir(n)
        train_docs = self.seed_docs + self.extra_docs + docs + self._replay(n)
        write_docbin(self._weighted(train_docs, n), work / "train.spacy")
        warm = self.state.student_path(n - 1) if s.warm_start else None
        t1 = time.time()
        model = student.train(
            self.config,
            work / "train.spacy",
            self._dev_path(),
            work / "model",
            warm_start_from=warm,
            max_steps=s.warm_start_steps if warm else None,
            gpu_id=s.gpu_id,
            progress=lambda line: self.progress(f"round {n}: {line}"),
        )
        t_train = time.time() - t1
        t2 = time.time()
        dev, _ = student.evaluate(student.load(model), self.dev_docs, self.task, s.labels)
        t_eval += time.time() - t2
        return Trained(
            model=model,
            batch_scores=batch_scores,
            batch_judged=batch_judged,
            dev=dev,
            train_size=len(train_docs),
            seconds={"train": round(t_train, 2), "eval": round(t_eval, 2)},
        )

    def _unchanged_student(self, n: int, prev: RoundRecord) -> Trained:
        """Round n-1's student as round n's, untrained and unscored again."""
        model = self.state.work_round_dir(n) / "model" / "model-best"
        shutil.rmtree(model.parent, ignore_errors=True)
        shutil.copytree(self.state.student_path(n - 1), model)
        return Trained(
            model=model,
            batch_scores=None,
            batch_judged=[],
            dev=prev.dev,
            train_size=prev.train_size,
            seconds={"train": 0.0, "eval": 0.0},
        )

    def _record(
        self, n: int, prev: RoundRecord, teaching: Teaching, docs: List[Doc], trained: Trained, t0: float
    ) -> None:
        """Commit round n and say how it went."""
        s = self.settings
        usage = self.ledger.totals(round=n)
        rejected = teaching.rejected
        record = RoundRecord(
            round=n,
            teacher=self.teacher.name,
            simulated=self.teacher.simulated,
            analyses=teaching.analyses,
            generated=len(docs) + sum(rejected.values()),
            accepted=len(docs),
            rejected=dict(rejected),
            accepted_per_label=dict(Counter(l for d in docs for l in self.task.doc_labels(d))),
            usage=usage.to_dict(),
            batch_scores=trained.batch_scores,
            dev=trained.dev,
            feedback=self._feedback(trained.batch_judged) if docs else prev.feedback,
            train_size=trained.train_size,
            seconds={"teacher": round(teaching.seconds, 2), **trained.seconds, "total": round(time.time() - t0, 2)},
            stopped_by=teaching.stopped_by,
            teacher_checks=teaching.checks,
            repaired=dict(teaching.repaired),
            rejected_samples=rejected_samples(teaching.rejects, self.task),
            budget_hit=teaching.budget_hit,
            task=self.task.name,
            sources=self._sources(n, prev, teaching, docs, trained),
            usage_by_step={step: u.to_dict() for step, u in self._usage_by_step(n).items()},
            analysis_repeats=teaching.analysis_repeats,
        )
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
            f"dev {s.metric} {trained.dev['score']:.3f} (best {best:.3f}, round {best_n})"
            + (f" | teacher: {quality}" if quality else "")
            + (self._split_line(teaching.split) if s.source == "auto" else "")
        )

    @staticmethod
    def _split_line(split: Dict[str, Any]) -> str:
        """source = "auto": the round's split in its progress line (the reasons: round record, report)."""
        return f" | auto: {split.get('generate', 0)} generated + {split.get('active', 0)} active samples asked"

    def _usage_by_step(self, n: int) -> Dict[str, Usage]:
        out: Dict[str, Usage] = {}
        for row in self.ledger.rows():
            if row["round"] == n:
                out.setdefault(row["step"], Usage()).add(sources.row_usage(row))
        return out

    def _sources(
        self, n: int, prev: RoundRecord, teaching: Teaching, docs: List[Doc], trained: Trained
    ) -> Dict[str, Any]:
        """What each source was asked for and bought this round (source = "auto" decides the
        next split from it): samples asked, tokens, cost, accepted, and how many of those the
        round's starting student got wrong; the round's dev gain; the planner's stop."""
        usage = sources.by_source(self._usage_by_step(n))
        wrong: Counter = Counter()
        for d, j in zip(docs, trained.batch_judged):
            wrong[_source(d)] += not weakness.is_correct(j, self.task)
        accepted = Counter(_source(d) for d in docs)
        out: Dict[str, Any] = {"split": teaching.split, "dev_gain": round(trained.dev["score"] - prev.dev["score"], 4)}
        for name in sources.SOURCES:
            slots, used = teaching.split.get(name, 0), usage.get(name, Usage())
            if slots or used.requests:
                out[name] = {
                    "slots": slots,
                    "tokens": used.total_tokens,
                    "cost": sources.cost_of(used, slots),
                    "accepted": accepted[name],
                    "wrong": wrong[name],
                }
        if teaching.planned_stop:
            out["planned_stop"] = teaching.planned_stop
        if teaching.active_share_used:
            out["active_share_used"] = teaching.active_share_used
        return out

    def _pool_picks(self, shown: WeaknessReport, seen: set) -> List[Sample]:
        """Pool texts for one analysis' slots (source = "pool" | "both"): hard ones nearest to the
        wrong samples it saw, easy ones nearest to the correct ones; [] for source = "generate"."""
        s = self.settings
        if self.pool_source is None or s.source not in ("pool", "both"):
            return []
        picks = self.pool_source.choose(
            [j.gold.text for j in shown.wrong], [j.gold.text for j in shown.correct], s.n_hard, s.n_easy, seen
        )
        return [Sample(text, intent=intent) for text, intent in picks]

    def _book(self, n: int, step: str, texts: int = 1) -> None:
        """Book the step's usage in the ledger; ``texts`` it labelled (labelling steps) make the
        per-text estimate the round plans with."""
        usage = self.teacher.drain_usage()
        self.costs.observe(step, usage, texts)
        self.ledger.record(round=n, step=step, model=self.teacher.name, usage=usage)

    def _weighted(self, docs: List[Doc], n: int) -> List[Doc]:
        """Each doc as many times as its weight says (``user_data["evokd"]["weight"]``: LLKD's,
        active picks', an extra_train selection's; 1 without one), realised as the augmenter does."""
        rng = random.Random(f"{self.settings.seed}:{n}:weights")
        return [d for d in docs for _ in range(copies(doc_weight(d), rng))]

    def _replay(self, n: int) -> List[Doc]:
        """Earlier rounds' samples mixed into this round's training (fraction history_replay)."""
        s = self.settings
        docs = []
        for m in range(1, n):
            docs += self.state.docs(m, self.nlp.vocab)
        if s.history_replay >= 1.0 or not docs:
            return docs
        rng = random.Random(f"{s.seed}:{n}")
        return rng.sample(docs, int(round(len(docs) * s.history_replay)))


def _source(doc: Doc) -> str:
    """The source an accepted sample is booked to: "active" for active picks, else "generate"
    (the analysis-driven sources: generated texts and source = "pool" | "both" picks)."""
    return "active" if DocMeta.of(doc).intent == "active" else "generate"


def evolve(
    config_path: Path,
    output_dir: Path,
    overrides: Optional[Dict[str, Any]] = None,
    teacher: Optional[Path] = None,
    echo: Callable[[str], None] = print,
) -> Dict[str, Any]:
    config = load_config(config_path, overrides or {}, teacher=teacher)
    return EvoKDLoop(config, output_dir, echo=echo).run()

"""The EvoKD round loop: state on disk, resume, stopping.

Layout of OUTPUT_DIR (state on disk is the source of truth):
  config.cfg                 the config the run was started with (overrides applied)
  cache.sqlite               teacher response cache + usage ledger
  rounds/round_NNN.spacy     accepted samples of round N (N >= 1)
  rounds/round_NNN.json      round record; written last: its presence *commits* round N
  models/round_NNN/          the student trained in round N (round 0: on the seed)
  model-best/                the best student on dev so far
  work/                      scratch space of the round in progress (discarded on resume)

Round N: build the WeaknessReport (dev per-label scores of student N-1 + its correct and wrong
predictions on batch N-1) -> `analyses_per_round` x (analyse, propose hard+easy, label) ->
validate -> evaluate student N-1 on the new batch (feedback for round N+1) -> train student N on
seed + batch + replayed history, warm-started from student N-1 -> evaluate on dev -> commit.
"""
import logging
import os
import random
import re
import shutil
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import spacy
from spacy.tokens import Doc

from . import preflight, student, weakness
from .cache import ResponseCache, UsageLedger
from .pool_source import PoolSource
from .config import load_config, resolve_evokd
from .data import DataError, read_docbin, write_docbin
from .run_files import RunDirError, hold_run_dir, is_json_object, read_json, read_round_record, write_json
from .teachers.base import BudgetExceeded, Judged, Proposal, Sample, Teacher, Usage
from .untrusted import bound_history, cap_analysis, judge_analysis
from .teachers.llm import describe_checks, round_checks
from .validation import Validator, label_disagreements, normalise

logger = logging.getLogger("spacy_evokd.loop")


@dataclass
class RoundRecord:
    round: int
    teacher: str
    simulated: bool
    analyses: List[str]
    generated: int
    accepted: int
    rejected: Dict[str, int]
    accepted_per_label: Dict[str, int]
    usage: Dict[str, Any]
    batch_scores: Optional[Dict[str, Any]]  # student N-1 on the new batch
    dev: Dict[str, Any]  # student N on dev
    feedback: Dict[str, List[Dict]]  # student N-1's correct/wrong predictions on the new batch
    train_size: int
    seconds: Dict[str, float]
    stopped_by: Optional[str] = None
    repaired: Dict[str, int] = field(default_factory=dict)  # counted repairs (untrusted.py), e.g. analysis_truncated
    budget_hit: Optional[str] = None  # the budget that ended this round's teacher calls early
    # label disagreement, parse rate, structured-output form (teachers/llm.py round_checks)
    teacher_checks: Optional[Dict[str, Any]] = None


def _judged_to_json(judged: List[Judged]) -> List[Dict]:
    return [{"gold": asdict(j.gold), "pred": asdict(j.pred)} for j in judged]


def _judged_from_json(items: List[Dict]) -> List[Judged]:
    def sample(d: Dict) -> Sample:
        if d.get("entities") is not None:
            d = dict(d, entities=[tuple(e) for e in d["entities"]])
        return Sample(**d)

    return [Judged(sample(i["gold"]), sample(i["pred"])) for i in items]


class RunState:
    """What is committed under OUTPUT_DIR."""

    def __init__(self, output_dir: Path):
        self.dir = output_dir
        self.rounds_dir = output_dir / "rounds"
        self.models_dir = output_dir / "models"
        self.work_dir = output_dir / "work"

    def record_path(self, n: int) -> Path:
        return self.rounds_dir / f"round_{n:03d}.json"

    def docbin_path(self, n: int) -> Path:
        return self.rounds_dir / f"round_{n:03d}.spacy"

    def model_path(self, n: int) -> Path:
        return self.models_dir / f"round_{n:03d}"

    def committed(self) -> List[int]:
        """Committed round numbers; they are contiguous from 0 by construction."""
        if not self.rounds_dir.exists():
            return []
        nums = sorted(n for n in map(_round_number, (p.name for p in self.rounds_dir.glob("round_*.json"))) if n is not None)
        for expected, n in enumerate(nums):
            if n != expected:
                raise RunDirError(f"{self.rounds_dir}: round {expected:03d} is missing but {n:03d} exists; "
                                  "delete the later rounds' records to redo them")  # fmt: skip
        return nums

    def load_record(self, n: int) -> Dict:
        """Round n's record; a damaged one is a RunDirError naming the file."""
        return read_round_record(self.record_path(n), n)

    def discard_uncommitted(self) -> None:
        """Remove everything a crashed round left behind, so it is redone from scratch (the
        response cache makes the redo cheap and identical)."""
        done = set(self.committed())
        shutil.rmtree(self.work_dir, ignore_errors=True)
        for folder, pattern in ((self.rounds_dir, "round_*"), (self.models_dir, "round_*")):
            if not folder.exists():
                continue
            for p in folder.glob(pattern):
                n = _round_number(p.name, any_suffix=True)
                if n is None:  # not ours (e.g. a user's note): left alone
                    continue
                if n not in done or p.name.endswith(".tmp"):
                    shutil.rmtree(p) if p.is_dir() else p.unlink()

    def commit(self, n: int, record: RoundRecord, docs: Optional[List[Doc]], model_dir: Path) -> None:
        """Model, then DocBin, then the JSON record by atomic rename: a crash before the last
        rename leaves an uncommitted round that the next run discards."""
        self.models_dir.mkdir(parents=True, exist_ok=True)
        self.rounds_dir.mkdir(parents=True, exist_ok=True)
        final_model = self.model_path(n)
        if final_model.exists():
            shutil.rmtree(final_model)
        os.replace(model_dir, final_model)
        if docs is not None:
            write_docbin(docs, self.docbin_path(n))
        write_json(self.record_path(n), asdict(record))
        shutil.rmtree(model_dir.parent, ignore_errors=True)  # the round's scratch dir (work/round_NNN)

    def update_best(self, score_key: str = "score") -> Tuple[int, float]:
        """Copy the best committed student on dev to OUTPUT_DIR/model-best (idempotent). A
        model-best whose meta.json is damaged (a kill while an older version wrote it in place)
        is rebuilt from the round's model."""
        best_n, best = 0, -1.0
        for n in self.committed():
            s = self.load_record(n)["dev"].get(score_key, 0.0)
            if s > best:
                best_n, best = n, s
        src = self.model_path(best_n) / "model-best"
        marker = self.dir / "model-best" / "evokd_round.txt"
        current = marker.exists() and marker.read_text() == str(best_n)
        if current and not is_json_object(self.dir / "model-best" / "meta.json"):
            logger.warning("%s: damaged, rebuilding it from round %d", self.dir / "model-best" / "meta.json", best_n)
            current = False
        if not current:
            tmp = self.dir / "model-best.tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.copytree(src, tmp)
            (tmp / "evokd_round.txt").write_text(str(best_n))
            shutil.rmtree(self.dir / "model-best", ignore_errors=True)
            os.replace(tmp, self.dir / "model-best")
        (self.dir / "model-best" / "meta.json.tmp").unlink(missing_ok=True)  # a kill's leftover: not to be packaged
        self._stamp_meta(self.dir / "model-best" / "meta.json", best_n)  # rounds/samples so far
        return best_n, best


    def _stamp_meta(self, path: Path, best_n: int) -> None:
        """Provenance for `spacy package`: the meta says which teacher, how many rounds and
        samples, and the dev scores (spaCy keeps unknown meta keys)."""
        records = [self.load_record(n) for n in self.committed()]
        best = records[best_n]
        dev = {k: v for k, v in best["dev"].items() if isinstance(v, (int, float))}
        meta = read_json(path)
        kind = "a simulated teacher (pool examples, no LLM)" if best["simulated"] else f"the teacher {best['teacher']}"
        meta["description"] = (f"Student distilled with spacy-evokd from {kind}: round {best_n} of "
                               f"{len(records) - 1}, {sum(r['accepted'] for r in records[1:best_n + 1])} generated samples.")
        meta["evokd"] = {
            "teacher": best["teacher"], "simulated": best["simulated"], "best_round": best_n,
            "rounds": len(records) - 1, "samples": sum(r["accepted"] for r in records[1 : best_n + 1]),
            "train_size": best["train_size"], "dev": dev,
        }  # fmt: skip
        write_json(path, meta)  # atomic: a kill here must not leave a truncated meta.json


def _round_number(name: str, any_suffix: bool = False) -> Optional[int]:
    """N of "round_NNN.json" (``any_suffix``: of round_NNN, round_NNN.spacy, round_NNN.json.tmp ...)."""
    m = re.fullmatch(r"round_(\d+)(\..*)?" if any_suffix else r"round_(\d+)\.json", name)
    return int(m.group(1)) if m else None


class Progress:
    """One line per event, prefixed so a simulated run can't be mistaken for an LLM run."""

    def __init__(self, teacher: Teacher, echo: Callable[[str], None] = print):
        self.prefix = "[evokd | simulated teacher]" if getattr(teacher, "simulated", False) else "[evokd]"
        self.echo = echo

    def __call__(self, msg: str) -> None:
        self.echo(f"{self.prefix} {msg}")
        logger.info("%s %s", self.prefix, msg)


class EvoKDLoop:
    def __init__(self, config, output_dir: Path, echo: Callable[[str], None] = print):
        self.config = config
        self.settings, self.teacher = resolve_evokd(config)
        s = self.settings
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
        preflight.check_label_coverage(self.seed_docs + self.extra_docs, s.task, s.labels, where)
        self.validator = Validator(
            self.nlp, s.task, s.labels,
            max_chars=s.max_chars,
            blocked_texts=[d.text for d in self.dev_docs + test_docs], definitions=s.label_definitions,
        )  # fmt: skip
        # source = "pool" | "both": unlabelled texts chosen by the analysis' evidence (pool_source.py)
        self.pool_source = None
        if s.source != "generate":
            self.pool_source = PoolSource(s.pool, s.pool_embedder, blocked_texts=[d.text for d in self.dev_docs + test_docs])
        preflight.check_teacher(self.teacher, reach=s.check_teacher)  # last: the only check that goes out
        self.dir.mkdir(parents=True, exist_ok=True)
        self.cache = ResponseCache(self.dir / "cache.sqlite")
        self.ledger = UsageLedger(self.dir / "cache.sqlite")
        if hasattr(self.teacher, "cache"):
            self.teacher.cache = self.cache

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
        found = set()
        for d in docs:
            found |= {e.label_ for e in d.ents} if s.task == "ner" else {k for k, v in d.cats.items() if v}
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
        totals = self.ledger.totals()
        if s.max_tokens and totals.total_tokens >= s.max_tokens:
            return f"token budget reached (max_tokens={s.max_tokens}, used {totals.total_tokens})"
        if s.max_cost and totals.cost >= s.max_cost:
            return f"cost budget reached (max_cost={s.max_cost}, spent {totals.cost:.4f})"
        if s.patience:
            scores = [self.state.load_record(i)["dev"]["score"] for i in self.state.committed()]
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
        model = student.train(self.config, seed_path, self._dev_path(), work / "model", gpu_id=s.gpu_id)
        t_train = time.time() - t0
        nlp = student.load(model)
        dev, _ = student.evaluate(nlp, self.dev_docs, s.task, s.labels)
        _, fb = student.evaluate(nlp, self.seed_docs, s.task, s.labels)
        record = RoundRecord(
            round=0, teacher=self.teacher.name, simulated=bool(getattr(self.teacher, "simulated", False)),
            analyses=[], generated=0, accepted=0, rejected={}, accepted_per_label={}, usage=Usage().to_dict(),
            batch_scores=None, dev=dev, feedback=self._feedback(fb), train_size=len(self.seed_docs) + len(self.extra_docs),
            seconds={"train": round(t_train, 2), "total": round(time.time() - t0, 2)},
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
        task = self.settings.task
        return {
            "correct": _judged_to_json([j for j in judged if weakness.is_correct(j, task)]),
            "wrong": _judged_to_json([j for j in judged if not weakness.is_correct(j, task)]),
        }

    def _seen_texts(self, upto: int) -> List[str]:
        texts = [d.text for d in self.seed_docs]
        for n in range(1, upto):
            texts += [d.text for d in read_docbin(self.state.docbin_path(n), self.nlp.vocab)]
        return texts

    def _history(self, upto: int) -> List[str]:
        """Earlier rounds' analyses for the history review, oldest first; the prompt shows the
        newest that fit untrusted.HISTORY_MAX_CHARS. Records written before analyses were judged
        may hold anything: they are judged again here (untrusted.py)."""
        s = self.settings
        if not s.review_history:
            return []
        lines = []
        for n in range(max(1, upto - s.history_window), upto):
            rec = self.state.load_record(n)
            for a in rec["analyses"]:
                if isinstance(a, str) and judge_analysis(a) is None:
                    lines.append(f"Round {n}: {a}")
        return lines

    def _round(self, n: int) -> Optional[str]:
        s = self.settings
        t0 = time.time()
        prev = self.state.load_record(n - 1)
        judged = _judged_from_json(prev["feedback"]["correct"] + prev["feedback"]["wrong"])
        report = weakness.build_report(s.task, s.labels, prev["dev"], judged,
                                       "the seed data" if n == 1 else f"the round {n - 1} batch")
        seen_texts = self._seen_texts(n)
        if hasattr(self.teacher, "run_seed"):
            self.teacher.run_seed = s.seed  # request seeds derive from it (a redo sends the same requests)
        if hasattr(self.teacher, "begin_round"):
            self.teacher.begin_round(n, seen_texts)
        if hasattr(self.teacher, "see_student"):  # pool-sampling baselines (bench/); LLM teachers never see it
            self.teacher.see_student(self.state.model_path(n - 1) / "model-best")
        history = self._history(n)
        pool_seen = {normalise(t) for t in seen_texts}  # pool texts already used are never offered again
        if self.pool_source is not None:
            self.pool_source.use_student(student.load(self.state.model_path(n - 1) / "model-best"))
        analyses, candidates, rejected, repaired = [], [], Counter(), Counter()
        agreement = Counter()  # the generation call's intended labels vs the labelling call's
        stopped_by = budget_hit = None
        if hasattr(self.teacher, "budget"):
            self.teacher.budget = lambda pending: self._check_budget(n, pending)
        step = "analysis"
        try:
            for i in range(s.analyses_per_round):
                shown = weakness.window(report, i, s.max_examples_shown, s.show_correct)
                step = "analysis"
                review = bound_history(history + [f"Round {n}: {a}" for a in analyses])
                analysis = self.teacher.analyse(shown, review)
                self._book(n, step)
                capped = cap_analysis(analysis.text)
                if capped != analysis.text:  # the generation call continues the chat with the kept part
                    repaired["analysis_truncated"] += 1
                    analysis.text = capped
                    if analysis.conversation and analysis.conversation[-1].role == "assistant":
                        analysis.conversation[-1].content = capped
                prompt = "\n".join(m.content for m in analysis.conversation if m.role != "assistant")
                reason = judge_analysis(analysis.text, prompt, review)
                if reason:  # not stored, not replayed, and no generation is asked for on top of it
                    rejected[reason] += 1
                    logger.info("round %d: analysis %d rejected (%s)", n, i + 1, reason)
                    continue
                analyses.append(analysis.text)
                picked = self._pool_picks(shown, pool_seen)
                proposal = Proposal(samples=[])
                if s.source != "pool":
                    step = "generate"
                    proposal = self.teacher.propose(analysis, s.n_hard, s.n_easy, with_labels=not s.separate_labelling)
                    self._book(n, step)
                    rejected.update(proposal.rejected)
                # pool texts are always labelled in the separate call: they come without labels
                to_label = picked + (proposal.samples if s.separate_labelling else [])
                if not s.separate_labelling:
                    candidates += proposal.samples
                if to_label:
                    step = "label"
                    labelled = self.teacher.label([p.text for p in to_label])
                    self._book(n, step)
                    rejected.update(labelled.rejected)
                    agreement.update(label_disagreements(to_label, labelled.samples, s.task, s.labels))
                    intents = {p.text: p.intent for p in to_label}
                    for sample in labelled.samples:
                        sample.intent = intents.get(sample.text)
                    candidates += labelled.samples
        except BudgetExceeded as e:
            # what was generated and labelled so far is kept; a run budget stops the run after
            # this round, a round budget only ends the round (equal spend per round)
            self._book(n, step)
            budget_hit = str(e)
            stopped_by = None if e.per_round else budget_hit
            self.progress(f"round {n}: {budget_hit}; keeping the {len(candidates)} samples labelled so far"
                          + ("" if e.per_round else "; the run stops after this round"))
        t_teacher = time.time() - t0
        checks = round_checks(self.teacher, agreement)
        seen = {normalise(t) for t in seen_texts}
        docs, invalid = self.validator.validate(candidates, seen)
        rejected.update(invalid)
        for d in docs:
            d.user_data.setdefault("evokd", {}).update({"round": n, "teacher": self.teacher.name})
        generated = len(docs) + sum(rejected.values())
        if not docs:
            self.progress(f"round {n}: no valid samples (rejected: {dict(rejected)})")
            if stopped_by:  # nothing to train on: the round is not committed
                return stopped_by
        # evaluate student N-1 on the new batch before training on it: next round's feedback
        t_eval = time.time()
        prev_nlp = student.load(self.state.model_path(n - 1) / "model-best")
        batch_scores, batch_judged = student.evaluate(prev_nlp, docs, s.task, s.labels) if docs else (None, [])
        t_eval = time.time() - t_eval
        work = self.state.work_dir / f"round_{n:03d}"
        train_docs = self.seed_docs + self.extra_docs + docs + self._replay(n)
        write_docbin(train_docs, work / "train.spacy")
        warm = self.state.model_path(n - 1) / "model-best" if s.warm_start else None
        t1 = time.time()
        model = student.train(self.config, work / "train.spacy", self._dev_path(), work / "model",
                              warm_start_from=warm, max_steps=s.warm_start_steps if warm else None, gpu_id=s.gpu_id)
        t_train = time.time() - t1
        t2 = time.time()
        dev, _ = student.evaluate(student.load(model), self.dev_docs, s.task, s.labels)
        t_eval += time.time() - t2
        usage = self.ledger.totals(round=n)
        per_label = Counter()
        for d in docs:
            per_label.update([max(d.cats, key=d.cats.get)] if s.task == "textcat" else [e.label_ for e in d.ents])
        record = RoundRecord(
            round=n, teacher=self.teacher.name, simulated=bool(getattr(self.teacher, "simulated", False)),
            analyses=analyses, generated=generated, accepted=len(docs), rejected=dict(rejected),
            accepted_per_label=dict(per_label), usage=usage.to_dict(), batch_scores=batch_scores, dev=dev,
            feedback=self._feedback(batch_judged) if docs else prev["feedback"], train_size=len(train_docs),
            seconds={"teacher": round(t_teacher, 2), "train": round(t_train, 2), "eval": round(t_eval, 2),
                     "total": round(time.time() - t0, 2)},
            stopped_by=stopped_by, teacher_checks=checks, repaired=dict(repaired), budget_hit=budget_hit,
        )  # fmt: skip
        self.state.commit(n, record, docs, work / "model")
        best_n, best = self.state.update_best()
        rej = ", ".join(f"{k}: {v}" for k, v in sorted(rejected.items())) or "none"
        quality = describe_checks(checks)
        totals = self.ledger.totals()
        self.progress(
            f"round {n}/{s.rounds}: accepted {len(docs)}, rejected {sum(rejected.values())} ({rej}) | "
            f"tokens {usage.total_tokens:,} (run {totals.total_tokens:,}), cost ${totals.cost:.4f} | "
            f"dev {s.metric} {dev['score']:.3f} (best {best:.3f}, round {best_n})" + (f" | teacher: {quality}" if quality else "")
        )
        return stopped_by

    def _pool_picks(self, shown, seen: set) -> List[Sample]:
        """Pool texts for one analysis' slots (source = "pool" | "both"): hard ones nearest to the
        wrong samples it saw, easy ones nearest to the correct ones; [] for source = "generate"."""
        if self.pool_source is None:
            return []
        s = self.settings
        picks = self.pool_source.choose([j.gold.text for j in shown.wrong], [j.gold.text for j in shown.correct],
                                        s.n_hard, s.n_easy, seen)  # fmt: skip
        return [Sample(text, intent=intent) for text, intent in picks]

    def _check_budget(self, n: int, pending: Usage) -> None:
        """Before each teacher request: booked usage + what the current step used so far."""
        s = self.settings
        run, rnd = self.ledger.totals(), self.ledger.totals(round=n)
        run.add(pending)
        rnd.add(pending)
        for limit, used, what in (
            (s.max_tokens, run.total_tokens, "max_tokens"), (s.max_tokens_per_round, rnd.total_tokens, "max_tokens_per_round"),
        ):  # fmt: skip
            if limit and used >= limit:
                raise BudgetExceeded(f"token budget reached ({what}={limit}, used {used})", what.endswith("_per_round"))
        for limit, used, what in ((s.max_cost, run.cost, "max_cost"), (s.max_cost_per_round, rnd.cost, "max_cost_per_round")):
            if limit and used >= limit:
                raise BudgetExceeded(f"cost budget reached ({what}={limit}, spent {used:.4f})", what.endswith("_per_round"))

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

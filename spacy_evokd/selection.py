"""LLKD sample selection (Li et al. 2024, "Learning with Less"): keep pseudo-labelled samples the
teacher is sure of and the student is unsure of.

The paper's formulas are not public (../shared/reference/papers.md §2.3); this follows its stated
design with FreeMatch-style self-adaptive thresholds, which are our reconstruction:

  for each batch B_t of the streamed pool, signal s (teacher confidence c or student uncertainty u):
    global   tau_t    = lam * tau_{t-1}    + (1 - lam) * mean_{x in B_t} s(x)
    by class m_t(y)   = lam * m_{t-1}(y)   + (1 - lam) * mean_{x in B_t, yhat(x) = y} s(x)
    class threshold     tau_t(y) = tau_t * m_t(y) / max_y' m_t(y') * adjust(y)
  keep x iff c(x) >= tau^T_t(yhat) and u(x) >= tau^S_t(yhat)       (mode "llkd")
  weight w(x) = c(x) * u(x), rescaled to mean 1 over the kept samples of the batch, clipped to
  [0.1, 10]: stored in doc.user_data["evokd"]["weight"] for the augmenter.

Baselines: "teacher_only" (the teacher test alone), "student_only" (the student test alone),
"fixed_ratio" (the top ``ratio`` of each batch by c * u) and "all" (every valid sample, weight 1).
The class of a NER sentence is its most frequent entity label in the teacher's annotation ("O"
when it has none).
"""

import logging
from collections import Counter
from dataclasses import asdict, dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Set, Tuple

from spacy.language import Language
from spacy.tokens import Doc

from . import student
from .cache import UsageLedger
from .config import load_config
from .data import DataError, pool_texts, write_docbin
from .doc_meta import DocMeta, update_meta
from .records import SelectionBatch
from .run_files import write_json
from .run_setup import RunSetup
from .ty import LLKDTeacher, Sample, Task
from .validation import normalise

logger = logging.getLogger("spacy_evokd.selection")

MODES = ("llkd", "teacher_only", "student_only", "fixed_ratio", "all")


@dataclass
class AdaptiveThreshold:
    """Self-adaptive, class-wise threshold over one signal (state is JSON-serialisable so a
    resumed selection continues with the same thresholds)."""

    momentum: float = 0.9
    adjust: Dict[str, float] = field(default_factory=dict)  # manual per-class multipliers
    tau: Optional[float] = None
    by_class: Dict[str, float] = field(default_factory=dict)

    def update(self, values: Sequence[float], classes: Sequence[str]) -> None:
        if not values:
            return
        lam = self.momentum
        mean = sum(values) / len(values)
        self.tau = mean if self.tau is None else lam * self.tau + (1 - lam) * mean
        grouped: Dict[str, List[float]] = {}
        for v, c in zip(values, classes):
            grouped.setdefault(c, []).append(v)
        for c, vs in grouped.items():
            m = sum(vs) / len(vs)
            self.by_class[c] = m if c not in self.by_class else lam * self.by_class[c] + (1 - lam) * m

    def threshold(self, cls: str) -> float:
        if self.tau is None:
            return 0.0
        top = max(self.by_class.values(), default=0.0)
        ratio = self.by_class.get(cls, top) / top if top > 0 else 1.0
        return self.tau * ratio * self.adjust.get(cls, 1.0)


@dataclass
class Selector:
    mode: str = "llkd"
    momentum: float = 0.9
    ratio: float = 0.25
    class_adjust: Dict[str, float] = field(default_factory=dict)
    teacher: AdaptiveThreshold = None
    student: AdaptiveThreshold = None

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"selection mode {self.mode!r}: expected one of {MODES}")
        if not 0 < self.ratio <= 1:
            raise ValueError(f"ratio must be in (0, 1], got {self.ratio}")
        self.teacher = self.teacher or AdaptiveThreshold(self.momentum, dict(self.class_adjust))
        self.student = self.student or AdaptiveThreshold(self.momentum, dict(self.class_adjust))

    def state(self) -> Dict[str, Any]:
        return {"teacher": asdict(self.teacher), "student": asdict(self.student)}

    def restore(self, state: Dict[str, Any]) -> None:
        self.teacher = AdaptiveThreshold(**state["teacher"])
        self.student = AdaptiveThreshold(**state["student"])

    def select(self, conf: Sequence[float], unc: Sequence[float], classes: Sequence[str]) -> List[Tuple[int, float]]:
        """(index, weight) of the kept samples of one batch; thresholds are updated with the
        batch first, as in FreeMatch."""
        n = len(conf)
        if self.mode == "all":
            return [(i, 1.0) for i in range(n)]
        if self.mode == "fixed_ratio":
            k = max(1, round(n * self.ratio)) if n else 0
            order = sorted(range(n), key=lambda i: -conf[i] * unc[i])[:k]
            return llkd_weights(sorted(order), conf, unc)
        self.teacher.update(conf, classes)
        self.student.update(unc, classes)
        kept = []
        for i in range(n):
            ok_t = conf[i] >= self.teacher.threshold(classes[i])
            ok_s = unc[i] >= self.student.threshold(classes[i])
            if (
                (self.mode == "llkd" and ok_t and ok_s)
                or (self.mode == "teacher_only" and ok_t)
                or (self.mode == "student_only" and ok_s)
            ):
                kept.append(i)
        return llkd_weights(kept, conf, unc)


def llkd_weights(kept: List[int], conf: Sequence[float], unc: Sequence[float]) -> List[Tuple[int, float]]:
    raw = [max(conf[i] * unc[i], 1e-6) for i in kept]
    mean = sum(raw) / len(raw) if raw else 1.0
    return [(i, min(10.0, max(0.1, r / mean))) for i, r in zip(kept, raw)]


def stream_texts(path: Path, batch_size: int) -> Iterator[List[str]]:
    """Batches of texts from a JSONL pool ({"text"} or {"tokens"}), read lazily: memory does
    not grow with the pool. A missing, DocBin or empty pool is refused on the call (data.pool_texts)."""
    texts = pool_texts(path)  # the pool is checked now, not when the first batch is taken
    return iter(lambda: list(islice(texts, batch_size)), [])  # until a batch comes back empty


def load_student(path: Path, task: Task) -> Language:
    """The student whose uncertainty counts, or one DataError line saying why it can't be used."""
    if not path.is_dir():
        raise DataError(f"{path}: no student model there (expected a trained pipeline directory, e.g. RUN/model-best)")
    try:
        nlp = student.load(path)
    except (OSError, ValueError) as e:  # spaCy's E050/E053 etc.: no or broken config.cfg / meta.json
        why = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DataError(f"{path}: can't load the student pipeline ({why[:200]})") from None
    if task.student_pipe(nlp) is None:
        raise DataError(f"{path}: a {student.task_of(nlp).name} student, but [evokd] task is {task.name!r}")
    return nlp


class SelectionRun:
    """`evokd select`: pseudo-label a pool with the teacher, score it with the student, keep what
    the selector keeps. ``__init__`` checks every input (run_setup.py: a failed start leaves no
    OUTPUT_DIR behind); ``run`` writes OUTPUT_DIR/selected_NNNN.spacy + .json per batch (committed
    by the JSON, as loop rounds are), so a rerun continues after the last committed batch."""

    ledger: UsageLedger  # opened by ``run``, inside the lock

    def __init__(
        self,
        setup: RunSetup,
        pool: Path,
        student_path: Path,
        mode: str = "llkd",
        batch_size: int = 32,
        k_samples: int = 5,
        momentum: float = 0.9,
        ratio: float = 0.25,
        echo: Callable[[str], None] = print,
    ):
        if not isinstance(setup.teacher, LLKDTeacher):
            raise ValueError(f"teacher {setup.teacher.name} can't pseudo-label")
        self.setup, self.teacher, self.task = setup, setup.teacher, setup.task
        self.selector = Selector(mode=mode, momentum=momentum, ratio=ratio)
        if batch_size < 1 or k_samples < 1:
            raise ValueError(f"--batch-size and --k must be >= 1, got {batch_size} and {k_samples}")
        self.batches = stream_texts(Path(pool), batch_size)
        self.nlp = load_student(Path(student_path), self.task)
        self.validator = setup.validator(setup.read("dev", required=False) + setup.read("test", required=False))
        setup.check_teacher()
        self.mode, self.k_samples, self.echo = mode, k_samples, echo
        self.prefix = "[evokd select | simulated teacher]" if self.teacher.simulated else "[evokd select]"
        self.seen: Set[str] = set()  # normalised valid texts of the committed batches: never taken twice
        self.totals: Counter = Counter(skipped_too_long=0)

    def run(self) -> Dict[str, Any]:
        out = self.setup.dir
        with self.setup.hold() as (_, self.ledger):
            for b, texts in enumerate(self.batches):
                record_path = out / f"selected_{b:04d}.json"
                if record_path.exists():  # committed earlier: restore state, skip the work
                    self._restore(SelectionBatch.load(record_path), len(texts))
                else:
                    self._select(b, texts, record_path)
            totals = self.totals
            summary = {"mode": self.mode, **totals, "usage": self.ledger.totals().to_dict()}
            summary["simulated"] = self.teacher.simulated
            write_json(out / "summary.json", summary)
            skipped = f" ({totals['skipped_too_long']} over max_chars skipped)" if totals["skipped_too_long"] else ""
            self.echo(f"{self.prefix} done: kept {totals['kept']} of {totals['pool']} pool texts{skipped} -> {out}")
            return summary

    def _restore(self, done: SelectionBatch, pool: int) -> None:
        self.selector.restore(done.thresholds)
        self.seen |= {normalise(t) for t in done.texts}
        too_long = done.rejected.get("too_long", 0)
        self.totals.update({"pool": pool, "valid": done.valid, "kept": done.kept, "skipped_too_long": too_long})

    def _select(self, b: int, texts: List[str], record_path: Path) -> None:
        """Batch ``b``: label, validate, score, keep; DocBin, then the record that commits it."""
        max_chars = self.setup.settings.max_chars
        # over max_chars: never sent (the validator would reject the answer; spaCy's E088
        # would end the selection on a text over nlp.max_length), counted as too_long
        sent = [t for t in texts if len(t.strip()) <= max_chars]
        too_long = len(texts) - len(sent)
        docs: List[Doc] = []
        rejected: Counter = Counter()
        labelled_samples: List[Sample] = []
        if sent:
            labelled = self.teacher.pseudo_label(sent, k=self.k_samples)
            usage = self.teacher.drain_usage()
            self.ledger.record(round=b + 1, step="pseudo_label", model=self.teacher.name, usage=usage)
            docs, rejected = self.validator.validate(labelled.samples, self.seen)
            rejected.update(labelled.rejected)
            labelled_samples = labelled.samples
        if too_long:
            rejected["too_long"] += too_long
        conf = [DocMeta.of(d).confidence or 0.0 for d in docs]
        unc = self.task.uncertainty(self.nlp, [d.text for d in docs]) if docs else []
        by_text = {s.text.strip(): s for s in labelled_samples}
        classes = [self.task.sample_class(by_text[d.text]) for d in docs]
        chosen: List[Doc] = []
        for i, w in self.selector.select(conf, unc, classes):
            d = docs[i]
            update_meta(d, weight=round(w, 4), student_uncertainty=round(unc[i], 4), selection=self.mode, batch=b)
            chosen.append(d)
        write_docbin(chosen, self.setup.dir / f"selected_{b:04d}.spacy")
        SelectionBatch(
            batch=b,
            pool=len(texts),
            valid=len(docs),
            kept=len(chosen),
            rejected=dict(rejected),
            methods=dict(Counter(DocMeta.of(d).confidence_method for d in docs)),
            thresholds=self.selector.state(),
            usage=self.ledger.totals(round=b + 1).to_dict(),
            texts=[d.text for d in docs],
            task=self.task.name,
        ).save(record_path)
        self.totals.update({"pool": len(texts), "valid": len(docs), "kept": len(chosen), "skipped_too_long": too_long})
        run_usage = self.ledger.totals()
        skipped = f", {too_long} over max_chars {max_chars} skipped" if too_long else ""
        self.echo(
            f"{self.prefix} batch {b}: {len(texts)} texts{skipped}, {len(docs)} valid, kept {len(chosen)} "
            f"(run: {self.totals['kept']}/{self.totals['pool']}) | tokens {run_usage.total_tokens:,}, "
            f"cost ${run_usage.cost:.4f}"
        )


def run_selection(
    config_path: Path,
    pool: Path,
    student_path: Path,
    output_dir: Path,
    overrides: Optional[Dict[str, Any]] = None,
    teacher: Optional[Path] = None,
    echo: Callable[[str], None] = print,
    **options: Any,
) -> Dict[str, Any]:
    """`evokd select` from its command line: ``options`` are SelectionRun's (mode, batch_size,
    k_samples, momentum, ratio)."""
    setup = RunSetup.of(load_config(config_path, overrides or {}, teacher=teacher), output_dir)
    return SelectionRun(setup, pool, student_path, echo=echo, **options).run()

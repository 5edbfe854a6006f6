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
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

from spacy.tokens import Doc

from .ty import LLKDTeacher, Task

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
    not grow with the pool."""
    from .data import pool_texts

    it = (text for _, text in pool_texts(path))
    while True:
        batch = list(islice(it, batch_size))
        if not batch:
            return
        yield batch


def _load_student(student_mod, path: Path, task: Task):
    """The student whose uncertainty counts, or one DataError line saying why it can't be used."""
    from .data import DataError

    if not path.is_dir():
        raise DataError(f"{path}: no student model there (expected a trained pipeline directory, e.g. RUN/model-best)")
    try:
        nlp = student_mod.load(path)
    except (OSError, ValueError) as e:  # spaCy's E050/E053 etc.: no or broken config.cfg / meta.json
        why = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DataError(f"{path}: can't load the student pipeline ({why[:200]})") from None
    if task.student_pipe(nlp) is None:
        raise DataError(f"{path}: a {student_mod.task_of(nlp).name} student, but [evokd] task is {task.name!r}")
    return nlp


def run_selection(
    config_path: Path,
    pool: Path,
    student_path: Path,
    output_dir: Path,
    overrides: Optional[Dict[str, Any]] = None,
    teacher: Optional[Path] = None,
    mode: str = "llkd",
    batch_size: int = 32,
    k_samples: int = 5,
    momentum: float = 0.9,
    ratio: float = 0.25,
    echo: Callable[[str], None] = print,
) -> Dict[str, Any]:
    """Pseudo-label ``pool`` with the configured teacher, score it with the student, keep what
    the selector keeps. Output: OUTPUT_DIR/selected_NNNN.spacy + .json per batch (committed by the
    JSON, as loop rounds are), so a rerun continues after the last committed batch."""
    import spacy

    from . import student as student_mod
    from .cache import ResponseCache, UsageLedger
    from .config import load_config, resolve_evokd
    from .data import DataError, check_pool_has_texts, read_docbin, write_docbin
    from .doc_meta import DocMeta, update_meta
    from .preflight import check_output_dir, check_teacher
    from .records import SelectionBatch
    from .run_files import hold_run_dir, write_json
    from .validation import Validator, normalise

    # every input is checked before OUTPUT_DIR is created: a failed start leaves nothing behind
    config = load_config(config_path, overrides or {}, teacher=teacher)
    settings, teacher_obj = resolve_evokd(config)
    task = settings.task_object
    if not isinstance(teacher_obj, LLKDTeacher):
        raise ValueError(f"teacher {teacher_obj.name} can't pseudo-label")
    selector = Selector(mode=mode, momentum=momentum, ratio=ratio)
    if batch_size < 1 or k_samples < 1:
        raise ValueError(f"--batch-size and --k must be >= 1, got {batch_size} and {k_samples}")
    pool = Path(pool)
    if not pool.is_file():
        raise DataError(f"{pool}: file not found (the unlabelled pool, JSONL)")
    if pool.suffix == ".spacy":
        raise DataError(f'{pool}: a DocBin; the pool is JSONL with a "text" (or "tokens") per line')
    check_pool_has_texts(pool)  # as evolve's pool mode: an empty pool is refused, not "kept 0 of 0"
    nlp = _load_student(student_mod, Path(student_path), task)
    paths = config.interpolate()["paths"]
    blocked = [d.text for key in ("dev", "test") if paths.get(key) for d in read_docbin(paths[key], nlp.vocab)]
    validator = Validator(
        spacy.blank(config["nlp"]["lang"]), task, settings.labels, max_chars=settings.max_chars, blocked_texts=blocked
    )
    out = Path(output_dir)
    check_output_dir(out)
    check_teacher(teacher_obj, reach=settings.check_teacher)
    with hold_run_dir(out):  # creates OUTPUT_DIR; a second process on it is refused (run_files.py)
        cache, ledger = ResponseCache(out / "cache.sqlite"), UsageLedger(out / "cache.sqlite")
        teacher_obj.use_cache(cache)
        prefix = "[evokd select | simulated teacher]" if teacher_obj.simulated else "[evokd select]"
        seen: set = set()
        totals = Counter(skipped_too_long=0)
        for b, texts in enumerate(stream_texts(Path(pool), batch_size)):
            record_path = out / f"selected_{b:04d}.json"
            if record_path.exists():  # committed earlier: restore state, skip the work
                done = SelectionBatch.load(record_path)
                selector.restore(done.thresholds)
                seen |= {normalise(t) for t in done.texts}
                totals.update(
                    {
                        "pool": len(texts),
                        "valid": done.valid,
                        "kept": done.kept,
                        "skipped_too_long": done.rejected.get("too_long", 0),
                    }
                )
                continue
            # over max_chars: never sent (the validator would reject the answer; spaCy's E088
            # would end the selection on a text over nlp.max_length), counted as too_long
            sent = [t for t in texts if len(t.strip()) <= settings.max_chars]
            too_long = len(texts) - len(sent)
            docs, rejected, labelled_samples = [], Counter(), []
            if sent:
                labelled = teacher_obj.pseudo_label(sent, k=k_samples)
                ledger.record(round=b + 1, step="pseudo_label", model=teacher_obj.name, usage=teacher_obj.drain_usage())
                docs, rejected = validator.validate(labelled.samples, seen)
                rejected.update(labelled.rejected)
                labelled_samples = labelled.samples
            if too_long:
                rejected["too_long"] += too_long
            conf = [DocMeta.of(d).confidence or 0.0 for d in docs]
            unc = task.uncertainty(nlp, [d.text for d in docs]) if docs else []
            by_text = {s.text.strip(): s for s in labelled_samples}
            classes = [task.sample_class(by_text[d.text]) for d in docs]
            kept = selector.select(conf, unc, classes)
            chosen: List[Doc] = []
            for i, w in kept:
                d = docs[i]
                update_meta(d, weight=round(w, 4), student_uncertainty=round(unc[i], 4), selection=mode, batch=b)
                chosen.append(d)
            write_docbin(chosen, out / f"selected_{b:04d}.spacy")
            usage = ledger.totals(round=b + 1)
            SelectionBatch(
                batch=b,
                pool=len(texts),
                valid=len(docs),
                kept=len(chosen),
                rejected=dict(rejected),
                methods=dict(Counter(DocMeta.of(d).confidence_method for d in docs)),
                thresholds=selector.state(),
                usage=usage.to_dict(),
                texts=[d.text for d in docs],
                task=task.name,
            ).save(record_path)
            totals.update({"pool": len(texts), "valid": len(docs), "kept": len(chosen), "skipped_too_long": too_long})
            run_usage = ledger.totals()
            skipped = f", {too_long} over max_chars {settings.max_chars} skipped" if too_long else ""
            echo(
                f"{prefix} batch {b}: {len(texts)} texts{skipped}, {len(docs)} valid, kept {len(chosen)} "
                f"(run: {totals['kept']}/{totals['pool']}) | tokens {run_usage.total_tokens:,}, cost ${run_usage.cost:.4f}"
            )
        summary = {"mode": mode, **totals, "usage": ledger.totals().to_dict(), "simulated": teacher_obj.simulated}
        write_json(out / "summary.json", summary)
        skipped = f" ({totals['skipped_too_long']} over max_chars skipped)" if totals["skipped_too_long"] else ""
        echo(f"{prefix} done: kept {totals['kept']} of {totals['pool']} pool texts{skipped} -> {out}")
        return summary

"""Generated data a person can review (issue 12): export a run's samples as annotation tasks, and
take the reviewed file back into the run.

Export (``export_run``; `python -m spacy_evokd export RUN_DIR OUT.jsonl`) writes one JSON object
per accepted sample in spaCy/Prodigy's JSONL task format; the task's fields come from the run's
Task, whose optional ty.Reviewable capability this needs (``review_task``; import reads them back
with ``reviewed_sample``; a task without it is refused in one line), the rest from here:

  textcat  {"text", "label", "options": [{"id", "text"}, ...], "accept": [label], "answer": "accept",
            "meta": {...}, "_input_hash", "_task_hash"}                       (Prodigy's "choice" view)
  ner      {"text", "tokens": [{"text", "start", "end", "id", "ws"}, ...],
            "spans": [{"start", "end", "token_start", "token_end", "label"}, ...], "answer": "accept",
            "meta": {...}, "_input_hash", "_task_hash"}                       (Prodigy's "ner_manual")
  textcat_multilabel  {"text", "labels": [label, ...], "options": [...], "accept": [label, ...],
            "answer": "accept", "meta": {...}, "_input_hash", "_task_hash"}
                                       (Prodigy's "choice" view with "choice_style": "multiple")

For Argilla 2, ``dataset.records.log(records)`` maps top-level keys named like a field or question
to that field / a suggestion (its documentation): a dataset with a TextField "text" and a
LabelQuestion "label" (textcat), a SpanQuestion "spans" (ner) or a MultiLabelQuestion "labels"
(textcat_multilabel) takes these dicts; keys it has no
field for may need its ``mapping`` argument (not tried against a server). ``meta`` holds round, intent,
teacher, simulated, the teacher's confidence, the student's prediction (round N's record keeps
student N-1's predictions on batch N) and ``evokd_id``: "r001-0003-<12 hex>" = round, the sample's
index in the round's DocBin as the loop wrote it, and a hash of its text. Import matches rows by it.
textcat lines also carry meta.exported_label: Prodigy's choice view edits "accept", a person in a
text editor edits "label"; the one that differs from exported_label is the edit (textcat_multilabel:
meta.exported_labels, "accept" / "labels").

With ``--rejected``, the samples validation rejected follow, as far as the round records keep them
(records.rejected_samples: the first 50 per round; answers the parser could not read have no text
and are only counted): "answer": "reject", meta.rejection_reason, meta.teacher_annotation and an
evokd_id "r001-rej-0003-<hash>". They are for reading; import skips them.

Import (``import_review``; `python -m spacy_evokd import-review RUN_DIR REVIEWED.jsonl`), per line:
answer "accept" (or none) -> the line's label(s) / spans become the sample's annotation ("corrected"
when they differ); "reject" -> the sample is removed; "ignore" -> unchanged. Samples not in the
file are unchanged. The whole import holds RUN_DIR/.lock (a running loop is refused, and no loop
starts meanwhile). Every line is checked first (JSON, id, text, labels, spans: one DataError
naming file:line); nothing is written unless all lines pass. Then:

  review/original/round_NNN.spacy  the DocBin as the loop wrote it, copied before a review first
                                   changes it (copy it back, and drop the round's lines from
                                   removed.jsonl, to undo every review of that round)
  review/removed.jsonl             one line per removed sample (text, normalised text, its hash):
                                   ``removed_texts`` - a removed sample must never come back
  rounds/round_NNN.spacy           rewritten atomically: the loop (replay, seen texts) and the
                                   evolving augmenter in `spacy train` read these
  review/log.jsonl                 one line per import: per round corrected / removed / kept

removed.jsonl is written before the DocBins, so a crash in between never loses a removed text; a
rerun of the same import is a no-op for what was already applied. Round records are not
rewritten: they say what the teacher produced and what each student was trained on at the time;
review/log.jsonl says what the review changed since.
"""

import hashlib
import json
import os
import re
import shutil
import time
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Set, Tuple, Union

from .data import DataError, read_docbin, read_jsonl, write_docbin
from .doc_meta import DocMeta
from .records import RoundRecord
from .run_dir import RunDir
from .run_files import RunDirError, hold_run_dir, write_text
from .tasks import get_task
from .ty import Judged, Reviewable, Sample, Task
from .validation import normalise

ANSWERS = ("accept", "reject", "ignore")
# per round in review/log.jsonl: kept = left unchanged (reviewed or not); already_removed = lines
# naming a sample an earlier import removed (it stays removed)
_COUNTS = ("corrected", "removed", "kept", "already_removed")
_ID = re.compile(r"r(\d+)-(\d+)-([0-9a-f]{12})")

PathLike = Union[str, Path]


# -- ids and the run directory ---------------------------------------------------------------


def text_hash(text: str) -> str:
    """12 hex digits of the SHA-1 of the exact text (ids must tell apart texts that normalise alike)."""
    return hashlib.sha1(text.encode("utf8")).hexdigest()[:12]


def sample_id(round_n: int, index: int, text: str) -> str:
    return f"r{round_n:03d}-{index:04d}-{text_hash(text)}"


def _prodigy_hash(*parts: str) -> int:
    """A signed 32-bit int, like Prodigy's own _input_hash/_task_hash: Prodigy keeps hashes a task
    already has, so re-exports of the same sample dedupe in its database."""
    digest = hashlib.sha1("\x00".join(parts).encode("utf8")).digest()
    return int.from_bytes(digest[:4], "big", signed=True)


class _Run(RunDir):
    """The run directory with what export and import need from its config."""

    def __init__(self, path: Path, task: Task, labels: List[str], lang: str):
        super().__init__(path)
        self.task, self.labels, self.lang = task, labels, lang
        self.rounds = self.generated_rounds()  # committed rounds >= 1 that have a DocBin


def _open_run(run_dir: PathLike) -> _Run:
    """Task, labels and committed rounds of RUN_DIR, from its files only (config.cfg, rounds/)."""
    from confection import Config

    files = RunDir(run_dir)
    if not files.rounds_dir.is_dir() or not files.config_path.is_file():
        raise RunDirError(f"{files.dir}: not an `evolve` run directory (no rounds/ or config.cfg)")
    try:
        cfg = Config().from_disk(files.config_path)
        evokd = cfg["evokd"]
        task, labels, lang = evokd["task"], list(evokd["labels"]), cfg["nlp"]["lang"]
    except Exception as e:  # a damaged or foreign config: one line naming it
        why = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise RunDirError(f"{files.config_path}: can't read [evokd] task/labels or [nlp] lang ({why})") from None
    try:
        task = get_task(task)
    except DataError as e:  # a task name this version doesn't know
        raise RunDirError(f"{files.config_path}: {e}") from None
    return _Run(files.dir, task, labels, lang)


def _reviewable(run: _Run) -> _Run:
    """The run, when its task writes and reads review files (ty.Reviewable); else one line that
    says it doesn't."""
    if not isinstance(run.task, Reviewable):
        raise RunDirError(
            f"{run.config_path}: task {run.task.name!r} has no review files (it does not implement ty.Reviewable: "
            "review_task, review_annotation, reviewed_sample)"
        )
    return run


def _vocab(run: _Run):
    import spacy

    return spacy.blank(run.lang).vocab


def _indexed(docs) -> List[Tuple[int, Any]]:
    """(index in the DocBin as the loop wrote it, doc): a DocBin rewritten by a review keeps each
    doc's first index in user_data, so ids stay the same across imports."""
    return [(_index(d, i), d) for i, d in enumerate(docs)]


def _index(doc, i: int) -> int:
    index = DocMeta.of(doc).sample_index
    return i if index is None else index


def _sample(doc, run: _Run) -> Sample:
    """The sample's annotation as the round's DocBin holds it now."""
    return run.task.doc_to_sample(doc)


# -- export ----------------------------------------------------------------------------------


def export_run(run_dir: PathLike, out: PathLike, rejected: bool = False) -> Dict[str, int]:
    """Write every accepted sample of RUN_DIR's committed rounds to ``out`` (JSONL, see the module
    docstring); returns {"samples": .., "rounds": .., "rejected": .., "rejected_unkept": ..}.
    ``rejected``: the rejected samples the round records keep follow (see the module docstring);
    "rejected_unkept" counts the others (over the cap, or never parsed into a text)."""
    run = _reviewable(_open_run(run_dir))
    if not run.rounds:
        raise RunDirError(
            f"{run.dir}: no round with generated samples is committed yet (round 0 trains on the seed only)"
        )
    vocab, lines = _vocab(run), []
    for n in run.rounds:
        rec = run.load_record(n)
        preds = _student_predictions(rec, run.task)
        for index, doc in _indexed(run.docs(n, vocab)):
            lines.append(json.dumps(_task(doc, n, index, run, rec, preds), ensure_ascii=False))
    n_accepted, unkept = len(lines), 0
    if rejected:
        for n in run.rounds:
            rec = run.load_record(n)
            kept = rec.rejected_samples
            unkept += sum(rec.rejected.values()) - len(kept)
            lines += [
                json.dumps(_rejected_task(item, n, index, rec), ensure_ascii=False) for index, item in enumerate(kept)
            ]
    out = Path(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        write_text(out, "".join(l + "\n" for l in lines))
    except OSError as e:  # a directory in the way, a read-only folder
        raise DataError(f"{out}: can't write the export ({e.strerror or e})") from None
    return {
        "samples": n_accepted,
        "rounds": len(run.rounds),
        "rejected": len(lines) - n_accepted,
        "rejected_unkept": unkept,
    }


def _rejected_task(item: Dict[str, Any], n: int, index: int, rec: RoundRecord) -> Dict[str, Any]:
    """A rejected sample as an export line: answer "reject", the reason in meta (read-only)."""
    text = str(item.get("text", ""))
    meta = {
        "evokd_id": f"r{n:03d}-rej-{index:04d}-{text_hash(text)}",
        "round": n,
        "intent": item.get("intent"),
        "teacher": rec.teacher,
        "simulated": rec.simulated,
        "rejection_reason": item.get("reason"),
        "teacher_annotation": item.get("annotation"),
    }
    return {
        "text": text,
        "answer": "reject",
        "meta": meta,
        "_input_hash": _prodigy_hash(text),
        "_task_hash": _prodigy_hash(text, "rejected", str(item.get("reason"))),
    }


def _student_predictions(rec: RoundRecord, task: Task) -> Dict[str, Any]:
    """text -> student N-1's prediction, from round N's feedback (its judged batch)."""
    out = {}
    for item in rec.feedback["correct"] + rec.feedback["wrong"]:
        try:
            pred = Judged.from_dict(item, task).pred
            out[pred.text] = task.describe(pred)
        except (KeyError, TypeError, ValueError, AttributeError):  # an older or hand-edited record: no prediction shown
            continue
    return out


def _task(doc, n: int, index: int, run: _Run, rec: RoundRecord, preds: Dict[str, Any]) -> Dict[str, Any]:
    ev = DocMeta.of(doc)
    sid = sample_id(n, index, doc.text)
    meta = {
        "evokd_id": sid,
        "round": n,
        "intent": ev.intent,
        "teacher": ev.teacher or rec.teacher,
        "simulated": rec.simulated,
    }
    if ev.confidence is not None:
        meta["confidence"] = ev.confidence
    if doc.text in preds:
        meta["student_prediction"] = preds[doc.text]
    if ev.review:  # corrected by an earlier review: show what the teacher said
        meta["reviewed"] = ev.review
        meta["teacher_annotation"] = ev.teacher_annotation  # stored as review_annotation shows it
    fields = run.task.review_task(doc, run.labels)
    meta.update(fields.pop("meta", {}))  # what reviewed_sample needs back (e.g. the exported label)
    task: Dict[str, Any] = {"text": doc.text, **fields}
    # the task hash changes with the annotation; a bare label (textcat) hashes as itself
    shown = run.task.review_annotation(_sample(doc, run))
    shown = shown if isinstance(shown, str) else json.dumps(shown, sort_keys=True)
    task["answer"] = "accept"
    task["meta"] = meta
    task["_input_hash"] = _prodigy_hash(doc.text)
    task["_task_hash"] = _prodigy_hash(doc.text, shown, sid)
    return task


# -- import ----------------------------------------------------------------------------------


@dataclass
class _Decision:
    where: str  # file:line
    sid: str
    round: int
    action: str  # "accept" | "reject" | "ignore" | "removed_before" (an earlier import removed it)
    sample: Optional[Sample]  # "accept": the reviewed annotation


def import_review(run_dir: PathLike, reviewed: PathLike) -> Dict[str, Any]:
    """Apply a reviewed export to RUN_DIR (see the module docstring). Returns the log entry:
    {"rounds": {N: {"corrected", "removed", "kept", "already_removed"}}, "totals": {...}, ...}.
    Raises DataError naming file:line for a bad line, RunDirError for the run directory (locked
    by a running loop, not a run, damaged); in both cases nothing is written."""
    run = _reviewable(_open_run(run_dir))
    reviewed = Path(reviewed)
    with ExitStack() as stack:
        try:
            stack.enter_context(hold_run_dir(run.dir))
        except RunDirError as e:
            holder = re.search(r"\((pid [^)]*)\)", str(e))
            raise RunDirError(
                f"{run.dir}: a running loop holds the run directory ({holder.group(1) if holder else 'pid unknown'}); "
                "import the review after it finishes"
            ) from None
        vocab = _vocab(run)
        docs = {n: _indexed(run.docs(n, vocab)) for n in run.rounds}
        removed_before = _removed_ids(run)
        decisions = _read_decisions(reviewed, run, docs, removed_before)
        return _apply(run, reviewed, docs, decisions, removed_before)


def _read_decisions(path: Path, run: _Run, docs: Dict[int, list], removed_before: Set[str]) -> List[_Decision]:
    by_id = {sample_id(n, i, d.text): (n, d) for n, items in docs.items() for i, d in items}
    out, seen = [], {}
    for lineno, obj in read_jsonl(path):  # bad UTF-8 / JSON / non-object: DataError naming path:line
        where = f"{path}:{lineno}"
        if isinstance(obj.get("meta"), dict) and obj["meta"].get("rejection_reason"):
            continue  # an exported rejected sample: shown for reading, never applied
        sid = _id_of(obj, where)
        if sid in seen:
            raise DataError(f"{where}: sample {sid} is already reviewed on line {seen[sid]}; keep one line per sample")
        seen[sid] = lineno
        m = _ID.fullmatch(sid)
        if m is None:
            raise DataError(
                f"{where}: meta.evokd_id {sid!r} is not an id written by `spacy_evokd export` (rNNN-NNNN-<hash>)"
            )
        answer = obj.get("answer", "accept")
        if answer not in ANSWERS:
            raise DataError(f"{where}: answer {answer!r} is not one of {', '.join(ANSWERS)}")
        if sid not in by_id:
            if sid in removed_before:  # removed by an earlier import: it stays removed
                out.append(_Decision(where, sid, int(m.group(1)), "removed_before", None))
                continue
            raise DataError(f"{where}: unknown sample {sid}: not in {run.rounds_dir} (exported from another run?)")
        n, doc = by_id[sid]
        if obj.get("text") != doc.text:
            raise DataError(
                f'{where}: "text" differs from sample {sid}\'s text; text edits are not imported '
                "(reject the sample instead)"
            )
        sample = _reviewed(obj, run, doc, where) if answer == "accept" else None
        out.append(_Decision(where, sid, n, answer, sample))
    return out


def _id_of(obj: Dict[str, Any], where: str) -> str:
    meta = obj.get("meta")
    sid = meta.get("evokd_id") if isinstance(meta, dict) else None
    sid = sid if sid is not None else obj.get("evokd_id")  # tools that flatten meta (Argilla metadata)
    if not isinstance(sid, str):
        raise DataError(f"{where}: no meta.evokd_id: only lines of a `spacy_evokd export` file can be imported")
    return sid


def _reviewed(obj: Dict[str, Any], run: _Run, doc, where: str) -> Sample:
    """The line's annotation, checked by the task, then tried on a copy of the Doc: once files are
    being written, applying it must not fail half-way."""
    sample = run.task.reviewed_sample(obj, doc, run.labels, where)
    why = run.task.annotate(doc.copy(), sample, run.labels)
    if why is not None:
        raise DataError(f"{where}: the reviewed annotation can't be applied ({why})")
    return sample


def _apply(
    run: _Run, reviewed: Path, docs: Dict[int, list], decisions: List[_Decision], removed_before: Set[str]
) -> Dict[str, Any]:
    counts = {n: Counter({k: 0 for k in _COUNTS}) for n in run.rounds}
    by_id = {d.sid: d for d in decisions}
    new_docs: Dict[int, list] = {}
    removed_rows = []
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    for d in decisions:
        if d.action == "removed_before" and d.round in counts:
            counts[d.round]["already_removed"] += 1
    for n, items in docs.items():
        kept, changed = [], False
        for index, doc in items:
            sid = sample_id(n, index, doc.text)
            d = by_id.get(sid)
            ev = DocMeta.of(doc)
            ev.sample_index = index
            if d is not None and d.action == "reject":
                counts[n]["removed"] += 1
                changed = True
                removed_rows.append(
                    {
                        "evokd_id": sid,
                        "round": n,
                        "text": doc.text,
                        "normalised": normalise(doc.text),
                        "hash": hashlib.sha1(normalise(doc.text).encode("utf8")).hexdigest(),
                        "annotation": run.task.review_annotation(_sample(doc, run)),
                        "at": now,
                        "review_file": str(reviewed),
                    }
                )
                continue
            before = _sample(doc, run)
            if d is not None and d.action == "accept" and run.task.answer_key(d.sample) != run.task.answer_key(before):
                # JSON-friendly (user_data is msgpack'd); a second correction keeps the teacher's
                if ev.teacher_annotation is None:
                    ev.teacher_annotation = run.task.review_annotation(before)
                ev.review = "corrected"
                run.task.annotate(doc, d.sample, run.labels)  # tried on a copy in _reviewed: it applies
                counts[n]["corrected"] += 1
                changed = True
            else:
                counts[n]["kept"] += 1
            ev.store(doc)
            kept.append(doc)
        if changed:
            new_docs[n] = kept
    for n in new_docs:  # 1. the loop's originals, once
        original = run.original_docbin_path(n)
        if not original.exists():
            original.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(run.docbin_path(n), original.with_name(original.name + ".tmp"))
            os.replace(original.with_name(original.name + ".tmp"), original)
    # 2. removed texts before the DocBins lose them (a rerun skips ids already listed)
    _append_jsonl(run.removed_path, [r for r in removed_rows if r["evokd_id"] not in removed_before])
    for n, kept in new_docs.items():  # 3. what training reads
        write_docbin(kept, run.docbin_path(n))
    entry = {
        "at": now,
        "file": str(reviewed),
        "sha256": hashlib.sha256(reviewed.read_bytes()).hexdigest(),
        "rounds": {str(n): dict(c) for n, c in counts.items()},
        "totals": {k: sum(c[k] for c in counts.values()) for k in _COUNTS},  # Counter + drops zeros
        "rewritten": [run.docbin_path(n).name for n in sorted(new_docs)],
    }
    _append_jsonl(run.review_log_path, [entry])  # 4. what this import changed
    return entry


def _append_jsonl(path: Path, rows: List[Dict[str, Any]]) -> None:
    """Append and fsync: these files are the durable record of a review."""
    if not rows:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
        f.flush()
        os.fsync(f.fileno())


# -- what the loop reads ---------------------------------------------------------------------


def _removed_ids(run: _Run) -> Set[str]:
    return {r.get("evokd_id") for r in run.removed_rows()}


def removed_texts(run_dir: PathLike) -> Set[str]:
    """Texts of the samples a review removed from RUN_DIR (RUN_DIR/review/removed.jsonl); empty
    when nothing was removed.

    The loop must add them to its seen texts - in EvoKDLoop._seen_texts, next to the seed and the
    round DocBins - so that the teacher's begin_round skips them, the validator rejects the same
    text (or a near-duplicate) as "duplicate", and the pool source never offers it again: a
    removed sample never returns. Raises RunDirError naming file:line for a damaged line."""
    return RunDir(run_dir).removed_texts()


# -- after a review: a student trained on the reviewed data ------------------------------------


def retrain(run_dir: PathLike, echo=print) -> Dict[str, Any]:
    """Train a student from scratch on the seed (+ extra_train) and every committed round as the
    round DocBins hold them now (after review), the way the loop trains a cold student
    (student.train with the run's config), into RUN_DIR/retrained/model-best; score it on dev
    and, when the config names one, test. model-best and the round models stay the loop's.
    Returns RUN_DIR/retrained/retrained.json's content."""
    from confection import Config

    from . import student
    from .data import write_docbin

    run = _open_run(run_dir)
    out = run.retrained_dir
    with hold_run_dir(run.dir):
        config = Config().from_disk(run.config_path, interpolate=False)
        paths = config.interpolate()["paths"]
        vocab = _vocab(run)
        seed = read_docbin(paths["train"], vocab)
        extra = config["evokd"].get("extra_train") or ""
        extra_files = (
            sorted(Path(extra).glob("*.spacy")) if extra and Path(extra).is_dir() else ([Path(extra)] if extra else [])
        )
        docs = seed + [d for f in extra_files for d in read_docbin(f, vocab)]
        generated = [d for n in run.rounds for d in run.docs(n, vocab)]
        shutil.rmtree(out, ignore_errors=True)
        write_docbin(docs + generated, out / "work" / "train.spacy")
        write_docbin(read_docbin(paths["dev"], vocab), out / "work" / "dev.spacy")
        echo(
            f"retraining on {len(docs)} seed and {len(generated)} reviewed generated samples ({len(run.rounds)} rounds)"
        )
        model = student.train(
            config,
            out / "work" / "train.spacy",
            out / "work" / "dev.spacy",
            out / "work" / "model",
            progress=lambda line: echo(f"retrain: {line}"),
        )
        os.replace(model, run.retrained_model)
        nlp = student.load(run.retrained_model)
        info: Dict[str, Any] = {
            "train_size": len(docs) + len(generated),
            "generated": len(generated),
            "rounds": run.rounds,
            "dev": student.evaluate(nlp, read_docbin(paths["dev"], vocab), run.task, run.labels)[0],
        }
        if paths.get("test") and Path(paths["test"]).exists():
            info["test"] = student.evaluate(nlp, read_docbin(paths["test"], vocab), run.task, run.labels)[0]
        for scores in (info["dev"], info.get("test")):
            if scores is not None:
                scores.pop("per_label", None)
        shutil.rmtree(out / "work", ignore_errors=True)
        write_text(run.retrained_info_path, json.dumps(info, indent=2))
    return info

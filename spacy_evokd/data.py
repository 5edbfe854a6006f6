"""Reading labelled data (JSONL or DocBin) and unlabelled pools, converting to DocBins, k-shot
seed sampling.

The JSONL format of each task is its Task's (tasks/<task>.py: ``record_to_sample``), e.g.
  textcat: {"text": str, "label": str}
  ner:     {"tokens": [str, ...], "tags": ["B-PER", "I-PER", "O", ...]}   (IOB2)
  textcat_multilabel: {"text": str, "labels": [str, ...]}   (one or more distinct labels)
Every problem is reported as a DataError naming the file and line (and label, when it is one).
"""

import codecs
import itertools
import json
import os
import random
from collections import defaultdict
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple, Union

import spacy
from spacy.tokens import Doc, DocBin

from .ty import EvokdError, Sample, Task
from .untrusted import parse_json


class DataError(EvokdError, ValueError):
    """Bad input data; the message names the file, line and label at fault."""


def read_jsonl(path: Union[str, Path]) -> Iterator[Tuple[int, dict]]:
    """Yield (line number, object) pairs, streaming; blank lines are skipped. Lines are decoded
    one by one, so a bad byte is reported with its line; a UTF-8 BOM (as Windows editors write)
    is accepted."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: file not found")
    if path.is_dir():
        raise DataError(f"{path}: is a directory, expected a JSONL file")
    try:
        f = path.open("rb")
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror})") from None
    with f:
        for lineno, raw in enumerate(f, start=1):
            if lineno == 1 and raw.startswith(codecs.BOM_UTF8):
                raw = raw[len(codecs.BOM_UTF8) :]
            try:
                line = raw.decode("utf8")
            except UnicodeDecodeError as e:
                raise DataError(
                    f"{path}:{lineno}: not UTF-8 (byte 0x{raw[e.start]:02x} at column {e.start + 1}): "
                    "save the file as UTF-8"
                ) from None
            if not line.strip():
                continue
            try:
                obj = parse_json(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{path}:{lineno}: invalid JSON ({e.msg})") from None
            if not isinstance(obj, dict):
                raise DataError(f"{path}:{lineno}: expected a JSON object, got {type(obj).__name__}")
            yield lineno, obj


def pool_texts(path: Union[str, Path], docbin_ok: bool = False) -> Iterator[str]:
    """The texts of an unlabelled pool, streamed (memory does not grow with the pool): the one
    reader of pool files, for `select` and for evolve's pool sources. JSONL with a "text" string
    or a "tokens" list per line (labels are ignored), or, with ``docbin_ok``, a DocBin; blank
    texts are skipped. A missing file, a DocBin where JSONL is expected and a pool without a
    text are refused here, before the first text is used; a bad line when the stream reaches it.
    Each as a DataError naming the file (and line)."""
    path = Path(path)
    if not path.exists():
        what = "JSONL or a DocBin" if docbin_ok else "JSONL"
        raise DataError(f"{path}: file not found (the unlabelled pool, {what})")
    if path.suffix == ".spacy":
        if not docbin_ok:
            raise DataError(f'{path}: a DocBin; the pool is JSONL with a "text" (or "tokens") per line')
        texts = (d.text for d in read_docbin(path))
    else:
        texts = (_pool_text(path, n, obj) for n, obj in read_jsonl(path))
    texts = (t for t in texts if t.strip())
    first = next(texts, None)  # an empty pool is refused, not "kept 0 of 0"
    if first is None:
        raise DataError(
            f"{path}: the pool has no texts (empty, or only blank texts): add unlabelled texts, "
            'one JSON object with "text" per line'
        )
    return itertools.chain([first], texts)


def _pool_text(path: Path, lineno: int, obj: dict) -> str:
    if isinstance(obj.get("text"), str):
        return obj["text"]
    if isinstance(obj.get("tokens"), list) and all(isinstance(t, str) for t in obj["tokens"]):
        return " ".join(obj["tokens"])
    raise DataError(f'{path}:{lineno}: expected a "text" string or a "tokens" list in a pool record')


def load_samples(path: Union[str, Path], task: Task, labels: Optional[Sequence[str]] = None) -> List[Sample]:
    """Labelled samples from a JSONL file or a DocBin (``.spacy``)."""
    path = Path(path)
    if path.suffix == ".spacy":
        samples = [task.doc_to_sample(d) for d in read_docbin(path)]
    else:
        samples = [task.record_to_sample(obj, f"{path}:{n}", labels) for n, obj in read_jsonl(path)]
    if not samples:
        raise DataError(f"{path}: no examples (the file is empty)")
    return samples


def doc_to_gold_sample(doc: Doc, task: Task) -> Sample:
    return task.doc_to_sample(doc)


def infer_labels(samples: Sequence[Sample], task: Task) -> List[str]:
    return sorted({l for s in samples for l in task.sample_labels(s) if l})


def jsonl_to_docs(path: Union[str, Path], task: Task, nlp, labels: Optional[Sequence[str]] = None) -> List[Doc]:
    """Convert a JSONL file (the task decides how a record becomes a Doc: NER keeps the
    file's own tokenisation, as `spacy convert` does). Without ``labels`` the label set is the
    one seen in the file."""
    records = list(read_jsonl(path))
    if not records:
        raise DataError(f"{path}: no records (the file is empty or has only blank lines)")
    samples = [task.record_to_sample(obj, f"{path}:{n}", labels) for n, obj in records]
    for (n, _), sample in zip(records, samples):
        if len(sample.text) > nlp.max_length:  # spaCy would stop with E088 (a traceback) on it
            raise DataError(
                f"{path}:{n}: text of {len(sample.text):,} characters is longer than the limit of "
                f"{nlp.max_length:,} (spaCy's nlp.max_length)"
            )
    labels = list(labels) if labels is not None else infer_labels(samples, task)
    return [task.record_to_doc(nlp, obj, sample, labels, f"{path}:{n}") for (n, obj), sample in zip(records, samples)]


def write_docbin(docs: Sequence[Doc], path: Union[str, Path]) -> None:
    """Write atomically: a reader never sees a half-written DocBin."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    DocBin(docs=docs, store_user_data=True).to_disk(tmp)
    os.replace(tmp, path)


def read_docbin(path: Union[str, Path], vocab=None) -> List[Doc]:
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: file not found")
    if vocab is None:
        vocab = spacy.blank("xx").vocab
    try:
        return list(DocBin().from_disk(path).get_docs(vocab))
    except Exception as e:  # a truncated or foreign file: say which one
        if _looks_like_jsonl(path):
            raise DataError(
                f"{path}: JSONL, not a DocBin: convert it first with `python -m spacy_evokd convert "
                f"{path} {path.with_suffix('.spacy')} --task TASK`"
            ) from None
        why = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DataError(f"{path}: not a readable DocBin ({why})") from None


def _looks_like_jsonl(path: Path) -> bool:
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        return True
    try:
        with path.open("rb") as f:
            return f.read(64).lstrip(codecs.BOM_UTF8 + b" \t\r\n").startswith(b"{")
    except OSError:
        return False


def kshot(samples: Sequence[Sample], task: Task, labels: Sequence[str], k: int, seed: int) -> List[int]:
    """Indices of a k-shot seed: k samples per label (NER: k sentences containing each entity
    type). Raises DataError naming any label with fewer than k samples."""
    if k < 1:
        raise DataError(f"k-shot seed needs k >= 1, got {k}")
    rng = random.Random(seed)
    by_label: Dict[str, List[int]] = defaultdict(list)
    for i, s in enumerate(samples):
        for lab in task.sample_labels(s):
            by_label[lab].append(i)
    chosen: List[int] = []
    for label in labels:
        pool = [i for i in by_label.get(label, []) if i not in chosen]
        if len(pool) < k and len(by_label.get(label, [])) < k:
            raise DataError(f"label {label!r} has {len(by_label.get(label, []))} samples, fewer than k={k}")
        have = sum(1 for i in chosen if i in by_label.get(label, []))
        rng.shuffle(pool)
        chosen.extend(pool[: max(0, k - have)])
    return sorted(chosen)

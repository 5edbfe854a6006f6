"""Reading labelled data (JSONL or DocBin), converting it to DocBins, k-shot seed sampling.

JSONL formats (as in the benchmark data sets):
  textcat: {"text": str, "label": str}
  ner:     {"tokens": [str, ...], "tags": ["B-PER", "I-PER", "O", ...]}   (IOB2)
Every problem is reported as a DataError naming the file and line (and label, when it is one).
"""
import codecs
import json
import os
import random
from collections import defaultdict
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple, Union

import spacy
from spacy.tokens import Doc, DocBin
from spacy.training.iob_utils import biluo_tags_to_spans, iob_to_biluo

from .teachers.base import TASKS, Sample


class DataError(ValueError):
    """Bad input data; the message names the file, line and label at fault."""


def check_task(task: str) -> None:
    if task not in TASKS:
        raise DataError(f"unknown task {task!r}: expected one of {', '.join(TASKS)}")


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
                raise DataError(f"{path}:{lineno}: not UTF-8 (byte 0x{raw[e.start]:02x} at column {e.start + 1}): "
                                "save the file as UTF-8") from None  # fmt: skip
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{path}:{lineno}: invalid JSON ({e.msg})") from None
            if not isinstance(obj, dict):
                raise DataError(f"{path}:{lineno}: expected a JSON object, got {type(obj).__name__}")
            yield lineno, obj


def _check_iob(tags: Sequence[str], where: str) -> None:
    prev = "O"
    for i, tag in enumerate(tags):
        if tag != "O" and (len(tag) < 3 or tag[1] != "-" or tag[0] not in "BI"):
            raise DataError(f"{where}: tag {tag!r} at token {i} is not IOB2 (B-X, I-X or O)")
        if tag.startswith("I-") and prev[2:] != tag[2:]:
            raise DataError(f"{where}: tag {tag!r} at token {i} follows {prev!r} (invalid IOB2)")
        prev = tag


def record_to_sample(obj: dict, task: str, where: str, labels: Optional[Sequence[str]] = None) -> Sample:
    """One JSONL record -> Sample (NER tokens are joined with single spaces)."""
    if task == "textcat":
        text, label = obj.get("text"), obj.get("label")
        if not isinstance(text, str) or not text.strip():
            raise DataError(f"{where}: missing or empty \"text\"")
        if not isinstance(label, str) or not label:
            raise DataError(f"{where}: missing \"label\"")
        if labels is not None and label not in labels:
            raise DataError(f"{where}: label {label!r} is not in the label set {list(labels)}")
        return Sample(text, label=label)
    tokens, tags = obj.get("tokens"), obj.get("tags")
    if not isinstance(tokens, list) or not isinstance(tags, list) or not tokens:
        raise DataError(f"{where}: expected non-empty \"tokens\" and \"tags\" lists")
    if len(tokens) != len(tags):
        raise DataError(f"{where}: {len(tokens)} tokens but {len(tags)} tags")
    if not all(isinstance(t, str) and t and not t.isspace() for t in tokens):
        raise DataError(f"{where}: tokens must be non-empty strings")
    _check_iob(tags, where)
    entities, offset, starts = [], 0, []
    for tok in tokens:
        starts.append(offset)
        offset += len(tok) + 1
    i = 0
    while i < len(tags):
        if tags[i].startswith("B-"):
            label, j = tags[i][2:], i + 1
            while j < len(tags) and tags[j] == f"I-{label}":
                j += 1
            if labels is not None and label not in labels:
                raise DataError(f"{where}: entity label {label!r} is not in the label set {list(labels)}")
            entities.append((starts[i], starts[j - 1] + len(tokens[j - 1]), label))
            i = j
        else:
            i += 1
    return Sample(" ".join(tokens), entities=entities)


def load_samples(path: Union[str, Path], task: str, labels: Optional[Sequence[str]] = None) -> List[Sample]:
    """Labelled samples from a JSONL file or a DocBin (``.spacy``)."""
    check_task(task)
    path = Path(path)
    if path.suffix == ".spacy":
        samples = [doc_to_gold_sample(d, task) for d in read_docbin(path)]
    else:
        samples = [record_to_sample(obj, task, f"{path}:{n}", labels) for n, obj in read_jsonl(path)]
    if not samples:
        raise DataError(f"{path}: no examples (the file is empty)")
    return samples


def doc_to_gold_sample(doc: Doc, task: str) -> Sample:
    if task == "textcat":
        label = max(doc.cats, key=doc.cats.get) if doc.cats else None
        return Sample(doc.text, label=label)
    return Sample(doc.text, entities=[(e.start_char, e.end_char, e.label_) for e in doc.ents])


def infer_labels(samples: Sequence[Sample], task: str) -> List[str]:
    if task == "textcat":
        return sorted({s.label for s in samples if s.label})
    return sorted({e[2] for s in samples for e in (s.entities or [])})


def sample_to_doc(nlp, sample: Sample, labels: Sequence[str], where: str = "") -> Doc:
    """Gold Doc for a sample. NER spans must align to the tokenizer's tokens."""
    doc = nlp.make_doc(sample.text)
    if sample.label is not None:
        doc.cats = {l: float(l == sample.label) for l in labels}
    if sample.entities is not None:
        spans = []
        for start, end, label in sample.entities:
            span = doc.char_span(start, end, label=label, alignment_mode="strict")
            if span is None:
                raise DataError(f"{where}: entity {sample.text[start:end]!r} ({label}) does not align to tokens")
            spans.append(span)
        doc.set_ents(spans, default="outside")
    return doc


def jsonl_to_docs(path: Union[str, Path], task: str, nlp, labels: Optional[Sequence[str]] = None) -> List[Doc]:
    """Convert a JSONL file; NER keeps the file's own tokenisation (as `spacy convert` does).
    Without ``labels`` the label set is the one seen in the file."""
    check_task(task)
    records = list(read_jsonl(path))
    if not records:
        raise DataError(f"{path}: no records (the file is empty or has only blank lines)")
    samples = [record_to_sample(obj, task, f"{path}:{n}", labels) for n, obj in records]
    for (n, _), sample in zip(records, samples):
        if len(sample.text) > nlp.max_length:  # spaCy would stop with E088 (a traceback) on it
            raise DataError(f"{path}:{n}: text of {len(sample.text):,} characters is longer than the limit of "
                            f"{nlp.max_length:,} (spaCy's nlp.max_length)")  # fmt: skip
    labels = list(labels) if labels is not None else infer_labels(samples, task)
    docs = []
    for (n, obj), sample in zip(records, samples):
        if task == "ner":
            words = obj["tokens"]
            doc = Doc(nlp.vocab, words=words, spaces=[True] * (len(words) - 1) + [False])
            doc.set_ents(biluo_tags_to_spans(doc, iob_to_biluo(obj["tags"])), default="outside")
        else:
            doc = sample_to_doc(nlp, sample, labels, f"{path}:{n}")
        docs.append(doc)
    return docs


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
            raise DataError(f"{path}: JSONL, not a DocBin: convert it first with `python -m spacy_evokd convert "
                            f"{path} {path.with_suffix('.spacy')} --task textcat|ner`") from None  # fmt: skip
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


def kshot(samples: Sequence[Sample], task: str, labels: Sequence[str], k: int, seed: int) -> List[int]:
    """Indices of a k-shot seed: k samples per label (NER: k sentences containing each entity
    type). Raises DataError naming any label with fewer than k samples."""
    if k < 1:
        raise DataError(f"k-shot seed needs k >= 1, got {k}")
    rng = random.Random(seed)
    by_label: Dict[str, List[int]] = defaultdict(list)
    for i, s in enumerate(samples):
        if task == "textcat":
            by_label[s.label].append(i)
        else:
            for lab in {e[2] for e in s.entities or []}:
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

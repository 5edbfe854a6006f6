"""Candidate samples from a teacher -> gold spaCy Docs, or a rejection reason.

Teacher output is untrusted: everything that reaches a DocBin passes these checks. Rules, in the
order applied (the first failing rule is the reason counted):

  empty               no text after stripping whitespace
  control_characters  C0/C1 control characters (tab and newline are fine), lone surrogates,
                      U+FFFD (a decoding error upstream)
  too_short           fewer than 2 tokens
  too_long            more than ``max_chars`` characters
  leak_dev_test       the text (normalised) is in the dev or test split
  duplicate           the text (normalised) is in the seed, an earlier round or earlier in this batch
  missing_label       textcat: no label; ner: no entity list (an empty list is a valid "no entities")
  unknown_label       a label not in the label set (parsing already mapped case/spelling variants)
  misaligned_span     an entity span outside the text or not on token boundaries
  overlapping_entity  two entities overlap

Repairs (not rejections): surrounding whitespace is stripped (entity offsets shifted with it).
"""
import unicodedata
from collections import Counter
from typing import Iterable, List, Optional, Sequence, Set, Tuple

from spacy.tokens import Doc

from .teachers.base import Sample

REASONS = (
    "empty", "control_characters", "too_short", "too_long", "leak_dev_test", "duplicate",
    "missing_label", "unknown_label", "misaligned_span", "overlapping_entity",
)  # fmt: skip


_END_PUNCT = " .,;:!?\"'`()[]{}…“”‘’"


def normalise(text: str) -> str:
    """The form texts are compared in for duplicates and leakage: NFKC, case-folded, single spaces,
    no punctuation at either end ("Where is my parcel?" == "where is my parcel")."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split()).strip(_END_PUNCT)


def has_bad_characters(text: str) -> bool:
    for ch in text:
        if ch in "\t\n\r":
            continue
        cat = unicodedata.category(ch)
        if cat in ("Cc", "Cs") or ch == "\ufffd":
            return True
    return False


def _strip(sample: Sample) -> Sample:
    text = sample.text or ""
    lead = len(text) - len(text.lstrip())
    stripped = text.strip()
    entities = sample.entities
    if entities is not None and lead:
        entities = [(s - lead, e - lead, l) for s, e, l in entities]
    return Sample(stripped, label=sample.label, entities=entities, intent=sample.intent,
                  confidence=sample.confidence, confidence_method=sample.confidence_method)  # fmt: skip


class Validator:
    def __init__(self, nlp, task: str, labels: Sequence[str], max_chars: int = 1000,
                 blocked_texts: Iterable[str] = ()):  # fmt: skip
        self.nlp = nlp
        self.task = task
        self.labels = list(labels)
        self.max_chars = max_chars
        self.blocked = {normalise(t) for t in blocked_texts}

    def check(self, sample: Sample, seen: Set[str]) -> Tuple[Optional[Doc], Optional[str]]:
        """(doc, None) when valid, else (None, reason). Adds the text to ``seen`` when valid."""
        sample = _strip(sample)
        text = sample.text
        if not text:
            return None, "empty"
        if has_bad_characters(text):
            return None, "control_characters"
        doc = self.nlp.make_doc(text)
        if len(doc) < 2:
            return None, "too_short"
        if len(text) > self.max_chars:
            return None, "too_long"
        key = normalise(text)
        if key in self.blocked:
            return None, "leak_dev_test"
        if key in seen:
            return None, "duplicate"
        reason = self._annotate(doc, sample)
        if reason:
            return None, reason
        seen.add(key)
        doc.user_data["evokd"] = {
            "intent": sample.intent,
            "confidence": sample.confidence,
            "confidence_method": sample.confidence_method,
        }
        return doc, None

    def _annotate(self, doc: Doc, sample: Sample) -> Optional[str]:
        if self.task == "textcat":
            if not sample.label:
                return "missing_label"
            if sample.label not in self.labels:
                return "unknown_label"
            doc.cats = {l: float(l == sample.label) for l in self.labels}
            return None
        if sample.entities is None:
            return "missing_label"
        spans = []
        for start, end, label in sample.entities:
            if label not in self.labels:
                return "unknown_label"
            if not (0 <= start < end <= len(doc.text)):
                return "misaligned_span"
            span = doc.char_span(start, end, label=label, alignment_mode="strict")
            if span is None:
                return "misaligned_span"
            spans.append(span)
        spans.sort(key=lambda s: (s.start, s.end))
        for a, b in zip(spans, spans[1:]):
            if b.start < a.end:
                return "overlapping_entity"
        doc.set_ents(spans, default="outside")
        return None

    def validate(self, samples: Sequence[Sample], seen: Set[str]) -> Tuple[List[Doc], Counter]:
        """Accepted docs (in input order) and rejection counts by reason. ``seen`` is updated."""
        docs, rejected = [], Counter()
        for sample in samples:
            doc, reason = self.check(sample, seen)
            if doc is None:
                rejected[reason] += 1
            else:
                docs.append(doc)
        return docs, rejected

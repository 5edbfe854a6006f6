"""Candidate samples from a teacher -> gold spaCy Docs, or a rejection reason.

Teacher output is untrusted: everything that reaches a DocBin passes these checks. Rules, in the
order applied (the first failing rule is the reason counted):

  empty               no text after stripping whitespace
  placeholder         a slot of the prompt's format example, not a text: no letter or digit at
                      all ("...", "…"), a <slot> ("<text>", "<your text here>"), or a stock
                      filler ("text", "sentence", "your text here", "example 1")
  control_characters  C0/C1 control characters (tab and newline are fine), lone surrogates,
                      U+FFFD (a decoding error upstream, or a lone surrogate made storable)
  invisible_characters  the text shows differently from what it stores: format characters
                      (Unicode Cf: zero-width spaces, bidi controls such as U+202E and U+2066-2069,
                      soft hyphens, tag characters U+E0000-E007F, BOMs) or line/paragraph
                      separators U+2028/2029. They hide copies of dev/test texts and mislabel
                      what a reader sees. Exception: ZWNJ/ZWJ (U+200C/U+200D) between two
                      non-ASCII characters, where scripts (Persian, Indic) and emoji need them
  too_short           fewer than 2 tokens
  too_long            more than ``max_chars`` characters
  leak_dev_test       the text (normalised) is in the dev or test split
  duplicate           the text (normalised) is in the seed, an earlier round or earlier in this batch
  near_duplicate      nearly the same as one of those: its content words (``content_words``:
                      letters only, so digits and punctuation drop out, without the language's
                      stop words) are the same sequence, or their sets overlap with a Jaccard
                      index >= NEAR_DUPLICATE_JACCARD (0.8: one changed word in ten). "Where is
                      order 12345?" repeats "Where is order 67890?"; "Anna flew to Rome" and
                      "Anna flew to Paris" are different texts
  label_leak          the annotation is written into the text (``label_leak``): a label in
                      brackets ("Who founded Google? (human)", "... [label: billing]"), after a
                      dash, colon or arrow at the end ("My parcel is late - shipping") or before
                      one at the start ("shipping: my parcel is late"), after "label:" /
                      "category:" anywhere, or a label's whole definition (4+ words) copied in.
                      A label word used in a sentence ("the shipping was slow") is fine
  missing_label       textcat: no label; ner: no entity list (an empty list is a valid "no entities")
                      (this rule and the next three are the task's: Task.annotate in tasks/);
                      textcat_multilabel: no label list or an empty one (a text has one or more)
  unknown_label       a label not in the label set (parsing already mapped case/spelling variants)
  misaligned_span     an entity span outside the text or not on token boundaries
  overlapping_entity  two entities overlap

Repairs (not rejections): surrounding whitespace is stripped (entity offsets shifted with it).

Texts are compared (duplicates, leakage) in ``normalise``d form, which drops format characters
and reads U+2028/2029 as spaces: a dev text with a zero-width space inside is still a dev text.
It also folds look-alikes (``fold_confusables``): a dev text written with Cyrillic "е" and "а"
for Latin "e" and "a", with a combining accent added, or with U+3164 (HANGUL FILLER, shown as a
blank) for a space, is still that dev text.
"""

import re
import unicodedata
from collections import Counter
from dataclasses import replace
from typing import Dict, Iterable, List, Optional, Sequence, Set, Tuple

from spacy.tokens import Doc

from .doc_meta import DocMeta
from .ty import Sample, Task

REASONS = (
    "empty",
    "placeholder",
    "control_characters",
    "invisible_characters",
    "too_short",
    "too_long",
    "leak_dev_test",
    "duplicate",
    "near_duplicate",
    "label_leak",
    "missing_label",
    "unknown_label",
    "misaligned_span",
    "overlapping_entity",
)

NEAR_DUPLICATE_JACCARD = 0.8


_END_PUNCT = " .,;:!?\"'`()[]{}…“”‘’"


_SEPARATORS = "\u2028\u2029"
_JOINERS = "\u200c\u200d"  # ZWNJ, ZWJ


def _invisible(ch: str) -> bool:
    """Format characters (Cf), the whole tag block (partly unassigned, Cn) and line/paragraph
    separators: none of them shows as itself."""
    return unicodedata.category(ch) == "Cf" or 0xE0000 <= ord(ch) <= 0xE007F or ch in _SEPARATORS


# Default_Ignorable_Code_Point (Unicode 15.1 DerivedCoreProperties.txt) outside Cf, which
# ``_invisible`` covers already: the combining grapheme joiner, Khmer inherent vowels, Mongolian
# variation selectors, variation selectors and the reserved ranges show as nothing (dropped);
# the Hangul fillers show as a blank (read as a space)
_IGNORABLE_RANGES = (
    (0x034F, 0x034F),
    (0x17B4, 0x17B5),
    (0x180B, 0x180F),
    (0xFE00, 0xFE0F),
    (0xFFF0, 0xFFF8),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0000, 0xE0FFF),
)
_BLANK_FILLERS = "\u115f\u1160\u3164\uffa0"
# combining marks that any letter takes (accents, not a script's vowel signs): the Combining
# Diacritical Marks blocks (basic, extended, supplement, for symbols, half marks)
_DIACRITIC_RANGES = ((0x0300, 0x036F), (0x1AB0, 0x1AFF), (0x1DC0, 0x1DFF), (0x20D0, 0x20FF), (0xFE20, 0xFE2F))
# Cyrillic, Greek and Armenian letters that TR39's confusables.txt maps to a Latin letter
# (prototype in brackets where it differs in case): the look-alikes a copy is disguised with
_LOOK_ALIKES = {
    # Cyrillic (lower-case ve "в" looks like no Latin letter, its capital does: B)
    "а": "a",
    "е": "e",
    "о": "o",
    "р": "p",
    "с": "c",
    "у": "y",
    "х": "x",
    "ѕ": "s",
    "і": "i",
    "ј": "j",
    "һ": "h",
    "ԁ": "d",
    "ԛ": "q",
    "ԝ": "w",
    "ӏ": "l",
    "ѵ": "v",
    "ɡ": "g",
    "ү": "y",
    "А": "A",
    "В": "B",
    "Е": "E",
    "К": "K",
    "М": "M",
    "Н": "H",
    "О": "O",
    "Р": "P",
    "С": "C",
    "Т": "T",
    "Х": "X",
    "У": "Y",
    "Ѕ": "S",
    "І": "I",
    "Ј": "J",
    "Ԛ": "Q",
    "Ԝ": "W",
    "Ӏ": "l",
    "Ү": "Y",
    "Ѵ": "V",
    # Greek
    "Α": "A",
    "Β": "B",
    "Ε": "E",
    "Ζ": "Z",
    "Η": "H",
    "Ι": "I",
    "Κ": "K",
    "Μ": "M",
    "Ν": "N",
    "Ο": "O",
    "Ρ": "P",
    "Τ": "T",
    "Υ": "Y",
    "Χ": "X",
    "ο": "o",
    "α": "a",
    "ν": "v",
    "ρ": "p",
    "ι": "i",
    "γ": "y",
    # Armenian, Latin specials
    "օ": "o",
    "ս": "u",
    "հ": "h",
    "ո": "n",
    "ց": "g",
    "ı": "i",
    "ɑ": "a",
    "ℓ": "l",
}


def _fold_table() -> Dict[int, Optional[str]]:
    table: Dict[int, Optional[str]] = {ord(k): v for k, v in _LOOK_ALIKES.items()}
    for low, high in _IGNORABLE_RANGES + _DIACRITIC_RANGES:
        table.update(dict.fromkeys(range(low, high + 1)))  # None: dropped
    table.update({ord(ch): " " for ch in _BLANK_FILLERS})
    return table


_FOLD = _fold_table()


def fold_confusables(text: str) -> str:
    """``text`` with look-alikes folded, for comparison only (never shown or stored). Our
    folding, in the spirit of the skeletons of Unicode TR39 (Unicode Security Mechanisms) but
    not the full confusables table (no PyPI package ships that table as a maintained mapping):

      1. NFKD: compatibility forms become their plain letters (fullwidth "ａ", mathematical bold
         "𝐚", ligatures "ﬁ"), precomposed letters their base + combining marks;
      2. combining marks of the Combining Diacritical Marks blocks are dropped ("é" -> "e"; a
         script's own vowel signs, e.g. Devanagari matras, are kept);
      3. default-ignorable characters that are not format characters are dropped (variation
         selectors, U+034F ...; ``_IGNORABLE_RANGES``), except the Hangul fillers (U+3164 HANGUL
         FILLER, U+115F, U+1160, U+FFA0), which show as a blank and become a space;
      4. Cyrillic, Greek and Armenian letters that look like a Latin letter become it
         (``_LOOK_ALIKES``, taken from TR39's confusables.txt), upper case before case folding;
      5. NFC again, so text in other scripts compares as it is written.

    Words in Cyrillic or Greek change shape but stay distinct from each other: two texts fold
    alike only when they look alike."""
    if text.isascii():
        return text
    text = unicodedata.normalize("NFKD", text).translate(_FOLD)
    return unicodedata.normalize("NFC", text)


def normalise(text: str) -> str:
    """The form texts are compared in for duplicates and leakage: look-alikes folded
    (``fold_confusables``), without format characters, case-folded, single spaces (U+2028/2029
    count as spaces), no punctuation at either end ("Where is my parcel?" == "where is my
    parcel" == "where is my\u200b parcel" == "wh\u0435re is my parcel", Cyrillic е)."""
    if not text.isascii():  # the common case skips the per-character pass
        text = fold_confusables(text)
        text = "".join(" " if ch in _SEPARATORS else "" if _invisible(ch) else ch for ch in text)
        text = fold_confusables(text.casefold())  # a capital that folds to a look-alike small letter
    return " ".join(text.casefold().split()).strip(_END_PUNCT)


def has_invisible_characters(text: str) -> bool:
    """True when the text stores characters a reader can't see (see ``invisible_characters``)."""
    if text.isascii():
        return False
    for i, ch in enumerate(text):
        if ch in _JOINERS and 0 < i < len(text) - 1 and not text[i - 1].isascii() and not text[i + 1].isascii():
            continue  # joins the letters or emoji of a script that needs it
        if _invisible(ch):
            return True
    return False


_PLACEHOLDER = re.compile(
    r"^(?:<[^<>]{0,40}>|\[[^\[\]]{0,40}\]|\{[^{}]{0,40}\}"  # a slot: <text>, [sentence], {text}
    r"|(?:(?:your|a|the|new|hard|easy|sample|example|some)\s+)*(?:text|sentence|example|input|message|question)s?"
    r"(?:\s+(?:here|\d{1,2}|goes\s+here))?)$",
    re.I,
)


def is_placeholder(text: str) -> bool:
    """True for a slot of a format example ("...", "<text>", "your text here"): see ``placeholder``."""
    if not text.strip():
        return False  # that is "empty"
    stripped = text.strip().strip("\"'`")
    return not any(ch.isalnum() for ch in stripped) or bool(_PLACEHOLDER.match(stripped.rstrip(".…").strip()))


def _label_pattern(label: str) -> str:
    """A label as written in free text: "product_question" also as "product question" / "Product-Question"."""
    parts = [re.escape(p) for p in re.split(r"[\s_\-]+", label.strip()) if p]
    return r"[\s_\-]*".join(parts)


def label_leak_pattern(labels: Sequence[str]) -> Optional["re.Pattern[str]"]:
    """The regex of ``label_leak`` for a label set (None for an empty one)."""
    alts = sorted({_label_pattern(l) for l in labels if l.strip()}, key=len, reverse=True)
    if not alts:
        return None
    L = "(?:" + "|".join(alts) + ")"
    q = "[\"'`]?"
    key = r"(?:label|category|class|intent|entity[\s_]?type|tag)"
    return re.compile(
        rf"[(\[{{<]\s*(?:{key}\s*[:=]\s*)?{q}{L}{q}\s*[)\]}}>]"  # (human), [label: billing]
        rf"|\b{key}\s*[:=]\s*{q}{L}\b"  # label: billing, anywhere
        rf"|(?:\s[-\u2013\u2014|]+|[:=]|->|=>)\s*{q}{L}{q}\s*[.!?]*\s*$"  # ... - shipping / ...: shipping
        rf"|^\s*{q}{L}{q}\s*(?:[:|=]|\s[-\u2013\u2014]+)\s",  # shipping: my parcel ...
        re.I,
    )


def label_leak(text: str, pattern: Optional["re.Pattern[str]"], definitions: Iterable[str] = ()) -> bool:
    """True when the annotation is written into ``text`` (see ``label_leak`` above); ``pattern``
    from ``label_leak_pattern``, ``definitions`` the labels' definitions."""
    if pattern is not None and pattern.search(text):
        return True
    key = normalise(text)
    return any(len(d.split()) >= 4 and normalise(d) in key for d in definitions)


def content_words(key: str, stop_words: Set[str]) -> Tuple[str, ...]:
    """The words near-duplicates are compared on: letters only (digits and punctuation drop
    out), without stop words, of a ``normalise``d text."""
    return tuple(w for w in _WORD.findall(key) if w not in stop_words)


_WORD = re.compile(r"[^\W\d_]+")


def _near(a: Tuple[str, ...], b: Tuple[str, ...]) -> bool:
    if a == b:
        return bool(a)
    sa, sb = set(a), set(b)
    if not sa or not sb:
        return False
    small, large = sorted((len(sa), len(sb)))
    if small < NEAR_DUPLICATE_JACCARD * large:  # Jaccard <= small / large: no need to intersect
        return False
    return len(sa & sb) >= NEAR_DUPLICATE_JACCARD * len(sa | sb)


def label_disagreements(
    proposed: Sequence[Sample], labelled: Sequence[Sample], task: Task, labels: Sequence[str]
) -> Counter:
    """Compare the annotation the generation call intended (``proposed``, by text) with the
    labelling call's: Counter(compared=.., disagreed=..). Only pairs where both annotations are
    in the label set count (textcat: the label; ner: the entity list, as (mention, label) pairs);
    an unusable one is counted by the validator instead."""
    intended = {p.text: task.comparable(p, labels) for p in proposed}
    out = Counter(compared=0, disagreed=0)
    for sample in labelled:
        meant, given = intended.get(sample.text), task.comparable(sample, labels)
        if meant is None or given is None:
            continue
        out["compared"] += 1
        out["disagreed"] += meant != given
    return out


def has_bad_characters(text: str) -> bool:
    for ch in text:
        if ch in "\t\n\r":
            continue
        cat = unicodedata.category(ch)
        if cat in ("Cc", "Cs") or ch == "\ufffd":
            return True
    return False


def _strip(sample: Sample, task: Task) -> Sample:
    """The sample with its text stripped; the task shifts what of its annotation points into the text."""
    text = sample.text or ""
    lead = len(text) - len(text.lstrip())
    annotation = sample.annotation
    if annotation is not None and lead:
        annotation = task.shift(annotation, -lead)
    return replace(sample, text=text.strip(), annotation=annotation)


class Validator:
    def __init__(
        self,
        nlp,
        task: Task,
        labels: Sequence[str],
        max_chars: int = 1000,
        blocked_texts: Iterable[str] = (),
        definitions: Optional[Dict[str, str]] = None,
    ):
        self.nlp = nlp
        self.task = task
        self.labels = list(labels)
        self.max_chars = max_chars
        self.blocked = {normalise(t) for t in blocked_texts}
        self.definitions = [d for d in (definitions or {}).values() if isinstance(d, str)]
        self._leak = label_leak_pattern(self.labels)
        self._stop_words = {w.casefold() for w in getattr(nlp.Defaults, "stop_words", ())}
        self._words: Dict[str, Tuple[str, ...]] = {}  # normalised text -> content words (memo)

    def _content(self, key: str) -> Tuple[str, ...]:
        words = self._words.get(key)
        if words is None:
            words = self._words[key] = content_words(key, self._stop_words)
        return words

    def is_near_duplicate(self, key: str, seen: Set[str]) -> bool:
        """``key`` (normalised) nearly repeats one of ``seen`` (see ``near_duplicate``)."""
        words = self._content(key)
        return any(_near(words, self._content(other)) for other in seen)

    def check(self, sample: Sample, seen: Set[str]) -> Tuple[Optional[Doc], Optional[str]]:
        """(doc, None) when valid, else (None, reason). Adds the text to ``seen`` when valid."""
        sample = _strip(sample, self.task)
        text = sample.text
        if not text:
            return None, "empty"
        if is_placeholder(text):
            return None, "placeholder"
        if has_bad_characters(text):
            return None, "control_characters"
        if has_invisible_characters(text):
            return None, "invisible_characters"
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
        if self.is_near_duplicate(key, seen):
            return None, "near_duplicate"
        if label_leak(text, self._leak, self.definitions):
            return None, "label_leak"
        reason = self.task.annotate(doc, sample, self.labels)
        if reason:
            return None, reason
        seen.add(key)
        DocMeta(intent=sample.intent, confidence=sample.confidence, confidence_method=sample.confidence_method).store(
            doc
        )
        return doc, None

    def validate(
        self, samples: Sequence[Sample], seen: Set[str], rejects: Optional[List[Tuple[Sample, str]]] = None
    ) -> Tuple[List[Doc], Counter]:
        """Accepted docs (in input order) and rejection counts by reason. ``seen`` is updated;
        ``rejects``, when given, gets each rejected sample with its reason."""
        docs, rejected = [], Counter()
        for sample in samples:
            doc, reason = self.check(sample, seen)
            if doc is None:
                rejected[reason] += 1
                if rejects is not None:
                    rejects.append((sample, reason))
            else:
                docs.append(doc)
        return docs, rejected

"""Shared defaults of the Task protocol (ty.Task) for the task modules.

``TaskBase``: what a task does the same way as most others (its student component found by
factory, the student's annotation read like the gold one, answers that are JSON objects only).
``ChoiceTask``: text classification, where a text's annotation is a choice of labels from a fixed
set kept in ``doc.cats`` and reviewed in Prodigy's "choice" view: textcat (one label) and
textcat_multilabel (one or more) share their data checks, review files, descriptions and scores
(spaCy's own Scorer.score_cats) here and differ only in the hooks (how many labels a sample
holds, in which field).
``SpanTask``: an annotation that is a list of labelled character spans, [(start, end, label), ...]
(ner; a span-categorisation task, whose spans may overlap): storing, shifting, comparing and
mislabelling the spans is the same whatever the doc keeps them in.
"""

import math
from abc import ABC, abstractmethod
from collections import Counter
from typing import Any, Dict, List, Optional, Sequence, Set, Tuple, Union

from ..data import DataError
from ..ty import CharSpan, Judged, Sample


def pipe_by_factory(nlp, factories: Sequence[str]) -> Optional[str]:
    """The name of ``nlp``'s first component made by one of ``factories``: by factory, not name,
    as a config may name a component anything (a textcat_multilabel one may be named "textcat")."""
    return next((p for p in nlp.pipe_names if nlp.get_pipe_meta(p).factory in factories), None)


def is_names(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(n, str) for n in value)


class TaskBase(ABC):
    """The defaults of ty.Task that most tasks share; a task overrides what it does otherwise."""

    label_unit = "example"
    factories: Tuple[str, ...] = ()  # the spaCy factories of a component that does the task

    @abstractmethod
    def doc_to_sample(self, doc) -> Sample:
        """ty.Task.doc_to_sample (``predicted_sample`` reads the student's Doc with it)."""

    def student_pipe(self, nlp) -> Optional[str]:
        return pipe_by_factory(nlp, self.factories)

    def predicted_sample(self, doc, nlp=None) -> Sample:
        return self.doc_to_sample(doc)  # a task whose student gives no score reads it like gold

    def answer_from_string(self, answer: str) -> Optional[Dict[str, Any]]:
        return None  # the task's answers are JSON objects, never a bare string

    def confidence_from_logprobs(self, logprobs: Sequence[float]) -> float:
        """The per-token geometric mean of the answer's probability: answers of several tokens
        vary in length (a one-label answer's whole probability is textcat's own)."""
        return math.exp(sum(logprobs) / len(logprobs)) if logprobs else 0.0


class ChoiceTask(TaskBase):
    field: str  # the JSONL and review field of the annotation: "label" (one name) or "labels" (a list)
    missing: str  # the end of the message for a reviewed line without the annotation

    # -- the hooks of a choice task

    @abstractmethod
    def chosen(self, sample: Sample) -> List[str]:
        """The sample's labels (none: [])."""

    @abstractmethod
    def field_value(self, names: List[str]) -> Any:
        """``names`` as ``field`` holds them (one name or a list; no label: None)."""

    @abstractmethod
    def read_field(self, value: Any, where: str) -> Optional[List[str]]:
        """The names a reviewed line's ``field`` gives (None: not given); DataError when malformed."""

    @abstractmethod
    def exported_names(self, doc) -> List[str]:
        """The names an exported line shows as chosen for a gold Doc."""

    @abstractmethod
    def read_exported(self, value: Any) -> Optional[Set[str]]:
        """meta.exported_<field> as a set of names (None: not readable)."""

    def check_accept(self, accept: Optional[List[str]], where: str) -> None:
        """A reviewed "accept" the task refuses (textcat: not exactly one label)."""

    @abstractmethod
    def disagreement(self, edited: List[str], accept: List[str]) -> str:
        """The message for a line whose ``field`` and "accept" are both edited, differently."""

    @abstractmethod
    def reviewed(self, text: str, names: Set[str], where: str) -> Sample:
        """The reviewed sample of ``text`` with the chosen ``names``; DataError when the task refuses them."""

    # -- the shared part

    def cat_scores(self, judged: Sequence[Judged], labels: Sequence[str]) -> Dict[str, Any]:
        """spaCy's Scorer.score_cats of the chosen labels (1.0 chosen, 0.0 not; every label of
        ``labels`` on both sides): its ``cats_*`` results, plus ``per_label`` {label: {p, r, f,
        support}} in ``labels``' order.

        Always its multi-label form at 0.5, for textcat too: on one-hot cats it counts each
        label's true and false positives and negatives exactly as the exclusive form
        (``multi_label=False``, what spaCy's textcat component reports) does whenever the
        prediction is one of ``labels`` (tests/test_scoring_and_weakness.py holds the figures
        equal on the demo data). It differs where the exclusive form takes an argmax of nothing:
        a prediction with no label (None, or a label outside ``labels``) there becomes a false
        positive of the first label (all scores 0.0), or a ValueError (spaCy 3.8 unpacks a
        label name when the predicted cats are empty); here it is what it is, a missed gold label.
        """
        from spacy.scorer import Scorer
        from spacy.tokens import Doc
        from spacy.training import Example
        from spacy.vocab import Vocab

        vocab = Vocab()
        examples = []
        for j in judged:
            pred, gold = Doc(vocab, words=["_"]), Doc(vocab, words=["_"])  # only the cats are scored
            for doc, sample in ((pred, j.pred), (gold, j.gold)):
                chosen = set(self.chosen(sample))
                doc.cats = {l: float(l in chosen) for l in labels}
            examples.append(Example(pred, gold))
        s = Scorer.score_cats(examples, "cats", labels=labels, multi_label=True, threshold=0.5)
        support = Counter(l for j in judged for l in set(self.chosen(j.gold)))
        per_type = s["cats_f_per_type"]
        s["per_label"] = {  # label-set order (spaCy's is a set's)
            l: {
                "p": float(per_type[l]["p"]),
                "r": float(per_type[l]["r"]),
                "f": float(per_type[l]["f"]),
                "support": support[l],
            }
            for l in labels
        }
        return s

    def score_counts(self, judged: Sequence[Judged], labels: Sequence[str], lang: str = "en") -> List[Tuple[int, ...]]:
        """ty.CountScored: per doc, (true positives, false positives, false negatives) of each
        label in ``labels``' order, one flat row, as ``cat_scores`` counts them."""
        rows = []
        for j in judged:
            gold, pred = set(self.chosen(j.gold)), set(self.chosen(j.pred))
            rows.append(
                tuple(int(c) for l in labels for c in (l in gold and l in pred, l in pred - gold, l in gold - pred))
            )
        return rows

    def score_from_counts(self, totals: Sequence[int]) -> float:
        """The macro-F1 of summed ``score_counts`` rows, by spaCy's PRFScore and averaged as
        Scorer.score_cats averages it: the same float as ``score(...)["score"]`` (the report's
        bootstrap sums rows: building spaCy Examples for each of its 800 resamples took 45 times
        as long as the old hand count, 32 ms against 0.7 ms for 500 texts)."""
        from spacy.scorer import PRFScore

        per_label = [PRFScore(tp=totals[i], fp=totals[i + 1], fn=totals[i + 2]) for i in range(0, len(totals), 3)]
        return sum(prf.fscore for prf in per_label) / (len(per_label) + 1e-100)

    def shift(self, annotation: Any, offset: int) -> Any:
        return annotation  # labels point at no characters

    def text_of(self, obj: Dict[str, Any], where: str) -> str:
        text = obj.get("text")
        if not isinstance(text, str) or not text.strip():
            raise DataError(f'{where}: missing or empty "text"')
        return text

    def doc_labels(self, doc) -> List[str]:
        return [k for k, v in doc.cats.items() if v]

    def review_task(self, doc, labels: Sequence[str]) -> Dict[str, Any]:
        """Prodigy's "choice" view: every label an option, the sample's labels accepted; ``field``
        holds the same for a text editor user, and meta.exported_<field> tells import which of the
        two a reviewer changed."""
        names = self.exported_names(doc)
        value = self.field_value(names)
        return {
            self.field: value,
            "options": [{"id": l, "text": l} for l in labels],
            "accept": list(names),
            "meta": {f"exported_{self.field}": value},
        }

    def review_annotation(self, sample: Sample) -> Any:
        return self.field_value(self.chosen(sample))

    def describe(self, sample: Sample) -> str:
        return ", ".join(self.chosen(sample)) or "(none)"

    def reviewed_sample(self, obj: Dict[str, Any], doc, labels: Sequence[str], where: str) -> Sample:
        """The reviewed labels: "accept" (Prodigy's choice view) or ``field`` (a text editor), as
        sets; when both are given and differ, the one that differs from meta.exported_<field> is
        the edit (not "differs from the sample's labels now": a second import of the same file
        would undo the first)."""
        meta = obj.get("meta")
        if not isinstance(meta, dict):
            meta = {}
        accept = obj.get("accept")
        if accept is not None and not is_names(accept):
            raise DataError(f'{where}: "accept" must be a list of labels')
        edited = self.read_field(obj.get(self.field), where)
        for name in (accept or []) + (edited or []):
            if name not in labels:
                raise DataError(f"{where}: label {name!r} is not in the run's labels {list(labels)}")
        self.check_accept(accept, where)
        if accept is None and edited is None:
            raise DataError(f'{where}: no "accept" or "{self.field}": {self.missing}')
        exported = self.read_exported(meta.get(f"exported_{self.field}"))
        if accept is None or edited is None:  # one of them given (both None: refused above)
            chosen = set(accept) if accept is not None else set(edited or [])
        elif set(accept) == set(edited) or set(edited) == exported:
            chosen = set(accept)
        elif set(accept) == exported:
            chosen = set(edited)
        else:
            raise DataError(f"{where}: {self.disagreement(edited, accept)}; set one of them")
        return self.reviewed(doc.text, chosen, where)


class SpanTask(TaskBase):
    label_unit = "span"

    def annotation_to_json(self, annotation: List[CharSpan]) -> List[list]:
        return [list(span) for span in annotation]

    def annotation_from_json(self, value: List[list]) -> List[CharSpan]:
        return [tuple(span) for span in value]  # JSON has no tuples

    def shift(self, annotation: List[CharSpan], offset: int) -> List[CharSpan]:
        return [(s + offset, e + offset, l) for s, e, l in annotation]

    def sample_labels(self, sample: Sample) -> List[str]:
        return sorted({l for _, _, l in sample.annotation or []})

    def doc_spans(self, doc, sample: Sample, labels: Sequence[str]) -> Union[str, list]:
        """The sample's spans as spaCy Spans of ``doc`` in token order, or the reason they can't be
        (a validation reason: ``annotate`` returns it)."""
        if sample.annotation is None:
            return "missing_label"
        spans = []
        for start, end, label in sample.annotation:
            if label not in labels:
                return "unknown_label"
            if not (0 <= start < end <= len(doc.text)):
                return "misaligned_span"
            span = doc.char_span(start, end, label=label, alignment_mode="strict")
            if span is None:
                return "misaligned_span"
            spans.append(span)
        return sorted(spans, key=lambda s: (s.start, s.end))

    def sample_class(self, sample: Sample) -> str:
        """The most frequent span label ("O": none)."""
        counts = Counter(l for _, _, l in sample.annotation or [])
        return sorted(counts, key=lambda l: (-counts[l], l))[0] if counts else "O"

    def mislabel(self, sample: Sample, labels: Sequence[str], rng) -> Sample:
        """One span gets another label (a text without spans stays as it is)."""
        spans = list(sample.annotation or [])
        if spans and len(labels) > 1:
            i = rng.randrange(len(spans))
            s, e, l = spans[i]
            spans[i] = (s, e, rng.choice([x for x in labels if x != l]))
        return Sample(sample.text, annotation=spans)

    def answer_key(self, sample: Sample):
        return tuple(sorted(tuple(span) for span in sample.annotation or []))

    def describe(self, sample: Sample) -> str:
        return ", ".join(f"{sample.text[s:e]} ({l})" for s, e, l in sample.annotation or []) or "(none)"

    def review_annotation(self, sample: Sample) -> Any:
        return [{"start": s, "end": e, "label": l} for s, e, l in sample.annotation or []]

    def comparable(self, sample: Sample, labels: Sequence[str]):
        """(mention, label) pairs: the two calls may place the same mention differently."""
        if sample.annotation is None or any(l not in labels for _, _, l in sample.annotation):
            return None
        return tuple(sorted((sample.text[s:e].casefold(), l) for s, e, l in sample.annotation))

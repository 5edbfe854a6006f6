"""A span-categorisation task that lives outside the package: the proof that a task is one module.

Its annotation is a list of labelled character spans that may overlap (``Sample.annotation``:
[(start_char, end_char, label), ...]); gold and predicted spans live in ``doc.spans["sc"]``, as
spaCy's ``spancat`` component writes them. JSONL: {"text": str, "spans": [[start, end, label], ...]}.
Metric: spaCy's own Scorer.score_spans (the figure `spacy train` picks model-best by).

tests/test_toy_task.py registers it (``tasks.register_task``) and runs the loop with it; nothing
in spacy_evokd/ names it. The prompt templates beside it (prompts/) serve an LLM teacher.
"""

import math
from collections import Counter
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from spacy_evokd.data import DataError
from spacy_evokd.parsing import normalise_label
from spacy_evokd.tasks.base import SpanTask
from spacy_evokd.ty import Judged, Sample

SPANS_KEY = "sc"  # spancat's default spans_key
TEMPLATES = Path(__file__).parent / "toy_spancat_prompts"

Span = Tuple[int, int, str]


def _spans(doc) -> List[Span]:
    return sorted((s.start_char, s.end_char, s.label_) for s in doc.spans.get(SPANS_KEY, []))


class ToySpancatTask(SpanTask):
    name = "toy_spancat"
    kind = "span categorisation"
    metric_name = "span F1"
    main_score_keys = ("spans_sc_f", "spans_sc_p", "spans_sc_r")
    answer_tokens = 30
    annotation_key = "spans"
    factories = ("spancat",)  # the student component (SpanTask.student_pipe)
    template_dir = TEMPLATES

    # -- data

    def record_to_sample(self, obj: Dict[str, Any], where: str, labels: Optional[Sequence[str]]) -> Sample:
        text, spans = obj.get("text"), obj.get("spans")
        if not isinstance(text, str) or not text.strip():
            raise DataError(f'{where}: missing or empty "text"')
        if not isinstance(spans, list):
            raise DataError(f'{where}: missing "spans" (a list of [start, end, label])')
        out = []
        for span in spans:
            if not (isinstance(span, list) and len(span) == 3 and 0 <= span[0] < span[1] <= len(text)):
                raise DataError(f"{where}: span {span!r} is not [start, end, label] inside the text")
            if labels is not None and span[2] not in labels:
                raise DataError(f"{where}: label {span[2]!r} is not in the label set {list(labels)}")
            out.append(tuple(span))
        return Sample(text, annotation=sorted(out))

    def record_to_doc(self, nlp, obj: Dict[str, Any], sample: Sample, labels: Sequence[str], where: str):
        doc = nlp.make_doc(sample.text)
        why = self.annotate(doc, sample, labels)
        if why:
            raise DataError(f"{where}: {why}")
        return doc

    def doc_to_sample(self, doc) -> Sample:
        return Sample(doc.text, annotation=_spans(doc))

    def doc_labels(self, doc) -> List[str]:
        return [s.label_ for s in doc.spans.get(SPANS_KEY, [])]

    def annotate(self, doc, sample: Sample, labels: Sequence[str]) -> Optional[str]:
        spans = self.doc_spans(doc, sample, labels)
        if isinstance(spans, str):
            return spans
        doc.spans[SPANS_KEY] = spans  # spans may overlap: that is what spancat is for
        return None

    # -- judging the student (the spans' key, comparison and mislabelling: SpanTask)

    def confusions(self, judged: Sequence[Judged]) -> Dict[Tuple[str, str], int]:
        counts: Counter = Counter()
        for j in judged:
            gold, pred = set(j.gold.annotation or []), set(j.pred.annotation or [])
            counts.update((l, "O") for _, _, l in gold - pred)
            counts.update(("O", l) for _, _, l in pred - gold)
        return dict(counts)

    def score(self, judged: Sequence[Judged], labels: Sequence[str], lang: str = "en") -> Dict[str, Any]:
        import spacy
        from spacy.scorer import Scorer
        from spacy.training import Example

        nlp = spacy.blank(lang)
        examples = []
        for j in judged:
            pred, gold = nlp.make_doc(j.pred.text), nlp.make_doc(j.gold.text)
            for doc, spans in ((pred, j.pred.annotation), (gold, j.gold.annotation)):
                doc.spans[SPANS_KEY] = [
                    doc.char_span(s, e, label=l, alignment_mode="expand") for s, e, l in spans or []
                ]
            examples.append(Example(pred, gold))
        s = Scorer.score_spans(
            examples,
            f"spans_{SPANS_KEY}",
            getter=lambda doc, attr: doc.spans.get(SPANS_KEY, []),
            has_annotation=lambda doc: SPANS_KEY in doc.spans,
            allow_overlap=True,
        )
        support = Counter(l for j in judged for _, _, l in j.gold.annotation or [])
        per_type = s.get(f"spans_{SPANS_KEY}_per_type") or {}
        per_label = {
            l: {**{k: float(per_type.get(l, {}).get(k, 0.0)) for k in "prf"}, "support": support[l]} for l in labels
        }
        f = float(s.get(f"spans_{SPANS_KEY}_f") or 0.0)
        return {
            "score": f,
            "spans_sc_f": f,
            "spans_sc_p": float(s.get(f"spans_{SPANS_KEY}_p") or 0.0),
            "spans_sc_r": float(s.get(f"spans_{SPANS_KEY}_r") or 0.0),
            "per_label": per_label,
            "n": len(judged),
        }

    def uncertainty(self, nlp, texts: Sequence[str]) -> List[float]:
        """The least sure kept span: 1 - |2p - 1| of its score (0: no span kept)."""
        out = []
        for doc in nlp.pipe(texts):
            scores = doc.spans[SPANS_KEY].attrs.get("scores", []) if SPANS_KEY in doc.spans else []
            out.append(max((1.0 - abs(2 * float(p) - 1.0) for p in scores), default=0.0))
        return out

    # -- teacher answers

    def answer_schema(self, labels: Sequence[str]) -> Dict[str, Any]:
        span = {
            "type": "object",
            "properties": {"text": {"type": "string"}, "label": {"enum": list(labels)}},
            "required": ["text", "label"],
            "additionalProperties": False,
        }
        return {"spans": {"type": "array", "items": span}}

    def parse_answer(
        self, text: str, item: Dict[str, Any], labels: Sequence[str], rejected: Counter
    ) -> Optional[Sample]:
        """Spans as {"text", "label"}: the first occurrence of each mention (enough for a toy)."""
        spans = item.get("spans")
        if spans is None:
            return Sample(text, annotation=None)
        out = []
        for span in spans if isinstance(spans, list) else [None]:
            mention = span.get("text") if isinstance(span, dict) else None
            start = text.find(mention) if isinstance(mention, str) and mention else -1
            if start < 0:
                rejected["unalignable_span"] += 1
                return None
            out.append((start, start + len(mention), normalise_label(span.get("label"), labels)))
        return Sample(text, annotation=sorted(out))

    def answer_of(self, sample: Sample) -> Dict[str, Any]:
        return {"spans": [{"text": sample.text[s:e], "label": l} for s, e, l in sample.annotation or []]}

    def confidence_from_logprobs(self, logprobs: Sequence[float]) -> float:
        return math.exp(sum(logprobs) / len(logprobs)) if logprobs else 0.0

    # -- review files

    def review_task(self, doc, labels: Sequence[str]) -> Dict[str, Any]:
        return {"spans": [{"start": s, "end": e, "label": l} for s, e, l in _spans(doc)]}

    def review_annotation(self, sample: Sample) -> Any:
        return [{"start": s, "end": e, "label": l} for s, e, l in sample.annotation or []]

    def describe(self, sample: Sample) -> str:
        return ", ".join(f"{sample.text[s:e]} ({l})" for s, e, l in sample.annotation or []) or "(none)"

    def reviewed_sample(self, obj: Dict[str, Any], doc, labels: Sequence[str], where: str) -> Sample:
        spans = obj.get("spans")
        if not isinstance(spans, list) or not all(isinstance(s, dict) for s in spans):
            raise DataError(f'{where}: no "spans" list')
        return self.record_to_sample(
            {"text": doc.text, "spans": [[s.get("start"), s.get("end"), s.get("label")] for s in spans]}, where, labels
        )

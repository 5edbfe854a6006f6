"""textcat: one label per text, from a fixed set (exclusive classes).

JSONL: {"text": str, "label": str}. Gold Docs carry one-hot ``doc.cats``. Metric: macro-F1 over
all labels by spaCy's own Scorer.score_cats (the figure its textcat component reports; see
ChoiceTask.cat_scores), plus accuracy. Uncertainty: normalised predictive entropy of ``doc.cats``.
"""

import math
from collections import Counter
from typing import Any, Dict, List, Optional, Sequence, Set, Tuple

from ..answer_schemas import label_enum
from ..data import DataError
from ..parsing import normalise_label
from ..ty import Judged, Sample
from ..uncertainty import entropy
from .base import ChoiceTask


def _top_label(doc) -> Optional[str]:
    return max(doc.cats, key=doc.cats.get) if doc.cats else None


class TextcatTask(ChoiceTask):
    name = "textcat"
    kind = "text classification"
    metric_name = "macro-F1"
    main_score_keys: Tuple[str, ...] = ("macro_f", "accuracy")
    answer_tokens = 8  # one label
    factories = ("textcat",)
    field = "label"
    missing = "the reviewed label is missing"
    annotation_key = "label"  # Sample.annotation: the one label (a str)

    # -- the annotation

    def annotation_to_json(self, annotation: str) -> str:
        return annotation

    def annotation_from_json(self, value: str) -> str:
        return value

    # -- data

    def record_to_sample(self, obj: Dict[str, Any], where: str, labels: Optional[Sequence[str]]) -> Sample:
        text, label = self.text_of(obj, where), obj.get("label")
        if not isinstance(label, str) or not label:
            raise DataError(f'{where}: missing "label"')
        if labels is not None and label not in labels:
            raise DataError(f"{where}: label {label!r} is not in the label set {list(labels)}")
        return Sample(text, annotation=label)

    def record_to_doc(self, nlp, obj: Dict[str, Any], sample: Sample, labels: Sequence[str], where: str):
        doc = nlp.make_doc(sample.text)
        doc.cats = {l: float(l == sample.annotation) for l in labels}
        return doc

    def doc_to_sample(self, doc) -> Sample:
        return Sample(doc.text, annotation=_top_label(doc))

    def predicted_sample(self, doc, nlp=None) -> Sample:
        label = _top_label(doc)
        return Sample(doc.text, annotation=label, confidence=doc.cats[label] if label else None)

    def sample_labels(self, sample: Sample) -> List[str]:
        return [sample.annotation]

    def sample_class(self, sample: Sample) -> str:
        return sample.annotation or "?"

    def annotate(self, doc, sample: Sample, labels: Sequence[str]) -> Optional[str]:
        if not sample.annotation:
            return "missing_label"
        if sample.annotation not in labels:
            return "unknown_label"
        doc.cats = {l: float(l == sample.annotation) for l in labels}
        return None

    def mislabel(self, sample: Sample, labels: Sequence[str], rng) -> Sample:
        label = sample.annotation
        if len(labels) > 1:
            label = rng.choice([l for l in labels if l != sample.annotation])
        return Sample(sample.text, annotation=label)

    # -- judging the student

    def answer_key(self, sample: Sample):
        return sample.annotation

    def comparable(self, sample: Sample, labels: Sequence[str]):
        return sample.annotation if sample.annotation in labels else None

    def confusions(self, judged: Sequence[Judged]) -> Dict[Tuple[str, str], int]:
        return dict(
            Counter((j.gold.annotation, j.pred.annotation) for j in judged if j.gold.annotation != j.pred.annotation)
        )

    def score(self, judged: Sequence[Judged], labels: Sequence[str], lang: str = "en") -> Dict[str, Any]:
        """spaCy's Scorer.score_cats (ChoiceTask.cat_scores): macro-F1 over all labels, a label
        never predicted nor gold counting 0, as spaCy averages exclusive classes; plus accuracy."""
        s = self.cat_scores(judged, labels)
        macro_f = float(s["cats_macro_f"])
        accuracy = sum(j.gold.annotation == j.pred.annotation for j in judged) / max(1, len(judged))
        return {
            "score": macro_f,
            "macro_f": macro_f,
            "accuracy": accuracy,
            "per_label": s["per_label"],
            "n": len(judged),
        }

    def uncertainty(self, nlp, texts: Sequence[str]) -> List[float]:
        return [entropy(list(doc.cats.values())) for doc in nlp.pipe(texts)]

    # -- teacher answers

    def answer_schema(self, labels: Sequence[str]) -> Dict[str, Any]:
        return {"label": label_enum(labels)}

    def parse_answer(
        self, text: str, item: Dict[str, Any], labels: Sequence[str], rejected: Counter
    ) -> Optional[Sample]:
        return Sample(
            text, annotation=normalise_label(item.get("label"), labels)
        )  # None/unknown: the validator counts it

    def answer_of(self, sample: Sample) -> Dict[str, Any]:
        return {"label": sample.annotation}

    def answer_from_string(self, answer: str) -> Optional[Dict[str, Any]]:
        return {"label": answer}

    def confidence_from_logprobs(self, logprobs: Sequence[float]) -> float:
        return math.exp(sum(logprobs))  # the probability of the whole (short) answer

    # -- review files (ChoiceTask: one label, in "label")

    def chosen(self, sample: Sample) -> List[str]:
        return [sample.annotation] if sample.annotation is not None else []

    def field_value(self, names: List[str]) -> Any:
        return names[0] if names else None

    def read_field(self, value: Any, where: str) -> Optional[List[str]]:
        if value is not None and not isinstance(value, str):
            raise DataError(f'{where}: "label" must be a string')
        return None if value is None else [value]

    def exported_names(self, doc) -> List[str]:
        return [_top_label(doc) or ""]

    def read_exported(self, value: Any) -> Optional[Set[str]]:
        return {value} if isinstance(value, str) else None

    def check_accept(self, accept: Optional[List[str]], where: str) -> None:
        if accept is not None and len(accept) != 1:
            raise DataError(
                f'{where}: "accept" holds {len(accept)} labels; this textcat is single-label: choose one, '
                'or answer "reject" to remove the sample'
            )

    def disagreement(self, edited: List[str], accept: List[str]) -> str:
        return f'"label" {edited[0]!r} and "accept" {accept} disagree'

    def reviewed(self, text: str, names: Set[str], where: str) -> Sample:
        (label,) = names  # check_accept and read_field let one name through
        return Sample(text, annotation=label)

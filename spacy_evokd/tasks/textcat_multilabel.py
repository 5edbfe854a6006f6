"""textcat_multilabel: each text gets every label that applies (one or more) from a fixed set.

JSONL: {"text": str, "labels": [str, ...]} (one or more distinct names). Gold Docs carry
``doc.cats`` with every label of the set as 1.0 or 0.0. The student (spaCy's ``textcat_multilabel``
component: an independent sigmoid per label) predicts the labels whose score is >= the
component's ``threshold`` (0.5 when it has none). A Sample keeps its set in ``Sample.annotation``, a sorted list.

Metric: macro-F1 over all labels at that threshold, by spaCy's own Scorer.score_cats with
``multi_label=True`` (its ``cats_macro_f``, which the config's training.score_weights picks
model-best by); micro-F1 and exact-set accuracy are reported with it. A text counts as correct
when its label *set* is exactly right; a confusion pairs a label with "none" (gold label left
out: (label, "none"); label given that the text does not have: ("none", label)), as ner pairs
entities with "O".

Uncertainty: per text, the largest over labels of the closeness of the label's score to the
threshold (1 at the threshold, 0 at the far end: 0 or 1), i.e. ner's marginal uncertainty with
the decision point at the threshold instead of 0.5. The largest, not the mean, because one
label near its flip point is enough to make the predicted set wrong (exact-set correctness),
and a mean over 5+ labels would dilute it with the confident ones.
"""

import re
from collections import Counter
from typing import Any, Dict, Iterable, List, Optional, Sequence, Set, Tuple

from ..answer_schemas import label_enum
from ..data import DataError
from ..parsing import normalise_label
from ..ty import Judged, Sample
from .base import ChoiceTask, is_names, pipe_by_factory

FACTORY = "textcat_multilabel"
DEFAULT_THRESHOLD = 0.5  # spaCy's textcat_multilabel default
NONE = "none"  # the other side of a confusion: a label left out or given wrongly

# "billing, shipping" / "billing; shipping" / "billing and shipping": a bare-string answer's labels
_SPLIT = re.compile(r"\s*(?:[,;/|+&]|\band\b)\s*")


def _label_set(names: Iterable[str]) -> List[str]:
    """A Sample's ``labels``: each name once (a teacher repeating a label means it once), sorted
    (ty.Sample keeps a set sorted, so equal sets are equal lists whatever order they came in)."""
    return sorted(set(names))


def _pipe(nlp) -> Optional[str]:
    """The name of ``nlp``'s textcat_multilabel component, by factory (any name the config gave it)."""
    return pipe_by_factory(nlp, (FACTORY,))


def _threshold(nlp) -> float:
    name = _pipe(nlp) if nlp is not None else None
    if name is None:
        return DEFAULT_THRESHOLD
    value = nlp.get_pipe(name).cfg.get("threshold")
    return float(value) if value is not None else DEFAULT_THRESHOLD


def _closeness(score: float, threshold: float) -> float:
    """1 at the threshold, falling linearly to 0 at 0 (below it) or 1 (above it)."""
    span = threshold if score < threshold else 1.0 - threshold
    return 1.0 - abs(score - threshold) / span if span > 0 else 0.0


class TextcatMultilabelTask(ChoiceTask):
    name = "textcat_multilabel"
    kind = "multi-label text classification"
    metric_name = "macro-F1 (multi-label)"
    main_score_keys: Tuple[str, ...] = ("macro_f", "micro_f", "accuracy")
    answer_tokens = 16  # a short list of label names
    factories = (FACTORY,)
    field = "labels"
    missing = "the reviewed labels are missing"
    annotation_key = "labels"  # Sample.annotation: the sorted list of its distinct labels

    # -- the annotation

    def annotation_to_json(self, annotation: List[str]) -> List[str]:
        return list(annotation)

    def annotation_from_json(self, value: List[str]) -> List[str]:
        return list(value)

    # -- data

    def record_to_sample(self, obj: Dict[str, Any], where: str, labels: Optional[Sequence[str]]) -> Sample:
        text, names = self.text_of(obj, where), obj.get("labels")
        if names is None:
            hint = ' (this record has a single "label": a textcat file? use --task textcat)' if "label" in obj else ""
            raise DataError(f'{where}: missing "labels" (a list of one or more label names){hint}')
        if not isinstance(names, list):
            raise DataError(f'{where}: "labels" must be a list of label names, got {type(names).__name__}')
        if not names:
            raise DataError(f'{where}: "labels" is empty: every text needs at least one label')
        for name in names:
            if not isinstance(name, str) or not name.strip():
                raise DataError(f"{where}: label {name!r} is not a label name")
            if labels is not None and name not in labels:
                raise DataError(f"{where}: label {name!r} is not in the label set {list(labels)}")
        if len(set(names)) != len(names):
            twice = next(n for n in names if names.count(n) > 1)
            raise DataError(f"{where}: label {twice!r} is listed twice")
        return Sample(text, annotation=_label_set(names))

    def record_to_doc(self, nlp, obj: Dict[str, Any], sample: Sample, labels: Sequence[str], where: str):
        doc = nlp.make_doc(sample.text)
        doc.cats = {l: float(l in sample.annotation) for l in labels}
        return doc

    def doc_to_sample(self, doc) -> Sample:
        return Sample(doc.text, annotation=_label_set(l for l, v in doc.cats.items() if v >= 0.5))

    def predicted_sample(self, doc, nlp=None) -> Sample:
        """The labels scored >= the pipeline's threshold; confidence: the least sure label
        decision (1 - the text's uncertainty)."""
        threshold = _threshold(nlp)
        labels = _label_set(l for l, v in doc.cats.items() if v >= threshold)
        unsure = max((_closeness(v, threshold) for v in doc.cats.values()), default=0.0)
        return Sample(doc.text, annotation=labels, confidence=1.0 - unsure if doc.cats else None)

    def sample_labels(self, sample: Sample) -> List[str]:
        return _label_set(sample.annotation or [])

    def sample_class(self, sample: Sample) -> str:
        """The first of its (sorted) labels. One class per sample keeps LLKD's class-wise
        thresholds per label (a class per label *combination* would leave most of them with a
        handful of samples); the sorted order makes it the same whatever order the teacher
        named the labels in (a sampled answer carries no per-label confidence to rank them by).
        "none" for a sample without labels."""
        return _label_set(sample.annotation)[0] if sample.annotation else NONE

    def annotate(self, doc, sample: Sample, labels: Sequence[str]) -> Optional[str]:
        if not sample.annotation:  # None or []: every text has at least one label
            return "missing_label"
        if any(l not in labels for l in sample.annotation):
            return "unknown_label"
        doc.cats = {l: float(l in sample.annotation) for l in labels}
        return None

    def mislabel(self, sample: Sample, labels: Sequence[str], rng) -> Sample:
        """One label flipped: a label the text lacks is added, or one it has is left out (never
        the last one: a text keeps at least one label)."""
        have = _label_set(sample.annotation or [])
        flips = [l for l in labels if l not in have] + (have if len(have) > 1 else [])
        if not flips:
            return Sample(sample.text, annotation=have)
        flip = rng.choice(flips)
        return Sample(sample.text, annotation=_label_set(set(have) ^ {flip}))

    # -- judging the student

    def answer_key(self, sample: Sample):
        return tuple(sorted(set(sample.annotation or [])))

    def comparable(self, sample: Sample, labels: Sequence[str]):
        if not sample.annotation or any(l not in labels for l in sample.annotation):
            return None
        return tuple(sorted(set(sample.annotation)))

    def confusions(self, judged: Sequence[Judged]) -> Dict[Tuple[str, str], int]:
        counts: Counter = Counter()
        for j in judged:
            gold, pred = set(j.gold.annotation or []), set(j.pred.annotation or [])
            counts.update((label, NONE) for label in gold - pred)
            counts.update((NONE, label) for label in pred - gold)
        return dict(counts)

    def score(self, judged: Sequence[Judged], labels: Sequence[str], lang: str = "en") -> Dict[str, Any]:
        """spaCy's Scorer.score_cats (multi_label; ChoiceTask.cat_scores) on the label sets: the
        predictions are already thresholded (1.0 / 0.0), so its threshold of 0.5 reproduces the
        student's own decisions."""
        s = self.cat_scores(judged, labels)
        per_label = s["per_label"]
        exact = sum(self.answer_key(j.gold) == self.answer_key(j.pred) for j in judged)
        macro_f = float(s["cats_macro_f"]) if judged else 0.0
        return {
            "score": macro_f,
            "macro_f": macro_f,
            "macro_p": float(s["cats_macro_p"]) if judged else 0.0,
            "macro_r": float(s["cats_macro_r"]) if judged else 0.0,
            "micro_f": float(s["cats_micro_f"]) if judged else 0.0,
            "micro_p": float(s["cats_micro_p"]) if judged else 0.0,
            "micro_r": float(s["cats_micro_r"]) if judged else 0.0,
            "accuracy": exact / len(judged) if judged else 0.0,  # exact label-set match
            "per_label": per_label,
            "n": len(judged),
        }

    def uncertainty(self, nlp, texts: Sequence[str]) -> List[float]:
        if _pipe(nlp) is None:
            raise ValueError(f"the student has no '{FACTORY}' component (pipeline: {nlp.pipe_names})")
        threshold = _threshold(nlp)
        return [max((_closeness(v, threshold) for v in doc.cats.values()), default=0.0) for doc in nlp.pipe(texts)]

    # -- teacher answers

    def answer_schema(self, labels: Sequence[str]) -> Dict[str, Any]:
        # OpenAI's strict mode has no uniqueItems: parse_answer drops repeats; maxItems (one of
        # each label) ends a runaway repetition before max_tokens (see ner.MAX_ENTITIES_PER_TEXT)
        return {"labels": {"type": "array", "items": label_enum(labels), "minItems": 1, "maxItems": len(labels)}}

    def parse_answer(
        self, text: str, item: Dict[str, Any], labels: Sequence[str], rejected: Counter
    ) -> Optional[Sample]:
        """ "labels" as a list of names (a lone "label", a name or a list, is read too; so is a
        string of comma-separated names). Names are normalised like textcat's, repeats dropped;
        an unknown name is kept so the validator rejects the sample as unknown_label; a list
        holding a non-string is malformed_item."""
        names = item.get("labels", item.get("label"))
        if names is None:
            return Sample(text, annotation=None)  # the validator counts missing_label
        if isinstance(names, str):
            names = [n for n in _SPLIT.split(names.strip()) if n]
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            rejected["malformed_item"] += 1
            return None
        return Sample(text, annotation=_label_set(normalise_label(n, labels) for n in names))

    def answer_of(self, sample: Sample) -> Dict[str, Any]:
        return {"labels": list(sample.annotation or [])}

    def answer_from_string(self, answer: str) -> Optional[Dict[str, Any]]:
        """ "1. billing, shipping": the names after the number."""
        names = [n for n in _SPLIT.split(answer.strip()) if n]
        return {"labels": names} if names else None

    # -- review files (ChoiceTask: one or more labels, in "labels"; Prodigy's choice view with
    # "choice_style": "multiple", and an Argilla MultiLabelQuestion "labels")

    def chosen(self, sample: Sample) -> List[str]:
        return _label_set(sample.annotation or [])

    def field_value(self, names: List[str]) -> Any:
        return list(names)

    def read_field(self, value: Any, where: str) -> Optional[List[str]]:
        if value is not None and not is_names(value):
            raise DataError(f'{where}: "labels" must be a list of labels')
        return value

    def exported_names(self, doc) -> List[str]:
        return self.doc_to_sample(doc).annotation

    def read_exported(self, value: Any) -> Optional[Set[str]]:
        return set(value) if is_names(value) else None

    def disagreement(self, edited: List[str], accept: List[str]) -> str:
        return f'"labels" {sorted(set(edited))} and "accept" {sorted(set(accept))} disagree'

    def reviewed(self, text: str, names: Set[str], where: str) -> Sample:
        if not names:
            raise DataError(
                f'{where}: no label chosen: every text needs at least one label (answer "reject" to remove the sample)'
            )
        return Sample(text, annotation=_label_set(names))

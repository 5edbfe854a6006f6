"""ner: entity spans with labels from a fixed set (none is a valid answer).

JSONL: {"tokens": [str, ...], "tags": ["B-PER", "I-PER", "O", ...]} (IOB2); a record's text is
its tokens joined with single spaces, and its Doc keeps the file's tokenisation (as `spacy
convert` does). Metric: entity-level micro-F1 (seqeval, strict IOB2, over the student's own
tokenisation: the CoNLL figure NER papers report; see ``NERTask.score``). Uncertainty: entity
marginals from a beam over the student's ``ner`` component.
"""

import functools
import re
from collections import Counter
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from ..answer_schemas import json_object, label_enum
from ..data import DataError
from ..parsing import normalise_label
from ..ty import CharSpan, Judged, Sample
from ..uncertainty import marginal_uncertainty
from .base import SpanTask

# entities one answer may list (answer_schema's maxItems): above the most crowded sentence of
# conll04 (24) and conll2003 (20). An answer that reaches it is rejected (too_many_entities): a
# runaway list, or a text whose remaining entities were cut off by the cap
MAX_ENTITIES_PER_TEXT = 32


def _check_iob(tags: Sequence[str], where: str) -> None:
    prev = "O"
    for i, tag in enumerate(tags):
        if tag != "O" and (len(tag) < 3 or tag[1] != "-" or tag[0] not in "BI"):
            raise DataError(f"{where}: tag {tag!r} at token {i} is not IOB2 (B-X, I-X or O)")
        if tag.startswith("I-") and prev[2:] != tag[2:]:
            raise DataError(f"{where}: tag {tag!r} at token {i} follows {prev!r} (invalid IOB2)")
        prev = tag


def align_entities(text: str, entities: Any, labels: Sequence[str]) -> Optional[List[CharSpan]]:
    """Entity objects ({"text", "label"[, "start", "end"]}) or [text, label] pairs -> character
    spans; None when any entity can't be found in the text (or the list is malformed)."""
    if not isinstance(entities, list):
        return None
    used: Counter = Counter()
    spans: List[CharSpan] = []
    for ent in entities:
        if isinstance(ent, dict):
            surface, label = ent.get("text"), ent.get("label")
            start, end = ent.get("start"), ent.get("end")
        elif isinstance(ent, (list, tuple)) and len(ent) == 2:
            (surface, label), start, end = ent, None, None
        else:
            return None
        if not isinstance(surface, str) or not surface.strip() or not isinstance(label, str):
            return None
        surface = surface.strip()
        label = normalise_label(label, labels)
        if isinstance(start, int) and isinstance(end, int) and text[start:end] == surface:
            spans.append((start, end, label))
            continue
        found = _find(text, surface, used[surface.casefold()])
        if found is None:
            return None
        used[surface.casefold()] += 1
        spans.append((found[0], found[1], label))
    return spans


def _find(text: str, surface: str, nth: int) -> Optional[Tuple[int, int]]:
    pattern = re.escape(surface)
    for regex, flags in ((rf"(?<!\w){pattern}(?!\w)", 0), (pattern, 0), (rf"(?<!\w){pattern}(?!\w)", re.I)):
        matches = list(re.finditer(regex, text, flags))
        if matches:
            m = matches[min(nth, len(matches) - 1)]
            return m.start(), m.end()
    return None


@functools.lru_cache(maxsize=None)
def _tokenizer(lang: str):
    """spaCy's tokenizer of ``lang`` (a blank pipeline costs a quarter of a second to build, and the
    report's bootstrap scores hundreds of resamples)."""
    import spacy

    return spacy.blank(lang).tokenizer


@functools.lru_cache(maxsize=65536)
def _sample_tags(text: str, entities: Tuple[CharSpan, ...], lang: str) -> Tuple[str, ...]:
    """A sample's IOB tags, computed once per sample however often it is scored (bootstrap resamples)."""
    return tuple(iob_tags(text, entities, _tokenizer(lang)))


def iob_tags(text: str, entities: Iterable[CharSpan], tokenizer) -> List[str]:
    doc = tokenizer(text)
    spans = [doc.char_span(s, e, label=l, alignment_mode="expand") for s, e, l in entities]
    doc.set_ents([s for s in spans if s is not None], default="outside")
    return [f"{t.ent_iob_}-{t.ent_type_}" if t.ent_iob_ != "O" else "O" for t in doc]


class NERTask(SpanTask):
    name = "ner"
    kind = "named-entity recognition"
    metric_name = "entity F1"
    main_score_keys: Tuple[str, ...] = ("ents_f", "ents_p", "ents_r")
    answer_tokens = 30  # a short entity list
    label_unit = "entity"
    factories = ("ner", "beam_ner")
    annotation_key = "entities"  # Sample.annotation: [(start_char, end_char, label), ...], possibly empty

    # -- data

    def record_to_sample(self, obj: Dict[str, Any], where: str, labels: Optional[Sequence[str]]) -> Sample:
        tokens, tags = obj.get("tokens"), obj.get("tags")
        if not isinstance(tokens, list) or not isinstance(tags, list) or not tokens:
            raise DataError(f'{where}: expected non-empty "tokens" and "tags" lists')
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
        return Sample(" ".join(tokens), annotation=entities)

    def record_to_doc(self, nlp, obj: Dict[str, Any], sample: Sample, labels: Sequence[str], where: str):
        from spacy.tokens import Doc
        from spacy.training.iob_utils import biluo_tags_to_spans, iob_to_biluo

        words = obj["tokens"]
        doc = Doc(nlp.vocab, words=words, spaces=[True] * (len(words) - 1) + [False])
        doc.set_ents(biluo_tags_to_spans(doc, iob_to_biluo(obj["tags"])), default="outside")
        return doc

    def doc_to_sample(self, doc) -> Sample:
        return Sample(doc.text, annotation=[(e.start_char, e.end_char, e.label_) for e in doc.ents])

    def doc_labels(self, doc) -> List[str]:
        return [e.label_ for e in doc.ents]

    def annotate(self, doc, sample: Sample, labels: Sequence[str]) -> Optional[str]:
        spans = self.doc_spans(doc, sample, labels)
        if isinstance(spans, str):
            return spans
        for a, b in zip(spans, spans[1:]):
            if b.start < a.end:
                return "overlapping_entity"
        doc.set_ents(spans, default="outside")
        return None

    # -- judging the student (the spans' key, comparison and mislabelling: SpanTask)

    def confusions(self, judged: Sequence[Judged]) -> Dict[Tuple[str, str], int]:
        """ "O" marks a missed or a spurious entity."""
        counts: Counter = Counter()
        for j in judged:
            gold = {(s, e): l for s, e, l in j.gold.annotation or []}
            pred = {(s, e): l for s, e, l in j.pred.annotation or []}
            for span, label in gold.items():
                if pred.get(span) != label:
                    counts[(label, pred.get(span, "O"))] += 1
            for span, label in pred.items():
                if span not in gold:
                    counts[("O", label)] += 1
        return dict(counts)

    def score(self, judged: Sequence[Judged], labels: Sequence[str], lang: str = "en") -> Dict[str, Any]:
        """Entity-level micro-F1 by seqeval in strict IOB2 mode, not spaCy's Scorer.score_spans:
        the strict IOB2 figure is the point. It is the CoNLL shared tasks' exact-match entity F1
        (conlleval's), the figure NER papers report for conll04 and CoNLL-2003, so a student's
        figure here is comparable with theirs; ``score_counts`` counts the same entities for the
        report's bootstrap. (spaCy's own ents_f is only what `spacy train` picks model-best by
        inside the student's training; nothing of ours scores ner with it.)
        """
        from seqeval.metrics import classification_report
        from seqeval.scheme import IOB2

        # the student's own tokenisation decides the IOB tags
        y_true = [list(_sample_tags(j.gold.text, tuple(map(tuple, j.gold.annotation or [])), lang)) for j in judged]
        y_pred = [list(_sample_tags(j.pred.text, tuple(map(tuple, j.pred.annotation or [])), lang)) for j in judged]
        report = (
            classification_report(y_true, y_pred, output_dict=True, mode="strict", scheme=IOB2, zero_division=0)
            if judged
            else {}
        )
        per_label = {}
        for label in labels:
            row = report.get(label, {})
            per_label[label] = {
                "p": float(row.get("precision", 0.0)),
                "r": float(row.get("recall", 0.0)),
                "f": float(row.get("f1-score", 0.0)),
                "support": int(row.get("support", 0)),
            }
        micro = report.get("micro avg", {})  # seqeval's f1_score/precision_score/recall_score (average="micro")
        f = float(micro.get("f1-score", 0.0))
        return {
            "score": f,
            "ents_f": f,
            "ents_p": float(micro.get("precision", 0.0)),
            "ents_r": float(micro.get("recall", 0.0)),
            "per_label": per_label,
            "n": len(judged),
        }

    def score_counts(
        self, judged: Sequence[Judged], labels: Sequence[str] = (), lang: str = "en"
    ) -> List[Tuple[int, ...]]:
        """(true positives, predicted, gold) entities per doc, as seqeval's strict IOB2 mode counts
        them (ty.CountScored: the micro-F1 of ``score`` is 2 tp / (predicted + gold) of the sums;
        a micro average over every entity, so ``labels`` changes nothing)."""
        from seqeval.scheme import IOB2, Entities

        rows: List[Tuple[int, ...]] = []
        for j in judged:
            gold, pred = (
                {
                    e.to_tuple()
                    for e in Entities(
                        [list(_sample_tags(s.text, tuple(map(tuple, s.annotation or [])), lang))], IOB2, False
                    ).entities[0]
                }
                for s in (j.gold, j.pred)
            )
            rows.append((len(gold & pred), len(pred), len(gold)))
        return rows

    def score_from_counts(self, totals: Sequence[int]) -> float:
        tp, predicted, gold = totals
        return 2 * tp / (predicted + gold) if tp else 0.0

    def uncertainty(self, nlp, texts: Sequence[str], beam_width: int = 16) -> List[float]:
        """Per text, the largest 1 - |2p - 1| over the beam's candidate (span, label) marginals p.
        A greedy ner trained by the loop can be scored this way; no ``beam_ner`` is needed."""
        if "ner" not in nlp.pipe_names:
            raise ValueError(f"the student has no 'ner' component (pipeline: {nlp.pipe_names})")
        ner = nlp.get_pipe("ner")
        docs = [nlp.make_doc(t) for t in texts]
        with nlp.select_pipes(disable=["ner"]):  # run what ner listens to (tok2vec/transformer)
            docs = list(nlp.pipe(docs))
        if not docs:
            return []
        beams = ner.beam_parse(docs, beam_width=beam_width)
        return [marginal_uncertainty(m) for m in ner.scored_ents(beams)]

    # -- teacher answers

    def answer_schema(self, labels: Sequence[str]) -> Dict[str, Any]:
        # maxItems bounds a runaway list: the real 1.5B teacher, labelling 4 conll04 sentences at
        # temperature 0, listed {"text": "Fini"} 99 times for a text naming him once and was cut
        # at max_tokens (1,500 tokens, 4 minutes), losing the request's other 3 answers too
        entity = json_object({"text": {"type": "string"}, "label": label_enum(labels)})
        return {"entities": {"type": "array", "items": entity, "maxItems": MAX_ENTITIES_PER_TEXT}}

    def parse_answer(
        self, text: str, item: Dict[str, Any], labels: Sequence[str], rejected: Counter
    ) -> Optional[Sample]:
        """Entities given as strings are aligned to the text; one that can't be found rejects the
        whole sample (a partial annotation would teach that the missing one is no entity), and so
        does a list as long as the schema's cap (MAX_ENTITIES_PER_TEXT)."""
        ents = item.get("entities")
        if ents is None:
            return Sample(text, annotation=None)
        if isinstance(ents, list) and len(ents) >= MAX_ENTITIES_PER_TEXT:
            rejected["too_many_entities"] += 1
            return None
        spans = align_entities(text, ents, labels)
        if spans is None:
            rejected["unalignable_entity"] += 1
            return None
        return Sample(text, annotation=spans)

    def answer_of(self, sample: Sample) -> Dict[str, Any]:
        return {"entities": [{"text": sample.text[a:b], "label": l} for a, b, l in sample.annotation or []]}

    # -- review files

    def review_task(self, doc, labels: Sequence[str]) -> Dict[str, Any]:
        """Prodigy's "ner_manual" view: the Doc's tokens (a reviewer's spans snap to them) and its
        entities as character spans with their token indices (token_end inclusive, as Prodigy's)."""
        return {
            "tokens": [
                {"text": t.text, "start": t.idx, "end": t.idx + len(t.text), "id": t.i, "ws": bool(t.whitespace_)}
                for t in doc
            ],
            "spans": [
                {
                    "start": e.start_char,
                    "end": e.end_char,
                    "token_start": e.start,
                    "token_end": e.end - 1,
                    "label": e.label_,
                }
                for e in doc.ents
            ],
        }

    def reviewed_sample(self, obj: Dict[str, Any], doc, labels: Sequence[str], where: str) -> Sample:
        """The reviewed "spans" (character offsets; token indices, which a text editor user would
        have to keep in step, are ignored): each on token boundaries of ``doc``, none overlapping."""
        spans = obj.get("spans")
        if not isinstance(spans, list):
            raise DataError(f'{where}: no "spans" list (an empty list means: no entities)')
        text = doc.text
        out: List[CharSpan] = []
        taken: List[Tuple[int, int, int]] = []  # (token start, token end, span index)
        for k, span in enumerate(spans):
            if not isinstance(span, dict):
                raise DataError(f"{where}: span {k} is not an object with start, end, label")
            start, end, label = span.get("start"), span.get("end"), span.get("label")
            if (
                not (isinstance(start, int) and isinstance(end, int))
                or isinstance(start, bool)
                or isinstance(end, bool)
            ):
                raise DataError(f'{where}: span {k} needs integer "start" and "end" character offsets')
            if not isinstance(label, str) or label not in labels:
                raise DataError(f"{where}: span {k}: label {label!r} is not in the run's labels {list(labels)}")
            if not 0 <= start < end <= len(text):
                raise DataError(f"{where}: span {k} ({start}-{end}) is outside the text (0-{len(text)})")
            token_span = doc.char_span(start, end, alignment_mode="strict")
            if token_span is None:
                raise DataError(
                    f"{where}: span {k} {text[start:end]!r} ({label}) does not start and end on token boundaries"
                )
            for other_start, other_end, other in taken:
                if token_span.start < other_end and other_start < token_span.end:
                    raise DataError(f"{where}: span {k} {text[start:end]!r} ({label}) overlaps span {other}")
            taken.append((token_span.start, token_span.end, k))
            out.append((start, end, label))
        return Sample(text, annotation=sorted(out))

"""``DocMeta``: what a generated sample's Doc carries in ``doc.user_data["evokd"]``, typed.

Written by validation (intent, the teacher's confidence), the loop (round, teacher, source; active
picks' weight), `select` (weight, selection, batch) and `import-review` (sample_index, review,
teacher_annotation); read by the loop, the augmenter, the report and the review export. The
stored keys are the field names below, so DocBins written before this class existed read back
unchanged; keys this version doesn't know are kept in ``extra`` and written back as they were.

Kept free of package and spaCy imports: the augmenter and every writer import it.
"""

from dataclasses import dataclass, field, fields
from typing import Any, Dict, Optional

KEY = "evokd"  # the doc.user_data key
# written even when None: validation always stored them, and readers index them directly
_ALWAYS = ("intent", "confidence", "confidence_method")


@dataclass
class DocMeta:
    intent: Optional[str] = None  # the generation intent ("hard", "easy", "active", ...)
    confidence: Optional[float] = None  # the teacher's confidence in the annotation
    confidence_method: Optional[str] = None
    round: Optional[int] = None  # the round that accepted it (the loop)
    teacher: Optional[str] = None
    source: Optional[str] = None  # "generate" | "active": the source its tokens are booked to
    weight: Optional[float] = None  # training weight (LLKD, active picks); None reads as 1.0
    student_uncertainty: Optional[float] = None  # the student's need when it was picked
    selection: Optional[str] = None  # `select`'s mode ("llkd", ...)
    batch: Optional[int] = None  # `select`'s batch
    sample_index: Optional[int] = None  # its index in the round's DocBin as the loop wrote it (review ids)
    review: Optional[str] = None  # "corrected" once a review changed its annotation
    teacher_annotation: Any = None  # the teacher's annotation before a review corrected it
    extra: Dict[str, Any] = field(default_factory=dict)  # keys of a newer writer, kept as they are

    @classmethod
    def from_dict(cls, data: Optional[Dict[str, Any]]) -> "DocMeta":
        data = dict(data or {})
        known = {f.name for f in fields(cls)} - {"extra"}
        return cls(**{k: data.pop(k) for k in list(data) if k in known}, extra=data)

    def to_dict(self) -> Dict[str, Any]:
        out = dict(self.extra)
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name != "extra" and (value is not None or f.name in _ALWAYS):
                out[f.name] = value
        return out

    @classmethod
    def of(cls, doc) -> "DocMeta":
        """The doc's meta (all None for a doc without one, e.g. a seed doc)."""
        return cls.from_dict(doc.user_data.get(KEY))

    def store(self, doc) -> None:
        doc.user_data[KEY] = self.to_dict()  # plain JSON-friendly values: user_data is msgpack'd

    @property
    def training_weight(self) -> float:
        return 1.0 if self.weight is None else float(self.weight)


def update_meta(doc, **changes: Any) -> DocMeta:
    """Set ``changes`` on the doc's meta and store it; returns the new meta."""
    meta = DocMeta.of(doc)
    for key, value in changes.items():
        if not hasattr(meta, key) or key == "extra":
            raise AttributeError(f"DocMeta has no field {key!r}")
        setattr(meta, key, value)
    meta.store(doc)
    return meta

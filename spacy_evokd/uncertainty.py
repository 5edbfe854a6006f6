"""The student's information need per text (LLKD's student signal), in [0, 1].

textcat: normalised predictive entropy of ``doc.cats``: H(p) / log K.
ner:     entity marginals from a beam over the student's own ``ner`` component
         (``EntityRecognizer.beam_parse`` + ``scored_ents``, beam width 16): for every candidate
         (span, label) with marginal p, uncertainty 1 - |2p - 1| (1 at p = 0.5, 0 at p in {0, 1});
         the text's uncertainty is the largest. A greedy ner trained by the loop can be scored
         this way; no separate ``beam_ner`` model is needed.
"""
import math
from typing import Dict, List, Sequence

from spacy.language import Language


def entropy(probs: Sequence[float]) -> float:
    total = sum(probs)
    if total <= 0 or len(probs) < 2:
        return 0.0
    h = -sum((p / total) * math.log(p / total) for p in probs if p > 0)
    return h / math.log(len(probs))


def textcat_uncertainty(nlp: Language, texts: Sequence[str]) -> List[float]:
    return [entropy(list(doc.cats.values())) for doc in nlp.pipe(texts)]


def marginal_uncertainty(marginals: Dict) -> float:
    return max((1.0 - abs(2.0 * p - 1.0) for p in marginals.values()), default=0.0)


def ner_uncertainty(nlp: Language, texts: Sequence[str], beam_width: int = 16) -> List[float]:
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


def student_uncertainty(nlp: Language, texts: Sequence[str], task: str) -> List[float]:
    return textcat_uncertainty(nlp, texts) if task == "textcat" else ner_uncertainty(nlp, texts)

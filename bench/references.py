"""Reference baselines for the student benchmark: logistic regression (scikit-learn, the `bench`
extra) on TF-IDF features and on frozen all-MiniLM-L6-v2 sentence embeddings (mean pooling,
L2-normalised as sentence-transformers returns them: the SetFit family's simplest member).

They train on the same k-shot seeds and pool as the students and are scored by the task's own
scorer (spacy_evokd.tasks), so their cells sit in the students' table. Text classification only
(textcat: multinomial LR; textcat_multilabel: one LR per label, threshold 0.5).
"""

from typing import Dict, List, Sequence

import numpy

from spacy_evokd.ty import Judged, Sample

NAMES = {
    "tfidf-lr": "TF-IDF (words, sublinear tf) + logistic regression, C picked on dev",
    "minilm-lr": "frozen all-MiniLM-L6-v2 sentence embeddings (mean pooled, L2-normalised) + logistic regression, C picked on dev",
}
# the inverse regularisation strengths tried; the one with the best dev score is kept, as the
# students keep their best checkpoint on dev (emotion, 1,000 texts, TF-IDF: C=1 0.28, C=10 0.46)
C_GRID = (0.1, 1.0, 10.0, 100.0)
_EMBEDDINGS: Dict[str, numpy.ndarray] = {}  # text -> embedding: every seed and setting re-reads the same texts


def _embed(texts: Sequence[str]) -> numpy.ndarray:
    from spacy_evokd.pool_source import minilm_vectors

    todo = sorted({t for t in texts if t not in _EMBEDDINGS})
    if todo:
        for t, v in zip(todo, minilm_vectors(todo)):
            _EMBEDDINGS[t] = v / max(float(numpy.linalg.norm(v)), 1e-9)
    return numpy.vstack([_EMBEDDINGS[t] for t in texts])


def _features(name: str, train: Sequence[str], other: Sequence[Sequence[str]]):
    if name == "minilm-lr":
        return _embed(train), [_embed(o) for o in other]
    from sklearn.feature_extraction.text import TfidfVectorizer

    vec = TfidfVectorizer(sublinear_tf=True)
    return vec.fit_transform(train), [vec.transform(o) for o in other]


def _targets(task_name: str, samples: Sequence[Sample], labels: Sequence[str]):
    if task_name == "textcat_multilabel":
        return numpy.array([[l in (s.annotation or []) for l in labels] for s in samples], dtype=int)
    return numpy.array([s.annotation for s in samples])


def _predict(task_name: str, model, x, labels: Sequence[str]) -> List[Sample]:
    if task_name == "textcat_multilabel":
        return [Sample("", annotation=[l for l, on in zip(labels, row) if on]) for row in model.predict(x)]
    return [Sample("", annotation=str(y)) for y in model.predict(x)]


def _fit(task_name: str, x, y, c: float):
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier

    if task_name == "textcat_multilabel":
        # a label no training text has gets a constant "off" column (LR needs two classes)
        return OneVsRestClassifier(LogisticRegression(C=c, max_iter=2000)).fit(x, y)
    return LogisticRegression(C=c, max_iter=2000).fit(x, y)


def score(
    name: str, task_name: str, labels: Sequence[str], train: Sequence[Sample], evals: Dict[str, Sequence[Sample]]
) -> Dict[str, float]:
    """``name``'s main score on each of ``evals`` (split -> gold samples, "dev" among them) after
    fitting on ``train`` with the C of C_GRID that scores best on dev."""
    from spacy_evokd.tasks import get_task

    task = get_task(task_name)
    splits = list(evals)
    x, others = _features(name, [s.text for s in train], [[s.text for s in evals[k]] for k in splits])
    y = _targets(task_name, train, labels)
    if task_name != "textcat_multilabel" and len(set(y)) < 2:
        return {k: float("nan") for k in splits}
    best = {}
    for c in C_GRID:
        model = _fit(task_name, x, y, c)
        out = {}
        for k, xo in zip(splits, others):
            judged = [Judged(g, p) for g, p in zip(evals[k], _predict(task_name, model, xo, labels))]
            out[k] = task.score(judged, labels)["score"]
        if not best or out["dev"] > best["dev"]:
            best = out
    return best

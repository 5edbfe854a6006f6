"""Analysis-guided pool mode: fill a round's hard / easy slots with *unlabelled pool texts*
instead of texts the teacher writes (`[evokd] source = "pool"`, or `"both"`).

Why: a small teacher labels far better than it writes new samples (reference/real_teacher.md).
So the analysis step stays as in EvoKD (the teacher sees the student's wrong and correct samples),
but the inputs are chosen from real pool texts: "hard" = the pool texts nearest to the wrong
samples the analysis was shown, "easy" = nearest to the correct ones. The teacher then labels them
in the usual separate call, and they pass the same validation, cache, ledger and resume as
generated samples. Gold labels in the pool file are ignored: the pool is treated as unlabelled.

Nearness is cosine similarity of document vectors from one of two embedders:
  student  the mean of the student's own token vectors (``doc.tensor`` from its tok2vec):
           what the student itself finds alike, no extra model (the default);
  minilm   all-MiniLM-L6-v2 sentence embeddings (mean pooling) from the local copy or any HF
           name/path: better semantic neighbours, costs a transformer pass over the pool.
Choices are deterministic for a given pool, student and evidence, so a resumed round picks the
same texts (and the teacher's labels come from the cache).
"""

import functools
from typing import List, Optional, Sequence, Set, Tuple

import numpy

from .data import DataError, pool_texts
from .validation import normalise

EMBEDDERS = ("student", "minilm")
MINILM = "sentence-transformers/all-MiniLM-L6-v2"


def read_pool_texts(path: str) -> List[str]:
    """Texts of an unlabelled pool: JSONL ({"text"} or {"tokens"}) or a DocBin; any labels are
    dropped. Duplicate texts (normalised) are kept once."""
    seen, out = set(), []
    for t in pool_texts(path, docbin_ok=True):
        key = normalise(t)
        if key not in seen:
            seen.add(key)
            out.append(t)
    return out


def _unit_rows(matrix: numpy.ndarray) -> numpy.ndarray:
    norms = numpy.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / numpy.where(norms == 0, 1.0, norms)


def student_vectors(nlp, texts: Sequence[str]) -> numpy.ndarray:
    """Mean token vector per text from the student's tok2vec (``doc.tensor``)."""
    rows = []
    for doc in nlp.pipe(texts):
        tensor = doc.tensor
        if tensor is None or not getattr(tensor, "size", 0):
            raise DataError(
                'pool_embedder = "student" needs a student with a tok2vec component that sets '
                'doc.tensor (transformer students: use pool_embedder = "minilm")'
            )
        rows.append(numpy.asarray(tensor).mean(axis=0))
    return numpy.vstack(rows).astype("float32")


@functools.lru_cache(maxsize=2)
def _minilm(path: str):
    """Tokenizer and model, loaded once per process: active picks embed the covered texts every
    round (loading MiniLM each time cost seconds a round)."""
    from transformers import AutoModel, AutoTokenizer

    tokenizer, model = AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path)
    model.eval()
    return tokenizer, model


def minilm_vectors(texts: Sequence[str], name: str = MINILM, batch_size: int = 64) -> numpy.ndarray:
    """Sentence embeddings (mean pooling over the attention mask), as sentence-transformers does."""
    import torch

    from .student import resolve_transformer_name

    tokenizer, model = _minilm(resolve_transformer_name(name))
    out = []
    with torch.no_grad():
        for i in range(0, len(texts), batch_size):
            enc = tokenizer(
                list(texts[i : i + batch_size]), padding=True, truncation=True, max_length=128, return_tensors="pt"
            )
            hidden = model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).float()
            out.append(((hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)).numpy())
    return numpy.vstack(out).astype("float32")


class PoolSource:
    """Chooses pool texts near the evidence an analysis saw. ``use_student`` is called once per
    round with the student the round starts from (the "student" embedder needs it)."""

    def __init__(
        self, path: str, embedder: str = "student", blocked_texts: Sequence[str] = (), max_chars: Optional[int] = None
    ):
        if embedder not in EMBEDDERS:
            raise DataError(f"[evokd] pool_embedder {embedder!r}: expected one of {EMBEDDERS}")
        self.path = path
        self.embedder = embedder
        blocked = {normalise(t) for t in blocked_texts}  # dev/test texts never enter training
        texts = [t for t in read_pool_texts(path) if normalise(t) not in blocked]
        # over [evokd] max_chars: never offered (the validator would reject the labelled text,
        # and one over spaCy's nlp.max_length would stop the embedding with E088)
        self.texts = [t for t in texts if max_chars is None or len(t.strip()) <= max_chars]
        self.too_long = len(texts) - len(self.texts)
        self._nlp = None
        self._pool_vectors: Optional[numpy.ndarray] = None

    def use_student(self, nlp) -> None:
        if self.embedder == "student" or self._pool_vectors is None:
            self._nlp = nlp
            self._pool_vectors = _unit_rows(self._embed(self.texts))

    @property
    def vectors(self) -> Optional[numpy.ndarray]:
        """The pool texts' unit vectors (None before ``use_student``)."""
        return self._pool_vectors

    def embed(self, texts: Sequence[str]) -> numpy.ndarray:
        """Unit vectors of other texts, in the pool's embedding space."""
        return _unit_rows(self._embed(texts))

    def _embed(self, texts: Sequence[str]) -> numpy.ndarray:
        if self.embedder == "minilm":
            return minilm_vectors(texts)
        if self._nlp is None:
            raise RuntimeError("PoolSource.use_student() must be called before choosing")
        return student_vectors(self._nlp, texts)

    def choose(
        self, hard_near: Sequence[str], easy_near: Sequence[str], n_hard: int, n_easy: int, seen: Set[str]
    ) -> List[Tuple[str, str]]:
        """[(text, "hard" | "easy")]: for each slot, the unused pool text most similar to any of
        its evidence texts (max cosine). ``seen`` holds normalised texts already used (seed,
        earlier rounds, this round); chosen texts are added to it."""
        if self._pool_vectors is None:
            raise RuntimeError("PoolSource.use_student() must be called before choosing")
        chosen: List[Tuple[str, str]] = []
        for intent, evidence, n in (("hard", hard_near, n_hard), ("easy", easy_near, n_easy)):
            if n <= 0:
                continue
            if evidence:
                sims = (self._pool_vectors @ _unit_rows(self._embed(list(evidence))).T).max(axis=1)
            else:  # no evidence of this kind (e.g. nothing wrong yet): the pool in file order
                sims = numpy.zeros(len(self.texts), dtype="float32")
            # stable sort: ties keep file order, so the choice is reproducible
            for i in numpy.argsort(-sims, kind="stable"):
                if n == 0:
                    break
                key = normalise(self.texts[i])
                if key in seen:
                    continue
                seen.add(key)
                chosen.append((self.texts[i], intent))
                n -= 1
        return chosen

"""spacy_evokd.evolving_augmenter.v1: replay an EvoKD run's (or an LLKD selection's) samples
inside a plain `spacy train`.

    [corpora.train.augmenter]
    @augmenters = "spacy_evokd.evolving_augmenter.v1"
    rounds_dir = "training/textcat/rounds"

spaCy calls an augmenter once per training example and trains on everything it yields. This one
yields each example unchanged and, with the *first* example of every pass over the corpus, all
generated samples: round r's docs weighted ``recency_decay ** (last_round - r)`` times the
per-doc weight in ``doc.user_data["evokd"]["weight"]`` (LLKD writes one; default 1.0). A weight
w is realised as floor(w) copies plus one more with probability frac(w), drawn from a generator
reseeded every pass.

Why "first example of every pass": spaCy iterates the corpus several times while initialising
(each component's ``initialize`` reads it) and then once more for training; each pass must yield
the same examples. The augmenter only reads DocBins written beforehand; it never calls a teacher.
"""

import math
import random
from pathlib import Path
from typing import Iterator, List, Optional, Tuple

from spacy.language import Language
from spacy.tokens import Doc, DocBin
from spacy.training import Example

from .doc_meta import DocMeta
from .run_dir import committed_docbins
from .run_dir import round_number as _round_of


def round_number(path: Path) -> int:
    """round_003.spacy -> 3; any other *.spacy file counts as round 1 (e.g. an LLKD selection)."""
    n = _round_of(path.name, any_suffix=True)
    return 1 if n is None else n


def copies(weight: float, rng: random.Random) -> int:
    """How many times a doc of weight ``weight`` is trained on: floor(w), plus one more with
    probability frac(w) (the augmenter's and the loop's training realise weights the same way)."""
    return math.floor(weight) + (1 if rng.random() < weight - math.floor(weight) else 0)


def doc_weight(doc: Doc) -> float:
    """A sample's training weight (LLKD's confidence x need; 1.0 when none was written)."""
    return DocMeta.of(doc).training_weight


class EvolvingAugmenter:
    def __init__(
        self,
        rounds_dir: str,
        recency_decay: float = 1.0,
        max_round: Optional[int] = None,
        use_weights: bool = True,
        seed: int = 0,
    ):
        if not 0.0 < recency_decay <= 1.0:
            raise ValueError(f"recency_decay must be in (0, 1], got {recency_decay}")
        self.dir = Path(rounds_dir)
        if not self.dir.exists():
            raise ValueError(f"evolving_augmenter: rounds_dir {self.dir} does not exist")
        self.recency_decay = recency_decay
        self.max_round = max_round
        self.use_weights = use_weights
        self.seed = seed
        self._weighted: Optional[List[Tuple[Doc, float]]] = None
        self._first_text: Optional[str] = None

    def files(self) -> List[Path]:
        """Committed rounds' DocBins only (run_dir.committed_docbins: round 0 has none, a .spacy
        without its .json record is not committed); any other *.spacy (an LLKD selection) counts as round 1."""
        rounds = set(committed_docbins(self.dir).values())
        out = []
        for path in sorted(self.dir.glob("*.spacy")):
            n = round_number(path)
            if _round_of(path.name, any_suffix=True) is not None and path not in rounds:
                continue
            if self.max_round is not None and n > self.max_round:
                continue
            out.append(path)
        return out

    def weighted_docs(self, nlp: Language) -> List[Tuple[Doc, float]]:
        if self._weighted is None:
            files = self.files()
            last = max((round_number(p) for p in files), default=1)
            self._weighted = []
            for path in files:
                recency = self.recency_decay ** (last - round_number(path))
                for doc in DocBin().from_disk(path).get_docs(nlp.vocab):
                    self._weighted.append((doc, recency * (doc_weight(doc) if self.use_weights else 1.0)))
        return self._weighted

    def generated(self, nlp: Language) -> Iterator[Example]:
        rng = random.Random(self.seed)
        for doc, weight in self.weighted_docs(nlp):
            for _ in range(copies(weight, rng)):
                yield Example(nlp.make_doc(doc.text), doc)

    def __call__(self, nlp: Language, example: Example) -> Iterator[Example]:
        if self._first_text is None:
            self._first_text = example.reference.text
        if example.reference.text == self._first_text:
            yield from self.generated(nlp)
        yield example

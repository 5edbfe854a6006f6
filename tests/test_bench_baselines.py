"""The pool-sampling baselines of the targeting benchmark pick what they claim to pick, as many
as the EvoKD teacher would, and never a text already seen."""
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from baselines import EntropyPoolTeacher, RandomPoolTeacher  # noqa: E402

from spacy_evokd.teachers.base import Analysis  # noqa: E402

POOL = ROOT / "assets/demo/textcat/train.jsonl"
LABELS = ["account", "billing", "product_question", "shipping", "technical"]


def _texts(proposal):
    return [s.text for s in proposal.samples]


def test_random_baseline_draws_unseen_texts_reproducibly():
    draws = []
    for _ in range(2):
        t = RandomPoolTeacher(str(POOL), "textcat", LABELS, seed=3)
        seen = [s.text for s in t.pool[:20]]
        t.begin_round(1, seen)
        first, second = _texts(t.propose(Analysis("x"), 2, 3)), _texts(t.propose(Analysis("x"), 2, 3))
        assert len(first) == len(second) == 5
        assert not set(first + second) & set(seen) and len(set(first + second)) == 10
        draws.append(first + second)
    assert draws[0] == draws[1]  # same seed and round: same draws (resume gives the same run)
    assert "random-sampling baseline" in t.name and t.simulated


def test_entropy_baseline_takes_the_most_uncertain_unseen_texts():
    t = EntropyPoolTeacher(str(POOL), "textcat", LABELS, seed=0)
    texts = [s.text for s in t.pool]
    t.begin_round(1, texts[:1])
    # a hand-built uncertainty table instead of a student: the 6 highest are texts 0..5
    t._uncertainty = {text: 1.0 - i / len(texts) for i, text in enumerate(texts)}
    picked = _texts(t.propose(Analysis("x"), 2, 2)) + _texts(t.propose(Analysis("x"), 1, 1))
    assert picked == texts[1:7]  # text 0 was seen; labels come from the pool's gold
    assert all(s.label for s in t.label(picked).samples)
    assert "entropy-sampling baseline" in t.name

"""spacy_evokd.evolving_augmenter.v1: unit behaviour and inside a real `spacy train`."""

import subprocess
import sys
from pathlib import Path

import pytest
import spacy
from spacy.training import Example

from spacy_evokd.augment import EvolvingAugmenter
from spacy_evokd.data import write_docbin

ROOT = Path(__file__).parent.parent
LABELS = ["account", "billing", "shipping"]


def doc(nlp, text, label, weight=None):
    d = nlp.make_doc(text)
    d.cats = {l: float(l == label) for l in LABELS}
    if weight is not None:
        d.user_data["evokd"] = {"weight": weight}
    return d


@pytest.fixture
def rounds(tmp_path):
    nlp = spacy.blank("en")
    out = tmp_path / "rounds"
    write_docbin(
        [doc(nlp, "old round text one", "shipping"), doc(nlp, "old round text two", "shipping")],
        out / "round_001.spacy",
    )
    write_docbin(
        [doc(nlp, "new round heavy", "shipping", weight=2.0), doc(nlp, "new round light", "shipping", 0.0)],
        out / "round_002.spacy",
    )
    write_docbin([doc(nlp, "uncommitted round", "shipping")], out / "round_003.spacy")  # no round_003.json
    for n in (1, 2):
        (out / f"round_{n:03d}.json").write_text("{}")
    return out


def passes(aug, nlp, seed_texts, n):
    """What spaCy sees over n passes of a corpus of seed_texts."""
    out = []
    for _ in range(n):
        seen = []
        for t in seed_texts:
            seen += [e.reference.text for e in aug(nlp, Example(nlp.make_doc(t), doc(nlp, t, "billing")))]
        out.append(seen)
    return out


def test_yields_committed_rounds_once_per_pass_with_weights(rounds):
    nlp = spacy.blank("en")
    aug = EvolvingAugmenter(str(rounds))
    first, second = passes(aug, nlp, ["seed a", "seed b"], 2)
    assert first == second  # every pass the same (spaCy reads the corpus several times at init)
    assert sorted(first) == sorted(
        ["old round text one", "old round text two", "new round heavy", "new round heavy", "seed a", "seed b"]
    )
    assert "uncommitted round" not in first and "new round light" not in first


def test_recency_decay_and_max_round(rounds):
    nlp = spacy.blank("en")
    (first,) = passes(EvolvingAugmenter(str(rounds), recency_decay=0.5, seed=3), nlp, ["s"], 1)
    # round 1 weighs 0.5 (so each doc appears 0 or 1 times), round 2's heavy doc 2.0
    assert first.count("new round heavy") == 2 and first.count("old round text one") <= 1
    (capped,) = passes(EvolvingAugmenter(str(rounds), max_round=1), nlp, ["s"], 1)
    assert sorted(capped) == ["old round text one", "old round text two", "s"]
    (flat,) = passes(EvolvingAugmenter(str(rounds), use_weights=False), nlp, ["s"], 1)
    assert flat.count("new round heavy") == 1 and flat.count("new round light") == 1


def test_missing_dir_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="rounds_dir .*nope does not exist"):
        EvolvingAugmenter(str(tmp_path / "nope"))


def test_spacy_train_with_the_augmenter(rounds, tmp_path):
    """The exact command a user types: `spacy train` on a stock config with the augmenter block.
    The seed has only 'billing' and 'account'; 'shipping' exists only in the rounds, so the
    trained model knows it only if the augmenter fed the rounds to training."""
    nlp = spacy.blank("en")
    seed = [doc(nlp, "I was charged twice", "billing"), doc(nlp, "reset my password please", "account")]
    write_docbin(seed, tmp_path / "seed.spacy")
    cfg = tmp_path / "config.cfg"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "spacy",
            "init",
            "config",
            str(cfg),
            "--lang",
            "en",
            "--pipeline",
            "textcat",
            "--optimize",
            "efficiency",
            "--force",
        ],
        check=True,
        capture_output=True,
    )
    text = cfg.read_text()
    head, train = text.split("[corpora.train]")  # the stock config says `augmenter = null` there
    text = head + "[corpora.train]" + train.replace("augmenter = null\n", "", 1)
    text += (
        '\n[corpora.train.augmenter]\n@augmenters = "spacy_evokd.evolving_augmenter.v1"\nrounds_dir = ${paths.rounds}\n'
    )
    text = text.replace("[paths]", "[paths]\nrounds = null")
    cfg.write_text(text)
    cmd = [
        sys.executable,
        "-m",
        "spacy",
        "train",
        str(cfg),
        "--output",
        str(tmp_path / "out"),
        "--paths.train",
        str(tmp_path / "seed.spacy"),
        "--paths.dev",
        str(tmp_path / "seed.spacy"),
        "--paths.rounds",
        str(rounds),
        "--training.max_steps",
        "10",
        "--training.eval_frequency",
        "5",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    labels = spacy.load(tmp_path / "out/model-last").get_pipe("textcat").labels
    assert set(labels) == {"account", "billing", "shipping"}

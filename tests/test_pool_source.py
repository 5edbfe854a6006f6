"""Analysis-guided pool mode: which pool texts fill the hard / easy slots."""

import json

import pytest
import spacy

from spacy_evokd.data import DataError
from spacy_evokd.pool_source import PoolSource, read_pool_texts

POOL = [
    {"text": "My parcel never arrived and the tracking page is stuck", "label": "shipping"},
    {"text": "I was charged twice for one order, please refund me", "label": "billing"},
    {"text": "The app crashes when I open the settings screen", "label": "technical"},
    {"text": "Does this laptop come with a two year warranty?", "label": "product_question"},
    {"text": "My parcel never arrived and the tracking page is stuck!", "label": "shipping"},  # duplicate
    {"text": "Please refund the double charge on my card", "label": "billing"},
]


def _student():
    """A real spaCy tok2vec (untrained: hash embeddings still make shared words alike)."""
    spacy.util.fix_random_seed(0)
    nlp = spacy.blank("en")
    nlp.add_pipe("tok2vec")
    nlp.initialize()
    return nlp


@pytest.fixture
def pool(tmp_path):
    path = tmp_path / "pool.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in POOL) + "\n", encoding="utf8")
    return path


def test_pool_texts_drop_labels_and_duplicates(pool):
    texts = read_pool_texts(str(pool))
    assert len(texts) == 5 and all(isinstance(t, str) for t in texts)


def test_hard_near_wrong_easy_near_correct_and_never_reused(pool):
    src = PoolSource(str(pool), "student", blocked_texts=["The app crashes when I open the settings screen"])
    assert len(src.texts) == 4  # the dev/test text is never offered
    src.use_student(_student())
    seen = set()
    picks = src.choose(["where is my parcel, tracking is stuck"], ["refund the charge on my card please"], 1, 1, seen)
    assert picks[0] == ("My parcel never arrived and the tracking page is stuck", "hard")
    assert picks[1][1] == "easy" and "refund" in picks[1][0].lower()
    again = src.choose(["where is my parcel, tracking is stuck"], [], 1, 0, seen)
    assert again and again[0][0] not in {p[0] for p in picks}  # a used text is never chosen twice
    assert src.choose(["x y"], ["x y"], 5, 5, seen) and len(seen) == 4  # the pool runs dry, no error


def test_choice_is_deterministic(pool):
    """Same pool, student and evidence: same texts (a resumed round asks the teacher the same)."""
    student = _student()
    a, b = PoolSource(str(pool)), PoolSource(str(pool))
    a.use_student(student)
    b.use_student(student)
    ev = (["the app does not start"], ["warranty of the laptop"], 2, 2)
    assert a.choose(*ev, set()) == b.choose(*ev, set())


def test_bad_pool_is_one_line(tmp_path):
    bad = tmp_path / "pool.jsonl"
    bad.write_text('{"text": "ok text here"}\n{"label": "x"}\n', encoding="utf8")
    with pytest.raises(DataError, match=r"pool.jsonl:2"):
        read_pool_texts(str(bad))
    with pytest.raises(DataError, match="pool_embedder"):
        PoolSource(str(bad), "bert")


def test_pool_texts_over_max_chars_are_never_offered_and_counted(tmp_path):
    path = tmp_path / "pool.jsonl"
    long_text = "My parcel is late again. " * 84_000  # 2.1 M characters: past spaCy's nlp.max_length
    path.write_text(
        "\n".join(json.dumps(r) for r in POOL + [{"text": long_text}, {"text": "y" * 1001}]) + "\n", encoding="utf8"
    )
    source = PoolSource(str(path), max_chars=1000)
    assert source.too_long == 2 and long_text not in source.texts and len(source.texts) == 5
    source.use_student(_student())  # embeds the pool: no E088
    assert len(source.choose(["the app crashes"], [], 5, 0, set())) == 5
    assert PoolSource(str(path)).too_long == 0  # no limit given: nothing skipped


def test_one_pool_reader_for_select_and_pool_mode(tmp_path):
    """data.pool_texts reads the pool for both: pool mode takes a DocBin too, select (whose
    batches stream JSONL) refuses one, and both name a missing file when called, before any
    batch is taken (select checks its inputs before OUTPUT_DIR is created)."""
    from spacy_evokd.data import write_docbin
    from spacy_evokd.selection import stream_texts

    nlp = spacy.blank("en")
    docbin = tmp_path / "pool.spacy"
    write_docbin([nlp("first text"), nlp("  "), nlp("second text"), nlp("first text")], docbin)
    assert read_pool_texts(str(docbin)) == ["first text", "second text"]  # blank and duplicate dropped
    with pytest.raises(DataError, match=r'pool.spacy: a DocBin; the pool is JSONL with a "text"'):
        stream_texts(docbin, 8)
    with pytest.raises(DataError, match=r"nope.jsonl: file not found \(the unlabelled pool, JSONL or a DocBin\)"):
        read_pool_texts(str(tmp_path / "nope.jsonl"))
    with pytest.raises(DataError, match=r"nope.jsonl: file not found \(the unlabelled pool, JSONL\)"):
        stream_texts(tmp_path / "nope.jsonl", 8)

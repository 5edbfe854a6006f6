"""JSONL -> Samples/DocBins, k-shot seeds, and the errors users see for bad files."""
import json

import pytest
import spacy

from spacy_evokd.data import DataError, jsonl_to_docs, kshot, load_samples, read_docbin, write_docbin


def write(path, lines):
    path.write_text("\n".join(l if isinstance(l, str) else json.dumps(l) for l in lines) + "\n")
    return path


def test_textcat_jsonl_to_onehot_docs(tmp_path):
    p = write(tmp_path / "d.jsonl", [{"text": "refund please", "label": "billing"}, "", {"text": "no wifi", "label": "technical"}])
    docs = jsonl_to_docs(p, "textcat", spacy.blank("en"))
    assert [d.cats for d in docs] == [{"billing": 1.0, "technical": 0.0}, {"billing": 0.0, "technical": 1.0}]


def test_ner_tokens_tags_to_char_spans(tmp_path):
    rec = {"tokens": ["Tim", "Cook", "visited", "Apple", "'s", "Paris", "store"], "tags": ["B-PER", "I-PER", "O", "B-ORG", "O", "B-LOC", "O"]}
    p = write(tmp_path / "n.jsonl", [rec])
    (s,) = load_samples(p, "ner")
    assert [(s.text[a:b], l) for a, b, l in s.entities] == [("Tim Cook", "PER"), ("Apple", "ORG"), ("Paris", "LOC")]
    (doc,) = jsonl_to_docs(p, "ner", spacy.blank("en"))
    assert [(e.text, e.label_) for e in doc.ents] == [("Tim Cook", "PER"), ("Apple", "ORG"), ("Paris", "LOC")]
    assert [t.text for t in doc] == rec["tokens"]  # the file's tokenisation is kept


@pytest.mark.parametrize(
    "line,message",
    [
        ('{"text": "hi"', "d.jsonl:2: invalid JSON"),
        ('["a list"]', "d.jsonl:2: expected a JSON object"),
        ('{"text": "", "label": "billing"}', "d.jsonl:2: missing or empty \"text\""),
        ('{"text": "hi"}', "d.jsonl:2: missing \"label\""),
        ('{"text": "hi", "label": "spam"}', "d.jsonl:2: label 'spam' is not in the label set"),
    ],
)
def test_bad_textcat_lines_name_file_and_line(tmp_path, line, message):
    p = write(tmp_path / "d.jsonl", [{"text": "ok", "label": "billing"}, line])
    with pytest.raises(DataError, match=message.replace("(", r"\(")):
        load_samples(p, "textcat", labels=["billing"])


@pytest.mark.parametrize(
    "rec,message",
    [
        ({"tokens": ["a", "b"], "tags": ["O"]}, "2 tokens but 1 tags"),
        ({"tokens": ["a", "b"], "tags": ["O", "I-PER"]}, "'I-PER' at token 1 follows 'O'"),
        ({"tokens": ["a"], "tags": ["PER"]}, "not IOB2"),
        ({"tokens": ["a"], "tags": ["B-GPE"]}, "entity label 'GPE' is not in the label set"),
    ],
)
def test_bad_ner_records(tmp_path, rec, message):
    p = write(tmp_path / "n.jsonl", [rec])
    with pytest.raises(DataError, match=f"n.jsonl:1: .*{message}"):
        load_samples(p, "ner", labels=["PER"])


def test_missing_file_and_broken_docbin(tmp_path):
    with pytest.raises(DataError, match="nope.jsonl: file not found"):
        load_samples(tmp_path / "nope.jsonl", "textcat")
    bad = tmp_path / "bad.spacy"
    bad.write_bytes(b"not a docbin")
    with pytest.raises(DataError, match="bad.spacy: not a readable DocBin"):
        read_docbin(bad)


def test_docbin_roundtrip_keeps_user_data(tmp_path):
    nlp = spacy.blank("en")
    doc = nlp("hello")
    doc.cats = {"a": 1.0}
    doc.user_data["evokd"] = {"round": 3, "intent": "hard"}
    write_docbin([doc], tmp_path / "x.spacy")
    (back,) = read_docbin(tmp_path / "x.spacy", nlp.vocab)
    assert back.user_data["evokd"] == {"round": 3, "intent": "hard"}
    assert not (tmp_path / "x.spacy.tmp").exists()


def test_kshot_per_label_and_seeded(tmp_path):
    lines = [{"text": f"text {i}", "label": "ab"[i % 2]} for i in range(20)]
    samples = load_samples(write(tmp_path / "d.jsonl", lines), "textcat")
    a = kshot(samples, "textcat", ["a", "b"], 3, seed=1)
    assert len(a) == 6 and sorted(samples[i].label for i in a) == ["a"] * 3 + ["b"] * 3
    assert a == kshot(samples, "textcat", ["a", "b"], 3, seed=1)
    assert a != kshot(samples, "textcat", ["a", "b"], 3, seed=2)
    with pytest.raises(DataError, match="label 'c' has 0 samples, fewer than k=1"):
        kshot(samples, "textcat", ["a", "b", "c"], 1, seed=0)


def test_kshot_ner_covers_every_entity_type(tmp_path):
    lines = [
        {"tokens": ["Ann", "in", "Rome"], "tags": ["B-PER", "O", "B-LOC"]},
        {"tokens": ["IBM", "grew"], "tags": ["B-ORG", "O"]},
        {"tokens": ["Bob", "left"], "tags": ["B-PER", "O"]},
        {"tokens": ["nothing", "here"], "tags": ["O", "O"]},
    ]
    samples = load_samples(write(tmp_path / "n.jsonl", lines), "ner")
    chosen = kshot(samples, "ner", ["LOC", "ORG", "PER"], 1, seed=0)
    covered = {e[2] for i in chosen for e in samples[i].entities}
    assert covered == {"LOC", "ORG", "PER"} and 3 not in chosen

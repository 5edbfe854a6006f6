"""JSONL -> Samples/DocBins, k-shot seeds, and the errors users see for bad files."""

import json

import pytest
import spacy

from spacy_evokd.data import DataError, jsonl_to_docs, kshot, load_samples, read_docbin, write_docbin
from spacy_evokd.tasks import get_task


def write(path, lines):
    path.write_text("\n".join(l if isinstance(l, str) else json.dumps(l) for l in lines) + "\n")
    return path


def test_textcat_jsonl_to_onehot_docs(tmp_path):
    p = write(
        tmp_path / "d.jsonl",
        [{"text": "refund please", "label": "billing"}, "", {"text": "no wifi", "label": "technical"}],
    )
    docs = jsonl_to_docs(p, get_task("textcat"), spacy.blank("en"))
    assert [d.cats for d in docs] == [{"billing": 1.0, "technical": 0.0}, {"billing": 0.0, "technical": 1.0}]


def test_ner_tokens_tags_to_char_spans(tmp_path):
    rec = {
        "tokens": ["Tim", "Cook", "visited", "Apple", "'s", "Paris", "store"],
        "tags": ["B-PER", "I-PER", "O", "B-ORG", "O", "B-LOC", "O"],
    }
    p = write(tmp_path / "n.jsonl", [rec])
    (s,) = load_samples(p, get_task("ner"))
    assert [(s.text[a:b], l) for a, b, l in s.annotation] == [("Tim Cook", "PER"), ("Apple", "ORG"), ("Paris", "LOC")]
    (doc,) = jsonl_to_docs(p, get_task("ner"), spacy.blank("en"))
    assert [(e.text, e.label_) for e in doc.ents] == [("Tim Cook", "PER"), ("Apple", "ORG"), ("Paris", "LOC")]
    assert [t.text for t in doc] == rec["tokens"]  # the file's tokenisation is kept


@pytest.mark.parametrize(
    "line,message",
    [
        ('{"text": "hi"', "d.jsonl:2: invalid JSON"),
        ('["a list"]', "d.jsonl:2: expected a JSON object"),
        ('{"text": "", "label": "billing"}', 'd.jsonl:2: missing or empty "text"'),
        ('{"text": "hi"}', 'd.jsonl:2: missing "label"'),
        ('{"text": "hi", "label": "spam"}', "d.jsonl:2: label 'spam' is not in the label set"),
    ],
)
def test_bad_textcat_lines_name_file_and_line(tmp_path, line, message):
    p = write(tmp_path / "d.jsonl", [{"text": "ok", "label": "billing"}, line])
    with pytest.raises(DataError, match=message.replace("(", r"\(")):
        load_samples(p, get_task("textcat"), labels=["billing"])


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
        load_samples(p, get_task("ner"), labels=["PER"])


def test_missing_file_and_broken_docbin(tmp_path):
    with pytest.raises(DataError, match="nope.jsonl: file not found"):
        load_samples(tmp_path / "nope.jsonl", get_task("textcat"))
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
    samples = load_samples(write(tmp_path / "d.jsonl", lines), get_task("textcat"))
    a = kshot(samples, get_task("textcat"), ["a", "b"], 3, seed=1)
    assert len(a) == 6 and sorted(samples[i].annotation for i in a) == ["a"] * 3 + ["b"] * 3
    assert a == kshot(samples, get_task("textcat"), ["a", "b"], 3, seed=1)
    assert a != kshot(samples, get_task("textcat"), ["a", "b"], 3, seed=2)
    with pytest.raises(DataError, match="label 'c' has 0 samples, fewer than k=1"):
        kshot(samples, get_task("textcat"), ["a", "b", "c"], 1, seed=0)


def test_kshot_ner_covers_every_entity_type(tmp_path):
    lines = [
        {"tokens": ["Ann", "in", "Rome"], "tags": ["B-PER", "O", "B-LOC"]},
        {"tokens": ["IBM", "grew"], "tags": ["B-ORG", "O"]},
        {"tokens": ["Bob", "left"], "tags": ["B-PER", "O"]},
        {"tokens": ["nothing", "here"], "tags": ["O", "O"]},
    ]
    samples = load_samples(write(tmp_path / "n.jsonl", lines), get_task("ner"))
    chosen = kshot(samples, get_task("ner"), ["LOC", "ORG", "PER"], 1, seed=0)
    covered = {e[2] for i in chosen for e in samples[i].annotation}
    assert covered == {"LOC", "ORG", "PER"} and 3 not in chosen


def test_non_utf8_byte_names_file_and_line(tmp_path):
    p = tmp_path / "d.jsonl"
    p.write_bytes(b'{"text": "fine", "label": "a"}\n{"text": "caf\xe9", "label": "a"}\n')
    with pytest.raises(DataError, match=r"d.jsonl:2: not UTF-8 \(byte 0xe9 at column 14\)"):
        load_samples(p, get_task("textcat"))


def test_utf8_bom_is_accepted(tmp_path):
    p = tmp_path / "d.jsonl"
    p.write_bytes(b'\xef\xbb\xbf{"text": "fine", "label": "a"}\n{"text": "more", "label": "b"}\n')
    docs = jsonl_to_docs(p, get_task("textcat"), spacy.blank("en"))
    assert [d.text for d in docs] == ["fine", "more"]


def test_text_over_spacys_length_limit_names_line_and_limit(tmp_path):
    nlp = spacy.blank("en")
    nlp.max_length = 1000
    p = write(tmp_path / "d.jsonl", [{"text": "ok", "label": "a"}, {"text": "x" * 1001, "label": "a"}])
    with pytest.raises(DataError, match="d.jsonl:2: text of 1,001 characters is longer than the limit of 1,000"):
        jsonl_to_docs(p, get_task("textcat"), nlp)
    ner = write(tmp_path / "n.jsonl", [{"tokens": ["y" * 600, "z" * 600], "tags": ["O", "O"]}])
    with pytest.raises(DataError, match="n.jsonl:1: text of 1,201 characters"):
        jsonl_to_docs(ner, get_task("ner"), nlp)


def test_unknown_task_and_empty_file(tmp_path):
    with pytest.raises(DataError, match="unknown task 'textcats': expected one of textcat, ner, textcat_multilabel"):
        get_task("textcats")
    empty = tmp_path / "e.jsonl"
    empty.write_text("\n  \n")
    with pytest.raises(DataError, match="e.jsonl: no records"):
        jsonl_to_docs(empty, get_task("textcat"), spacy.blank("en"))
    with pytest.raises(DataError, match="e.jsonl: no examples"):
        load_samples(empty, get_task("textcat"))


def test_jsonl_read_as_docbin_suggests_convert(tmp_path):
    p = write(tmp_path / "seed.spacy", [{"text": "ok", "label": "a"}])  # JSONL under a DocBin name
    with pytest.raises(
        DataError, match=r"seed.spacy: JSONL, not a DocBin: convert it first with `python -m spacy_evokd convert"
    ):
        read_docbin(p)


DEEP = "[" * 200_000 + "]" * 200_000  # nested past Python's recursion limit: json raises RecursionError


def test_deeply_nested_json_line_is_one_line_in_every_jsonl_reader(tmp_path):
    """Every JSONL reader (labelled data, both pool readers, import-review's file, a run's
    removed.jsonl) names file and line for a line nested too deep to parse, not a traceback."""
    from spacy_evokd.pool_source import read_pool_texts
    from spacy_evokd.review import removed_texts
    from spacy_evokd.run_files import RunDirError, read_json
    from spacy_evokd.selection import stream_texts

    bad = write(tmp_path / "deep.jsonl", [{"text": "fine text", "label": "a"}, DEEP])
    for read in (
        lambda: load_samples(bad, get_task("textcat")),
        lambda: read_pool_texts(str(bad)),
        lambda: list(stream_texts(bad, 8)),
    ):
        with pytest.raises(DataError, match=r"deep.jsonl:2: invalid JSON \(nested too deeply\)") as e:
            read()
        assert "\n" not in str(e.value)
    run = tmp_path / "run"
    (run / "review").mkdir(parents=True)
    (run / "review/removed.jsonl").write_text(json.dumps({"text": "gone"}) + "\n" + DEEP + "\n", encoding="utf8")
    with pytest.raises(RunDirError, match=r"removed.jsonl:2: damaged line"):
        removed_texts(run)
    (tmp_path / "deep.json").write_text(DEEP, encoding="utf8")
    with pytest.raises(RunDirError, match=r"deep.json: damaged file \(invalid JSON: nested too deeply"):
        read_json(tmp_path / "deep.json")


def test_deeply_nested_teacher_answer_is_no_json_not_a_crash():
    from spacy_evokd.parsing import extract_json

    assert extract_json(DEEP[:20_000]) is None
    assert extract_json('prose, then {"a": 1}') == {"a": 1}

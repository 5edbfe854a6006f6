"""The simulated teacher: aims hard samples at weak labels, labels from the pool, says it is simulated."""

import json
import logging

import pytest

from spacy_evokd.tasks import get_task
from spacy_evokd.teachers.simulated import SimulatedTeacher
from spacy_evokd.ty import RoundContext, Teacher, WeaknessReport


@pytest.fixture
def pool(tmp_path):
    p = tmp_path / "pool.jsonl"
    lines = [{"text": f"{lab} text number {i}", "label": lab} for lab in ("a", "b", "c") for i in range(40)]
    p.write_text("\n".join(json.dumps(l) for l in lines))
    return p


def report(f):
    return WeaknessReport("textcat", ["a", "b", "c"], {l: {"f": v} for l, v in f.items()}, {}, [], [])


def test_hard_samples_come_from_weak_labels(pool):
    t = SimulatedTeacher(str(pool), get_task("textcat"), ["a", "b", "c"], seed=0)
    assert isinstance(t, Teacher) and t.simulated and "simulated" in t.name
    analysis = t.analyse(report({"a": 0.1, "b": 0.9, "c": 0.95}), [])
    assert "simulated" in analysis.text and "No LLM" in analysis.text
    prop = t.propose(analysis, n_hard=30, n_easy=30)
    hard = [s.text.split()[0] for s in prop.samples if s.intent == "hard"]
    easy = [s.text.split()[0] for s in prop.samples if s.intent == "easy"]
    assert hard.count("a") > 15 and easy.count("a") < 10
    assert all(s.annotation is None for s in prop.samples)  # labels only come from label()
    assert len({s.text for s in prop.samples}) == 60  # no repeats


def test_label_uses_pool_gold_and_noise(pool):
    t = SimulatedTeacher(str(pool), get_task("textcat"), ["a", "b", "c"], seed=0)
    out = t.label(["a text number 1", "never seen"])
    assert [s.annotation for s in out.samples] == ["a"] and out.rejected == {"unknown_text": 1}
    noisy = SimulatedTeacher(str(pool), get_task("textcat"), ["a", "b", "c"], label_noise=1.0, seed=0)
    assert all(s.annotation != "b" for s in noisy.label([f"b text number {i}" for i in range(10)]).samples)


def test_rounds_are_reproducible_after_restart(pool):
    def draw(t):
        t.begin_round(RoundContext(round=2, seen_texts=["a text number 0"]))
        return [s.text for s in t.propose(t.analyse(report({"a": 0.5, "b": 0.5, "c": 0.5}), []), 3, 3).samples]

    first = draw(SimulatedTeacher(str(pool), get_task("textcat"), ["a", "b", "c"], seed=7))
    assert first == draw(SimulatedTeacher(str(pool), get_task("textcat"), ["a", "b", "c"], seed=7))
    assert "a text number 0" not in first


def test_log_lines_say_simulated(pool, caplog):
    t = SimulatedTeacher(str(pool), get_task("textcat"), ["a", "b", "c"])
    with caplog.at_level(logging.INFO, logger="spacy_evokd.teacher"):
        t.label(t.propose(t.analyse(report({}), []), 1, 1).samples and ["a text number 3"])
    assert caplog.records and all("[simulated teacher]" in r.getMessage() for r in caplog.records)


def test_near_wrong_hard_samples_are_the_pool_texts_nearest_to_the_wrong_ones(tmp_path):
    """hard_from = "near_wrong": hard = nearest to the student's wrong samples (its own vectors),
    not just any sample of a weak label; without a student it falls back to the weak labels."""
    import spacy

    from spacy_evokd.ty import Judged, Sample

    wrong = "my parcel from the Berlin warehouse never arrived"
    near = "the parcel from the Berlin warehouse never arrived at all"
    rows = [{"text": wrong, "label": "a"}, {"text": near, "label": "a"}]
    rows += [
        {"text": f"{w} question number {i} about something else", "label": lab}
        for i, (w, lab) in enumerate([("billing", "b"), ("refund", "a"), ("login", "c")] * 8)
    ]
    pool = tmp_path / "pool.jsonl"
    pool.write_text("\n".join(json.dumps(r) for r in rows))
    nlp = spacy.blank("en")
    nlp.add_pipe("tok2vec")
    textcat = nlp.add_pipe("textcat")
    for label in "abc":
        textcat.add_label(label)
    nlp.initialize()
    nlp.to_disk(tmp_path / "student")
    rep = WeaknessReport(
        "textcat",
        ["a", "b", "c"],
        {l: {"f": 0.5} for l in "abc"},
        {},
        [],
        [Judged(Sample(wrong, annotation="a"), Sample(wrong, annotation="b"))],
    )
    t = SimulatedTeacher(str(pool), get_task("textcat"), ["a", "b", "c"], seed=0, hard_from="near_wrong")
    assert "nearest to the student's wrong samples" in t.name and t.simulated
    t.begin_round(RoundContext(round=1, seen_texts=[wrong], student=tmp_path / "student"))
    hard = [s for s in t.propose(t.analyse(rep, []), n_hard=1, n_easy=2).samples if s.intent == "hard"]
    assert [s.text for s in hard] == [near]
    t.begin_round(RoundContext(round=1, seen_texts=[wrong]))  # no student: drawn by label, still a hard sample
    assert len([s for s in t.propose(t.analyse(rep, []), n_hard=3, n_easy=0).samples if s.intent == "hard"]) == 3
    with pytest.raises(ValueError, match="hard_from must be one of weak_labels, near_wrong"):
        SimulatedTeacher(str(pool), get_task("textcat"), ["a", "b", "c"], hard_from="nearest")

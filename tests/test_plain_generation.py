"""[evokd] analysis = "none" (issue 21): plain generation, the rival that beat the loop on
demo_textcat (bench/real_teacher.md). No analysis call and no brief: each generation request
asks for n_hard + n_easy texts of one label, the labels in turn in an order drawn per round;
with separate_labelling = false the label written with a text is its label, else the labelling
call decides and a text it labels off its target is dropped (off_target).

Two rounds each (30 training steps): the simulated teacher (pool samples of the label) and the
LLM teacher against the local test server (the real prompt, transport and parser).
"""

import json
from collections import Counter

import pytest
import spacy

from spacy_evokd.cache import UsageLedger
from spacy_evokd.config import ConfigError, load_config, validate_settings
from spacy_evokd.data import read_docbin
from spacy_evokd.loop import evolve
from spacy_evokd.report import write_report
from spacy_evokd.tasks import get_task

from .conftest import server_teacher
from .test_loop import ROOT, overrides

CFG = ROOT / "configs/textcat_bow.cfg"
PLAIN = {"evokd.analysis": "none", "evokd.analyses_per_round": 5}  # 5 requests of 4: one per label


def _docs(run, n):
    return read_docbin(run / f"rounds/round_{n:03d}.spacy", spacy.blank("en").vocab)


def _record(run, n):
    return json.loads((run / f"rounds/round_{n:03d}.json").read_text())


def _steps(run):
    return Counter(r["step"] for r in UsageLedger(run / "cache.sqlite").rows() if r["round"] >= 1)


def _label(doc):
    return max(doc.cats, key=doc.cats.get)


def test_simulated_plain_generation_writes_every_label_in_turn(corpus, tmp_path):
    labels = load_config(CFG, {})["evokd"]["labels"]
    ov = overrides(corpus, "textcat", **PLAIN, **{"evokd.rounds": 1, "evokd.separate_labelling": False})
    evolve(CFG, tmp_path / "run", ov, echo=lambda _: None)
    for n in (1,):
        rec, docs = _record(tmp_path / "run", n), _docs(tmp_path / "run", n)
        assert rec["analyses"] == [] and rec["accepted"] == len(docs) == 20
        assert {d.user_data["evokd"]["intent"] for d in docs} == {"plain"}
        # one request per label: four texts of each, labelled as asked (no label noise)
        assert Counter(_label(d) for d in docs) == {label: 4 for label in labels}
    assert set(_steps(tmp_path / "run")) == {"generate"}  # no analysis, no labelling call
    report = write_report(tmp_path / "run").read_text()
    assert "generation aimed by: nothing: plain generation" in report
    assert "> label by label (plain generation)" in report and "weak labels" not in report
    assert report.split("## Teacher analyses")[1].count("None were written.") == 1


def test_llm_plain_generation_asks_label_by_label_and_labels_separately(corpus, tmp_path):
    """The responder writes three texts of the asked label and one of another (mischief): with
    separate_labelling the labelling call gives that one its own label, and it is dropped as
    off_target; without, every text keeps the label written with it."""
    from spacy_evokd.testing.responder import PoolResponder
    from spacy_evokd.testing.server import FakeOpenAIServer

    labels = load_config(CFG, {})["evokd"]["labels"]
    pool = ROOT / "assets/demo/textcat/train.jsonl"
    runs = {}
    for separate in (True, False):
        responder = PoolResponder(pool, get_task("textcat"), labels, mischief=True)
        with FakeOpenAIServer(responder) as server:
            ov = overrides(
                corpus,
                "textcat",
                **PLAIN,
                **{"evokd.rounds": 1, "evokd.separate_labelling": separate, **server_teacher(server.base_url)},
            )
            run = tmp_path / f"run_{separate}"
            evolve(CFG, run, ov, teacher=ROOT / "configs/teachers/local_server.cfg", echo=lambda _: None)
            prompts = [r["body"]["messages"][-1]["content"] for r in server.requests]
        asked = [p.split('whose label is "')[1].split('"')[0] for p in prompts if p.startswith("Write 4 new")]
        assert sorted(asked) == sorted(labels)  # each label once, in a drawn order
        assert responder.calls["analysis"] == responder.calls["generate"] == 0
        runs[separate] = (run, responder, _record(run, 1))
    run, responder, rec = runs[True]
    assert responder.calls["label"] == 5 and rec["rejected"]["off_target"] >= 1
    assert set(_steps(run)) == {"generate", "label"}
    kept = _docs(run, 1)
    assert {d.user_data["evokd"]["intent"] for d in kept} == {"plain"}
    # at most the three texts written on target per label are kept
    assert kept and max(Counter(_label(d) for d in kept).values()) <= 3
    run, responder, rec = runs[False]
    assert responder.calls["label"] == 0 and set(_steps(run)) == {"generate"}
    assert "off_target" not in rec["rejected"] and rec["accepted"] > runs[True][2]["accepted"]


def test_plain_generation_has_no_brief_to_pick_or_rewrite_pool_texts_with():
    base = {"task": "textcat", "labels": ["a", "b"], "analysis": "none"}
    assert not validate_settings(base).separate_labelling  # not set: the label written is the label
    assert validate_settings({**base, "separate_labelling": True}).separate_labelling
    default = validate_settings({"task": "textcat", "labels": ["a"]})
    assert (default.analysis, default.separate_labelling) == ("none", False)  # the measured default
    paper = validate_settings({"task": "textcat", "labels": ["a"], "preset": "paper"})
    assert (paper.analysis, paper.separate_labelling) == ("llm", True)
    # pool picks and rewrites are aimed by a brief: not set, the analysis writes it
    assert (
        validate_settings({"task": "textcat", "labels": ["a"], "source": "pool", "unlabelled_pool": "p"}).analysis
        == "llm"
    )
    assert validate_settings({**base, "source": "auto", "unlabelled_pool": "p.jsonl"}).analysis == "none"
    with pytest.raises(ConfigError, match="source = 'pool' picks or rewrites pool texts"):
        validate_settings({**base, "source": "pool", "unlabelled_pool": "p.jsonl"})
    with pytest.raises(ConfigError, match="grounded = true picks or rewrites"):
        validate_settings({**base, "grounded": True, "unlabelled_pool": "p.jsonl"})
    with pytest.raises(ConfigError, match='preset = "paper" runs EvoKD as published: analysis'):
        validate_settings({**base, "preset": "paper"})


def test_estimate_sizes_plain_requests_without_an_analysis(corpus, monkeypatch):
    from spacy_evokd.estimate import estimate

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-used")  # the model is built, never called
    base = {"paths.train": str(corpus / "textcat/seed.spacy"), "evokd.rounds": 1, "evokd.analyses_per_round": 5}
    teacher = ROOT / "configs/teachers/openai.cfg"
    paper = estimate(CFG, {**base, "evokd.preset": "paper"}, teacher=teacher)["per_round"]
    plain = estimate(CFG, base, teacher=teacher)  # the default: analysis = "none", labels written with the texts
    relabelled = estimate(CFG, {**base, "evokd.separate_labelling": True}, teacher=teacher)["per_round"]
    # analysis + generation + labelling per brief; one request per label; plus its labelling
    assert (paper["requests"], plain["per_round"]["requests"], relabelled["requests"]) == (15, 5, 10)
    assert plain["per_round"]["total_tokens"] < relabelled["total_tokens"] < paper["total_tokens"]
    assert plain["longest_prompt_tokens"] < 400  # a short prompt: nothing of the student's is shown

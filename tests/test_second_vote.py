"""[evokd] second_vote (issue 21): labelled samples in doubt (the student labels them otherwise, or
the teacher's confidence is low) get a second labelling vote; only agreeing votes are accepted,
the others are dropped and counted, and the vote's tokens are booked as their own ledger step.

One round each (30 training steps): the simulated teacher with label noise (each vote a fresh
draw of the noise), and the LLM teacher against the local test server whose answers at a
temperature above 0 name another label for half the texts (PoolResponder's sampled_flips).
"""

import json

import pytest
import spacy

from spacy_evokd.cache import UsageLedger
from spacy_evokd.data import read_docbin
from spacy_evokd.loop import evolve
from spacy_evokd.tasks import get_task

from .conftest import server_teacher
from .test_loop import ROOT, overrides

VOTE = {"evokd.rounds": 1, "evokd.second_vote": True}


def _record(run):
    return json.loads((run / "rounds/round_001.json").read_text())


def _accepted(run):
    return [d.text for d in read_docbin(run / "rounds/round_001.spacy", spacy.blank("en").vocab)]


def _check_counts(rec):
    votes = rec["teacher_checks"]["second_vote"]
    assert votes["asked"] == votes["agreed"] + votes["disagreed"] + votes["unanswered"] + votes["one_vote"]
    assert rec["rejected"].get("vote_disagreed", 0) == votes["disagreed"] >= 1
    assert rec["rejected"].get("vote_unanswered", 0) == votes["unanswered"]
    assert rec["generated"] == rec["accepted"] + sum(rec["rejected"].values())
    assert all(k["reason"] in rec["rejected"] for k in rec["rejected_samples"])
    assert any(k["reason"] == "vote_disagreed" for k in rec["rejected_samples"])
    return votes


# ner repeats textcat's path with entity sets compared: -m slow (keeps the default run short)
@pytest.mark.parametrize("task", ["textcat", pytest.param("ner", marks=pytest.mark.slow)])
def test_simulated_teacher_votes_twice_and_drops_disagreements(corpus, tmp_path, task):
    """Noise 0.4, confidence 0.6 < second_vote_below 0.9: every usable sample is voted on again."""
    ov = overrides(corpus, task, **VOTE, **{"evokd.second_vote_below": 0.9, "evokd.teacher.label_noise": 0.4})
    evolve(ROOT / f"configs/{task}_fast.cfg", tmp_path / "run", ov, echo=lambda _: None)
    rec = _record(tmp_path / "run")
    votes = _check_counts(rec)
    assert votes["agreed"] >= 1 and rec["accepted"] >= 1 and votes["one_vote"] == 0
    # one vote request per labelling request (2 analyses), booked as its own step
    assert rec["usage_by_step"]["label_vote"]["requests"] == rec["usage_by_step"]["label"]["requests"] == 2
    dropped = {k["text"] for k in rec["rejected_samples"] if k["reason"].startswith("vote_")}
    assert not dropped & set(_accepted(tmp_path / "run"))


def test_llm_teacher_second_vote_is_sampled_booked_and_decides(corpus, tmp_path):
    """The vote requests go at vote_temperature (0.7), the first labels at 0; a text the sampled
    vote labelled otherwise is never accepted; texts both votes agree on are; the vote's tokens
    are booked as "label_vote" and counted for the generate source."""
    from spacy_evokd.config import load_config
    from spacy_evokd.testing.responder import PoolResponder
    from spacy_evokd.testing.server import FakeOpenAIServer

    cfg = ROOT / "configs/textcat_bow.cfg"
    labels = load_config(cfg, {})["evokd"]["labels"]
    responder = PoolResponder(ROOT / "assets/demo/textcat/train.jsonl", get_task("textcat"), labels, sampled_flips=0.5)
    with FakeOpenAIServer(responder) as server:
        ov = overrides(
            corpus,
            "textcat",
            **VOTE,
            **{
                **server_teacher(server.base_url),
            },
        )
        evolve(cfg, tmp_path / "run", ov, teacher=ROOT / "configs/teachers/local_server.cfg", echo=lambda _: None)
        bodies = [r["body"] for r in server.requests]
    rec = _record(tmp_path / "run")
    votes = _check_counts(rec)
    labelling = [b for b in bodies if "Answer with JSON only: one object per" in b["messages"][-1]["content"]]
    sampled = [b for b in labelling if b.get("temperature")]
    assert sampled and all(b["temperature"] == 0.7 for b in sampled)
    assert len(labelling) - len(sampled) == rec["usage_by_step"]["label"]["requests"]
    assert len(sampled) == rec["usage_by_step"]["label_vote"]["requests"]
    voted = {json.loads(line.split(". ", 1)[1]) for b in sampled for line in _numbered(b)}
    accepted = set(_accepted(tmp_path / "run"))
    assert responder.flipped and not responder.flipped & accepted
    assert votes["agreed"] >= 1 and voted & accepted  # agreeing votes are kept
    rows = [r for r in UsageLedger(tmp_path / "run/cache.sqlite").rows() if r["step"] == "label_vote"]
    assert rows and sum(r["prompt_tokens"] + r["completion_tokens"] for r in rows) > 0
    assert rec["sources"]["generate"]["tokens"] == rec["usage"]["total_tokens"]


def _numbered(body):
    return [l for l in body["messages"][-1]["content"].splitlines() if l[:1].isdigit() and '. "' in l]


@pytest.mark.slow  # the textcat path again, with label sets compared
def test_multilabel_votes_compare_label_sets(tmp_path):
    """textcat_multilabel: the votes agree only on the same set of labels."""
    from .conftest import write_demo_corpus

    labels = ["account", "billing", "product_question", "shipping", "technical"]
    corpus = write_demo_corpus(tmp_path / "corpus", "textcat_multilabel", labels)
    ov = {
        "training.max_steps": 30,
        "training.eval_frequency": 10,
        "evokd.analyses_per_round": 2,
        "paths.train": str(corpus / "seed.spacy"),
        "paths.dev": str(corpus / "dev.spacy"),
        "paths.test": str(corpus / "test.spacy"),
        "paths.pool": str(ROOT / "assets/demo/textcat_multilabel/train.jsonl"),
        **VOTE,
        "evokd.second_vote_below": 0.9,
        "evokd.teacher.label_noise": 0.4,
    }
    evolve(ROOT / "configs/textcat_multilabel_bow.cfg", tmp_path / "run", ov, echo=lambda _: None)
    rec = _record(tmp_path / "run")
    votes = _check_counts(rec)
    assert votes["agreed"] >= 1 and rec["usage_by_step"]["label_vote"]["requests"] == 2
    dropped = {k["text"] for k in rec["rejected_samples"] if k["reason"].startswith("vote_")}
    assert not dropped & set(_accepted(tmp_path / "run"))

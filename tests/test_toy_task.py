"""A task from outside the package runs the loop: a span-categorisation task (tests/toy_spancat_task.py,
spans in ``doc.spans["sc"]``, a spaCy ``spancat`` student) registered by name, taught by the
simulated teacher for two short rounds. Nothing under spacy_evokd/ names it: if the loop needed
a change for it, the task was not one module."""

import json
from collections import Counter
from pathlib import Path

import pytest
import spacy
from spacy.cli.init_config import init_config

from spacy_evokd.data import jsonl_to_docs, kshot, load_samples, read_docbin, write_docbin
from spacy_evokd.loop import evolve
from spacy_evokd.models.openai_compatible import OpenAICompatible
from spacy_evokd.run_dir import RunDir
from spacy_evokd.tasks import get_task, is_task_name, register_task, unregister_task
from spacy_evokd.teachers.llm import LLMTeacher
from spacy_evokd.testing.responder import PoolResponder
from spacy_evokd.testing.server import FakeOpenAIServer
from spacy_evokd.ty import Judged, Sample
from spacy_evokd.validation import Validator
from spacy_evokd.weakness import build_report

from .toy_spancat_task import SPANS_KEY, ToySpancatTask

ROOT = Path(__file__).parent.parent
LABELS = ["LOC", "ORG", "PER", "PRODUCT"]
TASK = ToySpancatTask()


@pytest.fixture(scope="module", autouse=True)
def registered():
    register_task(TASK.name, TASK)
    yield
    unregister_task(TASK.name)
    assert not is_task_name(TASK.name)  # later tests' lists of known tasks don't name it


def to_spans_jsonl(ner_jsonl: Path, out: Path, limit: int) -> Path:
    """The demo's IOB2 sentences as the toy task's records; each PER mention also gets its last
    word as a second, overlapping PER span (what ner can't hold and spancat can)."""
    rows = []
    for line in ner_jsonl.read_text(encoding="utf8").splitlines()[:limit]:
        rec = json.loads(line)
        sample = get_task("ner").record_to_sample(rec, str(ner_jsonl), None)
        spans = [list(e) for e in sample.annotation]
        for start, end, label in sample.annotation:
            last = sample.text.rfind(" ", start, end) + 1
            if label == "PER" and last > start:
                spans.append([last, end, "PER"])
        rows.append(json.dumps({"text": sample.text, "spans": spans}))
    out.write_text("\n".join(rows) + "\n", encoding="utf8")
    return out


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("toy")
    nlp = spacy.blank("en")
    pool = to_spans_jsonl(ROOT / "assets/demo/ner/train.jsonl", out / "pool.jsonl", 200)
    dev = to_spans_jsonl(ROOT / "assets/demo/ner/dev.jsonl", out / "dev.jsonl", 30)
    docs = jsonl_to_docs(pool, TASK, nlp, LABELS)
    seed = kshot(load_samples(pool, TASK, LABELS), TASK, LABELS, k=1, seed=0)
    write_docbin([docs[i] for i in seed], out / "seed.spacy")
    write_docbin(jsonl_to_docs(dev, TASK, nlp, LABELS), out / "dev.spacy")
    return out


def student_config(corpus: Path, path: Path) -> Path:
    """spaCy's own small spancat config (`spacy init config -p spancat`) and an [evokd] block."""
    cfg = init_config(lang="en", pipeline=["spancat"], optimize="efficiency", gpu=False)
    cfg["paths"].update(train=str(corpus / "seed.spacy"), dev=str(corpus / "dev.spacy"))
    cfg["components"]["tok2vec"]["model"]["encode"].update(width=32, depth=2)
    cfg["components"]["spancat"]["model"]["reducer"]["hidden_size"] = 32
    cfg["training"].update(max_steps=20, eval_frequency=10, patience=0)
    cfg["evokd"] = {
        "task": TASK.name,
        "labels": LABELS,
        "rounds": 2,
        "analyses_per_round": 1,
        "n_hard": 3,
        "n_easy": 2,
        "warm_start_steps": 6,
        "teacher": {
            "@misc": "spacy_evokd.SimulatedTeacher.v1",
            "labelled_pool": str(corpus / "pool.jsonl"),
            "task": TASK.name,
            "labels": LABELS,
            "seed": 0,
        },
    }
    cfg.to_disk(path)
    return path


def test_the_validator_keeps_overlapping_spans_and_shifts_them_with_the_stripped_text():
    nlp = spacy.blank("en")
    text = "  Tim Cook met Anna in Rome."
    sample = Sample(text, annotation=[(2, 10, "PER"), (6, 10, "PER"), (23, 27, "LOC")])
    docs, rejected = Validator(nlp, TASK, LABELS).validate([sample], set())
    assert not rejected and [(s.text, s.label_) for s in docs[0].spans[SPANS_KEY]] == [
        ("Tim Cook", "PER"),
        ("Cook", "PER"),
        ("Rome", "LOC"),
    ]
    _, rejected = Validator(nlp, TASK, LABELS).validate(
        [Sample("Anna sings in Rome.", annotation=[(0, 4, "CITY")])], set()
    )
    assert rejected == Counter(unknown_label=1)


def test_two_rounds_of_a_task_registered_from_outside(corpus, tmp_path):
    lines = []
    result = evolve(student_config(corpus, tmp_path / "spancat.cfg"), tmp_path / "run", echo=lines.append)
    recs = RunDir(tmp_path / "run").load_records()
    assert [r.round for r in recs] == [0, 1, 2] and all(r.task == TASK.name for r in recs)
    assert all(set(TASK.main_score_keys) <= set(r.dev) and 0.0 <= r.dev["score"] <= 1.0 for r in recs)
    pool = {s.text: s.annotation for s in load_samples(corpus / "pool.jsonl", TASK, LABELS)}
    for r in recs[1:]:
        docs = read_docbin(tmp_path / f"run/rounds/round_{r.round:03d}.spacy")
        assert len(docs) == r.accepted > 0 and r.generated == r.accepted + sum(r.rejected.values())
        # the teacher's spans arrive in doc.spans["sc"] as the pool has them (overlaps included)
        assert all(TASK.doc_to_sample(d).annotation == pool[d.text] for d in docs)
        assert sum(r.accepted_per_label.values()) == sum(len(d.spans[SPANS_KEY]) for d in docs)
        # the feedback reads back as the task's spans (tuples again after JSON)
        assert all(isinstance(span, tuple) for j in r.judged(TASK) for span in j.gold.annotation)
    nlp = spacy.load(tmp_path / "run/model-best")
    assert TASK.student_pipe(nlp) == "spancat" and result["best_dev"] == max(r.dev["score"] for r in recs)
    assert any("round 2/2: accepted" in l for l in lines)


@pytest.mark.parametrize("mischief", [False, True])
def test_an_llm_teacher_asks_with_the_task_s_own_templates(corpus, mischief):
    """The toy task's prompts (tests/toy_spancat_prompts/) through the real transport and parser,
    answered by the test server's responder from the toy pool: what it labels is the pool's spans.
    With mischief the responder adds a mention that is not in text 3 (by the answer's shape: it
    knows no task), and the toy task's parser rejects that text."""
    pool = load_samples(corpus / "pool.jsonl", TASK, LABELS)
    wrong = Judged(pool[0], Sample(pool[0].text, annotation=[]))
    with FakeOpenAIServer(PoolResponder(corpus / "pool.jsonl", TASK, LABELS, mischief=mischief)) as server:
        model = OpenAICompatible(
            name="test-llm", base_url=server.base_url, api_key_env=None, backoff=0.01, config={"max_tokens": 500}
        )
        teacher = LLMTeacher(model, TASK, LABELS)
        report = build_report(TASK, LABELS, {"per_label": {}, "score": 0.0}, [wrong], "the seed data")
        proposal = teacher.propose(teacher.analyse(report, []), 2, 1)
        labelled = teacher.label([p.text for p in proposal.samples])
        prompts = [r["body"]["messages"][-1]["content"] for r in server.requests]
    gold = {s.text: s.annotation for s in pool}
    kept = proposal.samples[:2] if mischief else proposal.samples
    assert len(proposal.samples) == 3 and [s.annotation for s in labelled.samples] == [gold[p.text] for p in kept]
    assert labelled.rejected == (Counter(unalignable_span=1) if mischief else Counter())
    # the analysis shows the wrong sample's spans as the task's template renders them
    first = pool[0].annotation[0]
    assert "span categoriser" in prompts[0] and f"{pool[0].text[first[0] : first[1]]} ({first[2]})" in prompts[0]
    assert '"spans": [{"text": "<span as written>"' in prompts[-1]


def test_a_template_only_some_settings_read_is_checked_before_any_work():
    """The toy task brings no write.* or rewrite.* template: plain generation or grounded
    generation with it is refused at setup (preflight), naming the file, not after the seed round."""
    from spacy_evokd.config import ConfigError
    from spacy_evokd.preflight import check_templates

    model = OpenAICompatible(name="test-llm", base_url="http://127.0.0.1:9/v1", api_key_env=None)
    toy = LLMTeacher(model, TASK, LABELS)
    check_templates(toy, grounded=False, plain=False)  # the three calls' templates are its own
    with pytest.raises(ConfigError, match=r'write\.toy_spancat\.v1\.jinja not found .*\(analysis = "none" needs it\)'):
        check_templates(toy, grounded=False, plain=True)
    with pytest.raises(
        ConfigError, match=r"rewrite\.toy_spancat\.v1\.jinja not found .*\(grounded generation needs it\)"
    ):
        check_templates(toy, grounded=True, plain=False)
    check_templates(LLMTeacher(model, get_task("ner"), LABELS), grounded=True, plain=True)  # shipped: both

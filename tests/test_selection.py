"""LLKD selection: thresholds on hand-built score tables, student uncertainty, the CLI end to end."""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from spacy_evokd.data import read_docbin
from spacy_evokd.selection import AdaptiveThreshold, Selector, run_selection, stream_texts
from spacy_evokd.tasks import get_task
from spacy_evokd.ty import Sample
from spacy_evokd.uncertainty import entropy, marginal_uncertainty

from .conftest import write_demo_corpus

# its module-scoped fixtures run once: the parallel run (-n 2 --dist loadgroup) keeps the file on one worker
pytestmark = pytest.mark.xdist_group("test_selection")

ROOT = Path(__file__).parent.parent


def test_adaptive_threshold_moving_averages():
    t = AdaptiveThreshold(momentum=0.5)
    assert t.threshold("a") == 0.0  # nothing seen: keep everything
    t.update([0.8, 0.6, 0.4], ["a", "a", "b"])
    assert t.tau == pytest.approx(0.6) and t.by_class == {"a": pytest.approx(0.7), "b": pytest.approx(0.4)}
    # class thresholds scale the global one by the class's level relative to the best class
    assert t.threshold("a") == pytest.approx(0.6) and t.threshold("b") == pytest.approx(0.6 * 0.4 / 0.7)
    t.update([1.0], ["b"])
    assert t.tau == pytest.approx(0.5 * 0.6 + 0.5 * 1.0)
    assert t.by_class["b"] == pytest.approx(0.7) and t.by_class["a"] == pytest.approx(0.7)
    t.adjust["b"] = 0.5  # the manual per-class adjustment
    assert t.threshold("b") == pytest.approx(0.8 * 0.5)


def test_llkd_keeps_confident_teacher_and_uncertain_student():
    conf = [0.95, 0.95, 0.30, 0.30, 0.90, 0.90]
    unc = [0.90, 0.10, 0.90, 0.10, 0.80, 0.05]
    classes = ["x", "x", "x", "x", "y", "y"]
    sel = Selector(mode="llkd", momentum=0.0)
    kept = dict(sel.select(conf, unc, classes))
    assert sorted(kept) == [0, 4]
    assert sum(kept.values()) / len(kept) == pytest.approx(1.0)  # weights have mean 1
    assert kept[0] > kept[4]  # 0.95*0.90 > 0.90*0.80
    assert sorted(i for i, _ in Selector(mode="teacher_only", momentum=0.0).select(conf, unc, classes)) == [0, 1, 4, 5]
    assert sorted(i for i, _ in Selector(mode="student_only", momentum=0.0).select(conf, unc, classes)) == [0, 2, 4]
    assert [i for i, _ in Selector(mode="fixed_ratio", ratio=0.34).select(conf, unc, classes)] == [0, 4]
    assert len(Selector(mode="all").select(conf, unc, classes)) == 6


def test_class_wise_thresholds_let_hard_classes_through():
    """A class the teacher is generally less sure of gets a lower teacher threshold."""
    conf = [0.99, 0.70, 0.98, 0.6, 0.55, 0.5]
    unc = [0.9] * 6
    classes = ["easy", "easy", "easy", "hard", "hard", "hard"]
    sel = Selector(mode="teacher_only", momentum=0.0)
    kept = [i for i, _ in sel.select(conf, unc, classes)]
    # global level 0.72; "easy" threshold 0.72, "hard" 0.72 * 0.55 / 0.89 = 0.445
    assert sel.teacher.threshold("hard") == pytest.approx(0.72 * 0.55 / (2.67 / 3))
    assert kept == [0, 2, 3, 4, 5]  # the unsure "easy" sample goes, every "hard" one stays
    with pytest.raises(ValueError, match="selection mode 'best'"):
        Selector(mode="best")


def test_signals():
    assert entropy([1.0, 0.0, 0.0]) == 0.0
    assert entropy([0.25] * 4) == pytest.approx(1.0)
    assert 0 < entropy([0.7, 0.2, 0.1]) < 1
    assert marginal_uncertainty({(0, 1, "PER"): 0.5, (2, 3, "LOC"): 0.99}) == pytest.approx(1.0)
    assert marginal_uncertainty({(0, 1, "PER"): 0.99}) == pytest.approx(0.02)
    assert marginal_uncertainty({}) == 0.0
    ner = get_task("ner")
    assert ner.sample_class(Sample("a b", annotation=[(0, 1, "PER"), (2, 3, "LOC"), (4, 5, "LOC")])) == "LOC"
    assert ner.sample_class(Sample("a b", annotation=[])) == "O"


def test_stream_texts_is_lazy_and_names_bad_lines(tmp_path):
    pool = tmp_path / "pool.jsonl"
    pool.write_text('{"text": "a"}\n{"tokens": ["b", "c"]}\n{"text": "d"}\n{"label": "x"}\n')
    it = stream_texts(pool, 2)
    assert next(it) == ["a", "b c"]
    from spacy_evokd.data import DataError

    with pytest.raises(DataError, match=r"pool.jsonl:4: expected a \"text\""):
        next(it)


def test_select_cli_with_simulated_teacher_and_resume(tmp_path):
    """`python -m spacy_evokd select` on the demo pool with a noisy simulated teacher and a quickly
    trained student; the output trains with the augmenter, and a rerun redoes nothing."""
    corpus = tmp_path / "corpus"
    py = [sys.executable, "-m", "spacy_evokd"]
    for split in ("train", "dev"):
        subprocess.run(
            py
            + ["convert", ROOT / f"assets/demo/textcat/{split}.jsonl", corpus / f"{split}.spacy", "--task", "textcat"],
            check=True,
            capture_output=True,
        )
    subprocess.run(
        py + ["seed", corpus / "train.spacy", corpus / "seed.spacy", "--task", "textcat", "--k", "2"],
        check=True,
        capture_output=True,
    )
    from spacy_evokd import student
    from spacy_evokd.config import load_config

    cfg = load_config(ROOT / "configs/textcat_bow.cfg", {"training.max_steps": 30})
    model = student.train(cfg, corpus / "seed.spacy", corpus / "dev.spacy", tmp_path / "student")
    pool = tmp_path / "pool.jsonl"
    pool.write_text(
        "".join(
            json.dumps({"text": json.loads(l)["text"]}) + "\n"
            for l in (ROOT / "assets/demo/textcat/train.jsonl").read_text().splitlines()[:80]
        )
    )
    cmd = py + [
        "select",
        ROOT / "configs/textcat_bow.cfg",
        pool,
        model,
        tmp_path / "sel",
        "--batch-size",
        "20",
        "--k",
        "5",
        "--paths.dev",
        corpus / "dev.spacy",
        "--paths.test",
        "",
        "--evokd.teacher.label_noise",
        "0.3",
    ]
    proc = subprocess.run(list(map(str, cmd)), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "[evokd select | simulated teacher] batch 3" in proc.stdout
    summary = json.loads((tmp_path / "sel/summary.json").read_text())
    assert summary["pool"] == 80 and 0 < summary["kept"] < 80 and summary["simulated"]
    docs = [d for b in range(4) for d in read_docbin(tmp_path / f"sel/selected_{b:04d}.spacy")]
    assert len(docs) == summary["kept"]
    for d in docs:
        ev = d.user_data["evokd"]
        assert ev["confidence_method"] == "simulated_agreement_5" and 0 < ev["confidence"] <= 1
        assert 0.1 <= ev["weight"] <= 10 and ev["selection"] == "llkd" and sum(d.cats.values()) == 1.0
    rec = json.loads((tmp_path / "sel/selected_0000.json").read_text())
    assert rec["valid"] + sum(rec["rejected"].values()) == 20 and rec["thresholds"]["teacher"]["tau"] > 0
    # rerun: all batches committed, nothing redone, same result
    mtime = (tmp_path / "sel/selected_0002.spacy").stat().st_mtime_ns
    again = subprocess.run(list(map(str, cmd)), capture_output=True, text=True)
    assert again.returncode == 0 and "batch 0:" not in again.stdout
    assert (tmp_path / "sel/selected_0002.spacy").stat().st_mtime_ns == mtime
    assert json.loads((tmp_path / "sel/summary.json").read_text())["kept"] == summary["kept"]


@pytest.mark.parametrize("logprobs", [True, False])
def test_llm_teacher_pseudo_labels_with_logprobs_or_agreement(logprobs, tmp_path):
    from spacy_evokd.cache import ResponseCache
    from spacy_evokd.models.openai_compatible import OpenAICompatible
    from spacy_evokd.teachers.llm import LLMTeacher
    from spacy_evokd.testing.responder import PoolResponder
    from spacy_evokd.testing.server import FakeOpenAIServer

    labels = ["account", "billing", "product_question", "shipping", "technical"]
    responder = PoolResponder(ROOT / "assets/demo/textcat/train.jsonl", get_task("textcat"), labels, mischief=False)
    texts = [s.text for s in responder.pool[:4]]
    with FakeOpenAIServer(responder, logprobs=logprobs) as server:
        model = OpenAICompatible(name="t", base_url=server.base_url, api_key_env=None)
        model.cache = ResponseCache(tmp_path / "c.sqlite")
        teacher = LLMTeacher(model, get_task("textcat"), labels)
        out = teacher.pseudo_label(texts, k=3)
        bodies = [r["body"] for r in server.requests]
    assert [s.annotation for s in out.samples] == [s.annotation for s in responder.pool[:4]]
    if logprobs:
        # the answer's tokens each had logprob -0.05: confidence = exp(sum)
        n_tokens = [len(json.dumps([{"id": 1, "label": s.annotation}]).split()) for s in responder.pool[:4]]
        assert [s.confidence for s in out.samples] == pytest.approx([math.exp(-0.05 * n) for n in n_tokens])
        assert {s.confidence_method for s in out.samples} == {"logprobs"} and len(bodies) == 4
    else:
        assert {s.confidence_method for s in out.samples} == {"agreement_3"}
        assert all(s.confidence == 1.0 for s in out.samples)  # the responder always agrees with itself
        assert [b.get("n") for b in bodies[4:]] == [3] * 4 and all(b["temperature"] == 1.0 for b in bodies[4:])
    assert teacher.drain_usage().requests == len(bodies)


@pytest.fixture(scope="module")
def tiny_student(tmp_path_factory):
    """A textcat student trained for a few steps on a 1-shot seed, and the dev DocBin."""
    from spacy_evokd import student
    from spacy_evokd.config import load_config

    out = write_demo_corpus(tmp_path_factory.mktemp("tiny"), "textcat", splits=("dev",))
    cfg = load_config(ROOT / "configs/textcat_bow.cfg", {"training.max_steps": 5, "training.eval_frequency": 5})
    return student.train(cfg, out / "seed.spacy", out / "dev.spacy", out / "student"), out / "dev.spacy"


def _select(pool, tiny_student, out, lines):
    model, dev = tiny_student
    return run_selection(
        ROOT / "configs/textcat_bow.cfg",
        pool,
        model,
        out,
        {"paths.dev": str(dev), "paths.test": ""},
        batch_size=8,
        k_samples=2,
        echo=lines.append,
    )


def test_select_skips_pool_texts_over_max_chars_before_any_request(tmp_path, tiny_student):
    """A pool text longer than [evokd] max_chars (1000) is counted and skipped, not sent: a
    2.1 M-character one used to reach spaCy's E088 and end the whole selection."""
    texts = [json.loads(l)["text"] for l in (ROOT / "assets/demo/textcat/train.jsonl").read_text().splitlines()[:6]]
    pool = tmp_path / "pool.jsonl"
    huge = "My parcel is late again. " * 84_000  # 2.1 M characters
    pool.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts[:3] + [huge, "x" * 1001] + texts[3:]))
    lines = []
    summary = _select(pool, tiny_student, tmp_path / "sel", lines)
    rec = json.loads((tmp_path / "sel/selected_0000.json").read_text())
    assert rec["pool"] == 8 and rec["rejected"]["too_long"] == 2
    assert rec["valid"] + sum(rec["rejected"].values()) == 8 and huge not in rec["texts"]
    assert summary["skipped_too_long"] == 2 and summary["pool"] == 8
    assert "2 over max_chars 1000 skipped" in lines[0] and "2 over max_chars skipped" in lines[-1]


def test_select_refuses_an_empty_pool_as_evolve_pool_mode_does(tmp_path, tiny_student):
    from spacy_evokd.data import DataError
    from spacy_evokd.pool_source import read_pool_texts

    for content in ("", "\n\n", '{"text": "   "}\n'):
        pool = tmp_path / "pool.jsonl"
        pool.write_text(content)
        with pytest.raises(DataError, match=r"pool.jsonl: the pool has no texts") as select_error:
            _select(pool, tiny_student, tmp_path / "sel", [])
        assert not (tmp_path / "sel").exists()
        with pytest.raises(DataError) as evolve_error:
            read_pool_texts(str(pool))  # what evolve's pool mode reads the pool with
        assert str(select_error.value) == str(evolve_error.value)

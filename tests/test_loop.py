"""The EvoKD loop end to end with the real spaCy student (trained by `spacy train` subprocesses).

Kept small so the default run stays fast: 2 rounds, 2 analyses per round, 30 training steps.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import spacy
from confection import Config

from spacy_evokd.config import ConfigError
from spacy_evokd.data import DataError, read_docbin
from spacy_evokd.loop import evolve
from spacy_evokd.tasks import get_task

from .conftest import run_cli, server_teacher

ROOT = Path(__file__).parent.parent
BUDGET = 3000  # tokens a round in the auto test: about what 8 samples cost with the local server's answers
FAST = {
    # the EvoKD loop these tests check (analysis and generation aimed by it, labelled in a separate
    # call); the default since issue 21 is plain generation (tests/test_plain_generation.py)
    "evokd.analysis": "llm",
    "evokd.rounds": 2,
    "evokd.analyses_per_round": 2,
    "training.max_steps": 30,
    "training.eval_frequency": 10,
}


def overrides(corpus, task, **extra):
    return {
        **FAST,
        "paths.train": str(corpus / task / "seed.spacy"),
        "paths.dev": str(corpus / task / "dev.spacy"),
        "paths.test": str(corpus / task / "test.spacy"),
        "paths.pool": str(ROOT / f"assets/demo/{task}/train.jsonl"),
        **extra,
    }


def check_run(out: Path, task: str, rounds: int, intents=("hard", "easy")):
    recs = [json.loads((out / "rounds" / f"round_{n:03d}.json").read_text()) for n in range(rounds + 1)]
    assert [r["round"] for r in recs] == list(range(rounds + 1))
    assert sorted(p.name for p in (out / "rounds").glob("*.json")) == [f"round_{n:03d}.json" for n in range(rounds + 1)]
    nlp = spacy.blank("en")
    texts = set()
    for r in recs[1:]:
        docs = read_docbin(out / "rounds" / f"round_{r['round']:03d}.spacy", nlp.vocab)
        assert len(docs) == r["accepted"] > 0
        assert r["generated"] == r["accepted"] + sum(r["rejected"].values())
        assert r["batch_scores"]["n"] == r["accepted"]
        assert 0.0 <= r["dev"]["score"] <= 1.0 and r["dev"]["n"] > 0
        for d in docs:
            assert d.user_data["evokd"]["round"] == r["round"]
            assert d.user_data["evokd"]["intent"] in intents
            if task == "textcat":
                assert sum(d.cats.values()) == 1.0
            assert d.text not in texts  # no duplicates across rounds
            texts.add(d.text)
    best = max(recs, key=lambda r: r["dev"]["score"])
    assert (out / "model-best" / "evokd_round.txt").read_text() == str(best["round"])
    assert spacy.load(out / "model-best").pipe_names[-1] == task
    return recs


# ner's loop also runs in the default suite in test_review's fixture (one round, through the CLI)
# and test_toy_task's span task; its two-round check here is in -m slow
@pytest.mark.parametrize("task", ["textcat", pytest.param("ner", marks=pytest.mark.slow)])
def test_two_rounds_with_simulated_teacher(corpus, tmp_path, task):
    lines = []
    ov = overrides(corpus, task, **{"evokd.warm_start_steps": 6})
    result = evolve(ROOT / f"configs/{task}_fast.cfg", tmp_path / "run", ov, echo=lines.append)
    recs = check_run(tmp_path / "run", task, 2)
    # the seed round trains training.max_steps (the regime's cap: its floor is higher); warm-started
    # rounds train warm_start_steps
    training = [Config().from_disk(tmp_path / f"run/models/round_{n:03d}/config.cfg")["training"] for n in range(3)]
    assert [t["max_steps"] for t in training] == [FAST["training.max_steps"], 6, 6]
    # keep_models "all": every round's model-best stays, the never-read model-last does not
    models = sorted((tmp_path / "run/models").iterdir())
    assert [p.name for p in models] == ["round_000", "round_001", "round_002"]
    assert all((p / "model-best/meta.json").exists() and not (p / "model-last").exists() for p in models)
    # the regime's evaluations fall within the steps (else model-best = step 0)
    assert all(1 <= t["eval_frequency"] <= t["max_steps"] for t in training)
    assert all(set(r["seconds"]) == {"teacher", "train", "eval", "total"} for r in recs[1:])
    assert all(r["simulated"] for r in recs) and all(l.startswith("[evokd | simulated teacher]") for l in lines)
    assert any("round 2/2: accepted" in l and "dev" in l for l in lines)
    # trainings are not silent: a line per evaluation of spaCy's training table
    assert any("round 0: training step 0, dev score" in l for l in lines)
    assert any("round 2: training step 6, dev score" in l for l in lines)
    assert result["best_dev"] == max(r["dev"]["score"] for r in recs)
    assert_shippable_config(tmp_path / "run" / "model-best")
    check_report(tmp_path / "run", recs)


def check_report(run: Path, recs):
    """The report a person acts on: test per round, generated samples with intent and the
    student's verdict, time per round, an HTML twin, no empty plot."""
    from spacy_evokd.report import write_report

    md = write_report(run).read_text()
    rows = [l for l in md.splitlines() if l.startswith("| ") and l.split("|")[1].strip().isdigit()]
    assert len(rows) == len(recs) and all(
        float(r.rstrip(" |").rsplit("|", 1)[-1]) >= 0.0 for r in rows
    )  # a test score per round
    assert "## Generated samples" in md and "| hard |" in md and "| easy |" in md
    assert "teacher s | train s" in md and "- time: " in md
    # simulated: no tokens, so no tokens plot but a note saying why
    assert "no tokens and cost plot" in md and not (run / "report/tokens_cost.png").exists()
    html = (run / "report/report.html").read_text()
    example_tables = [l for l in md.splitlines() if l.startswith("**Round ") and l.endswith("**")]
    assert html.count("<table>") == 1 + len(example_tables) > 1 and '<img src="dev_score.png"' in html
    assert "dev F1 " in recs[1]["analyses"][0] and "(dev F1 " in md  # the simulated analysis names the dev F1 as it is


def _items(section, prefix=""):
    for key, value in section.items():
        yield f"{prefix}{key}", value
        if isinstance(value, dict):
            yield from _items(value, f"{prefix}{key}.")


def assert_shippable_config(model: Path):
    """The trained student never references the teacher or the loop, and keeps no path of this
    checkout (whose folder may well be called spacy-evokd: a plain "evokd" search won't do)."""
    text = (model / "config.cfg").read_text()
    items = list(_items(Config().from_str(text, interpolate=False)))
    assert not [k for k, _ in items if "evokd" in k.split(".")[0]]  # no [evokd] section, nothing under it
    refs = [v for k, v in items if k.rsplit(".", 1)[-1].startswith("@")]
    assert refs and not [r for r in refs if "evokd" in r]  # no spacy_evokd.* registered function
    assert str(ROOT.resolve()) not in text and str(ROOT) not in text
    paths = Config().from_str(text, interpolate=False)["paths"]
    assert not [v for v in paths.values() if isinstance(v, str) and Path(v).is_absolute()], paths
    assert paths["train"] is None and paths["dev"] is None  # the round's scratch files, deleted after it


def test_extra_training_data_is_used_every_round(corpus, tmp_path):
    """[evokd] extra_train (e.g. an LLKD selection folder) joins the seed in every round."""
    extra = tmp_path / "selected"
    nlp = spacy.blank("en")
    docs = read_docbin(corpus / "textcat/train.spacy", nlp.vocab)[:7]
    from spacy_evokd.data import write_docbin

    write_docbin(docs[:3], extra / "selected_0000.spacy")
    write_docbin(docs[3:], extra / "selected_0001.spacy")
    ov = overrides(corpus, "textcat", **{"evokd.rounds": 1, "evokd.extra_train": str(extra)})
    evolve(ROOT / "configs/textcat_bow.cfg", tmp_path / "run", ov, echo=lambda _: None)
    recs = check_run(tmp_path / "run", "textcat", 1)
    n_seed = len(read_docbin(corpus / "textcat/seed.spacy"))
    assert recs[0]["train_size"] == n_seed + 7
    assert recs[1]["train_size"] == n_seed + 7 + recs[1]["accepted"]


def test_rerun_after_completion_does_nothing_and_more_rounds_continue(corpus, tmp_path):
    ov = overrides(corpus, "textcat", **{"evokd.rounds": 1})
    evolve(ROOT / "configs/textcat_bow.cfg", tmp_path / "run", ov, echo=lambda _: None)
    first = (tmp_path / "run/rounds/round_001.spacy").read_bytes()
    mtime = (tmp_path / "run/rounds/round_001.json").stat().st_mtime_ns
    lines = []
    evolve(ROOT / "configs/textcat_bow.cfg", tmp_path / "run", dict(ov, **{"evokd.rounds": 2}), echo=lines.append)
    assert "resuming after round 1" in lines[0]
    assert (tmp_path / "run/rounds/round_001.json").stat().st_mtime_ns == mtime
    assert (tmp_path / "run/rounds/round_001.spacy").read_bytes() == first
    recs = check_run(tmp_path / "run", "textcat", 2)
    # a third round with --keep-models best: the best and the latest student stay, nothing else
    run_cli(
        "evolve",
        ROOT / "configs/textcat_bow.cfg",
        tmp_path / "run",
        "--keep-models",
        "best",
        *[x for k, v in dict(ov, **{"evokd.rounds": 3}).items() for x in (f"--{k}", v)],
    )
    recs = check_run(tmp_path / "run", "textcat", 3)
    best = max(recs, key=lambda r: r["dev"]["score"])["round"]
    models = tmp_path / "run/models"
    assert sorted(p.name for p in models.iterdir()) == sorted({f"round_{best:03d}", "round_003"})
    assert not list(models.glob("*/model-last")) and all(
        (p / "model-best/meta.json").exists() for p in models.iterdir()
    )


@pytest.mark.slow  # 60 s; the default run resumes after kills in test_run_dir and test_untrusted_teacher
def test_killed_round_is_redone_identically(corpus, tmp_path):
    """SIGKILL the loop while round 2 is in progress, rerun: same rounds as an uninterrupted run."""
    args = [sys.executable, "-m", "spacy_evokd", "evolve", str(ROOT / "configs/textcat_bow.cfg")]
    extra = [f"--{k}={v}" for k, v in overrides(corpus, "textcat").items()]
    ref = tmp_path / "ref"
    subprocess.run(args + [str(ref)] + extra, check=True, capture_output=True)
    run = tmp_path / "run"
    proc = subprocess.Popen(args + [str(run)] + extra, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not (run / "work/round_002/model").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (run / "rounds/round_002.json").exists()
    subprocess.run(args + [str(run)] + extra, check=True, capture_output=True)
    for n in (1, 2):
        a = read_docbin(ref / f"rounds/round_{n:03d}.spacy")
        b = read_docbin(run / f"rounds/round_{n:03d}.spacy")
        assert [d.text for d in a] == [d.text for d in b] and [d.cats for d in a] == [d.cats for d in b]
    assert not (run / "work").exists() or not any((run / "work").glob("round_*"))


def test_config_and_data_errors_are_one_line(corpus, tmp_path):
    cfg = ROOT / "configs/textcat_bow.cfg"
    with pytest.raises(ConfigError, match="unknown setting 'roundz'"):
        evolve(cfg, tmp_path / "a", overrides(corpus, "textcat", **{"evokd.roundz": 3}))
    with pytest.raises(ConfigError, match="nope.cfg: config file not found"):
        evolve(tmp_path / "nope.cfg", tmp_path / "a")
    with pytest.raises(DataError, match=r"label 'billing' is not in"):
        evolve(
            cfg,
            tmp_path / "a",
            overrides(corpus, "textcat", **{"evokd.labels": ["account", "product_question", "shipping", "technical"]}),
        )
    empty = tmp_path / "empty.spacy"
    from spacy_evokd.data import write_docbin

    write_docbin([], empty)
    with pytest.raises(DataError, match="empty.spacy is empty"):
        evolve(cfg, tmp_path / "a", overrides(corpus, "textcat", **{"paths.train": str(empty)}))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "spacy_evokd",
            "evolve",
            str(cfg),
            str(tmp_path / "b"),
            "--paths.train",
            str(tmp_path / "missing.spacy"),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1 and "missing.spacy: file not found" in proc.stderr
    assert "Traceback" not in proc.stderr


# ner's answers are parsed and aligned in test_parsing_and_validation/test_hostile_answers and its
# whole loop runs in test_two_rounds_with_simulated_teacher[ner]: its LLM variant runs with -m slow
@pytest.mark.parametrize("task", ["textcat", pytest.param("ner", marks=pytest.mark.slow)])
def test_two_rounds_with_llm_teacher_on_local_server(corpus, tmp_path, task, monkeypatch, caplog):
    """The real LLMTeacher, prompts, OpenAICompatible transport, parser and validator, against the
    local test server answering from the demo pool like a sloppy LLM. A recognisable fake key is
    used and must appear nowhere."""
    from spacy_evokd.config import load_config
    from spacy_evokd.testing.responder import PoolResponder
    from spacy_evokd.testing.server import FakeOpenAIServer

    key = "sk-evokd-FAKE-0000-SECRET-1111"
    monkeypatch.setenv("EVOKD_TEST_KEY", key)
    caplog.set_level("DEBUG")
    cfg = ROOT / f"configs/{task}_fast.cfg"
    labels = load_config(cfg, {})["evokd"]["labels"]
    responder = PoolResponder(ROOT / f"assets/demo/{task}/train.jsonl", get_task(task), labels)
    lines = []
    with FakeOpenAIServer(responder) as server:
        ov = overrides(
            corpus,
            task,
            **{
                **server_teacher(server.base_url, api_key_env="EVOKD_TEST_KEY"),
            },
        )
        server.fail(("status", 429, {"Retry-After": "0"}), ("status", 500))  # the run shrugs these off
        evolve(cfg, tmp_path / "run", ov, teacher=ROOT / "configs/teachers/local_server.cfg", echo=lines.append)
        n_requests = len(server.requests)
    recs = check_run(tmp_path / "run", task, 2)
    # 2 rounds x 2 analyses x (analysis + generation + labelling), plus the 2 injected failures
    assert n_requests == 2 * 2 * 3 + 2
    assert responder.calls == {"analysis": 4, "generate": 4, "label": 4, "write": 0}
    for r in recs[1:]:
        assert len(r["analyses"]) == 2 and all("weakest on" in a for a in r["analyses"])
        assert r["usage"]["requests"] == 6 and r["usage"]["total_tokens"] > 0 and not r["usage"]["estimated"]
        # the responder's mischief is counted by reason, never accepted
        mischief = "unknown_label" if task == "textcat" else "unalignable_entity"
        assert r["rejected"].get(mischief, 0) >= 1
        # ... and what validation rejected is kept for review: text, reason, intent, annotation
        # (ner's unalignable entities are dropped by the parser, before validation: only counted)
        kept = r["rejected_samples"]
        assert all(k["text"] and k["reason"] in r["rejected"] and k["intent"] in ("hard", "easy") for k in kept)
        assert len(kept) <= sum(r["rejected"].values())
        if task == "textcat":
            assert any(k["reason"] == mischief and k["annotation"] == {"label": k["annotation"]["label"]} for k in kept)
    assert not any(r["simulated"] for r in recs) and not any("simulated" in l for l in lines)
    assert any("tokens" in l and "dev" in l for l in lines if "round 2/2" in l)
    # the fake key is nowhere on disk or in the logs
    for path in (tmp_path / "run").rglob("*"):
        if path.is_file():
            assert key.encode() not in path.read_bytes(), path
    assert key not in caplog.text and key not in "\n".join(lines)
    from spacy_evokd.report import write_report

    report_dir = write_report(tmp_path / "run").parent
    for path in report_dir.iterdir():
        assert key.encode() not in path.read_bytes(), path


def test_teacher_outage_stops_with_a_clear_message_and_resumes(corpus, tmp_path):
    """The server starts failing after round 1 is committed: the run stops with one clear line,
    round 1 stays committed, and the same command finishes the run once the server is back.
    The report of the finished run names no key either."""
    from spacy_evokd.config import load_config
    from spacy_evokd.models.openai_compatible import TeacherRequestError
    from spacy_evokd.report import write_report
    from spacy_evokd.testing.responder import PoolResponder
    from spacy_evokd.testing.server import FakeOpenAIServer

    cfg = ROOT / "configs/textcat_bow.cfg"
    labels = load_config(cfg, {})["evokd"]["labels"]
    with FakeOpenAIServer(
        PoolResponder(ROOT / "assets/demo/textcat/train.jsonl", get_task("textcat"), labels)
    ) as server:
        ov = overrides(
            corpus,
            "textcat",
            **{
                **server_teacher(server.base_url, max_retries=2),
            },
        )

        def echo(line):
            if "round 1/2: accepted" in line:
                server.fail(*[("status", 503)] * 50)

        teacher = ROOT / "configs/teachers/local_server.cfg"
        with pytest.raises(TeacherRequestError, match=r"request failed after 3 attempts \(HTTP 503"):
            evolve(cfg, tmp_path / "run", ov, teacher=teacher, echo=echo)
        assert (tmp_path / "run/rounds/round_001.json").exists()
        assert not (tmp_path / "run/rounds/round_002.json").exists()
        server.faults.clear()
        lines = []
        evolve(cfg, tmp_path / "run", ov, teacher=teacher, echo=lines.append)
    assert "resuming after round 1" in lines[0]
    check_run(tmp_path / "run", "textcat", 2)
    report = write_report(tmp_path / "run")
    assert "Simulated teacher" not in report.read_text() and "test-llm" in report.read_text()
    # the report's token figures are the ledger's, and the tokens/cost plot is drawn
    from spacy_evokd.cache import UsageLedger

    totals = UsageLedger(tmp_path / "run/cache.sqlite").totals()
    assert totals.prompt_tokens > 0
    assert f"{totals.prompt_tokens:,} prompt + {totals.completion_tokens:,} completion tokens" in report.read_text()
    assert (report.parent / "tokens_cost.png").stat().st_size > 1000


# the same planned stop for either budget: the cost one (priced tokens) runs with -m slow
@pytest.mark.parametrize(
    "budget", ["evokd.max_tokens", pytest.param("evokd.max_cost_per_round", marks=pytest.mark.slow)]
)
def test_budget_stops_before_the_request_that_would_exceed_it(corpus, tmp_path, budget):
    from spacy_evokd.cache import UsageLedger
    from spacy_evokd.config import load_config
    from spacy_evokd.testing.responder import PoolResponder
    from spacy_evokd.testing.server import FakeOpenAIServer

    cfg = ROOT / "configs/textcat_bow.cfg"
    labels = load_config(cfg, {})["evokd"]["labels"]
    limit = 4000 if budget == "evokd.max_tokens" else 0.004  # ~ 4000 tokens at $1 per million
    with FakeOpenAIServer(
        PoolResponder(ROOT / "assets/demo/textcat/train.jsonl", get_task("textcat"), labels)
    ) as server:
        ov = overrides(
            corpus,
            "textcat",
            **{
                **server_teacher(server.base_url, price_input_per_mtok=1.0, price_output_per_mtok=1.0),
                "evokd.rounds": 3,
                "evokd.analyses_per_round": 3,
                budget: limit,
            },
        )
        lines = []
        result = evolve(
            cfg, tmp_path / "run", ov, teacher=ROOT / "configs/teachers/local_server.cfg", echo=lines.append
        )
        n_requests = len(server.requests)
    which = budget.split(".")[1]
    ledger = UsageLedger(tmp_path / "run/cache.sqlite")
    assert ledger.totals().requests == n_requests  # every request is booked
    recs = [json.loads(p.read_text()) for p in sorted((tmp_path / "run/rounds").glob("*.json"))]
    if budget == "evokd.max_cost_per_round":  # a round budget ends the round; the run goes on
        assert len(recs) == 4 and result["stopped_by"] == "3 rounds done"
        assert all(which in r["budget_hit"] and r["stopped_by"] is None for r in recs[1:])
        assert sum(which in l for l in lines) == 3
    else:  # a run budget stops the run after the round it is hit in
        assert which in result["stopped_by"] and "budget reached" in result["stopped_by"]
        assert any(which in l for l in lines[-2:])
        assert recs[-1]["stopped_by"] and which in recs[-1]["stopped_by"]
    # checked before each request: the overshoot is at most the last request's usage
    per_request = max(r["usage"]["total_tokens"] / max(1, r["usage"]["requests"]) for r in recs[1:]) * 3
    spent = (
        [r["usage"]["total_tokens"] for r in recs[1:]]
        if budget == "evokd.max_cost_per_round"
        else [ledger.totals().total_tokens]
    )
    assert all(s < 4000 + per_request for s in spent)


def test_estimate_command(corpus):
    args = [
        sys.executable,
        "-m",
        "spacy_evokd",
        "estimate",
        str(ROOT / "configs/textcat_bow.cfg"),
        "--paths.train",
        str(corpus / "textcat/seed.spacy"),
        "--evokd.analysis",
        "llm",
    ]
    sim = subprocess.run(args, capture_output=True, text=True)
    assert sim.returncode == 0 and "simulated, no LLM calls: 0 tokens" in sim.stdout
    llm = args + ["--teacher", str(ROOT / "configs/teachers/openai.cfg")]
    from spacy_evokd.estimate import estimate

    os.environ.setdefault("OPENAI_API_KEY", "sk-test-not-used")  # the model is built, never called
    two = estimate(
        ROOT / "configs/textcat_bow.cfg",
        {"paths.train": str(corpus / "textcat/seed.spacy"), "evokd.rounds": 2, "evokd.analysis": "llm"},
        teacher=ROOT / "configs/teachers/openai.cfg",
    )
    four = estimate(
        ROOT / "configs/textcat_bow.cfg",
        {"paths.train": str(corpus / "textcat/seed.spacy"), "evokd.rounds": 4, "evokd.analysis": "llm"},
        teacher=ROOT / "configs/teachers/openai.cfg",
    )
    assert two["per_round"]["requests"] == 4 * 3 and two["per_round"]["total_tokens"] > 1000
    # prompts grow with the history review and the texts shown (up to their caps): later rounds cost more
    assert four["by_round"][:2] == two["by_round"] and four["total"]["total_tokens"] > 2 * two["total"]["total_tokens"]
    assert four["total"]["cost"] > 2 * two["total"]["cost"] > 0
    proc = subprocess.run(llm, capture_output=True, text=True, env=dict(os.environ))
    assert proc.returncode == 0 and "round 1: 12 requests" in proc.stdout and "longest prompt" in proc.stdout


def test_cli_errors_are_one_line_without_traceback(corpus, tmp_path):
    """Missing teacher section, unreachable base_url, malformed seed file: one line, exit 1."""
    cfg = tmp_path / "no_teacher.cfg"
    text = (ROOT / "configs/textcat_bow.cfg").read_text()
    start = text.index("\n[evokd.teacher]")
    cfg.write_text(text[:start] + text[text.index("\n[nlp]") :])
    base = [sys.executable, "-m", "spacy_evokd", "evolve"]
    ov = [f"--{k}={v}" for k, v in overrides(corpus, "textcat").items()]
    cases = [
        (base + [str(cfg), str(tmp_path / "a")] + ov, "no [evokd.teacher] block"),
        (
            base
            + [
                str(ROOT / "configs/textcat_bow.cfg"),
                str(tmp_path / "b"),
                "--teacher",
                str(ROOT / "configs/teachers/local_server.cfg"),
                "--evokd.teacher.model.base_url=http://127.0.0.1:9/v1",
                "--evokd.teacher.model.max_retries=1",
                "--evokd.teacher.model.backoff=0.01",
            ]
            + ov,
            "teacher check: http://127.0.0.1:9/v1 is not reachable (ConnectError",
        ),  # preflight, before the seed round
    ]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine", "label": "billing"}\n{"text": "broken", \n')
    cases.append(
        (
            [sys.executable, "-m", "spacy_evokd", "convert", str(bad), str(tmp_path / "x.spacy"), "--task", "textcat"],
            "bad.jsonl:2: invalid JSON",
        )
    )
    for cmd, message in cases:
        proc = subprocess.run(cmd, capture_output=True, text=True)
        assert proc.returncode == 1, proc.stderr[-1500:]
        assert message in proc.stderr and "Traceback" not in proc.stderr
        # retries are logged as they happen; the error itself is the one last line
        assert proc.stderr.strip().splitlines()[-1].startswith("✘ ") and proc.stderr.count("✘") == 1


# "both" is "pool" plus generation in one round (generation alone runs in every other loop test): -m slow
@pytest.mark.parametrize("source", ["pool", pytest.param("both", marks=pytest.mark.slow)])
def test_analysis_guided_pool_mode(corpus, tmp_path, source):
    """source = "pool": the analysis' evidence picks unlabelled pool texts and the teacher only
    labels them (no generation request); "both": generated and pool inputs in the same round."""
    from spacy_evokd.cache import UsageLedger

    pool = tmp_path / "unlabelled.jsonl"  # the demo train texts without their labels
    texts = [
        json.loads(l)["text"] for l in (ROOT / "assets/demo/textcat/train.jsonl").read_text().splitlines() if l.strip()
    ]
    pool.write_text("\n".join(json.dumps({"text": t}) for t in texts) + "\n", encoding="utf8")
    ov = overrides(corpus, "textcat", **{"evokd.rounds": 1, "evokd.source": source, "evokd.unlabelled_pool": str(pool)})
    evolve(ROOT / "configs/textcat_bow.cfg", tmp_path / "run", ov, echo=lambda _: None)
    check_run(tmp_path / "run", "textcat", 1)
    steps = {r["step"] for r in UsageLedger(tmp_path / "run/cache.sqlite").rows() if r["round"] == 1}
    assert ("generate" in steps) == (source == "both") and "label" in steps
    docs = read_docbin(tmp_path / "run/rounds/round_001.spacy")
    per_analysis = 4 if source == "pool" else 8
    assert 0 < len(docs) <= 2 * per_analysis
    assert all(d.text in set(texts) for d in docs)  # simulated generation draws from the same pool
    assert {d.user_data["evokd"]["intent"] for d in docs} <= {"hard", "easy"}
    seed = {d.text for d in read_docbin(corpus / "textcat/seed.spacy")}
    assert not seed & {d.text for d in docs}  # a used text is never offered again


def test_pool_mode_needs_a_pool(corpus, tmp_path):
    with pytest.raises(ConfigError, match="source = 'pool' needs unlabelled_pool"):
        evolve(
            ROOT / "configs/textcat_bow.cfg", tmp_path / "run", overrides(corpus, "textcat", **{"evokd.source": "pool"})
        )


def test_active_source_student_picks_and_teacher_only_labels(corpus, tmp_path):
    """source = "active": no analysis or generation request; the picked pool texts are labelled
    (the ledger's "active_label" step) and carry LLKD's confidence x need weight, mean 1."""
    from spacy_evokd.cache import UsageLedger

    ov = overrides(
        corpus,
        "textcat",
        **{"evokd.source": "active", "evokd.unlabelled_pool": str(ROOT / "assets/demo/textcat/train.jsonl")},
    )
    evolve(ROOT / "configs/textcat_bow.cfg", tmp_path / "run", ov, echo=lambda _: None)
    recs = check_run(tmp_path / "run", "textcat", 2, intents=("active",))
    assert {r["step"] for r in UsageLedger(tmp_path / "run/cache.sqlite").rows()} == {"active_label"}
    for r in recs[1:]:
        assert r["analyses"] == [] and r["sources"]["split"]["active"] == 8 and "generate" not in r["sources"]
        assert r["sources"]["active"]["accepted"] == r["accepted"] == 8
        assert (
            0 <= r["sources"]["active"]["wrong"] <= r["accepted"]
            and r["usage_by_step"]["active_label"]["requests"] == 1
        )
        docs = read_docbin(tmp_path / "run" / "rounds" / f"round_{r['round']:03d}.spacy", spacy.blank("en").vocab)
        weights = [d.user_data["evokd"]["weight"] for d in docs]
        assert abs(sum(weights) / len(weights) - 1.0) < 0.05 and all(0.1 <= w <= 10 for w in weights)
        assert all(0.0 <= d.user_data["evokd"]["student_uncertainty"] <= 1.0 for d in docs)
        assert {d.user_data["evokd"]["source"] for d in docs} == {"active"}


def test_auto_source_with_the_student_brief_plans_within_the_round_budget(corpus, tmp_path):
    """source = "auto" + analysis = "student" on the local server: no analysis request (the
    generation chat is system + one user turn: the student's brief and the generation prompt),
    each round split between generation and active picks with its reasons recorded, and no call
    started whose texts could not be labelled in the round's token budget."""
    from spacy_evokd.config import load_config
    from spacy_evokd.report import write_report
    from spacy_evokd.testing.responder import PoolResponder
    from spacy_evokd.testing.server import FakeOpenAIServer

    cfg = ROOT / "configs/textcat_bow.cfg"
    labels = load_config(cfg, {})["evokd"]["labels"]
    responder = PoolResponder(ROOT / "assets/demo/textcat/train.jsonl", get_task("textcat"), labels)
    with FakeOpenAIServer(responder) as server:
        ov = overrides(
            corpus,
            "textcat",
            **{
                **server_teacher(server.base_url),
                "evokd.source": "auto",
                "evokd.analysis": "student",
                "evokd.unlabelled_pool": str(ROOT / "assets/demo/textcat/train.jsonl"),
                "evokd.rounds": 3,
                "evokd.max_tokens_per_round": BUDGET,
            },
        )
        lines = []
        evolve(cfg, tmp_path / "run", ov, teacher=ROOT / "configs/teachers/local_server.cfg", echo=lines.append)
        bodies = [r["body"] for r in server.requests]
    recs = check_run(tmp_path / "run", "textcat", 3, intents=("hard", "easy", "active"))
    for r in recs[1:]:  # each round's progress line says how auto split it
        split = r["sources"]["split"]
        said = f"auto: {split['generate']} generated + {split['active']} active samples asked"
        assert any(f"round {r['round']}/3:" in line and said in line for line in lines)
    assert responder.calls["analysis"] == 0 and responder.calls["generate"] >= 1
    generation = [b for b in bodies if "Now write" in b["messages"][-1]["content"]]
    assert generation and all([m["role"] for m in b["messages"]] == ["system", "user"] for b in generation)
    assert all("Weakness report of the student" in b["messages"][1]["content"] for b in generation)
    assert "even split" in recs[1]["sources"]["split"]["why"]
    for r in recs[1:]:
        split = r["sources"]["split"]
        assert split["generate"] + split["active"] == 8 and split["generate"] % 4 == 0
        if split["generate"]:  # active, labelled first, stops at its share: generation gets the rest
            assert r["usage_by_step"]["generate"]["requests"] >= 1
        # the active share's end is its own entry: planned_stop means a call was not started
        assert "active share" not in r["sources"].get("planned_stop", "")
        assert set(r["usage_by_step"]) <= {"generate", "label", "active_label"}
        booked = sum(r["sources"].get(s, {}).get("tokens", 0) for s in ("generate", "active"))
        assert booked == r["usage"]["total_tokens"]
    for r in recs[2:]:  # with estimates from round 1: planned, never cut by the budget
        assert r["budget_hit"] is None and r["usage"]["total_tokens"] <= BUDGET
    md = write_report(tmp_path / "run").read_text()  # each split, its reasons and where a share ended
    for r in recs[1:]:
        if r["sources"]["split"]["active"]:
            line = next(x for x in md.splitlines() if x.startswith(f"- round {r['round']} sources: "))
            assert r["sources"]["split"]["why"] in line
            assert all(r["sources"][k] in line for k in ("active_share_used", "planned_stop") if k in r["sources"])


def test_run_budget_hit_with_nothing_valid_commits_the_round_and_a_resume_does_not_redo_it(corpus, tmp_path):
    """README: a run-budget hit commits the round. With nothing valid labelled before the hit the
    round is still committed (budget_hit, accepted 0, round n-1's student kept), so the same
    command afterwards stops at once instead of paying for the round again."""
    from spacy_evokd.config import load_config
    from spacy_evokd.testing.responder import PoolResponder
    from spacy_evokd.testing.server import FakeOpenAIServer

    cfg = ROOT / "configs/textcat_bow.cfg"
    labels = load_config(cfg, {})["evokd"]["labels"]
    with FakeOpenAIServer(
        PoolResponder(ROOT / "assets/demo/textcat/train.jsonl", get_task("textcat"), labels)
    ) as server:
        ov = overrides(
            corpus,
            "textcat",
            **{
                **server_teacher(server.base_url),
                "evokd.max_tokens": 1,
                "evokd.rounds": 2,
            },
        )
        teacher = ROOT / "configs/teachers/local_server.cfg"
        result = evolve(cfg, tmp_path / "run", ov, teacher=teacher, echo=lambda _: None)
        n_requests = len(server.requests)
        rec = json.loads((tmp_path / "run/rounds/round_001.json").read_text())
        assert "max_tokens" in result["stopped_by"] and not (tmp_path / "run/rounds/round_002.json").exists()
        assert rec["accepted"] == 0 and "max_tokens" in rec["budget_hit"] and "max_tokens" in rec["stopped_by"]
        assert rec["dev"] == json.loads((tmp_path / "run/rounds/round_000.json").read_text())["dev"]
        lines = []
        again = evolve(cfg, tmp_path / "run", ov, teacher=teacher, echo=lines.append)
        assert len(server.requests) == n_requests  # nothing asked again
    assert "resuming after round 1" in lines[0] and "max_tokens" in again["stopped_by"]
    assert not any("round 1:" in l for l in lines)

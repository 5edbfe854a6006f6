"""The run directory: one process at a time (OUTPUT_DIR/.lock), JSON a kill can't truncate, and
damaged files reported in one line (or repaired, for model-best/meta.json)."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import spacy

from spacy_evokd.cache import UsageLedger
from spacy_evokd.loop import RunState, evolve
from spacy_evokd.run_files import RunDirError, hold_run_dir
from spacy_evokd.tasks import get_task
from spacy_evokd.testing.responder import PoolResponder
from spacy_evokd.testing.server import FakeOpenAIServer

from .conftest import server_teacher
from .test_loop import ROOT, check_run, overrides

# its module-scoped fixtures run once: the parallel run (-n 2 --dist loadgroup) keeps the file on one worker
pytestmark = pytest.mark.xdist_group("test_run_dir")

CFG = ROOT / "configs/textcat_bow.cfg"
LABELS = ["account", "billing", "product_question", "shipping", "technical"]
EVOLVE = [sys.executable, "-m", "spacy_evokd", "evolve", str(CFG)]


def cli_args(ov):
    return [f"--{k}={v}" for k, v in ov.items()]


def one_line_error(proc, *parts):
    """Exit 1, one "✘" line naming ``parts``, no traceback."""
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and proc.stderr.count("✘") == 1, proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("✘ ") and all(p in last for p in parts), last
    return last


def test_lock_refuses_a_second_holder_and_survives_a_killed_one(tmp_path):
    run = tmp_path / "run"
    with hold_run_dir(run):
        assert (run / ".lock").read_text().strip() == str(os.getpid())
        with pytest.raises(RunDirError, match=rf"{run} is in use by another run \(pid {os.getpid()}\)"):
            with hold_run_dir(run):
                pass
    with hold_run_dir(run):  # released at the end of the block
        pass
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from spacy_evokd.run_files import hold_run_dir\n"
            f"with hold_run_dir({str(run)!r}):\n    print('held', flush=True); time.sleep(120)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(RunDirError, match=rf"pid {holder.pid}\)"):
        with hold_run_dir(run):
            pass
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    with hold_run_dir(run):  # the kernel dropped the dead holder's lock; its file is still there
        assert (run / ".lock").read_text().strip() == str(os.getpid())


@pytest.mark.slow  # 80 s: two real runs; test_lock_refuses_a_second_holder_and_survives_a_killed_one checks the lock itself
def test_second_evolve_on_the_same_directory_is_refused_and_the_first_is_untouched(corpus, tmp_path):
    """Two real `evolve` processes on one OUTPUT_DIR (LLM teacher on the local test server, so
    the usage ledger has rows to lose). Then `select` on a directory another process holds."""
    run = tmp_path / "run"
    responder = PoolResponder(ROOT / "assets/demo/textcat/train.jsonl", get_task("textcat"), LABELS)
    with FakeOpenAIServer(responder) as server:
        ov = overrides(
            corpus,
            "textcat",
            **{
                **server_teacher(server.base_url),
            },
        )
        cmd = EVOLVE + [str(run), "--teacher", str(ROOT / "configs/teachers/local_server.cfg")] + cli_args(ov)
        first = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 120
        while first.poll() is None and time.time() < deadline:
            if (run / ".lock").exists() and (run / ".lock").read_text().strip():
                break
            time.sleep(0.05)
        assert first.poll() is None, "the first run ended before the second could start"
        second = subprocess.run(cmd, capture_output=True, text=True)
        assert first.poll() is None, "the first run ended while the second started: the test proves nothing"
        one_line_error(
            second, f"✘ {run} is in use by another run (pid {first.pid}); wait for it or use another output directory"
        )
        out, err = first.communicate(timeout=600)
        n_requests = len(server.requests)
    assert first.returncode == 0, err[-2000:]
    assert "resuming" not in out and "round 2/2: accepted" in out
    recs = check_run(run, "textcat", 2)
    # every request the first run made is booked once, in the round that made it
    assert n_requests == 2 * 2 * 3  # 2 rounds x 2 analyses x (analysis, generation, labelling)
    ledger = UsageLedger(run / "cache.sqlite")
    assert ledger.totals().requests == n_requests
    for r in recs[1:]:
        assert ledger.totals(round=r["round"]).requests == r["usage"]["requests"] == 6

    # `select` into a directory held by another process (this one): refused the same way
    sel = tmp_path / "selection"
    select = [
        sys.executable,
        "-m",
        "spacy_evokd",
        "select",
        str(CFG),
        str(ROOT / "assets/demo/textcat/train.jsonl"),
        str(run / "model-best"),
        str(sel),
        "--teacher",
        str(ROOT / "configs/teachers/simulated_noisy.cfg"),
        "--batch-size",
        "64",
    ] + cli_args(overrides(corpus, "textcat"))
    with hold_run_dir(sel):
        one_line_error(
            subprocess.run(select, capture_output=True, text=True),
            f"{sel} is in use by another run (pid {os.getpid()})",
        )
        assert not list(sel.glob("selected_*"))
    done = subprocess.run(select, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert list(sel.glob("selected_*.json")) and json.loads((sel / "summary.json").read_text())["pool"] == 180


@pytest.fixture(scope="module")
def finished(corpus, tmp_path_factory):
    """A finished 1-round run (simulated teacher); tests damage copies of it."""
    run = tmp_path_factory.mktemp("finished") / "run"
    ov = overrides(corpus, "textcat", **{"evokd.rounds": 1})
    evolve(CFG, run, ov, echo=lambda _: None)
    return run, ov


@pytest.fixture
def run_copy(finished, tmp_path):
    run, ov = finished
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    return copy, ov


def test_damaged_round_record_is_one_line_in_resume_and_report(run_copy):
    run, ov = run_copy
    record = run / "rounds/round_001.json"
    text = record.read_text()
    record.write_text(text[: len(text) // 2])  # truncated, as by a full disk
    resume = subprocess.run(EVOLVE + [str(run)] + cli_args(ov), capture_output=True, text=True)
    one_line_error(resume, f"{record}: damaged file (invalid JSON", "delete it")
    report = subprocess.run([sys.executable, "-m", "spacy_evokd", "report", str(run)], capture_output=True, text=True)
    one_line_error(report, f"{record}: damaged file (invalid JSON")

    rec = json.loads(text)
    del rec["dev"]
    record.write_text(json.dumps(rec))
    resume = subprocess.run(EVOLVE + [str(run)] + cli_args(ov), capture_output=True, text=True)
    one_line_error(resume, f"{record}: damaged round record (missing key 'dev')")
    rec = dict(json.loads(text), usage={"requests": 0})
    record.write_text(json.dumps(rec))
    with pytest.raises(
        RunDirError, match=r"round_001.json: damaged round record \('usage' lacks a numeric 'prompt_tokens'\)"
    ):
        from spacy_evokd.report import write_report

        write_report(run)
    record.write_text(text)
    (run / "rounds/round_000.json").unlink()
    with pytest.raises(RunDirError, match=r"round 000 is missing but 001 exists"):
        RunState(run).committed()


def test_kill_while_stamping_meta_leaves_a_valid_meta(run_copy):
    """SIGKILL in the middle of writing model-best/meta.json (half of it written): the file
    is still whole JSON, and the resumed run cleans up after the kill."""
    run, ov = run_copy
    meta = run / "model-best/meta.json"
    before = json.loads(meta.read_text())
    dying = (
        "import os, pathlib, signal, sys\n"
        "from spacy_evokd.loop import RunState\n"
        "real = pathlib.Path.write_text\n"
        "def write_text(self, data, *a, **k):\n"
        "    if self.name.startswith('meta.json'):\n"
        "        real(self, data[: len(data) // 2], *a, **k)\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"
        "    return real(self, data, *a, **k)\n"
        "pathlib.Path.write_text = write_text\n"
        "RunState(pathlib.Path(sys.argv[1])).update_best()\n"
    )
    proc = subprocess.run([sys.executable, "-c", dying, str(run)], capture_output=True, text=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert json.loads(meta.read_text()) == before
    resume = subprocess.run(EVOLVE + [str(run)] + cli_args(ov), capture_output=True, text=True)
    assert resume.returncode == 0, resume.stderr[-2000:]
    assert json.loads(meta.read_text())["evokd"] == before["evokd"]
    assert not list((run / "model-best").glob("*.tmp"))


def test_damaged_meta_is_rebuilt_on_resume(run_copy, corpus):
    run, ov = run_copy
    meta = run / "model-best/meta.json"
    before = json.loads(meta.read_text())
    meta.write_text(meta.read_text()[:100])
    resume = subprocess.run(EVOLVE + [str(run)] + cli_args(ov), capture_output=True, text=True)
    assert resume.returncode == 0, resume.stderr[-2000:]
    assert "resuming after round 1" in resume.stdout
    assert json.loads(meta.read_text())["evokd"] == before["evokd"]
    assert spacy.load(run / "model-best").meta["evokd"]["best_round"] == before["evokd"]["best_round"]
    evaluate = subprocess.run(
        [sys.executable, "-m", "spacy_evokd", "evaluate", str(run / "model-best"), str(corpus / "textcat/test.spacy")],
        capture_output=True,
        text=True,
    )
    assert evaluate.returncode == 0 and "macro_f" in evaluate.stdout, evaluate.stderr[-2000:]

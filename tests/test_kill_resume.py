"""SIGKILL the loop at random points, at least 20 times, then rerun the same command: the result
equals an uninterrupted run with the same seed (LLM teacher on the local test server, so the
response cache matters). Slow: run with `bin/test -m slow`."""

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from spacy_evokd.cache import UsageLedger
from spacy_evokd.data import read_docbin
from spacy_evokd.tasks import get_task
from spacy_evokd.testing.responder import PoolResponder
from spacy_evokd.testing.server import FakeOpenAIServer

from .conftest import server_teacher
from .test_loop import ROOT, overrides

pytestmark = pytest.mark.slow
LABELS = ["account", "billing", "product_question", "shipping", "technical"]


def committed(run: Path) -> int:
    return len(list((run / "rounds").glob("round_*.json"))) if (run / "rounds").exists() else 0


def comparable(run: Path):
    rounds = sorted((run / "rounds").glob("round_*.json"))
    recs = []
    for p in rounds:
        r = json.loads(p.read_text())
        r.pop("seconds")
        r["usage"].pop("cached")
        recs.append(r)
    docs = [
        [(d.text, d.cats, d.user_data["evokd"]["intent"]) for d in read_docbin(p)]
        for p in sorted((run / "rounds").glob("round_*.spacy"))
    ]
    ledger = [
        (r["round"], r["step"], r["requests"], r["prompt_tokens"], r["completion_tokens"])
        for r in UsageLedger(run / "cache.sqlite").rows()
    ]
    return [p.name for p in rounds], recs, docs, sorted(ledger)


def test_twenty_random_kills_change_nothing(corpus, tmp_path):
    rng = random.Random(7)
    with FakeOpenAIServer(
        PoolResponder(ROOT / "assets/demo/textcat/train.jsonl", get_task("textcat"), LABELS)
    ) as server:
        ov = overrides(
            corpus,
            "textcat",
            **{
                "evokd.rounds": 4,
                **server_teacher(server.base_url),
                "training.max_steps": 20,
            },
        )

        def cmd(out):
            return [
                sys.executable,
                "-m",
                "spacy_evokd",
                "evolve",
                str(ROOT / "configs/textcat_bow.cfg"),
                str(out),
                "--teacher",
                str(ROOT / "configs/teachers/local_server.cfg"),
            ] + [f"--{k}={v}" for k, v in ov.items()]

        t0 = time.monotonic()
        subprocess.run(cmd(tmp_path / "ref"), check=True, capture_output=True)
        span = time.monotonic() - t0  # an uninterrupted run's length sets the kill schedule
        run, kills, attempts, killed_with = tmp_path / "run", 0, 0, []
        while True:
            attempts += 1
            # mostly short lives (killed during start-up, teacher calls or training); every 5th
            # attempt lives until it has committed a round, so the run moves on between kills
            proc = subprocess.Popen(cmd(run), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if attempts % 5:
                time.sleep(rng.uniform(0.3, span / 8))
            else:
                before = committed(run)
                while proc.poll() is None and committed(run) == before:
                    time.sleep(0.1)
                time.sleep(rng.uniform(0.0, span / 10))
            if proc.poll() is not None:  # finished: the run is complete
                break
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills += 1
            killed_with.append(committed(run))
            if committed(run) == 5 and kills >= 20:  # every round is in; enough kills
                break
        print(
            f"kill/resume: {kills} SIGKILLs in {attempts} attempts; committed rounds at each kill: {killed_with}; "
            f"uninterrupted run {span:.0f} s"
        )
        subprocess.run(cmd(run), check=True, capture_output=True)
    names, recs, docs, ledger = comparable(run)
    ref_names, ref_recs, ref_docs, ref_ledger = comparable(tmp_path / "ref")
    assert kills >= 20
    assert names == ref_names == [f"round_{n:03d}.json" for n in range(5)]
    assert docs == ref_docs  # same samples, same order, no duplicates, every DocBin loads
    assert ledger == ref_ledger
    assert [r["accepted"] for r in recs] == [r["accepted"] for r in ref_recs]
    assert [r["analyses"] for r in recs] == [r["analyses"] for r in ref_recs]
    assert [r["dev"]["score"] for r in recs] == pytest.approx([r["dev"]["score"] for r in ref_recs])

"""The SQLite response cache and usage ledger: keys, two processes at once, a kill mid-write."""

import signal
import sqlite3
import subprocess
import sys
import time

from spacy_evokd.cache import ResponseCache, UsageLedger, make_key
from spacy_evokd.ty import Usage

WRITER = """
import sys
from spacy_evokd.cache import ResponseCache, make_key
cache = ResponseCache(sys.argv[1])
name, n = sys.argv[2], int(sys.argv[3])
for i in range(n):
    cache.put(make_key(name, {}, [{"role": "user", "content": str(i)}]), name, {"texts": [name + str(i)] * 50})
    other = "b" if name == "a" else "a"
    cache.get(make_key(other, {}, [{"role": "user", "content": str(i)}]))
"""


def test_key_covers_model_params_and_every_message():
    msgs = [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]
    base = make_key("m", {"temperature": 0.7}, msgs)
    assert base == make_key("m", {"temperature": 0.7}, [dict(m) for m in msgs])  # stable
    assert base != make_key("m2", {"temperature": 0.7}, msgs)
    assert base != make_key("m", {"temperature": 0.0}, msgs)
    assert base != make_key("m", {"temperature": 0.7}, [msgs[0], {"role": "user", "content": "u "}])
    assert base != make_key("m", {"temperature": 0.7}, [{"role": "system", "content": "s2"}, msgs[1]])


def test_two_processes_write_and_read_at_once(tmp_path):
    db = tmp_path / "c.sqlite"
    ResponseCache(db)
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(db), name, "150"]) for name in ("a", "b")]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    cache = ResponseCache(db)
    assert len(cache) == 300
    for name in ("a", "b"):
        for i in (0, 77, 149):
            assert cache.get(make_key(name, {}, [{"role": "user", "content": str(i)}]))["texts"][0] == f"{name}{i}"


def test_kill_mid_write_leaves_a_consistent_cache(tmp_path):
    db = tmp_path / "c.sqlite"
    ResponseCache(db)
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(db), "a", "100000"])
    deadline = time.time() + 60
    while time.time() < deadline:
        time.sleep(0.3)
        with sqlite3.connect(db, timeout=30) as con:
            if con.execute("SELECT COUNT(*) FROM responses").fetchone()[0] > 50:
                break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with sqlite3.connect(db) as con:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        n = con.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
    cache = ResponseCache(db)
    assert n > 50 and len(cache) == n
    # every committed entry is whole; the next one was either fully written or not at all
    for i in range(n):
        value = cache.get(make_key("a", {}, [{"role": "user", "content": str(i)}]))
        assert value == {"texts": [f"a{i}"] * 50}
    cache.put("k", "m", {"texts": ["after"]})  # still writable
    assert cache.get("k") == {"texts": ["after"]}


def test_ledger_totals_per_round_and_drop():
    import pathlib
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        ledger = UsageLedger(pathlib.Path(d) / "c.sqlite")
        ledger.record(1, "analysis", "m", Usage(requests=1, prompt_tokens=10, completion_tokens=5, cost=0.1))
        ledger.record(
            2, "label", "m", Usage(requests=2, prompt_tokens=20, completion_tokens=5, cached=1, estimated=True)
        )
        ledger.record(2, "label", "m", Usage())  # nothing used: not booked
        assert ledger.totals().total_tokens == 40 and ledger.totals(round=2).requests == 2
        assert ledger.totals(round=2).estimated and not ledger.totals(round=1).estimated
        assert len(ledger.rows()) == 2
        ledger.drop_rounds_after(1)
        assert ledger.totals().to_dict()["total_tokens"] == 15

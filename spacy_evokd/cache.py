"""Teacher response cache and usage ledger, both in one SQLite file (OUTPUT_DIR/cache.sqlite).

Why SQLite: several processes (a resumed run, `select` beside `evolve`) may use the same file;
WAL mode plus one short transaction per write makes that safe, and a kill mid-write leaves the
last committed state (SQLite's journal rolls the half-written transaction back).

The cache is content-addressed: the key is a SHA-256 over the model name, the request parameters
and the full messages, so a changed prompt, temperature or model never returns a stale answer.
Neither table stores API keys or headers: callers pass only model name, body parameters and
messages (models/openai_compatible.py keeps the key out of ``params``).
Answers are untrusted text: a lone surrogate (which UTF-8 can't encode) in a stored value is
replaced by U+FFFD (untrusted.storable) instead of failing the write. The transport already makes
answers storable, so this is the last line of defence, not the usual path.

The ledger books the usage of every answer the loop used, per round and step. An answer served
from the cache is booked with its original token counts and cost (and ``cached`` = 1), so a run
that was killed and resumed has the same ledger as one that was not; ``cached`` says how much of
it was not paid twice.
"""

import hashlib
import json
import sqlite3
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Union

from .ty import Usage
from .untrusted import storable

_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    value TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS usage (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    round INTEGER NOT NULL,
    step TEXT NOT NULL,
    model TEXT NOT NULL,
    requests INTEGER NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    cost REAL NOT NULL,
    cached INTEGER NOT NULL,
    estimated INTEGER NOT NULL,
    created REAL NOT NULL,
    prompt_cached INTEGER NOT NULL DEFAULT 0,
    seconds REAL NOT NULL DEFAULT 0
);
"""
# columns added after the first release: ledgers written before get them (ALTER TABLE)
_ADDED_COLUMNS = {"prompt_cached": "INTEGER NOT NULL DEFAULT 0", "seconds": "REAL NOT NULL DEFAULT 0"}


class _SQLite:
    def __init__(self, path: Union[str, Path]):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as con:
            con.executescript(_SCHEMA)
            have = {row[1] for row in con.execute("PRAGMA table_info(usage)")}
            for name, kind in _ADDED_COLUMNS.items():
                if name not in have:
                    con.execute(f"ALTER TABLE usage ADD COLUMN {name} {kind}")

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        # a connection per operation: safe across threads (the model's worker pool) and processes
        con = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        try:
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA synchronous=NORMAL")
            yield con
        finally:
            con.close()


def make_key(model: str, params: Dict[str, Any], messages: List[Dict[str, str]]) -> str:
    """Stable key over everything that determines an answer."""
    blob = json.dumps({"model": model, "params": params, "messages": messages}, sort_keys=True, ensure_ascii=False)
    # surrogatepass: a lone surrogate in a message must not crash the run (valid text: plain UTF-8)
    return hashlib.sha256(blob.encode("utf8", "surrogatepass")).hexdigest()


class ResponseCache(_SQLite):
    def get(self, key: str) -> Optional[Dict[str, Any]]:
        with self._connect() as con:
            row = con.execute("SELECT value FROM responses WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def put(self, key: str, model: str, value: Dict[str, Any]) -> None:
        with self._connect() as con:
            con.execute(
                "INSERT OR REPLACE INTO responses (key, model, value, created) VALUES (?, ?, ?, ?)",
                (key, model, storable(json.dumps(value, ensure_ascii=False)), time.time()),
            )

    def __len__(self) -> int:
        with self._connect() as con:
            return con.execute("SELECT COUNT(*) FROM responses").fetchone()[0]


class UsageLedger(_SQLite):
    def record(self, round: int, step: str, model: str, usage: Usage) -> None:
        if not usage.requests and not usage.total_tokens:
            return
        with self._connect() as con:
            con.execute(
                "INSERT INTO usage (round, step, model, requests, prompt_tokens, completion_tokens, cost, cached,"
                " estimated, created, prompt_cached, seconds) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    round,
                    step,
                    model,
                    usage.requests,
                    usage.prompt_tokens,
                    usage.completion_tokens,
                    usage.cost,
                    usage.cached,
                    int(usage.estimated),
                    time.time(),
                    usage.prompt_cached,
                    usage.seconds,
                ),
            )

    def totals(self, round: Optional[int] = None) -> Usage:
        where, args = ("WHERE round = ?", (round,)) if round is not None else ("", ())
        with self._connect() as con:
            row = con.execute(
                "SELECT COALESCE(SUM(requests),0), COALESCE(SUM(prompt_tokens),0), COALESCE(SUM(completion_tokens),0),"
                f" COALESCE(SUM(cost),0), COALESCE(SUM(cached),0), COALESCE(MAX(estimated),0),"
                f" COALESCE(SUM(prompt_cached),0), COALESCE(SUM(seconds),0) FROM usage {where}",
                args,
            ).fetchone()
        return Usage(
            requests=row[0],
            prompt_tokens=row[1],
            completion_tokens=row[2],
            cost=row[3],
            cached=row[4],
            estimated=bool(row[5]),
            prompt_cached=row[6],
            seconds=row[7],
        )

    def rows(self) -> List[Dict[str, Any]]:
        with self._connect() as con:
            con.row_factory = sqlite3.Row
            return [dict(r) for r in con.execute("SELECT * FROM usage ORDER BY id")]

    def drop_rounds_after(self, n: int) -> None:
        """Forget usage booked by rounds that were never committed (they are redone on resume)."""
        with self._connect() as con:
            con.execute("DELETE FROM usage WHERE round > ?", (n,))

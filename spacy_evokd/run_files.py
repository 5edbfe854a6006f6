"""The files of a run directory (`evolve` and `select` output): one process at a time, JSON that a
kill can't truncate, and records that are checked when read.

* ``hold_run_dir``: an flock on OUTPUT_DIR/.lock for the whole run. A second process on the same
  directory would discard the first one's round in progress and rewrite its usage rows; it is
  refused instead, naming the holder's pid. The kernel drops an flock when its process exits or
  is killed, so a stale .lock file never blocks a rerun.
* ``write_json`` / ``write_text``: temp file + rename, so a reader sees the old file or the new
  one, never half of it.
* ``read_round_record``: a damaged round_NNN.json (hand-edited, disk trouble, a foreign tool) is
  one line naming the file, not a KeyError deep in the loop or the report.

Kept free of spaCy imports: `report` uses it too.
"""

import json
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Dict, Iterator, Optional, Union

try:
    import fcntl
except ImportError:  # Windows: no flock; runs are not protected against each other there
    fcntl = None

from .ty import EvokdError
from .untrusted import parse_json

LOCK_NAME = ".lock"


class RunDirError(EvokdError, ValueError):
    """A run directory in use by another process, or holding a damaged file (the message names it)."""


@contextmanager
def hold_run_dir(path: Union[str, Path]) -> Iterator[None]:
    """Hold OUTPUT_DIR/.lock (created with the directory if needed) until the block ends."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    # O_CREAT without O_TRUNC: the holder's pid must survive our attempt to lock
    fd = os.open(path / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise RunDirError(
                    f"{path} is in use by another run ({_holder(fd)}); wait for it or use another output directory"
                ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)  # a finished run's pid must never be named as a holder
    finally:
        os.close(fd)  # releases the flock


def _holder(fd: int) -> str:
    # the holder writes its pid right after locking: give it a moment if we were that fast
    for _ in range(20):
        pid = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        if pid:
            return f"pid {pid}"
        time.sleep(0.05)
    return "pid unknown"


def write_text(path: Union[str, Path], text: str) -> None:
    """Write ``text`` atomically: a kill leaves the previous file or the new one, never half."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf8")
    os.replace(tmp, path)


def write_json(path: Union[str, Path], obj: Any, indent: Optional[int] = 2) -> None:
    write_text(path, json.dumps(obj, indent=indent, ensure_ascii=False))


def read_json(path: Union[str, Path]) -> Any:
    """Parsed JSON, or RunDirError naming the file when it is truncated or invalid (a missing
    file is the caller's FileNotFoundError)."""
    path = Path(path)
    try:
        return parse_json(path.read_text(encoding="utf8"))
    except UnicodeDecodeError:
        raise RunDirError(f"{path}: damaged file (not UTF-8 text)") from None
    except json.JSONDecodeError as e:
        raise RunDirError(f"{path}: damaged file (invalid JSON: {e.msg} at line {e.lineno})") from None


def is_json_object(path: Union[str, Path]) -> bool:
    try:
        return isinstance(read_json(path), dict)
    except (RunDirError, OSError):
        return False


# what the loop, the model-best meta stamp and the report read from every round record
_RECORD_TYPES = {
    "round": int,
    "teacher": str,
    "simulated": bool,
    "analyses": list,
    "generated": int,
    "accepted": int,
    "rejected": dict,
    "accepted_per_label": dict,
    "usage": dict,
    "dev": dict,
    "feedback": dict,
    "train_size": int,
    "seconds": dict,
}
_NUMBER = (int, float)


def _record_problem(rec: Any, n: Optional[int]) -> Optional[str]:
    if not isinstance(rec, dict):
        return f"expected a JSON object, got {type(rec).__name__}"
    for key, typ in _RECORD_TYPES.items():
        if key not in rec:
            return f"missing key {key!r}"
        if not isinstance(rec[key], typ):
            return f"{key!r} is not a {typ.__name__}"
    if n is not None and rec["round"] != n:
        return f"says round {rec['round']}, expected {n}"
    if not isinstance(rec["dev"].get("score"), _NUMBER) or not isinstance(rec["dev"].get("per_label"), dict):
        return "'dev' lacks a numeric 'score' or a 'per_label' object"
    for key in ("requests", "prompt_tokens", "completion_tokens", "total_tokens", "cost"):
        if not isinstance(rec["usage"].get(key), _NUMBER):
            return f"'usage' lacks a numeric {key!r}"
    if not all(isinstance(rec["feedback"].get(k), list) for k in ("correct", "wrong")):
        return "'feedback' lacks the 'correct' and 'wrong' lists"
    batch = rec.get("batch_scores")
    if batch is not None and not (isinstance(batch, dict) and isinstance(batch.get("score"), _NUMBER)):
        return "'batch_scores' is neither null nor an object with a numeric 'score'"
    return None


def read_round_record(path: Union[str, Path], n: Optional[int] = None) -> Dict[str, Any]:
    """A committed round record (round ``n`` when given), checked for what its readers use."""
    path = Path(path)
    try:
        rec = read_json(path)
    except RunDirError as e:
        raise RunDirError(f"{e}; delete it and the later rounds' records to redo those rounds") from None
    problem = _record_problem(rec, n)
    if problem:
        raise RunDirError(
            f"{path}: damaged round record ({problem}); delete it and the later rounds' records to redo those rounds"
        )
    return rec

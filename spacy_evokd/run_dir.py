"""``RunDir``: an `evolve` output directory, read-only - where each file is, the committed
rounds, their typed records and DocBins, what a review removed. The loop's write side
(``run_state.RunState``) extends it; the report, the review, the augmenter, `package` and the
benchmarks read through it, so the layout below is written down once.

Layout of OUTPUT_DIR (state on disk is the source of truth):
  config.cfg                 the config the run was started with (overrides applied)
  cache.sqlite               teacher response cache + usage ledger
  rounds/round_NNN.spacy     accepted samples of round N (N >= 1)
  rounds/round_NNN.json      round record (records.RoundRecord); written last: its presence *commits* round N
  models/round_NNN/          the student trained in round N (round 0: on the seed)
  model-best/                the best student on dev so far
  work/                      scratch space of the round in progress (discarded on resume)
  review/                    `import-review`'s files (review.py): removed.jsonl, log.jsonl, original/
  retrained/                 `retrain`'s student (model-best) and retrained.json
  report/                    `report`'s output

Kept free of spaCy imports at module level: `report` and the augmenter use it.
"""

import re
from pathlib import Path
from typing import Any, Dict, List, Optional, Set, Union

from .records import RoundRecord
from .run_files import RunDirError
from .untrusted import parse_json

_RECORD = re.compile(r"round_(\d+)\.json")
_ANY_SUFFIX = re.compile(r"round_(\d+)(\..*)?")


def record_name(n: int) -> str:
    return f"round_{n:03d}.json"


def docbin_name(n: int) -> str:
    return f"round_{n:03d}.spacy"


def round_number(name: str, any_suffix: bool = False) -> Optional[int]:
    """N of "round_NNN.json" (``any_suffix``: of round_NNN, round_NNN.spacy, round_NNN.json.tmp ...)."""
    m = (_ANY_SUFFIX if any_suffix else _RECORD).fullmatch(name)
    return int(m.group(1)) if m else None


def committed_docbins(rounds_dir: Union[str, Path]) -> Dict[int, Path]:
    """Round -> DocBin of the committed rounds >= 1 in a rounds/ folder that have one (a round that
    accepted nothing wrote no DocBin; a DocBin without its record is not committed)."""
    rounds_dir = Path(rounds_dir)
    out = {}
    for p in rounds_dir.glob("round_*.json"):
        n = round_number(p.name)
        if n is not None and n >= 1 and (rounds_dir / docbin_name(n)).exists():
            out[n] = rounds_dir / docbin_name(n)
    return dict(sorted(out.items()))


class RunDir:
    """An `evolve` output directory, read-only (nothing here writes or creates a file)."""

    def __init__(self, path: Union[str, Path]):
        self.dir = Path(path)
        self.rounds_dir = self.dir / "rounds"
        self.models_dir = self.dir / "models"
        self.work_dir = self.dir / "work"
        self.config_path = self.dir / "config.cfg"
        self.cache_path = self.dir / "cache.sqlite"
        self.model_best = self.dir / "model-best"
        self.review_dir = self.dir / "review"
        self.retrained_dir = self.dir / "retrained"
        self.report_dir = self.dir / "report"

    # -- paths ---------------------------------------------------------------------------------

    def record_path(self, n: int) -> Path:
        return self.rounds_dir / record_name(n)

    def docbin_path(self, n: int) -> Path:
        return self.rounds_dir / docbin_name(n)

    def model_path(self, n: int) -> Path:
        return self.models_dir / f"round_{n:03d}"

    def student_path(self, n: int) -> Path:
        """The student round n ends with (the best of its training on dev)."""
        return self.model_path(n) / "model-best"

    def work_round_dir(self, n: int) -> Path:
        """Scratch space of round n while it is in progress (work/round_NNN)."""
        return self.work_dir / f"round_{n:03d}"

    @property
    def removed_path(self) -> Path:
        return self.review_dir / "removed.jsonl"

    def original_docbin_path(self, n: int) -> Path:
        """Where a review keeps round n's DocBin as the loop wrote it (copied before it first changes it)."""
        return self.review_dir / "original" / docbin_name(n)

    @property
    def review_log_path(self) -> Path:
        return self.review_dir / "log.jsonl"

    @property
    def retrained_model(self) -> Path:
        return self.retrained_dir / "model-best"

    @property
    def retrained_info_path(self) -> Path:
        return self.retrained_dir / "retrained.json"

    # -- rounds --------------------------------------------------------------------------------

    def committed(self) -> List[int]:
        """Committed round numbers; they are contiguous from 0 by construction."""
        if not self.rounds_dir.exists():
            return []
        nums = sorted(
            n for n in map(round_number, (p.name for p in self.rounds_dir.glob("round_*.json"))) if n is not None
        )
        for expected, n in enumerate(nums):
            if n != expected:
                raise RunDirError(
                    f"{self.rounds_dir}: round {expected:03d} is missing but {n:03d} exists; "
                    "delete the later rounds' records to redo them"
                )
        return nums

    def load_record(self, n: int) -> RoundRecord:
        """Round n's record; a damaged one is a RunDirError naming the file."""
        return RoundRecord.load(self.record_path(n), n)

    def load_records(self) -> List[RoundRecord]:
        """The committed round records in order (FileNotFoundError when there is none)."""
        done = self.committed()
        if not done:
            raise FileNotFoundError(f"{self.dir}: no committed rounds (rounds/round_NNN.json)")
        return [self.load_record(n) for n in done]

    def generated_rounds(self) -> List[int]:
        """Committed rounds >= 1 that have a DocBin (generated samples to read, review, replay)."""
        return list(committed_docbins(self.rounds_dir))

    def docs(self, n: int, vocab=None) -> list:
        """Round n's accepted samples as its DocBin holds them now (after any review); [] when the
        round wrote no DocBin."""
        from .data import read_docbin

        path = self.docbin_path(n)
        return read_docbin(path, vocab) if path.exists() else []

    def round_model(self, n: int) -> Optional[Path]:
        """Round n's student when it is still kept (pruning deletes most round models)."""
        model = self.student_path(n)
        return model if (model / "meta.json").exists() else None

    # -- what a review left --------------------------------------------------------------------

    def removed_rows(self) -> List[Dict[str, Any]]:
        """review/removed.jsonl's rows ([] without one). Raises RunDirError naming file:line for a
        damaged line: it must stop the run, not silently let a removed sample back in."""
        path = self.removed_path
        if not path.exists():
            return []
        rows = []
        for lineno, raw in enumerate(path.read_text(encoding="utf8").splitlines(), start=1):
            if not raw.strip():
                continue
            try:
                row = parse_json(raw)
            except ValueError:
                row = None
            if not isinstance(row, dict) or not isinstance(row.get("text"), str):
                raise RunDirError(
                    f'{path}:{lineno}: damaged line (expected a JSON object with "text"); fix or delete it'
                )
            rows.append(row)
        return rows

    def removed_texts(self) -> Set[str]:
        """Texts of the samples a review removed: the loop adds them to its seen texts, so a
        removed sample never returns (review.removed_texts)."""
        return {r["text"] for r in self.removed_rows()}

    def review_log(self) -> List[Dict[str, Any]]:
        """review/log.jsonl's entries, one per `import-review` ([] before any)."""
        path = self.review_log_path
        if not path.exists():
            return []
        return [parse_json(line) for line in path.read_text(encoding="utf8").splitlines() if line.strip()]

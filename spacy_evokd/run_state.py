"""How an `evolve` round is committed under OUTPUT_DIR, and what a resume discards: the write side
of ``run_dir.RunDir`` (the layout is written down there).
"""

import logging
import os
import shutil
from pathlib import Path
from typing import Optional, Sequence, Tuple

from spacy.tokens import Doc

from .data import write_docbin
from .records import RoundRecord
from .run_dir import RunDir, round_number
from .run_files import is_json_object, read_json, write_json

logger = logging.getLogger("spacy_evokd.loop")


class RunState(RunDir):
    """What is committed under OUTPUT_DIR, and the loop's writes to it."""

    def discard_uncommitted(self) -> None:
        """Remove everything a crashed round left behind, so it is redone from scratch (the
        response cache makes the redo cheap and identical)."""
        done = set(self.committed())
        shutil.rmtree(self.work_dir, ignore_errors=True)
        for folder, pattern in ((self.rounds_dir, "round_*"), (self.models_dir, "round_*")):
            if not folder.exists():
                continue
            for p in folder.glob(pattern):
                n = round_number(p.name, any_suffix=True)
                if n is None:  # not ours (e.g. a user's note): left alone
                    continue
                if n not in done or p.name.endswith(".tmp"):
                    shutil.rmtree(p) if p.is_dir() else p.unlink()

    def commit(self, n: int, record: RoundRecord, docs: Optional[Sequence[Doc]], model_dir: Path) -> None:
        """Model, then DocBin, then the JSON record by atomic rename: a crash before the last
        rename leaves an uncommitted round that the next run discards."""
        self.models_dir.mkdir(parents=True, exist_ok=True)
        self.rounds_dir.mkdir(parents=True, exist_ok=True)
        final_model = self.model_path(n)
        if final_model.exists():
            shutil.rmtree(final_model)
        os.replace(model_dir, final_model)
        if docs is not None:
            write_docbin(docs, self.docbin_path(n))
        record.save(self.record_path(n))
        shutil.rmtree(model_dir.parent, ignore_errors=True)  # the round's scratch dir (work/round_NNN)

    def prune_models(self, keep: Sequence[int]) -> None:
        """Delete the committed rounds' students except those of the rounds in ``keep``, and
        every round's model-last (only model-best is ever read: warm start, feedback, model-best)."""
        for n in self.committed():
            path = self.model_path(n) if n not in keep else self.model_path(n) / "model-last"
            shutil.rmtree(path, ignore_errors=True)

    def update_best(self, score_key: str = "score") -> Tuple[int, float]:
        """Copy the best committed student on dev to OUTPUT_DIR/model-best (idempotent). A
        model-best whose meta.json is damaged (a kill while an older version wrote it in place)
        is rebuilt from the round's model."""
        best_n, best = 0, -1.0
        for n in self.committed():
            s = self.load_record(n).dev.get(score_key, 0.0)
            if s > best:
                best_n, best = n, s
        src = self.student_path(best_n)
        marker = self.model_best / "evokd_round.txt"
        current = marker.exists() and marker.read_text() == str(best_n)
        if current and not is_json_object(self.model_best / "meta.json"):
            logger.warning("%s: damaged, rebuilding it from round %d", self.model_best / "meta.json", best_n)
            current = False
        if not current:
            tmp = self.dir / "model-best.tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.copytree(src, tmp)
            (tmp / "evokd_round.txt").write_text(str(best_n))
            shutil.rmtree(self.model_best, ignore_errors=True)
            os.replace(tmp, self.model_best)
        (self.model_best / "meta.json.tmp").unlink(missing_ok=True)  # a kill's leftover: not to be packaged
        self._stamp_meta(self.model_best / "meta.json", best_n)  # rounds/samples so far
        return best_n, best

    def _stamp_meta(self, path: Path, best_n: int) -> None:
        """Provenance for `spacy package`: the meta says which teacher, how many rounds and
        samples, and the dev scores (spaCy keeps unknown meta keys)."""
        records = [self.load_record(n) for n in self.committed()]
        best = records[best_n]
        dev = {k: v for k, v in best.dev.items() if isinstance(v, (int, float))}
        samples = sum(r.accepted for r in records[1 : best_n + 1])
        meta = read_json(path)
        kind = "a simulated teacher (pool examples, no LLM)" if best.simulated else f"the teacher {best.teacher}"
        meta["description"] = (
            f"Student distilled with spacy-evokd from {kind}: round {best_n} of "
            f"{len(records) - 1}, {samples} generated samples."
        )
        meta["evokd"] = {
            "teacher": best.teacher,
            "simulated": best.simulated,
            "best_round": best_n,
            "rounds": len(records) - 1,
            "samples": samples,
            "train_size": best.train_size,
            "dev": dev,
        }
        write_json(path, meta)  # atomic: a kill here must not leave a truncated meta.json

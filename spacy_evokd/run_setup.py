"""What `evolve` and `select` both do before their first round or batch: resolve the config, check
the inputs, then hold OUTPUT_DIR and open its response cache and usage ledger.

Every input is checked before OUTPUT_DIR is created: a failed start leaves nothing behind. The
order: the [evokd] settings and teacher (config.py), the output directory (``RunSetup.of``), the
caller's own inputs (data files, pool, student, read with ``read`` / ``validator``), the
teacher's key and server (``check_teacher``: last, the only check that goes out), and only then
``hold``, which creates OUTPUT_DIR.
"""

from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import spacy
from confection import Config
from spacy.language import Language
from spacy.tokens import Doc

from . import preflight
from .cache import ResponseCache, UsageLedger
from .config import EvokdSettings, resolve_evokd
from .data import DataError, read_docbin
from .run_files import hold_run_dir
from .ty import Task, Teacher
from .validation import Validator

CACHE_NAME = "cache.sqlite"  # the response cache and the usage ledger in one SQLite file (as run_dir.py lays out)


@dataclass
class RunSetup:
    """A run's resolved config, before OUTPUT_DIR exists. ``nlp`` is a blank pipeline of the
    config's language: data files are read into its vocab and the validator tokenises with it."""

    config: Config
    settings: EvokdSettings
    teacher: Teacher
    dir: Path
    nlp: Language
    paths: Dict[str, Any]  # the config's [paths], interpolated

    @classmethod
    def of(cls, config: Config, output_dir: Path) -> "RunSetup":
        settings, teacher = resolve_evokd(config)
        out = Path(output_dir)
        preflight.check_output_dir(out)  # before anything is read, trained or asked
        return cls(config, settings, teacher, out, spacy.blank(config["nlp"]["lang"]), config.interpolate()["paths"])

    @property
    def task(self) -> Task:
        return self.settings.task_object

    def read(self, key: str, required: bool = True) -> List[Doc]:
        """The DocBin at [paths] ``key``; unset: an error if ``required``, else no docs."""
        path = self.paths.get(key)
        if not path:
            if required:
                raise DataError(f"config: paths.{key} is not set")
            return []
        return read_docbin(path, self.nlp.vocab)

    def validator(self, blocked: Sequence[Doc], definitions: Optional[Dict[str, str]] = None) -> Validator:
        """The validator of the teacher's answers; the ``blocked`` docs' texts (dev, test) never
        enter training."""
        s = self.settings
        return Validator(
            self.nlp,
            self.task,
            s.labels,
            max_chars=s.max_chars,
            blocked_texts=[d.text for d in blocked],
            definitions=definitions,
        )

    def check_teacher(self) -> None:
        s = self.settings
        preflight.check_templates(self.teacher, grounded=s.grounded, plain=s.analysis == "none")
        preflight.check_teacher(self.teacher, reach=s.check_teacher)

    @contextmanager
    def hold(self) -> Iterator[Tuple[ResponseCache, UsageLedger]]:
        """Create and hold OUTPUT_DIR (a second process on it is refused: run_files.py) and open
        its cache and ledger; the teacher answers from the cache from here on."""
        with hold_run_dir(self.dir):
            cache, ledger = ResponseCache(self.dir / CACHE_NAME), UsageLedger(self.dir / CACHE_NAME)
            self.teacher.use_cache(cache)
            yield cache, ledger

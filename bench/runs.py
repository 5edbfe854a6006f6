"""One benchmark loop run on real data: config, seed, run, per-round dev and test scores.

Shared by the targeting, full-shot and warm-start benchmarks. Every run goes through the
product's own EvoKDLoop and `spacy train` subprocesses; only the teacher block and the scale differ.
"""

import hashlib
import json
import shutil
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, Iterable, Optional, Sequence

import baselines  # noqa: F401  (registers the pool-sampling baselines)
from bench_data import Prepared

ROOT = Path(__file__).parent.parent
STRATEGIES = {
    "evokd": "spacy_evokd.SimulatedTeacher.v1",  # weakness targeting: hard = drawn from the weak labels
    "evokd_near": "spacy_evokd.SimulatedTeacher.v1",  # hard = nearest to the student's wrong samples
    "random": "spacy_evokd_bench.RandomPoolTeacher.v1",
    # the EvoKD arm draws with gold labels, so it can balance classes: this arm balances them too,
    # so class balancing alone is not credited to targeting
    "stratified": "spacy_evokd_bench.StratifiedPoolTeacher.v1",
    "entropy": "spacy_evokd_bench.EntropyPoolTeacher.v1",
    # the product's sources (the simulated teacher labels; [evokd] settings in STRATEGY_SETTINGS)
    "active": "spacy_evokd.SimulatedTeacher.v1",  # the student picks pool texts, the teacher labels them
    "auto": "spacy_evokd.SimulatedTeacher.v1",  # each round split between generation (student brief) and active
}
# MiniLM: the default textcat student (bag of words) has no token vectors to measure nearness with
STRATEGY_ARGS = {"evokd_near": {"hard_from": "near_wrong", "embedder": "minilm"}}
# [evokd] settings of an arm (the others run the paper's loop: source = "generate", analysis = "llm")
STRATEGY_SETTINGS = {"active": {"source": "active"}, "auto": {"source": "auto", "analysis": "student"}}
OURS = ("evokd", "evokd_near", "active", "auto")
MIN_SEEDS_FOR_VERDICT = 3


def code_hash() -> str:
    """A hash of everything a run's numbers depend on besides its config and data: the package,
    its prompts, the benchmark code and the teacher configs. Cached runs are keyed on it, so a code
    change never reuses old numbers."""
    files = [
        f
        for pattern in (
            "spacy_evokd/**/*.py",
            "spacy_evokd/prompts/*.jinja",
            "bench/*.py",
            "bench/prompts/*.jinja",
            "configs/**/*.cfg",
        )
        for f in sorted(ROOT.glob(pattern))
    ]
    h = hashlib.sha256()
    for f in files:
        h.update(f.relative_to(ROOT).as_posix().encode() + f.read_bytes())
    return h.hexdigest()[:12]


def run_key(
    config, data_files: Iterable[Path], code: str, work_dir: Optional[Path] = None, server: Optional[str] = None
) -> str:
    """Code hash + the run's resolved config + the data files' bytes. Paths and the teacher
    server's address are replaced by placeholders (the data folders, the run's temporary
    ``work_dir``, ``server``), so the same run in another process, checkout or port gets the same
    key; the seed file is among ``data_files``."""
    data_files = list(data_files)
    text = config.to_str() if work_dir is None else config.to_str().replace(str(work_dir), "WORK")
    if server:
        text = text.replace(server, "SERVER")
    for f in data_files:
        text = text.replace(str(f.parent), "DATA")
    h = hashlib.sha256(code.encode() + text.encode())
    for f in data_files:
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


# the student every loop benchmark trains: the project's default profile (configs/<task>_<profile>.cfg)
PROFILE = "accurate"


def student_config_path(task: str, profile: str = PROFILE) -> Path:
    return ROOT / f"configs/{task}_{profile}.cfg"


def verdict(ours: Sequence[float], theirs: Sequence[float]) -> str:
    """'ahead' / 'behind' only with >= 3 seeds per arm and a gap of the means larger than the
    pooled std; otherwise 'tie' (saying why when there are too few seeds)."""
    if min(len(ours), len(theirs)) < MIN_SEEDS_FOR_VERDICT:
        return f"tie (< {MIN_SEEDS_FOR_VERDICT} seeds)"
    gap = statistics.mean(ours) - statistics.mean(theirs)
    pooled = ((statistics.variance(ours) + statistics.variance(theirs)) / 2) ** 0.5
    return "tie" if abs(gap) <= pooled else ("ahead" if gap > 0 else "behind")


@dataclass(frozen=True)
class Scale:
    rounds: int
    analyses_per_round: int  # samples per round = analyses_per_round * (n_hard + n_easy)
    n_hard: int
    n_easy: int
    max_steps: int  # training steps of the seed round (and of every round trained from scratch)
    warm_start_steps: int  # training steps of a warm-started round (0 = max_steps)

    @property
    def per_round(self) -> int:
        return self.analyses_per_round * (self.n_hard + self.n_easy)


def config_for(prep: Prepared, strategy: str, seed_path: Path, seed: int, scale: Scale, warm_start: bool = True):
    from spacy_evokd.config import load_config

    overrides = {
        "paths.train": str(seed_path),
        "paths.dev": str(prep.dev),
        "paths.test": str(prep.test),
        "paths.pool": str(prep.pool),
        "system.seed": seed,
        "evokd.labels": prep.labels,
        "evokd.rounds": scale.rounds,
        "evokd.analyses_per_round": scale.analyses_per_round,
        "evokd.n_hard": scale.n_hard,
        "evokd.n_easy": scale.n_easy,
        "evokd.warm_start": warm_start,
        "evokd.warm_start_steps": scale.warm_start_steps,
        "training.max_steps": scale.max_steps,
        "training.eval_frequency": max(1, scale.max_steps // 2),
    }
    config = load_config(student_config_path(prep.task), overrides)
    config["evokd"]["task_description"] = prep.name
    config["evokd"]["label_definitions"] = {}  # the demo's definitions don't apply; simulated teachers ignore them
    if strategy in STRATEGY_SETTINGS:  # the pool the teacher labels is the one the student picks from
        config["evokd"].update(STRATEGY_SETTINGS[strategy], unlabelled_pool=str(prep.pool))
    config["evokd"]["teacher"] = {
        "@misc": STRATEGIES[strategy],
        "labelled_pool": str(prep.pool),
        "task": prep.task,
        "labels": prep.labels,
        "seed": seed,
        **STRATEGY_ARGS.get(strategy, {}),
    }
    return config


def write_seed(prep: Prepared, k: int, seed: int, path: Path) -> int:
    """k-shot seed drawn from the pool (its texts are then never drawn again)."""
    import spacy

    from spacy_evokd.data import jsonl_to_docs, kshot, load_samples, write_docbin
    from spacy_evokd.tasks import get_task

    task = get_task(prep.task)
    lines = [l for l in prep.pool.read_text(encoding="utf8").splitlines() if l.strip()]
    idx = kshot(load_samples(prep.pool, task, prep.labels), task, prep.labels, k, seed)
    src = path.with_suffix(".jsonl")
    src.write_text("\n".join(lines[i] for i in idx) + "\n", encoding="utf8")
    write_docbin(jsonl_to_docs(src, task, spacy.blank("en"), prep.labels), path)
    return len(idx)


@dataclass
class RunResult:
    name: str
    dataset: str
    strategy: str
    k: int
    seed: int
    warm_start: bool
    dev: list  # main metric per round (round 0 = seed only)
    test: list
    accepted: list
    seconds: list  # per round: the record's teacher/train/eval/total
    wall: float  # the whole run, seed round included
    tokens: list = None  # teacher tokens per round
    sources: list = None  # per round: the record's sources (source = "auto"'s split and what each source bought)


def run_loop(
    prep: Prepared,
    strategy: str,
    k: int,
    seed: int,
    scale: Scale,
    cache_dir: Path,
    warm_start: bool = True,
    test_every_round: bool = True,
) -> Dict:
    """Run (or reuse the cached result of) one loop; the run directory is deleted afterwards.
    The cache key is a hash of the code, the run's config and its data (``run_key``)."""
    name = (
        f"{prep.tag}-{strategy}-k{k}-s{seed}-{'warm' if warm_start else 'cold'}-"
        + f"r{scale.rounds}x{scale.per_round}-st{scale.max_steps}-{scale.warm_start_steps}"
    )
    import spacy

    from spacy_evokd import student
    from spacy_evokd.data import read_docbin
    from spacy_evokd.loop import EvoKDLoop
    from spacy_evokd.run_dir import RunDir
    from spacy_evokd.tasks import get_task

    tmp = Path(tempfile.mkdtemp(prefix="evokd-bench-"))
    try:
        write_seed(prep, k, seed, tmp / "seed.spacy")
        config = config_for(prep, strategy, tmp / "seed.spacy", seed, scale, warm_start)
        cached = (
            cache_dir
            / f"{name}-{run_key(config, (tmp / 'seed.spacy', prep.pool, prep.dev, prep.test), code_hash(), tmp)}.json"
        )
        if cached.exists():
            return json.loads(cached.read_text())
        t0 = time.time()
        EvoKDLoop(config, tmp / "run", echo=lambda _: None).run()
        wall = time.time() - t0
        run = RunDir(tmp / "run")
        recs = run.load_records()
        test = []
        if test_every_round:
            nlp0 = spacy.blank("en")
            gold = read_docbin(prep.test, nlp0.vocab)
            for r in recs:
                nlp = student.load(run.student_path(r.round))
                test.append(student.evaluate(nlp, gold, get_task(prep.task), prep.labels)[0]["score"])
        result = RunResult(
            name,
            prep.name,
            strategy,
            k,
            seed,
            warm_start,
            [r.dev["score"] for r in recs],
            test,
            [r.accepted for r in recs],
            [r.seconds for r in recs],
            wall,
            [r.usage.get("total_tokens", 0) for r in recs],
            [r.sources for r in recs],
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    cache_dir.mkdir(parents=True, exist_ok=True)
    cached.write_text(json.dumps(asdict(result), indent=1))
    return asdict(result)


def full_shot(prep: Prepared, steps: int, cache_dir: Path) -> Dict:
    """The student trained on the whole train split (the upper bound of bench 2)."""
    name = f"{prep.tag}-fullshot-st{steps}"
    import spacy

    from spacy_evokd import student
    from spacy_evokd.data import read_docbin
    from spacy_evokd.tasks import get_task

    tmp = Path(tempfile.mkdtemp(prefix="evokd-bench-"))
    try:
        # the student's own training regime (epochs over the whole train split), `steps` its cap
        config = config_for(prep, "evokd", prep.train, 0, Scale(0, 1, 1, 1, steps, 0))
        config["training"]["patience"] = 0
        cached = cache_dir / f"{name}-{run_key(config, (prep.train, prep.dev, prep.test), code_hash(), tmp)}.json"
        if cached.exists():
            return json.loads(cached.read_text())
        t0 = time.time()
        model = student.train(config, prep.train, prep.dev, tmp / "model")
        wall = time.time() - t0
        gold = {s: read_docbin(p, spacy.blank("en").vocab) for s, p in (("dev", prep.dev), ("test", prep.test))}
        nlp = student.load(model)
        scores = {
            s: student.evaluate(nlp, docs, get_task(prep.task), prep.labels)[0]["score"] for s, docs in gold.items()
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    result = {
        "name": name,
        "dataset": prep.name,
        "train_docs": prep.sizes["train"],
        "steps": steps,
        "wall": wall,
        **scores,
    }
    cache_dir.mkdir(parents=True, exist_ok=True)
    cached.write_text(json.dumps(result, indent=1))
    return result

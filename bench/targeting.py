"""Benchmarks 1 and 2 on real data sets: what weakness targeting buys, and how far from full-shot.

1. Targeting value: the same default student (configs/<task>_<runs.PROFILE>.cfg, the accurate profile),
   pool and number of added samples per round, with the samples chosen by EvoKD weakness targeting (the simulated teacher; "evokd": hard samples drawn
   from the weakest labels, "evokd_near": the pool samples nearest to the student's wrong ones,
   by MiniLM sentence embeddings), uniformly at random,
   uniformly at random balanced over the gold labels (the EvoKD arm sees them too), or by the
   student's own uncertainty (entropy sampling); and the product's sources with the simulated
   teacher labelling: "active" (the student picks pool texts by uncertainty x diversity, the
   teacher labels them, LLKD weights) and "auto" (each round split between generation from the
   student's brief and active picks by what each bought). `--targeting-arms` picks the arms. k-shot seeds from the pool, several seeds;
   dev and test score per round (mean ± std over seeds) and the gap at equal budget.
2. Fraction of full-shot: the same student trained on the whole train split vs 1-shot + EvoKD.

All runs go through the product's loop (`spacy train` subprocesses), two at a time.
"""

import json
import os
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Dict, List, Sequence

import bench_data
import runs

from spacy_evokd.tasks import get_task

BASELINES = ("random", "stratified", "entropy")


def _ms(values: Sequence[float]) -> str:
    if len(values) < 2:
        return f"{values[0]:.3f}" if values else "–"
    return f"{statistics.mean(values):.3f}±{statistics.stdev(values):.3f}"


def _mean(values: Sequence[float]) -> float:
    return statistics.mean(values) if values else float("nan")


def _curves(results: List[Dict], split: str) -> Dict[str, List[List[float]]]:
    """strategy -> per round, the scores over seeds."""
    out: Dict[str, List[List[float]]] = {}
    for r in results:
        rounds = out.setdefault(r["strategy"], [[] for _ in r[split]])
        for i, v in enumerate(r[split]):
            rounds[i].append(v)
    return out


def summarise(name: str, task: str, k: int, results: List[Dict], per_round: int) -> Dict:
    metric = get_task(task).metric_name
    strategies = [s for s in runs.STRATEGIES if any(r["strategy"] == s for r in results)]
    seeds = sorted({r["seed"] for r in results})
    dev, test = _curves(results, "dev"), _curves(results, "test")
    n_rounds = len(next(iter(dev.values())))
    print(f"\n{name} ({task}, {metric}), {k}-shot seed, {len(seeds)} seed(s), {per_round} samples added per round")
    head = " ".join(f"{s + ' dev':>14}" for s in strategies) + " " + " ".join(f"{s + ' test':>14}" for s in strategies)
    print(f"{'round':>5} {'samples':>7} {head}")
    for i in range(n_rounds):
        cells = (
            " ".join(f"{_ms(dev[s][i]):>14}" for s in strategies)
            + " "
            + " ".join(f"{_ms(test[s][i]):>14}" for s in strategies)
        )
        print(f"{i:>5} {i * per_round:>7} {cells}")
    last = n_rounds - 1
    final = {s: _mean(test[s][last]) for s in strategies}
    area = {s: _mean([_mean(test[s][i]) for i in range(1, n_rounds)]) for s in strategies}  # mean over rounds 1..N
    gaps = {}
    for ours in runs.OURS:
        for base in BASELINES:
            if base in final and ours in final:
                verdict = runs.verdict(test[ours][last], test[base][last])
                gaps[f"{ours} vs {base}"] = {
                    "final_test": final[ours] - final[base],
                    "verdict": verdict,
                    "mean_test_rounds": area[ours] - area[base],
                }
                print(
                    f"  gap at equal budget ({last * per_round} samples), {ours} - {base}: test "
                    f"{final[ours] - final[base]:+.3f} at round {last}, {area[ours] - area[base]:+.3f} averaged over "
                    f"rounds 1-{last} -> {ours} {verdict}"
                )
    return {
        "dataset": name,
        "task": task,
        "k": k,
        "seeds": seeds,
        "per_round": per_round,
        "metric": metric,
        "dev": dev,
        "test": test,
        "final_test": final,
        "mean_test_rounds": area,
        "gaps": gaps,
    }


def _purchases(loops: List[Dict], arms: Sequence[str]) -> None:
    """Per arm: samples accepted per round, teacher seconds per round, and source = "auto"'s
    mean share of generation per round (its split decisions)."""
    print(
        "\nWhat each arm bought (mean over runs): accepted samples per round, teacher seconds per round, auto's generation share by round"
    )
    for arm in arms:
        rs = [r for r in loops if r["strategy"] == arm]
        if not rs:
            continue
        accepted = _mean([a for r in rs for a in r["accepted"][1:]])
        teacher_s = _mean([sec.get("teacher", 0.0) for r in rs for sec in r["seconds"][1:]])
        line = f"  {arm:>11}: {accepted:5.1f} accepted, {teacher_s:6.2f} s teacher"
        shares = [[(src.get("split") or {}).get("generate_share") for src in (r.get("sources") or [])[1:]] for r in rs]
        if any(v is not None for row in shares for v in row):
            by_round = [
                _mean([row[i] for row in shares if i < len(row) and row[i] is not None])
                for i in range(max(map(len, shares)))
            ]
            line += "; generation share " + " ".join(f"{v:.2f}" for v in by_round)
        print(line)


def _job(kind: str, args: tuple) -> Dict:
    if kind == "full":
        return runs.full_shot(*args)
    return runs.run_loop(*args)


def main(
    data_dir: Path,
    out: Path,
    names: Sequence[str],
    shots: Sequence[int],
    seeds: Sequence[int],
    scale: runs.Scale,
    sizes: Dict[str, int],
    full_steps: int,
    workers: int = 2,
    arms: Sequence[str] = (),
) -> Dict:
    work = out / "work"
    cache = out / "runs"
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # two runs share the cores: one BLAS thread each
    print(f"Targeting value + fraction of full-shot on {', '.join(names)} from {data_dir}")
    print(
        f"  scale: pool {sizes['pool']} train texts per data set, dev {sizes['dev']}, test {sizes['test']} "
        f"(random subsets, fixed); {scale.rounds} rounds x {scale.per_round} samples; student = configs/<task>_{runs.PROFILE}.cfg, "
        f"{scale.max_steps} steps seed round, {scale.warm_start_steps} warm-start steps per round; "
        f"full-shot: the student's own regime on the whole train split, at most {full_steps} steps; seeds {list(seeds)}, shots {list(shots)}"
    )
    preps = {n: bench_data.prepare(data_dir, n, work, sizes["pool"], sizes["dev"], sizes["test"]) for n in names}
    arms = [a for a in runs.STRATEGIES if not arms or a in arms]
    with_full = "evokd" in arms  # the fraction-of-full-shot table is the evokd arm's
    jobs = [("full", (preps[n], full_steps, cache)) for n in names] if with_full else []
    # seed-major: an interrupted suite has every data set and shot at the first seeds (reruns reuse runs/)
    jobs += [
        ("loop", (preps[n], strategy, k, seed, scale, cache))
        for seed in seeds
        for n in names
        for k in shots
        for strategy in arms
    ]
    t0 = time.time()
    done: List[Dict] = []
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        futures = [pool.submit(_job, kind, args) for kind, args in jobs]
        for i, f in enumerate(futures, 1):
            done.append(f.result())
            print(f"  [{i}/{len(jobs)}] {done[-1]['name']} ({time.time() - t0:.0f} s)", flush=True)
    full = {r["dataset"]: r for r in done if "fullshot" in r["name"]}
    loops = [r for r in done if "fullshot" not in r["name"]]
    tables = []
    for n in names:
        for k in shots:
            rs = [r for r in loops if r["dataset"] == n and r["k"] == k]
            tables.append(summarise(n, preps[n].task, k, rs, scale.per_round))

    print("\nSummary: test score after the last round (mean over seeds), the gap at equal budget and the verdict")
    print(f"  ('ahead'/'behind' only with >= {runs.MIN_SEEDS_FOR_VERDICT} seeds and a gap larger than the pooled std)")
    shown = [a for a in runs.OURS + BASELINES if a in arms]
    print(f"{'data set':>10} {'k':>2}" + "".join(f"{a:>11}" for a in shown))
    for t in tables:
        print(
            f"{t['dataset']:>10} {t['k']:>2}" + "".join(f"{t['final_test'].get(a, float('nan')):>11.3f}" for a in shown)
        )
    _purchases(loops, arms)
    for ours in [o for o in runs.OURS if o in arms]:
        print(
            f"  {ours} vs "
            + "; ".join(
                f"{b}: "
                + ", ".join(t["gaps"][f"{ours} vs {b}"]["verdict"] for t in tables if f"{ours} vs {b}" in t["gaps"])
                for b in BASELINES
            )
        )
        ahead = sum(
            all(t["gaps"].get(f"{ours} vs {b}", {}).get("verdict") == "ahead" for b in BASELINES) for t in tables
        )
        print(
            f"  {ours} ahead of all {len(BASELINES)} baselines (by the verdict rule) in {ahead} of {len(tables)} settings"
        )

    result = {
        "scale": scale.__dict__,
        "sizes": sizes,
        "full_steps": full_steps,
        "tables": tables,
        "fractions": [],
        "wall_s": time.time() - t0,
    }
    if not with_full:
        (out / "targeting.json").write_text(json.dumps(result, indent=1))
        return result
    print("\nFraction of full-shot (test score; full-shot = the same default student on the whole train split)")
    print(
        f"{'data set':>10} {'full-shot':>9} {'train docs':>10} {'1-shot seed':>11} {'1-shot+evokd':>12} {'seed/full':>9} {'evokd/full':>10}"
    )
    fractions = []
    k1 = min(shots)
    for n in names:
        t = next(t for t in tables if t["dataset"] == n and t["k"] == k1)
        seed_only, evokd = _mean(t["test"]["evokd"][0]), t["final_test"]["evokd"]
        fs = full[n]["test"]
        row = {
            "dataset": n,
            "k": k1,
            "full_shot": fs,
            "seed_only": seed_only,
            "evokd": evokd,
            "seed_ratio": seed_only / fs if fs else float("nan"),
            "evokd_ratio": evokd / fs if fs else float("nan"),
            "full_shot_steps": full[n]["steps"],
            "train_docs": full[n]["train_docs"],
        }
        fractions.append(row)
        print(
            f"{n:>10} {fs:>9.3f} {row['train_docs']:>10,} {seed_only:>11.3f} {evokd:>12.3f} "
            f"{row['seed_ratio']:>9.0%} {row['evokd_ratio']:>10.0%}"
        )
    print(
        f"  ({k1}-shot + {scale.rounds} rounds x {scale.per_round} samples from the simulated teacher; "
        f"the EvoKD paper reports up to 90% of full-shot with a real LLM)"
    )
    result = {
        "scale": scale.__dict__,
        "sizes": sizes,
        "full_steps": full_steps,
        "tables": tables,
        "fractions": fractions,
        "wall_s": time.time() - t0,
    }
    (out / "targeting.json").write_text(json.dumps(result, indent=1))
    return result

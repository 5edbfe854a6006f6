"""Benchmark 4: round overhead and warm start, on real data, one run at a time (timings).

- Overhead: share of a round's wall time outside teacher calls and student training, from the
  per-round seconds the loop records (teacher / train / eval / total); evaluation (student on the
  new batch and on dev) is shown apart from the rest (validation, DocBins, model copies).
- Warm start: the same loop with every round's student sourced from the previous one and trained
  for `warm_start_steps`, vs every round trained from scratch for `max_steps`; total training
  time ratio and dev scores.
"""

import json
from pathlib import Path
from typing import Dict, Sequence

import bench_data
import runs


def main(
    data_dir: Path, out: Path, names: Sequence[str], rounds: int, max_steps: int, warm_steps: Sequence[int], sizes: Dict
) -> Dict:
    print(
        f"Round overhead and warm start ({rounds} rounds, EvoKD simulated teacher, 1-shot seed 0; "
        f"from scratch: {max_steps} steps per round; warm start: {' or '.join(map(str, warm_steps))} steps per round)"
    )
    print(
        f"{'data set':>10} {'mode':>7} {'train s':>8} {'teacher s':>9} {'eval s':>7} {'other s':>7} {'other %':>7} "
        f"{'eval+other %':>12} {'final dev':>9} {'best dev':>8}"
    )
    rows = []
    for name in names:
        prep = bench_data.prepare(data_dir, name, out / "work", sizes["pool"], sizes["dev"], sizes["test"])
        res = {}
        for mode, steps in [("cold", 0)] + [(f"warm{w}", w) for w in warm_steps]:
            warm = steps > 0
            scale = runs.Scale(rounds, 2, 4, 4, max_steps, steps)
            r = runs.run_loop(prep, "evokd", 1, 0, scale, out / "runs", warm_start=warm, test_every_round=False)
            secs = r["seconds"][1:]  # rounds 1..N (round 0, the seed round, is the same for both)
            t = {k: sum(s.get(k, 0.0) for s in secs) for k in ("train", "teacher", "eval", "total")}
            other = t["total"] - t["train"] - t["teacher"] - t["eval"]
            row = {
                "dataset": name,
                "mode": mode,
                **t,
                "other": other,
                "other_share": other / t["total"],
                "outside_share": (other + t["eval"]) / t["total"],
                "final_dev": r["dev"][-1],
                "best_dev": max(r["dev"]),
                "dev": r["dev"],
                "wall": r["wall"],
            }
            res[mode] = row
            rows.append(row)
            print(
                f"{name:>10} {mode:>7} {t['train']:>8.1f} {t['teacher']:>9.1f} {t['eval']:>7.1f} {other:>7.1f} "
                f"{row['other_share']:>7.1%} {row['outside_share']:>12.1%} {row['final_dev']:>9.3f} {row['best_dev']:>8.3f}"
            )
        cold = res["cold"]
        for w in warm_steps:
            warm = res[f"warm{w}"]
            warm["train_ratio"] = warm["train"] / cold["train"]
            better = warm["best_dev"] >= cold["best_dev"]
            print(
                f"{'':>10} warm start with {w} steps: training time {warm['train_ratio']:.2f} of from-scratch "
                f"(target <= 0.6), best dev {warm['best_dev']:.3f} vs {cold['best_dev']:.3f}: "
                f"{'equal or better' if better else 'WORSE'}"
            )
    result = {"rounds": rounds, "max_steps": max_steps, "warm_start_steps": warm_steps, "rows": rows}
    (out / "warm_start.json").write_text(json.dumps(result, indent=1))
    return result

"""Benchmark 6: teacher tokens per accepted sample and accepted/generated per round, from the usage
ledger of a loop run against the local OpenAI-compatible test server (the LLM answers from the
demo pool like a sloppy model: see spacy_evokd/testing/responder.py). Tokens are the server's counts of the real
prompts, so the figures show what the prompts cost, not what a particular LLM would answer.

    python bench/token_efficiency.py [--task textcat] [--rounds 3] [--out bench/results/tokens_<task>.json]
"""

import argparse
import json
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).parent.parent
sys.path.insert(0, str(ROOT))

import runs  # noqa: E402

from spacy_evokd.testing.responder import PoolResponder  # noqa: E402
from spacy_evokd.testing.server import FakeOpenAIServer  # noqa: E402


def main(task: str, rounds: int, out: Path) -> dict:
    from spacy_evokd.cache import UsageLedger
    from spacy_evokd.config import load_config
    from spacy_evokd.loop import evolve
    from spacy_evokd.run_dir import RunDir
    from spacy_evokd.tasks import get_task

    cfg = runs.student_config_path(task, "fast")  # tokens are measured, not the student: the fast one
    labels = load_config(cfg, {})["evokd"]["labels"]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        py = [sys.executable, "-m", "spacy_evokd"]
        for split in ("train", "dev"):
            subprocess.run(
                py
                + [
                    "convert",
                    str(ROOT / f"assets/demo/{task}/{split}.jsonl"),
                    str(tmp / f"{split}.spacy"),
                    "--task",
                    task,
                ],
                check=True,
                capture_output=True,
            )
        subprocess.run(
            py + ["seed", str(tmp / "train.spacy"), str(tmp / "seed.spacy"), "--task", task, "--k", "1"],
            check=True,
            capture_output=True,
        )
        with FakeOpenAIServer(
            PoolResponder(ROOT / f"assets/demo/{task}/train.jsonl", get_task(task), labels)
        ) as server:
            ov = {
                "paths.train": str(tmp / "seed.spacy"),
                "paths.dev": str(tmp / "dev.spacy"),
                "paths.test": "",
                "paths.pool": str(ROOT / f"assets/demo/{task}/train.jsonl"),
                "evokd.rounds": rounds,
                "training.max_steps": 50,
                "evokd.teacher.model.base_url": server.base_url,
                "evokd.teacher.model.name": "bench-llm",
                "evokd.teacher.model.api_key_env": None,
            }
            evolve(cfg, tmp / "run", ov, teacher=ROOT / "configs/teachers/local_server.cfg", echo=lambda _: None)
        run = RunDir(tmp / "run")
        recs = run.load_records()[1:]
        steps = defaultdict(lambda: defaultdict(int))
        for row in UsageLedger(run.cache_path).rows():
            steps[row["round"]][row["step"]] += row["prompt_tokens"] + row["completion_tokens"]
    rows = []
    print(f"Token efficiency ({task}, {rounds} rounds, local test server; tokens = server counts of the real prompts)")
    print(
        f"{'round':>5} {'generated':>9} {'accepted':>8} {'acc/gen':>7} {'tokens':>8} {'tok/accepted':>12} "
        f"{'analysis':>8} {'generate':>8} {'label':>6}"
    )
    for r in recs:
        tokens = r.usage["total_tokens"]
        row = {
            "round": r.round,
            "generated": r.generated,
            "accepted": r.accepted,
            "accepted_ratio": r.accepted / max(1, r.generated),
            "tokens": tokens,
            "tokens_per_accepted": tokens / max(1, r.accepted),
            "by_step": dict(steps[r.round]),
            "rejected": r.rejected,
        }
        rows.append(row)
        st = row["by_step"]
        print(
            f"{row['round']:>5} {row['generated']:>9} {row['accepted']:>8} {row['accepted_ratio']:>7.2f} {tokens:>8,} "
            f"{row['tokens_per_accepted']:>12.0f} {st.get('analysis', 0):>8,} {st.get('generate', 0):>8,} {st.get('label', 0):>6,}"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"task": task, "rounds": rows}, indent=2))
    return {"task": task, "rounds": rows}


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--task", default="textcat", choices=["textcat", "ner"])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--out", type=Path, default=None)
    a = p.parse_args()
    main(a.task, a.rounds, a.out or ROOT / f"bench/results/tokens_{a.task}.json")

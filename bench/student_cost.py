"""Benchmark 5: what the student costs to run, next to what the teacher costs per text.

- Inference docs/s and peak memory of the default (BOW) and the MiniLM (spacy-transformers) textcat
  students on the same test texts, each measured in its own fresh process on one thread
  (OMP_NUM_THREADS=1), after a short training on the pool (speed does not depend on accuracy).
- The teacher's cost per 1,000 texts: the LLM teacher's real labelling prompts (configs/teachers/
  openai.cfg and its configured prices) sent in batches to the local test server, which counts
  prompt and completion tokens; the student's cost per 1,000 texts at an assumed CPU price.
"""

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict

ROOT = Path(__file__).parent.parent
sys.path.insert(0, str(ROOT))

CPU_USD_PER_HOUR = 0.05  # one vCPU on demand, roughly; an assumption, printed with the result
LABEL_BATCH = 10  # texts per labelling request


def measure(model: Path, texts_path: Path) -> Dict:
    """Run in a fresh process: load the student and tag every text; docs/s and peak RSS."""
    import spacy
    import spacy_transformers  # noqa: F401  (spaCy loads installed plugins, torch included, on
    # the first spacy.load: import them first so the baseline holds the libraries, not the model)

    spacy.blank("en")
    base = _rss_mb()
    texts = [json.loads(l)["text"] for l in texts_path.read_text(encoding="utf8").splitlines() if l.strip()]
    t0 = time.time()
    nlp = spacy.load(model)
    load_s = time.time() - t0
    list(nlp.pipe(texts[:32]))  # warm-up
    t0 = time.time()
    n = sum(1 for _ in nlp.pipe(texts, batch_size=64))
    secs = time.time() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "docs": n,
        "seconds": secs,
        "docs_per_s": n / secs,
        "load_s": load_s,
        "peak_rss_mb": peak,
        "rss_after_import_mb": base,
        "model_rss_mb": _rss_mb() - base,
    }


def _rss_mb() -> float:
    """Resident memory now (ru_maxrss only gives the peak, which imports may already have set)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _train(config_name: str, prep, steps: int, out: Path) -> Path:
    from spacy_evokd import student
    from spacy_evokd.config import load_config

    config = load_config(
        ROOT / "configs" / config_name,
        {"training.max_steps": steps, "training.eval_frequency": steps, "evokd.labels": prep.labels},
    )
    return student.train(config, prep.dev, prep.dev, out)


def teacher_cost(prep, n_texts: int) -> Dict:
    """Label ``n_texts`` test texts with the LLM teacher through the local server."""
    from spacy_evokd.config import load_config, resolve_evokd
    from spacy_evokd.tasks import get_task
    from spacy_evokd.testing.responder import PoolResponder
    from spacy_evokd.testing.server import FakeOpenAIServer

    texts_path = prep.test.with_suffix(".jsonl")
    texts = [json.loads(l)["text"] for l in texts_path.read_text(encoding="utf8").splitlines() if l.strip()][:n_texts]
    with FakeOpenAIServer(PoolResponder(texts_path, get_task(prep.task), prep.labels, mischief=False)) as server:
        config = load_config(
            ROOT / "configs/textcat_fast.cfg",
            {
                "evokd.labels": prep.labels,
                "evokd.teacher.model.base_url": server.base_url,
                "evokd.teacher.model.api_key_env": None,
            },
            teacher=ROOT / "configs/teachers/openai.cfg",
        )
        config["evokd"]["label_definitions"] = {}
        config["evokd"]["task_description"] = prep.name
        _, teacher = resolve_evokd(config)
        labelled = 0
        for i in range(0, len(texts), LABEL_BATCH):
            labelled += len(teacher.label(texts[i : i + LABEL_BATCH]).samples)
        usage = teacher.drain_usage()
    model = teacher.model
    return {
        "model": model.name,
        "texts": len(texts),
        "labelled": labelled,
        "requests": usage.requests,
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "cost": usage.cost,
        "price_in": model.price_in,
        "price_out": model.price_out,
        "usd_per_1k": usage.cost / max(1, len(texts)) * 1000,
    }


def main(data_dir: Path, out: Path, n_texts: int, sizes: Dict) -> Dict:
    import bench_data

    prep = bench_data.prepare(data_dir, "emotion", out / "work", sizes["pool"], sizes["dev"], n_texts)
    texts = prep.test.with_suffix(".jsonl")
    print(
        f"Student cost on {prep.sizes['test']} emotion test texts (one thread each; students briefly trained on "
        f"{prep.sizes['dev']} dev texts: speed does not depend on accuracy)"
    )
    students = {}
    for kind, cfg, steps in (("fast", "textcat_fast.cfg", 50), ("accurate", "textcat_accurate.cfg", 4)):
        model = _train(cfg, prep, steps, out / "work" / f"student_{kind}")
        env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", HF_HUB_OFFLINE="1")
        proc = subprocess.run(
            [sys.executable, __file__, "--measure", str(model), str(texts)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        students[kind] = json.loads(proc.stdout.strip().splitlines()[-1])
    teacher = teacher_cost(prep, min(1000, prep.sizes["test"]))
    print(
        f"{'student':>8} {'docs/s':>8} {'peak RSS MB':>11} {'model + inference MB':>20} {'load s':>6} {'USD per 1k texts':>16}"
    )
    for kind, s in students.items():
        s["usd_per_1k"] = 1000 / s["docs_per_s"] / 3600 * CPU_USD_PER_HOUR
        print(
            f"{kind:>8} {s['docs_per_s']:>8.0f} {s['peak_rss_mb']:>11.0f} {s['model_rss_mb']:>20.0f} {s['load_s']:>6.1f} "
            f"{s['usd_per_1k']:>16.7f}"
        )
    cnn, trf = students["fast"], students["accurate"]
    print(
        f"  fast (BOW) / accurate (MiniLM): {cnn['docs_per_s'] / trf['docs_per_s']:.1f}x the speed, "
        f"{cnn['peak_rss_mb'] / trf['peak_rss_mb']:.2f}x the peak memory "
        f"({cnn['model_rss_mb'] / trf['model_rss_mb']:.2f}x the memory the model and inference add to the "
        f"imported libraries: spaCy, torch, plugins)"
    )
    print(
        f"Teacher ({teacher['model']} at ${teacher['price_in']}/${teacher['price_out']} per M input/output tokens, "
        f"labelling prompts in batches of {LABEL_BATCH}): {teacher['prompt_tokens'] + teacher['completion_tokens']:,} "
        f"tokens (the test server counts 4 characters a token) for {teacher['texts']} texts = "
        f"${teacher['usd_per_1k']:.4f} per 1k texts"
    )
    for kind, s in students.items():
        print(
            f"  teacher / {kind} student cost per 1k texts: {teacher['usd_per_1k'] / s['usd_per_1k']:,.0f}x "
            f"(student at ${CPU_USD_PER_HOUR}/vCPU-hour, an assumption)"
        )
    result = {"students": students, "teacher": teacher, "cpu_usd_per_hour": CPU_USD_PER_HOUR}
    (out / "student_cost.json").write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--measure":
        print(json.dumps(measure(Path(sys.argv[2]), Path(sys.argv[3]))))

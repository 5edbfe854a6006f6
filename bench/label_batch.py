"""How well the real local teacher labels, by texts per request and temperature.

    python bench/label_batch.py [--task textcat] [--texts 48] [--port 8097]

The teacher's labelling call (LLMTeacher.label, the product's prompt, schema and parser) on
`--texts` demo pool texts whose gold labels the teacher never sees, at each (label_batch,
label_temperature) setting; printed: texts answered and labelled exactly as gold (textcat: the
label; ner: the whole entity set). Starts and stops its own llama-server (1 thread). It chose the
teacher's defaults label_batch = 4, label_temperature = 0 (bench/real_teacher.md).
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import bench_data  # noqa: E402
import real_teacher  # noqa: E402
from runs import write_seed  # noqa: E402

ROOT = Path(__file__).parent.parent
SETTINGS = [(16, 0.7), (4, 0.7), (16, 0.0), (4, 0.0)]  # (texts per request, temperature)


def measure(task: str, n: int, base_url: str) -> None:
    import spacy

    from spacy_evokd.config import resolve_evokd
    from spacy_evokd.data import jsonl_to_docs
    from spacy_evokd.tasks import get_task

    tmp = Path(tempfile.mkdtemp(prefix="evokd-label-"))
    prep = bench_data.prepare_demo(ROOT / "assets/demo", task, tmp)
    write_seed(prep, 1, 0, tmp / "seed.spacy")
    config = real_teacher.config_for("evokd", prep, tmp / "seed.spacy", 0, real_teacher.Settings(), base_url)
    _, teacher = resolve_evokd(config)  # the shipped local_server.cfg teacher (generation temperature 0.7)
    nlp = spacy.blank("en")
    gold = jsonl_to_docs(prep.pool, get_task(task), nlp, prep.labels)[:n]
    want = {d.text: real_teacher._gold_items(d, task) for d in gold}
    print(f"{task}: {n} demo pool texts, gold labels hidden from the teacher")
    print(f"{'texts/request':>14}{'temperature':>12}{'answered':>9}{'exact':>7}{'seconds':>8}")
    for batch, temperature in SETTINGS:
        teacher.label_batch, teacher.label_temperature = batch, temperature
        t0 = time.time()
        samples = teacher.label([d.text for d in gold]).samples
        exact = 0
        for s in samples:  # the same items _gold_items makes of a gold doc: character spans or the label
            got = {tuple(e) for e in s.annotation or []} if task == "ner" else {s.annotation}
            exact += got == want.get(s.text)
        print(f"{batch:>14}{temperature:>12}{len(samples):>9}{exact:>7}{time.time() - t0:>8.0f}", flush=True)


def main() -> None:
    from spacy_evokd import local_server

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--task", default="textcat", choices=["textcat", "ner"])
    p.add_argument("--texts", type=int, default=48)
    p.add_argument("--port", type=int, default=8097)
    a = p.parse_args()
    out = ROOT / "bench/results"
    out.mkdir(parents=True, exist_ok=True)
    server = local_server.start(
        model=ROOT / local_server.MODEL_PATH,
        port=a.port,
        alias=real_teacher.ALIAS,
        threads=1,
        pid_file=out / "label_batch.pid",
        log_file=out / "label_batch_server.log",
        echo=print,
    )
    try:
        measure(a.task, a.texts, server["base_url"])
    finally:
        local_server.stop(out / "label_batch.pid", echo=print)


if __name__ == "__main__":
    main()

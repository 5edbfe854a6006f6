"""What many test modules set up the same way: the demo data (assets/demo) as DocBins with a
k-shot seed, and the CLI run as a user runs it.

* ``corpus`` (session): CORPUS/TASK/{train,dev,test,seed}.spacy for textcat and ner, made with
  the CLI (`convert`, `seed --k 1`) as a user would. Modules that need another shape (one task,
  extra seeds) define their own ``corpus`` fixture, which overrides this one there, and build it
  with ``write_demo_corpus``.
* ``write_demo_corpus``: the same in process (cheaper than the CLI) for one task.
"""

import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

import pytest

ROOT = Path(__file__).parent.parent
DEMO = ROOT / "assets" / "demo"
TEXTCAT_LABELS = ["account", "billing", "product_question", "shipping", "technical"]


def demo_jsonl(task: str, split: str = "train") -> Path:
    """assets/demo/TASK/SPLIT.jsonl (the train split is also the simulated teacher's pool)."""
    return DEMO / task / f"{split}.jsonl"


def run_cli(*args) -> subprocess.CompletedProcess:
    """`python -m spacy_evokd ARGS` in a fresh interpreter; asserts it succeeded."""
    proc = subprocess.run([sys.executable, "-m", "spacy_evokd", *map(str, args)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return proc


def write_demo_corpus(
    out: Path,
    task: str = "textcat",
    labels: Optional[Sequence[str]] = None,
    k: int = 1,
    seed: int = 0,
    splits: Sequence[str] = ("train", "dev", "test"),
) -> Path:
    """The demo splits of ``task`` as OUT/SPLIT.spacy and a k-shot seed of its train split as
    OUT/seed.spacy (``labels``: the task's label set; default the labels the train split has)."""
    import spacy

    from spacy_evokd.data import infer_labels, jsonl_to_docs, kshot, write_docbin
    from spacy_evokd.tasks import get_task

    out.mkdir(parents=True, exist_ok=True)
    nlp, the_task = spacy.blank("en"), get_task(task)  # names are resolved here, at the edge
    for split in dict.fromkeys(("train",) + tuple(splits)):  # train always: the seed comes from it
        docs = jsonl_to_docs(demo_jsonl(task, split), the_task, nlp, labels)
        if split in splits:
            write_docbin(docs, out / f"{split}.spacy")
        if split == "train":
            samples = [the_task.doc_to_sample(d) for d in docs]
            chosen = kshot(samples, the_task, list(labels) if labels else infer_labels(samples, the_task), k, seed)
            write_docbin([docs[i] for i in chosen], out / "seed.spacy")
    return out


@pytest.fixture(scope="session")
def corpus(tmp_path_factory):
    """Demo data as DocBins + 1-shot seeds, made with the CLI as a user would."""
    out = tmp_path_factory.mktemp("corpus")
    for task in ("textcat", "ner"):
        for split in ("train", "dev", "test"):
            run_cli("convert", demo_jsonl(task, split), out / task / f"{split}.spacy", "--task", task)
        run_cli("seed", out / task / "train.spacy", out / task / "seed.spacy", "--task", task, "--k", "1")
    return out


def server_teacher(base_url: str, **model: Any) -> Dict[str, Any]:
    """Overrides that point a config's LLM teacher at the local test server: model "test-llm", no
    API key (``api_key_env="..."`` names one), quick retries; ``model`` adds [evokd.teacher.model] settings."""
    settings = {"name": "test-llm", "api_key_env": None, "backoff": 0.01, **model}
    return {"evokd.teacher.model.base_url": base_url, **{f"evokd.teacher.model.{k}": v for k, v in settings.items()}}

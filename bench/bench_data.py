"""Real benchmark data for the benchmarks: a fixed pool, dev and test subset per data set.

The data sets are not ours to ship: they are read from a directory (default ../shared/datasets,
see its README) holding <name>/{train,dev,test}.jsonl as `{"text","label"}` or
`{"tokens","tags"}` lines. Subsets are drawn once with random.Random(0), so every strategy and
seed of a benchmark sees the same pool, dev and test texts.
"""

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional

ROOT = Path(__file__).parent.parent
TASKS = {"emotion": "textcat", "sst2": "textcat", "conll2003": "ner", "conll04": "ner"}
# what a user would write in [evokd] task_description and label_definitions for each set (the
# real 1.5B teacher labelled a held-out set 60% right with them, 44% without: a benchmark without
# them measures a user who skipped the config). Written from the data sets' own label guides.
DESCRIPTIONS = {
    "emotion": (
        "short English Twitter messages, lower-cased, in which the writer says how they feel "
        '(most start with "i feel" or "im feeling"), labelled with the emotion they express',
        {
            "anger": "angry, irritated, annoyed, resentful, bitter, frustrated, hostile",
            "fear": "afraid, scared, anxious, nervous, worried, insecure, threatened",
            "joy": "happy, content, glad, cheerful, proud, relieved, pleased, excited",
            "love": "loving, affectionate, caring, tender, romantic, longing for someone, sympathetic",
            "sadness": "sad, unhappy, lonely, hurt, hopeless, ashamed, disappointed, guilty",
            "surprise": "surprised, amazed, astonished, shocked, stunned, curious about something unexpected",
        },
    ),
    "sst2": (
        "single sentences from English film reviews (tokenised, lower-cased), labelled with the "
        "sentiment the sentence expresses about the film",
        {
            "negative": "the reviewer dislikes or criticises the film or part of it",
            "positive": "the reviewer likes or praises the film or part of it",
        },
    ),
    "conll2003": (
        "sentences from Reuters news stories (1996-97), tokenised, with the names of people, "
        "places, organisations and other proper names marked",
        {
            "PER": "names of people, including first names, surnames and nicknames",
            "LOC": "names of places: countries, cities, regions, rivers, mountains, addresses",
            "ORG": "names of organisations: companies, sports teams, political parties, governments, agencies, newspapers",
            "MISC": "other proper names: nationalities and adjectives from names (German), events, languages, titles of works, products",
        },
    ),
    "conll04": (
        "sentences from English news articles (TREC QA collection), with the names of people, "
        "places, organisations and other named things marked",
        {
            "Peop": "names of people (with titles as written, e.g. President Clinton)",
            "Loc": "names of places: countries, states, cities, regions, landmarks",
            "Org": "names of organisations: companies, agencies, institutions, parties, teams",
            "Other": "other named things: dates and times, numbers of money, works, events, products",
        },
    ),
}


def default_dir() -> Optional[Path]:
    path = ROOT.parent / "shared" / "datasets"
    return path if path.is_dir() else None


@dataclass
class Prepared:
    name: str
    tag: str  # name + subset sizes
    task: str
    labels: List[str]
    pool: Path  # JSONL subset of train: what teachers and baselines draw from
    train: Path  # DocBin of the whole train split (the full-shot student)
    dev: Path  # DocBin subset
    test: Path  # DocBin subset
    sizes: dict
    description: str = ""  # shown to LLM teachers ([evokd] task_description)
    definitions: dict = field(default_factory=dict)  # label -> one line, for LLM teachers


def _lines(path: Path) -> List[str]:
    if not path.exists():
        raise FileNotFoundError(f"{path}: missing (the benchmark data directory needs <name>/train|dev|test.jsonl)")
    return [l for l in path.read_text(encoding="utf8").splitlines() if l.strip()]


def _subset(lines: List[str], n: int) -> List[str]:
    if n <= 0 or n >= len(lines):
        return lines
    keep = sorted(random.Random(0).sample(range(len(lines)), n))
    return [lines[i] for i in keep]


def prepare_demo(demo_dir: Path, task: str, work: Path) -> Prepared:
    """The shipped demo set of ``task`` (whole splits), with the task description and label
    definitions of configs/<task>_fast.cfg (every profile has the same)."""
    from confection import Config

    section = Config().from_disk(ROOT / f"configs/{task}_fast.cfg", interpolate=False)["evokd"]
    prep = prepare(Path(demo_dir), task, work, 0, 0, 0, task=task, name_prefix="demo_")
    prep.description = section.get("task_description", "")
    prep.definitions = dict(section.get("label_definitions", {}))
    return prep


def prepare(
    data_dir: Path,
    name: str,
    work: Path,
    pool_size: int,
    dev_size: int,
    test_size: int,
    task: Optional[str] = None,
    name_prefix: str = "",
) -> Prepared:
    """Write the pool JSONL and the train/dev/test DocBins of one data set into ``work/name``."""
    import spacy

    from spacy_evokd.data import infer_labels, jsonl_to_docs, load_samples, write_docbin
    from spacy_evokd.tasks import get_task

    task = task or TASKS[name]
    task_obj = get_task(task)
    tag = (
        f"{name_prefix}{name}_p{pool_size}_d{dev_size}_t{test_size}"  # a subset per size: quick and full runs never mix
    )
    src, out = Path(data_dir) / name, Path(work) / tag
    out.mkdir(parents=True, exist_ok=True)
    splits = {s: _lines(src / f"{s}.jsonl") for s in ("train", "dev", "test")}
    chosen = {
        "pool": _subset(splits["train"], pool_size),
        "train": splits["train"],
        "dev": _subset(splits["dev"], dev_size),
        "test": _subset(splits["test"], test_size),
    }
    for split, lines in chosen.items():
        (out / f"{split}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf8")
    labels = infer_labels(load_samples(out / "train.jsonl", task_obj), task_obj)
    nlp = spacy.blank("en")
    for split in ("train", "dev", "test"):
        target = out / f"{split}.spacy"
        if not target.exists():  # NER keeps the data set's own tokens
            write_docbin(jsonl_to_docs(out / f"{split}.jsonl", task_obj, nlp, labels), target)
    description, definitions = DESCRIPTIONS.get(name, ("", {}))
    return Prepared(
        name_prefix + name,
        tag,
        task,
        labels,
        out / "pool.jsonl",
        out / "train.spacy",
        out / "dev.spacy",
        out / "test.spacy",
        {k: len(v) for k, v in chosen.items()},
        description,
        {k: v for k, v in definitions.items() if k in labels},
    )

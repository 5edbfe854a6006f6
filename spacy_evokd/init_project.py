"""`python -m spacy_evokd init TASK OUTPUT_DIR --data FILE.jsonl`: a user's own labelled data to a
ready run, with no config edited by hand.

Reads the data (and ``--dev`` / ``--test`` when given), infers the labels or checks them against
``--labels`` (a given label that never occurs, or a record with a label outside them: one line
naming the file, line and label), splits off a dev set when none is given, draws the k-shot seed
from the rest, writes the DocBins and a config made from the profile's shipped student config, and
says what to run next:

  OUTPUT_DIR/corpus/train.spacy   the labelled data minus dev (the simulated teacher's pool)
  OUTPUT_DIR/corpus/seed.spacy    the k-shot seed (k per label) the loop starts from
  OUTPUT_DIR/corpus/dev.spacy     dev (given, or split off); test.spacy when --test is given
  OUTPUT_DIR/config.cfg           [paths] to those files, [evokd] task/labels, a
                                  task_description / label_definitions stub, the teacher block
"""

import random
from collections import Counter, defaultdict
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from .config import ConfigError
from .data import DataError, jsonl_to_docs, kshot, read_docbin, write_docbin
from .tasks import get_task
from .ty import Task

# profile -> the shipped student config of each task (files in spacy_evokd/configs, which is the
# repository's configs/ folder). A task without an entry in a profile falls back to "fast", and
# `init` says so.
PROFILES: Dict[str, Dict[str, str]] = {
    "fast": {"textcat": "textcat_bow.cfg", "ner": "ner_cnn.cfg", "textcat_multilabel": "textcat_multilabel_bow.cfg"},
    "accurate": {
        "textcat": "textcat_minilm.cfg",
        "ner": "ner_minilm.cfg",
        "textcat_multilabel": "textcat_multilabel_minilm.cfg",
    },
}
DEFAULT_PROFILE = "accurate"  # the MiniLM students: the best measured (bench/student_configs.md)
DEFAULT_TEACHER = "simulated"
DEV_SHARE = 0.2  # of the data, per label, when no --dev is given
DEV_MAX = 1000


def configs_dir() -> Path:
    """The shipped configs: package data of an installed spacy-evokd (spacy_evokd/configs is a
    link to the repository's configs/ that the wheel copies), the same folder in a checkout."""
    return Path(__file__).resolve().parent / "configs"


def profile_config(task: str, profile: str, echo: Callable[[str], None] = print) -> Path:
    if profile not in PROFILES:
        raise ConfigError(f"--profile {profile!r}: expected one of {', '.join(PROFILES)}")
    path = configs_dir() / PROFILES[profile][task]
    if not path.exists():
        raise ConfigError(f"{path}: shipped config not found (a broken install? reinstall spacy-evokd)")
    return path


def teacher_config(teacher: str) -> Path:
    """A shipped teacher by name (simulated, openai, local_server, ...) or a file with [evokd.teacher]."""
    shipped = configs_dir() / "teachers" / f"{teacher}.cfg"
    if "/" not in teacher and not teacher.endswith(".cfg") and shipped.exists():
        return shipped
    path = Path(teacher)
    if not path.exists():
        known = sorted(p.stem for p in (configs_dir() / "teachers").glob("*.cfg"))
        raise ConfigError(f"--teacher {teacher}: no such file, and not a shipped teacher ({', '.join(known)})")
    return path


def read_labelled(path: Path, task: Task, nlp, labels: Optional[Sequence[str]]):
    """Gold Docs from a JSONL file or a DocBin, with labels checked against ``labels``."""
    if path.suffix == ".spacy":
        docs = read_docbin(path, nlp.vocab)
        if labels is not None:
            for i, doc in enumerate(docs, start=1):
                bad = [l for l in task.doc_labels(doc) if l not in labels]
                if bad:
                    raise DataError(f"{path}: doc {i}: label {bad[0]!r} is not in the label set {list(labels)}")
        return docs
    return jsonl_to_docs(path, task, nlp, labels)


def label_counts(docs, task: Task) -> Counter:
    return Counter(l for d in docs for l in set(task.doc_labels(d)))


def check_labels(given: Sequence[str], found: Counter, where: str) -> None:
    """Every label given with --labels occurs in the data (a label that never occurs can't be
    seeded, and is most often a typo)."""
    for label in given:
        if not found.get(label):
            raise DataError(
                f"{where}: label {label!r} (given with --labels) never occurs; labels in the data: {sorted(found)}"
            )


def split_dev(docs, task: Task, seed: int, keep: int) -> Tuple[List[int], List[int]]:
    """(train, dev) indices: DEV_SHARE of each label's docs (a doc counts under its first label)
    go to dev, leaving at least ``keep`` of each label for the seed; at most DEV_MAX in all."""
    rng = random.Random(seed)
    groups: Dict[str, List[int]] = defaultdict(list)
    for i, d in enumerate(docs):
        groups[(sorted(task.doc_labels(d)) or [""])[0]].append(i)
    dev: List[int] = []
    for key in sorted(groups):
        idx = groups[key]
        rng.shuffle(idx)
        dev += idx[: min(int(len(idx) * DEV_SHARE), max(0, len(idx) - keep))]
    if len(dev) > DEV_MAX:
        dev = rng.sample(dev, DEV_MAX)
    chosen = set(dev)
    return [i for i in range(len(docs)) if i not in chosen], sorted(dev)


def write_config(
    base: Path, teacher: Path, out: Path, task: Task, labels: List[str], paths: Dict[str, Optional[str]], seed: int
) -> None:
    from confection import Config

    cfg = Config().from_disk(base, interpolate=False)
    block = Config().from_disk(teacher, interpolate=False)
    if "teacher" not in block.get("evokd", {}):
        raise ConfigError(f"{teacher}: no [evokd.teacher] block")
    cfg["paths"].update(paths)
    cfg["system"]["seed"] = seed
    evokd = cfg["evokd"]
    evokd.update(task=task.name, labels=labels, task_description="")
    evokd["label_definitions"] = {l: "" for l in labels}
    evokd["teacher"] = block["evokd"]["teacher"]
    text = cfg.to_str()
    # the stub a user fills in; comments can't be set through Config, so they go in the text
    text = text.replace(
        "\ntask_description = ",
        "\n# FILL IN: what the texts are (an LLM teacher reads it), e.g. "
        '"customer-support e-mails to a bank"\ntask_description = ',
        1,
    )
    text = text.replace(
        "\n[evokd.label_definitions]\n",
        "\n[evokd.label_definitions]\n# FILL IN: one line per label "
        "(what belongs there, what does not); an LLM teacher reads them\n",
        1,
    )
    header = (
        f"# Written by `python -m spacy_evokd init` from {base.name}; paths are relative to the folder init "
        "ran in.\n# Next: fill in task_description and [evokd.label_definitions], then run the command init "
        "printed.\n"
    )
    out.write_text(header + text, encoding="utf8")


def init_project(
    task: str,
    output_dir: Path,
    data: Path,
    labels: Optional[List[str]] = None,
    dev: Optional[Path] = None,
    test: Optional[Path] = None,
    k: int = 1,
    seed: int = 0,
    teacher: str = DEFAULT_TEACHER,
    profile: str = DEFAULT_PROFILE,
    lang: str = "en",
    force: bool = False,
    echo: Callable[[str], None] = print,
) -> Path:
    """Write OUTPUT_DIR's corpus and config.cfg (see the module docstring); returns the config path."""
    import spacy

    task = get_task(task)
    output_dir, data = Path(output_dir), Path(data)
    config_path = output_dir / "config.cfg"
    if config_path.exists() and not force:
        raise ConfigError(f"{config_path} exists: init writes a new project; pass --force to overwrite it")
    base, teacher_path = profile_config(task.name, profile, echo), teacher_config(teacher)
    if k < 1:
        raise DataError(f"--k {k}: the seed needs k >= 1 examples per label")
    nlp = spacy.blank(lang)
    docs = read_labelled(data, task, nlp, labels)
    dev_docs = read_labelled(Path(dev), task, nlp, labels) if dev else None
    test_docs = read_labelled(Path(test), task, nlp, labels) if test else None
    found = label_counts(docs, task)
    if labels:
        check_labels(labels, found, str(data))
    label_set = list(labels) if labels else sorted(found)
    short = [l for l in label_set if found.get(l, 0) < k]
    if short:
        raise DataError(
            f"{data}: label {short[0]!r} has {found.get(short[0], 0)} examples, fewer than k={k} for the "
            "seed: lower --k or add examples"
        )
    if dev_docs is None:
        train_idx, dev_idx = split_dev(docs, task, seed, keep=k)
        if not dev_idx:
            raise DataError(
                f"{data}: {len(docs)} examples are too few to split off a dev set and keep {k} per label "
                "for the seed: give a dev set with --dev FILE"
            )
        train_docs, dev_docs = [docs[i] for i in train_idx], [docs[i] for i in dev_idx]
    else:
        train_docs = docs
    samples = [task.doc_to_sample(d) for d in train_docs]
    try:
        chosen = kshot(samples, task, label_set, k, seed)
    except DataError as e:
        raise DataError(f"{data} (after the dev split): {e}; lower --k or add examples") from None
    corpus = output_dir / "corpus"
    files = {"train": corpus / "train.spacy", "seed": corpus / "seed.spacy", "dev": corpus / "dev.spacy"}
    write_docbin(train_docs, files["train"])
    write_docbin([train_docs[i] for i in chosen], files["seed"])
    write_docbin(dev_docs, files["dev"])
    if test_docs is not None:
        files["test"] = corpus / "test.spacy"
        write_docbin(test_docs, files["test"])
    paths = {
        "train": str(files["seed"]),
        "dev": str(files["dev"]),
        "test": str(files["test"]) if test_docs else None,
        "pool": str(files["train"]),
    }
    write_config(base, teacher_path, config_path, task, label_set, paths, seed)
    _summary(
        echo,
        task,
        label_set,
        found,
        train_docs,
        dev_docs,
        test_docs,
        len(chosen),
        k,
        base,
        teacher_path,
        config_path,
        output_dir,
        dev is None,
    )
    return config_path


def _summary(
    echo,
    task: Task,
    labels,
    found: Counter,
    train_docs,
    dev_docs,
    test_docs,
    n_seed: int,
    k: int,
    base: Path,
    teacher: Path,
    config_path: Path,
    output_dir: Path,
    split: bool,
) -> None:
    echo(f"✔ {task.name}: {len(labels)} labels: " + ", ".join(f"{l} ({found.get(l, 0)})" for l in labels))
    echo(
        f"✔ {output_dir / 'corpus'}: train {len(train_docs)} (the simulated teacher's labelled pool), "
        f"seed {n_seed} ({k} per label), dev {len(dev_docs)}{' (split off the data)' if split else ''}, "
        + (f"test {len(test_docs)}" if test_docs is not None else "no test set (--test FILE adds one)")
    )
    echo(f"✔ {config_path} (from {base.name}, teacher {teacher.stem})")
    echo(
        f"Next: fill in task_description and [evokd.label_definitions] in {config_path} (an LLM teacher reads them), then"
    )
    echo(f"  python -m spacy_evokd evolve {config_path} {output_dir / 'training'}")
    echo(f"  python -m spacy_evokd report {output_dir / 'training'}")

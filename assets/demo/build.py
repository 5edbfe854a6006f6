"""Build the demo JSONL splits from the hand-written sources in ./source (run from anywhere).

textcat: source/textcat_<label>.txt, one message per line -> {"text", "label"}
textcat_multilabel: source/textcat_multilabel.txt, `label1,label2<TAB>text` per line
         -> {"text", "labels": [...]} (the labels of the textcat sources, 1-3 per message)
ner:     source/ner.txt, one sentence per line with [surface|LABEL] markup -> {"tokens", "tags"}
         (tokenised by spaCy's English tokenizer, IOB2 tags)
Splits are seeded, so the output is the same on every machine.
"""
import json
import random
import re
from pathlib import Path

import spacy

HERE = Path(__file__).parent
MARKUP = re.compile(r"\[([^\[\]|]+)\|([A-Z]+)\]")
MULTILABEL_SOURCE = "textcat_multilabel.txt"


def write(path: Path, rows) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf8")


def single_label_sources():
    # source/textcat_multilabel.txt matches the glob too but is not a label of its own
    return [p for p in sorted((HERE / "source").glob("textcat_*.txt")) if p.name != MULTILABEL_SOURCE]


def textcat(rng: random.Random, n_dev: int = 10, n_test: int = 10) -> None:
    splits = {"train": [], "dev": [], "test": []}
    for src in single_label_sources():
        label = src.stem[len("textcat_"):]
        lines = [l.strip() for l in src.read_text(encoding="utf8").splitlines() if l.strip()]
        rng.shuffle(lines)
        splits["dev"] += [{"text": t, "label": label} for t in lines[:n_dev]]
        splits["test"] += [{"text": t, "label": label} for t in lines[n_dev : n_dev + n_test]]
        splits["train"] += [{"text": t, "label": label} for t in lines[n_dev + n_test :]]
    for name, rows in splits.items():
        rng.shuffle(rows)
        write(HERE / "textcat" / f"{name}.jsonl", rows)


def ner(rng: random.Random, n_dev: int = 80, n_test: int = 80) -> None:
    nlp = spacy.blank("en")
    rows = []
    for lineno, line in enumerate((HERE / "source/ner.txt").read_text(encoding="utf8").splitlines(), 1):
        if not line.strip():
            continue
        text, spans, pos = "", [], 0
        for m in MARKUP.finditer(line):
            text += line[pos : m.start()]
            spans.append((len(text), len(text) + len(m.group(1)), m.group(2)))
            text += m.group(1)
            pos = m.end()
        text += line[pos:]
        doc = nlp.make_doc(text)
        ents = [doc.char_span(s, e, label=l, alignment_mode="strict") for s, e, l in spans]
        if any(e is None for e in ents):
            raise ValueError(f"source/ner.txt:{lineno}: an entity does not align to tokens: {line}")
        doc.ents = ents
        tags = [f"{t.ent_iob_}-{t.ent_type_}" if t.ent_iob_ != "O" else "O" for t in doc]
        rows.append({"tokens": [t.text for t in doc], "tags": tags})
    rng.shuffle(rows)
    write(HERE / "ner/dev.jsonl", rows[:n_dev])
    write(HERE / "ner/test.jsonl", rows[n_dev : n_dev + n_test])
    write(HERE / "ner/train.jsonl", rows[n_dev + n_test :])


def read_multilabel(path: Path, labels) -> list:
    """`label1,label2<TAB>text` lines -> {"text", "labels"} rows (labels sorted); a bad line stops
    the build with its file and line."""
    rows, seen = [], {}
    for lineno, line in enumerate(path.read_text(encoding="utf8").splitlines(), 1):
        if not line.strip():
            continue
        where = f"source/{path.name}:{lineno}"
        if "\t" not in line:
            raise ValueError(f"{where}: expected `label1,label2<TAB>text`, found no tab")
        head, text = line.split("\t", 1)
        names = [l.strip() for l in head.split(",")]
        for name in names:
            if name not in labels:
                raise ValueError(f"{where}: label {name!r} is not one of {labels}")
        if not text.strip() or len(set(names)) != len(names):
            raise ValueError(f"{where}: empty text or a label given twice")
        key = " ".join(text.casefold().split())
        if key in seen:
            raise ValueError(f"{where}: same text as line {seen[key]}")
        seen[key] = lineno
        rows.append({"text": text.strip(), "labels": sorted(names)})
    return rows


def textcat_multilabel(rng: random.Random, n_dev: int = 50, n_test: int = 50) -> None:
    """Stratified by label combination: each combination is shuffled and spread evenly along one
    list (by its items' rank within the combination), and dev / test take evenly spaced items of
    it, so every split gets every label and about the same share of multi-label rows."""
    labels = [p.stem[len("textcat_"):] for p in single_label_sources()]
    rows = read_multilabel(HERE / "source" / MULTILABEL_SOURCE, labels)
    groups = {}
    for row in rows:
        groups.setdefault(tuple(row["labels"]), []).append(row)
    keyed = []
    for combo in sorted(groups):
        group = groups[combo]
        rng.shuffle(group)
        keyed += [((i + 0.5) / len(group), rng.random(), row) for i, row in enumerate(group)]
    spread = [row for _, _, row in sorted(keyed, key=lambda k: k[:2])]

    def take(items, n):  # n evenly spaced items, and the rest
        picked = {int((i + 0.5) * len(items) / n) for i in range(n)}
        return [r for i, r in enumerate(items) if i in picked], [r for i, r in enumerate(items) if i not in picked]

    dev, rest = take(spread, n_dev)
    test, train = take(rest, n_test)
    for name, split in (("train", train), ("dev", dev), ("test", test)):
        rng.shuffle(split)
        write(HERE / "textcat_multilabel" / f"{name}.jsonl", split)


if __name__ == "__main__":
    textcat(random.Random(0))
    ner(random.Random(0))
    # its own generator, so adding it left the textcat and ner splits byte-identical
    textcat_multilabel(random.Random(0))

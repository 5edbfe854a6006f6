"""Build the demo JSONL splits from the hand-written sources in ./source (run from anywhere).

textcat: source/textcat_<label>.txt, one message per line -> {"text", "label"}
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


def write(path: Path, rows) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf8")


def textcat(rng: random.Random, n_dev: int = 10, n_test: int = 10) -> None:
    splits = {"train": [], "dev": [], "test": []}
    for src in sorted((HERE / "source").glob("textcat_*.txt")):
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


if __name__ == "__main__":
    textcat(random.Random(0))
    ner(random.Random(0))

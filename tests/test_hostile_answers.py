"""A catalogue of bad teacher answers, each through the real parser and validator.

Every case states what reaches the DocBin (accepted) and what is counted, by reason. Generation
answers are parsed with labels (the "no separate labelling" form) so one answer carries texts and
labels; labelling answers are parsed against known texts.
"""

import json
from collections import Counter

import pytest
import spacy

from spacy_evokd.parsing import parse_generation, parse_labels
from spacy_evokd.tasks import get_task
from spacy_evokd.validation import Validator, normalise

TC = ["account", "billing", "product_question", "shipping", "technical"]
NER = ["LOC", "ORG", "PER", "PRODUCT"]
DEV = "My parcel is stuck in customs since Monday."
SEEN = "I was charged twice for one order."
PROMPT = "Now write 2 new texts the student will probably get WRONG\nAnswer with JSON only, in this form:"
GOOD = {"text": "Where is my order from last week?", "label": "shipping"}


def gen(*items, **extra):
    return json.dumps({"hard": list(items), **extra}, ensure_ascii=False)


def ner(text, *ents):
    return {"text": text, "entities": [{"text": t, "label": l} for t, l in ents]}


# (case, task, answer, accepted [(text, label or entities)], counted reasons)
GENERATION = [
    ("empty answer", "textcat", "", [], {"malformed_answer": 1}),
    ("whitespace only", "textcat", " \n\t ", [], {"malformed_answer": 1}),
    ("refusal prose", "textcat", "I'm sorry, I can't help with that.", [], {"malformed_answer": 1}),
    ("truncated JSON", "textcat", '{"hard": [{"text": "Where is my ord', [], {"malformed_answer": 1}),
    (
        "invalid JSON, single quotes",
        "textcat",
        "{'hard': [{'text': 'x y', 'label': 'billing'}]}",
        [],
        {"malformed_answer": 1},
    ),
    ("markdown fence", "textcat", "```json\n" + gen(GOOD) + "\n```", [(GOOD["text"], "shipping")], {}),
    (
        "fence without language + chatter",
        "textcat",
        "Sure!\n```\n" + gen(GOOD) + "\n```\nDone.",
        [(GOOD["text"], "shipping")],
        {},
    ),
    (
        "JSON after commentary",
        "textcat",
        "Here they are: " + gen(GOOD) + " Hope it helps",
        [(GOOD["text"], "shipping")],
        {},
    ),
    (
        "numbered list with commentary",
        "textcat",
        "Hard:\n1. Where is my order from last week?\nThese are tricky.",
        [],
        {"missing_label": 1},
    ),
    (
        "label in other case",
        "textcat",
        gen({"text": GOOD["text"], "label": "SHIPPING"}),
        [(GOOD["text"], "shipping")],
        {},
    ),
    (
        "label with spaces",
        "textcat",
        gen({"text": "Does it fit a 16 inch laptop?", "label": "Product Question"}),
        [("Does it fit a 16 inch laptop?", "product_question")],
        {},
    ),
    (
        "label with hyphen and dot",
        "textcat",
        gen({"text": "Does it fit a 16 inch laptop?", "label": "product-question."}),
        [("Does it fit a 16 inch laptop?", "product_question")],
        {},
    ),
    ("label not in set", "textcat", gen({"text": "Is there a refund?", "label": "refunds"}), [], {"unknown_label": 1}),
    ("label missing", "textcat", gen({"text": "Is there a refund?"}), [], {"missing_label": 1}),
    ("label not a string", "textcat", gen({"text": "Is there a refund?", "label": 3}), [], {"missing_label": 1}),
    ("item not an object", "textcat", gen(42, GOOD), [(GOOD["text"], "shipping")], {"malformed_item": 1}),
    ("hard is not a list", "textcat", json.dumps({"hard": "x y"}), [], {"malformed_answer": 1}),
    ("empty text", "textcat", gen({"text": "", "label": "billing"}), [], {"empty": 1}),
    ("one-word text", "textcat", gen({"text": "Refund", "label": "billing"}), [], {"too_short": 1}),
    ("huge text", "textcat", gen({"text": "please " * 300, "label": "billing"}), [], {"too_long": 1}),
    ("huge answer", "textcat", "x" * 250_000, [], {"huge_answer": 1}),
    (
        "control characters",
        "textcat",
        gen({"text": "Refund \u0007 now please", "label": "billing"}),
        [],
        {"control_characters": 1},
    ),
    (
        "invalid unicode (lone surrogate)",
        "textcat",
        '{"hard": [{"text": "bad \\ud800 text here", "label": "billing"}]}',
        [],
        {"control_characters": 1},
    ),
    (
        "replacement character",
        "textcat",
        gen({"text": "caf\ufffd order missing", "label": "shipping"}),
        [],
        {"control_characters": 1},
    ),
    (
        "dev text with a zero-width space",
        "textcat",
        gen({"text": DEV[:9] + "\u200b" + DEV[9:], "label": "shipping"}),
        [],
        {"invisible_characters": 1},
    ),
    (
        "right-to-left override",
        "textcat",
        gen({"text": "Refund \u202eplease now", "label": "billing"}),
        [],
        {"invisible_characters": 1},
    ),
    (
        "prompt echoed back",
        "textcat",
        gen({"text": "Now write 2 new texts the student will probably get WRONG", "label": "technical"}),
        [],
        {"prompt_echo": 1},
    ),
    ("dev text copied", "textcat", gen({"text": DEV.upper(), "label": "shipping"}), [], {"leak_dev_test": 1}),
    ("earlier round copied", "textcat", gen({"text": " " + SEEN + " ", "label": "billing"}), [], {"duplicate": 1}),
    (
        "duplicate within the answer",
        "textcat",
        gen(GOOD, dict(GOOD, text=GOOD["text"].lower())),
        [(GOOD["text"], "shipping")],
        {"duplicate": 1},
    ),
    (
        "more items than asked",
        "textcat",
        gen(
            GOOD, {"text": "Second one is here", "label": "billing"}, {"text": "Third one is here", "label": "billing"}
        ),
        [(GOOD["text"], "shipping"), ("Second one is here", "billing")],
        {"too_many": 1},
    ),
    (
        "ner entity absent from text",
        "ner",
        gen(ner("Anna flew to Rome.", ("Anna", "PER"), ("Oslo", "LOC"))),
        [],
        {"unalignable_entity": 1},
    ),
    (
        "ner overlapping entities",
        "ner",
        gen(ner("New York City is big.", ("New York City", "LOC"), ("New York", "LOC"))),
        [],
        {"overlapping_entity": 1},
    ),
    (
        "ner entity inside a word",
        "ner",
        gen(ner("Berliners love bread.", ("Berlin", "LOC"))),
        [],
        {"misaligned_span": 1},
    ),
    (
        "ner label lower case",
        "ner",
        gen(ner("Anna flew to Rome.", ("Anna", "per"), ("Rome", "loc"))),
        [("Anna flew to Rome.", [(0, 4, "PER"), (13, 17, "LOC")])],
        {},
    ),
    ("ner unknown label", "ner", gen(ner("Anna flew to Rome.", ("Anna", "PERSON"))), [], {"unknown_label": 1}),
    (
        "ner entities not a list",
        "ner",
        gen({"text": "Anna flew to Rome.", "entities": "Anna"}),
        [],
        {"unalignable_entity": 1},
    ),
    (
        "ner case-different mention repaired",
        "ner",
        gen(ner("we met in berlin today.", ("Berlin", "LOC"))),
        [("we met in berlin today.", [(10, 16, "LOC")])],
        {},
    ),
]


def validate(task, samples, seen=None):
    v = Validator(
        spacy.blank("en"), get_task(task), TC if task == "textcat" else NER, max_chars=500, blocked_texts=[DEV]
    )
    return v.validate(samples, {normalise(SEEN)} if seen is None else seen)


@pytest.mark.parametrize("case,task,answer,accepted,reasons", GENERATION, ids=[c[0] for c in GENERATION])
def test_generation_catalogue(case, task, answer, accepted, reasons):
    labels = TC if task == "textcat" else NER
    samples, rejected = parse_generation(
        answer, get_task(task), labels, with_labels=True, n_hard=2, n_easy=2, prompt=PROMPT
    )
    docs, invalid = validate(task, samples)
    rejected.update(invalid)
    got = [
        (
            d.text,
            max(d.cats, key=d.cats.get)
            if task == "textcat"
            else [(e.start_char, e.end_char, e.label_) for e in d.ents],
        )
        for d in docs
    ]
    assert got == accepted
    assert rejected == Counter(reasons)


LABELLING = [
    (
        "ids out of order",
        '[{"id": 2, "label": "billing"}, {"id": 1, "label": "shipping"}]',
        ["shipping", "billing"],
        {},
    ),
    (
        "ids out of range",
        '[{"id": 7, "label": "billing"}, {"id": 1, "label": "shipping"}]',
        ["shipping"],
        {"unlabelled": 1},
    ),
    (
        "duplicate ids: the first wins",
        '[{"id": 1, "label": "billing"}, {"id": 1, "label": "account"}, {"id": 2, "label": "technical"}]',
        ["billing", "technical"],
        {},
    ),
    ("a list too short", '["billing"]', [], {"malformed_answer": 1, "unlabelled": 2}),
    (
        "wrapped in an object",
        '{"labels": [{"id": 1, "label": "billing"}, {"id": 2, "label": "account"}]}',
        ["billing", "account"],
        {},
    ),
    ("plain numbered lines", "1. Billing\n2. technical", ["billing", "technical"], {}),
    ("prose only", "These are about money.", [], {"malformed_answer": 1, "unlabelled": 2}),
    (
        "item not an object",
        '[{"id": 1, "label": "billing"}, {"id": 2, "label": ["x"]}]',
        ["billing"],
        {"missing_label": 1},
    ),
]


@pytest.mark.parametrize("case,answer,labels,reasons", LABELLING, ids=[c[0] for c in LABELLING])
def test_labelling_catalogue(case, answer, labels, reasons):
    texts = ["Where is my parcel now?", "Why was I charged twice?"]
    samples, rejected = parse_labels(answer, texts, get_task("textcat"), TC)
    docs, invalid = validate("textcat", samples, seen=set())
    rejected.update(invalid)
    assert [max(d.cats, key=d.cats.get) for d in docs] == labels
    assert rejected == Counter(reasons)


def test_catalogue_is_large_enough():
    assert len(GENERATION) + len(LABELLING) >= 30

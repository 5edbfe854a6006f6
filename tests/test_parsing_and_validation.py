"""Teacher answers through the real parser and validator: what is repaired, what is rejected."""

import json
from collections import Counter

import pytest
import spacy

from spacy_evokd.parsing import extract_json, normalise_label, parse_generation, parse_labels
from spacy_evokd.tasks import get_task
from spacy_evokd.tasks.ner import align_entities
from spacy_evokd.ty import Sample
from spacy_evokd.validation import Validator, normalise

TC = ["account", "billing", "product_question", "shipping", "technical"]
NER = ["LOC", "ORG", "PER", "PRODUCT"]


@pytest.mark.parametrize(
    "answer",
    [
        '{"hard": ["a b"], "easy": ["c d"]}',
        'Sure! Here you go:\n```json\n{"hard": ["a b"], "easy": ["c d"]}\n```\nLet me know.',
        'Analysis done. {"hard": ["a b"], "easy": ["c d"]} -- these target the weakness.',
        'Hard samples:\n1. "a b"\n\nEasy samples:\n- c d\nThese should help the student.',
    ],
)
def test_generation_forms_are_read(answer):
    samples, rejected = parse_generation(answer, get_task("textcat"), TC, n_hard=2, n_easy=2)
    assert [(s.text, s.intent) for s in samples] == [("a b", "hard"), ("c d", "easy")]
    assert not rejected


@pytest.mark.parametrize("answer", ["", "I cannot help with that.", '{"hard": [', "```json\n{broken\n```"])
def test_malformed_generation_is_counted(answer):
    samples, rejected = parse_generation(answer, get_task("textcat"), TC, n_hard=2, n_easy=2)
    assert samples == [] and rejected == Counter(malformed_answer=1)


def test_generation_extra_items_and_non_strings():
    answer = json.dumps({"hard": ["one two", 5, {"txt": "x"}, "three four"], "easy": ["e1 e2", "e3 e4", "e5 e6"]})
    samples, rejected = parse_generation(answer, get_task("textcat"), TC, n_hard=4, n_easy=2)
    assert [s.text for s in samples] == ["one two", "three four", "e1 e2", "e3 e4"]
    assert rejected == Counter(malformed_item=2, too_many=1)


def test_generation_with_labels_textcat_and_ner():
    tc = json.dumps({"hard": [{"text": "Where is my parcel?", "label": "Shipping"}], "easy": ["no label here"]})
    samples, rejected = parse_generation(tc, get_task("textcat"), TC, with_labels=True)
    assert [(s.text, s.annotation) for s in samples] == [("Where is my parcel?", "shipping")]
    assert rejected == Counter(missing_label=1)
    ner = json.dumps(
        {
            "hard": [
                {
                    "text": "Anna flew to Paris.",
                    "entities": [{"text": "Anna", "label": "per"}, {"text": "Paris", "label": "LOC"}],
                },
                {"text": "Bob likes tea.", "entities": [{"text": "Robert", "label": "PER"}]},
            ]
        }
    )
    samples, rejected = parse_generation(ner, get_task("ner"), NER, with_labels=True)
    assert [(s.text, s.annotation) for s in samples] == [("Anna flew to Paris.", [(0, 4, "PER"), (13, 18, "LOC")])]
    assert rejected == Counter(unalignable_entity=1)


def test_label_normalisation():
    assert normalise_label("Product Question", TC) == "product_question"
    assert normalise_label(" BILLING.", TC) == "billing"
    assert normalise_label("product-question", TC) == "product_question"
    assert normalise_label("refund", TC) == "refund"  # unknown stays unknown for the validator
    assert normalise_label(3, TC) is None


def test_entity_alignment_rules():
    text = "Paris Hilton stayed in Paris, then Paris again."
    spans = align_entities(
        text,
        [
            {"text": "Paris Hilton", "label": "PER"},
            {"text": "Paris", "label": "LOC"},
            {"text": "Paris", "label": "LOC"},
        ],
        NER,
    )
    # whole-word matches first, the k-th mention -> the k-th occurrence
    assert spans == [(0, 12, "PER"), (0, 5, "LOC"), (23, 28, "LOC")]
    assert align_entities("We met in berlin.", [["Berlin", "LOC"]], NER) == [(10, 16, "LOC")]  # case repair
    assert align_entities("Nothing here.", [{"text": "Oslo", "label": "LOC"}], NER) is None
    assert align_entities("x Oslo", [{"text": "Oslo", "label": "LOC", "start": 2, "end": 6}], NER) == [(2, 6, "LOC")]
    assert align_entities("x Oslo", "Oslo", NER) is None  # not a list


def test_labels_with_ids_positional_and_lines():
    texts = ["refund please", "parcel late", "app crashes"]
    by_id = '[{"id": 2, "label": "shipping"}, {"id": 1, "label": "Billing"}, {"id": 3, "label": "refunds"}]'
    samples, rejected = parse_labels(by_id, texts, get_task("textcat"), TC)
    assert [(s.text, s.annotation) for s in samples] == [
        ("refund please", "billing"),
        ("parcel late", "shipping"),
        ("app crashes", "refunds"),
    ]
    assert not rejected  # "refunds" is the validator's to reject
    samples, _ = parse_labels('["billing", "shipping", "technical"]', texts, get_task("textcat"), TC)
    assert [s.annotation for s in samples] == ["billing", "shipping", "technical"]
    samples, rejected = parse_labels('["billing", "shipping"]', texts, get_task("textcat"), TC)  # count mismatch
    assert samples == [] and rejected == Counter(malformed_answer=1, unlabelled=3)
    samples, rejected = parse_labels("1. billing\n2) shipping\nI am unsure about 3.", texts, get_task("textcat"), TC)
    assert [s.annotation for s in samples] == ["billing", "shipping"] and rejected == Counter(unlabelled=1)
    samples, rejected = parse_labels("no idea", texts, get_task("textcat"), TC)
    assert samples == [] and rejected == Counter(malformed_answer=1, unlabelled=3)


def test_ner_labels():
    texts = ["Anna works at Acme Corp.", "Nothing to see."]
    answer = (
        '```json\n[{"id": 1, "entities": [{"text": "Anna", "label": "PER"}, {"text": "Acme Corp", '
        '"label": "ORG"}]}, {"id": 2, "entities": []}]\n```'
    )
    samples, rejected = parse_labels(answer, texts, get_task("ner"), NER)
    assert [s.annotation for s in samples] == [[(0, 4, "PER"), (14, 23, "ORG")], []] and not rejected


def test_extract_json_prefers_fenced_block():
    assert extract_json('use {"a": 1} or\n```\n{"b": 2}\n```') == {"b": 2}
    assert extract_json("[1, 2] trailing") == [1, 2]
    assert extract_json("nothing") is None


# -- validation ------------------------------------------------------------------------------


@pytest.fixture
def nlp():
    return spacy.blank("en")


def test_textcat_validation_reasons(nlp):
    v = Validator(nlp, get_task("textcat"), TC, max_chars=60, blocked_texts=["My parcel is LATE  again"])
    seen = {normalise("already in the seed set")}
    samples = [
        Sample("  I was charged twice  ", annotation="billing", intent="hard"),  # repaired: stripped
        Sample("", annotation="billing"),
        Sample("   ", annotation="billing"),
        Sample("bad \x00 byte here", annotation="billing"),
        Sample("broken \ufffd decoding", annotation="billing"),
        Sample("hi", annotation="billing"),
        Sample("x " * 40, annotation="billing"),
        Sample("my parcel is late again", annotation="shipping"),
        Sample("Already in the SEED set", annotation="billing"),
        Sample("I was charged twice", annotation="billing"),
        Sample("no label at all", annotation=None),
        Sample("a refund label", annotation="refund"),
        Sample("tab\tand newline\nare fine", annotation="technical"),
    ]
    docs, rejected = v.validate(samples, seen)
    assert [d.text for d in docs] == ["I was charged twice", "tab\tand newline\nare fine"]
    assert docs[0].cats == {"account": 0.0, "billing": 1.0, "product_question": 0.0, "shipping": 0.0, "technical": 0.0}
    assert docs[0].user_data["evokd"]["intent"] == "hard"
    assert rejected == Counter(
        empty=2,
        control_characters=2,
        too_short=1,
        too_long=1,
        leak_dev_test=1,
        duplicate=2,
        missing_label=1,
        unknown_label=1,
    )
    assert normalise("I was charged twice") in seen


def test_ner_validation_reasons(nlp):
    v = Validator(nlp, get_task("ner"), NER)
    text = "Anna visited Berlin with Acme."
    docs, rejected = v.validate(
        [
            Sample(text, annotation=[(0, 4, "PER"), (13, 19, "LOC")]),
            Sample("Bob visited Berlinale today.", annotation=[(12, 18, "LOC")]),  # inside a token
            Sample("Carl visited Rome today.", annotation=[(0, 4, "PER"), (0, 12, "PER")]),
            Sample("Dora visited Oslo today.", annotation=[(0, 4, "PERSON")]),
            Sample("Eve visited Kyiv today.", annotation=[(0, 99, "PER")]),
            Sample("Fay stayed home today.", annotation=None),
            Sample("Gus stayed home all day.", annotation=[]),  # valid: no entities
        ],
        set(),
    )
    assert [d.text for d in docs] == [text, "Gus stayed home all day."]
    assert [(e.text, e.label_) for e in docs[0].ents] == [("Anna", "PER"), ("Berlin", "LOC")]
    assert docs[1].ents == ()
    assert rejected == Counter(misaligned_span=2, overlapping_entity=1, unknown_label=1, missing_label=1)


def test_stripping_shifts_entity_offsets(nlp):
    docs, rejected = Validator(nlp, get_task("ner"), NER).validate(
        [Sample("  Anna sings.", annotation=[(2, 6, "PER")])], set()
    )
    assert not rejected and [(e.text, e.start_char) for e in docs[0].ents] == [("Anna", 0)]


def test_normalise_ignores_case_spacing_and_end_punctuation():
    assert normalise("  Where is   my PARCEL?! ") == normalise("where is my parcel") == "where is my parcel"
    assert normalise("“Quoted.”") == "quoted"
    assert normalise("a b") != normalise("a  c")


# look-alike copies of one dev text: Cyrillic letters for Latin ones, a combining accent, U+3164
DEV_TEXT = "My free trial converted to a paid plan without warning"
LOOK_ALIKES = [
    "My fr\u0435\u0435 tri\u0430l c\u043env\u0435rt\u0435d to a paid plan without warning",  # Cyrillic е, а, о
    "My free trial conve\u0301rted to a paid plan without warning",  # a combining acute accent
    "My free trial\u3164converted to a paid plan without warning",  # HANGUL FILLER, shown as a blank
    "My free tr\u0456al converted to a p\u0430id plan without w\u0430rning",  # Cyrillic і, а
    "\u039cy free trial converted to a paid plan without warning",  # Greek capital Mu
    "My free trial converted to a paid plan with\u200bout warning",  # a zero-width space
]


def test_normalise_folds_look_alike_letters_marks_and_invisible_fillers():
    for copy in LOOK_ALIKES:
        assert copy != DEV_TEXT and normalise(copy) == normalise(DEV_TEXT), ascii(copy)
    # real words in other scripts stay themselves: Russian is not folded into Latin gibberish
    assert normalise("Моя посылка не пришла") != normalise("Моя посылка пришла")
    assert normalise("Моя посылка не пришла") == normalise("Moя пocылкa нe пpишлa")  # Latin M, o, c, a, e, p in it


def test_look_alike_copies_of_dev_texts_are_leaks_and_of_earlier_texts_duplicates():
    nlp = spacy.blank("en")
    v = Validator(nlp, get_task("textcat"), TC, blocked_texts=[DEV_TEXT])
    docs, rejected = v.validate([Sample(t, annotation="billing") for t in LOOK_ALIKES], set())
    # U+200B is an invisible character (rejected before the leak check), the others are leaks
    assert docs == [] and rejected == Counter(leak_dev_test=5, invisible_characters=1)
    seen = set()
    docs, rejected = Validator(nlp, get_task("textcat"), TC).validate(
        [Sample(t, annotation="billing") for t in [DEV_TEXT] + LOOK_ALIKES[:4]], seen
    )
    assert [d.text for d in docs] == [DEV_TEXT] and rejected == Counter(duplicate=4)


def test_pool_mode_never_offers_look_alike_copies_of_dev_texts(tmp_path):
    from spacy_evokd.pool_source import PoolSource, read_pool_texts

    pool = tmp_path / "pool.jsonl"
    pool.write_text(
        "\n".join(json.dumps({"text": t}) for t in LOOK_ALIKES + ["Where is my parcel?"]) + "\n", encoding="utf8"
    )
    assert read_pool_texts(str(pool)) == [LOOK_ALIKES[0], "Where is my parcel?"]  # look-alikes are duplicates
    assert PoolSource(str(pool), blocked_texts=[DEV_TEXT]).texts == ["Where is my parcel?"]

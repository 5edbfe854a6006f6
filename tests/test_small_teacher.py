"""Small-teacher robustness (issue 10, item 3): what a 1.5B teacher got wrong, each through the
real parser, validator, prompts and (for the loop-level checks) the loop with the local test
server as the teacher: near-duplicates, labels written into texts, placeholders of the format
example, "label: definition" labels, NER answers wrapped in lists, the texts already written in
the generation prompt, label disagreement, prompt sizes and the growing estimate."""

import json
from collections import Counter
from pathlib import Path

import pytest
import spacy

from spacy_evokd.parsing import normalise_label, parse_generation, parse_labels
from spacy_evokd.tasks import get_task
from spacy_evokd.teachers.llm import SHOWN_TEXT_CHARS, SHOWN_TEXTS, SHOWN_TEXTS_CHARS, LLMTeacher, recent_texts
from spacy_evokd.testing.responder import PoolResponder
from spacy_evokd.testing.server import FakeOpenAIServer
from spacy_evokd.ty import Judged, RoundContext, Sample
from spacy_evokd.untrusted import HISTORY_MAX_CHARS, bound_history
from spacy_evokd.validation import REASONS, Validator, is_placeholder, label_disagreements, normalise

from .conftest import write_demo_corpus

ROOT = Path(__file__).parent.parent
TC = ["account", "billing", "product_question", "shipping", "technical"]
TREC = ["abbreviation", "description", "entity", "human", "location", "numeric"]
NER = ["LOC", "ORG", "PER", "PRODUCT"]
DEFS = {"shipping": "delivery status, delays, tracking, addresses, parcels damaged in transit"}


def validate(task, labels, texts_or_samples, seen=(), definitions=None):
    v = Validator(spacy.blank("en"), get_task(task), labels, max_chars=500, definitions=definitions)
    samples = [s if isinstance(s, Sample) else Sample(s, annotation=labels[0]) for s in texts_or_samples]
    docs, rejected = v.validate(samples, {normalise(t) for t in seen})
    return [d.text for d in docs], rejected


# -- near-duplicates ---------------------------------------------------------------------------

NEAR = [
    ("digits differ", "Where is order 12345?", "Where is order 67890?", "near_duplicate"),
    (
        "stop words and punctuation differ",
        "I want a refund for my broken blender",
        "I want a refund for the broken blender!!",
        "near_duplicate",
    ),
    (
        "one content word in ten changed",
        "The screen of my new gaming laptop flickers badly whenever I open the lid after sleep mode",
        "The screen of my new gaming laptop flickers badly whenever I open the lid after hibernation mode",
        "near_duplicate",
    ),
    (
        "one content word in eight changed",
        "The screen of my new laptop flickers whenever I open the lid after sleep mode",
        "The screen of my new laptop flickers whenever I open the lid after hibernation mode",
        None,
    ),
    (
        "same words, other order",
        "Why was my card charged twice this month?",
        "This month my card was charged twice, why?",
        "near_duplicate",
    ),
    ("another question of the same form", "Who founded Google?", "Who founded Apple?", None),
    ("other entity", "Anna flew to Rome on Monday.", "Anna flew to Paris on Monday.", None),
    ("another topic", "Where is my parcel?", "Why was I charged twice?", None),
]


@pytest.mark.parametrize("case,seen,text,reason", NEAR, ids=[c[0] for c in NEAR])
def test_near_duplicates_of_earlier_texts(case, seen, text, reason):
    accepted, rejected = validate("textcat", TC, [text], seen=[seen])
    assert rejected == (Counter({reason: 1}) if reason else Counter())
    assert accepted == ([] if reason else [text])


def test_near_duplicates_within_one_batch_and_exact_ones_keep_their_reason():
    accepted, rejected = validate("textcat", TC, ["Where is order 111?", "where is order 111", "Where is order 222?"])
    assert accepted == ["Where is order 111?"] and rejected == Counter(duplicate=1, near_duplicate=1)
    assert REASONS.index("duplicate") < REASONS.index("near_duplicate")


# -- labels written into the text ----------------------------------------------------------------

LEAKS = [
    ("label in parentheses", TREC, "Who founded Google? (human)", True),
    ("label in parentheses, capitalised", TREC, "What is the capital of Japan? (Location)", True),
    ("label: in brackets", TC, "My parcel never arrived [label: shipping]", True),
    ("category: anywhere", TC, "Category: billing. I was charged twice.", True),
    ("dash at the end", TC, "My parcel is three weeks late - shipping", True),
    ("arrow at the end", TC, "My parcel is three weeks late -> shipping", True),
    ("label first", TC, "Billing: I was charged twice for one order.", True),
    ("multi-word label with a space", TC, "Does the lamp fit an E27 socket? (product question)", True),
    ("ner type in brackets", NER, "Anna [PER] flew to Rome on Monday.", True),
    (
        "the label's definition copied",
        TC,
        "Delivery status, delays, tracking, addresses, parcels damaged in transit.",
        True,
    ),
    ("label word in a sentence", TC, "The shipping was slow and the box was wet.", False),
    ("label word at the end, no separator", TC, "I have a question about shipping", False),
    ("label word in parentheses with others", TC, "The fee (for shipping to Norway) is too high.", False),
    ("a dash inside the text", TC, "Billing cycle - when does the next one start?", False),
    ("a TREC word as a word", TREC, "Is a dolphin a human or a fish?", False),
]


@pytest.mark.parametrize("case,labels,text,leak", LEAKS, ids=[c[0] for c in LEAKS])
def test_label_leak(case, labels, text, leak):
    task = "ner" if labels is NER else "textcat"
    sample = Sample(text, annotation=[]) if task == "ner" else Sample(text, annotation=labels[0])
    accepted, rejected = validate(task, labels, [sample], definitions=DEFS)
    assert rejected == (Counter(label_leak=1) if leak else Counter())
    assert accepted == ([] if leak else [text])


# -- placeholders of the format example --------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "...",
        "…",
        "text",
        "<text>",
        "<new text>",
        "Your text here",
        '"..."',
        "Sentence 2",
        "<entity as written>",
        "[sentence]",
    ],
)
def test_placeholders_are_not_sent_on_to_labelling(text):
    answer = json.dumps(
        {"hard": [{"text": text, "label": "billing"}, {"text": "Where is my order from May?", "label": "shipping"}]}
    )
    samples, rejected = parse_generation(answer, get_task("textcat"), TC, with_labels=False, n_hard=2, n_easy=0)
    assert [s.text for s in samples] == ["Where is my order from May?"] and rejected == Counter(placeholder=1)
    assert validate("textcat", TC, [text])[1] == Counter(placeholder=1)  # and the validator's own check


@pytest.mark.parametrize("text", ["Where is my text?", "Text me when it ships", "An example of a bad invoice"])
def test_texts_that_merely_contain_placeholder_words_are_texts(text):
    assert not is_placeholder(text)


# -- labels as the model copies them; NER answers wrapped in lists ----------------------------------


@pytest.mark.parametrize(
    "written,label",
    [
        ("account: login, password", "account"),
        ("Account - login, password", "account"),
        ("product question: specifications", "product_question"),
        ("shipping (delivery status)", "shipping"),
        ("billing", "billing"),
        ("refund: money back", "refund: money back"),
        ("other", "other"),
    ],
)
def test_labels_copied_with_their_definition(written, label):
    assert normalise_label(written, TC) == label


def test_labelling_answer_with_definitions_as_labels_is_accepted():
    answer = '{"answers": [{"id": 1, "label": "account: login, password"}, {"id": 2, "label": "billing - charges"}]}'
    samples, rejected = parse_labels(answer, ["I can't log in", "I was charged twice"], get_task("textcat"), TC)
    assert [s.annotation for s in samples] == ["account", "billing"] and not rejected


def test_ner_answer_with_each_object_in_its_own_list():
    answer = '[[{"id": 1, "entities": [{"text": "Anna", "label": "PER"}]}], [{"id": 2, "entities": []}]]'
    samples, rejected = parse_labels(answer, ["Anna sings.", "It rains."], get_task("ner"), NER)
    assert [s.annotation for s in samples] == [[(0, 4, "PER")], []] and not rejected


# -- the prompts -------------------------------------------------------------------------------------


def test_recent_texts_are_bounded_newest_first():
    texts = [f"text number {i} " + "w" * 200 for i in range(100)]
    shown = recent_texts(texts)
    assert len(shown) <= SHOWN_TEXTS and all(len(t) <= SHOWN_TEXT_CHARS for t in shown)
    assert (
        sum(map(len, shown)) <= SHOWN_TEXTS_CHARS
        and shown[-1].startswith("text number 99 ")
        and shown[-1].endswith("…")
    )
    short = [f"Where is order {i}?" for i in range(50)] + ["Where is order 49?"]
    assert recent_texts(short) == [f"Where is order {i}?" for i in range(20, 50)]  # 30 newest, no repeats


def test_generation_prompt_shows_the_texts_already_written():
    with FakeOpenAIServer(
        PoolResponder(ROOT / "assets/demo/textcat/train.jsonl", get_task("textcat"), TC, mischief=False)
    ) as server:
        from spacy_evokd.models.openai_compatible import OpenAICompatible
        from spacy_evokd.weakness import build_report

        teacher = LLMTeacher(
            OpenAICompatible(name="m", base_url=server.base_url, api_key_env=None), get_task("textcat"), TC
        )
        teacher.begin_round(
            RoundContext(round=2, seen_texts=["An older text about a parcel.", "A seed text about billing."])
        )
        report = build_report(get_task("textcat"), TC, {"per_label": {}, "score": 0.0}, [], "the seed data")
        first = teacher.propose(teacher.analyse(report, []), 2, 2)
        teacher.propose(teacher.analyse(report, []), 2, 2)
        prompts = [
            r["body"]["messages"][-1]["content"]
            for r in server.requests
            if r["body"]["messages"][-1]["content"].startswith("Now write")
        ]
    assert "already written (do not repeat" in prompts[0]
    assert '- "An older text about a parcel."' in prompts[0] and '- "A seed text about billing."' in prompts[0]
    # the second generation of the round also sees what the first one wrote
    assert all(f"- {json.dumps(s.text, ensure_ascii=False)}" in prompts[1] for s in first.samples)
    assert "never put a label" in prompts[0] and 'exactly 2 "hard" and 2 "easy" objects' in prompts[0]
    # the intended label is asked for and kept as a proposal
    assert all(s.annotation in TC for s in first.samples)


def test_label_prompt_shows_every_id_and_analysis_asks_for_120_words():
    teacher = LLMTeacher(lambda p: p, get_task("textcat"), TC, DEFS)
    prompt = teacher.render("label", texts=["a b", "c d", "e f", "g h"])
    assert "exactly 4 objects with ids 1 to 4" in prompt
    assert all(f'{{"id": {i}, "label": "<label>"}}' in prompt for i in range(1, 5))

    analysis = teacher.render("analysis", **_analysis_values(teacher, ["Round 1: an older analysis"]))
    analysis = " ".join(analysis.split())
    assert "at most 120 words, as 3 to 6 short bullet points" in analysis and "150 words" not in analysis
    assert "Do not copy or rewrite them" in analysis


def _analysis_values(teacher, history, examples=()):

    judged = [Judged(x, x).to_dict(teacher.task) for x in examples]
    return dict(
        per_label={l: {"p": 0.5, "r": 0.5, "f": 0.5, "support": 10} for l in teacher.labels},
        overall={"macro_f": 0.5, "accuracy": 0.5, "ents_f": 0.5},
        confusions=[(("a", "b"), 3)] * 5,
        evaluated_on="the round 3 batch",
        wrong=judged,
        correct=judged,
        history=history,
    )


ANALYSIS = (
    "- The student confuses billing with shipping when a refund mentions a parcel or a delivery fee.\n"
    "- It labels account messages about passwords as technical because of words like error and app.\n"
    "- Short questions without keywords are often product_question although they ask about an order.\n"
    "- Long messages with several topics are labelled by their first sentence.\n"
)


@pytest.mark.parametrize("task", ["textcat", "ner"])
def test_every_prompt_fits_a_4k_context_at_its_caps(task):
    """The longest request, the generation call with everything at its cap: system + analysis
    prompt (the full history block, 8 wrong + 8 correct of the longest demo texts, the demo
    config's definitions) + the analysis (ANALYSIS_MAX_CHARS) + the generation prompt (the
    longest texts shown), with the chat template's markers, at 4 characters per token (Qwen2.5's
    tokenizer counted 3,657 tokens for the ner case, 3,000 for textcat: 4 chars/token over-counts)."""
    from spacy_evokd.config import load_config
    from spacy_evokd.data import load_samples
    from spacy_evokd.untrusted import ANALYSIS_MAX_CHARS

    labels = TC if task == "textcat" else NER
    evokd = load_config(ROOT / f"configs/{task}_fast.cfg", {})["evokd"]
    longest = sorted(
        load_samples(ROOT / f"assets/demo/{task}/train.jsonl", get_task(task), labels), key=lambda s: -len(s.text)
    )
    teacher = LLMTeacher(
        lambda p: p,
        get_task(task),
        labels,
        dict(evokd["label_definitions"]),
        task_description=evokd["task_description"],
    )
    history = bound_history([f"Round {i}: " + ANALYSIS * 2 for i in range(1, 20)])
    assert HISTORY_MAX_CHARS - 1000 < sum(map(len, history)) <= HISTORY_MAX_CHARS
    shown = recent_texts([s.text for s in longest[::-1]])
    assert len(shown) == SHOWN_TEXTS
    turns = [
        ("system", teacher.render("system")),
        ("user", teacher.render("analysis", **_analysis_values(teacher, history, longest[:8]))),
        ("assistant", (ANALYSIS * 6)[:ANALYSIS_MAX_CHARS]),
        ("user", teacher.render("generate", n_hard=2, n_easy=2, with_labels=False, shown_texts=shown)),
    ]
    generation_call = "".join(f"<|im_start|>{role}\n{text}<|im_end|>\n" for role, text in turns)
    label_call = teacher.render("system") + teacher.render("label", texts=[s.text for s in longest[:4]])
    assert len(generation_call) // 4 <= 4096 and len(label_call) // 4 <= 1000, len(generation_call) // 4


# -- label disagreement -------------------------------------------------------------------------------


def test_label_disagreements_are_counted_only_between_usable_labels():
    proposed = [
        Sample("a b", annotation="billing"),
        Sample("c d", annotation="shipping"),
        Sample("e f", annotation="<label>"),
        Sample("g h", annotation="account"),
    ]
    labelled = [
        Sample("a b", annotation="billing"),
        Sample("c d", annotation="technical"),
        Sample("e f", annotation="billing"),
        Sample("g h", annotation="other"),
    ]
    assert label_disagreements(proposed, labelled, get_task("textcat"), TC) == Counter(compared=2, disagreed=1)
    ner_p = [Sample("Anna sings.", annotation=[(0, 4, "PER")]), Sample("Rome is big.", annotation=[(0, 4, "LOC")])]
    ner_l = [Sample("Anna sings.", annotation=[(0, 4, "PER")]), Sample("Rome is big.", annotation=[(0, 4, "ORG")])]
    assert label_disagreements(ner_p, ner_l, get_task("ner"), NER) == Counter(compared=2, disagreed=1)


class Disagreeing(PoolResponder):
    """Generation proposes "shipping" for every text; the labelling call says "billing" for text 1."""

    def __call__(self, body):
        answer = super().__call__(body)
        last = body["messages"][-1]["content"]
        if last.startswith("Now write"):
            data = json.loads(answer)
            return json.dumps({k: [dict(i, label="shipping") for i in v] for k, v in data.items()})
        if "one object per" in last:
            data = json.loads(answer)
            return json.dumps([dict(d, label="billing" if d["id"] == 1 else "shipping") for d in data])
        return answer


def test_label_disagreement_is_recorded_and_shown_not_rejected(tmp_path):
    from spacy_evokd.loop import evolve

    from .test_untrusted_teacher import CFG, TEACHER, run_overrides

    corpus = write_demo_corpus(tmp_path / "corpus", "textcat", TC)
    lines = []
    with FakeOpenAIServer(
        Disagreeing(ROOT / "assets/demo/textcat/train.jsonl", get_task("textcat"), TC, mischief=False)
    ) as server:
        evolve(CFG, tmp_path / "run", run_overrides(corpus, server), teacher=TEACHER, echo=lines.append)
    rec = json.loads((tmp_path / "run/rounds/round_001.json").read_text())
    checks = rec["teacher_checks"]
    assert (
        checks["label_compared"] == 8
        and checks["label_disagreement"] == 2
        and checks["label_disagreement_rate"] == 0.25
    )
    assert checks["generate_answers"] == checks["generate_parsed"] == 2 and checks["parse_rate"] == 1.0
    assert checks["structured_output"] == "json_schema" and checks["structured_output_downgrades"] == 0
    assert "label_disagreement" not in rec["rejected"]  # a quality signal, not a rejection
    line = next(l for l in lines if "round 1/1: accepted" in l)
    assert "teacher: parsed 4/4, label disagreement 2/8" in line
    # the labelling call decides: texts 1 of each chain are stored as billing
    from spacy_evokd.data import read_docbin

    cats = Counter(max(d.cats, key=d.cats.get) for d in read_docbin(tmp_path / "run/rounds/round_001.spacy"))
    assert set(cats) <= {"billing", "shipping"} and cats["billing"] >= 1


# -- estimate -----------------------------------------------------------------------------------------


def test_estimate_grows_with_the_history_and_the_shown_texts_up_to_their_caps(tmp_path, monkeypatch):
    from spacy_evokd.data import jsonl_to_docs, write_docbin
    from spacy_evokd.estimate import estimate

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-used")  # the model is built, never called
    write_docbin(
        jsonl_to_docs(ROOT / "assets/demo/textcat/train.jsonl", get_task("textcat"), spacy.blank("en"))[:5],
        tmp_path / "seed.spacy",
    )

    def prompt_tokens(teacher, **extra):
        est = estimate(
            ROOT / "configs/textcat_bow.cfg",
            {"paths.train": str(tmp_path / "seed.spacy"), "evokd.rounds": 8, "evokd.analysis": "llm", **extra},
            teacher=ROOT / f"configs/teachers/{teacher}.cfg",
        )
        assert est["per_round"] == est["by_round"][-1] and est["total"]["prompt_tokens"] == sum(
            r["prompt_tokens"] for r in est["by_round"]
        )
        assert est["longest_prompt_tokens"] <= 4096
        return [r["prompt_tokens"] for r in est["by_round"]]

    both = prompt_tokens("openai")  # 30 texts shown (the teacher's default) and the history review
    assert both[1] > both[0] and both == sorted(both)  # grows ...
    assert both[-1] == both[-2]  # ... up to the caps
    shown_only = prompt_tokens("openai", **{"evokd.review_history": False})
    assert shown_only[1] > shown_only[0] and shown_only[-1] < both[-1]
    # local_server.cfg shows no texts (its small model copies them): without the history review, flat
    assert len(set(prompt_tokens("local_server", **{"evokd.review_history": False}))) == 1
    history_only = prompt_tokens("local_server")
    assert history_only[1] > history_only[0] and history_only[-1] < both[-1]


def plain_model(prompts, answer):
    """A plain spacy-llm model (prompts in, answers out) that records its prompts and always
    gives ``answer``."""

    def model(batch):
        batch = [list(p) for p in batch]
        prompts.extend(p for shards in batch for p in shards)
        return [[answer for _ in s] for s in batch]

    return model


def test_written_texts_shown_is_a_bounded_teacher_setting():
    from spacy_evokd.ty import Analysis

    prompts = []
    model = plain_model(prompts, '{"hard": [{"text": "Where is my order from May?", "label": "shipping"}]}')

    for shown in (30, 0):
        teacher = LLMTeacher(model, get_task("textcat"), TC, written_texts_shown=shown)
        teacher.begin_round(RoundContext(round=2, seen_texts=["An older text about a parcel."]))
        assert len(teacher.propose(Analysis(text="It confuses labels.", conversation=[]), 1, 0).samples) == 1
    assert '- "An older text about a parcel."' in prompts[0] and "already written" not in prompts[1]
    with pytest.raises(ValueError, match="written_texts_shown must be between 0 and 30, got 31"):
        LLMTeacher(lambda p: p, get_task("textcat"), TC, written_texts_shown=31)


class Copying(PoolResponder):
    """Generation copies an earlier text and repeats one of its own; the rest from the pool."""

    def __call__(self, body):
        answer = super().__call__(body)
        if body["messages"][-1]["content"].startswith("Now write"):
            data = json.loads(answer)
            data["hard"][0]["text"] = " where is my parcel "  # an earlier text, normalised the same
            data["easy"][0] = dict(data["hard"][1])  # a repeat within the answer
            return json.dumps(data)
        return answer


def test_copies_are_counted_as_duplicates_before_labelling_is_paid_for():
    from spacy_evokd.models.openai_compatible import OpenAICompatible
    from spacy_evokd.weakness import build_report

    with FakeOpenAIServer(
        Copying(ROOT / "assets/demo/textcat/train.jsonl", get_task("textcat"), TC, mischief=False)
    ) as server:
        teacher = LLMTeacher(
            OpenAICompatible(name="m", base_url=server.base_url, api_key_env=None), get_task("textcat"), TC
        )
        teacher.begin_round(RoundContext(round=1, seen_texts=["Where is my parcel?"]))
        report = build_report(get_task("textcat"), TC, {"per_label": {}, "score": 0.0}, [], "the seed data")
        proposal = teacher.propose(teacher.analyse(report, []), 2, 2)
        labelled = teacher.label([s.text for s in proposal.samples])
        label_prompt = server.requests[-1]["body"]["messages"][-1]["content"]
    assert proposal.rejected == Counter(duplicate=2) and len(proposal.samples) == 2 == len(labelled.samples)
    assert "where is my parcel" not in label_prompt.casefold() and "exactly 2 objects" in label_prompt


def test_situation_hints_differ_per_request_and_repeat_on_a_redone_round():
    from spacy_evokd.situations import SITUATIONS
    from spacy_evokd.ty import Analysis, RoundContext

    prompts = []
    model = plain_model(prompts, '{"hard": [{"text": "Where is my order from May?", "label": "shipping"}]}')

    def hints(prompt):
        line = prompt.split("need not be named): ")[1].split("\n")[0]
        return [h.split(". ", 1)[1] for h in line.rstrip(".").split("; ")]

    analysis = Analysis(text="It confuses labels.", conversation=[])
    teacher = LLMTeacher(model, get_task("textcat"), TC, written_texts_shown=0)
    for round_id in (1, 1, 2):  # round 1 twice: a redone round
        teacher.begin_round(RoundContext(round=round_id))
        teacher.propose(analysis, 2, 2)
        teacher.propose(analysis, 2, 2)
    drawn = [hints(p) for p in prompts]
    assert all(len(h) == len(set(h)) == 4 and set(h) <= set(SITUATIONS) for h in drawn)
    assert drawn[0] != drawn[1]  # two requests of a round: other situations
    assert drawn[:2] == drawn[2:4]  # the redone round sends the same prompts (the cache answers them)
    assert drawn[4:6] != drawn[:2]  # the next round: others again
    LLMTeacher(model, get_task("textcat"), TC, situation_hints=False).propose(analysis, 2, 2)
    assert "situation" not in prompts[-1]


def test_texts_are_quoted_verbatim_in_prompts_not_html_escaped():
    """Jinja's tojson escapes ' & < > as \\u0027 ...: the teacher copied those into entity spans."""
    prompts = []
    model = plain_model(prompts, '{"answers": [{"id": 1, "entities": []}]}')

    text = "It's Ben & Jerry's <b>café</b> in Zürich"
    LLMTeacher(model, get_task("ner"), NER).label([text])
    assert f"1. {json.dumps(text, ensure_ascii=False)}" in prompts[-1] and "\\u00" not in prompts[-1]


@pytest.mark.parametrize("examples_in_generation", [True, False])
def test_generation_chat_shows_the_students_texts_only_when_asked(examples_in_generation):
    from spacy_evokd.models.openai_compatible import OpenAICompatible
    from spacy_evokd.weakness import build_report

    judged = [
        Judged(
            Sample("My parcel never arrived at the pickup point.", annotation="shipping"),
            Sample("My parcel never arrived at the pickup point.", annotation="billing"),
        ),
        Judged(
            Sample("Why was my card charged twice?", annotation="billing"),
            Sample("Why was my card charged twice?", annotation="billing"),
        ),
    ]
    with FakeOpenAIServer(
        PoolResponder(ROOT / "assets/demo/textcat/train.jsonl", get_task("textcat"), TC, mischief=False)
    ) as server:
        model = OpenAICompatible(name="m", base_url=server.base_url, api_key_env=None)
        teacher = LLMTeacher(model, get_task("textcat"), TC, examples_in_generation=examples_in_generation)
        teacher.begin_round(RoundContext(round=1))
        report = build_report(get_task("textcat"), TC, {"per_label": {}, "score": 0.0}, judged, "the round 1 batch")
        analysis = teacher.analyse(report, [])
        teacher.propose(analysis, 2, 2)
        analysis_chat, generation_chat = ([m["content"] for m in r["body"]["messages"]] for r in server.requests)
    # the analysis always sees the student's texts, with the confusion they show
    assert "My parcel never arrived" in analysis_chat[1] and "shipping -> billing" in analysis_chat[1]
    shown = " ".join(generation_chat[:-1])
    assert ("My parcel never arrived" in shown) is examples_in_generation
    assert ("Why was my card charged twice?" in shown) is examples_in_generation
    # either way the generation chat keeps the scores, the confusions and the analysis itself
    assert "shipping -> billing" in shown and generation_chat[-2] == analysis.text
    assert generation_chat[-1].startswith("Now write")


def test_labelling_goes_in_small_requests_at_its_own_temperature_and_keeps_what_a_budget_allowed():
    # the 1.5B teacher labelled demo tickets better in fours at temperature 0 than in sixteens at
    # the generation temperature (bench/real_teacher.md)
    from spacy_evokd.models.openai_compatible import OpenAICompatible
    from spacy_evokd.ty import BudgetExceeded

    pool = [json.loads(line) for line in (ROOT / "assets/demo/textcat/train.jsonl").read_text().splitlines()[:10]]
    texts = [r["text"] for r in pool]
    with FakeOpenAIServer(
        PoolResponder(ROOT / "assets/demo/textcat/train.jsonl", get_task("textcat"), TC, mischief=False)
    ) as server:
        model = OpenAICompatible(name="m", base_url=server.base_url, api_key_env=None, config={"temperature": 0.7})
        labelled = LLMTeacher(model, get_task("textcat"), TC, label_batch=4).label(texts)
        sizes = [sum(t in r["body"]["messages"][-1]["content"] for t in texts) for r in server.requests]
        assert sizes == [4, 4, 2] and {r["body"]["temperature"] for r in server.requests} == {0.0}
        assert [s.text for s in labelled.samples] == texts  # input order, across requests
        assert [s.annotation for s in labelled.samples] == [r["label"] for r in pool]
        server.requests.clear()
        LLMTeacher(model, get_task("textcat"), TC, label_temperature=None, label_batch=8).label(texts)
        assert [r["body"]["temperature"] for r in server.requests] == [0.7, 0.7]  # the model's own

        class TwoRequests:  # a budget that affords two requests
            def __init__(self):
                self.n = 0

            def check(self, usage):
                self.n += 1
                if self.n > 2:
                    raise BudgetExceeded("max_tokens_per_round", per_round=True)

        teacher = LLMTeacher(model, get_task("textcat"), TC, label_batch=3)
        teacher.begin_round(RoundContext(round=1, budget=TwoRequests()))
        assert [s.text for s in teacher.label(texts).samples] == texts[:6]  # what was paid for is kept
        with pytest.raises(BudgetExceeded):  # and the next request stops the round
            teacher.label(texts[6:])
    with pytest.raises(ValueError, match="label_batch"):
        LLMTeacher(model, get_task("textcat"), TC, label_batch=0)
    with pytest.raises(ValueError, match="vote_temperature must be between 0 and 2"):
        LLMTeacher(model, get_task("textcat"), TC, vote_temperature=-1.0)

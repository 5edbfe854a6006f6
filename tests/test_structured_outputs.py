"""Structured outputs (issue 10, item 2): each generation / labelling / LLKD request carries its
answer's JSON schema as ``response_format``, in the form ``structured_output`` chooses, with one
fallback per refused form; request seeds; body fields the SDK does not know. Through the real
teacher and transport against the local test server (spacy_evokd/testing/server.py)."""

import json
import logging
from pathlib import Path

import pytest

from spacy_evokd.answer_schemas import generation_schema, labelling_schema
from spacy_evokd.models.openai_compatible import OpenAICompatible, TeacherRequestError
from spacy_evokd.parsing import parse_generation, parse_labels
from spacy_evokd.tasks import get_task
from spacy_evokd.teachers.llm import LLMTeacher, request_seed
from spacy_evokd.testing.responder import PoolResponder
from spacy_evokd.testing.server import FakeOpenAIServer
from spacy_evokd.ty import RoundContext
from spacy_evokd.weakness import build_report

ROOT = Path(__file__).parent.parent
TC = ["account", "billing", "product_question", "shipping", "technical"]
NER = ["LOC", "ORG", "PER", "PRODUCT"]
POOL = {"textcat": ROOT / "assets/demo/textcat/train.jsonl", "ner": ROOT / "assets/demo/ner/train.jsonl"}


def teacher_on(server, task, **model_args):
    labels = TC if task == "textcat" else NER
    model = OpenAICompatible(
        name="test-llm",
        base_url=server.base_url,
        api_key_env=None,
        backoff=0.01,
        config={"max_tokens": 500},
        **model_args,
    )
    return LLMTeacher(model, get_task(task), labels)


def one_chain(teacher):
    """analyse -> propose 2 hard + 1 easy -> label them, as the loop does."""
    report = build_report(teacher.task, teacher.labels, {"per_label": {}, "score": 0.0}, [], "the seed data")
    analysis = teacher.analyse(report, [])
    proposal = teacher.propose(analysis, 2, 1)
    labelled = teacher.label([p.text for p in proposal.samples])
    return proposal, labelled


def by_step(server):
    steps = {}
    for r in server.requests:
        last = r["body"]["messages"][-1]["content"]
        step = "analysis" if "Analyse the student" in last else "generate" if last.startswith("Now write") else "label"
        steps.setdefault(step, []).append(r["body"])
    return steps


@pytest.mark.parametrize("task", ["textcat", "ner"])
def test_generation_and_labelling_send_their_json_schema(task):
    labels = TC if task == "textcat" else NER
    with FakeOpenAIServer(PoolResponder(POOL[task], get_task(task), labels, mischief=False)) as server:
        proposal, labelled = one_chain(teacher_on(server, task))
        steps = by_step(server)
    assert len(proposal.samples) == 3 and len(labelled.samples) == 3
    assert "response_format" not in steps["analysis"][0]  # free text
    gen = steps["generate"][0]["response_format"]
    assert gen["type"] == "json_schema" and gen["json_schema"]["strict"] is True
    assert gen["json_schema"] == {
        "name": f"evokd_generation_{task}",
        "strict": True,
        "schema": generation_schema(get_task(task), labels, 2, 1)["schema"],
    }
    schema = gen["json_schema"]["schema"]
    assert (schema["properties"]["hard"]["minItems"], schema["properties"]["hard"]["maxItems"]) == (2, 2)
    assert schema["properties"]["easy"]["maxItems"] == 1 and schema["required"] == ["hard", "easy"]
    item = schema["properties"]["hard"]["items"]
    if task == "textcat":
        assert item["properties"]["label"]["enum"] == TC
    else:
        assert item["properties"]["entities"]["items"]["properties"]["label"]["enum"] == NER
    lab = steps["label"][0]["response_format"]["json_schema"]
    answers = lab["schema"]["properties"]["answers"]
    assert (answers["minItems"], answers["maxItems"]) == (3, 3)
    assert answers["items"]["properties"]["id"]["enum"] == [1, 2, 3]
    assert lab["schema"]["additionalProperties"] is False and answers["items"]["additionalProperties"] is False


def test_every_object_of_a_schema_is_strict():
    """OpenAI's strict mode: every object lists all its properties as required, no others allowed."""

    def objects(node):
        if isinstance(node, dict):
            if node.get("type") == "object":
                yield node
            for v in node.values():
                yield from objects(v)
        elif isinstance(node, list):
            for v in node:
                yield from objects(v)

    schemas = [
        generation_schema(t, l, 2, n) for t, l in ((get_task("textcat"), TC), (get_task("ner"), NER)) for n in (0, 2)
    ]
    schemas += [labelling_schema(t, l, 4) for t, l in ((get_task("textcat"), TC), (get_task("ner"), NER))]
    for s in schemas:
        assert s["schema"]["type"] == "object"  # an object at the root
        for o in objects(s["schema"]):
            assert o["additionalProperties"] is False and o["required"] == list(o["properties"])
    assert "easy" not in generation_schema(get_task("textcat"), TC, 2, 0)["schema"]["properties"]


def test_schema_shaped_answers_parse():
    """Answers of the schemas' shape are read by the lenient parser (it stays the reader)."""
    gen = '{"hard": [{"text": "Where is my order from May?", "label": "shipping"}], "easy": []}'
    samples, rejected = parse_generation(gen, get_task("textcat"), TC, with_labels=False, n_hard=1, n_easy=1)
    assert [(s.text, s.annotation) for s in samples] == [("Where is my order from May?", "shipping")] and not rejected
    lab = '{"answers": [{"id": 2, "entities": []}, {"id": 1, "entities": [{"text": "Anna", "label": "PER"}]}]}'
    samples, rejected = parse_labels(lab, ["Anna sings.", "It rains."], get_task("ner"), NER)
    assert [s.annotation for s in samples] == [[(0, 4, "PER")], []] and not rejected


def test_list_schemas_are_capped_and_a_capped_entity_list_is_rejected():
    """The real 1.5B teacher once listed one entity 99 times for a conll04 sentence naming it once,
    until max_tokens cut the whole 4-text answer: list schemas carry maxItems so the server ends
    such a list, and an entity list that reaches the cap is rejected as too_many_entities while
    the request's other answers are kept."""
    from spacy_evokd.tasks.ner import MAX_ENTITIES_PER_TEXT

    ents = labelling_schema(get_task("ner"), NER, 2)["schema"]["properties"]["answers"]["items"]["properties"][
        "entities"
    ]
    assert ents["maxItems"] == MAX_ENTITIES_PER_TEXT
    gen_ents = generation_schema(get_task("ner"), NER, 1, 0)["schema"]["properties"]["hard"]["items"]["properties"][
        "entities"
    ]
    assert gen_ents["maxItems"] == MAX_ENTITIES_PER_TEXT
    multi = labelling_schema(get_task("textcat_multilabel"), TC, 1)["schema"]["properties"]["answers"]["items"][
        "properties"
    ]["labels"]
    assert multi["maxItems"] == len(TC)
    texts = ["Bossi spoke. ( Fini ) Why ?", "Anna sings in Rome."]
    runaway = [{"text": "Fini", "label": "PER"}] * MAX_ENTITIES_PER_TEXT
    answer = {
        "answers": [
            {"id": 1, "entities": runaway},
            {"id": 2, "entities": [{"text": "Anna", "label": "PER"}, {"text": "Rome", "label": "LOC"}]},
        ]
    }
    samples, rejected = parse_labels(json.dumps(answer), texts, get_task("ner"), NER)
    assert rejected == {"too_many_entities": 1}
    assert [(s.text, s.annotation) for s in samples] == [("Anna sings in Rome.", [(0, 4, "PER"), (14, 18, "LOC")])]
    # one entity under the cap, the list is the validator's to judge (here: overlapping repeats)
    answer["answers"][0]["entities"] = runaway[:-1]
    samples, rejected = parse_labels(json.dumps(answer), texts, get_task("ner"), NER)
    assert not rejected and len(samples[0].annotation) == MAX_ENTITIES_PER_TEXT - 1


@pytest.mark.parametrize("form,expected", [("json_object", {"type": "json_object"}), ("off", None)])
def test_weaker_forms(form, expected):
    with FakeOpenAIServer(PoolResponder(POOL["textcat"], get_task("textcat"), TC, mischief=False)) as server:
        one_chain(teacher_on(server, "textcat", structured_output=form))
        steps = by_step(server)
    for step in ("generate", "label"):
        assert steps[step][0].get("response_format") == expected


def test_a_refused_form_falls_back_once_and_is_kept_for_the_run(caplog):
    caplog.set_level(logging.WARNING, logger="spacy_evokd.model")
    with FakeOpenAIServer(PoolResponder(POOL["textcat"], get_task("textcat"), TC, mischief=False)) as server:
        server.refuse_formats = {"json_schema"}
        teacher = teacher_on(server, "textcat")
        one_chain(teacher)
        one_chain(teacher)
        sent = [(r["body"].get("response_format") or {}).get("type") for r in server.requests]
    # analysis, generate (refused, then asked again as json_object), label, then the second chain
    assert sent == [None, "json_schema", "json_object", "json_object", None, "json_object", "json_object"]
    assert teacher.model.structured_output == "json_object" and teacher.model.structured_output_downgrades == 1
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "refused structured_output 'json_schema'" in warnings[0] and "using 'json_object'" in warnings[0]
    assert "response_format" in warnings[0]  # the server's reason, in the same line


def test_a_server_refusing_every_form_gets_plain_prompts():
    with FakeOpenAIServer(PoolResponder(POOL["textcat"], get_task("textcat"), TC, mischief=False)) as server:
        server.refuse_formats = {"json_schema", "json_object"}
        teacher = teacher_on(server, "textcat")
        proposal, labelled = one_chain(teacher)
    assert teacher.model.structured_output == "off" and teacher.model.structured_output_downgrades == 2
    assert len(labelled.samples) == 3


def test_other_400s_and_the_configs_own_response_format_are_not_lowered():
    with FakeOpenAIServer(lambda body: "{}") as server:
        model = OpenAICompatible(name="m", base_url=server.base_url, api_key_env=None)
        server.fail(("status", 400))  # "injected 400": says nothing about the format
        with pytest.raises(TeacherRequestError, match="HTTP 400"):
            model.chat([{"role": "user", "content": "x"}], answer_schema=labelling_schema(get_task("textcat"), TC, 1))
        assert model.structured_output == "json_schema" and len(server.requests) == 1
        own = OpenAICompatible(
            name="m",
            base_url=server.base_url,
            api_key_env=None,
            config={"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {}}}},
        )
        server.refuse_formats = {"json_schema"}
        with pytest.raises(TeacherRequestError, match="response_format"):
            own.chat([{"role": "user", "content": "x"}], answer_schema=labelling_schema(get_task("textcat"), TC, 1))
        assert own.structured_output == "json_schema" and len(server.requests) == 2


def test_structured_output_setting_is_checked_and_forwarded_by_the_registry():
    from spacy_llm.registry import registry

    import spacy_evokd.registrations  # noqa: F401

    make = registry.llm_models.get("spacy_evokd.OpenAICompatible.v1")
    model = make(name="m", base_url="http://127.0.0.1:9/v1", api_key_env=None, structured_output="json_object")
    assert model.structured_output == "json_object"
    with pytest.raises(ValueError, match="structured_output must be one of json_schema, json_object, off, got 'xml'"):
        make(name="m", base_url="http://127.0.0.1:9/v1", api_key_env=None, structured_output="xml")


def test_unknown_body_fields_are_sent_as_they_are():
    """``cache_prompt`` (llama.cpp's prompt cache) and ``top_k`` are not OpenAI SDK arguments:
    they go out in the body instead of failing in the SDK."""
    with FakeOpenAIServer(lambda body: "ok") as server:
        model = OpenAICompatible(
            name="m",
            base_url=server.base_url,
            api_key_env=None,
            config={"cache_prompt": True, "top_k": 40, "temperature": 0.5},
        )
        assert model.chat([{"role": "user", "content": "x"}]).texts == ["ok"]
        body = server.requests[0]["body"]
    assert body["cache_prompt"] is True and body["top_k"] == 40 and body["temperature"] == 0.5


def test_requests_carry_seeds_that_a_redone_round_repeats():
    with FakeOpenAIServer(PoolResponder(POOL["textcat"], get_task("textcat"), TC, mischief=False)) as server:
        teacher = teacher_on(server, "textcat")
        for _ in range(2):  # the same round twice, as after a crash
            teacher.begin_round(RoundContext(round=3, seen_texts=["Where is my parcel?"], run_seed=7))
            one_chain(teacher)
        teacher.begin_round(RoundContext(round=4, seen_texts=["Where is my parcel?"], run_seed=7))
        one_chain(teacher)
        seeds = [r["body"]["seed"] for r in server.requests]
        first, redo = server.requests[:3], server.requests[3:6]
    assert [r["body"] for r in first] == [r["body"] for r in redo]
    assert seeds[:3] == [request_seed(7, 3, step, 0) for step in ("analysis", "generate", "label")]
    assert len(set(seeds[:3] + seeds[6:])) == 6  # other steps and rounds: other seeds
    assert request_seed(8, 3, "analysis", 0) != request_seed(7, 3, "analysis", 0)
    assert request_seed(7, 3, "analysis", 1) != request_seed(7, 3, "analysis", 0)


def test_llkd_pseudo_labelling_sends_the_one_text_schema():
    with FakeOpenAIServer(PoolResponder(POOL["textcat"], get_task("textcat"), TC, mischief=False)) as server:
        teacher = teacher_on(server, "textcat")
        labelled = teacher.pseudo_label(["Where is my parcel?", "I was charged twice."])
        formats = [r["body"].get("response_format") for r in server.requests]
    assert len(labelled.samples) == 2
    assert formats and all(
        f["json_schema"]
        == {
            "name": "evokd_labels_textcat",
            "strict": True,
            "schema": labelling_schema(get_task("textcat"), TC, 1)["schema"],
        }
        for f in formats
    )


def test_a_plain_spacy_llm_model_gets_no_response_format():
    prompts = []

    def model(batch):  # spacy-llm's model interface: prompts in, answers out
        batch = [list(p) for p in batch]
        prompts.extend(p for shards in batch for p in shards)
        return [['{"answers": [{"id": 1, "label": "billing"}]}' for _ in shards] for shards in batch]

    teacher = LLMTeacher(model, get_task("textcat"), TC)
    labelled = teacher.label(["I was charged twice."])
    assert [s.annotation for s in labelled.samples] == ["billing"] and len(prompts) == 1

"""ty.ChatModel, the one model surface LLMTeacher talks to: our OpenAICompatible is one, and a
plain spacy-llm model (prompts in, answers out) is wrapped once in models/plain.PlainPromptModel,
which sends the chat as one transcript prompt and estimates its tokens from characters."""

from collections import Counter

from spacy_evokd.models.openai_compatible import OpenAICompatible
from spacy_evokd.models.plain import PlainPromptModel
from spacy_evokd.tasks import get_task
from spacy_evokd.teachers.llm import LLMTeacher
from spacy_evokd.ty import ChatModel, Usage
from spacy_evokd.weakness import build_report

TC = ["account", "billing", "product_question", "shipping", "technical"]


def recording_model(prompts, answers):
    """A plain spacy-llm model (the network boundary: prompts in, answers out) that records the
    prompts it is sent and answers from ``answers`` in turn."""
    answers = iter(answers)

    def model(batch):
        batch = [list(shards) for shards in batch]
        prompts.extend(p for shards in batch for p in shards)
        return [[next(answers) for _ in shards] for shards in batch]

    return model


def transcript(teacher, user):
    return f"SYSTEM:\n{teacher.render('system')}\n\nUSER:\n{user}\n\nASSISTANT:\n"


def estimated(prompts, answers):
    return Usage(
        requests=len(prompts),
        prompt_tokens=sum(max(1, len(p) // 4) for p in prompts),
        completion_tokens=sum(max(1, len(a) // 4) for a in answers),
        estimated=True,
    )


def test_our_model_is_a_chat_model_and_is_used_as_it_is():
    own = OpenAICompatible(name="m", base_url="http://127.0.0.1:9/v1", api_key_env=None)
    assert isinstance(own, ChatModel)
    teacher = LLMTeacher(own, get_task("textcat"), TC)
    assert teacher.model is own and teacher.name == "m"
    cache = object()
    teacher.use_cache(cache)
    assert own.cache is cache


def test_a_plain_spacy_llm_model_is_wrapped_once():
    plain = recording_model([], [])
    assert not isinstance(plain, ChatModel)
    teacher = LLMTeacher(plain, get_task("textcat"), TC)
    assert isinstance(teacher.model, PlainPromptModel) and isinstance(teacher.model, ChatModel)
    assert teacher.model.model is plain and teacher.name == "function"  # its type, as before


def test_a_spacy_llm_model_object_goes_through_the_wrapper():
    """spacy-llm's own NoOp model (built offline, answers ""): one transcript prompt, estimated usage."""
    from spacy_llm.registry import registry

    teacher = LLMTeacher(registry.llm_models.get("spacy.NoOp.v1")(), get_task("textcat"), TC)
    text = "I was charged twice."
    labelled = teacher.label([text])
    assert labelled.samples == [] and labelled.raw == ""
    prompt = transcript(teacher, teacher.render("label", texts=[text]))
    assert teacher.drain_usage() == estimated([prompt], [""]) and teacher.name == "NoOpModel"


def test_plain_model_gets_the_chat_as_one_prompt_and_prompt_fields_only():
    prompts = []
    answers = ["The student confuses billing with \ud800 shipping.", '{"answers": [{"id": 1, "label": "billing"}]}']
    teacher = LLMTeacher(recording_model(prompts, answers), get_task("textcat"), TC)
    report = build_report(teacher.task, TC, {"per_label": {}, "score": 0.0}, [], "the seed data")
    analysis = teacher.analyse(report, [])
    labelled = teacher.label(["I was charged twice."])
    assert analysis.text == "The student confuses billing with \ufffd shipping."  # made storable
    assert [s.annotation for s in labelled.samples] == ["billing"]
    assert prompts == [
        transcript(teacher, analysis.conversation[1].content),
        transcript(teacher, teacher.render("label", texts=["I was charged twice."])),
    ]
    assert teacher.drain_usage() == estimated(prompts, answers)
    # no answer schema, so no structured-output figures in the round's checks
    assert "structured_output" not in teacher.round_checks(Counter())


def test_plain_model_pseudo_labels_by_k_calls_per_text():
    """No logprobs from a plain model: k sampled answers per text, and no request before them."""
    prompts = []
    answers = ['{"answers": [{"id": 1, "label": "%s"}]}' % label for label in ("billing", "billing", "shipping")]
    teacher = LLMTeacher(recording_model(prompts, answers), get_task("textcat"), TC)
    labelled = teacher.pseudo_label(["I was charged twice."], k=3)
    [sample] = labelled.samples
    assert (sample.annotation, sample.confidence, sample.confidence_method) == ("billing", 2 / 3, "agreement_3")
    assert len(prompts) == 3 and len(set(prompts)) == 1
    assert teacher.drain_usage() == estimated(prompts, answers)

"""spacy_evokd.OpenAICompatible.v1 against the local test server (spacy_evokd/testing/server.py)."""

import json
import time

import pytest
import spacy
from spacy_llm.registry import registry as llm_registry

from spacy_evokd.cache import ResponseCache
from spacy_evokd.models.openai_compatible import OpenAICompatible, RateLimiter, TeacherRequestError
from spacy_evokd.testing.server import FakeOpenAIServer


def echo(body):
    return "echo: " + body["messages"][-1]["content"]


def make(server, **kw):
    kw = {"api_key_env": None, "backoff": 0.01, "max_retries": 3, "timeout": 5, **kw}
    return OpenAICompatible(name="test-model", base_url=server.base_url, **kw)


def test_chat_returns_text_usage_and_sends_config(monkeypatch):
    with FakeOpenAIServer(echo) as server:
        model = make(server, config={"temperature": 0.3}, price_input_per_mtok=1.0, price_output_per_mtok=2.0)
        result = model.chat([{"role": "user", "content": "hello there"}])
    assert result.texts == ["echo: hello there"]
    assert result.usage.requests == 1 and result.usage.prompt_tokens == 2 and not result.usage.estimated
    assert result.usage.cost == pytest.approx((2 * 1.0 + result.usage.completion_tokens * 2.0) / 1e6)
    body = server.requests[0]["body"]
    assert body["model"] == "test-model" and body["temperature"] == 0.3
    assert server.requests[0]["path"] == "/v1/chat/completions"


def test_429_then_success_honours_retry_after():
    with FakeOpenAIServer(echo) as server:
        server.fail(("status", 429, {"Retry-After": "0.3"}), ("status", 503))
        model = make(server)
        t0 = time.monotonic()
        result = model.chat([{"role": "user", "content": "x"}])
        elapsed = time.monotonic() - t0
    assert result.texts == ["echo: x"]
    assert len(server.requests) == 3
    assert elapsed >= 0.3  # waited as the server asked, not our 0.01 s backoff


def test_500_exhausts_bounded_retries_with_clear_error():
    with FakeOpenAIServer(echo) as server:
        server.fail(*[("status", 500)] * 10)
        model = make(server, max_retries=2)
        with pytest.raises(TeacherRequestError, match=r"failed after 3 attempts \(HTTP 500"):
            model.chat([{"role": "user", "content": "x"}])
    assert len(server.requests) == 3


def test_400_is_not_retried():
    with FakeOpenAIServer(echo) as server:
        server.fail(("status", 400))
        with pytest.raises(TeacherRequestError, match="HTTP 400"):
            make(server).chat([{"role": "user", "content": "x"}])
    assert len(server.requests) == 1


def test_connection_refused_is_a_clear_error():
    with FakeOpenAIServer(echo) as server:
        url = server.base_url
    model = OpenAICompatible(name="m", base_url=url, api_key_env=None, max_retries=1, backoff=0.01, timeout=2)
    with pytest.raises(TeacherRequestError, match=r"127\.0\.0\.1.*failed after 2 attempts \(APIConnectionError"):
        model.chat([{"role": "user", "content": "x"}])


def test_concurrency_is_used_and_bounded():
    with FakeOpenAIServer(echo) as server:
        server.fail(*[("sleep", 0.2)] * 12)
        model = make(server, concurrency=4)
        results = model.chat_many([[{"role": "user", "content": str(i)}] for i in range(12)])
    assert [r.texts[0] for r in results] == [f"echo: {i}" for i in range(12)]  # input order kept
    assert server.max_in_flight == 4


def test_logprobs_when_asked():
    with FakeOpenAIServer(lambda b: "billing") as server:
        result = make(server).chat([{"role": "user", "content": "x"}], logprobs=True, top_logprobs=2)
        plain = make(server).chat([{"role": "user", "content": "x"}])
    assert result.logprobs == [[("billing", -0.05, [("billing", -0.05)])]]
    assert server.requests[0]["body"]["top_logprobs"] == 2
    assert plain.logprobs is None and "logprobs" not in server.requests[1]["body"]


def test_missing_usage_is_estimated():
    with FakeOpenAIServer(echo, usage=False) as server:
        result = make(server).chat([{"role": "user", "content": "a" * 40}])
    assert result.usage.estimated and result.usage.prompt_tokens == 10


def test_cache_hits_skip_the_server_and_keep_usage(tmp_path):
    with FakeOpenAIServer(echo) as server:
        model = make(server)
        model.cache = ResponseCache(tmp_path / "c.sqlite")
        a = model.chat([{"role": "user", "content": "same"}])
        b = model.chat([{"role": "user", "content": "same"}])
        c = model.chat([{"role": "user", "content": "different"}])
        d = model.chat([{"role": "user", "content": "same"}], temperature=1.0)  # other params: other key
    assert len(server.requests) == 3
    assert b.cached and not a.cached and not c.cached and not d.cached
    assert b.texts == a.texts and b.usage.total_tokens == a.usage.total_tokens and b.usage.cached == 1


def test_api_key_is_sent_but_never_stored(tmp_path, monkeypatch):
    key = "sk-evokd-FAKE-KEY-0123456789"
    monkeypatch.setenv("EVOKD_TEST_KEY", key)
    with FakeOpenAIServer(echo) as server:
        server.fail(("status", 401))
        model = make(server, api_key_env="EVOKD_TEST_KEY")
        model.cache = ResponseCache(tmp_path / "c.sqlite")
        with pytest.raises(TeacherRequestError) as err:
            model.chat([{"role": "user", "content": "x"}])
        model.chat([{"role": "user", "content": "x"}])
    assert server.requests[-1]["headers"]["authorization"] == f"Bearer {key}"
    assert key not in str(err.value) and key not in repr(model) and key not in json.dumps(vars(model), default=str)
    assert key.encode() not in (tmp_path / "c.sqlite").read_bytes()


def test_missing_key_variable_is_a_clear_error_at_the_first_request(monkeypatch):
    """Building the model needs no key (`estimate` builds it and sends nothing); the first
    request, or the loop's preflight (check_api_key), says which variable to set."""
    monkeypatch.delenv("EVOKD_NO_SUCH_KEY", raising=False)
    with FakeOpenAIServer(echo) as server:
        model = make(server, api_key_env="EVOKD_NO_SUCH_KEY")
        for call in (model.check_api_key, lambda: model.chat([{"role": "user", "content": "x"}])):
            with pytest.raises(TeacherRequestError, match="environment variable EVOKD_NO_SUCH_KEY is not set"):
                call()
        assert server.requests == []


def test_rate_limiter_window():
    now = [0.0]
    limiter = RateLimiter(requests_per_minute=2, tokens_per_minute=None, clock=lambda: now[0])
    limiter.acquire(1)
    limiter.acquire(1)
    assert len(limiter.events) == 2
    now[0] = 60.0  # the window has passed: a third request goes at once
    limiter.acquire(1)
    assert [t for t, _ in limiter.events] == [60.0]


def test_spacy_llm_component_uses_the_registered_model():
    """The model works where spacy-llm expects one: an `llm` component built from config."""

    def classify(body):
        return "billing" if "refund" in body["messages"][-1]["content"] else "shipping"

    with FakeOpenAIServer(classify) as server:
        nlp = spacy.blank("en")
        nlp.add_pipe(
            "llm",
            config={
                "task": {
                    "@llm_tasks": "spacy.TextCat.v3",
                    "labels": ["billing", "shipping"],
                    "exclusive_classes": True,
                },
                "model": {
                    "@llm_models": "spacy_evokd.OpenAICompatible.v1",
                    "name": "test-model",
                    "base_url": server.base_url,
                    "api_key_env": None,
                },
            },
        )
        doc = nlp("I want a refund for my order")
    assert doc.cats["billing"] == 1.0 and doc.cats["shipping"] == 0.0
    assert llm_registry.llm_models.get("spacy_evokd.OpenAICompatible.v1") is not None


@pytest.mark.parametrize(
    "fault",
    [
        ("status", 429),  # no Retry-After: our own backoff
        ("status", 502),
        ("status", 503, {"Retry-After": "0"}),
        ("reset",),  # connection closed without an answer
        ("sleep", 1.5),  # longer than the 0.5 s timeout: a read timeout
    ],
    ids=["429-no-retry-after", "502", "503", "connection-reset", "read-timeout"],
)
def test_transient_faults_are_retried(fault):
    with FakeOpenAIServer(echo) as server:
        server.fail(fault, fault)
        result = make(server, timeout=0.5).chat([{"role": "user", "content": "x"}])
    assert result.texts == ["echo: x"] and len(server.requests) == 3


def test_slow_answer_within_timeout_is_not_retried():
    with FakeOpenAIServer(echo) as server:
        server.fail(("sleep", 0.4))
        result = make(server, timeout=5).chat([{"role": "user", "content": "x"}])
    assert result.texts == ["echo: x"] and len(server.requests) == 1


def test_rate_limit_holds_under_concurrency():
    """3 requests per (shortened) window, 8 threads: no window ever sees more than 3 sends.
    Send times are taken on the client, where the limiter acts (server arrival adds jitter)."""
    with FakeOpenAIServer(echo) as server:
        model = make(server, concurrency=8)
        model._limiter = limiter = RateLimiter(requests_per_minute=3, tokens_per_minute=None, window=0.5)
        sent = []
        acquire = limiter.acquire
        limiter.acquire = lambda tokens: (acquire(tokens), sent.append(time.monotonic()))
        model.chat_many([[{"role": "user", "content": str(i)}] for i in range(9)])
        assert len(server.requests) == 9
    times = sorted(sent)
    assert times[-1] - times[0] >= 1.0 - 1e-3  # 9 requests at 3 per 0.5 s need two full windows
    for i in range(len(times) - 3):
        assert times[i + 3] - times[i] >= 0.5 - 1e-3  # the 4th send is a whole window after the 1st


@pytest.mark.parametrize("form", ["openai", "llama.cpp", ""])
def test_prompt_cache_tokens_and_server_seconds_are_recorded(tmp_path, form):
    """Prompt tokens the server reused (OpenAI's usage.prompt_tokens_details.cached_tokens,
    llama.cpp's timings.cache_n) and the request's seconds reach the ledger; a ledger written
    before these columns existed gets them."""
    import sqlite3

    from spacy_evokd.cache import UsageLedger

    old = tmp_path / "old.sqlite"  # the ledger's first schema
    with sqlite3.connect(old) as con:
        con.execute(
            "CREATE TABLE usage (id INTEGER PRIMARY KEY AUTOINCREMENT, round INTEGER NOT NULL, step TEXT NOT NULL,"
            " model TEXT NOT NULL, requests INTEGER NOT NULL, prompt_tokens INTEGER NOT NULL, completion_tokens"
            " INTEGER NOT NULL, cost REAL NOT NULL, cached INTEGER NOT NULL, estimated INTEGER NOT NULL, created REAL NOT NULL)"
        )
        con.execute(
            "INSERT INTO usage (round, step, model, requests, prompt_tokens, completion_tokens, cost, cached,"
            " estimated, created) VALUES (1, 'label', 'm', 1, 10, 5, 0, 0, 0, 0)"
        )
    with FakeOpenAIServer(echo, prompt_cache=form) as server:
        result = make(server).chat([{"role": "user", "content": "a" * 400}])
    assert result.usage.prompt_tokens == 100
    assert result.usage.prompt_cached == (50 if form else 0)
    assert 0 < result.usage.seconds < 5
    ledger = UsageLedger(old)
    ledger.record(round=1, step="label", model="m", usage=result.usage)
    totals = ledger.totals(round=1)
    assert totals.prompt_tokens == 110 and totals.prompt_cached == (50 if form else 0)
    assert totals.seconds == pytest.approx(result.usage.seconds)
    assert totals.to_dict()["prompt_cached"] == totals.prompt_cached

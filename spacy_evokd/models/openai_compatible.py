"""spacy_evokd.OpenAICompatible.v1: chat completions against any OpenAI-compatible server.

Why not spacy-llm's own OpenAI models: they GET api.openai.com/v1/models when built (whatever
`endpoint` says), send one request at a time, retry only 429/503 and drop token usage and
logprobs (see ../shared/reference/spacy_notes.md §1.4, §1.8). This model uses the `openai` SDK
with the SDK's own retries switched off, and adds what the loop needs around it:

- concurrency: a thread pool, ``concurrency`` requests in flight;
- bounded retries with exponential backoff on 429, 5xx, timeouts, connection errors and 200
  answers that are not a chat completion (an HTML page from a proxy, JSON without ``choices``,
  truncated JSON), honouring ``Retry-After``; other 4xx fail at once;
- answers made storable (untrusted.storable: no lone surrogates) before anything keeps them;
- client-side rate limits (requests and tokens per minute, sliding 60 s window);
- usage and cost per request; logprobs when asked;
- the response cache (set ``model.cache``; cache.py), keyed on model, body and messages;
- structured outputs: a call that passes ``answer_schema`` (answer_schemas.py) gets it as
  ``response_format`` in the form ``structured_output`` names: "json_schema" (OpenAI's strict
  JSON schema; llama.cpp's llama-server and vLLM take it too), "json_object" (any JSON) or
  "off". A server that refuses the form (HTTP 400/422 naming response_format or the schema) is
  asked again once in the next weaker form; that form is kept for the rest of the run, with one
  warning line, and counted in ``structured_output_downgrades``;
- body fields the SDK does not know (``cache_prompt``, ``top_k`` ... for llama.cpp) are sent
  as they are (``extra_body``): set them in ``config`` only for a server that takes them
  (OpenAI rejects unknown fields).

It talks to ``base_url`` only. The API key is read from the environment variable named by
``api_key_env`` and lives only inside the SDK client: it is not an attribute, not in ``repr``,
not in the cache key or value, and scrubbed from error messages.
"""

import inspect
import json
import logging
import os
import re
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Dict, Iterable, List, Optional, Sequence
from urllib.parse import urlsplit

from ..cache import make_key
from ..ty import ChatResult, EvokdError, Usage
from ..untrusted import storable

logger = logging.getLogger("spacy_evokd.model")

Messages = List[Dict[str, str]]

# strongest first: a refused form falls back to the next one
STRUCTURED_OUTPUT_FORMS = ("json_schema", "json_object", "off")
# a 4xx answer that names one of these refuses the response_format we sent
_REFUSES_FORMAT = re.compile(r"response_format|json_schema|json[ _-]?schema|json_object|schema|grammar", re.I)


class TeacherRequestError(EvokdError, RuntimeError):
    """A request failed for good (after retries, or a non-retryable status); the message says
    which server and why, never the key."""


class ResponseFormatRefused(TeacherRequestError):
    """The server answered 400/422 about the response_format sent: the next weaker form is tried."""


class NotAChatCompletion(ValueError):
    """A 200 answer whose body is not a chat completion; retried like a 5xx."""


class TeacherSettingsError(EvokdError, ValueError):
    """A bad setting in the teacher's model block (base_url, a number): one line naming it,
    raised when the model is built, i.e. with the [evokd] settings, before any work."""


MODEL_SECTION = "[evokd.teacher.model]"
MAX_TOKENS_LIMIT = 1_000_000  # no server answers more tokens than this in one reply


def check_base_url(base_url: Any) -> None:
    """``base_url`` is an http(s) URL the SDK's client (httpx) can use: a malformed one
    ("http://[::1") would otherwise raise InvalidURL deep inside the client at the first request."""
    import httpx  # the openai SDK's transport: its parser is the one that must accept the URL

    where = f"{MODEL_SECTION} base_url {base_url!r}: not a URL"
    if not isinstance(base_url, str):
        raise TeacherSettingsError(f"{where} (expected a string such as http://127.0.0.1:8080/v1)")
    try:
        parts = urlsplit(base_url)
        parts.port  # noqa: B018  (raises for a port out of range)
        httpx.URL(base_url)
    except Exception as e:  # ValueError, httpx.InvalidURL
        raise TeacherSettingsError(f"{where} ({_first_line(e)})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise TeacherSettingsError(f"{where} (expected http:// or https:// and a host, e.g. http://127.0.0.1:8080/v1)")


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return (text.splitlines()[0] if text else type(error).__name__)[:200]


# request-body fields that are numbers: name -> (integer?, lowest, highest, lowest excluded?)
_BODY_NUMBERS = {
    "max_tokens": (True, 1, MAX_TOKENS_LIMIT, False),
    "max_completion_tokens": (True, 1, MAX_TOKENS_LIMIT, False),
    "n": (True, 1, 128, False),
    "top_k": (True, 0, 100_000, False),
    "seed": (True, -(2**63), 2**63 - 1, False),
    "temperature": (False, 0, 2, False),
    "top_p": (False, 0, 1, True),
    "min_p": (False, 0, 1, False),
    "presence_penalty": (False, -2, 2, False),
    "frequency_penalty": (False, -2, 2, False),
    "repeat_penalty": (False, 0, 10, False),
}


def check_number(
    section: str, name: str, value: Any, integer: bool, low: float, high: float, low_excluded: bool = False
) -> None:
    """One line naming ``section`` and ``name`` when ``value`` is not a number (an integer when
    ``integer``; never a bool) within [low, high]."""
    ok_type = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, ok_type) or value != value:  # value != value: NaN
        raise TeacherSettingsError(f"{section} {name}: {value!r} is not {'an integer' if integer else 'a number'}")
    if value < low or (low_excluded and value == low):
        raise TeacherSettingsError(f"{section} {name}: must be {'>' if low_excluded else '>='} {low}, got {value!r}")
    if value > high:
        raise TeacherSettingsError(f"{section} {name}: must be <= {high}, got {value!r}")


def check_model_numbers(**values: Any) -> None:
    """The model block's own numbers (timeout, backoff, rate limits, prices, context_length)."""
    for name, value in values.items():
        if value is None and name in ("requests_per_minute", "tokens_per_minute", "context_length"):
            continue  # off / unknown
        if name == "timeout":
            check_number(MODEL_SECTION, name, value, False, 0, 86_400, low_excluded=True)
        elif name in ("requests_per_minute", "tokens_per_minute", "context_length"):
            check_number(MODEL_SECTION, name, value, True, 1, 10**9)
        else:  # backoff, max_backoff, prices
            check_number(MODEL_SECTION, name, value, False, 0, 10**6)


def check_body_numbers(body: Dict[str, Any], context_length: Optional[int]) -> None:
    """The request-body fields in ``config`` that are numbers; max_tokens within context_length."""
    section = f"{MODEL_SECTION[:-1]}.config]"
    for name, (integer, low, high, excluded) in _BODY_NUMBERS.items():
        if name in body and body[name] is not None:
            check_number(section, name, body[name], integer, low, high, excluded)
    for name in ("max_tokens", "max_completion_tokens"):
        if context_length and body.get(name) is not None and body[name] > context_length:
            raise TeacherSettingsError(
                f"{section} {name}: {body[name]} is more than context_length {context_length} of {MODEL_SECTION}"
            )


class RateLimiter:
    """Sliding window (60 s: limits are per minute) over requests and tokens; ``acquire`` blocks
    until both fit."""

    def __init__(
        self,
        requests_per_minute: Optional[int],
        tokens_per_minute: Optional[int],
        clock=time.monotonic,
        window: float = 60.0,
    ):
        self.rpm = requests_per_minute
        self.tpm = tokens_per_minute
        self.clock = clock
        self.window = window
        self.events: deque = deque()  # (time, tokens)
        self.lock = threading.Lock()

    def acquire(self, tokens: int) -> None:
        if not self.rpm and not self.tpm:
            return
        if self.tpm:
            tokens = min(tokens, self.tpm)  # a request larger than the limit still goes, alone
        while True:
            with self.lock:
                now = self.clock()
                while self.events and now - self.events[0][0] >= self.window:
                    self.events.popleft()
                used = sum(t for _, t in self.events)
                fits_r = not self.rpm or len(self.events) < self.rpm
                fits_t = not self.tpm or used + tokens <= self.tpm
                if fits_r and fits_t:
                    self.events.append((now, tokens))
                    return
                wait = self.window - (now - self.events[0][0]) if self.events else 0.05
            time.sleep(max(0.01, min(wait, 1.0)))


def estimate_tokens(text: str) -> int:
    """~4 characters per token: used for rate limiting and when a server reports no usage."""
    return max(1, len(text) // 4)


class OpenAICompatible:
    """Chat completions against any OpenAI-compatible server (OpenAI, vLLM, Ollama, llama.cpp,
    LiteLLM proxy). Talks to ``base_url`` only; the key is read from the environment variable
    named by ``api_key_env`` (None: no key, for local servers).

    name (str): model name sent in the request body ("gpt-4o-mini", "Qwen/Qwen2.5-7B-Instruct").
    base_url (str): API root up to and including ``/v1``.
    config (dict): extra request-body fields (temperature, max_tokens, ...).
    concurrency (int): requests in flight at once when called with many prompts.
    max_retries / backoff / max_backoff (int, float, float): retries on 429, 5xx, timeouts and
        connection errors, exponential backoff honouring ``Retry-After``.
    timeout (float): seconds per request.
    requests_per_minute / tokens_per_minute (int): client-side rate limits (None: off).
    price_input_per_mtok / price_output_per_mtok (float): USD per million tokens, for cost.
    context_length (int): exposed for spacy-llm's sharding.
    structured_output ("json_schema" | "json_object" | "off"): how the teacher's answer format is
        sent as ``response_format``: the answer's strict JSON schema, any JSON object, or nothing.
        A server that refuses it is asked again in the next weaker form, for the rest of the run.
    """

    offers_logprobs = True  # ty.ChatModel: requests can ask for them (not every server returns them)

    def __init__(
        self,
        name: str,
        base_url: str = "https://api.openai.com/v1",
        api_key_env: Optional[str] = "OPENAI_API_KEY",
        config: Optional[Dict[str, Any]] = None,
        concurrency: int = 8,
        max_retries: int = 5,
        backoff: float = 1.0,
        max_backoff: float = 30.0,
        timeout: float = 60.0,
        requests_per_minute: Optional[int] = None,
        tokens_per_minute: Optional[int] = None,
        price_input_per_mtok: float = 0.0,
        price_output_per_mtok: float = 0.0,
        context_length: Optional[int] = None,
        structured_output: str = "json_schema",
    ):
        import openai  # imported here: spaCy loads our entry points for every pipeline

        if concurrency < 1:
            raise TeacherSettingsError(f"concurrency must be >= 1, got {concurrency}")
        if max_retries < 0:
            raise TeacherSettingsError(f"max_retries must be >= 0, got {max_retries}")
        if structured_output not in STRUCTURED_OUTPUT_FORMS:
            raise TeacherSettingsError(
                f"structured_output must be one of {', '.join(STRUCTURED_OUTPUT_FORMS)}, got {structured_output!r}"
            )
        check_base_url(base_url)
        check_model_numbers(
            timeout=timeout,
            backoff=backoff,
            max_backoff=max_backoff,
            requests_per_minute=requests_per_minute,
            tokens_per_minute=tokens_per_minute,
            price_input_per_mtok=price_input_per_mtok,
            price_output_per_mtok=price_output_per_mtok,
            context_length=context_length,
        )
        check_body_numbers(dict(config or {}), context_length)
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.config = dict(config or {})
        self.concurrency = concurrency
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.price_in = price_input_per_mtok
        self.price_out = price_output_per_mtok
        self._context_length = context_length
        self.cache = None  # a cache.ResponseCache, set by the loop
        self._api_key_env = api_key_env  # the key itself is read only to build the client and scrub error text
        self._timeout = timeout
        # built on first use (see _client): `estimate` and config checks build the model but send nothing
        self._sdk_client = None
        self._client_lock = threading.Lock()
        self._openai = openai
        self._limiter = RateLimiter(requests_per_minute, tokens_per_minute)
        self._usage = Usage()
        self._lock = threading.Lock()
        self.structured_output = structured_output  # the form in use: lowered when a server refuses one
        self.structured_output_downgrades = 0

    def __repr__(self) -> str:
        return f"OpenAICompatible(name={self.name!r}, base_url={self.base_url!r})"

    # -- the SDK client and the checks a run makes before any work ---------------------------

    @property
    def _client(self):
        """The SDK client, built with the key at the first request: a missing key is an error
        then (or in the loop's preflight), not when the model is built."""
        with self._client_lock:
            if self._sdk_client is None:
                key = self.check_api_key()
                # the SDK's retries are off: ours are bounded, logged and honour our backoff settings
                self._sdk_client = self._openai.OpenAI(
                    base_url=self.base_url, api_key=key or "no-key", max_retries=0, timeout=self._timeout
                )
            return self._sdk_client

    def check_api_key(self) -> Optional[str]:
        """The key from ``api_key_env`` (None when the server needs none); a missing one is a
        TeacherRequestError that says what to export."""
        if not self._api_key_env:
            return None
        key = os.environ.get(self._api_key_env)
        if not key:
            raise TeacherRequestError(
                f"environment variable {self._api_key_env} is not set: export the API key for {self.base_url} "
                "(or set api_key_env = null for a local server without a key)"
            )
        return key

    def check_reachable(self, timeout: float = 10.0) -> None:
        """One cheap GET {base_url}/models, no retries: a server that is down, a wrong host or port
        or a refused key fails here, in one line, instead of after the seed round has trained.
        Any other answer counts as reachable (not every server lists its models)."""
        oa = self._openai
        try:
            self._client.with_options(timeout=min(timeout, self._timeout), max_retries=0).models.list()
        except oa.APIConnectionError as e:  # refused, unknown host, timeout (APITimeoutError is one)
            raise TeacherRequestError(
                f"{self.base_url} is not reachable ({self._describe(e.__cause__ or e)})"
            ) from None
        except (oa.AuthenticationError, oa.PermissionDeniedError) as e:
            whose = (
                f"the key in {self._api_key_env}"
                if self._api_key_env
                else "requests without a key (api_key_env = null)"
            )
            raise TeacherRequestError(f"{self.base_url} refuses {whose} ({self._describe(e)})") from None
        except oa.NotFoundError:
            logger.warning(
                "%s: GET /models answered 404; is base_url the API root (often ending in /v1)?", self.base_url
            )
        except oa.APIStatusError as e:
            logger.info("%s: GET /models answered HTTP %s; the server is up", self.base_url, e.status_code)

    def use_cache(self, cache: Any) -> None:
        """The run's response cache (cache.ResponseCache; None: none)."""
        self.cache = cache

    @property
    def context_length(self) -> Optional[int]:
        return self._context_length

    # -- the spacy-llm model protocol ------------------------------------------------------

    def __call__(self, prompts: Iterable[Iterable[str]]) -> Iterable[Iterable[str]]:
        """spacy-llm's interface: one inner list of prompt shards per doc -> same shape of answers."""
        nested = [list(p) for p in prompts]
        flat = [[{"role": "user", "content": p}] for shards in nested for p in shards]
        answers = iter(r.texts[0] for r in self.chat_many(flat))
        return [[next(answers) for _ in shards] for shards in nested]

    # -- chat ------------------------------------------------------------------------------

    def chat(
        self,
        messages: Messages,
        n: int = 1,
        logprobs: bool = False,
        top_logprobs: int = 0,
        sample: int = 0,
        answer_schema: Optional[Dict[str, Any]] = None,
        **params: Any,
    ) -> ChatResult:
        return self.chat_many(
            [messages],
            n=n,
            logprobs=logprobs,
            top_logprobs=top_logprobs,
            sample=sample,
            answer_schema=answer_schema,
            **params,
        )[0]

    def chat_many(
        self,
        conversations: Sequence[Messages],
        n: int = 1,
        logprobs: bool = False,
        top_logprobs: int = 0,
        sample: int = 0,
        answer_schema: Optional[Dict[str, Any]] = None,
        **params: Any,
    ) -> List[ChatResult]:
        """Answer several conversations, ``concurrency`` at a time, results in input order.
        ``sample`` > 0 asks the same request again for a fresh answer: it is part of the cache key
        (0 adds nothing to it) and is not sent. ``answer_schema`` ({"name", "schema"}, see
        answer_schemas.py) is sent as ``response_format`` in the form ``structured_output`` says."""
        body = {**self.config, **params}
        key_extra = {"sample": sample} if sample else {}
        if n != 1:
            body["n"] = n
        if logprobs:
            body["logprobs"] = True
            if top_logprobs:
                body["top_logprobs"] = top_logprobs
        if len(conversations) <= 1 or self.concurrency == 1:
            results = [self._one(list(m), body, key_extra, answer_schema) for m in conversations]
        else:
            with ThreadPoolExecutor(max_workers=min(self.concurrency, len(conversations))) as pool:
                results = list(pool.map(lambda m: self._one(list(m), body, key_extra, answer_schema), conversations))
        with self._lock:
            for r in results:
                self._usage.add(r.usage)
        return results

    def drain_usage(self) -> Usage:
        with self._lock:
            usage, self._usage = self._usage, Usage()
        return usage

    def _one(
        self,
        messages: Messages,
        body: Dict[str, Any],
        key_extra: Dict[str, Any],
        answer_schema: Optional[Dict[str, Any]] = None,
    ) -> ChatResult:
        """One request (or its cached answer), in the structured-output form in use; a refused
        form is lowered once per call (and for the run) and the request asked again."""
        while True:
            form = self.structured_output
            sent = _with_format(body, answer_schema, form)
            try:
                return self._one_in_form(messages, sent, key_extra)
            except ResponseFormatRefused as e:
                if sent is body:  # not a response_format of ours (the config's own): nothing to lower
                    raise
                self._lower_form(form, str(e))

    def _lower_form(self, refused: str, why: str) -> None:
        with self._lock:
            if self.structured_output != refused:  # another thread lowered it already
                return
            weaker = STRUCTURED_OUTPUT_FORMS[STRUCTURED_OUTPUT_FORMS.index(refused) + 1]
            self.structured_output = weaker
            self.structured_output_downgrades += 1
        logger.warning(
            "%s refused structured_output %r (%s); using %r for the rest of the run",
            self.base_url,
            refused,
            why.split(": ", 1)[-1],
            weaker,
        )

    def _one_in_form(self, messages: Messages, body: Dict[str, Any], key_extra: Dict[str, Any]) -> ChatResult:
        params = {"base_url": self.base_url, **body, **key_extra}
        key = make_key(self.name, params, messages) if self.cache is not None else None
        if key is not None:
            hit = self.cache.get(key)
            if hit is not None:
                usage = Usage(**{**hit["usage"], "cached": 1})
                return ChatResult(
                    texts=hit["texts"],
                    usage=usage,
                    logprobs=hit.get("logprobs"),
                    finish_reasons=hit.get("finish_reasons", []),
                    cached=True,
                )
        result = self._request(messages, body)
        if key is not None:
            u = result.usage
            self.cache.put(
                key,
                self.name,
                {
                    "texts": result.texts,
                    "logprobs": result.logprobs,
                    "finish_reasons": result.finish_reasons,
                    "usage": {
                        "requests": 1,
                        "prompt_tokens": u.prompt_tokens,
                        "completion_tokens": u.completion_tokens,
                        "cost": u.cost,
                        "estimated": u.estimated,
                    },
                },
            )
        return result

    def _request(self, messages: Messages, body: Dict[str, Any]) -> ChatResult:
        oa = self._openai
        prompt_chars = sum(len(m["content"]) for m in messages)
        expected = estimate_tokens("x" * prompt_chars) + int(
            body.get("max_tokens") or body.get("max_completion_tokens") or 0
        )
        known, extra = self._split_body(body)
        attempt = 0
        while True:
            self._limiter.acquire(expected)
            try:
                t0 = time.monotonic()
                resp = self._client.chat.completions.create(
                    model=self.name, messages=messages, **known, **({"extra_body": extra} if extra else {})
                )
                result = self._to_result(resp, messages)
                result.usage.seconds = time.monotonic() - t0
                return result
            except (oa.RateLimitError, oa.InternalServerError, oa.APITimeoutError, oa.APIConnectionError) as e:
                error, why = e, self._describe(e)
            except oa.APIStatusError as e:  # 400, 401, 404, ...: retrying will not help
                why = self._describe(e)
                if "response_format" in body and e.status_code in (400, 422) and _REFUSES_FORMAT.search(why):
                    raise ResponseFormatRefused(f"{self.base_url}: {why}") from None
                raise TeacherRequestError(f"{self.base_url}: {why}") from None
            except RecursionError:  # a body nested too deeply for json: invalid JSON, like a 5xx
                error = json.JSONDecodeError("nested too deeply", "", 0)
                why = self._describe(error)
            except (NotAChatCompletion, json.JSONDecodeError, oa.APIResponseValidationError) as e:
                error, why = e, self._describe(e)  # a proxy's error page, a body cut short: like a 5xx
            if attempt >= self.max_retries:
                raise TeacherRequestError(
                    f"{self.base_url}: request failed after {attempt + 1} attempts ({why})"
                ) from None
            delay = self._delay(attempt, error)
            logger.warning("%s: %s; retry %d/%d in %.1fs", self.base_url, why, attempt + 1, self.max_retries, delay)
            time.sleep(delay)
            attempt += 1

    def _split_body(self, body: Dict[str, Any]) -> "tuple[Dict[str, Any], Dict[str, Any]]":
        """(fields the SDK's create() takes, the rest): the rest goes out as ``extra_body``
        instead of failing in the SDK with an unexpected keyword."""
        create = self._client.chat.completions.create
        known_names = set(inspect.signature(create).parameters) - {"extra_body", "extra_headers", "extra_query"}
        known = {k: v for k, v in body.items() if k in known_names}
        return known, {k: v for k, v in body.items() if k not in known_names}

    def _delay(self, attempt: int, error: Exception) -> float:
        delay = self.backoff * (2**attempt)
        response = getattr(error, "response", None)
        if response is not None:
            retry_after = response.headers.get("retry-after")
            try:
                delay = max(delay, float(retry_after)) if retry_after is not None else delay
            except ValueError:
                pass  # an HTTP date: keep our own backoff
        return min(delay, self.max_backoff)

    def _describe(self, error: Exception) -> str:
        status = getattr(error, "status_code", None)
        if isinstance(error, (NotAChatCompletion, json.JSONDecodeError, self._openai.APIResponseValidationError)):
            invalid = "invalid JSON, " if isinstance(error, json.JSONDecodeError) else ""
            text = f"not a chat completion: {invalid}{getattr(error, 'message', error)}"
        elif status:
            text = f"HTTP {status}: {getattr(error, 'message', error)}"
        else:
            text = f"{type(error).__name__}: {error}"
        secret = os.environ.get(self._api_key_env) if self._api_key_env else None
        if secret:
            text = text.replace(secret, "***")
        return text.strip().splitlines()[0][:300]

    def _to_result(self, resp: Any, messages: Messages) -> ChatResult:
        _check_completion(resp)
        texts = [storable(c.message.content) for c in resp.choices]
        finish = [c.finish_reason or "" for c in resp.choices]
        lps = None
        if any(getattr(c, "logprobs", None) is not None for c in resp.choices):
            lps = []
            for c in resp.choices:
                content = (c.logprobs.content or []) if c.logprobs is not None else []
                lps.append(
                    [
                        (storable(t.token), t.logprob, [(storable(a.token), a.logprob) for a in (t.top_logprobs or [])])
                        for t in content
                    ]
                )
        prompt_tokens, completion_tokens = (
            getattr(resp.usage, k, None) for k in ("prompt_tokens", "completion_tokens")
        )
        if isinstance(prompt_tokens, int) and isinstance(completion_tokens, int):
            usage = Usage(requests=1, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)
        else:  # llama.cpp and some proxies omit usage: estimate, and say so
            usage = Usage(
                requests=1,
                prompt_tokens=estimate_tokens(" ".join(m["content"] for m in messages)),
                completion_tokens=sum(estimate_tokens(t) for t in texts),
                estimated=True,
            )
        usage.prompt_cached = prompt_cached_tokens(resp)
        usage.cost = (usage.prompt_tokens * self.price_in + usage.completion_tokens * self.price_out) / 1e6
        return ChatResult(texts=texts, usage=usage, logprobs=lps, finish_reasons=finish)


def prompt_cached_tokens(resp: Any) -> int:
    """Prompt tokens the server took from its prompt cache: OpenAI's
    ``usage.prompt_tokens_details.cached_tokens``, or llama.cpp's ``timings.cache_n`` (llama-server
    reuses a cached prompt prefix); 0 when the server says neither."""
    details = getattr(getattr(resp, "usage", None), "prompt_tokens_details", None)
    cached = details.get("cached_tokens") if isinstance(details, dict) else getattr(details, "cached_tokens", None)
    if not isinstance(cached, int):
        timings = getattr(resp, "timings", None)
        cached = timings.get("cache_n") if isinstance(timings, dict) else None
    return cached if isinstance(cached, int) and cached >= 0 else 0


def _with_format(body: Dict[str, Any], answer_schema: Optional[Dict[str, Any]], form: str) -> Dict[str, Any]:
    """``body`` with the ``response_format`` of ``form`` for ``answer_schema`` (none when there
    is no schema, when the form is "off", or when ``config`` sets its own response_format)."""
    if answer_schema is None or form == "off" or "response_format" in body:
        return body
    if form == "json_object":
        return {**body, "response_format": {"type": "json_object"}}
    return {
        **body,
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": answer_schema["name"], "strict": True, "schema": answer_schema["schema"]},
        },
    }


def _check_completion(resp: Any) -> None:
    """Raise NotAChatCompletion unless ``resp`` has choices with a text (or no) message content.
    The SDK hands back a str for a non-JSON body and an unvalidated object for JSON of any shape."""
    if isinstance(resp, (str, bytes)):
        raise NotAChatCompletion(f"a non-JSON body: {resp[:80]!r}")
    choices = getattr(resp, "choices", None)
    if not isinstance(choices, list) or not choices:
        raise NotAChatCompletion("no 'choices' in the answer")
    for i, c in enumerate(choices):
        message = getattr(c, "message", None)
        if message is None or not isinstance(getattr(message, "content", None), (str, type(None))):
            raise NotAChatCompletion(f"choice {i} has no text message")

"""spacy_evokd.OpenAICompatible.v1: chat completions against any OpenAI-compatible server.

Why not spacy-llm's own OpenAI models: they GET api.openai.com/v1/models when built (whatever
`endpoint` says), send one request at a time, retry only 429/503 and drop token usage and
logprobs (see ../shared/reference/spacy_notes.md §1.4, §1.8). This model uses the `openai` SDK
with the SDK's own retries switched off, and adds what the loop needs around it:

- concurrency: a thread pool, ``concurrency`` requests in flight;
- bounded retries with exponential backoff on 429, 5xx, timeouts and connection errors,
  honouring ``Retry-After``; other 4xx fail at once;
- client-side rate limits (requests and tokens per minute, sliding 60 s window);
- usage and cost per request; logprobs when asked;
- the response cache (set ``model.cache``; cache.py), keyed on model, body and messages.

It talks to ``base_url`` only. The API key is read from the environment variable named by
``api_key_env`` and lives only inside the SDK client: it is not an attribute, not in ``repr``,
not in the cache key or value, and scrubbed from error messages.
"""
import logging
import os
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Dict, Iterable, List, Optional, Sequence

from ..cache import make_key
from ..teachers.base import ChatResult, Usage

logger = logging.getLogger("spacy_evokd.model")

Messages = List[Dict[str, str]]


class TeacherRequestError(RuntimeError):
    """A request failed for good (after retries, or a non-retryable status); the message says
    which server and why, never the key."""


class RateLimiter:
    """Sliding window (60 s: limits are per minute) over requests and tokens; ``acquire`` blocks
    until both fit."""

    def __init__(self, requests_per_minute: Optional[int], tokens_per_minute: Optional[int], clock=time.monotonic,
                 window: float = 60.0):  # fmt: skip
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
    ):
        import openai  # imported here: spaCy loads our entry points for every pipeline

        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency}")
        if max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {max_retries}")
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
        key = None
        if api_key_env:
            key = os.environ.get(api_key_env)
            if not key:
                raise TeacherRequestError(
                    f"environment variable {api_key_env} is not set: export the API key for {self.base_url} "
                    "(or set api_key_env = null for a local server without a key)"
                )
        self._api_key_env = api_key_env  # the key itself is read again only to scrub error text
        # the SDK's retries are off: ours are bounded, logged and honour our backoff settings
        self._client = openai.OpenAI(base_url=self.base_url, api_key=key or "no-key", max_retries=0, timeout=timeout)
        self._openai = openai
        self._limiter = RateLimiter(requests_per_minute, tokens_per_minute)
        self._usage = Usage()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"OpenAICompatible(name={self.name!r}, base_url={self.base_url!r})"

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

    def chat(self, messages: Messages, n: int = 1, logprobs: bool = False, top_logprobs: int = 0,
             **params: Any) -> ChatResult:  # fmt: skip
        return self.chat_many([messages], n=n, logprobs=logprobs, top_logprobs=top_logprobs, **params)[0]

    def chat_many(self, conversations: Sequence[Messages], n: int = 1, logprobs: bool = False,
                  top_logprobs: int = 0, **params: Any) -> List[ChatResult]:  # fmt: skip
        """Answer several conversations, ``concurrency`` at a time, results in input order."""
        body = {**self.config, **params}
        if n != 1:
            body["n"] = n
        if logprobs:
            body["logprobs"] = True
            if top_logprobs:
                body["top_logprobs"] = top_logprobs
        if len(conversations) <= 1 or self.concurrency == 1:
            results = [self._one(list(m), body) for m in conversations]
        else:
            with ThreadPoolExecutor(max_workers=min(self.concurrency, len(conversations))) as pool:
                results = list(pool.map(lambda m: self._one(list(m), body), conversations))
        with self._lock:
            for r in results:
                self._usage.add(r.usage)
        return results

    def drain_usage(self) -> Usage:
        with self._lock:
            usage, self._usage = self._usage, Usage()
        return usage

    def _one(self, messages: Messages, body: Dict[str, Any]) -> ChatResult:
        key = make_key(self.name, {"base_url": self.base_url, **body}, messages) if self.cache is not None else None
        if key is not None:
            hit = self.cache.get(key)
            if hit is not None:
                usage = Usage(**{**hit["usage"], "cached": 1})
                return ChatResult(texts=hit["texts"], usage=usage, logprobs=hit.get("logprobs"),
                                  finish_reasons=hit.get("finish_reasons", []), cached=True)  # fmt: skip
        result = self._request(messages, body)
        if key is not None:
            u = result.usage
            self.cache.put(key, self.name, {
                "texts": result.texts, "logprobs": result.logprobs, "finish_reasons": result.finish_reasons,
                "usage": {"requests": 1, "prompt_tokens": u.prompt_tokens, "completion_tokens": u.completion_tokens,
                          "cost": u.cost, "estimated": u.estimated},
            })  # fmt: skip
        return result

    def _request(self, messages: Messages, body: Dict[str, Any]) -> ChatResult:
        oa = self._openai
        prompt_chars = sum(len(m["content"]) for m in messages)
        expected = estimate_tokens("x" * prompt_chars) + int(body.get("max_tokens") or body.get("max_completion_tokens") or 0)
        attempt = 0
        while True:
            self._limiter.acquire(expected)
            try:
                resp = self._client.chat.completions.create(model=self.name, messages=messages, **body)
                return self._to_result(resp, messages)
            except (oa.RateLimitError, oa.InternalServerError, oa.APITimeoutError, oa.APIConnectionError) as e:
                why = self._describe(e)
                if attempt >= self.max_retries:
                    raise TeacherRequestError(
                        f"{self.base_url}: request failed after {attempt + 1} attempts ({why})"
                    ) from None
                delay = self._delay(attempt, e)
                logger.warning("%s: %s; retry %d/%d in %.1fs", self.base_url, why, attempt + 1, self.max_retries, delay)
                time.sleep(delay)
                attempt += 1
            except oa.APIStatusError as e:  # 400, 401, 404, ...: retrying will not help
                raise TeacherRequestError(f"{self.base_url}: {self._describe(e)}") from None

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
        text = f"HTTP {status}: {getattr(error, 'message', error)}" if status else f"{type(error).__name__}: {error}"
        secret = os.environ.get(self._api_key_env) if self._api_key_env else None
        if secret:
            text = text.replace(secret, "***")
        return text.strip().splitlines()[0][:300]

    def _to_result(self, resp: Any, messages: Messages) -> ChatResult:
        texts = [(c.message.content or "") for c in resp.choices]
        finish = [c.finish_reason or "" for c in resp.choices]
        lps = None
        if any(getattr(c, "logprobs", None) is not None for c in resp.choices):
            lps = []
            for c in resp.choices:
                content = (c.logprobs.content or []) if c.logprobs is not None else []
                lps.append([
                    (t.token, t.logprob, [(a.token, a.logprob) for a in (t.top_logprobs or [])]) for t in content
                ])  # fmt: skip
        if resp.usage is not None:
            usage = Usage(requests=1, prompt_tokens=resp.usage.prompt_tokens or 0,
                          completion_tokens=resp.usage.completion_tokens or 0)  # fmt: skip
        else:  # llama.cpp and some proxies omit usage: estimate, and say so
            usage = Usage(requests=1, prompt_tokens=estimate_tokens(" ".join(m["content"] for m in messages)),
                          completion_tokens=sum(estimate_tokens(t) for t in texts), estimated=True)  # fmt: skip
        usage.cost = (usage.prompt_tokens * self.price_in + usage.completion_tokens * self.price_out) / 1e6
        return ChatResult(texts=texts, usage=usage, logprobs=lps, finish_reasons=finish)

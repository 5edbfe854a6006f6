"""Benchmark 3: teacher transport throughput against a local OpenAI-compatible server with a fixed
per-request latency. spacy_evokd.OpenAICompatible.v1 at concurrency 1, 4, 16 vs spacy-llm's own
OpenAI model (sequential `requests`; its start-up call to api.openai.com is skipped by a subclass,
the only way to run it offline). Also: a requests-per-minute limit under concurrency 16.

    python bench/transport.py [--prompts 128] [--latency 0.2] [--out bench/results/transport.json]
"""

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).parent.parent
sys.path.insert(0, str(ROOT))

from spacy_evokd.testing.server import FakeOpenAIServer  # noqa: E402  (the same local server the tests use)


def spacy_llm_model(base_url: str):
    from spacy_llm.models.rest.openai.model import OpenAI

    class OfflineOpenAI(OpenAI):
        def _verify_auth(self) -> None:  # spacy-llm would GET api.openai.com/v1/models here
            pass

    return OfflineOpenAI(
        name="bench-model",
        endpoint=f"{base_url}/chat/completions",
        config={},
        strict=True,
        max_tries=3,
        interval=1.0,
        max_request_time=30,
        context_length=None,
    )


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main(prompts: int, latency: float, out: Path) -> dict:
    import os

    from spacy_evokd.models.openai_compatible import OpenAICompatible

    os.environ.setdefault("OPENAI_API_KEY", "sk-bench-not-a-key")
    batch = [[f"prompt {i}"] for i in range(prompts)]
    results = {"prompts": prompts, "latency_s": latency, "rows": []}
    with FakeOpenAIServer(lambda body: "ok") as server:
        # every request sleeps `latency` seconds before answering
        def slow(n):
            server.fail(*[("sleep", latency)] * n)

        slow(prompts)
        base = timed(lambda: list(spacy_llm_model(server.base_url)(batch)))
        results["rows"].append({"client": "spacy-llm OpenAI (sequential)", "concurrency": 1, "seconds": base})
        for c in (1, 4, 16):
            slow(prompts)
            model = OpenAICompatible(name="bench-model", base_url=server.base_url, api_key_env=None, concurrency=c)
            secs = timed(lambda: model(batch))
            results["rows"].append({"client": "spacy_evokd.OpenAICompatible.v1", "concurrency": c, "seconds": secs})
        # a limit of 60 requests/minute at concurrency 16: 70 requests must take > 60 s... too long for
        # a benchmark, so the window is shortened to 2 s (60 per 2 s) and 90 requests sent
        from spacy_evokd.models.openai_compatible import RateLimiter

        model = OpenAICompatible(name="bench-model", base_url=server.base_url, api_key_env=None, concurrency=16)
        model._limiter = limiter = RateLimiter(requests_per_minute=60, tokens_per_minute=None, window=2.0)
        sent = []
        acquire = limiter.acquire
        limiter.acquire = lambda tokens: (acquire(tokens), sent.append(time.monotonic()))  # when each request goes
        model([[f"r{i}"] for i in range(90)])
        times = sorted(sent)
        # a window is half-open: a request exactly `window` after another belongs to the next one
        worst = max(sum(1 for t in times if s <= t < s + 2.0 - 1e-3) for s in times)
        results["rate_limit"] = {"limit_per_window": 60, "window_s": 2.0, "max_seen_in_any_window": worst}
    print(f"Transport throughput: {prompts} prompts, {latency * 1000:.0f} ms per request (local server)")
    print(f"{'client':40} {'conc.':>5} {'seconds':>8} {'req/s':>7} {'x spacy-llm':>11}")
    for r in results["rows"]:
        r["requests_per_s"] = prompts / r["seconds"]
        r["ratio"] = base / r["seconds"]
        print(
            f"{r['client']:40} {r['concurrency']:>5} {r['seconds']:>8.2f} {r['requests_per_s']:>7.1f} {r['ratio']:>11.1f}"
        )
    rl = results["rate_limit"]
    print(
        f"rate limit {rl['limit_per_window']} per {rl['window_s']} s at concurrency 16: "
        f"at most {rl['max_seen_in_any_window']} requests sent in any window (client clock)"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--prompts", type=int, default=128)
    p.add_argument("--latency", type=float, default=0.2)
    p.add_argument("--out", type=Path, default=ROOT / "bench/results/transport.json")
    a = p.parse_args()
    main(a.prompts, a.latency, a.out)

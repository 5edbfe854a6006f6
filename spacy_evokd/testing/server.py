"""A local OpenAI-compatible chat-completions server for tests (the network boundary double).

    with FakeOpenAIServer(responder) as server:
        model = OpenAICompatible(name="test-model", base_url=server.base_url, api_key_env=None)

``responder(body) -> str`` writes the assistant's answer for a request body. Faults are queued
with ``server.fail(...)`` and served one per request before normal answers:
    ("status", 429, {"Retry-After": "0"})   an HTTP error with headers
    ("sleep", 2.0)                           answer after a delay (read timeouts)
    ("reset",)                               close the connection without answering
    ("body", b"<html>..</html>", "text/html") a 200 answer with this raw body (content type
                                             optional, default application/json): not a chat completion
``server.refuse_formats`` (a set of response_format types, e.g. {"json_schema"}) makes every
request with such a response_format a 400 naming it, as a server without structured outputs answers.
GET /v1/models lists one model (each such GET is kept in ``server.gets``). Every chat request's
body and headers are kept in ``server.requests``; ``max_in_flight`` is the
highest number of requests handled at once.
"""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Dict, List, Tuple


def _tokens(text: str) -> int:
    return max(1, len(text) // 4)


class FakeOpenAIServer:
    def __init__(
        self, responder: Callable[[Dict], str], usage: bool = True, logprobs: bool = True, prompt_cache: str = ""
    ):
        self.responder = responder
        self.usage = usage
        # report reused prompt tokens (half the prompt) as "openai" (usage.prompt_tokens_details)
        # or "llama.cpp" (timings.cache_n) does; "" reports none
        self.prompt_cache = prompt_cache
        self.logprobs = logprobs  # False: ignore "logprobs" in requests, as some servers do
        self.faults: List[Tuple] = []
        self.refuse_formats: set = set()
        self.requests: List[Dict] = []
        self.gets: List[str] = []  # GET /v1/models paths (requests holds the chat completions)
        self.in_flight = 0
        self.max_in_flight = 0
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output clean
                pass

            def do_GET(self):
                if self.path.rstrip("/") == "/v1/models":  # what a run's preflight asks (check_reachable)
                    with server.lock:
                        server.gets.append(self.path)
                    self._send(
                        200, {"object": "list", "data": [{"id": "test-llm", "object": "model", "owned_by": "test"}]}
                    )
                    return
                self._send(404, {"error": {"message": "only GET /v1/models and POST /v1/chat/completions here"}})

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                with server.lock:
                    server.requests.append(
                        {
                            "path": self.path,
                            "body": body,
                            "time": time.monotonic(),
                            "headers": {k.lower(): v for k, v in self.headers.items()},
                        }
                    )
                    fault = server.faults.pop(0) if server.faults else None
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    self._answer(body, fault)
                finally:
                    with server.lock:
                        server.in_flight -= 1

            def _answer(self, body, fault):
                if fault and fault[0] == "reset":
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                if fault and fault[0] == "sleep":
                    time.sleep(fault[1])
                if fault and fault[0] == "body":
                    self._send_raw(200, fault[1], fault[2] if len(fault) > 2 else "application/json")
                    return
                if fault and fault[0] == "status":
                    headers = fault[2] if len(fault) > 2 else {}
                    self._send(fault[1], {"error": {"message": f"injected {fault[1]}", "type": "test"}}, headers)
                    return
                refused = (body.get("response_format") or {}).get("type")
                if refused in server.refuse_formats:
                    self._send(
                        400,
                        {
                            "error": {
                                "message": f"Invalid parameter: 'response_format' of type '{refused}' is "
                                "not supported with this model.",
                                "type": "invalid_request_error",
                            }
                        },
                    )
                    return
                if self.path.rstrip("/") != "/v1/chat/completions":
                    self._send(404, {"error": {"message": f"no route {self.path}"}})
                    return
                n = int(body.get("n", 1))
                texts = [server.responder(body) for _ in range(n)]
                prompt = " ".join(m["content"] for m in body["messages"])
                choices = []
                for i, text in enumerate(texts):
                    choice = {"index": i, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
                    if body.get("logprobs") and server.logprobs:
                        choice["logprobs"] = {
                            "content": [
                                {
                                    "token": tok,
                                    "logprob": -0.05,
                                    "bytes": None,
                                    "top_logprobs": [{"token": tok, "logprob": -0.05, "bytes": None}],
                                }
                                for tok in text.split()
                            ]
                        }
                    choices.append(choice)
                answer = {
                    "id": "chatcmpl-test",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": body.get("model", "?"),
                    "choices": choices,
                }
                if server.usage:
                    pt, ct = _tokens(prompt), sum(_tokens(t) for t in texts)
                    answer["usage"] = {"prompt_tokens": pt, "completion_tokens": ct, "total_tokens": pt + ct}
                    if server.prompt_cache == "openai":
                        answer["usage"]["prompt_tokens_details"] = {"cached_tokens": pt // 2}
                    elif server.prompt_cache == "llama.cpp":
                        answer["timings"] = {"cache_n": pt // 2, "prompt_n": pt - pt // 2}
                self._send(200, answer)

            def _send(self, status, payload, headers=None):
                self._send_raw(status, json.dumps(payload).encode("utf8"), "application/json", headers)

            def _send_raw(self, status, data, content_type, headers=None):
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def fail(self, *faults: Tuple) -> None:
        with self.lock:
            self.faults.extend(faults)

    def __enter__(self) -> "FakeOpenAIServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

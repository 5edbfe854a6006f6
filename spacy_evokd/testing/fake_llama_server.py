"""Stands in for the `llama-server` binary in tests of local_server.start/stop (the network
boundary): takes the same command line, serves GET /v1/models with the --alias once "loaded".

    FAKE_LLAMA_LOAD_SECONDS=1   answer only after this long (503 before, as llama-server does)
    FAKE_LLAMA_EXIT=3           print a line and exit with this code instead of serving
"""

import argparse
import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, HTTPServer


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-m", "--model")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--alias", default="model")
    args, _ = parser.parse_known_args()
    if os.environ.get("FAKE_LLAMA_EXIT"):
        print(f"error: failed to load model '{args.model}'", flush=True)
        sys.exit(int(os.environ["FAKE_LLAMA_EXIT"]))
    ready_at = time.monotonic() + float(os.environ.get("FAKE_LLAMA_LOAD_SECONDS", "0"))

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_GET(self):
            if time.monotonic() < ready_at:
                code, body = 503, {"error": {"message": "Loading model", "code": 503}}
            elif self.path == "/v1/models":
                code, body = 200, {"object": "list", "data": [{"id": args.alias, "object": "model"}]}
            else:
                code, body = 404, {"error": {"message": "not found"}}
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = HTTPServer((args.host, args.port), Handler)
    print(f"main: server is listening on http://{args.host}:{args.port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()

"""A scripted OpenAI-compatible server on 127.0.0.1 for HTTP-backend tests.

Each request takes the next behaviour from the script ("ok" once it runs out): 429 (with
Retry-After), 500, hang (longer than the client's timeout), drop (close without answering),
malformed (200 with a broken body), 401. "ok" answers deterministically from the request's
seed and user message, so a redone request gets the same text.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import Counter, deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Script:
    def __init__(self, behaviours=(), delay: float = 0.0, reasoning_apart: bool = False, hang: float = 3.0):
        self.queue = deque(behaviours)
        self.delay, self.reasoning_apart, self.hang = delay, reasoning_apart, hang
        self.seen: Counter = Counter()
        self.requests: list[dict] = []
        self.lock = threading.Lock()

    def next(self, body: dict) -> str:
        with self.lock:
            behaviour = self.queue.popleft() if self.queue else "ok"
            self.seen[behaviour] += 1
            self.requests.append(body)
            return behaviour


def answer(body: dict) -> tuple[str, str]:
    """Deterministic (reasoning, response) for a request."""
    user = next(m["content"] for m in body["messages"] if m["role"] == "user")
    digest = hashlib.sha1(f"{body.get('seed')}/{user}".encode()).hexdigest()[:8]
    return f"thinking {digest}", f"The answer is \\boxed{{{int(digest, 16) % 10}}}."


def serve(script: Script) -> tuple[ThreadingHTTPServer, str]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # quiet
            pass

        def _send(self, status: int, payload: bytes, headers: dict | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(payload)

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            behaviour = script.next(body)
            error = lambda msg: json.dumps({"error": {"message": msg, "type": "x", "code": None}}).encode()  # noqa: E731
            if behaviour == "429":
                return self._send(429, error("rate limited"), {"Retry-After": "0.05"})
            if behaviour == "500":
                return self._send(500, error("internal error"))
            if behaviour == "401":
                return self._send(401, error("invalid api key"))
            if behaviour == "hang":
                time.sleep(script.hang)
                return None
            if behaviour == "drop":
                self.close_connection = True
                return None
            if behaviour == "malformed":
                return self._send(200, b'{"id": "x", "choices": [')
            time.sleep(script.delay)
            reasoning, response = answer(body)
            if script.reasoning_apart:
                message = {"role": "assistant", "content": response, "reasoning_content": reasoning}
            else:
                message = {"role": "assistant", "content": f"<think>\n{reasoning}\n</think>\n\n{response}"}
            n = body.get("n", 1)
            payload = {
                "id": "chatcmpl-test",
                "object": "chat.completion",
                "created": 0,
                "model": body["model"],
                "choices": [{"index": i, "message": message, "finish_reason": "stop"} for i in range(n)],
                "usage": {"prompt_tokens": 12, "completion_tokens": 9 * n, "total_tokens": 12 + 9 * n},
            }
            return self._send(200, json.dumps(payload).encode())

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/v1"

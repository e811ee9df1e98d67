"""A scripted OpenAI-compatible server on 127.0.0.1 for HTTP-backend tests.

Each request takes the next behaviour from the script ("ok" once it runs out): 429 (with
Retry-After), 500, hang (longer than the client's timeout), drop (close without answering),
malformed (200 with a broken body), empty (200 whose message has no text), stall (a stream
that stops after two chunks for `hang` seconds), 401. "ok" answers deterministically from the
request's seed and user message, so a redone request gets the same text; with `"stream": true`
it comes as server-sent events, four characters every `stream_gap` seconds. A prompt containing one
of `always_empty` always gets an empty answer. `paid` counts the answers given (the bill);
`times` the arrival of each request.

`python tests/openai_server.py [--delay S]` serves in its own process (for kill tests) and prints
its URL on the first line.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import Counter, deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Script:
    def __init__(self, behaviours=(), delay: float = 0.0, reasoning_apart: bool = False, hang: float = 3.0,
                 stream_gap: float = 0.0, always_empty: tuple[str, ...] = (), cached_tokens: int = 0):
        self.queue = deque(behaviours)
        self.delay, self.reasoning_apart, self.hang = delay, reasoning_apart, hang
        self.stream_gap, self.always_empty, self.cached_tokens = stream_gap, always_empty, cached_tokens
        self.seen: Counter = Counter()
        self.requests: list[dict] = []
        self.times: list[float] = []
        self.paid = 0
        self.authorization: list[str | None] = []  # each request's Authorization header
        self.lock = threading.Lock()

    def next(self, body: dict) -> str:
        with self.lock:
            behaviour = self.queue.popleft() if self.queue else "ok"
            user = next((m["content"] for m in body.get("messages", []) if m["role"] == "user"), "")
            if behaviour == "ok" and any(word in user for word in self.always_empty):
                behaviour = "empty"
            self.seen[behaviour] += 1
            self.requests.append(body)
            self.times.append(time.monotonic())
            return behaviour

    def bill(self) -> None:
        with self.lock:
            self.paid += 1


def answer(body: dict) -> tuple[str, str]:
    """Deterministic (reasoning, response) for a request."""
    user = next((m["content"] for m in body["messages"] if m["role"] == "user"), "")
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

        def do_GET(self):
            """vLLM's two Prometheus counters the peer benchmark reads, for its plumbing check."""
            if self.path != "/metrics":
                return self._send(404, b"{}")
            text = (f'vllm:request_success_total{{finished_reason="stop"}} {script.paid}\n'
                    f"vllm:generation_tokens_total {script.paid * 9}\n")
            return self._send(200, text.encode())

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            script.authorization.append(self.headers.get("Authorization"))
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
            if behaviour == "empty":
                reasoning, response = "", ""
            n = body.get("n", 1)
            usage = {"prompt_tokens": 12, "completion_tokens": 9 * n, "total_tokens": 12 + 9 * n}
            if script.cached_tokens:
                usage["prompt_tokens_details"] = {"cached_tokens": script.cached_tokens}
            if body.get("stream"):
                return self._stream(body, reasoning, response, n, usage, stall=behaviour == "stall")
            if script.reasoning_apart:
                message = {"role": "assistant", "content": response, "reasoning_content": reasoning}
            elif behaviour == "empty":
                message = {"role": "assistant", "content": None}
            else:
                message = {"role": "assistant", "content": f"<think>\n{reasoning}\n</think>\n\n{response}"}
            payload = {
                "id": "chatcmpl-test",
                "object": "chat.completion",
                "created": 0,
                "model": body["model"],
                "choices": [{"index": i, "message": message, "finish_reason": "stop"} for i in range(n)],
                "usage": usage,
            }
            script.bill()
            return self._send(200, json.dumps(payload).encode())

        def _stream(self, body: dict, reasoning: str, response: str, n: int, usage: dict, stall: bool) -> None:
            """Server-sent events in chunked encoding: the text word by word, then usage, [DONE]."""
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()

            def event(data: str) -> None:
                raw = f"data: {data}\n\n".encode()
                self.wfile.write(f"{len(raw):x}\r\n".encode() + raw + b"\r\n")
                self.wfile.flush()

            def chunk(choices: list, usage=None) -> str:
                return json.dumps({"id": "chatcmpl-test", "object": "chat.completion.chunk", "created": 0,
                                   "model": body["model"], "choices": choices, "usage": usage})

            text = f"<think>\n{reasoning}\n</think>\n\n{response}" if reasoning or response else ""
            field = "content"
            if script.reasoning_apart and text:  # DeepSeek's way: the reasoning first, in its own field
                text, field = reasoning, "reasoning_content"
            words = [(field, text[i : i + 4]) for i in range(0, len(text), 4)]  # about a token a chunk
            if script.reasoning_apart and response:
                words += [("content", response[i : i + 4]) for i in range(0, len(response), 4)]
            try:
                for k, (name, word) in enumerate(words):
                    if stall and k == 2:
                        time.sleep(script.hang)
                        return
                    event(chunk([{"index": i, "delta": {name: word}, "finish_reason": None} for i in range(n)]))
                    time.sleep(script.stream_gap)
                event(chunk([{"index": i, "delta": {}, "finish_reason": "stop"} for i in range(n)]))
                event(chunk([], usage))
                event("[DONE]")
                self.wfile.write(b"0\r\n\r\n")
                script.bill()
            except OSError:  # the client went away
                self.close_connection = True

    class Server(ThreadingHTTPServer):
        request_queue_size = 128  # the default 5 drops SYNs of a burst of new connections: 1 s stalls

        def handle_error(self, request, client_address):  # a client killed mid-answer is expected here
            pass

    server = Server(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/v1"


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--delay", type=float, default=0.0)
    args = parser.parse_args()
    server, url = serve(Script(delay=args.delay))
    print(url, flush=True)
    threading.Event().wait()

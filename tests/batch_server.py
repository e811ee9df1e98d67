"""A scripted batch API on 127.0.0.1: OpenAI's files + batches endpoints, as documented.

POST /v1/files (multipart, purpose=batch) stores a JSONL input file; POST /v1/batches creates a
batch of it; GET /v1/batches/ID reports it (in_progress while `hold` is clear, then ended);
GET /v1/batches lists batches with their metadata; GET /v1/files/ID/content returns a file.
Each created batch takes the next outcome from the script ("ok" once it runs out):
  ok         every line answered (the output file)
  expire     status expired: the first half answered, the rest in the error file (batch_expired)
  fail_some  completed, every second line a 500 in the error file
  drop_some  completed, every second line in neither file
  refuse     status failed with a validation error and no files
Answers are openai_server's deterministic ones; `paid` counts answered lines.
"""

from __future__ import annotations

import email.parser
import itertools
import json
import threading
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from openai_server import answer


class BatchScript:
    def __init__(self, outcomes=()):
        self.outcomes = deque(outcomes)
        self.hold = threading.Event()  # set: batches stay in progress
        self.files: dict[str, bytes] = {}
        self.batches: dict[str, dict] = {}
        self.inputs: list[list[str]] = []  # custom ids of each created batch, in order
        self.paid = 0
        self.polls = 0
        self.lock = threading.Lock()
        self._ids = itertools.count()

    def new_id(self, kind: str) -> str:
        return f"{kind}-{next(self._ids)}"


def _completion(body: dict) -> dict:
    reasoning, response = answer(body)
    n = body.get("n", 1)
    message = {"role": "assistant", "content": f"<think>\n{reasoning}\n</think>\n\n{response}"}
    return {"id": "chatcmpl-b", "object": "chat.completion", "created": 0, "model": body["model"],
            "choices": [{"index": i, "message": message, "finish_reason": "stop"} for i in range(n)],
            "usage": {"prompt_tokens": 12, "completion_tokens": 9 * n, "total_tokens": 12 + 9 * n}}


def _end(script: BatchScript, batch: dict) -> None:
    """Run a batch to its scripted end: write its output and error files."""
    outcome = batch.pop("_outcome")
    lines = [json.loads(x) for x in script.files[batch["input_file_id"]].decode().splitlines() if x.strip()]
    if outcome == "refuse":
        batch.update(status="failed", errors={"object": "list", "data": [
            {"code": "invalid_request", "message": "line 1: model not found", "line": 1}]})
        return
    out, err = [], []
    for k, x in enumerate(lines):
        rid = f"batch_req_{k}"
        if outcome == "expire" and k >= len(lines) // 2:
            err.append({"id": rid, "custom_id": x["custom_id"], "response": None,
                        "error": {"code": "batch_expired", "message": "not run before the completion window ended"}})
        elif outcome == "fail_some" and k % 2:
            err.append({"id": rid, "custom_id": x["custom_id"], "error": None,
                        "response": {"status_code": 500, "request_id": rid,
                                     "body": {"error": {"message": "internal error", "type": "server_error"}}}})
        elif outcome == "drop_some" and k % 2:
            continue
        else:
            out.append({"id": rid, "custom_id": x["custom_id"], "error": None,
                        "response": {"status_code": 200, "request_id": rid, "body": _completion(x["body"])}})
            script.paid += 1
    for key, records in (("output_file_id", out), ("error_file_id", err)):
        if records:
            fid = script.new_id("file")
            script.files[fid] = "".join(json.dumps(r) + "\n" for r in records).encode()
            batch[key] = fid
    batch["status"] = "expired" if outcome == "expire" else "completed"
    batch["request_counts"] = {"total": len(lines), "completed": len(out), "failed": len(err)}


def serve(script: BatchScript) -> tuple[ThreadingHTTPServer, str]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def _json(self, obj: dict, status: int = 200) -> None:
            payload = json.dumps(obj).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def do_POST(self):
            raw = self.rfile.read(int(self.headers["Content-Length"]))
            with script.lock:
                if self.path == "/v1/files":
                    message = email.parser.BytesParser().parsebytes(
                        f"Content-Type: {self.headers['Content-Type']}\r\n\r\n".encode() + raw)
                    fields = {p.get_param("name", header="content-disposition"): p.get_payload(decode=True)
                              for p in message.get_payload()}
                    if fields.get("purpose") != b"batch":
                        return self._json({"error": {"message": "purpose must be batch"}}, 400)
                    fid = script.new_id("file")
                    script.files[fid] = fields["file"]
                    return self._json({"id": fid, "object": "file", "bytes": len(fields["file"]), "created_at": 0,
                                       "filename": "input.jsonl", "purpose": "batch", "status": "processed"})
                if self.path == "/v1/batches":
                    body = json.loads(raw)
                    bid = script.new_id("batch")
                    lines = script.files[body["input_file_id"]].decode().splitlines()
                    script.inputs.append([json.loads(x)["custom_id"] for x in lines if x.strip()])
                    batch = {"id": bid, "object": "batch", "endpoint": body["endpoint"], "errors": None,
                             "input_file_id": body["input_file_id"], "completion_window": body["completion_window"],
                             "status": "in_progress", "output_file_id": None, "error_file_id": None,
                             "created_at": 0, "metadata": body.get("metadata"),
                             "request_counts": {"total": len(script.inputs[-1]), "completed": 0, "failed": 0},
                             "_outcome": script.outcomes.popleft() if script.outcomes else "ok"}
                    script.batches[bid] = batch
                    return self._json({k: v for k, v in batch.items() if not k.startswith("_")})
            return self._json({"error": {"message": "no such endpoint"}}, 404)

        def do_GET(self):
            with script.lock:
                path = self.path.split("?")[0]
                if path == "/v1/batches":
                    data = [{k: v for k, v in b.items() if not k.startswith("_")} for b in script.batches.values()]
                    return self._json({"object": "list", "data": data, "has_more": False,
                                       "first_id": data[0]["id"] if data else None,
                                       "last_id": data[-1]["id"] if data else None})
                if path.startswith("/v1/batches/"):
                    batch = script.batches[path.rsplit("/", 1)[1]]
                    script.polls += 1
                    if "_outcome" in batch and not script.hold.is_set():
                        _end(script, batch)
                    return self._json({k: v for k, v in batch.items() if not k.startswith("_")})
                if path.startswith("/v1/files/") and path.endswith("/content"):
                    payload = script.files[path.split("/")[3]]
                    self.send_response(200)
                    self.send_header("Content-Type", "application/octet-stream")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return None
            return self._json({"error": {"message": "no such endpoint"}}, 404)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/v1"

"""`distill generate` with the HTTP backend vs a bare asyncio loop with the `openai` client,
both against the same `vllm serve` (started here, on 127.0.0.1).

    python bench/generate_http.py [--prompts 64] [--n 4] [--max-tokens 128] [--concurrency 64]

Same prompts, same chat template, same sampling, the same number of requests in flight; one
request per sample on both sides (distill's default for hosted APIs). Tokens/s over each side's
generation time; the ratio is distill's over the loop's. Rounds alternate the order.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import replace
from pathlib import Path

from common import R1_USER, bench_recipe, gsm8k_problems, report, vllm_env


def start_server(model: str, port: int) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", model,
           "--served-model-name", "teacher", "--host", "127.0.0.1", "--port", str(port), "--enforce-eager",
           "--max-model-len", "2048", "--dtype", "float32", "--seed", "0", "--no-enable-chunked-prefill"]
    server = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit("vllm serve exited")
        try:
            if urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2).status == 200:
                return server
        except OSError:
            time.sleep(1)
    raise SystemExit("vllm serve did not become healthy")


async def bare_loop(url: str, args) -> tuple[int, float]:
    import openai

    client = openai.AsyncOpenAI(base_url=url, api_key="EMPTY", max_retries=0, timeout=600)
    limit = asyncio.Semaphore(args.concurrency)

    async def one(question: str) -> int:
        async with limit:
            r = await client.chat.completions.create(
                model="teacher", messages=[{"role": "user", "content": R1_USER.replace("{problem}", question)}],
                temperature=0.6, top_p=0.95, max_tokens=args.max_tokens, n=1)
            return r.usage.completion_tokens

    start = time.perf_counter()
    tokens = await asyncio.gather(*(one(q) for q in gsm8k_problems(args.prompts) for _ in range(args.n)))
    seconds = time.perf_counter() - start
    await client.close()
    return sum(tokens), seconds


def serve_smollm2() -> tuple[subprocess.Popen, str, int]:
    """`vllm serve` on the bundled SmolLM2 at a free local port: (process, base URL, port)."""
    vllm_env()
    from distill import models
    from distill.config import TeacherCard
    from distill.recipes import load_card

    model = models.resolve(load_card(TeacherCard, "smollm2-135m-instruct"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return start_server(model, port), f"http://127.0.0.1:{port}/v1", port


def ours(url: str, args, out: Path) -> tuple[int, float]:
    from distill.generate.stage import run_generate

    recipe = bench_recipe(args.prompts, args.n, args.max_tokens, "openai")
    engine = {"base_url": url, "concurrency": args.concurrency, "timeout": 600}
    recipe = replace(recipe, teacher=replace(recipe.teacher, model="teacher", backend="openai", engine=engine))
    start = time.perf_counter()  # no engine to start: the whole call is generation
    result = run_generate(recipe, out)
    return result["completion_tokens"], time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--n", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    server, url, port = serve_smollm2()
    totals = {"distill": [0, 0.0], "bare": [0, 0.0]}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for r in range(args.rounds):
                for side in (["bare", "distill"] if r % 2 == 0 else ["distill", "bare"]):
                    tokens, seconds = (asyncio.run(bare_loop(url, args)) if side == "bare"
                                       else ours(url, args, Path(tmp) / f"run{r}"))
                    totals[side][0] += tokens
                    totals[side][1] += seconds
                    print(f"round {r} {side}: {tokens} tokens in {seconds:.1f} s = {tokens / seconds:.1f} tok/s",
                          flush=True)
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=60)
    report("generate_http", tuple(totals["distill"]), tuple(totals["bare"]), ("distill", "bare_openai_loop"))


if __name__ == "__main__":
    main()

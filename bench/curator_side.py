"""curator's side of bench/generate_http_peers.py, run with the Python of a separate virtual
environment that holds `bespokelabs-curator` (its dependencies clash with distill's):

    CURATOR_PYTHON=/tmp/curator-venv/bin/python bench/generate_http_peers.py

Argument: one JSON object {url, prompts, n, max_tokens, concurrency, cache}. Prints one JSON line
{seconds, rows}. curator caches each finished response under `cache` and, rerun with the same
cache and prompts, sends only what it does not hold: that is what the kill test measures.
"""

from __future__ import annotations

import json
import os
import sys
import time


def main() -> None:
    args = json.loads(sys.argv[1])
    os.environ["CURATOR_CACHE_DIR"] = args["cache"]
    os.environ.setdefault("TELEMETRY_ENABLED", "false")
    os.environ.setdefault("CURATOR_DISABLE_RICH_DISPLAY", "1")
    # curator counts tokens with tiktoken, which downloads its tables; offline, point it at the
    # copies litellm (a curator dependency) ships
    import importlib.util

    litellm = os.path.dirname(importlib.util.find_spec("litellm").origin)
    os.environ.setdefault("TIKTOKEN_CACHE_DIR", os.path.join(litellm, "litellm_core_utils", "tokenizers"))
    from bespokelabs import curator

    llm = curator.LLM(
        model_name="teacher",
        backend="openai",
        generation_params={"temperature": 0.6, "top_p": 0.95, "max_tokens": args["max_tokens"]},
        backend_params={
            "base_url": args["url"],
            "api_key": "EMPTY",
            "max_concurrent_requests": args["concurrency"],
            "max_requests_per_minute": 10**7,  # no rate limit on a local server: concurrency decides
            "max_tokens_per_minute": 10**10,
            "request_timeout": 600,
            "max_retries": 3,
            # curator by default retries answers cut at max_tokens ("length") as failures; distill
            # keeps them (marked, for the filter): the same work on both sides needs this off
            "invalid_finish_reasons": [],
        },
    )
    prompts = [p for p in args["prompts"] for _ in range(args["n"])]
    start = time.perf_counter()
    result = llm(prompts)
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "rows": len(result.dataset)}), flush=True)


if __name__ == "__main__":
    main()

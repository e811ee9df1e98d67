"""distill's HTTP backend vs curator vs a bare asyncio loop, on the same `vllm serve` (started
here, on 127.0.0.1) and the same prompts; then what each pays after a `kill -9` at half-way.

    CURATOR_PYTHON=/tmp/curator-venv/bin/python python bench/generate_http_peers.py \
        [--prompts 48] [--n 2] [--max-tokens 64] [--concurrency 16] [--rounds 2]

curator (`bespokelabs-curator`) lives in its own virtual environment (its pins clash with
distill's) and runs as a subprocess (bench/curator_side.py); its import and set-up are outside
its timing, as distill's engine-free start is outside distill's (distill runs in this process).
Output tokens and finished requests are read from the server's own Prometheus counters
(`vllm:generation_tokens_total`, `vllm:request_success_total`), so all three are measured alike.
Each round runs the three in a rotated order, each with a fresh output folder or cache.

Kill test: one shard of every sample (the worst case for a shard-only resume), killed with
SIGKILL once the server has finished half of the requests, then rerun to the end with the same
command: "paid" is the number of requests the server finished over both runs (rows = requests).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from common import GSM8K_TEST, R1_USER, ROOT, gsm8k_problems
from generate_http import bare_loop, serve_smollm2


def metrics(port: int) -> dict:
    """Finished requests and generated tokens so far, from the server's /metrics."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    out = {"requests": 0.0, "tokens": 0.0}
    for line in text.splitlines():
        name = line.split("{")[0].split(" ")[0]
        if name == "vllm:request_success_total":
            out["requests"] += float(line.rsplit(" ", 1)[1])
        elif name == "vllm:generation_tokens_total":
            out["tokens"] += float(line.rsplit(" ", 1)[1])
    return out


def distill_recipe(folder: Path, url: str, args) -> Path:
    """A recipe file for `distill generate`: the quickstart with GSM8K prompts, one shard, the
    served SmolLM2 as an openai-backend teacher card."""
    import yaml

    card = folder / "served-teacher.yaml"
    card.write_text(yaml.safe_dump({
        "model": "teacher", "backend": "openai",
        "template": {"system": None, "user": R1_USER, "think_prefix": False},
        "sampling": {"temperature": 0.6, "top_p": 0.95, "max_tokens": args.max_tokens},
        "engine": {"base_url": url, "concurrency": args.concurrency, "timeout": 600},
    }))
    recipe = folder / "bench.yaml"
    recipe.write_text(yaml.safe_dump({
        "teacher": str(card),
        "data": [{"card": "gsm8k", "path": str(GSM8K_TEST), "limit": args.prompts}],
        "generate": {"n": args.n, "shard_size": args.prompts},
    }))
    return recipe


def distill_timed(url: str, args, out: Path) -> tuple[int, float]:
    """distill in this process, timing its backend's run (prompt loading and the manifest
    outside, as curator's import and the bare loop's prompt list are)."""
    from dataclasses import replace

    from common import bench_recipe, generate_timed

    recipe = bench_recipe(args.prompts, args.n, args.max_tokens, "openai")
    engine = {"base_url": url, "concurrency": args.concurrency, "timeout": 600}
    recipe = replace(recipe, teacher=replace(recipe.teacher, model="teacher", backend="openai", engine=engine))
    return generate_timed(recipe, out)


def distill_cmd(recipe: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "distill", "generate", "-r", str(recipe), "--out", str(out)]


def curator_cmd(url: str, cache: Path, args) -> list[str]:
    spec = {"url": url, "prompts": [R1_USER.replace("{problem}", q) for q in gsm8k_problems(args.prompts)],
            "n": args.n, "max_tokens": args.max_tokens, "concurrency": args.concurrency, "cache": str(cache)}
    return [args.curator_python, str(ROOT / "bench" / "curator_side.py"), json.dumps(spec)]


def run_side(side: str, url: str, port: int, folder: Path, args) -> tuple[float, float, float]:
    """(output tokens, seconds, finished requests) of one full run of `side`."""
    before = metrics(port)
    if side == "bare":
        _, seconds = asyncio.run(bare_loop(url, args))
    elif side == "distill":
        _, seconds = distill_timed(url, args, folder / "run")
    else:
        done = subprocess.run(curator_cmd(url, folder / "cache", args), capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"curator failed: {done.stderr.strip()[-400:]}")
        seconds = json.loads(done.stdout.strip().splitlines()[-1])["seconds"]
    after = metrics(port)
    return after["tokens"] - before["tokens"], seconds, after["requests"] - before["requests"]


def kill_half(cmd: list[str], port: int, total: int, cwd=None, env=None) -> float:
    """Run `cmd`, SIGKILL it once the server has finished half of `total` requests, rerun it to
    the end; return the requests the server finished over both runs."""
    before = metrics(port)["requests"]
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    while metrics(port)["requests"] - before < total / 2:
        if proc.poll() is not None:
            raise SystemExit(f"{cmd[1]} finished before the kill")
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)  # the whole process group: no helper outlives it
    proc.wait()
    time.sleep(2)  # requests the client left behind finish or abort on the server
    subprocess.run(cmd, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return metrics(port)["requests"] - before


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--prompts", type=int, default=48)
    parser.add_argument("--n", type=int, default=2)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--url", help="Use this running server (with a /metrics like vLLM's) instead of starting vLLM.")
    parser.add_argument("--curator-python", default=os.environ.get("CURATOR_PYTHON", "/tmp/curator-venv/bin/python"))
    args = parser.parse_args()
    if args.url:  # plumbing check against a scripted server
        server, url, port = None, args.url, int(args.url.split(":")[2].split("/")[0])
    else:
        server, url, port = serve_smollm2()
    sides = ["bare", "distill", "curator"]
    totals = {side: [0.0, 0.0] for side in sides}
    rows = args.prompts * args.n
    try:
        with tempfile.TemporaryDirectory() as tmp:
            asyncio.run(bare_loop(url, argparse.Namespace(**{**vars(args), "prompts": 4, "n": 1})))  # warm-up
            for r in range(args.rounds):
                for side in sides[r % 3:] + sides[: r % 3]:
                    folder = Path(tmp) / f"{side}{r}"
                    folder.mkdir()
                    tokens, seconds, requests = run_side(side, url, port, folder, args)
                    # curator sends one probe request (for rate-limit headers) before its work
                    assert rows <= requests <= rows + 1, f"{side}: the server finished {requests} requests for {rows} rows"
                    totals[side][0] += tokens
                    totals[side][1] += seconds
                    print(f"round {r} {side}: {tokens:.0f} tokens in {seconds:.1f} s = {tokens / seconds:.1f} tok/s",
                          flush=True)
            paid = {}
            folder = Path(tmp) / "kill-distill"
            folder.mkdir()
            paid["distill"] = kill_half(distill_cmd(distill_recipe(folder, url, args), folder / "run"), port, rows,
                                        cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"})
            print(f"distill: {paid['distill']:.0f} requests paid for {rows} rows after a kill at half-way", flush=True)
            paid["curator"] = kill_half(curator_cmd(url, Path(tmp) / "kill-curator", args), port, rows)
            print(f"curator: {paid['curator']:.0f} requests paid for {rows} rows after a kill at half-way", flush=True)
    finally:
        if server is not None:
            server.send_signal(signal.SIGINT)
            server.wait(timeout=60)
    rate = {side: totals[side][0] / totals[side][1] for side in sides}
    print(json.dumps({
        "bench": "generate_http_peers", "rows": rows, "concurrency": args.concurrency,
        "tok_per_s": {side: round(v, 1) for side, v in rate.items()},
        "ratio_vs_curator": round(rate["distill"] / rate["curator"], 3),
        "ratio_vs_bare": round(rate["distill"] / rate["bare"], 3),
        "paid_after_kill": {k: int(v) for k, v in paid.items()},
        "bound_distill": rows + args.concurrency,
    }))


if __name__ == "__main__":
    main()

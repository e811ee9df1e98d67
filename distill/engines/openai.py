"""Any OpenAI-compatible endpoint (`vllm serve`, SGLang, a hosted API) over HTTP.

Async requests with bounded concurrency; transient failures (429, 5xx, timeouts, dropped
connections, malformed or empty replies) are retried with exponential backoff and jitter,
honouring `Retry-After`; a permanent one (401, 403, 404, 400) stops the run at once. Every
answer is appended to its shard's journal (distill/engines/journal.py) as it arrives, and the shard is
written when complete, so a kill loses only the requests in flight.

Requests are spread over one or more servers (servers.py: least loaded first, failing ones
drained, AIMD concurrency on 429), paced by the card's RPM/TPM budgets (ratelimit.py), priced
from the card (cost.py, `--max-cost` stops cleanly), optionally streamed so that `timeout`
counts from the last token; `mode: batch` hands the work to the provider's batch API (batch.py).

The teacher card's `engine` section configures the endpoint (endpoint.py); the API key is read
from the environment variable it names and is never written anywhere.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import random
from collections import Counter

from ..config import TeacherCard
from ..errors import UserError
from ..prompting import THINK_OPEN
from . import GenSettings, prompt_seed
from .endpoint import (BudgetReached, Endpoint, api_keys, completion_text, endpoint_for, reasoning_of,
                       request_body, split_usage)
from .ratelimit import Budgets
from .servers import FAILED, NEUTRAL, OK, THROTTLED, Pool, Server


class _Retryable(Exception):
    def __init__(self, reason: str, retry_after: float | None = None, outcome: str = NEUTRAL) -> None:
        super().__init__(reason)
        self.reason, self.retry_after, self.outcome = reason, retry_after, outcome


def _retry_after(response) -> float | None:
    value = response.headers.get("retry-after") if response is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff


def open_backend(teacher: TeacherCard, settings: GenSettings):
    endpoint = endpoint_for(teacher)
    keys = api_keys(teacher, endpoint)
    if endpoint.mode == "batch":
        from .batch import open_batch

        return open_batch(teacher, settings, endpoint, keys)
    return _online(teacher, settings, endpoint, keys)


def _online(teacher: TeacherCard, settings: GenSettings, endpoint: Endpoint, keys: list[str]):
    import httpx
    import openai

    prefix = THINK_OPEN + "\n" if settings.template.think_prefix else ""
    tags = itertools.count()
    per_request = settings.n if endpoint.n_per_request else 1
    permanent = (openai.AuthenticationError, openai.PermissionDeniedError, openai.NotFoundError,
                 openai.BadRequestError, openai.UnprocessableEntityError)

    def choice_results(texts: list[tuple[str | None, str | None, str | None]], usage) -> list[dict]:
        """(content, reasoning, finish_reason) per choice, in index order, to samples' fields."""
        if any(not (content or reasoning) for content, reasoning, _ in texts):
            raise _Retryable("empty")  # a loaded reasoning API's content-less 200: never kept
        shares = split_usage(usage, per_request, endpoint.prices)
        return [
            {"completion": completion_text(content, reasoning, prefix), "finish_reason": finish or "stop", **share}
            for (content, reasoning, finish), share in zip(texts, shares)
        ]

    async def plain(client, request: dict) -> list[dict]:
        response = await client.chat.completions.create(**request)
        choices = getattr(response, "choices", None)
        if not choices or len(choices) != per_request or any(c.message is None for c in choices):
            raise _Retryable("malformed")
        texts = [(c.message.content, reasoning_of(getattr(c.message, "model_extra", None)), c.finish_reason)
                 for c in sorted(choices, key=lambda c: c.index)]
        return choice_results(texts, getattr(response, "usage", None))

    async def streamed(client, request: dict, live) -> list[dict]:
        """Tokens as they come; `timeout` is the longest silence, however long the whole answer.
        `live(choice, chunks)` tells the progress line (a chunk is about a token)."""
        stream = await client.chat.completions.create(**request, stream=True, stream_options={"include_usage": True})
        parts: dict[int, list] = {}
        usage = None
        chunks = stream.__aiter__()
        try:
            while True:
                try:
                    chunk = await asyncio.wait_for(chunks.__anext__(), endpoint.timeout)
                except StopAsyncIteration:
                    break
                except TimeoutError:
                    raise _Retryable("idle", outcome=FAILED) from None
                if getattr(chunk, "usage", None) is not None:
                    usage = chunk.usage
                for c in chunk.choices or []:
                    part = parts.setdefault(c.index, [[], [], None])
                    delta = c.delta
                    if delta is not None:
                        part[0].append(delta.content or "")
                        part[1].append(reasoning_of(getattr(delta, "model_extra", None)) or "")
                        live(c.index, len(part[0]))
                    if c.finish_reason:
                        part[2] = c.finish_reason
        finally:
            await stream.close()
        if sorted(parts) != list(range(per_request)) or any(p[2] is None for p in parts.values()):
            raise _Retryable("malformed")  # the stream ended before every choice finished
        texts = [("".join(parts[i][0]), "".join(parts[i][1]) or None, parts[i][2]) for i in range(per_request)]
        return choice_results(texts, usage)

    async def attempt(server, request: dict, live) -> list[dict]:
        try:
            if endpoint.stream:
                return await streamed(server.client, request, live)
            return await plain(server.client, request)
        except permanent as e:
            env = dict(zip(endpoint.urls(), endpoint.key_envs())).get(server.url)
            raise UserError(
                f"{server.url} answered {e.status_code} ({_short(e)}); "
                + ("check the API key in $" + env if e.status_code in (401, 403) and env
                   else "check the teacher card's model name and engine settings")
            ) from None
        except openai.APIStatusError as e:  # 429, 5xx, 408, 409: the server may recover
            outcome = THROTTLED if e.status_code == 429 else FAILED if e.status_code >= 500 else NEUTRAL
            raise _Retryable(str(e.status_code), _retry_after(e.response), outcome) from None
        except openai.APITimeoutError:
            raise _Retryable("idle" if endpoint.stream else "timeout", outcome=FAILED) from None
        except (openai.APIConnectionError, httpx.TransportError):
            raise _Retryable("connection", outcome=FAILED) from None
        except (openai.APIResponseValidationError, openai.APIError, json.JSONDecodeError, ValueError):
            raise _Retryable("malformed") from None

    def estimate(request: dict) -> int:
        """Prompt tokens before the answer says (about 4 characters a token), for the TPM bucket."""
        return sum(len(str(m.get("content") or "")) for m in request["messages"]) // 4 + 1

    def report(pool, budgets, progress) -> None:
        """The pacing figures for the progress line and the manifest."""
        now = sum(max(1, int(s.limit)) for s in pool.servers)
        lowest = min(progress.rate.get("lowest_concurrency", now), now)
        progress.pacing(rpm=endpoint.rpm, tpm=endpoint.tpm, concurrency=now, lowest_concurrency=lowest,
                        max_concurrency=endpoint.concurrency * len(pool.servers), waited_s=round(budgets.waited(), 1))

    async def request_with_retries(pool, budgets, request: dict, progress) -> list[dict] | None:
        """The request's samples, or None when it answered empty every time (counted an error)."""
        tries = empties = 0
        tag = next(tags)  # this request's unfinished choices in the progress line

        def live(choice: int, chunks: int) -> None:
            progress.partial((tag, choice), chunks)

        while True:
            await budgets.take(estimate(request))
            server = await pool.take()
            outcome = NEUTRAL
            try:
                results = await attempt(server, request, live)
                outcome = OK
                used = [r["prompt_tokens"] for r in results[:1]] + [r["completion_tokens"] for r in results]
                budgets.settle(estimate(request), None if None in used else sum(used))
                return results
            except _Retryable as e:
                outcome = e.outcome
                progress.retry(e.reason)
                if e.reason == "empty":
                    empties += 1
                    if empties > endpoint.empty_retries:
                        progress.error()
                        return None
                    delay = endpoint.backoff * 2 ** (empties - 1) * random.uniform(0.5, 1.0)  # a loaded server
                else:
                    if tries == endpoint.max_retries:
                        progress.error()
                        raise UserError(
                            f"{server.url}: a request still failed ({e.reason}) after "
                            f"{endpoint.max_retries} retries; finished samples are kept, rerun to resume"
                        ) from None
                    delay = endpoint.backoff * 2**tries * random.uniform(0.5, 1.0)
                    if e.retry_after is not None:
                        delay = e.retry_after + random.uniform(0, 0.1)
                    tries += 1
            finally:
                for choice in range(per_request):  # the finished samples count instead, or a retry restarts
                    progress.discard((tag, choice))
                await pool.give(server, outcome)
                report(pool, budgets, progress)
            await asyncio.sleep(min(delay, endpoint.max_backoff))

    async def shard(pool, budgets, index: int, prompts: list[dict], progress, on_shard, keep, missing) -> None:
        journal = await asyncio.to_thread(keep.open, index, prompts) if keep is not None else None
        kept = journal.samples if journal is not None else {}

        async def sample(j: int, p: dict, first: int) -> list[dict] | None:
            wanted = range(first, first + per_request)
            if all((j, k) in kept for k in wanted):  # paid for by an earlier run
                progress.restored(per_request)
                return [kept[(j, k)] for k in wanted]
            if progress.over_budget():
                return None
            seed = prompt_seed(settings.seed, p["id"]) + first
            request = request_body(teacher, settings, endpoint, p["problem"], seed)
            results = await request_with_retries(pool, budgets, request, progress)
            if results is None:
                missing["empty"] += 1
                return None
            out = []
            for k, result in zip(wanted, results):
                s = {"prompt_index": j, "sample_idx": k, **result}
                if journal is not None:
                    journal.append(s)  # kept before it is counted: a kill from here on loses nothing
                out.append(s)
                progress.sample(result["completion_tokens"] or 0, truncated=result["finish_reason"] == "length")
            progress.paid(result["prompt_tokens"] or 0, sum(r["cost"] or 0.0 for r in results))
            return out

        try:
            async with asyncio.TaskGroup() as group:
                tasks = [
                    group.create_task(sample(j, p, first))
                    for j, p in enumerate(prompts)
                    for first in range(0, settings.n, per_request)
                ]
            results = [t.result() for t in tasks]
            if any(r is None for r in results):  # stopped at the budget or an empty answer: not complete
                missing["shards"] += 1
                return
            progress.prompts_done(len(prompts))
            await asyncio.to_thread(on_shard, index, [s for r in results for s in r])  # Parquet off the loop
            if journal is not None:
                journal.finish()
        finally:
            if journal is not None:
                journal.close()

    async def main(work, progress, on_shard, keep) -> None:
        http = [httpx.AsyncClient(limits=httpx.Limits(max_connections=endpoint.concurrency)) for _ in keys]
        clients = [openai.AsyncOpenAI(base_url=url, api_key=key, max_retries=0, timeout=endpoint.timeout, http_client=h)
                   for url, key, h in zip(endpoint.urls(), keys, http)]
        pool = Pool([Server(url, c, endpoint.concurrency) for url, c in zip(endpoint.urls(), clients)], endpoint.drain)
        budgets = Budgets(endpoint.rpm, endpoint.tpm)
        missing: Counter = Counter()
        total = endpoint.concurrency * len(clients)
        slots = None
        try:
            async with asyncio.TaskGroup() as group:
                for index, prompts in work:
                    if progress.over_budget():
                        break
                    if slots is None:  # enough shards in flight to keep every connection busy
                        per_shard = max(1, len(prompts) * settings.n // per_request)
                        slots = asyncio.Semaphore(math.ceil(total / per_shard) + 1)
                    await slots.acquire()
                    task = group.create_task(shard(pool, budgets, index, prompts, progress, on_shard, keep, missing))
                    task.add_done_callback(lambda _: slots.release())
        finally:
            for c in clients:
                await c.close()
        if progress.over_budget():
            raise BudgetReached(
                f"stopped at the cost budget: {progress.spent_line()}; every answer paid for is kept, "
                "rerun with a higher --max-cost (or none) to continue"
            )
        if missing["empty"]:
            raise UserError(
                f"{missing['empty']} requests answered empty {endpoint.empty_retries + 1} times each and were "
                f"left out ({missing['shards']} shards unfinished, all other answers kept); rerun to ask again"
            )

    def run(work, progress, on_shard, keep=None) -> None:
        try:
            asyncio.run(main(work, progress, on_shard, keep))
        except BaseExceptionGroup as group:  # TaskGroup wraps the first failure; show it plainly
            raise _first(group) from None

    run.journals = True  # takes `keep`: generate's journal.Journals
    run.priced = endpoint.prices is not None
    return run


def _first(group: BaseExceptionGroup) -> BaseException:
    for e in group.exceptions:
        if isinstance(e, BaseExceptionGroup):
            return _first(e)
        if isinstance(e, (UserError, KeyboardInterrupt)):
            return e
    return group.exceptions[0]


def _short(error: Exception) -> str:
    text = " ".join(str(error).split())
    return text if len(text) <= 120 else text[:117] + "..."

"""Any OpenAI-compatible endpoint (`vllm serve`, SGLang, a hosted API) over HTTP.

Async requests with bounded concurrency; transient failures (429, 5xx, timeouts, dropped
connections, malformed replies) are retried with exponential backoff and jitter, honouring
`Retry-After`; a permanent one (401, 403, 404, 400) stops the run at once. A shard is written
only when every sample in it is complete, so a kill loses only shards in flight.

The teacher card's `engine` section configures the endpoint (see `Endpoint`); the API key is
read from the environment variable it names and is never written anywhere.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import random
from dataclasses import dataclass, field

from ..config import TeacherCard
from ..errors import ConfigError, UserError
from ..prompting import THINK_CLOSE, THINK_OPEN, prompt_messages
from . import GenSettings, prompt_seed


@dataclass(frozen=True)
class Endpoint:
    base_url: str  # e.g. http://127.0.0.1:8000/v1 or https://api.deepseek.com
    api_key_env: str | None = None  # environment variable holding the API key
    concurrency: int = 64  # requests in flight
    timeout: float = 600.0  # seconds per request
    max_retries: int = 8  # per request, then the run stops (finished shards are kept)
    backoff: float = 1.0  # first retry delay in seconds; doubles each retry, with jitter
    max_backoff: float = 60.0
    n_per_request: bool = False  # one request with n (vLLM, SGLang) or n requests (most hosted APIs)
    send_seed: bool = True  # a per-sample seed, so a redone shard asks for the same samples
    extra_body: dict = field(default_factory=dict)  # passed through, e.g. {"top_k": 20}


class _Retryable(Exception):
    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason, self.retry_after = reason, retry_after


def endpoint_for(teacher: TeacherCard) -> Endpoint:
    from ..recipes import build

    if "base_url" not in teacher.engine:
        raise ConfigError(f"teacher card '{teacher.name}': the openai backend needs engine.base_url")
    endpoint = build(Endpoint, dict(teacher.engine), f"teacher card '{teacher.name}'", "engine")
    if endpoint.concurrency < 1 or endpoint.max_retries < 0 or endpoint.timeout <= 0:
        raise ConfigError(f"teacher card '{teacher.name}': engine.concurrency, max_retries or timeout out of range")
    return endpoint


def _retry_after(response) -> float | None:
    value = response.headers.get("retry-after") if response is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff


def _completion(message, prefix: str) -> str:
    """The completion as distill stores it: reasoning returned apart (DeepSeek's
    `reasoning_content`, vLLM's `reasoning`) is joined back as a <think> block."""
    extra = getattr(message, "model_extra", None) or {}
    reasoning = extra.get("reasoning_content") or extra.get("reasoning")
    content = message.content or ""
    if reasoning:
        return f"{THINK_OPEN}\n{reasoning.strip()}\n{THINK_CLOSE}\n\n{content.strip()}"
    return prefix + content


def open_backend(teacher: TeacherCard, settings: GenSettings):
    import httpx
    import openai

    endpoint = endpoint_for(teacher)
    key = "EMPTY"
    if endpoint.api_key_env:
        key = os.environ.get(endpoint.api_key_env, "")
        if not key:
            raise UserError(f"teacher card '{teacher.name}': set the API key in ${endpoint.api_key_env}")
    prefix = THINK_OPEN + "\n" if settings.template.think_prefix else ""
    per_request = settings.n if endpoint.n_per_request else 1
    permanent = (openai.AuthenticationError, openai.PermissionDeniedError, openai.NotFoundError,
                 openai.BadRequestError, openai.UnprocessableEntityError)

    def body(problem: str, seed: int) -> dict:
        messages = prompt_messages(settings.template, problem)
        extra = dict(endpoint.extra_body)
        if prefix:  # continue a forced "<think>\n" assistant turn (vLLM and SGLang understand this)
            messages = messages + [{"role": "assistant", "content": prefix}]
            extra.update(continue_final_message=True, add_generation_prompt=False)
        request = {
            "model": teacher.model,
            "messages": messages,
            "temperature": settings.temperature,
            "top_p": settings.top_p,
            "max_tokens": settings.max_tokens,
            "n": per_request,
        }
        if endpoint.send_seed:
            request["seed"] = seed
        if extra:
            request["extra_body"] = extra
        return request

    async def attempt(client, request: dict) -> list[dict]:
        try:
            response = await client.chat.completions.create(**request)
        except permanent as e:
            raise UserError(
                f"{endpoint.base_url} answered {e.status_code} ({_short(e)}); "
                + ("check the API key in $" + endpoint.api_key_env if e.status_code in (401, 403) and endpoint.api_key_env
                   else "check the teacher card's model name and engine settings")
            ) from None
        except openai.APIStatusError as e:  # 429, 5xx, 408, 409: the server may recover
            raise _Retryable(str(e.status_code), _retry_after(e.response)) from None
        except openai.APITimeoutError:
            raise _Retryable("timeout") from None
        except openai.APIConnectionError:
            raise _Retryable("connection") from None
        except (openai.APIResponseValidationError, json.JSONDecodeError, ValueError):
            raise _Retryable("malformed") from None
        choices = getattr(response, "choices", None)
        if not choices or len(choices) != per_request or any(c.message is None for c in choices):
            raise _Retryable("malformed")
        usage = getattr(response, "usage", None)
        exact = usage is not None and per_request == 1
        return [
            {
                "completion": _completion(c.message, prefix),
                "finish_reason": c.finish_reason or "stop",
                "prompt_tokens": usage.prompt_tokens if usage is not None else None,
                "completion_tokens": usage.completion_tokens if exact else None,
            }
            for c in sorted(choices, key=lambda c: c.index)
        ]

    async def request_with_retries(client, limit, request: dict, progress) -> list[dict]:
        for tries in range(endpoint.max_retries + 1):
            async with limit:
                try:
                    return await attempt(client, request)
                except _Retryable as e:
                    progress.retry(e.reason)
                    if tries == endpoint.max_retries:
                        progress.error()
                        raise UserError(
                            f"{endpoint.base_url}: a request still failed ({e.reason}) after "
                            f"{endpoint.max_retries} retries; finished shards are kept, rerun to resume"
                        ) from None
                    delay = endpoint.backoff * 2**tries * random.uniform(0.5, 1.0)
                    if e.retry_after is not None:
                        delay = e.retry_after + random.uniform(0, 0.1)
            await asyncio.sleep(min(delay, endpoint.max_backoff))
        raise AssertionError("unreachable")

    async def shard(client, limit, index: int, prompts: list[dict], progress, on_shard) -> None:
        async def sample(j: int, p: dict, first: int) -> list[dict]:
            seed = prompt_seed(settings.seed, p["id"]) + first
            results = await request_with_retries(client, limit, body(p["problem"], seed), progress)
            out = []
            for k, result in enumerate(results):
                out.append({"prompt_index": j, "sample_idx": first + k, **result})
                progress.sample(result["completion_tokens"] or 0, truncated=result["finish_reason"] == "length")
            return out

        async with asyncio.TaskGroup() as group:
            tasks = [
                group.create_task(sample(j, p, first))
                for j, p in enumerate(prompts)
                for first in range(0, settings.n, per_request)
            ]
        progress.prompts_done(len(prompts))
        samples = [s for t in tasks for s in t.result()]
        await asyncio.to_thread(on_shard, index, samples)  # a Parquet write must not stall the loop

    async def main(work, progress, on_shard) -> None:
        limit = asyncio.Semaphore(endpoint.concurrency)
        http = httpx.AsyncClient(limits=httpx.Limits(max_connections=endpoint.concurrency))
        client = openai.AsyncOpenAI(base_url=endpoint.base_url, api_key=key, max_retries=0,
                                    timeout=endpoint.timeout, http_client=http)
        slots = None
        try:
            async with asyncio.TaskGroup() as group:
                for index, prompts in work:
                    if slots is None:  # enough shards in flight to keep every connection busy
                        per_shard = max(1, len(prompts) * settings.n // per_request)
                        slots = asyncio.Semaphore(math.ceil(endpoint.concurrency / per_shard) + 1)
                    await slots.acquire()
                    task = group.create_task(shard(client, limit, index, prompts, progress, on_shard))
                    task.add_done_callback(lambda _: slots.release())
        finally:
            await client.close()

    def run(work, progress, on_shard) -> None:
        try:
            asyncio.run(main(work, progress, on_shard))
        except BaseExceptionGroup as group:  # TaskGroup wraps the first failure; show it plainly
            raise _first(group) from None

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

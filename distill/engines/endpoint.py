"""A served teacher's endpoint: the card's `engine:` settings checked, its keys read from the
environment, and the request and sample shapes that the online and batch modes share."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from ..config import TeacherCard
from ..errors import ConfigError, UserError
from ..prompting import THINK_CLOSE, THINK_OPEN, prompt_messages
from . import GenSettings
from .cost import Prices, usage_of


@dataclass(frozen=True)
class Endpoint:
    base_url: str | tuple[str, ...]  # e.g. http://127.0.0.1:8000/v1, or a list of servers of one model
    api_key_env: str | tuple[str, ...] | None = None  # variable(s) holding the key; a list: one per base_url
    concurrency: int = 64  # requests in flight per server (the most; 429s lower it for a while)
    timeout: float = 600.0  # seconds per request; with `stream`, counted from the last token received
    max_retries: int = 8  # per request, then the run stops (finished samples are kept)
    backoff: float = 1.0  # first retry delay in seconds; doubles each retry, with jitter
    max_backoff: float = 60.0
    n_per_request: bool = False  # one request with n (vLLM, SGLang) or n requests (most hosted APIs)
    send_seed: bool = True  # a per-sample seed, so a redone shard asks for the same samples
    extra_body: dict = field(default_factory=dict)  # passed through, e.g. {"top_k": 20}
    rpm: float | None = None  # requests per minute, all servers together
    tpm: float | None = None  # tokens (prompt + completion) per minute, all servers together
    empty_retries: int = 3  # a 200 without any text is asked again this often, then counted an error
    drain: float = 5.0  # seconds a failing server gets no requests (doubling while it keeps failing)
    stream: bool = False  # stream tokens: long generations survive proxies' idle timeouts
    prices: Prices | None = None  # per million tokens: cost in the progress line and the manifest
    mode: str = "online"  # online | batch (the provider's files + batches endpoints, see batch.py)
    batch_size: int = 50_000  # batch mode: requests per batch file at most
    poll: float = 60.0  # batch mode: seconds between status checks
    completion_window: str = "24h"  # batch mode

    def urls(self) -> tuple[str, ...]:
        return (self.base_url,) if isinstance(self.base_url, str) else self.base_url

    def key_envs(self) -> tuple[str | None, ...]:
        urls = self.urls()
        if self.api_key_env is None or isinstance(self.api_key_env, str):
            return (self.api_key_env,) * len(urls)
        return self.api_key_env


class BudgetReached(UserError):
    """The run stopped at --max-cost; everything paid for is kept."""


def endpoint_for(teacher: TeacherCard) -> Endpoint:
    from ..recipes import build

    if "base_url" not in teacher.engine:
        raise ConfigError(f"teacher card '{teacher.name}': the openai backend needs engine.base_url")
    endpoint = build(Endpoint, dict(teacher.engine), f"teacher card '{teacher.name}'", "engine")
    where = f"teacher card '{teacher.name}'"
    if endpoint.concurrency < 1 or endpoint.max_retries < 0 or endpoint.timeout <= 0 or endpoint.empty_retries < 0:
        raise ConfigError(f"{where}: engine.concurrency, max_retries, empty_retries or timeout out of range")
    if not endpoint.urls():
        raise ConfigError(f"{where}: engine.base_url is an empty list; give at least one server")
    if len(endpoint.key_envs()) != len(endpoint.urls()):
        raise ConfigError(f"{where}: engine.api_key_env lists {len(endpoint.key_envs())} variables for "
                          f"{len(endpoint.urls())} base_url entries; give one per server, or a single name")
    for name in ("rpm", "tpm"):
        if getattr(endpoint, name) is not None and getattr(endpoint, name) <= 0:
            raise ConfigError(f"{where}: engine.{name} must be positive, got {getattr(endpoint, name)}")
    if endpoint.mode not in ("online", "batch"):
        raise ConfigError(f"{where}: engine.mode must be online or batch, got {endpoint.mode!r}")
    return endpoint


def api_keys(teacher: TeacherCard, endpoint: Endpoint) -> list[str]:
    """Each server's key from the environment (never written anywhere); a missing one is one line."""
    keys = []
    several = len(endpoint.urls()) > 1
    for url, env in zip(endpoint.urls(), endpoint.key_envs()):
        if env is None:
            keys.append("EMPTY")
            continue
        key = os.environ.get(env, "")
        if not key:
            raise UserError(f"teacher card '{teacher.name}': set the API key in ${env}" + (f" (for {url})" if several else ""))
        keys.append(key)
    return keys


def reasoning_of(extra: dict | None) -> str | None:
    extra = extra or {}
    return extra.get("reasoning_content") or extra.get("reasoning")


def completion_text(content: str | None, reasoning: str | None, prefix: str) -> str:
    """The completion as distill stores it: reasoning returned apart (DeepSeek's
    `reasoning_content`, vLLM's `reasoning`) is joined back as a <think> block."""
    content = content or ""
    if reasoning:
        return f"{THINK_OPEN}\n{reasoning.strip()}\n{THINK_CLOSE}\n\n{content.strip()}"
    return prefix + content


def request_body(teacher: TeacherCard, settings: GenSettings, endpoint: Endpoint, problem: str, seed: int) -> dict:
    """The chat completion request for one prompt (`n` samples when the endpoint takes n)."""
    prefix = THINK_OPEN + "\n" if settings.template.think_prefix else ""
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
        "n": settings.n if endpoint.n_per_request else 1,
    }
    if endpoint.send_seed:
        request["seed"] = seed
    if extra:
        request["extra_body"] = extra
    return request


def split_usage(usage, count: int, prices: Prices | None, batch: bool = False) -> list[dict]:
    """A request's usage as `count` samples' shares: exact for one sample per request; for n per
    request the completion tokens are unknown per sample (None) and the cost is split evenly."""
    prompt, completion, cached = usage_of(usage)
    cost = prices.cost(prompt, completion, cached, batch) if prices is not None else None
    return [
        {
            "prompt_tokens": prompt,
            "completion_tokens": completion if count == 1 else None,
            "cost": None if cost is None else cost / count,
            "billed_prompt_tokens": (prompt or 0) if i == 0 else 0,  # the request's, counted once
        }
        for i in range(count)
    ]

"""The throughput engine: vLLM's offline engine in this process, kept full across shards.

Prompts are rendered and tokenized here exactly as the transformers backend does, then queued
with `LLM.enqueue`; the engine is stepped directly, so the next shard is queued before the
current one drains (no idle tail per shard) and each shard is written the moment its last
request finishes. Each finished prompt's samples go to the shard's journal at once, so a crash
loses only the prompts in the engine, and a rerun asks only for the prompts not yet journaled.

Reproducibility: every prompt gets its own seed (backends.prompt_seed), so its samples do not
depend on what else is in the batch, and a shard redone after a crash is the same shard. On
vLLM's CPU build a seeded request crashes the engine when a prefill is split into chunks ("CPU
Generator does not use offset"), so there chunked prefill is switched off unless the teacher
card's `engine` says otherwise.
"""

from __future__ import annotations

import gc
import os
import time

from .. import models
from ..config import TeacherCard
from ..errors import ConfigError
from ..prompting import THINK_OPEN, prompt_messages
from ..ui import console
from . import GenSettings, prompt_seed, reaper


def _environment() -> None:
    """Defaults for vLLM's own settings; a value the user exported wins."""
    home = models.distill_home() / "vllm"
    (home / "rpc").mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("VLLM_RPC_BASE_PATH", str(home / "rpc"))  # else sockets land in /tmp
    os.environ.setdefault("VLLM_CACHE_ROOT", str(home / "cache"))
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")  # our progress lines, not vLLM's log stream
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")  # GiB; only the CPU build reads it
    os.environ.setdefault("TQDM_DISABLE", "1")  # the engine's weight-loading bars, in its workers


def check_engine_keys(engine: dict, where: str) -> None:
    """Every key of an `engine` mapping is a vLLM engine argument (checked before any work,
    where vLLM would refuse it only when the engine starts)."""
    import dataclasses
    import difflib

    _environment()  # before vLLM's first import: its logging level
    from vllm.engine.arg_utils import EngineArgs

    known = [f.name for f in dataclasses.fields(EngineArgs)]
    for key in engine:
        if key not in known:
            near = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
            hint = f"did you mean '{near[0]}'?" if near else "see vLLM's engine arguments"
            raise ConfigError(f"{where}: '{key}' is not a vLLM engine argument ({hint})")


def engine_args(teacher: TeacherCard, path: str, kwargs: dict, seed: int, on_cpu: bool) -> dict:
    """`vllm.LLM` arguments: the card's `engine` section as it is, plus what distill must set."""
    args = {"model": path, "seed": seed, **kwargs, **teacher.engine}
    if teacher.dtype != "auto":
        args.setdefault("dtype", teacher.dtype)
    args.setdefault("use_tqdm_on_load", False)  # a bar per weight file, in every log; our lines say it
    if on_cpu:
        args.setdefault("enable_chunked_prefill", False)
    return args


def _live_tokens(engine) -> tuple[int, int] | None:
    """Tokens generated so far by the requests still running, and how many run. The offline API returns a request
    only when it finishes (FINAL_ONLY), so a long trace would show no speed for minutes; this
    reads the output processor's per-request state instead. It is vLLM's internal state: where
    a version lays it out otherwise, the progress line counts finished samples only."""
    try:
        states = list(engine.output_processor.request_states.values())
        return sum(state.detokenizer.num_output_tokens() for state in states), len(states)
    except AttributeError:
        return None


def _lora_rank_slot(rank: int) -> int:
    """vLLM accepts only some values of max_lora_rank: the smallest that holds the adapter's."""
    return next((slot for slot in (8, 16, 32, 64, 128, 256, 320, 512) if slot >= rank), rank)


def open_backend(teacher: TeacherCard, settings: GenSettings):
    _environment()
    from vllm import LLM, SamplingParams
    from vllm.inputs import TokensPrompt
    from vllm.platforms import current_platform

    path, kwargs = models.load_args(teacher)
    args = engine_args(teacher, path, kwargs, settings.seed, current_platform.is_cpu())
    lora = None
    if settings.adapter:  # served by vLLM's LoRA support on the base weights: no merge needed
        from vllm.lora.request import LoRARequest

        args.update(enable_lora=True, max_loras=1, max_lora_rank=_lora_rank_slot(models.lora_rank(settings.adapter)))
        args["tokenizer"] = models.tokenizer_source(path, settings.adapter)
        lora = LoRARequest("adapter", 1, settings.adapter)
    started = time.monotonic()
    console.print(f"  starting vLLM for {teacher.name}" + (" and its adapter" if settings.adapter else "")
                  + " (weights, memory profile: about 30 s on a CPU)")
    try:
        llm = LLM(**args)
    except TypeError as e:  # an `engine` key this vLLM does not know
        raise ConfigError(f"teacher card '{teacher.name}': vLLM rejected the engine settings ({e})") from None
    reaper.watch()  # its engine processes must not outlive a killed distill
    console.print(f"  vLLM ready in {time.monotonic() - started:.0f} s")
    tokenizer = llm.get_tokenizer()
    prefix = THINK_OPEN + "\n" if settings.template.think_prefix else ""
    capacity = llm.llm_engine.vllm_config.scheduler_config.max_num_seqs

    def tokens(problem: str) -> TokensPrompt:
        text = tokenizer.apply_chat_template(
            prompt_messages(settings.template, problem), tokenize=False, add_generation_prompt=True
        )
        return TokensPrompt(prompt_token_ids=tokenizer(text + prefix, add_special_tokens=False)["input_ids"])

    def params(prompt_id: str):
        return SamplingParams(
            n=settings.n,
            temperature=settings.temperature,
            top_p=settings.top_p,
            max_tokens=settings.max_tokens,
            seed=prompt_seed(settings.seed, prompt_id),
        )

    def run(work, progress, on_shard, keep=None) -> None:
        work = iter(work)
        engine = llm.llm_engine
        pending: dict[int, dict] = {}  # shard -> {"left": prompts still running, "samples": [...], "journal"}
        owner: dict[str, tuple[int, int]] = {}  # request id -> (shard, prompt index)
        exhausted = False
        live, next_live = 0, 0.0  # tokens of unfinished requests; None once they cannot be read

        def complete(index: int) -> None:
            entry = pending.pop(index)
            on_shard(index, entry["samples"])
            if entry["journal"] is not None:
                entry["journal"].finish()

        def submit() -> None:
            nonlocal exhausted
            try:
                index, prompts = next(work)
            except StopIteration:
                exhausted = True
                return
            journal = keep.open(index, prompts) if keep is not None else None
            kept = journal.samples if journal is not None else {}
            # prompts whose n samples an earlier run finished are not asked again
            done = [j for j in range(len(prompts)) if all((j, k) in kept for k in range(settings.n))]
            todo = [j for j in range(len(prompts)) if j not in set(done)]
            pending[index] = {"left": len(todo), "journal": journal,
                              "samples": [kept[(j, k)] for j in done for k in range(settings.n)]}
            if done:
                progress.restored(len(done) * settings.n)
                progress.prompts_done(len(done))
            if not todo:
                complete(index)
                return
            ids = llm.enqueue([tokens(prompts[j]["problem"]) for j in todo], [params(prompts[j]["id"]) for j in todo],
                              lora_request=lora, use_tqdm=False)
            for j, request_id in zip(todo, ids):
                # enqueue returns "N-<suffix>"; the engine's outputs carry the external id "N"
                owner[request_id.split("-")[0]] = (index, j)

        try:
            while True:
                # keep about two engine-fulls queued so the scheduler never runs dry between shards
                while not exhausted and engine.get_num_unfinished_requests() < 2 * capacity:
                    submit()
                if not engine.has_unfinished_requests():
                    if exhausted:
                        break
                    continue
                for out in engine.step():
                    if not out.finished:
                        continue
                    index, j = owner.pop(out.request_id)
                    entry = pending[index]
                    for c in out.outputs:
                        sample = {
                            "prompt_index": j,
                            "sample_idx": c.index,
                            "completion": prefix + c.text,
                            "finish_reason": c.finish_reason or "abort",
                            "prompt_tokens": len(out.prompt_token_ids or []),
                            "completion_tokens": len(c.token_ids),
                        }
                        if entry["journal"] is not None:
                            entry["journal"].append(sample)  # a kill now costs this prompt nothing
                        entry["samples"].append(sample)
                        progress.sample(len(c.token_ids), truncated=c.finish_reason == "length")
                    progress.prompts_done(1)
                    entry["left"] -= 1
                    if entry["left"] == 0:
                        complete(index)
                if live is not None and time.monotonic() >= next_live:  # a few times a second is enough
                    live = _live_tokens(engine)
                    if live is not None:
                        progress.partial("vllm", *live)
                    next_live = time.monotonic() + 0.25
        finally:
            for entry in pending.values():
                if entry["journal"] is not None:
                    entry["journal"].close()
            # free the engine (its memory, its worker processes) before the next stage runs
            llm.llm_engine.engine_core.shutdown()
            gc.collect()

    run.journals = True  # finished prompts of unfinished shards are kept (distill/engines/journal.py)
    return run

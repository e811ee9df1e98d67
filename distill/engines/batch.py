"""Batch mode for OpenAI-compatible providers: the files + batches endpoints, at their discount.

The missing requests of every shard to do are written as JSONL batch input files (at most
`batch_size` lines each), uploaded, and submitted as batches; the run then polls them (every
`poll` seconds, for hours if need be) and, as each one ends, maps its output lines back to
(shard, prompt, sample) by `custom_id` and appends them to the shard journals. Lines in the
error file (expired, failed, empty answers) and lines missing from both files are submitted
again in a later batch, at most `max_retries` times each. A shard is written as soon as its
journal is complete.

The batches are recorded in `STAGE/_journal/batches.RANK.json` the moment they exist, so a
restarted run polls the same batches instead of paying for them twice. To close the gap between
"created" and "recorded", each batch carries a random token in its metadata that is recorded
before the batch is created; a restart that finds a token without a batch id looks the token up
in the provider's batch list and adopts that batch, or creates it then.
"""

from __future__ import annotations

import json
import secrets
import time

from .. import shards
from ..config import TeacherCard
from ..errors import ConfigError, UserError
from ..ui import console, plural
from . import GenSettings, prompt_seed

ENDPOINT = "/v1/chat/completions"
LIVE = ("validating", "in_progress", "finalizing", "cancelling")


def _cid(index: int, j: int, first: int) -> str:
    return f"{index}-{j}-{first}"


def _parse_cid(cid: str) -> tuple[int, int, int]:
    index, j, first = map(int, cid.split("-"))
    return index, j, first


def open_batch(teacher: TeacherCard, settings: GenSettings, endpoint, keys: list[str]):
    import openai

    from .endpoint import BudgetReached, completion_text, reasoning_of, request_body, split_usage
    from ..prompting import THINK_OPEN

    if len(endpoint.urls()) != 1:
        raise ConfigError(f"teacher card '{teacher.name}': engine.mode batch takes one base_url (a provider's API)")
    if endpoint.batch_size < 1 or endpoint.poll <= 0:
        raise ConfigError(f"teacher card '{teacher.name}': engine.batch_size and poll must be positive")
    url = endpoint.urls()[0]
    client = openai.OpenAI(base_url=url, api_key=keys[0], max_retries=endpoint.max_retries, timeout=endpoint.timeout)
    prefix = THINK_OPEN + "\n" if settings.template.think_prefix else ""
    per_request = settings.n if endpoint.n_per_request else 1

    def line(index: int, j: int, first: int, prompt: dict) -> dict:
        request = request_body(teacher, settings, endpoint, prompt["problem"], prompt_seed(settings.seed, prompt["id"]) + first)
        request.update(request.pop("extra_body", {}))  # the SDK merges extra_body; in a file we do
        return {"custom_id": _cid(index, j, first), "method": "POST", "url": ENDPOINT, "body": request}

    def samples_of(body: dict, j: int, first: int) -> list[dict] | None:
        """The samples of one answered line, or None when it holds no usable text."""
        choices = sorted(body.get("choices") or [], key=lambda c: c.get("index", 0))
        if len(choices) != per_request:
            return None
        texts = []
        for c in choices:
            message = c.get("message") or {}
            content, reasoning = message.get("content"), reasoning_of(message)
            if not (content or reasoning):
                return None
            texts.append((content, reasoning, c.get("finish_reason")))
        shares = split_usage(body.get("usage"), per_request, endpoint.prices, batch=True)
        return [
            {"prompt_index": j, "sample_idx": first + k, "completion": completion_text(content, reasoning, prefix),
             "finish_reason": finish or "stop", **share}
            for k, ((content, reasoning, finish), share) in enumerate(zip(texts, shares))
        ]

    def call(what: str, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (openai.AuthenticationError, openai.PermissionDeniedError) as e:
            raise UserError(f"{url} answered {e.status_code} to {what}; check the API key in "
                            f"${endpoint.key_envs()[0]}") from None
        except openai.NotFoundError:
            raise UserError(f"{url}: no batch API here ({what} answered 404); use engine.mode online") from None
        except openai.APIError as e:
            raise UserError(f"{url}: {what} failed ({' '.join(str(e).split())[:120]}); "
                            "everything received is kept, rerun to resume") from None

    def run(work, progress, on_shard, keep) -> None:
        plan = dict(work)
        journals = {i: keep.open(i, prompts) for i, prompts in plan.items()}
        state_path = keep.folder / f"batches.{keep.rank}.json"
        state = json.loads(state_path.read_text()) if state_path.is_file() else {"batches": [], "tries": {}}
        save = lambda: shards.write_json(state_path, state)  # noqa: E731
        seen_status: dict[str, str] = {}
        # each run gives every request its full number of tries ("rerun to try them again")
        state["tries"] = {c: t for c, t in state["tries"].items() if t <= endpoint.max_retries}
        try:
            for index in plan:
                restored = len(journals[index].samples)
                if restored:
                    progress.restored(restored)
            _adopt(state, save)
            while True:
                for index in [i for i, jr in journals.items() if len(jr.samples) == len(plan[i]) * settings.n]:
                    jr = journals.pop(index)
                    progress.prompts_done(len(plan[index]))
                    on_shard(index, [jr.samples[k] for k in sorted(jr.samples, key=lambda k: (k[0], k[1]))])
                    jr.finish()
                live = [b for b in state["batches"] if not b.get("done")]
                pending = {cid for b in live for cid in b["requests"]}
                needed = [
                    (index, j, first)
                    for index, jr in journals.items()
                    for j in range(len(plan[index]))
                    for first in range(0, settings.n, per_request)
                    if not all((j, k) in jr.samples for k in range(first, first + per_request))
                ]
                submit = [r for r in needed if _cid(*r) not in pending
                          and state["tries"].get(_cid(*r), 0) <= endpoint.max_retries]
                if progress.over_budget():
                    submit = []
                for start in range(0, len(submit), endpoint.batch_size):
                    chunk = submit[start : start + endpoint.batch_size]
                    _submit(state, save, [line(i, j, f, plan[i][j]) for i, j, f in chunk])
                    live = [b for b in state["batches"] if not b.get("done")]
                if not live:
                    break
                for b in live:
                    batch = call("a batch status check", client.batches.retrieve, b["id"])
                    counts = getattr(batch, "request_counts", None)
                    said = f"{batch.status} {getattr(counts, 'completed', 0)}/{getattr(counts, 'total', 0)}"
                    if seen_status.get(b["id"]) != said:
                        seen_status[b["id"]] = said
                        head = f"  batch {b['id']}: {said} · "
                        console.print(progress.report(head))
                    if batch.status in LIVE:
                        continue
                    if batch.status == "failed" and not batch.output_file_id and not batch.error_file_id:
                        errors = getattr(getattr(batch, "errors", None), "data", None) or []
                        why = errors[0].message if errors else "no reason given"
                        b["done"] = b["refused"] = True  # a rerun, once the cause is fixed, submits anew
                        save()
                        raise UserError(f"{url}: batch {b['id']} was refused ({why}); fix the cause, then rerun")
                    _collect(b, batch, journals, plan, state, progress)
                    b["done"] = True
                    save()
                if any(not b.get("done") for b in state["batches"]):
                    time.sleep(endpoint.poll)
        finally:
            for jr in journals.values():
                jr.close()
        if progress.over_budget() and journals:
            raise BudgetReached(f"stopped at the cost budget: {progress.spent_line()}; every answer received is "
                                "kept, rerun with a higher --max-cost (or none) to continue")
        if journals:
            exhausted = sum(1 for r in needed if state["tries"].get(_cid(*r), 0) > endpoint.max_retries)
            raise UserError(f"{plural(exhausted, 'batch request')} failed {plural(endpoint.max_retries + 1, 'time')}; "
                            f"{plural(len(journals), 'shard')} unfinished, every answer received is kept; "
                            "rerun to try them again")
        state_path.unlink(missing_ok=True)  # every shard written: nothing left to poll

    def _adopt(state: dict, save) -> None:
        """Batches recorded by their token only (killed between create and record): find or create."""
        orphans = [b for b in state["batches"] if b.get("id") is None]
        if not orphans:
            return
        known = {}
        for batch in call("listing batches", client.batches.list, limit=100):
            token = (getattr(batch, "metadata", None) or {}).get("distill")
            if token:
                known[token] = batch.id
        for b in orphans:
            b["id"] = known.get(b["token"]) or _create(b)
            save()

    def _create(b: dict) -> str:
        batch = call("creating a batch", client.batches.create, input_file_id=b["file"], endpoint=ENDPOINT,
                     completion_window=endpoint.completion_window, metadata={"distill": b["token"]})
        return batch.id

    def _submit(state: dict, save, lines: list[dict]) -> None:
        data = "".join(json.dumps(x, ensure_ascii=False) + "\n" for x in lines).encode()
        uploaded = call("uploading a batch file", client.files.create,
                        file=("distill-batch.jsonl", data, "application/jsonl"), purpose="batch")
        for x in lines:
            state["tries"][x["custom_id"]] = state["tries"].get(x["custom_id"], 0) + 1
        entry = {"token": secrets.token_hex(8), "file": uploaded.id, "id": None,
                 "requests": [x["custom_id"] for x in lines]}
        state["batches"].append(entry)
        save()  # the token first: a kill before the next save is found again by _adopt
        entry["id"] = _create(entry)
        save()
        console.print(f"  batch {entry['id']}: submitted {len(lines)} requests")

    def _collect(b: dict, batch, journals: dict, plan: dict, state: dict, progress) -> None:
        """Keep every answered line of an ended batch; count the rest for resubmission."""
        answered, failed = set(), set()
        for file_id in (batch.output_file_id, batch.error_file_id):
            if not file_id:
                continue
            text = call("downloading batch results", client.files.content, file_id).text
            for raw in text.splitlines():
                if not raw.strip():
                    continue
                record = json.loads(raw)
                cid = record.get("custom_id")
                if cid not in b["requests"]:
                    continue
                index, j, first = _parse_cid(cid)
                response = record.get("response") or {}
                got = samples_of(response.get("body") or {}, j, first) if response.get("status_code") == 200 else None
                if got is None:
                    failed.add(cid)
                    error = record.get("error") or {}
                    progress.retry(error.get("code") or (f"batch {response.get('status_code')}"
                                                         if response.get("status_code") != 200 else "empty"))
                    continue
                answered.add(cid)
                jr = journals.get(index)
                if jr is None:
                    continue
                for s in got:
                    jr.append(s)
                    progress.sample(s["completion_tokens"] or 0, truncated=s["finish_reason"] == "length")
                progress.paid(got[0]["billed_prompt_tokens"], sum(s["cost"] or 0.0 for s in got))
        for cid in set(b["requests"]) - answered:
            if cid not in failed:
                progress.retry("batch_missing")  # in neither file: asked again all the same
            if state["tries"].get(cid, 0) > endpoint.max_retries:
                progress.error()

    run.journals = True
    run.priced = endpoint.prices is not None
    return run

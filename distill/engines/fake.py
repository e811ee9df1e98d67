"""A deterministic stand-in teacher for unit tests: no model, answers right two times in three.

Never used outside tests; `teacher.engine.delay` (seconds per prompt) makes it slow enough to
kill mid-run.
"""

from __future__ import annotations

import hashlib
import time

from ..config import TeacherCard
from . import GenSettings, Sample


def open_backend(teacher: TeacherCard, settings: GenSettings):
    delay = float(teacher.engine.get("delay", 0.0))

    def shard(prompts: list[dict], progress) -> list[Sample]:
        samples = []
        for j, p in enumerate(prompts):
            time.sleep(delay)
            for k in range(settings.n):
                h = int(hashlib.sha1(f"{settings.seed}/{p['id']}/{k}".encode()).hexdigest(), 16)
                answer = p["answer"] if h % 3 else f"{p['answer']}1"
                text = f"<think>\nLet me work it out: {p['problem']}\n</think>\n\nThe answer is \\boxed{{{answer}}}."
                samples.append(
                    {
                        "prompt_index": j,
                        "sample_idx": k,
                        "completion": text,
                        "finish_reason": "stop",
                        "prompt_tokens": len(p["problem"].split()),
                        "completion_tokens": len(text.split()),
                    }
                )
                progress.sample(len(text.split()))
            progress.prompts_done(1)
        return samples

    def run(work, progress, on_shard) -> None:
        for index, prompts in work:
            on_shard(index, shard(prompts, progress))

    return run

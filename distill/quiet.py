"""Keep the libraries' harmless noise off the terminal, without hiding their real errors.

Installed when the CLI module is imported: vLLM starts its engine in spawned processes that
re-import the main module (hence `distill.cli`) before anything else, so the same filters apply
there. Environment variables carry what must reach processes that import nothing of ours; a
value the user exported wins. Each entry below names the message it silences and why it is
harmless; `tests/test_quiet.py` checks a clean quickstart stage prints none of them.
"""

from __future__ import annotations

import logging
import os
import warnings

# torch's C++ warnings (vLLM's CPU engine: "NUMA binding: Using MEMBIND policy …", which is
# what it should do on one NUMA node); errors still print
ENVIRONMENT = {"TORCH_CPP_LOG_LEVEL": "ERROR"}


class _AdapterConfigNoise(logging.Filter):
    """vLLM parses a tokenizer folder's config.json and logs ERROR twice when it finds none: a
    LoRA adapter's folder (our student) has the tokenizer and no model config, by design."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if not message.startswith("Error parsing config for "):
            return True
        folder = message[len("Error parsing config for "):].split(":", 1)[0]
        return not os.path.exists(os.path.join(folder, "adapter_config.json"))


def install() -> None:
    for key, value in ENVIRONMENT.items():
        os.environ.setdefault(key, value)
    # vLLM logs before it configures its logging (lazily, once an engine starts), so those
    # records reach Python's last-resort handler, which prints every warning bare ("Triton is
    # installed, but doesn't include CPU backend", on every CPU start). A handler of our own at
    # vLLM's level stands in until vLLM installs its own.
    vllm = logging.getLogger("vllm")
    if not vllm.handlers:
        handler = logging.StreamHandler()
        handler.setLevel(os.environ.get("VLLM_LOGGING_LEVEL", "ERROR").upper())
        vllm.addHandler(handler)
    # a logger's own filter survives vLLM's dictConfig (which replaces handlers, not loggers)
    logging.getLogger("vllm.transformers_utils.repo_utils").addFilter(_AdapterConfigNoise())
    # torch deprecates `torch.distributed.reduce_op`; vLLM's Triton dispatcher touches it while
    # scanning modules (FutureWarning, twice per engine start). Nothing of ours uses it.
    warnings.filterwarnings("ignore", message=r"`torch\.distributed\.reduce_op` is deprecated", category=FutureWarning)

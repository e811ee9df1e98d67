"""Library noise stays off the terminal and real errors do not (distill/quiet.py). The real
engine's output is checked in test_vllm.py and test_eval.py: no line of NOISE there."""

from __future__ import annotations

import logging
import subprocess
import sys

from helpers import ROOT

# what a clean CPU quickstart printed before distill/quiet.py, one pattern per message
NOISE = ("Triton is installed, but doesn't include CPU backend", "reduce_op` is deprecated", "NUMA binding",
         "Error parsing config for", "Loading safetensors checkpoint shards")


def _run(code: str) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(ROOT)}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)


def test_vllm_warnings_before_it_configures_logging_stay_quiet_and_errors_print():
    result = _run("import logging, distill.cli\n"
                  "log = logging.getLogger('vllm.triton_utils.importing')\n"
                  "log.warning('Triton is installed, but doesn\\'t include CPU backend. Disabling Triton.')\n"
                  "log.error('a real failure')\n")
    assert result.returncode == 0, result.stderr
    assert "Triton" not in result.stderr and "a real failure" in result.stderr


def test_without_distill_the_same_warning_prints():
    """The check above can fail: Python's last-resort handler prints the warning bare."""
    result = _run("import logging\nlogging.getLogger('vllm.x').warning('Triton is installed')\n")
    assert "Triton is installed" in result.stderr


def test_the_missing_config_error_is_dropped_only_for_an_adapter_folder(tmp_path):
    from distill import quiet

    adapter, model = tmp_path / "student", tmp_path / "model"
    adapter.mkdir(), model.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    check = quiet._AdapterConfigNoise()
    record = lambda folder: logging.LogRecord(  # noqa: E731
        "vllm.transformers_utils.repo_utils", logging.ERROR, __file__, 1,
        "Error parsing config for %s: Unrecognized model in %s.", (folder, folder), None)
    assert not check.filter(record(adapter))
    assert check.filter(record(model))  # a model folder without a config is a real problem


def test_the_reduce_op_warning_is_ignored_and_other_future_warnings_are_not():
    result = _run("import warnings, distill.cli\n"
                  "warnings.warn('`torch.distributed.reduce_op` is deprecated, please use', FutureWarning)\n"
                  "warnings.warn('something else is deprecated', FutureWarning)\n")
    assert "reduce_op" not in result.stderr and "something else is deprecated" in result.stderr

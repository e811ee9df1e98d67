"""Reading YAML safely: a SafeLoader bounded against alias bombs, secrets refused before anything
is written, and one clear line for a file that cannot be read (used by recipes.py for cards and
recipes, and for accelerate configs)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError


MAX_VALUES = 100_000  # values a YAML document may expand to through its aliases


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader that refuses a document whose aliases expand past MAX_VALUES values (a
    "billion laughs" file of a few hundred bytes), or refer to themselves, before building it."""

    def construct_document(self, node):
        sizes: dict[int, int] = {}

        def size(n, path: frozenset) -> int:
            if id(n) in path:
                raise ConfigError("a YAML alias refers to itself")
            if id(n) not in sizes:
                inner = path | {id(n)}
                if isinstance(n, yaml.SequenceNode):
                    total = 1 + sum(size(c, inner) for c in n.value)
                elif isinstance(n, yaml.MappingNode):
                    total = 1 + sum(size(k, inner) + size(v, inner) for k, v in n.value)
                else:
                    total = 1
                if total > MAX_VALUES:
                    raise ConfigError(f"its aliases expand to more than {MAX_VALUES} values")
                sizes[id(n)] = total
            return sizes[id(n)]

        size(node, frozenset())
        return super().construct_document(node)


def parse_yaml(text: str):
    """yaml.safe_load, bounded (see _BoundedLoader); ConfigError says why, without the source."""
    return yaml.load(text, Loader=_BoundedLoader)  # noqa: S506 - a SafeLoader subclass


_SECRET_KEYS = {"api_key", "apikey", "token", "auth_token", "access_token", "api_token", "hub_token", "hf_token",
                "secret", "secret_key", "client_secret", "password", "passwd", "private_key", "bearer"}


def refuse_secrets(data: Any, source: str, path: str = "") -> None:
    """Recipes and cards are copied into the run folder (recipe.resolved.yaml, dataset cards):
    a key in them would be written to disk. Refuse it before anything is, and never repeat it."""
    if isinstance(data, list):
        for i, value in enumerate(data):
            refuse_secrets(value, source, f"{path}.{i}" if path else str(i))
        return
    if not isinstance(data, dict):
        return
    for key, value in data.items():
        name, where = str(key).lower(), f"{path}.{key}" if path else str(key)
        if isinstance(value, str) and value and (name in _SECRET_KEYS or name.endswith(("_api_key", "_secret", "_password"))):
            raise ConfigError(f"{source}: {where} holds a secret, and recipes and cards are written into the run "
                              f"folder; put it in an environment variable and name that with api_key_env")
        if isinstance(value, str) and name.endswith("_env") and not re.fullmatch(r"[A-Z_][A-Z0-9_]{0,63}", value):
            raise ConfigError(f"{source}: {where} must name an environment variable (LIKE_THIS), not hold the "
                              f"key itself (value not shown)")
        refuse_secrets(value, source, where)


def load_yaml(path: Path) -> dict:
    """Read a YAML mapping; a broken file is one clear line."""
    try:
        data = parse_yaml(Path(path).read_text())
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not valid UTF-8 text; save it as UTF-8") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read ({e.strerror})") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}: not valid YAML{at} ({getattr(e, 'problem', e)})") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of keys at the top level")
    return data

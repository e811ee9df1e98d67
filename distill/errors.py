"""Errors that mean the user has something to fix; the CLI prints them as one line."""

import difflib


class UserError(Exception):
    """A mistake in input, data or configuration: shown as one line, no traceback."""

    exit_code = 1


class ConfigError(UserError):
    """A recipe, card or --set problem (unknown key, bad value, missing card)."""

    exit_code = 2


def reason(e: BaseException, limit: int = 160, kind: bool = False) -> str:
    """An exception in a few words for a one-line message: its first line (its type when it has
    no text), with the type in front when `kind`."""
    text = str(e).strip()
    first = text.splitlines()[0][:limit] if text else ""
    if not first:
        return type(e).__name__
    return f"{type(e).__name__}: {first}" if kind else first


def unknown_key_error(key: str, valid: list[str], source: str, section: str) -> ConfigError:
    """The one-line error for an unknown key, naming the nearest valid one."""
    near = difflib.get_close_matches(key, valid, n=1, cutoff=0.5)
    hint = f"did you mean '{near[0]}'?" if near else f"valid keys: {', '.join(valid)}"
    where = f"in {section}" if section else "at the top level"
    return ConfigError(f"{source}: unknown key '{key}' {where} ({hint})")

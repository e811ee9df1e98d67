"""Errors that mean the user has something to fix; the CLI prints them as one line."""


class UserError(Exception):
    """A mistake in input, data or configuration: shown as one line, no traceback."""

    exit_code = 1


class ConfigError(UserError):
    """A recipe, card or --set problem (unknown key, bad value, missing card)."""

    exit_code = 2

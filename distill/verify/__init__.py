"""Verifiers: a registry of plain functions `(row, options) -> Verdict`.

`row` is a trace row plus `reasoning`, `response` and `think` (closed | unclosed | none) from
splitting the completion at `</think>`; `options` is the filter section as a dict. Verifiers
marked `isolated` run in killable worker processes (verify.pool), each call under a hard time
limit, on every core; all the built-in ones are. A verifier registered with `isolated=False`
runs where the row already is, for checks too cheap to be worth shipping a row for: in the
worker that read it (the filter's workers read their rows themselves), or in the process that
holds it (`distill eval`; a filter whose verifiers are all inline runs without workers).
"""

from .registry import VERIFIERS, Verdict, Verifier, applies, register, run  # noqa: F401

# Register the built-in verifiers.
from . import choice as _choice  # noqa: F401
from . import code as _code  # noqa: F401
from . import format as _format  # noqa: F401
from . import language as _language  # noqa: F401
from . import math as _math  # noqa: F401
from . import repetition as _repetition  # noqa: F401

"""User mistakes: reported as one line and a non-zero exit, never as a traceback."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager


class UserError(Exception):
    """Something the user asked for cannot be done; the message says what and what to do instead."""


@contextmanager
def report_user_errors() -> Iterator[None]:
    """Turn a UserError into `error: <message>` on stderr and exit code 2."""
    try:
        yield
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)

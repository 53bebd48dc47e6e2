"""The one error type that a user (or a file from a user) can cause.

Everything in ``core`` that rejects input raises :class:`HGNError` with a
message that says what was wrong and, where it helps, what to do instead.
The studio catches this type, shows the message, and keeps running; any other
exception is a bug.
"""


class HGNError(ValueError):
    """Invalid input: a bad system, setting, or file.

    Subclasses ``ValueError`` so that generic callers that already catch
    ``ValueError`` keep working.
    """


class Cancelled(Exception):
    """Raised inside long work (simulate, fit, roll out, export) when the
    caller's cancel flag was set. Not an error: the caller asked for it."""

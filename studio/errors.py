"""The app-wide path for errors: user errors are messages, bugs are dialogs,
and the studio keeps running either way.

:func:`install` replaces ``sys.excepthook`` (which PySide6 calls for
exceptions escaping slots and event handlers). A :class:`core.errors.HGNError`
goes to the status bar of the main window; anything else opens a dialog with
the traceback and is printed to stderr.
"""
from __future__ import annotations

import sys
import traceback

from core.errors import Cancelled, HGNError

_window = None
_previous = None


def install(window) -> None:
    global _window, _previous
    _window = window
    if _previous is None:
        _previous = sys.excepthook
    sys.excepthook = _hook


def uninstall() -> None:
    global _window, _previous
    _window = None
    if _previous is not None:
        sys.excepthook = _previous
        _previous = None


def _hook(exc_type, exc, tb) -> None:
    if issubclass(exc_type, Cancelled):
        return
    if issubclass(exc_type, HGNError):
        if _window is not None:
            _window.show_error(str(exc))
        else:
            print(f"error: {exc}", file=sys.stderr)
        return
    text = "".join(traceback.format_exception(exc_type, exc, tb))
    print(text, file=sys.stderr)
    if _window is not None:
        _window.show_bug(f"{exc_type.__name__}: {exc}", text)

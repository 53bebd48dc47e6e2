"""The app-wide error path: user errors (HGNError) become a status-bar
message, bugs a non-modal dialog with the traceback; the studio keeps running."""
from __future__ import annotations

import sys

from PySide6.QtWidgets import QMessageBox

from core.errors import Cancelled, HGNError
from studio import errors


def _raise(exc):
    try:
        raise exc
    except Exception as e:  # noqa: BLE001 - we want the triple
        return type(e), e, e.__traceback__


def test_user_errors_go_to_the_status_bar_and_bugs_to_a_dialog(qtbot, window, monkeypatch, capsys):
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)     # restored after the test
    errors.install(window)
    try:
        sys.excepthook(*_raise(HGNError("spacing must be > 0, got -1")))
        assert window.statusLabel.text() == "spacing must be > 0, got -1"
        assert not window.findChildren(QMessageBox)
        sys.excepthook(*_raise(Cancelled()))                   # not an error: nothing shown
        assert window.statusLabel.text() == "spacing must be > 0, got -1"
        sys.excepthook(*_raise(ZeroDivisionError("division by zero")))
        boxes = window.findChildren(QMessageBox)
        assert len(boxes) == 1 and not boxes[0].isModal()
        assert "ZeroDivisionError" in boxes[0].detailedText()
        assert "internal error" in window.statusLabel.text()
        assert "ZeroDivisionError" in capsys.readouterr().err
        assert window.isVisible()                               # still running
    finally:
        errors.uninstall()
    assert sys.excepthook is not errors._hook

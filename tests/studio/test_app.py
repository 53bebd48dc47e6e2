"""``python main.py``'s entry: options, and sub-commands dispatched by name."""
from __future__ import annotations

import pytest

from studio import app


def test_help_lists_options_and_commands(capsys):
    with pytest.raises(SystemExit) as e:
        app.main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "--reset-settings" in out and "--screenshot" in out and "export-video" in out


def test_sub_commands_are_dispatched_by_name(monkeypatch):
    monkeypatch.setitem(app.COMMANDS, "hello", "studio_helpers:fake_command")
    assert app.main(["hello", "x"]) == 7
    assert app.main(["hello"]) == 3


def test_unknown_option_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as e:
        app.main(["--no-such-option"])
    assert e.value.code == 2
    assert "unrecognized arguments" in capsys.readouterr().err

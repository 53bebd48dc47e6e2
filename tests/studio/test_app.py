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


#: after the window's start (studio_helpers._WINDOW_PRELUDE), one Train of a small model on a small lattice
#: through the window (fit, roll-out, the window's drawing); prints the modules the window's process imported
#: after start-up (each import in the GUI thread is a stall on a busy machine)
_TRAIN_IN_WINDOW = """\
before = set(sys.modules)
w.train()
run_until(lambda: len(d.models) == 1 and d.rollout is not None and d.rollout.finished
          and not w.jobs.is_running(), 240)
from studio.pacing import pacer
pacer().flush()
app.processEvents()
print("NEW", sorted(m for m in set(sys.modules) - before if not m.startswith("_")))
w.close()
"""


def test_a_train_imports_nothing_in_the_window_process_after_start_up(tmp_path):
    """Everything the window's process needs for a Train (the settings'
    checks, the model's arrival, the roll-out's drawing) is imported at
    start-up (studio.app.prepare_gui_process); an import in the GUI thread
    during a Train was a stall of 20-80 ms on a busy machine
    (core.physics.reference, imported by the simulation settings' check)."""
    from studio_helpers import run_window_script

    lines = run_window_script(_TRAIN_IN_WINDOW, tmp_path)
    assert [x for x in lines if x.startswith("NEW ")] == ["NEW []"], lines

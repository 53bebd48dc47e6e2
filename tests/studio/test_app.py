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


#: a fresh window process as ``python main.py`` starts it, then one Train of a
#: small model on a small lattice through the window (fit, roll-out, the
#: window's drawing); prints the modules the window's process imported
#: after start-up (each import in the GUI thread is a stall on a busy machine)
_IMPORTS_AFTER_START = """\
import sys, time
sys.path.insert(0, ROOT)
from PySide6.QtWidgets import QApplication
app = QApplication([])
from studio.app import prepare_gui_process
prepare_gui_process()
from studio.gl import ensure_backend
ensure_backend()
from studio.main_window import MainWindow
from studio import workers
w = MainWindow(restore=False)
w.projects.choose = lambda *_a: "discard"
w.show()
def run_until(cond, timeout):
    end = time.perf_counter() + timeout
    while not cond():
        if time.perf_counter() > end:
            raise SystemExit("timed out")
        app.processEvents()
        time.sleep(0.002)
run_until(lambda: w.document.system is not None, 60)
assert workers.warm_up(wait=120.0)
d = w.document
for k, v in dict(steps=40, n_trajectories=3, save_every=4, rollout_steps=100, rollout_save_every=5).items():
    d.set("simulation", k, v)
app.processEvents()
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
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    env = dict(os.environ, HGN_STUDIO_SETTINGS=str(tmp_path / "s.ini"))
    out = subprocess.run([sys.executable, "-c", _IMPORTS_AFTER_START.replace("ROOT", repr(str(root)), 1)],
                         capture_output=True, text=True, timeout=300, cwd=str(root), env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    line = [x for x in out.stdout.splitlines() if x.startswith("NEW ")]
    assert line == ["NEW []"], out.stdout

"""Helpers shared by the studio's GUI tests (driving the real widgets)."""
from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt

#: the repository's root
ROOT = Path(__file__).resolve().parents[2]

#: tiny training settings so one train-and-roll-out takes about a second
TINY_SIM = {"steps": 40, "n_trajectories": 3, "save_every": 4, "rollout_steps": 100,
            "rollout_save_every": 5, "dt": 0.01}
TINY_MODEL = {"node_width": 8, "edge_width": 8, "message_width": 16, "fast_tables": False}


def make_window(qtbot, size=(1280, 820)):
    from studio.gl import ensure_backend

    ensure_backend()
    from studio.main_window import MainWindow

    w = MainWindow()
    w.projects.choose = lambda *_a: "discard"      # closing with unsaved models asks: tests discard
    qtbot.addWidget(w, before_close_func=_stop_jobs)
    if size is not None:
        w.resize(*size)
    w.show()
    qtbot.waitExposed(w)
    qtbot.waitUntil(lambda: w.document.system is not None, timeout=10000)
    return w


def _stop_jobs(w):
    w.jobs.shutdown()


def drop_pacer_pieces():
    """Drop every piece still waiting in the process-wide pacer (studio.pacing.pacer), if there is one:
    what an earlier test's widgets left there would be this test's backlog (a deleted widget's piece is
    skipped one per pacer turn, so a new window's own pieces came later and later as the suite went on)
    or would run on a half-deleted plot in this test's flush()."""
    from studio import pacing

    p = pacing._PACER
    for key in list(p._order) if p is not None else []:
        p.cancel(key)


def build_tiny_lattice(qtbot, w, n=3, m=3):
    """Square n x m lattice through the system panel's widgets."""
    sp = w.systemPanel
    sp.kindCombo.setCurrentIndex(sp.kindCombo.findData("square"))
    form = sp.builderForms["square"]
    form.editors["n"].setValue(n)
    form.editors["m"].setValue(m)
    qtbot.mouseClick(sp.buildButton, Qt.LeftButton)
    assert w.document.system.n == n * m


def set_tiny_training(w, sim=None, model=None):
    """Tiny training settings, written into the document (the forms follow)."""
    d = w.document
    for k, v in {**TINY_SIM, **(sim or {})}.items():
        d.set("simulation", k, v)
    for k, v in {**TINY_MODEL, **(model or {})}.items():
        d.set("model/rfhgn", k, v)


def train_and_wait(qtbot, w, timeout=60000):
    """Train with the current settings and wait until the new model's roll-out has finished and the window
    has done the GUI work it queued in the pacer (studio.pacing): the prediction view's page, the new
    system's camera framing, the plots' last draws. A tiny roll-out can finish before those turns on a busy
    machine (each turn may rest up to pacing.MAX_REST), so the document alone is not what the user sees yet."""
    from studio.pacing import pacer

    d = w.document
    n_before = len(d.models)
    qtbot.mouseClick(w.trainPanel.trainButton, Qt.LeftButton)
    qtbot.waitUntil(lambda: len(d.models) > n_before, timeout=timeout)
    qtbot.waitUntil(lambda: d.rollout is not None and d.rollout.finished and d.rollout.model_name == d.models[-1].name
                    and not w.jobs.is_running(), timeout=timeout)
    qtbot.waitUntil(lambda: len(pacer()) == 0, timeout=timeout)
    return d.models[-1]


def non_background_fraction(img: np.ndarray) -> float:
    """Share of pixels that differ from the most common (background) colour."""
    flat = img.reshape(-1, img.shape[-1]).astype(np.int32)
    key = (flat[:, 0] << 16) | (flat[:, 1] << 8) | flat[:, 2]
    vals, counts = np.unique(key, return_counts=True)
    bg = vals[np.argmax(counts)]
    return float(np.mean(key != bg))


def fake_command(argv):
    """A stand-in sub-command for the dispatch test of studio.app.main."""
    return 7 if argv == ["x"] else 3


#: the start of a script run in a fresh process (``python -c``) as a window's
#: process without widgets: a model (by default a gradient-trained baseline) on a
#: 4-particle chain, trained in a worker through JobRunner with torch kept out of this process;
#: ends with ``system``, ``sim``, ``runner``, ``out`` and the result ``res``
_BASELINE_PRELUDE = """\
import sys
sys.path.insert(0, ROOT)
import numpy as np
from PySide6.QtCore import QCoreApplication
app = QCoreApplication([])
from core.physics.builders import build
from studio import pipeline, workers
from studio.methods import method_by_key
workers.keep_torch_out()
system = build("chain", n=4)
sim = dict(dt=0.01, steps=40, n_trajectories=2, save_every=4, displacement=0.1, momentum=0.1,
           test_fraction=0.25, seed=0)
runner = workers.JobRunner()
out = {}
runner.finished.connect(lambda r: out.__setitem__("r", r))
runner.failed.connect(lambda m, tb: out.__setitem__("err", m + tb))
runner.start("train", pipeline.train_job, system, sim, method_by_key(METHOD), SETTINGS)
assert runner.wait(120000), "train timed out"
assert "err" not in out, out.get("err")
res = out["r"]
"""


#: settings of the small gradient-trained baseline of the prelude
BASELINE_SETTINGS = dict(max_epochs=3, time_budget=0, node_width=8, edge_width=8, message_width=8)


def baseline_in_worker_script(body: str, method: str = "baseline", settings: dict | None = None) -> str:
    """:data:`_BASELINE_PRELUDE` followed by ``body`` (dedented); ``method``
    and ``settings`` choose the model trained in the worker (default: the
    small gradient-trained baseline)."""
    settings = BASELINE_SETTINGS if settings is None and method == "baseline" else (settings or {})
    prelude = (_BASELINE_PRELUDE.replace("ROOT", repr(str(ROOT)), 1).replace("METHOD", repr(method))
               .replace("SETTINGS", repr(settings)))
    return prelude + textwrap.dedent(body)


#: the start of a script run in a fresh process (``python -c``) as ``python main.py`` starts the window's
#: process: the window, its first system, a warm worker and tiny training settings; ends with ``app``,
#: ``w``, ``d`` (the document), ``workers`` and ``run_until(cond, timeout)``
_WINDOW_PRELUDE = """\
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
"""


def run_window_script(body: str, tmp_path, timeout: float = 300, **names) -> list[str]:
    """Run :data:`_WINDOW_PRELUDE` + ``body`` (dedented; each ``NAME`` of ``names`` replaced by the repr of
    its value) in a fresh process with its own settings file; asserts it exits 0 and returns its stdout's
    lines."""
    import os
    import subprocess
    import sys

    script = _WINDOW_PRELUDE.replace("ROOT", repr(str(ROOT)), 1) + textwrap.dedent(body)
    for name, value in names.items():
        script = script.replace(name, repr(value))
    env = dict(os.environ, HGN_STUDIO_SETTINGS=str(tmp_path / "s.ini"))
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=timeout,
                         cwd=str(ROOT), env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout.splitlines()

"""Projects in the running studio: saving and opening restores what the user
saw; bad files change nothing; recent files, drag and drop, autosave and
recovery after a kill; trajectories from other programs imported as ground
truth and fitted on; systems, roll-outs, frames and plots exported."""
from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication
from studio_helpers import (
    build_tiny_lattice,
    non_background_fraction,
    set_tiny_training,
    train_and_wait,
)

from core.files import io, xyz
from core.files.video import probe
from core.physics import builders
from core.physics.initial import initial_state
from core.physics.simulate import simulate

ROOT = Path(__file__).resolve().parents[2]


def controller(window):
    return window.projects


@pytest.fixture
def trained(qtbot, window):
    build_tiny_lattice(qtbot, window, 3, 3)
    set_tiny_training(window)
    train_and_wait(qtbot, window)
    return window


def _state(w):
    s = w.session
    buf = s.rollout
    return {"positions": s.system.positions.copy(), "n_models": len(s.models),
            "rows": [w.modelsPanel.cell(r, "Test MSE") for r in range(w.modelsPanel.table.rowCount())],
            "q_truth": buf.q["truth"][:buf.n_filled].copy(), "q_pred": buf.q["prediction"][:buf.n_filled].copy(),
            "frame": w.time.frame, "layout": w.views.layout_mode, "colour": w.views.colour_mode,
            "azimuth": w.views.truthView.view.camera.azimuth, "drift": w.energyPlot.curve_data("prediction")[1].copy(),
            "steps": w.trainPanel.simForm.values()["steps"], "theta": s.models[0].model.theta.copy()}


def test_save_and_open_restores_what_the_user_saw(qtbot, trained, tmp_path):
    w = trained
    c = controller(w)
    w.views.set_layout("overlay")
    w.views.set_colour_mode("speed")
    w.time.set_frame(7)
    w.views.truthView.view.camera.azimuth = 61.0
    w.modelsPanel.factorSpin.setValue(3)
    before = _state(w)
    path = tmp_path / "demo.hgnproj"
    assert c.save_as(path) and path.exists()
    assert not c.dirty and "demo.hgnproj" in w.windowTitle()

    # the user goes on: another system, other view choices
    build_tiny_lattice(qtbot, w, 4, 4)
    w.views.set_layout("side")
    w.views.set_colour_mode("uniform")
    w.modelsPanel.factorSpin.setValue(5)
    w.trainPanel.simForm.set_values({"steps": 80})
    assert w.session.system.n == 16 and w.session.rollout is None

    assert c.open_path(path)
    after = _state(w)
    assert np.array_equal(after["positions"], before["positions"])
    assert after["n_models"] == 1 and after["rows"] == before["rows"]
    assert np.array_equal(after["q_truth"], before["q_truth"]) and np.array_equal(after["q_pred"], before["q_pred"])
    assert (after["frame"], after["layout"], after["colour"]) == (7, "overlay", "speed")
    assert after["azimuth"] == pytest.approx(61.0)
    assert np.array_equal(after["drift"], before["drift"])
    assert after["steps"] == before["steps"] and w.modelsPanel.factorSpin.value() == 3
    assert np.array_equal(after["theta"], before["theta"])
    assert w.timelineBar.slider.value() == 7
    img = w.views.truthView.render_image()
    assert non_background_fraction(img) > 0.01
    # the restored model is live: roll it out again
    w.rollout_model(0)
    qtbot.waitUntil(lambda: w.session.rollout.finished and not w.rolloutJobs.is_running(), timeout=30000)
    assert w.session.rollout.n_filled == before["q_truth"].shape[0]


@pytest.mark.parametrize("content", ["truncated", "text", "foreign-npz", "newer"])
def test_bad_files_change_nothing(qtbot, trained, tmp_path, content):
    from core import container as fileformat
    w = trained
    c = controller(w)
    good = tmp_path / "good.hgnproj"
    c.save_to(good)
    bad = tmp_path / f"bad-{content}.hgnproj"
    if content == "truncated":
        bad.write_bytes(good.read_bytes()[: good.stat().st_size // 3])
        msg = "truncated"
    elif content == "text":
        bad.write_text("not a project")
        msg = "bad-text.hgnproj"
    elif content == "foreign-npz":
        with open(bad, "wb") as fh:
            np.savez(fh, x=np.arange(3))
        msg = "not an HGN Studio file"
    else:
        header, arrays = fileformat.load_npz(good)
        kind = header.pop("kind")
        header.pop("format"), header.pop("version")
        header["project"]["version"] = 7
        fileformat.save_npz(bad, kind, header, arrays)
        msg = "newer HGN Studio"
    system, models, buf = w.session.system, list(w.session.models), w.session.rollout
    frame = w.time.frame
    assert not c.open_path(bad)
    assert msg in w.statusLabel.text()
    assert w.session.system is system and w.session.models == models and w.session.rollout is buf
    assert w.time.frame == frame and c.path == good


def test_failed_save_keeps_the_previous_file(qtbot, trained, tmp_path, monkeypatch):
    import errno

    from core import container as fileformat
    w = trained
    c = controller(w)
    path = tmp_path / "keep.hgnproj"
    assert c.save_to(path)
    before = path.read_bytes()
    build_tiny_lattice(qtbot, w, 4, 4)
    assert c.dirty

    def full(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(fileformat.os, "replace", full)
    assert not c.save()
    assert "No space left on device" in w.statusLabel.text() and "unchanged" in w.statusLabel.text()
    assert path.read_bytes() == before and c.dirty
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_recent_projects_menu(qtbot, trained, tmp_path):
    w = trained
    c = controller(w)
    paths = [tmp_path / f"p{k}.hgnproj" for k in range(3)]
    for p in paths:
        assert c.save_to(p)
    assert c.recent()[:3] == [str(p.resolve()) for p in reversed(paths)]
    c._fill_recent()
    names = [a.text() for a in c.recentMenu.actions() if a.text()]
    assert names[:3] == ["p2.hgnproj", "p1.hgnproj", "p0.hgnproj"]
    build_tiny_lattice(qtbot, w, 4, 4)
    c.recentMenu.actions()[2].trigger()           # p0
    assert c.path == paths[0] and w.session.system.n == 9
    os.remove(paths[1])
    c._fill_recent()
    assert not [a for a in c.recentMenu.actions() if a.text() == "p1.hgnproj"][0].isEnabled()


def _drop(window, paths):
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    enter = QDragEnterEvent(QPoint(50, 50), Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier)
    QApplication.sendEvent(window, enter)
    accepted = enter.isAccepted()
    drop = QDropEvent(QPointF(50, 50), Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier)
    QApplication.sendEvent(window, drop)
    return accepted


def _trajectory(n=3, frames=11):
    system = builders.square_lattice(n, n, potential_params={"k": 1.3})
    q0, p0 = initial_state(system, 0.1, 0.2, seed=4)
    return simulate(system, q0, p0, 0.01, 5 * (frames - 1), save_every=5)


def test_drag_and_drop_of_trajectories_systems_and_projects(qtbot, window, tmp_path):
    w = window
    c = controller(w)
    tr = _trajectory()
    tpath = io.save_trajectory(tmp_path / "run.npz", tr)
    assert _drop(w, [tpath])
    buf = w.session.rollout
    assert buf is not None and not buf.with_prediction and np.array_equal(buf.q["truth"][:11], tr.q)
    assert len(c.ground_truth) == 1 and c.fitImportedAction.isEnabled()

    spath = io.save_system(tmp_path / "sys.npz", builders.chain(5))
    _drop(w, [spath])
    assert w.session.system.n == 5

    c.save_to(tmp_path / "dropped.hgnproj")
    build_tiny_lattice(qtbot, w, 4, 4)
    _drop(w, [tmp_path / "dropped.hgnproj"])
    assert w.session.system.n == 5 and len(c.ground_truth) == 1

    other = tmp_path / "notes.txt"
    other.write_text("x")
    assert not _drop(w, [other])        # not offered: unknown kinds of file are not accepted


def test_autosave_in_the_background_and_clean_exit_removes_it(qtbot, window):
    from core.files.project import load_project

    c = controller(window)
    assert not c.autosave()                      # nothing changed: nothing written
    build_tiny_lattice(qtbot, window, 4, 3)
    assert c.dirty
    with qtbot.waitSignal(c.autosaved, timeout=20000) as sig:
        assert c.autosave()                      # a background thread writes it
    path = c.autosave_path()
    assert sig.args == [str(path)] and load_project(path).system.n == 12
    window.close()
    assert not path.exists()


_CRASHING_STUDIO = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, {root!r})
    from PySide6.QtWidgets import QApplication
    app = QApplication([])
    from studio.gl import ensure_backend
    ensure_backend()
    from studio.main_window import MainWindow
    w = MainWindow()
    w.show()
    for _ in range(200):
        app.processEvents()
        if w.session.system is not None:
            break
    c = w.projects
    from core.physics import builders
    from studio.commands import set_system
    set_system(w.document, w.undo, builders.triangular_lattice(3, {m}), {{"kind": "triangular"}})
    w.views.set_layout("overlay")
    assert c.dirty and c.autosave(wait=True)
    print(c.autosave_path(), flush=True)
    if {wait}:                          # a live studio: waits until told to crash
        sys.stdin.readline()
    os.kill(os.getpid(), signal.SIGKILL)
""")


def _crashed_studio(isolated_settings, m=5):
    """Run a studio that autosaves a 3 x m lattice and is killed; its autosave."""
    env = dict(os.environ, HGN_STUDIO_SETTINGS=str(isolated_settings))
    r = subprocess.run([sys.executable, "-c", _CRASHING_STUDIO.format(root=str(ROOT), m=m, wait=False)], env=env,
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == -signal.SIGKILL, r.stderr
    left = Path(r.stdout.strip().splitlines()[-1])
    assert left.exists()
    return left


def test_recovery_after_a_kill(qtbot, window, isolated_settings):
    left = _crashed_studio(isolated_settings)
    w = window
    c = controller(w)
    asked = []
    c.recover = lambda path, when, can_restore: asked.append((path, can_restore)) or "restore"
    assert c.recovery_candidates() == [left]
    assert c.offer_recovery()
    assert asked == [(left, True)]
    assert w.session.system.n == 15 and w.views.layout_mode == "overlay"
    # restored: this run's own autosave holds it, the old one is gone
    assert not left.exists() and c.recovery_candidates() == []
    from core.files.project import load_project

    assert load_project(c.autosave_path()).system.n == 15
    assert c.offer_recovery() is False           # nothing more to offer


def test_recovery_does_not_trust_process_ids(qtbot, window, isolated_settings, monkeypatch):
    """A crashed run's autosave is offered even when its old process id now
    belongs to another live process (the system reuses ids): here every
    process id answers as alive."""
    left = _crashed_studio(isolated_settings)
    real_kill = os.kill

    def kill(pid, sig):
        if sig == 0:
            return None                           # "a process with this id exists"
        return real_kill(pid, sig)

    monkeypatch.setattr(os, "kill", kill)
    c = controller(window)
    assert c.recovery_candidates() == [left]


def test_two_crashed_runs_are_both_offered_and_only_the_users_choice_deletes(qtbot, window, isolated_settings):
    first = _crashed_studio(isolated_settings, m=4)
    time.sleep(1.1)                               # distinct modification times (newest first)
    second = _crashed_studio(isolated_settings, m=6)
    c = controller(window)
    assert c.recovery_candidates() == [second, first]
    offered = []
    c.recover = lambda path, when, can_restore: offered.append(path) or "keep"
    assert not c.offer_recovery()
    assert offered == [second, first] and first.exists() and second.exists()     # kept: nothing deleted
    # the next start: restore the newest, discard the other
    choices = iter(["restore", "discard"])
    offered.clear()
    c.recover = lambda path, when, can_restore: offered.append((path, can_restore)) or next(choices)
    assert c.offer_recovery()
    assert offered == [(second, True), (first, False)]
    assert window.session.system.n == 18 and not first.exists() and not second.exists()


def test_a_live_studios_autosave_is_not_offered(qtbot, window, isolated_settings):
    env = dict(os.environ, HGN_STUDIO_SETTINGS=str(isolated_settings))
    live = subprocess.Popen([sys.executable, "-c", _CRASHING_STUDIO.format(root=str(ROOT), m=5, wait=True)],
                            env=env, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        path = Path(live.stdout.readline().strip())
        assert path.exists()
        c = controller(window)
        assert c.recovery_candidates() == []      # its run holds the lock
        live.stdin.write("\n")
        live.stdin.flush()
        assert live.wait(60) == -signal.SIGKILL
        assert c.recovery_candidates() == [path]  # the lock went with the process
    finally:
        if live.poll() is None:
            live.kill()
            live.wait()


def test_import_xyz_fit_and_compare(qtbot, window, tmp_path):
    w = window
    c = controller(w)
    tr = _trajectory(frames=41)
    path = xyz.write_trajectory(tmp_path / "md.xyz", tr)
    assert c.open_path(path)                                  # File > Open of an .xyz imports it
    assert len(c.ground_truth) == 1 and w.session.system.n == 9
    set_tiny_training(w)
    n_before = len(w.session.models)
    assert c.fit_imported()
    qtbot.waitUntil(lambda: len(w.session.models) > n_before, timeout=60000)
    qtbot.waitUntil(lambda: not w.rolloutJobs.is_running(), timeout=60000)
    entry = w.session.models[-1]
    assert "imported" in entry.info["data"] and entry.test_mse < 1e-2
    assert c.compare_imported()
    qtbot.waitUntil(lambda: w.document.rollout.finished and not w.jobs.is_running(), timeout=30000)
    buf = w.session.rollout
    assert buf.with_prediction and buf.n_filled == 41
    assert np.allclose(buf.q["truth"][:41], tr.q, atol=1e-8)         # xyz keeps 8 decimals
    err = np.mean((buf.q["prediction"][:41] - buf.q["truth"][:41]) ** 2, axis=(1, 2))
    assert err[0] == 0 and err[-1] < 1e-3


def test_foreign_xyz_uses_the_current_system(qtbot, window, tmp_path):
    import ase
    import ase.io

    w = window
    c = controller(w)
    build_tiny_lattice(qtbot, w, 3, 3)
    sys_ = w.session.system
    frames = []
    for k in range(4):        # a file from another code: positions and velocities only
        a = ase.Atoms("Ar9", positions=np.c_[sys_.positions + 0.01 * k, np.zeros(9)], pbc=False)
        a.set_velocities(np.full((9, 3), 0.01) * [1, 1, 0])
        a.info["time"] = 0.1 * k
        frames.append(a)
    path = tmp_path / "foreign.xyz"
    ase.io.write(path, frames, format="extxyz")
    assert c.import_trajectory(path)
    tr = c.ground_truth[-1]
    assert tr.system is sys_ and tr.n_frames == 4

    c.ground_truth.clear()
    build_tiny_lattice(qtbot, w, 4, 4)
    assert not c.import_trajectory(path)
    assert "16 particles" in w.statusLabel.text()


def test_exports_for_other_programs(qtbot, trained, tmp_path):
    w = trained
    c = controller(w)
    out = c.export_rollout_xyz(tmp_path / "roll.xyz")
    assert [p.name for p in out] == ["roll_truth.xyz", "roll_prediction.xyz"]
    buf = w.session.rollout
    back = xyz.read_trajectory(out[1])
    assert np.allclose(back.q, buf.q["prediction"][:buf.n_filled], atol=1e-7)
    assert c.export_system_xyz(tmp_path / "sys.xyz")
    assert np.allclose(xyz.read_trajectory(tmp_path / "sys.xyz").q[0], w.session.system.positions, atol=1e-7)

    w.time.set_frame(10)
    assert c.export_frame_png(tmp_path / "frame.png", size=(400, 240))
    import av

    with av.open(str(tmp_path / "frame.png")) as cont:
        img = next(cont.decode(video=0)).to_ndarray(format="rgb24")
    assert img.shape == (240, 400, 3) and non_background_fraction(img) > 0.02

    files = c.export_plots(tmp_path)
    names = sorted(p.name for p in files)
    assert "energyPlot.csv" in names and "energyPlot.png" in names and "errorPlot.csv" in names
    with open(tmp_path / "energyPlot.csv") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["time", "ground truth", "prediction"]
    t, drift = w.energyPlot.curve_data("prediction")
    assert len(rows) == len(t) + 1
    assert np.array_equal(np.array([float(r[2]) for r in rows[1:]]), drift)    # exact (repr)
    assert np.array_equal(np.array([float(r[0]) for r in rows[1:]]), t)


def test_video_dialog_from_the_window(qtbot, trained, tmp_path):
    w = trained
    c = controller(w)
    w.views.set_layout("overlay")
    dlg = c.export_video()
    qtbot.addWidget(dlg)
    assert dlg.layoutCombo.currentData() == "overlay"
    out = tmp_path / "w.mp4"
    dlg.pathEdit.setText(str(out))
    dlg.widthSpin.setValue(256)
    dlg.heightSpin.setValue(144)
    with qtbot.waitSignal(dlg.exported, timeout=60000):
        dlg.start_export()
    info = probe(out)
    assert (info.width, info.height, info.frames) == (256, 144, w.session.rollout.n_filled)
    assert c.last_export["width"] == 256
    dlg.close()

"""Drive the running studio and save screenshots of it in use.

Run under a virtual X server (the views need OpenGL)::

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python -m studio.screenshots [OUT_DIR]
    xvfb-run -a -s "-screen 0 1366x768x24" .venv/bin/python -m studio.screenshots --small [OUT_DIR]

It opens the real main window with settings in a temporary file, shows it
empty (no model yet), trains the default lattice (the status bar's progress
while the System tab is shown), scrubs the timeline, shows the overlay and a
zero-shot roll-out, draws a small system, a Lennard-Jones system, a drawn
spline potential on the V(r) plot and the ground truth's error against the
DOP853 reference after a roll-out on it, and grabs the window
(``QWidget.grab``) into ``assets/screenshots/*.png`` (or OUT_DIR). Pictures
are checked to be neither black nor empty before they are written.

``--spline`` makes only the drawn-potential and reference-check pictures;
``--port`` only the damped, driven lattice after training (its damping and
driving form, the energy-balance plot and the identified coefficients).
``--adapt`` only few-shot adaptation (issue 14): a model trained on the
harmonic lattice, the Adapt dialog over the same lattice with the FPU-beta
potential, the adapted model in the table with its lineage, and the
"Adapt" page (adapt vs scratch: test error against k, log-log).
``--sweep`` only the Sweep dock (issue 15): a 12-point grid on a 4x4 lattice while its table fills, then
the Pareto plot coloured by the sampler and a picked point made a model.
``--small`` shows what a first-time user meets on a 1366x768 screen, grabbed
from the whole screen so that dialogs and tooltips are in the picture: the
quick start, the question when quitting with unsaved models, and zero-shot
disabled with its reason for a model fitted on a drawn system.
"""
from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def _wait(app, cond, timeout=120.0, step=0.02) -> bool:
    end = time.perf_counter() + timeout
    while time.perf_counter() < end:
        app.processEvents()
        if cond():
            return True
        time.sleep(step)
    return False


def _pump(app, seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        app.processEvents()
        time.sleep(0.01)


def _save(window, path: Path) -> None:
    from studio.pacing import pacer

    pacer().flush()                 # plots and views drawn as they are now
    img = window.grab().toImage()
    arr = np.asarray(img.constBits()).reshape(img.height(), img.bytesPerLine())[:, :img.width() * 4]
    rgb = arr.reshape(img.height(), img.width(), 4)[..., :3]
    if rgb.std() < 3 or rgb.mean() < 5:
        raise SystemExit(f"{path.name}: the window rendered black or empty")
    img.save(str(path))
    print(f"saved {path} ({img.width()}x{img.height()})")


def _save_screen(app, path: Path) -> None:
    """The whole screen (dialogs and tooltips included), checked like :func:`_save`."""
    _pump(app, 0.6)
    img = app.primaryScreen().grabWindow(0).toImage()
    arr = np.asarray(img.constBits()).reshape(img.height(), img.bytesPerLine())[:, :img.width() * 4]
    if arr.std() < 3:
        raise SystemExit(f"{path.name}: the screen rendered black or empty")
    img.save(str(path))
    print(f"saved {path} ({img.width()}x{img.height()})")


def _save_window_area(app, window, path: Path) -> None:
    """The screen where ``window`` is (dialogs over it included), checked like :func:`_save`."""
    _pump(app, 0.6)
    g = window.frameGeometry()
    img = app.primaryScreen().grabWindow(0, g.x(), g.y(), g.width(), g.height()).toImage()
    arr = np.asarray(img.constBits()).reshape(img.height(), img.bytesPerLine())[:, :img.width() * 4]
    if arr.std() < 3:
        raise SystemExit(f"{path.name}: the screen rendered black or empty")
    img.save(str(path))
    print(f"saved {path} ({img.width()}x{img.height()})")


def _draw_triangle(app, panel) -> None:
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    c = panel.canvas
    panel.snapCheck.setChecked(False)
    screen = [c.to_screen(np.array(p, float)).toPoint() for p in [(0, 0), (1, 0), (0.5, 0.866)]]
    for s in screen:
        QTest.mouseClick(c, Qt.LeftButton, Qt.NoModifier, s)
    for a, b in [(0, 1), (1, 2), (0, 2)]:
        QTest.mousePress(c, Qt.LeftButton, Qt.NoModifier, screen[a])
        QTest.mouseMove(c, screen[b])
        QTest.mouseRelease(c, Qt.LeftButton, Qt.NoModifier, screen[b])
    _pump(app, 0.2)


def first_time(app, w, out: Path) -> None:
    """The first-time user's states (run on a 1366x768 screen)."""
    from PySide6.QtCore import QPoint
    from PySide6.QtWidgets import QMessageBox, QToolTip

    d = w.document
    box = w.quick_start()
    _save_screen(app, out / "studio-quick-start-1366.png")
    box.close()
    w.train()
    _wait(app, lambda: d.models and d.rollout is not None and d.rollout.finished and not w.jobs.is_running(), 600)
    asked = []
    w.projects.choose = lambda title, text: (asked.append(text), "cancel")[1]
    w.close()                       # asks, and Cancel keeps the window
    if not asked or not w.isVisible():
        raise SystemExit("quitting with an unsaved model did not ask")
    q = QMessageBox(QMessageBox.Warning, "Unsaved models", asked[0],
                    QMessageBox.Save | QMessageBox.Discard | QMessageBox.Cancel, w)
    q.setModal(False)
    q.show()                        # the question as the user sees it, without blocking the script
    _save_screen(app, out / "studio-unsaved-quit-1366.png")
    q.close()
    w.leftTabs.setCurrentIndex(1)
    _draw_triangle(app, w.drawingPanel)
    w.drawingPanel.use()
    w.train()
    _wait(app, lambda: len(d.models) == 2 and d.rollout is not None and d.rollout.finished
          and not w.jobs.is_running(), 600)
    zb = w.modelsPanel.zeroShotButton
    if zb.isEnabled():
        raise SystemExit("zero-shot is enabled for a model fitted on a drawn system")
    QToolTip.showText(zb.mapToGlobal(QPoint(10, 10)), zb.toolTip(), zb)
    _save_screen(app, out / "studio-zero-shot-disabled-1366.png")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    small = "--small" in argv
    # one step of the full run alone (the first of these given, in this order)
    steps = {"--spline": spline_and_reference,  # the drawn potential and the reference check (6.)
             "--port": damped_driven,           # the damped, driven lattice (7.)
             "--adapt": adaptation,             # few-shot adaptation (8.)
             "--sweep": sweep}                  # the Sweep dock (9.)
    only = next((step for flag, step in steps.items() if flag in argv), None)
    argv = [a for a in argv if a != "--small" and a not in steps]
    out = Path(argv[0]) if argv else ROOT / "assets" / "screenshots"
    out.mkdir(parents=True, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="hgn-shots-")
    os.environ["HGN_STUDIO_SETTINGS"] = str(Path(tmp) / "settings.ini")

    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QApplication

    from .gl import ensure_backend
    from .style import apply_style

    app = QApplication.instance() or QApplication(sys.argv[:1])
    ensure_backend()
    apply_style(app)
    from .main_window import MainWindow

    w = MainWindow()          # first-run layout: settings live in a temporary file
    w.projects.choose = lambda *_a: "discard"    # the script quits without asking
    w.show()
    d = w.document
    _wait(app, lambda: d.system is not None, 30)
    _pump(app, 0.5)
    if small:
        first_time(app, w, out)
        w.projects.choose = lambda *_a: "discard"
        w.close()
        return 0
    if only is not None:
        only(app, w, out)
        w.close()
        return 0
    _save(w, out / "studio-start.png")

    # 1. train the default lattice (progress in the status bar) and watch the roll-out
    w.leftTabs.setCurrentIndex(0)
    w.train()
    _wait(app, lambda: w.jobStatus.isVisible() and w.jobStatus.bar.value() > 200, 60)
    _save(w, out / "studio-training.png")
    _wait(app, lambda: d.models and d.rollout is not None and d.rollout.finished and not w.jobs.is_running(), 600)
    w.leftTabs.setCurrentIndex(2)
    w.views.set_colour_mode("error")
    w.time.set_frame(int(0.6 * (w.time.filled - 1)))
    _pump(app, 0.8)
    _save(w, out / "studio-train-rollout.png")

    # 2. overlay view, coloured by particle energy, later in time
    w.views.set_layout("overlay")
    w.views.set_colour_mode("energy")
    w.time.set_frame(w.time.filled - 1)
    _pump(app, 0.8)
    _save(w, out / "studio-overlay-energy.png")
    w.views.set_layout("side")

    # 3. zero-shot: the same lattice 4x larger per axis, no refit
    w.modelsPanel.factorSpin.setValue(4)
    w.modelsPanel.stepsSpin.setValue(600)
    w.modelsPanel.saveEverySpin.setValue(10)
    w.leftTabs.setCurrentIndex(0)
    w.modelsPanel.zeroShotButton.click()
    _wait(app, lambda: d.rollout is not None and d.rollout.zero_shot and d.rollout.finished, 600)
    w.views.set_colour_mode("speed")
    w.time.set_frame(w.time.filled - 1)
    _pump(app, 0.8)
    _save(w, out / "studio-zero-shot.png")

    # 4. draw a small system by mouse
    w.leftTabs.setCurrentIndex(1)
    _pump(app, 0.3)
    c = w.drawingPanel.canvas
    w.drawingPanel.snapCheck.setChecked(False)        # a triangle is off the square grid
    pts = [(0, 0), (1, 0), (2, 0), (0.5, 0.866), (1.5, 0.866), (1, 1.732)]
    screen = [c.to_screen(np.array(p, float)).toPoint() for p in pts]
    for s in screen:
        QTest.mouseClick(c, Qt.LeftButton, Qt.NoModifier, s)
    for a, b in [(0, 1), (1, 2), (0, 3), (1, 3), (1, 4), (2, 4), (3, 4), (3, 5), (4, 5)]:
        QTest.mousePress(c, Qt.LeftButton, Qt.NoModifier, screen[a])
        QTest.mouseMove(c, screen[b])
        QTest.mouseRelease(c, Qt.LeftButton, Qt.NoModifier, screen[b])
    w.drawingPanel.set_mode("select")
    QTest.mouseClick(c, Qt.LeftButton, Qt.NoModifier, screen[5])
    w.drawingPanel.massSpin.setValue(3.0)
    w.drawingPanel.apply_mass()
    w.drawingPanel.layersSpin.setValue(3)
    w.drawingPanel.layerSpacing.setValue(0.9)
    w.drawingPanel.use()
    w.views.settle_camera()
    w.views.truthView.view.camera.elevation = 30.0
    w.views.truthView.view.camera.azimuth = 40.0
    _pump(app, 0.8)
    _save(w, out / "studio-drawing.png")

    # 5. a molecular Lennard-Jones system and its V(r)
    w.leftTabs.setCurrentIndex(0)
    w.systemPanel.set_kind("molecular")
    w.systemPanel.build()
    _pump(app, 0.8)
    _save(w, out / "studio-molecular-lj.png")

    # 6. a drawn spline potential on a chain, then its ground truth against the reference
    spline_and_reference(app, w, out)

    # 7. a damped lattice driven on one edge: the energy balance and the identified coefficients
    damped_driven(app, w, out)

    # 8. few-shot adaptation: the Adapt dialog, the adapted model's lineage, adapt vs scratch
    adaptation(app, w, out)

    # 9. a sweep: the grid run in the background, its table and Pareto plot, a point made a model
    sweep(app, w, out)
    w.close()
    return 0


def _square_lattice(w, n: int, m: int):
    """Build an undamped, undriven harmonic n x m square lattice through the System tab; its panel."""
    sp = w.systemPanel
    w.leftTabs.setCurrentIndex(0)
    sp.set_kind("square")
    sp.set_potential_kind("harmonic")
    form = sp.builderForms["square"]
    form.editors["n"].setValue(n)
    form.editors["m"].setValue(m)
    pf = sp.portForm
    for name, text in (("damping", "0"), ("drive_nodes", "")):
        pf.editors[name].setText(text)
        pf.editors[name].editingFinished.emit()
    sp.build()
    return sp


def sweep(app, w, out: Path) -> None:
    """The Sweep dock (issue 15) on a 4x4 harmonic square lattice: a 12-point grid (node widths 8/16/32,
    regularisation 1e-12/1e-8, samplers SWIM/ELM) run in the background -- grabbed while the table fills --
    then the Pareto plot coloured by the sampler, a front point picked and made a model."""
    from PySide6.QtCore import Qt

    d = w.document
    _square_lattice(w, 4, 4)
    for k, val in {"rollout_steps": 1000, "rollout_save_every": 10, "dt": 0.01, "integrator": "verlet"}.items():
        d.set("simulation", k, val)
    w.show_sweep()
    w.resizeDocks([w.sweepDock], [430], Qt.Vertical)
    p = w.sweepPanel
    p.fill_from_document()
    p.set_texts(node_width="8, 16, 32", regularisation="1e-12, 1e-8", sampler="swim, elm", seed="0")
    folder = Path(tempfile.mkdtemp(prefix="hgn-sweep-"))
    p.outEdit.setText(str(folder / "sweep.json"))
    p.set_colour_by("sampler")
    if not p.run():
        raise SystemExit("the sweep did not start")
    if not _wait(app, lambda: d.sweep is not None and len(d.sweep["records"]) >= 5, 600):
        raise SystemExit("the sweep's first points did not arrive")
    _pump(app, 0.5)
    _save(w, out / "studio-sweep-running.png")
    if not _wait(app, lambda: not w.jobs.is_running(), 900):
        raise SystemExit("the sweep did not finish")
    front = p.front_keys()
    if len(d.sweep["records"]) != 12 or not front:
        raise SystemExit("the sweep has not 12 points or no Pareto front")
    p.pick(front[len(front) // 2])
    n = len(d.models)
    p.make_model()
    if not _wait(app, lambda: len(d.models) > n and d.rollout is not None and d.rollout.finished
                 and not w.jobs.is_running(), 600):
        raise SystemExit("Make model did not finish")
    w.show_sweep()
    _pump(app, 0.8)
    _save(w, out / "studio-sweep.png")


def adaptation(app, w, out: Path) -> None:
    """A model trained on a 4x4 harmonic square lattice adapted, with 10 snapshots, to the same lattice with
    the FPU-beta potential: the Adapt dialog (whole screen), then the models table with the adapted model's
    lineage and the "Adapt" page (adapt vs scratch) of the selected source model."""
    d = w.document
    sp = _square_lattice(w, 4, 4)
    for k, val in {"rollout_steps": 2000, "rollout_save_every": 10, "dt": 0.01, "integrator": "verlet"}.items():
        d.set("simulation", k, val)
    n_models = len(d.models)
    w.train()
    if not _wait(app, lambda: len(d.models) > n_models and d.rollout is not None and d.rollout.finished
                 and d.rollout.model_name == d.models[-1].name and not w.jobs.is_running(), 600):
        raise SystemExit("training the source model did not finish")
    source = len(d.models) - 1
    sp.set_potential_kind("anharmonic")
    sp.build()
    _pump(app, 0.5)
    dlg = w.adapt_model(source)
    if dlg is None:
        raise SystemExit("the Adapt dialog did not open")
    dlg.kSpin.setValue(10)
    _pump(app, 0.3)
    _save_window_area(app, w, out / "studio-adapt-dialog.png")
    dlg.okButton.click()
    if not _wait(app, lambda: len(d.models) > source + 1 and d.rollout is not None and d.rollout.finished
                 and d.rollout.model_name == d.models[-1].name and not w.jobs.is_running(), 600):
        raise SystemExit("the adaptation did not finish")
    if "lineage" not in d.models[-1].info:
        raise SystemExit("the adapted model has no lineage")
    w.time.set_frame(int(0.6 * (w.time.filled - 1)))
    _pump(app, 0.8)
    _save(w, out / "studio-adapt-model.png")
    adapted = len(d.models) - 1
    w.compare_adapt(source)
    if not _wait(app, lambda: d.adapt_curve is not None and not w.jobs.is_running(), 600):
        raise SystemExit("adapt vs scratch did not finish")
    d.set_current(adapted)
    _wait(app, lambda: d.rollout is not None and d.rollout.finished and not w.jobs.is_running(), 600)
    # the plots a little taller and the page wider, as a user would drag them to read it
    from PySide6.QtCore import Qt

    w.resizeDocks([w.plotsDock], [340], Qt.Vertical)
    splitter = w.plotsDock.widget()
    total = sum(splitter.sizes())
    splitter.setSizes([3 * total // 10, 3 * total // 10, total - 6 * (total // 10)])
    _pump(app, 0.3)
    w.plotTabs.setCurrentWidget(w.adaptPanel)
    w.time.set_frame(int(0.6 * (w.time.filled - 1)))
    _pump(app, 0.8)
    if w.adaptPanel.plot.is_empty():
        raise SystemExit("the adapt-vs-scratch page has no lines")
    _save(w, out / "studio-adapt-vs-scratch.png")


def _scroll_to(widget) -> None:
    """Scroll the panel's QScrollArea so that ``widget`` is in sight."""
    from PySide6.QtWidgets import QScrollArea

    scroll = widget.parentWidget()
    while scroll is not None and not isinstance(scroll, QScrollArea):
        scroll = scroll.parentWidget()
    if scroll is not None:
        bottom = widget.mapTo(scroll.widget(), widget.rect().bottomLeft()).y() + 12
        bar = scroll.verticalScrollBar()
        bar.setValue(min(bar.maximum(), max(0, bottom - scroll.viewport().height())))


def damped_driven(app, w, out: Path) -> None:
    """A 6x6 square lattice, damped (gamma 0.05) and driven on its left edge, trained: the System tab's
    damping and driving form, the energy-balance plot and the identified damping in the models table."""
    d = w.document
    sp = _square_lattice(w, 6, 6)
    pf = sp.portForm
    x = d.system.positions[:, 0]
    left = np.flatnonzero(np.abs(x - x.min()) < 1e-9)
    for name, text in (("damping", "0.05"), ("drive_nodes", ", ".join(map(str, left))), ("drive_amplitude", "0.1"),
                       ("drive_frequency", "1.3"), ("drive_direction", "1, 0")):
        pf.editors[name].setText(text)
        pf.editors[name].editingFinished.emit()
    sp.build()
    if d.system.port is None:
        raise SystemExit("Build did not give the system its damping and driving")
    for k, val in {"rollout_steps": 3000, "rollout_save_every": 10, "dt": 0.01, "integrator": "verlet"}.items():
        d.set("simulation", k, val)
    n_models = len(d.models)
    w.train()
    _wait(app, lambda: len(d.models) > n_models and d.rollout is not None and d.rollout.finished
          and d.rollout.model_name == d.models[-1].name and not w.jobs.is_running(), 600)
    if "port" not in (d.models[-1].model.info or {}):
        raise SystemExit("the model of the damped, driven lattice identified no damping")
    _pump(app, 0.5)
    if w.plotTabs.currentWidget() is not w.balancePlot or w.balancePlot.is_empty():
        raise SystemExit("the energy-balance plot is not shown or has no data")
    w.time.set_frame(int(0.7 * (w.time.filled - 1)))
    _scroll_to(sp.portForm)
    _pump(app, 0.8)
    _save(w, out / "studio-port-balance.png")


def spline_and_reference(app, w, out: Path) -> None:
    """The V(r) editor with a drawn potential (a point selected), then a
    Verlet ground truth on it checked against DOP853 (the plot page)."""
    d = w.document
    sp = w.systemPanel
    w.leftTabs.setCurrentIndex(0)
    sp.set_kind("chain")
    sp.builderForms["chain"].editors["n"].setValue(6)
    sp.set_potential_kind("harmonic")
    sp.set_potential_kind("spline")
    ed = sp.splineEditor
    r, v = ed.points()
    ed.move_point(1, r[1], v[1] + 0.1)               # a steeper inner wall
    ed.move_point(3, r[3], -0.01)                    # a broad, flat-bottomed well (minimum near r = 1.1)
    mid = 0.5 * (r[4] + r[5])
    ed.add_point(mid, float(ed.potential().energy(np.array([mid]))[0]) + 0.01)
    ed.select(3)
    sp.slopeRight.setValue(0.2)
    sp.build()
    _pump(app, 0.3)
    from PySide6.QtWidgets import QScrollArea

    scroll = sp.parentWidget()
    while scroll is not None and not isinstance(scroll, QScrollArea):
        scroll = scroll.parentWidget()
    if scroll is not None:      # the V(r) plot in sight, not below the fold (ensureWidgetVisible asks a
        plot = sp.potentialPlot  # QGraphicsView for its input-method rectangle and does not scroll)
        bottom = plot.mapTo(scroll.widget(), plot.rect().bottomLeft()).y() + 12
        bar = scroll.verticalScrollBar()
        bar.setValue(min(bar.maximum(), max(0, bottom - scroll.viewport().height())))
    _pump(app, 0.8)
    _save(w, out / "studio-spline-editor.png")

    for k, val in {"rollout_steps": 3000, "rollout_save_every": 10, "dt": 0.01, "integrator": "verlet"}.items():
        d.set("simulation", k, val)
    w.train()
    _wait(app, lambda: d.rollout is not None and d.rollout.finished and d.rollout.model_name == d.models[-1].name
          and not w.jobs.is_running(), 600)
    w.referencePanel.checkButton.click()
    if not _wait(app, lambda: d.reference_check is not None and not w.jobs.is_running(), 600):
        raise SystemExit("the reference check did not finish")
    w.plotTabs.setCurrentWidget(w.referencePanel)
    w.time.set_frame(int(0.7 * (w.time.filled - 1)))
    _pump(app, 0.8)
    _save(w, out / "studio-reference-error.png")


if __name__ == "__main__":
    sys.exit(main())

"""GUI work spread over event-loop turns (studio.pacing) and what uses it:
plots that draw a streaming roll-out one per turn with held ranges and end
auto-ranged as before, views whose shaders are compiled before the first
prediction, a time line that repaints without re-laying out the bar."""
from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QEvent, QObject
from PySide6.QtWidgets import QApplication, QWidget
from studio_helpers import non_background_fraction


# ---------------------------------------------------------------------------
# the pacer
# ---------------------------------------------------------------------------
def test_the_latest_piece_of_a_key_wins_and_keeps_its_place(qtbot):
    from studio.pacing import Pacer

    p = Pacer()
    ran = []
    p.later("a", lambda: ran.append("a1"))
    p.later("b", lambda: ran.append("b"))
    p.later("a", lambda: ran.append("a2"))        # replaces a1, stays first
    assert len(p) == 2 and p.pending("a")
    qtbot.waitUntil(lambda: len(ran) == 2, timeout=2000)
    assert ran == ["a2", "b"] and len(p) == 0


def test_one_piece_per_event_loop_turn_with_a_gap(qtbot):
    """A piece and the paint it causes are a batch of their own: the next
    piece runs only after the event loop has handled what was posted."""
    from PySide6.QtCore import QCoreApplication

    from studio.pacing import Pacer

    p = Pacer(gap_ms=30)
    ran, posted = [], []

    class Receiver(QObject):
        def event(self, ev):  # noqa: N802
            if ev.type() == QEvent.User:
                posted.append(len(ran))
                return True
            return super().event(ev)

    r = Receiver()

    def piece(k):
        ran.append(k)
        QCoreApplication.postEvent(r, QEvent(QEvent.User))    # like the repaint a piece causes

    for k in range(3):
        p.later(k, lambda k=k: piece(k))
    qtbot.waitUntil(lambda: len(ran) == 1, timeout=2000)
    qtbot.wait(10)
    assert ran == [0] and posted == [1]          # its posted event handled, the next piece not yet run
    qtbot.waitUntil(lambda: len(ran) == 3 and len(posted) == 3, timeout=2000)
    assert posted == [1, 2, 3]                   # each piece's event before the next piece


def test_a_piece_short_of_cpu_is_followed_by_a_rest_in_proportion(qtbot):
    """On a busy machine the pacer's pieces take at most DUTY of the wall
    time: after a piece of d seconds during which the process got little CPU
    (here: it sleeps, as a GUI thread waiting for a CPU does) the next one
    waits d * (1 / duty - 1), so the window's drawing slows down instead of
    piling up CPU work."""
    import time

    from studio.pacing import Pacer

    p = Pacer(gap_ms=1, duty=0.25)
    times = []

    def piece(k, wait):
        t0 = time.perf_counter()
        time.sleep(wait)
        times.append((k, t0, time.perf_counter()))

    p.later(0, lambda: piece(0, 0.03))
    p.later(1, lambda: piece(1, 0.0))
    qtbot.waitUntil(lambda: len(times) == 2, timeout=5000)
    (_, a0, a1), (_, b0, _b1) = times
    assert b0 - a1 >= 0.95 * 3 * (a1 - a0), (b0 - a1, a1 - a0)     # rest = 3 x the piece at duty 1/4


def test_the_rest_rule():
    from studio.pacing import BUSY_CPU, MAX_REST, rest_after

    assert rest_after(0.02, 0.02, 0.25) == 0.0                  # it had its CPU: an idle machine, no rest
    assert rest_after(0.02, 0.03, 0.25) == 0.0                  # more than a CPU (renderer threads)
    assert rest_after(0.02, 0.005, 0.25) == pytest.approx(0.06)  # a quarter of a CPU: 3 x 20 ms
    assert rest_after(0.02, 0.99 * BUSY_CPU * 0.02, 0.5) == pytest.approx(0.02)
    assert rest_after(0.02, 0.0, 1.0) == 0.0                    # duty 1: no limit
    assert rest_after(0.001, 0.0, 0.25) == 0.0                  # a tiny piece
    assert rest_after(2.0, 0.0, 0.25) == MAX_REST


def test_the_pacer_duty_setting(monkeypatch):
    from studio.pacing import DUTY, Pacer, pacer_duty

    monkeypatch.delenv("HGN_STUDIO_PACER_DUTY", raising=False)
    assert pacer_duty() == DUTY and 0 < DUTY < 1 and Pacer().duty == DUTY
    for raw, want in [("0.5", 0.5), ("1", 1.0), ("0", DUTY), ("2", DUTY), ("x", DUTY)]:
        monkeypatch.setenv("HGN_STUDIO_PACER_DUTY", raw)
        assert pacer_duty() == want, raw


def test_the_next_piece_waits_for_the_paint_a_piece_caused(qtbot):
    """A piece's paint comes as a chain of posted events (a graphics scene's
    update, then the window's low-priority repaint request): the whole chain
    is handled before the next piece, even when the process was held up for
    longer than the gap (a busy machine): Qt handles posted events before
    timers that became due meanwhile."""
    import time

    from PySide6.QtCore import QCoreApplication, Qt

    from studio.pacing import Pacer

    p = Pacer(gap_ms=1)
    log = []
    SCENE, PAINT = QEvent.Type(QEvent.registerEventType()), QEvent.Type(QEvent.registerEventType())

    class Receiver(QObject):
        def event(self, ev):  # noqa: N802
            if ev.type() == SCENE:          # like QGraphicsScene's queued update: asks for the repaint
                log.append("scene")
                QCoreApplication.postEvent(self, QEvent(PAINT), Qt.LowEventPriority.value)
                return True
            if ev.type() == PAINT:
                log.append("paint")
                return True
            return super().event(ev)

    r = Receiver()

    def piece(k):
        log.append(k)
        QCoreApplication.postEvent(r, QEvent(SCENE))
        time.sleep(0.005)                   # held up for longer than the gap

    for k in range(3):
        p.later(k, lambda k=k: piece(k))
    qtbot.waitUntil(lambda: log.count("paint") == 3, timeout=2000)
    assert log == [0, "scene", "paint", 1, "scene", "paint", 2, "scene", "paint"]


def test_flush_runs_everything_and_a_deleted_widget_is_skipped(qtbot):
    from studio.pacing import Pacer

    p = Pacer()
    ran = []
    w = QWidget()
    p.later(w, lambda: ran.append("widget"))
    p.later("x", lambda: (ran.append("x"), p.later("y", lambda: ran.append("y"))))
    w.deleteLater()
    QApplication.sendPostedEvents(None, QEvent.DeferredDelete)
    p.flush()
    assert ran == ["x", "y"] and len(p) == 0


# ---------------------------------------------------------------------------
# plots while a roll-out streams in
# ---------------------------------------------------------------------------
def _plot(qtbot, make):
    p = make()
    p.resize(420, 240)
    qtbot.addWidget(p)
    p.show()
    qtbot.waitExposed(p)
    return p


@pytest.mark.parametrize("log_y", [False, True])
def test_a_streaming_plot_draws_the_latest_data_holds_its_range_and_ends_auto_ranged(qtbot, log_y):

    from studio.pacing import pacer
    from studio.widgets.plots import energy_plot, error_plot

    make = error_plot if log_y else energy_plot
    name = "position MSE" if log_y else "ground truth"
    p = _plot(qtbot, make)
    pi = p.getPlotItem()
    t = np.linspace(0.0, 10.0, 201)
    y = 1e-6 * np.exp(t) if log_y else 1e-4 * np.sin(t) * t

    p.begin_stream((0.0, 10.0))
    for n in (20, 40, 41):                       # chunks faster than the plot draws: the latest wins
        p.set_curve(name, t[:n], y[:n])
    assert np.array_equal(p.curve_data(name)[0], t[:41])          # the data are there at once
    assert p.drawing_pending
    pacer().flush()
    x_drawn, _ = p.curves[name].getData()
    assert len(x_drawn) == 41 and not p.drawing_pending
    assert pi.vb.state["autoRange"][1] is False                   # the y range is held while streaming
    x0, x1 = pi.viewRange()[0]
    assert x0 < 0.0 + 1e-9 and x1 > 10.0 - 1e-9                  # the whole planned span
    held = list(pi.viewRange()[1])
    lo, hi = p._y_bounds()
    assert held[0] < lo and held[1] > hi                          # with headroom
    p.set_curve(name, t[:43], y[:43])                             # still inside: the range stays
    pacer().flush()
    if p._y_bounds()[1] <= held[1]:
        assert pi.viewRange()[1] == held
    p.set_curve(name, t, y)                                       # leaves it: the range grows
    pacer().flush()
    grown = pi.viewRange()[1]
    assert grown[0] <= held[0] and grown[1] > held[1] and grown[1] >= p._y_bounds()[1]

    p.end_stream()
    pacer().flush()
    assert pi.vb.state["autoRange"][1] is not False and not p.streaming
    qtbot.wait(50)
    # the final picture: the range of a plot given the whole data without streaming
    q = _plot(qtbot, make)
    q.set_time_span(0.0, 10.0)
    q.set_curve(name, t, y)
    qtbot.waitUntil(lambda: not q.drawing_pending, timeout=5000)    # drawn in its pacer turn
    qtbot.wait(50)
    assert np.allclose(pi.viewRange(), q.getPlotItem().viewRange(), rtol=1e-9, atol=0)


def test_a_new_system_clears_a_streaming_plot_at_once(qtbot):
    from studio.pacing import pacer
    from studio.widgets.plots import energy_plot

    p = _plot(qtbot, energy_plot)
    p.begin_stream((0.0, 1.0))
    p.set_curve("ground truth", np.linspace(0, 1, 5), np.arange(5.0))
    p.clear_curves()
    assert not p.drawing_pending and not p.streaming and p.showing_empty_text
    pacer().flush()
    assert len(p.curves["ground truth"].getData()[0] or []) == 0


def test_the_plots_of_a_trained_model_end_as_the_roll_out_says(qtbot, window):
    """After Train, every plot holds and draws the whole roll-out, auto-ranged."""
    from studio_helpers import build_tiny_lattice, set_tiny_training, train_and_wait

    from studio.pacing import pacer

    w = window
    build_tiny_lattice(qtbot, w, 3, 3)
    set_tiny_training(w)
    train_and_wait(qtbot, w)
    buf = w.session.rollout
    qtbot.waitUntil(lambda: not any(p.drawing_pending for p in w.plots), timeout=5000)
    for p in w.plots:
        assert not p.streaming and p.getPlotItem().vb.state["autoRange"][1] is not False
        for name, item in p.curves.items():
            if len(p.curve_data(name)[0]):
                assert len(item.getData()[0]) == buf.n_filled
    assert not pacer().pending(w.energyPlot)


# ---------------------------------------------------------------------------
# views
# ---------------------------------------------------------------------------
def test_the_prediction_view_is_drawn_once_before_the_first_prediction(qtbot, window):
    """Its shaders are compiled at start-up (a turn of its own), while it
    still shows its placeholder; the first prediction then draws as usual.

    The view swaps its placeholder for the particles in a pacer turn queued
    when the roll-out starts (ViewsPanel.set_rollout); on a busy machine the
    pacer's rests can put that turn after the tiny roll-out has finished, so
    the test waits for that turn to have run before it looks."""
    from studio_helpers import build_tiny_lattice, set_tiny_training, train_and_wait

    from studio.pacing import pacer

    w = window
    pv = w.views.predictionView
    qtbot.waitUntil(lambda: pv._warm, timeout=5000)
    assert pv.empty and pv.frames >= 1 and not pv.particles.visual.visible
    assert non_background_fraction(pv.render_image()) == 0.0      # still shows nothing
    build_tiny_lattice(qtbot, w, 3, 3)
    set_tiny_training(w)
    train_and_wait(qtbot, w)
    qtbot.waitUntil(lambda: not pacer().pending(pv.placeholder), timeout=10000)
    assert not pv.empty and non_background_fraction(pv.render_image()) > 0.01


def test_reset_camera_sets_the_framing_at_once_and_the_linked_camera_follows(qtbot, window):
    w = window
    tv, pv = w.views.truthView, w.views.predictionView
    cam = tv.view.camera
    cam.azimuth, cam.scale_factor = 100.0, 0.1
    tv.reset_camera()
    want = tv.scene.camera()
    for c in (cam, pv.view.camera):
        assert np.allclose(c.center, want["center"]) and c.scale_factor == pytest.approx(want["scale_factor"])
        assert c.azimuth == pytest.approx(want["azimuth"]) and c.elevation == pytest.approx(want["elevation"])


def test_a_new_time_text_repaints_the_line_without_re_laying_out_the_bar(qtbot, window):
    w = window
    bar = w.timelineBar
    seen = []

    class Spy(QObject):
        def eventFilter(self, obj, ev):  # noqa: N802
            if ev.type() == QEvent.LayoutRequest:
                seen.append(obj)
            return False

    spy = Spy()
    bar.installEventFilter(spy)
    qtbot.wait(50)
    seen.clear()
    w.time.set_times(np.linspace(0.0, 123.456, 1001), 10)
    for f in (3, 9, 5):
        w.time.set_frame(f)
        qtbot.wait(20)
    w.time.set_filled(600)
    qtbot.wait(50)
    assert "frame 6/1001" in bar.timeLabel.text() and "computing" in bar.timeLabel.text()
    assert seen == []


def test_a_paint_draws_the_last_picture_while_a_render_waits_for_its_turn(qtbot, window):
    """A view's render is not done inside the window's repaint (which may
    hold plots and other widgets): the paint shows the last picture, the
    render comes in the view's pacer turn; a surface shown again renders in
    its turn too."""
    from studio.pacing import pacer

    v = window.views.truthView
    if v.mode != "offscreen":
        pytest.skip("the widget mode draws through Qt's OpenGL widget")
    s = v.surface
    # the start-up's work done (camera framing, warm-up renders, plots)
    qtbot.waitUntil(lambda: not s._dirty and len(pacer()) == 0, timeout=5000)
    n = s.frames
    v.changed()
    assert pacer().pending(s)
    s.repaint()                                   # a paint now: the last picture, no render
    assert s.frames == n and s._dirty
    pacer().flush()
    assert s.frames == n + 1 and not s._dirty
    s.hide()
    v.changed()
    pacer().flush()
    assert s.frames == n + 1 and s._dirty         # not rendered while hidden
    s.show()
    assert pacer().pending(s)                     # queued when shown
    qtbot.waitUntil(lambda: s.frames == n + 2 and not s._dirty, timeout=5000)
    assert non_background_fraction(v.render_image()) > 0.01


def test_the_grid_follows_the_ticks_and_is_drawn_once_per_range_change(qtbot):
    """The axes keep their own small boxes; both axes' grid lines, where their
    ticks are, are one cached picture over the plot area (the plot's
    PlotGrid): a range change redraws it with the new ticks, a repaint without
    one (a moved cursor, a curve's new data) copies it."""
    from PySide6.QtCore import QPointF

    from studio.pacing import pacer
    from studio.widgets.plots import GridAxis, energy_plot

    class Paints(QObject):
        def __init__(self, seen):
            super().__init__()
            self.seen = seen

        def eventFilter(self, obj, event):  # noqa: N802
            if event.type() == QEvent.Paint:
                self.seen.append(1)
            return False

    p = _plot(qtbot, energy_plot)
    pi, vb, grid = p.getPlotItem(), p.getPlotItem().vb, p.plotGrid
    t = np.linspace(0.0, 10.0, 201)
    p.set_curve("ground truth", t, 1e-4 * np.sin(t))
    pacer().flush()
    qtbot.wait(50)
    plot_area = vb.sceneBoundingRect()

    def positions(axis, along_x):
        lines = axis.grid_lines()
        assert lines
        for _pen, a, b in lines:               # each line spans the plot area
            a, b = axis.mapToScene(a), axis.mapToScene(b)
            span = abs(b.y() - a.y()) if along_x else abs(b.x() - a.x())
            assert span >= (plot_area.height() if along_x else plot_area.width()) - 1.5
        return sorted(axis.mapToScene(a).x() if along_x else axis.mapToScene(a).y() for _pen, a, _b in lines)

    def expected(axis, along_x):
        lo, hi = axis.range
        length = axis.geometry().width() if along_x else axis.geometry().height()
        values = [v for _s, level in axis.tickValues(lo, hi, length) for v in level if min(lo, hi) <= v <= max(lo, hi)]
        pts = [vb.mapViewToScene(QPointF(v, 0.0) if along_x else QPointF(0.0, v)) for v in values]
        return sorted(q.x() if along_x else q.y() for q in pts)

    for yrange in (None, (-3e-4, 5e-4)):
        if yrange is not None:                          # a range change: the grid follows, drawn again
            before, paints = positions(pi.getAxis("left"), False), grid.paints
            pi.setYRange(*yrange, padding=0)
            qtbot.waitUntil(lambda n=paints: grid.paints > n, timeout=2000)
            assert positions(pi.getAxis("left"), False) != before
        for name, along_x in (("bottom", True), ("left", False)):
            axis = pi.getAxis(name)
            assert isinstance(axis, GridAxis) and axis.grid_alpha() == int(0.25 * 255)
            assert axis.gridItem is grid
            # the axis paints its own box only (and its ticks' 5 px), not across the plot
            box = axis.mapRectToScene(axis.boundingRect())
            assert not box.intersects(plot_area.adjusted(6, 6, -6, -6))
            assert np.allclose(positions(axis, along_x), expected(axis, along_x), atol=0.51)
            alphas = {pen.color().alpha() for pen, _a, _b in axis.grid_lines()}
            assert max(alphas) < 255 * 0.25 + 1 and min(alphas) > 0      # the grid's alpha per tick level
        assert grid.isVisible() and grid.paints > 0
        assert grid.zValue() <= min(pi.getAxis(a).zValue() for a in ("left", "bottom"))

    # repaints without a range change copy the grid's picture
    paints, frames = grid.paints, []
    counter = Paints(frames)
    p.viewport().installEventFilter(counter)
    for k in range(5):
        p.cursor.setValue(1.0 + k)
        p.curves["ground truth"].setData(t, 1e-4 * np.sin(t + 0.1 * k))
        qtbot.waitUntil(lambda n=k: len(frames) > n, timeout=2000)
    assert grid.paints == paints

    # the grid shows in the picture: lines of the grid's colour at the ticks
    image = p.grab().toImage()
    axis = pi.getAxis("bottom")
    xs = expected(axis, True)
    mid_y = int(plot_area.center().y())
    dpr = image.devicePixelRatio()
    background = image.pixelColor(int(0.5 * (xs[0] + xs[1]) * dpr), int(mid_y * dpr))
    on_line = [image.pixelColor(round(x * dpr - 0.5), int(mid_y * dpr)) != background for x in xs]
    assert sum(on_line) >= len(xs) - 1

    p.clear_curves()                                    # the empty state: no axes, no grid
    qtbot.wait(20)
    assert not grid.isVisible()


@pytest.mark.parametrize("log_y", [False, True])
def test_a_range_change_with_wider_labels_keeps_the_axis_width_and_the_view(qtbot, log_y):
    """The left axis reserves the widest label of its format: a range change
    to wider tick labels neither widens the axis nor resizes the view (which
    would lay the labels out a second time), and no label is clipped."""
    from PySide6.QtGui import QImage, QPainter

    from studio.pacing import pacer
    from studio.widgets.plots import energy_plot, error_plot

    p = _plot(qtbot, error_plot if log_y else energy_plot)
    pi, vb = p.getPlotItem(), p.getPlotItem().vb
    axis = pi.getAxis("left")
    t = np.linspace(0.0, 10.0, 201)
    y = 1e-3 + 0.5e-3 * np.sin(t) if log_y else 0.5 + 0.2 * np.sin(t)
    p.set_curve(next(iter(p.curves)), t, y)
    pacer().flush()
    qtbot.wait(50)
    width, view = axis.width(), vb.sceneBoundingRect()
    resizes = []
    vb.sigResized.connect(lambda *_: resizes.append(1))
    ranges = [(-12.0, -3.0), (-7.3, -4.1)] if log_y else [(-3.3e-5, 5.1e-4), (-2.5e-4, 1e-4), (-123.0, 4567.0)]
    for lo, hi in ranges:
        pi.setYRange(lo, hi, padding=0)
        p.repaint()
        qtbot.wait(20)
        assert axis.width() == width
        assert not resizes and vb.sceneBoundingRect() == view
        image = QImage(10, 10, QImage.Format_ARGB32)
        painter = QPainter(image)
        try:
            _axis_spec, _ticks, texts = axis.generateDrawSpecs(painter)
        finally:
            painter.end()
        assert texts                                         # labels, all inside the axis's box
        box = axis.boundingRect()
        widest = max(axis.label_width(s) for _r, _f, s in texts)
        assert widest <= axis.textWidth <= width
        for rect, _flags, _s in texts:
            assert box.contains(rect)

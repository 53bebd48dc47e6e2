"""The 3D views themselves: camera interaction by mouse (linked between
truth and prediction), both rendering modes, and the bonds toggle."""
from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtTest import QTest
from studio_helpers import build_tiny_lattice, make_window, non_background_fraction


def test_mouse_drag_rotates_both_linked_cameras(qtbot, window):
    w = window
    surf = w.views.truthView.surface_widget
    cam, other = w.views.truthView.view.camera, w.views.predictionView.view.camera
    az0 = cam.azimuth
    before = w.views.truthView.render_image()
    c = surf.rect().center()
    QTest.mousePress(surf, Qt.LeftButton, Qt.NoModifier, c)
    for k in range(1, 6):
        QTest.mouseMove(surf, c + QPoint(12 * k, 0))
        qtbot.wait(15)          # vispy drops moves closer than 10 ms
    QTest.mouseRelease(surf, Qt.LeftButton, Qt.NoModifier, c + QPoint(60, 0))
    assert cam.azimuth != az0
    assert other.azimuth == cam.azimuth            # linked
    after = w.views.truthView.render_image()
    assert before.shape == after.shape and np.mean(np.abs(before.astype(int) - after.astype(int))) > 0.1
    scale = cam.scale_factor
    from PySide6.QtCore import QPointF
    from PySide6.QtGui import QWheelEvent

    ev = QWheelEvent(QPointF(c), QPointF(surf.mapToGlobal(c)), QPoint(0, 0), QPoint(0, 120),
                     Qt.NoButton, Qt.NoModifier, Qt.NoScrollPhase, False)
    surf.wheelEvent(ev)
    assert cam.scale_factor < scale                 # wheel up zooms in


def test_widget_mode_renders_too(qtbot, monkeypatch):
    monkeypatch.setenv("HGN_STUDIO_VIEWS", "widget")
    w = make_window(qtbot)
    v = w.views.truthView
    assert v.mode == "widget" and v.surface_widget is v.canvas.native
    qtbot.wait(100)
    img = v.render_image()
    assert non_background_fraction(img) > 0.01


def test_offscreen_mode_is_the_default_where_egl_works(window):
    from studio.gl import egl_available

    assert window.views.truthView.mode == ("offscreen" if egl_available() else "widget")


def test_bonds_toggle_and_automatic_choice(qtbot, window):
    w = window
    build_tiny_lattice(qtbot, w, 4, 4)
    v = w.views.truthView
    assert w.views.bondsCheck.isChecked() and v.bonds.visible
    with_bonds = v.render_image()
    w.views.bondsCheck.setChecked(False)
    assert not v.bonds.visible
    without = v.render_image()
    assert non_background_fraction(with_bonds) > non_background_fraction(without)
    # a big lattice starts without bonds (they cost more than the spheres)
    sp = w.systemPanel
    sp.set_kind("cubic")
    for k in ("n", "m", "l"):
        sp.builderForms["cubic"].editors[k].setValue(14)
    qtbot.mouseClick(sp.buildButton, Qt.LeftButton)
    assert len(w.session.system.edges) > 6000
    assert not w.views.bondsCheck.isChecked() and not v.bonds.visible


def test_export_hook_enables_the_button(qtbot, window):
    calls = []
    window.exportVideoButton.setEnabled(False)
    window.enable_export(lambda: calls.append(1), "Export a video")
    assert window.exportVideoButton.isEnabled() and window.exportVideoButton.toolTip() == "Export a video"
    qtbot.mouseClick(window.exportVideoButton, Qt.LeftButton)
    window.exportVideoAction.trigger()
    assert calls == [1, 1]


def test_a_rollout_of_a_bigger_system_replaces_the_views_system(qtbot, window):
    """set_rollout with another system (zero-shot, opened file): the views take
    the new system before anything is drawn (bonds switch off on the way)."""
    from core.physics.builders import build
    from core.physics.simulate import simulate
    from core.learning.rollout_buffer import RolloutBuffer

    w = window
    big = build("cubic", n=14, m=14, l=14)
    tr = simulate(big, big.positions, np.zeros_like(big.positions), 0.01, 4, 2)
    buf = RolloutBuffer(big, 0.01, 4, 2, with_prediction=False)
    buf.add("truth", tr)
    w.session.start_rollout(buf)
    w.session.finish_rollout()
    assert w.views.truthView.particles.n == big.n and not w.views.bondsCheck.isChecked()
    w.time.set_frame(2)
    assert np.allclose(w.views.truthView.particles.positions, tr.q[2], atol=1e-5)


def test_periodic_molecular_run_shows_wrapped_with_box_and_energy_colours(qtbot, window):
    from core.physics.builders import build
    from core.physics.initial import initial_state
    from core.physics.simulate import simulate

    s = build("molecular", n=27, density=0.1, cutoff=2.5)
    q0, p0 = initial_state(s, displacement=0.0, temperature=1.0, seed=3)
    tr = simulate(s, q0, p0, 0.005, 400, 20)
    window.show_trajectory(tr)
    v = window.views.truthView
    assert v.box.visible and not v.bonds.visible
    window.views.set_colour_mode("energy")
    window.time.set_frame(tr.n_frames - 1)
    shown = v.particles.positions
    assert np.all(shown >= -1e-5) and np.all(shown <= s.box[0] + 1e-5)     # folded into the box
    # per-particle energies (kinetic + half of each shifted pair energy) add up to H
    from studio.scene.colouring import ParticleEnergy

    e = ParticleEnergy(s)(tr.q[-1], tr.p[-1])
    assert np.isclose(e.sum(), tr.total[-1], rtol=1e-9, atol=1e-12)
    assert non_background_fraction(v.render_image()) > 0.005


def test_reset_camera_fits_a_3d_lattice_in_tall_and_wide_views(qtbot):
    """Framing by the bounding sphere: no particle touches the picture's edge,
    whatever the view's aspect (an edge-on framing clipped a cube seen at an
    angle), and the views frame as the video export does."""
    from core.physics import builders
    from studio.scene.geometry import camera_from
    from studio.widgets.particle_view import ParticleView

    system = builders.build("cubic", n=4, m=4, l=4)
    view = ParticleView("test")
    qtbot.addWidget(view)
    for w, h in ((300, 460), (460, 300)):
        view.resize(w, h)
        view.show()
        qtbot.waitExposed(view)
        view.set_system(system)
        cam = view.view.camera
        expected = camera_from(None, system, view.size * view.max_scale)
        assert cam.scale_factor == expected["scale_factor"] and tuple(cam.center) == expected["center"]
        img = view.render_image().astype(np.int32)
        key = (img[..., 0] << 16) | (img[..., 1] << 8) | img[..., 2]
        vals, counts = np.unique(key, return_counts=True)
        bg = vals[np.argmax(counts)]
        assert np.mean(key != bg) > 0.02                       # the lattice is drawn
        rim = np.concatenate([key[:3].ravel(), key[-3:].ravel(), key[:, :3].ravel(), key[:, -3:].ravel()])
        assert np.all(rim == bg), f"particles touch the edge of a {w}x{h} view"


# ----------------------------------------------------------------------
# one renderer: the views panel on its own (no main window), and the export
# ----------------------------------------------------------------------
def _panel(qtbot, size=(900, 420)):
    from studio.gl import ensure_backend

    ensure_backend()
    from studio.widgets.views_panel import ViewsPanel

    panel = ViewsPanel()
    qtbot.addWidget(panel)
    panel.resize(*size)
    panel.show()
    qtbot.waitExposed(panel)
    return panel


def _share(img, rgb, tol=60):
    d = np.abs(img.astype(int) - np.array(rgb)[None, None]).sum(-1)
    return float(np.mean(d < tol))


def _buffer(prediction=True, same=False):
    from test_export import runs

    from studio.export.run import buffer_from_rollout

    truth, pred = runs()
    if same:
        pred.q, pred.p = truth.q.copy(), truth.p.copy()
    return buffer_from_rollout(truth, pred if prediction else None, model_name="rfhgn-7")


def test_prediction_view_is_empty_until_a_prediction_exists(qtbot):
    from studio.pacing import pacer
    from studio.scene import palette

    panel = _panel(qtbot)
    buf = _buffer()
    pv, tv = panel.predictionView, panel.truthView
    panel.set_system(buf.system)
    assert pv.empty and pv.placeholder.isVisible() and not pv.surface_widget.isVisible()
    assert "No prediction yet" in pv.placeholder.text() and "Ctrl+T" in pv.placeholder.text()
    assert not pv.particles.visual.visible and not pv.bonds.visible
    assert non_background_fraction(pv.render_image()) == 0.0          # no orange copy of the system
    assert non_background_fraction(tv.render_image()) > 0.01 and not tv.empty
    # a ground-truth-only roll-out: still nothing to show, and it says why
    panel.set_rollout(_buffer(prediction=False))
    pacer().flush()                      # the view's page follows in a pacer turn (studio.pacing)
    assert pv.empty and "no prediction" in pv.placeholder.text()
    # a roll-out with a prediction: the particles, in the prediction's colour
    panel.set_rollout(buf)
    pacer().flush()
    assert not pv.empty and pv.surface_widget.isVisible() and not pv.placeholder.isVisible()
    img = pv.render_image()
    assert _share(img, palette.rgb255(palette.PREDICTION)) > 0.01
    assert pv.label.text() == "Prediction: rfhgn-7"
    # a new system: empty again
    panel.set_system(buf.system)
    assert pv.empty and non_background_fraction(pv.render_image()) == 0.0


def test_overlay_keeps_an_accurate_prediction_visible(qtbot):
    """Prediction equal to the truth: the overlay still shows the prediction
    (opaque spheres inside the truth's rings), in the views and the export."""
    from studio.export.scene import ExportScene
    from studio.export.settings import ExportSettings
    from studio.scene import palette

    blue, orange = palette.rgb255(palette.TRUTH), palette.rgb255(palette.PREDICTION)
    buf = _buffer(same=True)
    panel = _panel(qtbot, (520, 420))
    panel.set_rollout(buf)
    panel.set_layout("overlay")
    panel.show_frame(6)
    v = panel.truthView
    assert v.ghost.visual.visible and v.particles.visual.outline > 1.0      # truth outlined
    assert np.allclose(v.ghost.positions, v.particles.positions)
    img = v.render_image()
    assert _share(img, orange) > 0.01          # the prediction is seen where it coincides
    assert _share(img, blue) > 0.005           # and the truth's rings around it
    # back to side by side: solid spheres again
    panel.set_layout("side")
    assert v.particles.visual.outline == 0 and not v.ghost.visual.visible

    sc = ExportScene(buf, ExportSettings(width=320, height=320, layout="overlay", time_label=False))
    try:
        frame = sc.render(6)
    finally:
        sc.close()
    assert _share(frame, orange) > 0.01 and _share(frame, blue) > 0.005


def test_views_and_export_draw_a_frame_with_the_same_scene_code(qtbot):
    """The same ParticleScene class and the same colours for the same frame
    (once the views' growing colour range has seen every frame, it is the
    export's range), and the export's pixels show those particles."""
    from studio.export.scene import ExportScene
    from studio.export.settings import ExportSettings
    from studio.scene.colouring import Colouring
    from studio.scene.particles import ParticleScene

    buf = _buffer()
    panel = _panel(qtbot)
    panel.set_rollout(buf)
    panel.set_colour_mode("speed")
    for f in range(buf.n_filled):
        panel.show_frame(f)
    panel.show_frame(5)
    sc = ExportScene(buf, ExportSettings(width=480, height=240, layout="side", colour="speed"))
    try:
        frame = sc.render(5)
        assert type(panel.truthView.scene) is type(sc.views["truth"]) is ParticleScene
        assert tuple(panel.colouring.range) == tuple(sc.colouring.range)
        for which, view in (("truth", panel.truthView), ("prediction", panel.predictionView)):
            exported = sc.views[which]
            assert np.array_equal(view.particles.colors, exported.particles.colors)
            assert np.array_equal(view.particles.positions, exported.particles.positions)
            assert np.array_equal(view.particles.scales, exported.particles.scales)
            assert view.size == exported.size
        # the colours are the colour map of the speeds, not a uniform colour
        expect = Colouring(buf, "speed")
        expect.range = list(sc.colouring.range)
        assert np.allclose(sc.views["truth"].particles.colors, expect.colours("truth", 5))
        assert len(np.unique(sc.views["truth"].particles.colors[:, :3], axis=0)) > 3
        # and the exported pixels show particles in those colours
        drawn = frame[:, :200].reshape(-1, 3).astype(int)
        cols = (sc.views["truth"].particles.colors[:, :3] * 255).astype(int)
        near = np.min(np.abs(drawn[:, None, :] - cols[None]).sum(-1), axis=1) < 40
        assert np.mean(near) > 0.01
    finally:
        sc.close()
    assert panel.colourBar.vmin == pytest.approx(sc.colouring.range[0])
    assert panel.colourBar.vmax == pytest.approx(sc.colouring.range[1])


def test_colours_come_from_the_palette():
    """Views, export and plots take the runs' colours from studio.scene.palette."""
    from studio.scene import palette
    from studio.scene.colouring import run_colour
    from studio.widgets import plots

    assert run_colour("truth") == palette.TRUTH and run_colour("prediction") == palette.PREDICTION
    assert plots.TRUTH_PEN.color().getRgb()[:3] == palette.rgb255(palette.TRUTH)
    assert plots.PRED_PEN.color().getRgb()[:3] == palette.rgb255(palette.PREDICTION)
    from studio.style import style_sheet

    qss = style_sheet()
    assert "$" not in qss and palette.hex_of(palette.BACKGROUND) in qss


def test_empty_plots_say_what_appears_and_legends_stay_off_the_curves(qtbot):
    from studio.widgets.plots import energy_parts_plot, energy_plot, error_plot

    plots = [energy_plot(), error_plot(), energy_parts_plot()]
    for p in plots:
        qtbot.addWidget(p)
        p.resize(460, 220)
        p.show()
    qtbot.waitExposed(plots[-1])
    for p in plots:
        pi = p.getPlotItem()
        assert p.showing_empty_text and "appear" in p.empty_text
        assert not pi.getAxis("left").isVisible() and not p.legend.isVisible()
    assert "roll-out" in plots[0].empty_text
    t = np.linspace(0, 4, 50)
    for p in plots:
        for name in p.curves:
            p.set_curve(name, t, 1.0 + np.sin(t))
    # drawn one plot per turn of the window's pacer (studio.pacing)
    qtbot.waitUntil(lambda: not any(p.drawing_pending for p in plots), timeout=2000)
    qtbot.wait(20)
    for p in plots:
        pi = p.getPlotItem()
        assert not p.showing_empty_text and pi.getAxis("left").isVisible() and p.legend.isVisible()
        legend = p.legend.sceneBoundingRect()
        area = pi.vb.sceneBoundingRect()
        assert legend.height() > 5 and not legend.intersects(area), (p.objectName(), legend, area)
    plots[0].clear_curves()
    assert plots[0].showing_empty_text

"""The 3D views themselves: camera interaction by mouse (linked between
truth and prediction), both rendering modes, and the bonds toggle."""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPoint, Qt
from PySide6.QtTest import QTest

from studio_helpers import build_tiny_lattice, make_window, non_background_fraction


def test_mouse_drag_rotates_both_linked_cameras(qtbot, window):
    w = window
    surf = w.views.truthView.surface_widget
    cam, other = w.views.truthView.view.camera, w.views.predictionView.view.camera
    az0 = cam.azimuth
    before = w.views.predictionView.render_image()
    c = surf.rect().center()
    QTest.mousePress(surf, Qt.LeftButton, Qt.NoModifier, c)
    for k in range(1, 6):
        QTest.mouseMove(surf, c + QPoint(12 * k, 0))
        qtbot.wait(15)          # vispy drops moves closer than 10 ms
    QTest.mouseRelease(surf, Qt.LeftButton, Qt.NoModifier, c + QPoint(60, 0))
    assert cam.azimuth != az0
    assert other.azimuth == cam.azimuth            # linked
    after = w.views.predictionView.render_image()
    assert before.shape == after.shape and np.mean(np.abs(before.astype(int) - after.astype(int))) > 0.1
    scale = cam.scale_factor
    from PySide6.QtGui import QWheelEvent
    from PySide6.QtCore import QPointF

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
    from studio.widgets.surfaces import egl_available

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
    from studio.rollout_buffer import RolloutBuffer

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
    from studio.colouring import ParticleEnergy

    e = ParticleEnergy(s)(tr.q[-1], tr.p[-1])
    assert np.isclose(e.sum(), tr.total[-1], rtol=1e-9, atol=1e-12)
    assert non_background_fraction(v.render_image()) > 0.005


def test_reset_camera_fits_a_3d_lattice_in_tall_and_wide_views(qtbot):
    """Framing by the bounding sphere: no particle touches the picture's edge,
    whatever the view's aspect (an edge-on framing clipped a cube seen at an
    angle), and the views frame as the video export does."""
    from core.physics import builders
    from studio.export.scene import _camera_from
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
        expected = _camera_from(None, system, view.size)
        assert cam.scale_factor == expected["scale_factor"] and tuple(cam.center) == expected["center"]
        img = view.render_image().astype(np.int32)
        key = (img[..., 0] << 16) | (img[..., 1] << 8) | img[..., 2]
        vals, counts = np.unique(key, return_counts=True)
        bg = vals[np.argmax(counts)]
        assert np.mean(key != bg) > 0.02                       # the lattice is drawn
        rim = np.concatenate([key[:3].ravel(), key[-3:].ravel(), key[:, :3].ravel(), key[:, -3:].ravel()])
        assert np.all(rim == bg), f"particles touch the edge of a {w}x{h} view"

"""Damping and driving in the studio (issue 13): the system panel's form
(undoable, reflected in Build), a port model trained on a damped driven
lattice with its identified damping in the models table, the energy-balance
plot after the roll-out, and a saved project keeping the port."""
from __future__ import annotations

import re

import numpy as np
import pytest
from PySide6.QtCore import Qt
from studio_helpers import build_tiny_lattice, set_tiny_training, train_and_wait

from core.physics import builders
from core.physics.port import Drive, Port, energy_balance
from core.physics.simulate import simulate

GAMMA, AMP, OMEGA = 0.05, 0.1, 1.3


def _type(form, name, text):
    """Type into a line-edit field and confirm (Enter), as a user does."""
    w = form.editors[name]
    w.setText(text)
    w.editingFinished.emit()


def _set_port(w, damping="0.05", nodes="0, 3, 6", amplitude="0.1", frequency="1.3"):
    f = w.systemPanel.portForm
    _type(f, "damping", damping)
    _type(f, "drive_nodes", nodes)
    _type(f, "drive_amplitude", amplitude)
    _type(f, "drive_frequency", frequency)


def test_port_form_edits_are_undoable_and_build_gives_the_system_its_port(qtbot, window):
    w, d = window, window.document
    build_tiny_lattice(qtbot, w, 3, 3)
    assert d.system.port is None
    _set_port(w)
    assert d.get("port", "damping") == GAMMA and tuple(d.get("port", "drive_nodes")) == (0, 3, 6)
    qtbot.mouseClick(w.systemPanel.buildButton, Qt.LeftButton)
    port = d.system.port
    assert port is not None and port.damping == GAMMA and not port.per_particle
    (drive,) = port.drives
    assert drive.nodes == (0, 3, 6) and drive.amplitude == AMP and drive.frequency == OMEGA
    assert "damping 0.05" in w.systemPanel.summary.text()
    # undo: the Build, then the four edits, one step each
    w.undo.undo()
    assert d.system.port is None
    for _ in range(4):
        w.undo.undo()
    assert d.get("port", "damping") == 0.0 and tuple(d.get("port", "drive_nodes")) == ()
    assert w.systemPanel.portForm.value("damping") == 0.0
    w.undo.redo()
    assert d.get("port", "damping") == GAMMA and w.systemPanel.portForm.value("damping") == GAMMA


def test_boundary_layer_damping_and_bad_values_shown_at_their_field(qtbot, window):
    w, d = window, window.document
    build_tiny_lattice(qtbot, w, 3, 3)
    f = w.systemPanel.portForm
    _type(f, "damping", "0.2")
    f.editors["damping_where"].setCurrentIndex(1)            # boundary layer only
    qtbot.mouseClick(w.systemPanel.buildButton, Qt.LeftButton)
    g = d.system.port.damping
    assert d.system.port.per_particle and g[4] == 0.0 and np.count_nonzero(g) == 8 and g.max() == 0.2
    n_before = d.system
    _type(f, "drive_nodes", "0, 99")
    _type(f, "drive_amplitude", "0.1")
    assert w.systemPanel.build() is None and d.system is n_before
    assert "99" in f.error_text("drive_nodes")
    _type(f, "damping", "-1")
    assert w.systemPanel.build() is None and "must be >= 0" in f.error_text("damping")


def test_energy_balance_curves_match_core(qtbot):
    """The plot's vectorised balance against core.physics.port.energy_balance's trapezoid on saved frames."""
    from studio.widgets.plots import energy_balance_curves

    system = builders.build("square", n=3, m=3).copy(
        port=Port(np.where(np.arange(9) % 2 == 0, 0.3, 0.0), (Drive((1, 2), 0.2, 1.7, (1.0, 1.0), 0.4),),
                  (0.0, -0.05)))
    rng = np.random.default_rng(3)
    tr = simulate(system, system.positions + 0.05 * rng.standard_normal((9, 2)), 0.1 * rng.standard_normal((9, 2)),
                  0.01, 400, save_every=10, t0=0.7)
    change, net = energy_balance_curves(system, tr.t, tr.p, tr.kinetic, tr.potential)
    ref = energy_balance(tr)
    assert np.allclose(change, ref["change"], rtol=0, atol=1e-14)
    assert np.allclose(net, ref["injected_saved"] - ref["dissipated_saved"], rtol=1e-12, atol=1e-15)
    assert np.max(np.abs(net)) > 1e-3                               # energy did flow in and out
    assert energy_balance_curves(builders.build("square", n=3, m=3), tr.t, tr.p, tr.kinetic, tr.potential) is None


@pytest.fixture
def trained_port(qtbot, window):
    w = window
    build_tiny_lattice(qtbot, w, 3, 3)
    _set_port(w)
    qtbot.mouseClick(w.systemPanel.buildButton, Qt.LeftButton)
    assert w.document.system.port is not None
    set_tiny_training(w)
    rec = train_and_wait(qtbot, w)
    return w, rec


def test_damped_driven_system_trains_a_port_model_and_shows_its_balance(qtbot, trained_port):
    w, rec = trained_port
    d = w.document
    ident = rec.model.info["port"]
    assert ident["damping"] == pytest.approx(GAMMA, rel=1e-3)
    assert np.allclose(ident["forcing"]["amplitude"], AMP, rtol=1e-3)
    assert float(w.modelsPanel.cell(0, "γ")) == pytest.approx(GAMMA, rel=1e-3)
    detail = w.modelsPanel.detail.text()
    m = re.search(r"damping γ = ([0-9.e-]+); drive amplitude ([0-9.e-]+) at ω = 1.3 on 3 particles", detail)
    assert m, detail
    assert float(m.group(1)) == pytest.approx(GAMMA, rel=1e-3) and float(m.group(2)) == pytest.approx(AMP, rel=1e-3)
    # the roll-out: the truth carries the port; the prediction used the identified one (a Hamiltonian
    # roll-out of a damped driven system would drift far from it)
    b = d.rollout
    n = b.n_filled
    assert n == b.n_frames and b.system.port is not None
    assert np.mean((b.q["truth"][n - 1] - b.q["prediction"][n - 1]) ** 2) < 1e-6
    # the energy-balance plot: data for both runs, the truth's change close to the net inflow
    qtbot.waitUntil(lambda: not w.balancePlot.is_empty(), timeout=5000)
    t, change = w.balancePlot.curve_data("H - H0 (truth)")
    _, net = w.balancePlot.curve_data("injected - dissipated (truth)")
    assert len(t) == n and len(w.balancePlot.curve_data("H - H0 (prediction)")[0]) == n
    assert np.max(np.abs(net)) > 1e-4
    assert np.max(np.abs(change - net)) < 0.05 * np.max(np.abs(net))
    # the page is chosen in a turn of the window's pacer after the model became current
    qtbot.waitUntil(lambda: w.plotTabs.currentWidget() is w.balancePlot, timeout=5000)


def test_undamped_system_leaves_the_balance_plot_empty(qtbot, window):
    w = window
    build_tiny_lattice(qtbot, w, 3, 3)
    set_tiny_training(w)
    rec = train_and_wait(qtbot, w)
    assert "port" not in rec.model.info and w.modelsPanel.cell(0, "γ") == "–"
    assert "identified" not in w.modelsPanel.detail.text()
    assert w.balancePlot.is_empty() and w.balancePlot.showing_empty_text


def test_project_save_and_open_keeps_the_port(qtbot, trained_port, tmp_path):
    w, rec = trained_port
    d = w.document
    port = d.system.port
    path = tmp_path / "port.hgnproj"
    assert w.projects.save_as(path)
    _type(w.systemPanel.portForm, "damping", "0")
    _type(w.systemPanel.portForm, "drive_nodes", "")
    build_tiny_lattice(qtbot, w, 4, 4)
    assert d.system.port is None
    assert w.projects.open_path(path)
    d = w.document
    assert d.system.port is not None and d.system.port.to_dict() == port.to_dict()
    assert d.get("port", "damping") == GAMMA and tuple(d.get("port", "drive_nodes")) == (0, 3, 6)
    assert w.systemPanel.portForm.value("damping") == GAMMA
    assert d.models[0].model.info["port"]["damping"] == pytest.approx(GAMMA, rel=1e-3)
    assert float(w.modelsPanel.cell(0, "γ")) == pytest.approx(GAMMA, rel=1e-3)


def test_ctrl_click_in_the_view_drives_the_particle_under_the_mouse(qtbot, window):
    from PySide6.QtCore import QPoint
    from PySide6.QtTest import QTest

    w, d = window, window.document
    build_tiny_lattice(qtbot, w, 3, 3)
    view = w.views.truthView
    w.views.bondsCheck.setChecked(False)          # the springs pass through the centres: spheres only
    img = view.render_image()
    xy = view.projected()
    assert xy.shape == (9, 2)
    # independent check of the projection: the rendered picture shows a sphere at particle 4's centre and
    # the background in the middle of the square of particles 0, 1, 3, 4
    background = img[2, 2, :3].astype(int)
    x, y = (int(round(v)) for v in xy[4])
    assert np.abs(img[y, x, :3].astype(int) - background).sum() > 60
    blue = img[y, x, :3].astype(int)
    assert blue[2] > blue[0] + 40                 # the truth's blue sphere
    cx, cy = (int(round(v)) for v in xy[[0, 1, 3, 4]].mean(axis=0))       # a square's empty middle
    assert np.abs(img[cy, cx, :3].astype(int) - background).sum() < 30
    # Ctrl+click at particle 4 (a few pixels off its centre): it joins the driven particles, undoably
    QTest.mouseClick(view.surface_widget, Qt.LeftButton, Qt.ControlModifier, QPoint(x + 3, y - 2))
    assert tuple(d.get("port", "drive_nodes")) == (4,)
    # the driven particle is drawn in the highlight colour (both views), the others in the run's colour
    from studio.scene import palette

    for v in (view, w.views.predictionView):
        colours = np.asarray(v.particles.colors)
        assert np.allclose(colours[4], palette.SELECTION, atol=1e-6)
        assert np.allclose(np.delete(colours, 4, axis=0), np.asarray(v.scene.colour), atol=1e-6)
    marked = view.render_image()[y, x, :3].astype(int)
    assert marked[0] > marked[2] + 40             # yellow-ish (#ffd166) where the blue sphere was
    x0, y0 = (int(round(v)) for v in xy[0])
    QTest.mouseClick(view.surface_widget, Qt.LeftButton, Qt.ControlModifier, QPoint(x0, y0))
    assert tuple(d.get("port", "drive_nodes")) == (0, 4)
    QTest.mouseClick(view.surface_widget, Qt.LeftButton, Qt.ControlModifier, QPoint(x, y))
    assert tuple(d.get("port", "drive_nodes")) == (0,)
    w.undo.undo()
    assert tuple(d.get("port", "drive_nodes")) == (0, 4)
    assert np.allclose(np.asarray(view.particles.colors)[[0, 4]], palette.SELECTION, atol=1e-6)
    # a plain click moves the camera only; a Ctrl+click far from every particle picks none
    QTest.mouseClick(view.surface_widget, Qt.LeftButton, Qt.NoModifier, QPoint(x0, y0))
    QTest.mouseClick(view.surface_widget, Qt.LeftButton, Qt.ControlModifier, QPoint(2, 2))
    assert tuple(d.get("port", "drive_nodes")) == (0, 4)
    _type(w.systemPanel.portForm, "drive_amplitude", "0.1")
    qtbot.mouseClick(w.systemPanel.buildButton, Qt.LeftButton)
    assert d.system.port.drives[0].nodes == (0, 4)


def test_port_model_zero_shot_carries_the_identified_port_to_the_larger_lattice():
    """pipeline.rollout_job on a lattice twice as large: the truth runs with the carried true port
    (rebuild_scaled), the prediction with the identified one carried by transfer_port."""
    import dataclasses

    from studio import pipeline
    from studio.defaults import SIMULATION
    from studio.methods import method_by_key

    small = builders.build("square", n=3, m=3)
    x = small.positions[:, 0]
    left = tuple(np.flatnonzero(np.abs(x - x.min()) < 1e-9).tolist())
    system = small.copy(port=Port(GAMMA, (Drive(left, AMP, OMEGA, (1.0, 0.0), 0.2),)))
    sim = dict(dataclasses.asdict(SIMULATION), steps=40, n_trajectories=3, save_every=4, dt=0.01)
    method = method_by_key("rfhgn")
    res = pipeline.train_job(system, sim, method, method.default_settings())
    assert res.model.info["port"]["damping"] == pytest.approx(GAMMA, rel=1e-4)
    big = builders.rebuild_scaled(system, 2)
    port = pipeline.model_rollout_port(res.model, big)
    assert port.damping == pytest.approx(GAMMA, rel=1e-4)
    driven = sorted({i for d in port.drives for i in d.nodes})
    bx = big.positions[:, 0]
    assert driven == np.flatnonzero(np.abs(bx - bx.min()) < 1e-9).tolist()
    q0, p0 = pipeline.rollout_start(big, sim)
    chunks = []
    pipeline.rollout_job(res.model, big, q0, p0, 0.01, 200, 5, emit=chunks.append)
    truth = [c for k, c in chunks if k == "truth"][-1]
    pred = [c for k, c in chunks if k == "prediction"][-1]
    assert np.mean((truth.q[-1] - pred.q[-1]) ** 2) < 1e-8
    # the same model rolled out as a Hamiltonian one (no port) is far off: the test can tell
    from core.learning.rollout import rollout

    ham = rollout(res.model, big, q0, p0, 0.01, 200, save_every=5, port=Port(0.0))
    assert np.mean((truth.q[-1] - ham.q[-1]) ** 2) > 100 * np.mean((truth.q[-1] - pred.q[-1]) ** 2)


def test_gradient_trained_method_learns_a_port_on_damped_data():
    """The Train panel's baseline method on a damped driven system learns damping and forcing beside the
    network (core.learning.baselines.port) and its roll-out uses them (rollout_port)."""
    import dataclasses

    from studio import pipeline
    from studio.defaults import SIMULATION
    from studio.methods import method_by_key

    system = builders.build("square", n=3, m=3).copy(port=Port(GAMMA, (Drive((0, 1, 2), AMP, OMEGA, (1.0, 0.0)),)))
    sim = dict(dataclasses.asdict(SIMULATION), steps=40, n_trajectories=2, save_every=4, dt=0.01)
    method = method_by_key("baseline")
    settings = dict(method.default_settings(), max_epochs=2, node_width=8, edge_width=8, message_width=16)
    res = pipeline.train_job(system, sim, method, settings)
    assert set(res.info["port"]) >= {"damping", "forcing"} and res.info["port"]["damping"] >= 0
    q0, p0 = pipeline.rollout_start(system, sim)
    chunks = []
    pipeline.rollout_job(res.model, system, q0, p0, 0.01, 20, 5, emit=chunks.append)
    assert [c for k, c in chunks if k == "prediction"][0].meta["integrator"] == "strang-verlet (learned, port)"


def test_drive_selected_drawn_particles_and_use_applies_the_port(qtbot, window):
    from PySide6.QtTest import QTest

    w, d = window, window.document
    panel, canvas, model = w.drawingPanel, w.drawingPanel.canvas, w.drawingPanel.model
    w.leftTabs.setCurrentWidget(panel)
    qtbot.waitExposed(canvas)
    for p in [(0, 0), (1, 0), (0, 1)]:
        model.add_point(p)
    model.add_edge(0, 1)
    model.add_edge(0, 2)
    model.add_edge(1, 2)
    canvas.update()
    panel.set_mode("select")
    QTest.mouseClick(canvas, Qt.LeftButton, Qt.NoModifier, canvas.to_screen(np.array([1.0, 0.0])).toPoint())
    assert canvas.sel_points == {1}
    panel.layersSpin.setValue(2)
    assert panel.drive_selected()
    assert tuple(d.get("port", "drive_nodes")) == (1, 4)            # particle 1 in both layers
    _type(w.systemPanel.portForm, "drive_amplitude", "0.2")
    _type(w.systemPanel.portForm, "damping", "0.1")
    _type(w.systemPanel.portForm, "drive_direction", "0, 1")
    system = panel.use()
    assert system is d.system and system.n == 6 and system.dim == 3
    assert system.port.damping == 0.1 and system.port.drives[0].nodes == (1, 4)
    assert system.port.drives[0].direction == (0.0, 1.0, 0.0)       # the 2-component direction padded
    w.undo.undo()                                                    # Use drawn system
    w.undo.undo()                                                    # direction
    w.undo.undo()                                                    # damping
    w.undo.undo()                                                    # amplitude
    w.undo.undo()                                                    # Drive selected
    assert tuple(d.get("port", "drive_nodes")) == ()


def test_last_port_settings_that_do_not_fit_do_not_stop_the_start(qtbot, isolated_settings):
    """A drive node saved with the last settings that the start-up lattice does not have: the studio
    starts with a system (undamped, undriven) rather than none."""
    from studio_helpers import make_window

    w = make_window(qtbot)
    d = w.document
    d.set("port", "drive_nodes", (10_000,))
    d.set("port", "drive_amplitude", 0.1)
    w.close()                                # writes the last used settings
    w2 = make_window(qtbot)
    assert w2.document.system is not None and w2.document.system.port is None
    assert tuple(w2.document.get("port", "drive_nodes")) == ()


def test_chunked_truth_of_a_driven_system_is_one_run():
    """pipeline.rollout_job's ground truth in growing chunks (each passing its start time t0 to simulate)
    gives the frames of one uninterrupted run of the driven, damped system, to round-off (the drive's time
    t0 + k dt of a chunk and k' dt of one run differ in the last bit: 2e-17 measured; without t0 the drives
    restart at t = 0 in every chunk and the frames differ by ~1e-3)."""
    from studio import pipeline

    system = builders.build("square", n=3, m=3).copy(
        port=Port(GAMMA, (Drive((0, 1, 2), AMP, OMEGA, (1.0, 0.0), 0.3),), (0.0, -0.02)))
    q0 = system.positions + 0.05 * np.random.default_rng(1).standard_normal((9, 2))
    p0 = np.zeros((9, 2))
    chunks = []
    pipeline.rollout_job(None, system, q0, p0, 0.01, 300, 5, emit=chunks.append)
    truth = [c for k, c in chunks if k == "truth"]
    assert len(truth) > 3
    q = np.concatenate([c.q for c in truth])
    one = simulate(system, q0, p0, 0.01, 300, save_every=5)
    assert q.shape == one.q.shape and np.allclose(q, one.q, rtol=0, atol=1e-14)


@pytest.mark.parametrize("values, field", [({"drive_frequency": 0.0}, "frequency"),
                                           ({"drive_direction": "0, 0"}, "direction"),
                                           ({"drive_direction": "1, 0, 1"}, "direction"),
                                           ({"field": "0, x"}, "Constant field")])
def test_bad_port_settings_are_refused_with_the_field_named(values, field):
    from core.errors import HGNError
    from studio.document import PORT_DEFAULTS, port_from_settings

    system = builders.build("square", n=3, m=3)
    settings = dict(PORT_DEFAULTS, drive_nodes=(0,), drive_amplitude=0.1, **values)
    with pytest.raises(HGNError, match=field):
        port_from_settings(settings, system)

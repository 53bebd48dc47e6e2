"""Several methods side by side: RF-HGN and a gradient-trained baseline in one
project's table, with the baseline's loss curve; file opening through core.files.io."""
from __future__ import annotations

import numpy as np

from studio_helpers import build_tiny_lattice, set_tiny_training, train_and_wait


def test_rfhgn_and_a_baseline_compared_in_the_table(qtbot, window):
    w = window
    tp = w.trainPanel
    assert "baseline" in tp.methods                      # core.learning.baselines exists, so it is offered
    build_tiny_lattice(qtbot, w, 2, 2)
    set_tiny_training(w)
    rf = train_and_wait(qtbot, w)
    assert not w.lossPlot.isVisible()                  # RF-HGN has no loss curve

    tp.set_method("baseline")
    assert tp.methodStack.currentWidget() is tp.methodForms["baseline"]
    form = tp.methodForms["baseline"]
    assert form.value("optimizer") == "adam" and "optimizer" in form.editors
    form.set_values({"optimizer": "adam", "max_epochs": 15, "time_budget": 20.0, "node_width": 4,
                     "edge_width": 4, "message_width": 4, "patience": 0})
    geometry = w.energyPlot.geometry()
    stages = []
    w.trainJobs.progress.connect(lambda s, f: stages.append(s))
    base = train_and_wait(qtbot, w, timeout=120000)
    assert "epochs" in stages
    assert base.method == "baseline" and rf.method == "rfhgn"
    assert w.modelsPanel.table.rowCount() == 2
    assert w.modelsPanel.cell(1, "Method").startswith("baseline") and "adam" in w.modelsPanel.cell(1, "Method")
    assert base.loss is not None and len(base.loss) >= 2
    # the plot page follows in a pacer turn of its own (studio.pacing)
    qtbot.waitUntil(lambda: w.lossPlot.isVisible() and w.plotTabs.currentWidget() is w.lossPlot, timeout=2000)
    assert w.energyPlot.geometry() == geometry      # the loss curve takes a page, not the other plots' room
    x, y = w.lossPlot.curve_data("loss")
    assert len(y) == len(base.loss) and np.allclose(y, base.loss)
    # selecting the RF-HGN row hides the loss plot again and shows its roll-out on request
    w.modelsPanel.table.selectRow(0)
    assert w.session.current == 0
    qtbot.waitUntil(lambda: not w.lossPlot.isVisible() and w.partsPlot.isVisible(), timeout=2000)


def test_open_a_trajectory_and_a_system_file(qtbot, window, tmp_path):
    from core.files import io
    from core.physics.builders import build
    from core.physics.simulate import simulate

    s = build("chain", n=5)
    tr = simulate(s, s.positions + 0.05, np.zeros_like(s.positions), 0.01, 40, 4)
    path = tmp_path / "run.npz"
    io.save_trajectories(path, [tr])
    window.open_file(str(path))
    buf = window.session.rollout
    assert buf is not None and not buf.with_prediction and buf.n_filled == tr.n_frames
    assert window.time.filled == tr.n_frames
    _, drift = window.energyPlot.curve_data("ground truth")
    assert np.allclose(drift, tr.energy_drift())

    spath = tmp_path / "system.npz"
    io.save_system(spath, build("square", n=2, m=3))
    window.open_file(str(spath))
    assert window.session.system.n == 6

    bad = tmp_path / "bad.npz"
    bad.write_text("not a file of ours")
    window.open_file(str(bad))
    assert window.session.system.n == 6 and window.statusLabel.text()


def test_example_systems_open(qtbot, window):
    from pathlib import Path

    from core.files import io
    folder = Path(__file__).resolve().parents[2] / "assets" / "examples"
    files = sorted(folder.glob("*.npz"))
    assert len(files) >= 3
    for path in files:
        window.open_file(str(path))
        assert window.session.system.n == io.load_system(path).n, path.name
        assert window.views.truthView.particles.n == window.session.system.n

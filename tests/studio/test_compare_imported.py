"""Compare on imported data (Jobs.compare_imported) rolls the model out in a
worker process: the result arrives in the document, and a baseline model does
not bring torch into the window's process."""
from __future__ import annotations

import subprocess
import sys

import numpy as np

from studio_helpers import ROOT, baseline_in_worker_script


def test_compare_imported_rolls_a_baseline_out_in_the_worker(tmp_path):
    script = baseline_in_worker_script(f"""
        from PySide6.QtCore import QEventLoop, QTimer
        from PySide6.QtGui import QUndoStack
        from core.files.project import ModelRecord
        from core.physics.simulate import simulate
        from studio.document import Document
        from studio.jobs import Jobs
        # an "imported" trajectory: 9 frames, every 3 steps
        q0, p0 = pipeline.rollout_start(system, sim)
        truth = simulate(system, q0, p0, 0.01, 24, save_every=3)
        doc = Document()
        doc.set_system(system)
        doc.add_ground_truth(truth)
        doc.add_model(ModelRecord(name="baseline-1", method="baseline", settings={{}}, system=system,
                                  model=res.model))
        jobs = Jobs(doc, QUndoStack())
        failed = []
        jobs.failed.connect(lambda m, tb: failed.append(m + tb))
        assert jobs.compare_imported(), failed
        loop = QEventLoop()
        poll = QTimer()
        poll.timeout.connect(lambda: loop.quit() if (doc.rollout.finished and not jobs.is_running())
                             or failed else None)
        poll.start(10)
        QTimer.singleShot(120000, loop.quit)
        loop.exec()
        assert not failed, failed
        buf = doc.rollout
        assert buf.finished and buf.with_prediction and buf.n_filled == truth.n_frames, buf.n_filled
        assert np.array_equal(buf.q["truth"][:buf.n_filled], truth.q)
        res.model.save({str(tmp_path / "m.npz")!r})
        np.save({str(tmp_path / "pred.npy")!r}, buf.q["prediction"][:buf.n_filled])
        print("TORCH_IN_GUI", "torch" in sys.modules)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                         cwd=str(ROOT))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "TORCH_IN_GUI False" in out.stdout
    # the worker's prediction is the saved model rolled out here from the imported start
    from core.learning.baselines.model import load_model
    from core.learning.rollout import rollout
    from core.physics.builders import build
    from studio import pipeline

    system = build("chain", n=4)
    q0, p0 = pipeline.rollout_start(system, dict(displacement=0.1, momentum=0.1, seed=0))
    ref = rollout(load_model(tmp_path / "m.npz"), system, q0, p0, 0.01, 24, save_every=3)
    pred = np.load(tmp_path / "pred.npy")
    assert pred.shape == ref.q.shape
    assert np.allclose(pred, ref.q, rtol=0, atol=1e-12)

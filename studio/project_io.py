"""Between the studio's live state and a saved :class:`core.files.project.Project`.

* :func:`entry_to_record` / :func:`record_to_entry`: one row of the results
  table (``studio.session.ModelEntry``) <-> ``core.files.project.ModelRecord``;
* :func:`buffer_to_record` / :func:`record_to_buffer`: the roll-out on the
  timeline (``RolloutBuffer``, its filled frames) <-> ``RolloutRecord``;
* :func:`window_to_project`: everything the main window shows -- system and
  how it was built, the panels' values, the models, the roll-out, imported
  ground truth, and the view (frame, layout, colouring, camera, playback);
* :func:`apply_project`: the reverse, so that opening a saved project
  restores what the user saw. It is only called with a project that loaded
  completely, so a bad file never changes the window.

The menus, autosave, recovery, recent files and drag and drop that use these
live in :mod:`studio.project_controller`.
"""
from __future__ import annotations

import re

import numpy as np

from core.files.project import ModelRecord, Project, RolloutRecord

from .rollout_buffer import RolloutBuffer


# ----------------------------------------------------------------------
# models
# ----------------------------------------------------------------------
def entry_to_record(entry) -> ModelRecord:
    return ModelRecord(name=entry.name, method=entry.method, settings=dict(entry.settings or {}),
                       system=entry.system, model=entry.model, dataset=entry.dataset,
                       fit_time=float(entry.fit_time), test_mse=float(entry.test_mse),
                       data_time=float(entry.data_time or 0.0),
                       loss=None if entry.loss is None else np.asarray(entry.loss, dtype=float),
                       final_position_mse=entry.final_position_mse, max_abs_drift=entry.max_abs_drift,
                       info=dict(entry.info or {}))


def record_to_entry(rec: ModelRecord):
    from .session import ModelEntry

    info = dict(rec.info or {})
    if rec.note:
        info["note"] = rec.note
    return ModelEntry(name=rec.name, method=rec.method, settings=dict(rec.settings or {}), model=rec.model,
                      system=rec.system, dataset=rec.dataset, fit_time=rec.fit_time, test_mse=rec.test_mse,
                      data_time=rec.data_time, loss=None if rec.loss is None else [float(x) for x in rec.loss],
                      final_position_mse=rec.final_position_mse, max_abs_drift=rec.max_abs_drift, info=info)


# ----------------------------------------------------------------------
# roll-outs
# ----------------------------------------------------------------------
def buffer_to_record(buf: RolloutBuffer | None) -> RolloutRecord | None:
    """The filled frames of a roll-out (None when there is nothing to keep)."""
    if buf is None or buf.n_filled < 1:
        return None
    n = buf.n_filled
    truth = buf.trajectory("truth", n)
    pred = buf.trajectory("prediction", n) if buf.with_prediction else None
    return RolloutRecord(truth=truth, prediction=pred, model_name=buf.model_name, label=buf.label,
                         zero_shot=bool(buf.zero_shot), steps=int(buf.steps))


def record_to_buffer(rec: RolloutRecord) -> RolloutBuffer:
    from .export.run import buffer_from_record

    return buffer_from_record(rec)


# ----------------------------------------------------------------------
# the window
# ----------------------------------------------------------------------
def view_state(window) -> dict:
    from .export.gui import camera_state

    v = window.views
    return {"frame": int(window.time.frame), "layout": v.layout_mode, "colour": v.colour_mode,
            "camera": camera_state(v.truthView.view.camera), "speed": float(window.time.speed),
            "loop": window.time.loop}


def ui_state(window) -> dict:
    mp = window.modelsPanel
    return {"system": window.systemPanel.state(), "train": window.trainPanel.state(),
            "zero_shot": {"factor": mp.factorSpin.value(), "steps": mp.stepsSpin.value(),
                          "save_every": mp.saveEverySpin.value()}}


def window_to_project(window, ground_truth=(), name: str = "") -> Project:
    s = window.session
    ui = ui_state(window)
    train = ui["train"]
    simulation = {**(train.get("simulation") or {}), **(ui["system"].get("start") or {})}
    return Project(system=s.system, system_source=dict(s.system_source or {}), simulation=simulation,
                   method=str(train.get("method") or s.method or ""),
                   model_settings=dict(train.get("models") or {}),
                   models=[entry_to_record(e) for e in s.models], current_model=int(s.current),
                   rollout=buffer_to_record(s.rollout), ground_truth=list(ground_truth),
                   view=view_state(window), ui=ui, name=name)


def apply_project(window, project: Project) -> None:
    """Show ``project`` in ``window`` (running jobs are stopped first)."""
    s = window.session
    window.time.pause()
    window._pending_rollout = None
    for jobs in (window.trainJobs, window.rolloutJobs):
        if jobs.is_running():
            jobs.shutdown()
    ui = project.ui or {}
    if isinstance(ui.get("system"), dict):
        window.systemPanel.restore(ui["system"])
    if isinstance(ui.get("train"), dict):
        window.trainPanel.restore(ui["train"])
    zs = ui.get("zero_shot") or {}
    mp = window.modelsPanel
    for key, spin in (("factor", mp.factorSpin), ("steps", mp.stepsSpin), ("save_every", mp.saveEverySpin)):
        if isinstance(zs.get(key), int):
            spin.setValue(zs[key])

    # models first (the table), then the system (which clears the views), then the roll-out
    s.models = [record_to_entry(r) for r in project.models]
    s._counter = max([_number(e.name) for e in s.models] + [0])
    s.current = -1
    s.modelsChanged.emit()
    if project.system is not None:
        s.set_system(project.system, dict(project.system_source or {}))
    if 0 <= project.current_model < len(s.models):
        s.set_current(project.current_model)
    else:
        s.currentModelChanged.emit(s.current)
    if project.rollout is not None:
        s.start_rollout(record_to_buffer(project.rollout))
        s.finish_rollout()

    view = project.view or {}
    if view.get("layout"):
        window.views.set_layout(view["layout"])
    if view.get("colour"):
        window.views.set_colour_mode(view["colour"])
    cam = view.get("camera") or {}
    camera = window.views.truthView.view.camera
    for key in ("fov", "elevation", "azimuth", "scale_factor"):
        if isinstance(cam.get(key), (int, float)):
            setattr(camera, key, float(cam[key]))
    if isinstance(cam.get("center"), list) and len(cam["center"]) == 3:
        camera.center = tuple(float(x) for x in cam["center"])
    if view.get("loop") in ("once", "loop", "bounce"):
        window.time.set_loop(view["loop"])
    if isinstance(view.get("speed"), (int, float)) and view["speed"] > 0:
        window.time.set_speed(float(view["speed"]))
    if isinstance(view.get("frame"), int):
        window.time.set_frame(view["frame"])
    window.undo.clear()


def _number(name: str) -> int:
    m = re.search(r"-(\d+)$", str(name))
    return int(m.group(1)) if m else 0

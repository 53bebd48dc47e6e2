"""The studio's project model: what the user has, free of widgets.

:class:`Session` holds the current system (and how it was built), the
simulation and model settings, the fitted models (the results table) and the
current roll-out. Widgets observe it through its Qt signals (QtCore only: no
widgets, no GL) and write back through its methods; the main window runs the
background jobs and feeds their results in here.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from PySide6.QtCore import QObject, Signal

from core.physics.system import System

from .defaults import SIMULATION
from .rollout_buffer import RolloutBuffer


@dataclass
class ModelEntry:
    """One fitted model in the project's results table."""

    name: str
    method: str
    settings: dict
    model: Any
    system: System                 # the system it was fitted on
    dataset: Any
    fit_time: float
    test_mse: float
    data_time: float = 0.0
    loss: list | None = None
    final_position_mse: float | None = None
    max_abs_drift: float | None = None
    info: dict = field(default_factory=dict)

    def row(self) -> dict:
        """The values shown in the results table."""
        s = self.settings
        widths = [s[k] for k in ("node_width", "edge_width", "message_width") if k in s]
        width = "/".join(str(x) for x in widths) if widths else (s.get("width") or s.get("hidden") or "")
        return {
            "Model": self.name,
            "Method": self.method + (f" ({s['sampler']})" if "sampler" in s else "")
                      + (f" ({s['optimizer']})" if "optimizer" in s else ""),
            "Encoding": s.get("encoding", ""),
            "Widths": str(width),
            "Particles": self.system.n,
            "Fit time [s]": self.fit_time,
            "Test MSE": self.test_mse,
            "Roll-out MSE (end)": self.final_position_mse,
            "Max |drift|": self.max_abs_drift,
        }


class Session(QObject):
    systemChanged = Signal(object)          # System
    modelsChanged = Signal()
    currentModelChanged = Signal(int)
    rolloutStarted = Signal(object)         # RolloutBuffer
    rolloutExtended = Signal(int)           # frames filled
    rolloutFinished = Signal(object)        # RolloutBuffer
    message = Signal(str)

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self.system: System | None = None
        self.system_source: dict = {}
        self.simulation: dict = dataclasses.asdict(SIMULATION)
        self.method: str = "rfhgn"
        self.model_settings: dict[str, dict] = {}
        self.models: list[ModelEntry] = []
        self.current: int = -1
        self.rollout: RolloutBuffer | None = None
        self._counter = 0

    # -- system -------------------------------------------------------------
    def set_system(self, system: System, source: dict | None = None) -> None:
        self.system = system
        self.system_source = dict(source or {})
        self.systemChanged.emit(system)

    # -- models -------------------------------------------------------------
    def next_name(self, method: str) -> str:
        self._counter += 1
        return f"{method}-{self._counter}"

    def add_model(self, entry: ModelEntry) -> int:
        self.models.append(entry)
        self.modelsChanged.emit()
        self.set_current(len(self.models) - 1)
        return self.current

    def remove_model(self, index: int) -> None:
        if 0 <= index < len(self.models):
            del self.models[index]
            if self.current >= len(self.models):
                self.current = len(self.models) - 1
            self.modelsChanged.emit()
            self.currentModelChanged.emit(self.current)

    def set_current(self, index: int) -> None:
        if index != self.current and -1 <= index < len(self.models):
            self.current = index
            self.currentModelChanged.emit(index)

    def current_model(self) -> ModelEntry | None:
        return self.models[self.current] if 0 <= self.current < len(self.models) else None

    # -- roll-out -----------------------------------------------------------
    def start_rollout(self, buffer: RolloutBuffer) -> None:
        self.rollout = buffer
        self.rolloutStarted.emit(buffer)

    def add_rollout_chunk(self, which: str, traj) -> None:
        if self.rollout is None:
            return
        before = self.rollout.n_filled
        self.rollout.add(which, traj)
        if self.rollout.n_filled != before:
            self.rolloutExtended.emit(self.rollout.n_filled)

    def finish_rollout(self) -> None:
        if self.rollout is None:
            return
        self.rollout.finished = True
        entry = self.current_model()
        buf = self.rollout
        if entry is not None and buf.with_prediction and buf.n_filled > 1 and not buf.zero_shot \
                and buf.model_name == entry.name:
            m = buf.measures()
            entry.final_position_mse = m["final_position_mse"]
            entry.max_abs_drift = m["max_abs_drift_prediction"]
            self.modelsChanged.emit()
        self.rolloutFinished.emit(buf)

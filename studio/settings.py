"""Persistent settings (window layout, last used values) through QSettings.

The studio stores its state in an INI file. By default that is Qt's
per-user location for organisation ``HGN`` / application ``HGN Studio``;
the environment variable ``HGN_STUDIO_SETTINGS`` names another file (the
tests point it into a temporary folder so they never touch the user's own
settings). Values of forms are stored as JSON strings, so types survive.
"""
from __future__ import annotations

import json
import os

from PySide6.QtCore import QSettings

from .defaults import SETTINGS_APP, SETTINGS_ENV, SETTINGS_ORG


def open_settings() -> QSettings:
    path = os.environ.get(SETTINGS_ENV)
    if path:
        return QSettings(path, QSettings.IniFormat)
    return QSettings(QSettings.IniFormat, QSettings.UserScope, SETTINGS_ORG, SETTINGS_APP)


def save_json(settings: QSettings, key: str, value) -> None:
    settings.setValue(key, json.dumps(value, default=_default))


def load_json(settings: QSettings, key: str, fallback=None):
    raw = settings.value(key)
    if raw is None:
        return fallback
    try:
        return json.loads(raw)
    except (TypeError, ValueError):
        return fallback


def _default(o):
    try:
        import numpy as np

        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
    except ImportError:  # pragma: no cover
        pass
    if isinstance(o, tuple):
        return list(o)
    return str(o)

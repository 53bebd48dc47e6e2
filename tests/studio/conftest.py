"""Fixtures of the studio's GUI tests.

They run under Xvfb (pytest-xvfb starts it; the 3D views need OpenGL, which
Qt's offscreen platform does not offer). Every test gets its own settings
file in a temporary folder through HGN_STUDIO_SETTINGS, so the user's own
studio settings are never read or written.
"""
from __future__ import annotations

import pytest

from studio_helpers import drop_pacer_pieces, make_window


@pytest.fixture(autouse=True)
def isolated_settings(tmp_path, monkeypatch):
    path = tmp_path / "studio-settings.ini"
    monkeypatch.setenv("HGN_STUDIO_SETTINGS", str(path))
    return path


@pytest.fixture(autouse=True)
def empty_pacer():
    """Every test starts with an empty pacer: the window's one pacer lives as long as the process."""
    drop_pacer_pieces()


@pytest.fixture
def window(qtbot):
    return make_window(qtbot)

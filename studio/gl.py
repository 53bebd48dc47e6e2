"""Choose vispy's Qt backend once, before the first canvas is made.

The studio's canvases live inside PySide6 widgets, so vispy must use its
``pyside6`` backend (the QApplication is the studio's own). Under Xvfb with
Mesa llvmpipe this renders; Qt's ``offscreen`` platform does not (see
docs/platform.md).
"""
from __future__ import annotations

_done = False


def ensure_backend() -> None:
    global _done
    if _done:
        return
    import vispy

    try:
        vispy.use(app="pyside6")
    except RuntimeError:
        # another backend was chosen earlier in this process (e.g. by a test); keep it
        pass
    _done = True

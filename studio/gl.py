"""Which vispy backend draws, chosen once (Qt-free: no widget imports).

* :func:`ensure_backend` -- the studio's canvases live inside PySide6
  widgets, so vispy uses its ``pyside6`` backend (the QApplication is the
  studio's own). Under Xvfb with Mesa llvmpipe this renders; Qt's
  ``offscreen`` platform does not (see docs/platform.md).
* :func:`egl_available`, :func:`egl_app` -- vispy's EGL backend, which
  renders without any window (headless export, and the views' default
  off-screen mode, :mod:`studio.widgets.surfaces`).
* :func:`surface_mode` -- ``"offscreen"`` (EGL) or ``"widget"`` (a Qt OpenGL
  widget) for the live views; ``HGN_STUDIO_VIEWS=widget|offscreen`` forces one.
* :func:`studio_app` -- the vispy application the views render with, which
  exports inside the studio use too.
"""
from __future__ import annotations

import os

#: environment variable that forces the views' surface mode
ENV = "HGN_STUDIO_VIEWS"
_done = False
_egl_app = None
_egl_ok: bool | None = None


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


def egl_available() -> bool:
    """Whether vispy's EGL backend loads and can render here (probed once
    with a tiny canvas).

    vispy opens the default EGL display; Mesa would pick the X11 platform
    from the environment and fail on a 16-bit X server (pytest-xvfb's
    default). The probe therefore sets ``EGL_PLATFORM=surfaceless`` (unless
    the user set one) while vispy opens its display, and restores the
    environment afterwards: the platform only matters when the display is
    opened, and Qt's own GL (GLX on X11, explicit platforms with EGL) is not
    affected.
    """
    global _egl_ok
    if _egl_ok is None:
        prev = os.environ.get("EGL_PLATFORM")
        if prev is None:
            os.environ["EGL_PLATFORM"] = "surfaceless"
        try:
            from vispy import scene
            from vispy.app.backends import _egl

            _egl_ok = bool(_egl.available)
            if _egl_ok:
                probe = scene.SceneCanvas(app=egl_app(), size=(8, 8), show=False)
                probe.render()
                probe.close()
        except Exception:  # no libEGL, no config, no context: use the widget mode
            _egl_ok = False
        finally:
            if prev is None:
                os.environ.pop("EGL_PLATFORM", None)
    return _egl_ok


def egl_app():
    """The one vispy EGL application of this process."""
    global _egl_app
    if _egl_app is None:
        import vispy.app

        _egl_app = vispy.app.Application("egl")
    return _egl_app


def surface_mode() -> str:
    """``"offscreen"`` where EGL works (or when forced), else ``"widget"``."""
    mode = os.environ.get(ENV, "").strip().lower()
    if mode in ("widget", "offscreen"):
        return mode if mode == "widget" or egl_available() else "widget"
    return "offscreen" if egl_available() else "widget"


def studio_app():
    """The vispy application the studio's own views render with: EGL
    off-screen where it works, else None (the Qt backend). Exports inside
    the studio draw with the same one."""
    return egl_app() if surface_mode() == "offscreen" else None

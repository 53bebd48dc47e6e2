"""Where a vispy canvas draws: a Qt OpenGL widget, or an offscreen EGL
buffer shown as an image.

Two ways to put a ``vispy.scene.SceneCanvas`` into the window:

* ``"widget"`` -- the canvas is vispy's QOpenGLWidget. Simple, and the right
  choice with a hardware GPU. But once a window holds a QOpenGLWidget, Qt
  composes the *whole window* through OpenGL on every repaint of any widget
  in it; under Mesa llvmpipe (software rendering, the studio's reference
  machine) that costs tens of milliseconds per frame for a full-HD window and
  halves the playback rate.
* ``"offscreen"`` (default where vispy's EGL backend works) -- the canvas
  renders into an EGL pbuffer/framebuffer object (no window), the picture is
  read back and painted by a plain raster widget (:class:`OffscreenSurface`).
  The window stays raster, so only the views' own rectangles are flushed.
  Mouse and wheel events of the surface are forwarded to the canvas, so the
  camera (rotate, pan, zoom) works as in the widget mode.

``HGN_STUDIO_VIEWS=widget|offscreen`` forces one (:func:`studio.gl.surface_mode`).
The offscreen mode is also what headless rendering (video export,
screenshots without a window) uses.
"""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QImage, QPainter
from PySide6.QtWidgets import QSizePolicy, QWidget

from ..gl import egl_app
from ..pacing import pacer


def make_canvas(mode: str, parent: QWidget, background, size=(400, 300)):
    """A SceneCanvas for the given mode (its ``native`` is None offscreen)."""
    from vispy import scene

    if mode == "offscreen":
        return scene.SceneCanvas(app=egl_app(), keys=None, bgcolor=background, size=size, show=False)
    # autoswap off: Qt composes a QOpenGLWidget itself; vispy's extra swap
    # only waits for the software renderer once more per frame
    return scene.SceneCanvas(keys=None, bgcolor=background, parent=parent, show=False, autoswap=False)


_BUTTONS = {Qt.LeftButton: 1, Qt.RightButton: 2, Qt.MiddleButton: 3}


def _modifiers(ev):
    from vispy.util import keys

    m = ev.modifiers()
    out = []
    if m & Qt.ShiftModifier:
        out.append(keys.SHIFT)
    if m & Qt.ControlModifier:
        out.append(keys.CONTROL)
    if m & Qt.AltModifier:
        out.append(keys.ALT)
    if m & Qt.MetaModifier:
        out.append(keys.META)
    return tuple(out)


class OffscreenSurface(QWidget):
    """Shows what an offscreen canvas renders; forwards mouse input to it.

    Drawing is lazy and coalesced: any change (new positions, camera moved)
    marks the surface dirty through the canvas's update hook; the surface
    renders once in a later event-loop turn of its own, through the window's
    :func:`~studio.pacing.pacer` (one render or plot update per turn: each
    render waits for the software renderer, 15-45 ms on a busy machine), and
    then repaints its picture. A hidden surface (a placeholder shown, the
    overlay layout) is not rendered until it is shown; a paint event that
    finds it still dirty (shown again, ``grab()``) renders at once.
    ``frames`` counts renders.
    """

    rendered = Signal()

    def __init__(self, canvas, parent: QWidget | None = None):
        super().__init__(parent)
        self.canvas = canvas
        self.frames = 0
        self._image: QImage | None = None
        self._array = None
        self._fbo = None
        self._fbo_size = None
        self._dirty = True
        self.setAttribute(Qt.WA_OpaquePaintEvent, True)
        self.setMouseTracking(False)
        self.setFocusPolicy(Qt.ClickFocus)
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Expanding)
        self.setMinimumSize(160, 120)
        # every canvas.update() (camera change, visual change) asks us to repaint
        canvas._backend._vispy_update = self.mark_dirty

    def sizeHint(self) -> QSize:  # noqa: N802
        return QSize(400, 300)

    def mark_dirty(self) -> None:
        self._dirty = True
        pacer().later(self, self._render_pending)

    def _render_pending(self) -> None:
        """The pacer's turn: render if still dirty and shown."""
        try:
            if not self._dirty or not self.isVisible():
                return            # drawn meanwhile (paintEvent), or queued again when shown
        except RuntimeError:      # its Qt object was deleted
            return
        self.render()
        self.update()

    def showEvent(self, ev):  # noqa: N802
        # changed while hidden (a placeholder shown, the overlay layout): the
        # new picture in a pacer turn; the paint that follows the show draws
        # the last picture meanwhile
        if self._dirty:
            self.mark_dirty()
        super().showEvent(ev)

    # -- rendering -----------------------------------------------------------
    def render(self) -> np.ndarray:
        """Draw the scene now; returns the (h, w, 4) RGBA picture."""
        from vispy import gloo

        c = self.canvas
        w, h = max(self.width(), 1), max(self.height(), 1)
        if tuple(c.size) != (w, h):
            c.size = (w, h)
            c.events.resize(size=(w, h), physical_size=(w, h))
        c.set_current()
        if self._fbo is None or self._fbo_size != (w, h):
            self._fbo = gloo.FrameBuffer(color=gloo.RenderBuffer((h, w, 4)), depth=gloo.RenderBuffer((h, w)))
            self._fbo_size = (w, h)
        c.push_fbo(self._fbo, (0, 0), (w, h))
        try:
            c.context.clear(color=c.bgcolor, depth=True)
            c.draw_visual(c.scene)
            img = self._fbo.read()
        finally:
            c.pop_fbo()
        pacer().cancel(self)      # drawn: a render still waiting in the queue is moot
        self._array = np.ascontiguousarray(img)
        self._image = QImage(self._array.data, w, h, 4 * w, QImage.Format_RGBA8888)
        self._dirty = False
        self.frames += 1
        self.rendered.emit()
        return self._array

    def paintEvent(self, ev):  # noqa: N802
        # a render waiting for its pacer turn is not done inside this paint
        # (the window's repaint would hold it): the last picture until then,
        # stretched to a new size (a surface shown again in a stack, whose
        # hidden page kept its old size; a resized window); without a
        # picture, or dirty with no render queued (e.g. grab()), the render now
        if self._image is None or (self._dirty and not pacer().pending(self)):
            self.render()
        p = QPainter(self)
        if self._image.size() == self.size():
            p.drawImage(0, 0, self._image)
        else:
            p.drawImage(self.rect(), self._image)
        p.end()

    def resizeEvent(self, ev):  # noqa: N802
        # the picture at the new size in a pacer turn (see paintEvent)
        self.mark_dirty()
        super().resizeEvent(ev)

    # -- input forwarded to the canvas (camera interaction) --------------------
    def _pos(self, ev):
        p = ev.position()
        return (float(p.x()), float(p.y()))

    @staticmethod
    def _buttons(ev) -> list[int]:
        held = ev.buttons()
        return [b for q, b in _BUTTONS.items() if held & q]

    def _kw(self, ev) -> dict:
        return {"native": ev, "pos": self._pos(ev), "buttons": self._buttons(ev), "modifiers": _modifiers(ev)}

    def mousePressEvent(self, ev):  # noqa: N802
        b = _BUTTONS.get(ev.button())
        if b is not None:
            self.canvas._backend._vispy_mouse_press(button=b, **self._kw(ev))

    def mouseReleaseEvent(self, ev):  # noqa: N802
        b = _BUTTONS.get(ev.button())
        if b is not None:
            self.canvas._backend._vispy_mouse_release(button=b, **self._kw(ev))

    def mouseMoveEvent(self, ev):  # noqa: N802
        self.canvas._backend._vispy_mouse_move(**self._kw(ev))

    def mouseDoubleClickEvent(self, ev):  # noqa: N802
        b = _BUTTONS.get(ev.button())
        if b is not None:
            self.canvas._backend._vispy_mouse_double_click(button=b, **self._kw(ev))

    def wheelEvent(self, ev):  # noqa: N802
        d = ev.angleDelta()
        self.canvas.events.mouse_wheel(native=ev, delta=(d.x() / 120.0, d.y() / 120.0), pos=self._pos(ev),
                                       modifiers=_modifiers(ev))
        ev.accept()


class WidgetSurface:
    """The widget mode's counterpart of OffscreenSurface (same small API)."""

    def __init__(self, canvas):
        self.canvas = canvas
        self.widget = canvas.native
        self.frames = 0
        self.widget.setMinimumSize(160, 120)
        self.widget.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Expanding)
        canvas.events.draw.connect(self._drawn)
        self.rendered = None

    def _drawn(self, _ev):
        self.frames += 1

    def mark_dirty(self) -> None:
        self.canvas.update()

    def render(self) -> np.ndarray:
        return np.asarray(self.canvas.render(alpha=True))



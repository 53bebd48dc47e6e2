"""The studio's look: Qt's Fusion style with a dark palette, the style sheet
``assets/style.qss`` and pyqtgraph colours to match the dark 3D views.

Every colour is :mod:`studio.scene.palette`'s: the Qt palette below, the
style sheet's ``$name`` values (:func:`style_sheet`) and pyqtgraph's
foreground.
"""
from __future__ import annotations

from pathlib import Path
from string import Template

from .scene import palette as P

ASSETS = Path(__file__).resolve().parent.parent / "assets"


def style_sheet() -> str:
    """``assets/style.qss`` with its ``$name`` colours filled in from the palette."""
    qss = ASSETS / "style.qss"
    if not qss.exists():
        return ""
    return Template(qss.read_text()).substitute(P.style_values())


def apply_style(app) -> None:
    import pyqtgraph as pg
    from PySide6.QtGui import QColor, QIcon, QPalette

    def c(colour):
        return QColor(P.hex_of(colour))

    app.setStyle("Fusion")
    pal = QPalette()
    text = c(P.TEXT)
    pal.setColor(QPalette.Window, c(P.WINDOW))
    pal.setColor(QPalette.WindowText, text)
    pal.setColor(QPalette.Base, c(P.BASE))
    pal.setColor(QPalette.AlternateBase, c(P.WINDOW))
    pal.setColor(QPalette.Text, text)
    pal.setColor(QPalette.Button, c(P.BUTTON))
    pal.setColor(QPalette.ButtonText, text)
    pal.setColor(QPalette.ToolTipBase, c(P.BUTTON))
    pal.setColor(QPalette.ToolTipText, text)
    pal.setColor(QPalette.Highlight, c(P.HIGHLIGHT))
    pal.setColor(QPalette.HighlightedText, QColor("#ffffff"))
    pal.setColor(QPalette.PlaceholderText, c(P.PLACEHOLDER_TEXT))
    for role in (QPalette.Text, QPalette.ButtonText, QPalette.WindowText):
        pal.setColor(QPalette.Disabled, role, c(P.DISABLED_TEXT))
    app.setPalette(pal)
    app.setStyleSheet(style_sheet())
    icon = ASSETS / "icon.png"
    if icon.exists():
        app.setWindowIcon(QIcon(str(icon)))
    pg.setConfigOptions(antialias=True, foreground=P.hex_of(P.AXIS))

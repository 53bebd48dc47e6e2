"""The studio's look: Qt's Fusion style with a dark palette, the style sheet
``assets/style.qss`` and pyqtgraph colours to match the dark 3D views."""
from __future__ import annotations

from pathlib import Path

ASSETS = Path(__file__).resolve().parent.parent / "assets"


def apply_style(app) -> None:
    from PySide6.QtGui import QColor, QIcon, QPalette

    import pyqtgraph as pg

    app.setStyle("Fusion")
    pal = QPalette()
    base, window, text = QColor("#1b2029"), QColor("#222833"), QColor("#dfe3ea")
    pal.setColor(QPalette.Window, window)
    pal.setColor(QPalette.WindowText, text)
    pal.setColor(QPalette.Base, base)
    pal.setColor(QPalette.AlternateBase, window)
    pal.setColor(QPalette.Text, text)
    pal.setColor(QPalette.Button, QColor("#2b3240"))
    pal.setColor(QPalette.ButtonText, text)
    pal.setColor(QPalette.ToolTipBase, QColor("#2b3240"))
    pal.setColor(QPalette.ToolTipText, text)
    pal.setColor(QPalette.Highlight, QColor("#3d7bd9"))
    pal.setColor(QPalette.HighlightedText, QColor("#ffffff"))
    pal.setColor(QPalette.PlaceholderText, QColor("#7c8594"))
    for role in (QPalette.Text, QPalette.ButtonText, QPalette.WindowText):
        pal.setColor(QPalette.Disabled, role, QColor("#6b7280"))
    app.setPalette(pal)
    qss = ASSETS / "style.qss"
    if qss.exists():
        app.setStyleSheet(qss.read_text())
    icon = ASSETS / "icon.png"
    if icon.exists():
        app.setWindowIcon(QIcon(str(icon)))
    pg.setConfigOptions(antialias=True, foreground="#c9ced8")

"""Entry point of the desktop studio (placeholder window until the studio lands)."""
from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    from PySide6.QtWidgets import QApplication, QLabel

    app = QApplication.instance() or QApplication(sys.argv[:1])
    label = QLabel("HGN Studio: the studio is under construction.\n"
                   "The engine is ready from the command line: python -m core --help")
    label.setMargin(40)
    label.setWindowTitle("HGN Studio")
    label.show()
    return app.exec()

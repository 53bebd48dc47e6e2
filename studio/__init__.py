"""HGN Studio's desktop app: a PySide6/pyqtgraph/vispy view over ``core``."""

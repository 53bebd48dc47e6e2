"""Entry point of the desktop studio: ``python main.py`` (see README.md).

``main(argv)`` returns the process exit code. With no arguments it opens the
studio window. Sub-commands (for example ``export-video``, added later) are
dispatched on ``argv[0]`` through :data:`COMMANDS`, a table of
``name -> "module:function"`` entries whose functions take the remaining
arguments and return an exit code.
"""
from __future__ import annotations

import argparse
import importlib
import sys

#: sub-commands: name -> "module:function(argv) -> int" (filled as they land)
COMMANDS: dict[str, str] = {
    "export-video": "studio.export.cli:main",
}


#: modules the window process uses after start-up (the settings of a fit, the
#: results of jobs, the roll-out's start, the export dialog); imported at
#: start-up so that no click waits for an import. Heavy libraries (torch,
#: the video encoder, the export's renderer) are only ever imported by the
#: worker processes (studio.workers).
GUI_MODULES = ("core.learning.rfhgn.config", "core.learning.metrics", "core.physics.initial",
               "core.physics.reference", "core.learning.baselines.optimizers", "studio.export.gui",
               "studio.export.run", "core.cluster.sweep")


def prepare_gui_process() -> None:
    """What the window's process does once, before the window: start the
    idle worker process (it imports numpy, scipy and core meanwhile), keep
    torch out of this process (baseline models open packed), and import
    what the window will use later."""
    from . import workers

    workers.warm_up()
    workers.keep_torch_out()
    for name in GUI_MODULES:
        try:
            importlib.import_module(name)
        except ImportError:  # pragma: no cover - a module that moved: imported on first use instead
            pass


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="main.py", description="HGN Studio: draw or generate a particle "
                                "system, train a random-feature Hamiltonian graph network, and compare "
                                "its roll-outs with the ground truth.",
                                epilog="commands: " + ", ".join(f"{c} (python main.py {c} --help)"
                                                                for c in COMMANDS))
    p.add_argument("--reset-settings", action="store_true",
                   help="start from the default settings (forget the last used values and layout)")
    p.add_argument("--screenshot", metavar="PNG",
                   help="start, wait until the first system is shown, save a picture of the window "
                        "to PNG and quit (a check that the studio starts and draws)")
    return p


def run_command(name: str, argv: list[str]) -> int:
    import importlib

    mod, fn = COMMANDS[name].split(":")
    return int(getattr(importlib.import_module(mod), fn)(argv) or 0)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in COMMANDS:
        return run_command(argv[0], argv[1:])
    args = _parser().parse_args(argv)

    from PySide6.QtWidgets import QApplication

    from . import errors
    from .gl import ensure_backend

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("HGN Studio")
    app.setOrganizationName("HGN")
    prepare_gui_process()
    ensure_backend()
    from .main_window import MainWindow
    from .style import apply_style

    apply_style(app)
    window = MainWindow(restore=not args.reset_settings)
    if args.reset_settings:
        window.settings.clear()
    errors.install(window)
    window.show()
    if getattr(window, "projects", None) is not None and not args.screenshot:
        from PySide6.QtCore import QTimer

        QTimer.singleShot(0, window.projects.offer_recovery)   # after a crash: restore the autosave?
    if args.screenshot:
        from PySide6.QtCore import QTimer

        def shoot():
            if window.session.system is None:
                QTimer.singleShot(200, shoot)
                return
            from .pacing import pacer

            pacer().flush()                 # the views and plots drawn as they are now
            ok = window.grab().save(args.screenshot)
            print(f"saved {args.screenshot}" if ok else f"error: could not write {args.screenshot}")
            app.exit(0 if ok else 1)

        QTimer.singleShot(1500, shoot)
    try:
        return app.exec()
    finally:
        errors.uninstall()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

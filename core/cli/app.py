"""The command line: ``python -m core <command> ...`` (also ``hgn-core``).

The parser is assembled from command modules listed in :data:`COMMAND_MODULES`.
Each module exposes ``register(subparsers)``, which adds its subcommand(s)
with ``subparsers.add_parser(...)`` and sets ``func`` on them
(``parser.set_defaults(func=run)``); ``run(args)`` returns an exit code (or
None for 0). Adding a module (``core.cli.model`` for train, rollout and
evaluate) is one line in that list.

Errors a user can cause (bad arguments, :class:`~core.errors.HGNError` from
core, a cancelled job) print one line ``error: ...`` to stderr and exit with
code 2; they never show a traceback. Anything else is a bug and does. A
learned roll-out that diverged (``core.learning.rollout``) is written, marked
diverged, and the command prints one line ``error: ...`` saying where and
exits with code 3 (:data:`EXIT_DIVERGED`).
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

import numpy as np

from core.errors import Cancelled, HGNError

PROG = "python -m core"

#: modules that add subcommands, in the order they appear in --help
COMMAND_MODULES = [
    "core.cli.simulate",
    "core.cli.model",
    "core.cli.adapt",
    "core.cli.sweep",
]

#: exit code for user errors (bad arguments, bad files, invalid settings)
EXIT_USAGE = 2
#: exit code of a run that finished but whose result is marked diverged (a learned roll-out that blew up)
EXIT_DIVERGED = 3
EXIT_INTERRUPTED = 130


class UsageError(Exception):
    """A command-line mistake found by argparse (unknown option, bad value)."""


class Parser(argparse.ArgumentParser):
    """ArgumentParser whose errors become :class:`UsageError` instead of
    printing usage and calling ``sys.exit`` (so :func:`main` prints one line).
    Subparsers inherit this class."""

    def error(self, message):  # noqa: D401 - argparse API
        raise UsageError(f"{message} (see '{self.prog} --help')")


class HelpFormatter(argparse.HelpFormatter):
    """Wraps each paragraph of a description on its own (paragraphs are
    separated by a blank line) and keeps lines that start with two spaces
    (examples) as they are. Option help states its default itself."""

    def _fill_text(self, text, width, indent):
        out = []
        for para in text.split("\n\n"):
            if para.startswith("  ") or "\n  " in para:
                out.append("\n".join(indent + line for line in para.splitlines()))
            else:
                out.append(super()._fill_text(para, width, indent))
        return "\n\n".join(out)


def _register_info(subparsers) -> None:
    p = subparsers.add_parser(
        "info", help="say what a file holds (system, trajectories, dataset, extxyz, ...)",
        description="Print what one or more files hold: the kind of file, the system (particles, "
                    "potential, graph, box), the trajectories (frames, times, energy drift) or the "
                    "dataset (snapshots, split), and the stored arrays.",
        formatter_class=HelpFormatter)
    p.add_argument("files", nargs="+", metavar="FILE", help="HGN Studio .npz files or .xyz/.extxyz files")
    p.add_argument("--json", action="store_true",
                   help="print one JSON document per file instead (a list of them for several files): file, kind, "
                        "version, lines (the text info prints), arrays, the systems, trajectories or dataset, a "
                        "model's header, and damping and forcing where present")
    p.set_defaults(func=_run_info)


def _run_info(args) -> int:
    from core.files.kinds import describe, describe_json

    if args.json:
        import json

        docs = [describe_json(f) for f in args.files]
        print(json.dumps(docs[0] if len(docs) == 1 else docs, indent=2, allow_nan=False))
        return 0
    for k, f in enumerate(args.files):
        if k:
            print()
        print(describe(f))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The full parser: ``info`` plus every command module's subcommands."""
    parser = Parser(prog=PROG, formatter_class=HelpFormatter,
                    description="HGN Studio engine on the command line: build and simulate particle systems, "
                                "write trajectories and datasets, inspect files.",
                    epilog="Run '%(prog)s COMMAND --help' for the options of a command.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    _register_info(sub)
    parser.commands = list(sub.choices)  # for the "no command given" message
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); returns
    the exit code: 0 on success, 2 for a user error, 130 when interrupted."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if getattr(args, "func", None) is None:
            names = ", ".join(parser.commands)
            raise UsageError(f"no command given; choose one of: {names} (see '{PROG} --help')")
        # core checks its results for NaN/inf and says so in an HGNError; numpy's
        # RuntimeWarnings on the way there would only clutter the one error line
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            code = args.func(args)
    except SystemExit as exc:  # --help and --version exit through argparse
        return int(exc.code or 0) if not isinstance(exc.code, str) else EXIT_USAGE
    except UsageError as exc:
        _error(str(exc))
        return EXIT_USAGE
    except HGNError as exc:
        _error(str(exc))
        return EXIT_USAGE
    except Cancelled:
        _error("cancelled")
        return EXIT_USAGE
    except OSError as exc:  # the machine's answer (disk full, permission, name too long): not a bug of ours
        where = f": {exc.filename}" if getattr(exc, "filename", None) else ""
        _error(f"{exc.strerror or exc}{where}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        _error("interrupted")
        return EXIT_INTERRUPTED
    return int(code or 0)


def error_line(message: str) -> None:
    """Print ``message`` as the one line ``error: ...`` on stderr."""
    _error(message)


def _error(message: str) -> None:
    line = " ".join(str(message).split())  # one line, whatever the message held
    print(f"error: {line}", file=sys.stderr)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

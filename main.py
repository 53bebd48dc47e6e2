"""Launch HGN Studio: ``python main.py`` (see README.md).

Everything lives in ``studio.app``; this file only forwards to it, so that
``python main.py export-video ...`` and other sub-commands reach the same entry.
"""
import sys

if __name__ == "__main__":
    from studio.app import main

    sys.exit(main(sys.argv[1:]))

"""``python -m core``: the command line (see :mod:`core.cli.app`)."""
import sys

from core.cli import main

sys.exit(main())

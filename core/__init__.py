"""HGN Studio's engine: particle systems, exact ground truth, and RF-HGN fits.

No Qt, no vispy: the studio, the command line (``python -m core``), the tests
and the benchmarks all call into this package. Importing ``core`` is cheap;
torch is only imported by the modules that need it.
"""
from .errors import Cancelled, HGNError
from core.physics.potentials import POTENTIALS, PairPotential, make_potential
from core.physics.system import System

__all__ = ["HGNError", "Cancelled", "System", "PairPotential", "POTENTIALS", "make_potential"]

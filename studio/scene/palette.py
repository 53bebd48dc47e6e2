"""Every colour of the studio, in one place.

The 3D views, the video export, the pyqtgraph plots, the drawing canvas and
the style sheet all take their colours from here, so that a run has one
colour wherever it appears: ground truth blue, prediction orange.

Colours are RGBA tuples of floats in 0..1 (what vispy takes); :func:`rgb255`
and :func:`hex_of` give the forms Qt, pyqtgraph and style sheets take.
Plain Python, no imports: cheap to import anywhere (core excepted).
"""
from __future__ import annotations


def _hex(h: str, alpha: float = 1.0) -> tuple:
    h = h.lstrip("#")
    return (int(h[0:2], 16) / 255.0, int(h[2:4], 16) / 255.0, int(h[4:6], 16) / 255.0, float(alpha))


# -- the two runs ---------------------------------------------------------------
#: ground truth (spheres, curves, titles)
TRUTH = _hex("#4d9efa")
#: the model's prediction
PREDICTION = _hex("#fa8c33")
#: a third curve that is neither run (training loss)
LOSS = _hex("#b478f0")

# -- the 3D scene ---------------------------------------------------------------
#: behind the particles (views and video frames)
BACKGROUND = _hex("#10141c")
#: springs and bonds (opaque on purpose: blended lines cost 20 % more under
#: software rendering)
BOND = _hex("#757d8f")
#: periodic box outline
BOX = (0.6, 0.6, 0.65, 0.6)
#: colour map of per-particle quantities (error, speed, energy)
COLORMAP = "viridis"

# -- text and plot furniture ----------------------------------------------------
TEXT = _hex("#dbe0eb")
#: secondary text: empty-state messages, hints
MUTED = _hex("#8893a6")
#: titles of views and group boxes
TITLE = _hex("#9fb4d9")
#: plot frames and axes
AXIS = _hex("#c9ced8")
FRAME = (0.5, 0.52, 0.58, 1.0)
ZERO_LINE = (0.4, 0.42, 0.48, 1.0)
#: the time cursor of plots (a light grey, slightly translucent)
CURSOR = (0.88, 0.88, 0.88, 0.75)

# -- the window -----------------------------------------------------------------
WINDOW = _hex("#222833")
BASE = _hex("#1b2029")
BUTTON = _hex("#2b3240")
BORDER = _hex("#394152")
HIGHLIGHT = _hex("#3d7bd9")
ACCENT = _hex("#2f6fd0")
ACCENT_DISABLED = _hex("#34405a")
DISABLED_TEXT = _hex("#6b7280")
PLACEHOLDER_TEXT = _hex("#7c8594")
ERROR = _hex("#ff6b6b")
WARNING = _hex("#f0b35a")

# -- the drawing canvas and the potential plot ---------------------------------
#: (particles on the canvas are TRUTH: a drawn system becomes the ground truth)
CANVAS = _hex("#151a23")
SELECTION = _hex("#ffd166")
SELECTION_FILL = _hex("#ffd166", 30 / 255)
SPRING = _hex("#bec6d7")
SPRING_PREVIEW = _hex("#78dc8c")
PARTICLE_EDGE = _hex("#141e32")
CANVAS_TEXT = _hex("#a0aabe")
GRID = _hex("#28303e")
CANVAS_AXES = _hex("#465064")
POTENTIAL_CURVE = _hex("#78c878")
CUTOFF = _hex("#c87878")
ZERO_ENERGY = (0.5, 0.5, 0.5, 120 / 255)

def rgb255(c, alpha: bool = False) -> tuple:
    """(r, g, b) or (r, g, b, a) in 0..255 (Qt, pyqtgraph, image tests)."""
    out = tuple(int(round(255 * float(x))) for x in c[:4])
    return out if alpha else out[:3]


def hex_of(c) -> str:
    """'#rrggbb' (style sheets, QColor)."""
    r, g, b = rgb255(c)
    return f"#{r:02x}{g:02x}{b:02x}"


def with_alpha(c, alpha: float) -> tuple:
    return (float(c[0]), float(c[1]), float(c[2]), float(alpha))


def style_values() -> dict:
    """Names the style sheet (``assets/style.qss``) uses as ``$name``."""
    names = ("TEXT", "MUTED", "TITLE", "WINDOW", "BASE", "BUTTON", "BORDER", "HIGHLIGHT", "ACCENT",
             "ACCENT_DISABLED", "DISABLED_TEXT", "BACKGROUND", "ERROR", "WARNING", "TRUTH", "PREDICTION")
    return {n.lower(): hex_of(globals()[n]) for n in names}

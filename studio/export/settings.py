"""What a video export is asked to do: one validated dataclass, and the
defaults of every export choice in one place (the dialog and the command
line start from here)."""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

from core.errors import HGNError
from core.files.video import check_fps, check_size, format_for

from ..scene.colouring import COLOUR_MODES

#: layout key -> label. ``side``: truth | prediction with one camera;
#: ``overlay``: one view, the ground truth as rings around the opaque prediction.
LAYOUTS = {
    "side": "Side by side (truth | prediction)",
    "overlay": "Overlay (truth as rings, prediction solid)",
    "truth": "Ground truth only",
    "prediction": "Prediction only",
}
#: colour modes: the studio views' own (studio.scene.colouring)
COLOURS = COLOUR_MODES
#: the largest frame the export offers
MAX_WIDTH, MAX_HEIGHT = 1920, 1080
#: sizes offered by the dialog
SIZES = [(640, 360), (854, 480), (1280, 720), (1600, 900), (1920, 1080)]


@dataclass
class ExportSettings:
    """Choices of one video export (``stop`` None: to the last filled frame)."""

    width: int = 1280
    height: int = 720
    fps: float = 30.0
    start: int = 0
    stop: int | None = None
    stride: int = 1
    layout: str = "side"
    colour: str = "uniform"
    time_label: bool = True
    plot: bool = False               # energy-drift plot with a moving cursor below the views
    bonds: bool | None = None        # draw bonds; None: as the views do (up to VIEW.auto_bond_limit)
    crf: int | None = None           # quality (lower is better); None: the format's default
    preset: str | None = None        # H.264 speed preset; None: veryfast

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ExportSettings:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in (d or {}).items() if k in names})

    # ------------------------------------------------------------------
    def check(self, path=None, n_frames: int | None = None, with_prediction: bool = True) -> ExportSettings:
        """Raise HGNError naming the first bad choice; returns self."""
        fmt = format_for(path) if path is not None else None
        check_size(self.width, self.height, fmt)
        if self.width > MAX_WIDTH or self.height > MAX_HEIGHT:
            raise HGNError(f"video size {self.width}x{self.height} is larger than {MAX_WIDTH}x{MAX_HEIGHT}")
        check_fps(self.fps)
        if self.layout not in LAYOUTS:
            raise HGNError(f"unknown layout {self.layout!r}; choose one of {', '.join(LAYOUTS)}")
        if self.colour not in COLOURS:
            raise HGNError(f"unknown colouring {self.colour!r}; choose one of {', '.join(COLOURS)}")
        if not with_prediction and self.layout != "truth":
            raise HGNError(f"this roll-out has no prediction, so layout {self.layout!r} cannot be drawn; "
                           "use layout 'truth'")
        if not with_prediction and self.colour == "error":
            raise HGNError("colouring by error needs a prediction; this roll-out has none")
        for name in ("start", "stride"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int):
                raise HGNError(f"{name} must be a whole number, got {v!r}")
        if self.stop is not None and (isinstance(self.stop, bool) or not isinstance(self.stop, int)):
            raise HGNError(f"stop must be a whole number, got {self.stop!r}")
        if self.bonds not in (None, True, False):
            raise HGNError(f"bonds must be on, off or automatic, got {self.bonds!r}")
        if self.stride < 1:
            raise HGNError(f"stride must be >= 1, got {self.stride}")
        if self.start < 0:
            raise HGNError(f"start must be >= 0, got {self.start}")
        if n_frames is not None:
            self.frames(n_frames)
        if self.crf is not None and fmt is not None and fmt.key == "gif":
            raise HGNError("GIF has no quality setting (crf)")
        if self.preset is not None and fmt is not None and fmt.key != "mp4":
            raise HGNError("the speed preset applies to MP4 (H.264) only")
        return self

    def draw_bonds(self, system) -> bool:
        """Whether bonds are drawn for ``system``: fixed graphs without a box,
        as in the studio views; with ``bonds=None`` only up to the views' own
        limit (``VIEW.auto_bond_limit``: under software GL a line costs more
        than a sphere, and a dense lattice's bonds hide behind its spheres)."""
        from ..defaults import VIEW
        from ..scene.geometry import draws_bonds

        if not draws_bonds(system):
            return False
        return bool(self.bonds) if self.bonds is not None else len(system.edges) <= VIEW.auto_bond_limit

    def frames(self, n_frames: int) -> list[int]:
        """Indices of the roll-out frames to export (HGNError if none)."""
        stop = n_frames if self.stop is None else min(int(self.stop), n_frames)
        idx = list(range(int(self.start), stop, int(self.stride)))
        if not idx:
            raise HGNError(f"no frames to export: start {self.start}, stop {self.stop}, stride {self.stride} "
                           f"select nothing of the {n_frames} frames")
        return idx


def parse_size(text: str) -> tuple[int, int]:
    """'1280x720' -> (1280, 720); HGNError for anything else."""
    m = re.fullmatch(r"\s*(\d+)\s*[xX×]\s*(\d+)\s*", str(text))
    if not m:
        raise HGNError(f"size must look like 1280x720, got {text!r}")
    return int(m.group(1)), int(m.group(2))

"""Progress bars shared by the command modules (tqdm on stderr)."""
from __future__ import annotations


class StageBar:
    """``progress(stage, fraction)`` drawn as one tqdm bar per stage on stderr
    (train, rollout, evaluate, sweep, ``train --data DIR``)."""

    def __init__(self, disable: bool):
        self.disable = disable
        self.stage = None
        self.bar = None

    def __call__(self, stage: str, fraction: float) -> None:
        if self.disable:
            return
        from tqdm import tqdm

        if stage != self.stage:
            self.close()
            self.stage = stage
            self.bar = tqdm(total=1000, desc=stage, unit="‰", leave=False, dynamic_ncols=True,
                            bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}")
        pos = int(round(1000 * fraction))
        if pos > self.bar.n:
            self.bar.update(pos - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

"""Shared behaviour of the settings dataclasses (``RFConfig``, ``BaselineConfig``):
a plain dict round trip with clear errors for unknown names, and validated copies."""
from __future__ import annotations

import dataclasses
from typing import ClassVar

from .errors import HGNError


class SettingsMixin:
    """Mix into a dataclass whose ``__post_init__`` validates its fields.

    ``label`` names one setting in messages ("RF-HGN setting").
    """

    label: ClassVar[str] = "setting"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict):
        if not isinstance(d, dict):
            raise HGNError(f"{cls.label}s must be a mapping of names to values, got {type(d).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise HGNError(f"unknown {cls.label}(s): {', '.join(map(str, unknown))}; "
                           f"known are: {', '.join(sorted(names))}")
        return cls(**d)

    def replace(self, **changes):
        """A validated copy with some settings changed."""
        d = self.to_dict()
        d.update(changes)
        return type(self).from_dict(d)

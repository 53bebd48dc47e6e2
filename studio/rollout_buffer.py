"""The studio's name for :class:`core.learning.rollout_buffer.RolloutBuffer`
(the roll-out lives in core, so a project file stores the very object the
timeline shows). Kept so that ``from studio.rollout_buffer import
RolloutBuffer`` in the views and the export keeps working; new code imports
it from core."""
from __future__ import annotations

from core.learning.rollout_buffer import RolloutBuffer

__all__ = ["RolloutBuffer"]

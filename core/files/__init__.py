"""Files (on the container of :mod:`core.container`): systems/trajectories/datasets/models,
extended XYZ, studio projects and video encoding. Layouts are documented in
``FORMATS.md`` and ``PROJECT_FORMAT.md`` beside this file.

Every kind of file is listed in one registry, :mod:`core.files.kinds`; the
modules imported here register their kinds into it, so it is complete as soon
as any module of this package is imported (none of them imports torch or ASE
at import time)."""
from . import chunked, io, models, project, xyz  # noqa: F401  (each registers its file kinds)

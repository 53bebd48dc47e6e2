"""Files: the one container format, systems/trajectories/datasets/models,
extended XYZ, studio projects and video encoding. Layouts are documented in
``FORMATS.md`` and ``PROJECT_FORMAT.md`` beside this file."""

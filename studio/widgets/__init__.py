"""The studio's widgets: thin views over ``studio.session`` and ``studio.timeline``."""

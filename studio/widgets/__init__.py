"""The studio's widgets: thin views over ``studio.document``
(changed through ``studio.commands``) and ``studio.timeline``."""

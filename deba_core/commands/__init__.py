"""Sub-commands that train: ``deba run``, ``deba calibrate`` (importing registers them)."""

from . import calibrate, run  # noqa: F401

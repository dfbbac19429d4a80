"""Sub-commands that train: ``deba run``, ``deba calibrate`` (importing registers them)."""

from . import bench, calibrate, run  # noqa: F401

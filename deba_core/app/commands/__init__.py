"""Sub-commands that train: ``deba run``, ``deba calibrate`` (importing registers them)."""

from deba.app.commands import bench, calibrate, run  # noqa: F401

"""What DEBA reads from training: observations, the gradient probe, interval aggregation, collectors.

Imports ``deba.errors``, ``deba.registry`` and ``deba.profiles`` at most.
"""

from deba.signals.interval import IntervalAccumulator
from deba.signals.observation import Observation
from deba.signals.probe import GradientProbe, GradientSnapshot

__all__ = ["GradientProbe", "GradientSnapshot", "IntervalAccumulator", "Observation"]

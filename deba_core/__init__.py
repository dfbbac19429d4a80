"""DEBA: Dynamic Efficient Batch Adaptation for PyTorch.

Grows the training batch when training is stable and shrinks it when it is not, with every knob
taken from an architecture profile. See ``deba.BatchScheduler`` for the controller and README.md
for a tour.
"""

from __future__ import annotations

from .collectors import (
    GradientNormVariationCollector,
    GradientVarianceCollector,
    LossVariationCollector,
    MetricCollector,
)
from .decision import Decision
from .detection import Detection, build_model, detect, profile_for
from .errors import ConfigProblem, DebaConfigError, DebaError, DebaPluginError
from .observation import Observation
from .probe import GradientProbe, GradientSnapshot
from .profile import ArchitectureProfile, CalibrationSettings, Rule
from .profile_io import builtin_profiles, load_profile
from .registry import registry
from .scheduler import BatchScheduler, next_batch_size
from .scoring import ScoringStrategy
from .traits import ArchitectureTraits, measure_traits
from .sampler import AdaptiveBatchSampler
from .lr import LRCoupler
from .memory import find_max_micro_batch
from .callbacks import Callback
from .fit import FitResult, NonFiniteTraining, evaluate, fit
from deba.adapters.torch import DebaController  # noqa: E402 - needs the modules above

__version__ = "0.1.0"

__all__ = [
    "AdaptiveBatchSampler",
    "Callback",
    "DebaController",
    "FitResult",
    "LRCoupler",
    "NonFiniteTraining",
    "evaluate",
    "find_max_micro_batch",
    "fit",
    "ArchitectureProfile",
    "ArchitectureTraits",
    "BatchScheduler",
    "CalibrationSettings",
    "ConfigProblem",
    "DebaConfigError",
    "DebaError",
    "DebaPluginError",
    "Decision",
    "Detection",
    "GradientNormVariationCollector",
    "GradientProbe",
    "GradientSnapshot",
    "GradientVarianceCollector",
    "LossVariationCollector",
    "MetricCollector",
    "Observation",
    "Rule",
    "ScoringStrategy",
    "__version__",
    "build_model",
    "builtin_profiles",
    "detect",
    "load_profile",
    "measure_traits",
    "next_batch_size",
    "profile_for",
    "registry",
]

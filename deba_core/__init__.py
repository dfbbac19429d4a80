"""DEBA: Dynamic Efficient Batch Adaptation for PyTorch.

Grows the training batch when training is stable and shrinks it when it is not, with every knob
taken from an architecture profile. See ``deba.BatchScheduler`` for the controller and README.md
for a tour.
"""

from __future__ import annotations

from deba.errors import ConfigProblem, DebaConfigError, DebaError, DebaPluginError
from deba.registry import registry
from deba.profiles import (
    ArchitectureProfile,
    ArchitectureTraits,
    CalibrationSettings,
    Detection,
    Rule,
    build_model,
    builtin_profiles,
    detect,
    load_profile,
    measure_traits,
    profile_for,
)
from deba.signals import GradientProbe, GradientSnapshot, Observation
from deba.signals.collectors import (
    GradientNormVariationCollector,
    GradientVarianceCollector,
    LossVariationCollector,
    MetricCollector,
)
from deba.control import (
    BatchPolicy,
    BatchScheduler,
    Decision,
    GoodputPolicy,
    ScoringStrategy,
    StabilityPolicy,
    next_batch_size,
)
from deba.training.adapter import FrameworkAdapter
from deba.training.callbacks import Callback
from deba.training.controller import DebaController
from deba.training.fit import FitResult, NonFiniteTraining, evaluate, fit
from deba.training.lr import LRCoupler
from deba.training.memory import find_max_micro_batch
from deba.training.sampler import AdaptiveBatchSampler
from deba import control, profiles, signals, training  # noqa: E402 - subpackages as attributes

__version__ = "0.1.0"

__all__ = [
    "AdaptiveBatchSampler",
    "BatchPolicy",
    "FrameworkAdapter",
    "GoodputPolicy",
    "StabilityPolicy",
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

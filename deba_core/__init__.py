"""DEBA: Dynamic Efficient Batch Adaptation for PyTorch.

Grows the training batch when training is stable and shrinks it when it is not, with every knob
taken from an architecture profile. See ``deba.BatchScheduler`` for the controller and README.md
for a tour.

Two words name the two halves of every decision:

* a **strategy** (:class:`ScoringStrategy`, ``deba.strategies``) *scores stability*: it folds the
  collectors' metrics into one number in [0, 1] (1 = stable). It never picks a batch size.
* a **policy** (:class:`BatchPolicy`, ``deba.policies``) *decides the batch*: from the score and
  the measured signals (noise scale, throughput, progress) it asks to grow, shrink or hold.

The top level holds the front ends (:func:`fit`, :func:`evaluate`, :class:`FitResult`,
:class:`RunOptions`, :class:`DebaController`, :class:`AdaptiveBatchSampler`, :class:`Callback`),
the profile functions, the error types (defined in ``deba.errors``), one base class per extension
kind, and :class:`BatchScheduler`, :class:`Decision`, :class:`Observation` and ``registry``.
Everything else lives in one namespace per extension kind:

==================== ==========================================================================
``deba.policies``    BatchPolicy, Move, PolicySignals and the built-in policies
``deba.collectors``  MetricCollector, its base classes and every built-in collector (v1 and v2)
``deba.strategies``  ScoringStrategy and the built-in strategies
``deba.profiles``    ArchitectureProfile, traits, detection, loading
``deba.adapters``    framework adapters (``torch``, ``huggingface``, ``lightning``, ``distributed``)
``deba.errors``      the error types
``deba.signals``     Observation, the gradient probe and snapshot, the noise-scale estimator
``deba.training``    the run's parts: ``run`` (DebaRun), ``step`` (the step engine), ``lr``
                     (LRCoupler), ``memory`` (find_max_micro_batch), ``sampler``, ``checkpoint``
==================== ==========================================================================

Names that used to be at the top level (``deba.GoodputPolicy``, ``deba.GradientProbe``, ...) still
resolve for one release, with a ``DeprecationWarning`` naming their new home.

Example:
    >>> import deba
    >>> deba.policies.StabilityPolicy.name, deba.strategies.EqualWeightStrategy.name
    ('stability', 'equal-weight')
"""

from __future__ import annotations

import importlib
import sys
import warnings
from types import ModuleType
from typing import Any

from deba.errors import DebaConfigError, DebaError, DebaPluginError, NonFiniteTraining
from deba.registry import registry
from deba.profiles import ArchitectureProfile, builtin_profiles, detect, load_profile, profile_for
from deba.signals import Observation
from deba.signals.collectors import MetricCollector
from deba.control import BatchPolicy, BatchScheduler, Decision, ScoringStrategy
from deba.training.adapter import FrameworkAdapter
from deba.training.callbacks import Callback
from deba.training.controller import DebaController
from deba.training.fit import FitResult, evaluate, fit
from deba.training.options import RunOptions
from deba.training.sampler import AdaptiveBatchSampler
from deba import adapters, collectors, errors, policies, profiles, strategies  # noqa: E402 - the namespaces

__version__ = "0.1.0"

__all__ = [
    # front ends
    "AdaptiveBatchSampler",
    "Callback",
    "DebaController",
    "FitResult",
    "RunOptions",
    "evaluate",
    "fit",
    # profiles
    "ArchitectureProfile",
    "builtin_profiles",
    "detect",
    "load_profile",
    "profile_for",
    # errors
    "DebaConfigError",
    "DebaError",
    "DebaPluginError",
    "NonFiniteTraining",
    # one base class per extension kind
    "BatchPolicy",
    "FrameworkAdapter",
    "MetricCollector",
    "ScoringStrategy",
    # the controller and what it reads and returns
    "BatchScheduler",
    "Decision",
    "Observation",
    "registry",
    "__version__",
    # namespaces
    "adapters",
    "collectors",
    "errors",
    "policies",
    "profiles",
    "strategies",
]

#: Names removed from the top level -> the module that holds them now (kept for one release).
_MOVED = {
    "GoodputPolicy": "deba.policies",
    "StabilityPolicy": "deba.policies",
    "next_batch_size": "deba.policies",
    "GradientNormVariationCollector": "deba.collectors",
    "GradientVarianceCollector": "deba.collectors",
    "LossVariationCollector": "deba.collectors",
    "GradientProbe": "deba.signals",
    "GradientSnapshot": "deba.signals",
    "ArchitectureTraits": "deba.profiles",
    "CalibrationSettings": "deba.profiles",
    "Detection": "deba.profiles",
    "Rule": "deba.profiles",
    "build_model": "deba.profiles",
    "measure_traits": "deba.profiles",
    "ConfigProblem": "deba.errors",
    "LRCoupler": "deba.training.lr",
    "find_max_micro_batch": "deba.training.memory",
}


def __getattr__(name: str) -> Any:
    """The names that moved off the top level, with a DeprecationWarning naming the new path."""
    home = _MOVED.get(name)
    if home is None:
        raise AttributeError(f"module 'deba' has no attribute {name!r}")
    # `from deba import X` asks twice: the import system's hasattr() check, then the statement
    # itself; warn once, at the statement.
    if not sys._getframe(1).f_code.co_filename.startswith("<frozen importlib"):
        warnings.warn(f"deba.{name} is deprecated and will be removed in the next release; use {home}.{name}",
                      DeprecationWarning, stacklevel=2)
    return getattr(importlib.import_module(home), name)


def __dir__() -> list[str]:
    """The public names, the subpackages and the module's dunders (not the deprecated names)."""
    own = {name for name, value in globals().items()
           if name.startswith("__") or (isinstance(value, ModuleType) and value.__name__ == f"deba.{name}")}
    return sorted(own | set(__all__))

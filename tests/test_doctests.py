"""Every runnable example in the library's docstrings runs and prints what it says."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import deba

MODULES = sorted(m.name for m in pkgutil.walk_packages(deba.__path__, "deba.") if not m.name.endswith("__main__"))


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS, report=True)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"


#: the public namespaces whose classes the style rule covers, beside the top level
NAMESPACES = ("deba.policies", "deba.collectors", "deba.strategies", "deba.profiles", "deba.signals")


def test_the_public_classes_have_examples():
    """The style rule: a runnable example on every public class exported by ``deba`` or its namespaces."""
    # Exceptions and plain result records carry no example; the collectors share MetricCollector's.
    exempt = {"FitResult", "NonFiniteTraining", "CalibrationSettings", "DebaError", "DebaPluginError",
              "Detection", "GradientSnapshot", "Move", "PolicySignals",
              "GradientVarianceCollector", "LossVariationCollector", "DeviationCollector", "ScalarWindowCollector",
              "IntervalAccumulator"}  # the scheduler's internal interval aggregation, not a user entry point
    finder = doctest.DocTestFinder(recurse=False)
    public = {(space, name) for space in ("deba", *NAMESPACES)
              for name in importlib.import_module(space).__all__}
    missing = sorted(f"{space}.{name}" for space, name in public
                     if isinstance(obj := getattr(importlib.import_module(space), name), type)
                     and name not in exempt and not any(t.examples for t in finder.find(obj)))
    assert missing == [], f"public classes without a runnable example: {missing}"

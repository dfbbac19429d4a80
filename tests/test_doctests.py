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


def test_the_public_classes_have_examples():
    """The style rule: a runnable example on every public class exported by ``deba``."""
    # Exceptions and plain result records carry no example; the collectors share MetricCollector's.
    exempt = {"FitResult", "NonFiniteTraining", "CalibrationSettings", "ConfigProblem", "DebaError", "DebaPluginError",
              "Detection", "GradientSnapshot", "GradientVarianceCollector", "LossVariationCollector"}
    finder = doctest.DocTestFinder(recurse=False)
    missing = [name for name in deba.__all__ if isinstance(getattr(deba, name), type) and name not in exempt
               and not any(t.examples for t in finder.find(getattr(deba, name)))]
    assert missing == [], f"public classes without a runnable example: {missing}"

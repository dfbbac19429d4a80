"""The public surface: a short ``deba`` top level, one namespace per extension kind, the names that
moved still resolving (with a DeprecationWarning naming the new path), and ``dir()`` showing the
lazily loaded names."""

from __future__ import annotations

import importlib
import subprocess
import sys
import warnings

import pytest

import deba

TOP_LEVEL = {
    # front ends
    "fit", "evaluate", "FitResult", "RunOptions", "DebaController", "AdaptiveBatchSampler", "Callback",
    # profiles
    "ArchitectureProfile", "builtin_profiles", "profile_for", "load_profile", "detect",
    # errors
    "DebaError", "DebaConfigError", "DebaPluginError", "NonFiniteTraining",
    # one base class per extension kind
    "MetricCollector", "ScoringStrategy", "BatchPolicy", "FrameworkAdapter",
    # the controller and what it reads and returns
    "BatchScheduler", "Decision", "Observation", "registry", "__version__",
}
NAMESPACES = {"adapters", "collectors", "errors", "policies", "profiles", "strategies"}

#: old top-level name -> the module that holds it now
MOVED = {
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


def test_the_top_level_is_the_front_ends_the_base_classes_and_the_namespaces():
    assert set(deba.__all__) == TOP_LEVEL | NAMESPACES
    assert len(deba.__all__) == len(set(deba.__all__))
    for name in deba.__all__:
        getattr(deba, name)
    assert not set(MOVED) & set(deba.__all__)


def test_dir_of_deba_lists_the_namespaces_and_not_the_deprecated_names():
    listed = set(dir(deba))
    assert NAMESPACES | TOP_LEVEL <= listed
    assert not set(MOVED) & listed


@pytest.mark.parametrize("old, home", sorted(MOVED.items()))
def test_a_moved_name_warns_with_its_new_path_and_is_the_same_object(old, home):
    with pytest.warns(DeprecationWarning, match=rf"deba\.{old}\b.*{home.replace('.', r'[.]')}\.{old}") as caught:
        found = getattr(deba, old)
    assert found is getattr(importlib.import_module(home), old)
    assert all(w.filename == __file__ for w in caught if issubclass(w.category, DeprecationWarning))


def test_from_deba_import_of_a_moved_name_warns_once_at_the_import():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        from deba import GoodputPolicy  # noqa: F401
    deprecations = [w for w in caught if issubclass(w.category, DeprecationWarning)]
    assert [w.filename for w in deprecations] == [__file__]
    assert "deba.policies.GoodputPolicy" in str(deprecations[0].message)
    assert GoodputPolicy is deba.policies.GoodputPolicy


def test_an_unknown_name_is_still_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'NoSuchThing'"):
        deba.NoSuchThing  # noqa: B018


def test_each_namespace_holds_its_kind():
    from deba import collectors, policies, profiles, strategies

    assert {"BatchPolicy", "GoodputPolicy", "StabilityPolicy", "SeesawPolicy", "UngatedGoodputPolicy", "Move",
            "PolicySignals", "next_batch_size"} <= set(policies.__all__)
    assert {"MetricCollector", "GradientVarianceCollector", "GradientNormVariationCollector",
            "LossVariationCollector", "LossDeviationCollector", "GradientNormDeviationCollector",
            "ScalarWindowCollector", "DeviationCollector"} <= set(collectors.__all__)
    assert {"ScoringStrategy", "EqualWeightStrategy", "RuleBasedStrategy", "LearnedStrategy", "NoiseScaleStrategy",
            "NormTestStrategy"} <= set(strategies.__all__)
    assert {"ArchitectureProfile", "ArchitectureTraits", "Detection", "Rule", "build_model", "detect",
            "measure_traits", "load_profile", "profile_for"} <= set(profiles.__all__)
    for space in (collectors, policies, profiles, strategies):
        for name in space.__all__:
            getattr(space, name)
    assert policies.BatchPolicy is deba.BatchPolicy and collectors.MetricCollector is deba.MetricCollector
    assert strategies.ScoringStrategy is deba.ScoringStrategy


def test_every_registered_built_in_is_in_its_namespace():
    """What deba itself registers under an entry-point group is reachable from the namespace."""
    from deba import collectors, policies, strategies

    for kind, space in (("collectors", collectors), ("policies", policies), ("strategies", strategies)):
        own = [info for info in deba.registry.infos(kind) if info.distribution == "deba"]
        assert own, kind
        for info in own:
            module, _, attr = info.target.partition(":")
            assert getattr(space, attr, None) is getattr(importlib.import_module(module), attr), (kind, info.name)


@pytest.mark.parametrize("module_name, expected", [
    ("deba", NAMESPACES | TOP_LEVEL),
    ("deba.adapters.lightning", {"DebaCallback", "DebaModule", "deba_dataloader", "LightningBatchSampler",
                                 "LightningAdapter"}),
    ("deba.adapters.huggingface", {"DebaTrainer", "SampleClockLR", "TrainerBatchSampler", "HuggingFaceAdapter"}),
])
def test_dir_shows_the_lazily_loaded_names(module_name, expected):
    module = importlib.import_module(module_name)
    assert set(expected) <= set(dir(module))
    assert set(module.__all__) <= set(dir(module))


def test_every_module_with_a_lazy_getattr_has_a_dir():
    """Any module that answers names through ``__getattr__`` lists them in ``__dir__``."""
    import pkgutil

    names = ["deba"] + [m.name for m in pkgutil.walk_packages(deba.__path__, "deba.")
                        if not m.name.endswith("__main__")]
    for name in names:
        try:
            module = importlib.import_module(name)
        except ImportError:  # an adapter whose extra is missing
            continue
        if "__getattr__" in vars(module):
            assert "__dir__" in vars(module), f"{name} has a lazy __getattr__ but no __dir__"
            lazy = getattr(module, "_LAZY", getattr(module, "__all__", ()))
            assert set(lazy) <= set(dir(module)), name


def test_nothing_in_the_library_uses_a_deprecated_name_on_import():
    code = "import deba, deba.policies, deba.collectors, deba.strategies, deba.adapters.lightning, " \
           "deba.adapters.huggingface, deba.adapters.torch, deba.app.cli, deba.testing"
    done = subprocess.run([sys.executable, "-W", "error::DeprecationWarning", "-c", code], capture_output=True,
                          text=True, timeout=240)
    assert done.returncode == 0, done.stderr

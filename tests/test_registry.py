"""The plugin registry with faked entry points: broken, wrong type, duplicate, unknown."""

from __future__ import annotations

import sys
import types
import warnings

import pytest

import deba
from deba.registry import PluginWarning, Registry
from deba.strategies import EqualWeightStrategy


class FakeDist:
    def __init__(self, name, version="1.0"):
        self.name, self.version = name, version


class FakeEP:
    def __init__(self, name, value, group, dist, obj=None, error=None):
        self.name, self.value, self.group, self.dist = name, value, group, FakeDist(dist)
        self._obj, self._error = obj, error

    def load(self):
        if self._error is not None:
            raise self._error
        return self._obj


def make_registry(*eps):
    def entry_points(group):
        return [e for e in eps if e.group == group]

    return Registry(entry_points=entry_points)


def test_listing_imports_nothing_and_loading_validates_types():
    calls = []

    class Spy(FakeEP):
        def load(self):
            calls.append(self.name)
            return super().load()

    reg = make_registry(Spy("good", "m:Good", "deba.strategies", "good-dist", obj=EqualWeightStrategy))
    assert reg.available("strategies") == ["good"] and calls == []
    assert reg.load("strategies", "good") is EqualWeightStrategy and calls == ["good"]
    reg.load("strategies", "good")
    assert calls == ["good"], "loaded objects are cached"


def test_broken_plugin_is_named_with_its_distribution_and_chained():
    boom = ImportError("No module named 'missing_dep'")
    reg = make_registry(
        FakeEP("broken", "broken_mod:Thing", "deba.strategies", "broken-dist", error=boom),
        FakeEP("good", "m:Good", "deba.strategies", "good-dist", obj=EqualWeightStrategy),
    )
    with pytest.raises(deba.DebaPluginError, match=r"'broken'.*broken_mod:Thing.*broken-dist==1.0.*missing_dep") as info:
        reg.load("strategies", "broken")
    assert info.value.__cause__ is boom
    # the good one still loads, and load_all warns about the broken one only
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = reg.load_all("strategies")
    assert list(loaded) == ["good"]
    assert any(issubclass(w.category, PluginWarning) and "broken-dist" in str(w.message) for w in caught)
    status = dict((i.name, s) for i, s in reg.status("strategies"))
    assert status["good"] == "ok" and status["broken"].startswith("error:")


@pytest.mark.parametrize(
    "kind,obj",
    [("strategies", object), ("strategies", 42), ("collectors", EqualWeightStrategy), ("profiles", "resnet18"),
     ("profiles", lambda: 3), ("adapters", 5)],
)
def test_wrong_type_is_a_plugin_error(kind, obj):
    expected = {"strategies": deba.ScoringStrategy, "collectors": deba.MetricCollector,
                "profiles": deba.ArchitectureProfile, "adapters": deba.FrameworkAdapter}[kind]
    reg = make_registry(FakeEP("odd", "m:odd", f"deba.{kind}", "odd-dist", obj=obj))
    with pytest.raises(deba.DebaPluginError, match="odd-dist") as info:
        reg.load(kind, "odd", expected)
    assert isinstance(info.value.__cause__, TypeError)
    assert expected.__name__ in str(info.value), "the message names the type the caller expected"


def test_the_registry_is_generic_the_caller_says_what_it_expects():
    reg = make_registry(FakeEP("thing", "m:thing", "deba.adapters", "d", obj=42))
    assert reg.load("adapters", "thing") == 42, "without an expected type nothing is checked"
    with pytest.raises(deba.DebaPluginError, match="deba.FrameworkAdapter"):
        reg.load("adapters", "thing", deba.FrameworkAdapter)
    reg2 = make_registry(FakeEP("p", "m:p", "deba.strategies", "d", obj=lambda: EqualWeightStrategy))
    with pytest.raises(deba.DebaPluginError, match="must be a class"):
        reg2.create("strategies", "p", profile=deba.load_profile("generic"))


def test_duplicate_name_from_two_distributions_names_both():
    reg = make_registry(
        FakeEP("same", "a:A", "deba.strategies", "dist-a", obj=EqualWeightStrategy),
        FakeEP("same", "b:B", "deba.strategies", "dist-b", obj=EqualWeightStrategy),
    )
    with pytest.raises(deba.DebaConfigError, match=r"a:A from dist-a==1.0 and b:B from dist-b==1.0"):
        reg.load("strategies", "same")


def test_same_distribution_seen_twice_is_not_a_conflict():
    reg = make_registry(
        FakeEP("same", "a:A", "deba.strategies", "dist-a", obj=EqualWeightStrategy),
        FakeEP("same", "a:A", "deba.strategies", "dist-a", obj=EqualWeightStrategy),
    )
    assert reg.load("strategies", "same") is EqualWeightStrategy


def test_unknown_name_lists_what_exists():
    with pytest.raises(deba.DebaConfigError, match="available: equal-weight, learned, noise-scale, norm-test, rule-based"):
        deba.registry.load("strategies", "equal_weight")
    with pytest.raises(deba.DebaConfigError, match="kind"):
        deba.registry.available("optimizers")


def test_profiles_group_accepts_values_and_callables():
    p = deba.load_profile("generic").replace(name="plugged")
    reg = make_registry(
        FakeEP("value", "m:P", "deba.profiles", "d", obj=p),
        FakeEP("factory", "m:f", "deba.profiles", "d", obj=lambda: p),
    )
    expected = deba.ArchitectureProfile
    assert reg.load("profiles", "value", expected) == p == reg.load("profiles", "factory", expected)


def test_runtime_register_conflicts_and_override():
    class Mine(deba.ScoringStrategy):
        name = "mine"

        def score(self, metrics):
            return 1.0

    reg = make_registry(FakeEP("taken", "m:T", "deba.strategies", "d", obj=EqualWeightStrategy))
    reg.register("strategies", "mine", Mine)
    assert reg.create("strategies", "mine", profile=deba.load_profile("generic")).score({}) == 1.0
    with pytest.raises(deba.DebaConfigError, match="already registered"):
        reg.register("strategies", "taken", Mine)
    reg.register("strategies", "taken", Mine, override=True)
    assert reg.load("strategies", "taken") is Mine
    with pytest.raises(deba.DebaPluginError):
        reg.register("strategies", "bad", int, expected=deba.ScoringStrategy)
    reg.unregister("strategies", "mine")
    assert "mine" not in reg.available("strategies")


def test_real_entry_points_find_the_builtins():
    assert {"equal-weight", "learned", "rule-based"} <= set(deba.registry.available("strategies"))
    assert {"grad_variance", "grad_norm_variation", "loss_variation"} <= set(deba.registry.available("collectors"))
    infos = {i.name: i for i in deba.registry.infos("strategies")}
    assert infos["equal-weight"].distribution == "deba"

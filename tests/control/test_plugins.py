"""The scheduler's parts from what the user gave: instances pass through, names resolve, anything else is refused."""

from __future__ import annotations

import pytest

import deba
from deba.control.goodput import GoodputPolicy
from deba.control.plugins import resolve_collectors, resolve_initial_batch, resolve_policy, resolve_strategy
from deba.control.policy import BatchPolicy, StabilityPolicy
from deba.control.scoring import ScoringStrategy
from deba.registry import registry
from deba.signals.collectors.base import MetricCollector

PROFILE = deba.load_profile("mlp").replace(window=6, min_samples=4)
OTHER = PROFILE.replace(name="mlp-other")


def _refused(fn, *args) -> deba.DebaConfigError:
    with pytest.raises(deba.DebaConfigError) as info:
        fn(*args)
    return info.value


# The starting batch --------------------------------------------------------------------------


def test_no_initial_batch_is_the_profiles_own():
    assert resolve_initial_batch(PROFILE, None) == PROFILE.initial_batch


@pytest.mark.parametrize("batch", [PROFILE.min_batch, 100, PROFILE.max_batch])
def test_an_initial_batch_within_the_bounds_is_kept(batch):
    assert resolve_initial_batch(PROFILE, batch) == batch


@pytest.mark.parametrize("batch", [PROFILE.min_batch - 1, PROFILE.max_batch + 1, 0, -32, True, 32.0, "32"])
def test_an_initial_batch_outside_the_bounds_or_not_an_int_is_refused(batch):
    err = _refused(resolve_initial_batch, PROFILE, batch)
    assert err.fields == ["initial_batch"]
    assert f"[{PROFILE.min_batch}, {PROFILE.max_batch}]" in str(err)


# Strategies ------------------------------------------------------------------------------------


class Calm(ScoringStrategy):
    name = "calm"

    def score(self, metrics):
        return 1.0


def test_a_strategy_name_builds_one_for_the_profile():
    strategy = resolve_strategy(PROFILE, "equal-weight", {})
    assert isinstance(strategy, ScoringStrategy)
    assert strategy.name == "equal-weight" and strategy.profile == PROFILE


def test_a_strategy_name_is_built_with_its_options():
    strategy = resolve_strategy(PROFILE, "noise-scale", {"critical_ratio": 2.5})
    assert strategy.name == "noise-scale"
    assert resolve_strategy(PROFILE, "noise-scale", {}).name == "noise-scale"


def test_a_strategy_instance_passes_through_unchanged():
    mine = Calm(PROFILE)
    assert resolve_strategy(PROFILE, mine, {}) is mine


def test_options_beside_a_strategy_instance_are_refused():
    err = _refused(resolve_strategy, PROFILE, Calm(PROFILE), {"x": 1})
    assert err.fields == ["strategy_options"]


def test_a_strategy_built_for_another_profile_is_refused():
    err = _refused(resolve_strategy, PROFILE, Calm(OTHER), {})
    assert err.fields == ["strategy.profile"]
    assert err.problems[0].value == "mlp-other" and "'mlp'" in str(err)


@pytest.mark.parametrize("strategy", [None, 3, Calm, ["equal-weight"]])
def test_a_strategy_that_is_neither_a_name_nor_an_instance_is_refused(strategy):
    assert _refused(resolve_strategy, PROFILE, strategy, {}).fields == ["strategy"]


def test_an_unknown_strategy_name_lists_the_registered_ones():
    err = _refused(resolve_strategy, PROFILE, "no-such-strategy", {})
    text = str(err)
    assert "no-such-strategy" in text
    for name in ("equal-weight", "worst-metric", "rule-based"):
        assert name in text


def test_a_strategy_registered_at_run_time_resolves_by_name():
    registry.register("strategies", "calm-test", Calm)
    try:
        strategy = resolve_strategy(PROFILE, "calm-test", {})
        assert isinstance(strategy, Calm) and strategy.profile == PROFILE
    finally:
        registry.unregister("strategies", "calm-test")


# Policies --------------------------------------------------------------------------------------


def test_no_policy_is_the_profiles_policy():
    assert isinstance(resolve_policy(PROFILE, None), GoodputPolicy)
    assert isinstance(resolve_policy(PROFILE.replace(policy="stability"), None), StabilityPolicy)


@pytest.mark.parametrize("name, cls", [("stability", StabilityPolicy), ("goodput", GoodputPolicy)])
def test_the_built_in_policy_names(name, cls):
    policy = resolve_policy(PROFILE, name)
    assert type(policy) is cls and policy.profile == PROFILE


def test_a_registered_policy_name_builds_a_policy_for_the_profile():
    policy = resolve_policy(PROFILE, "seesaw")
    assert isinstance(policy, BatchPolicy)
    assert policy.name == "seesaw" and policy.profile == PROFILE


def test_a_policy_instance_passes_through_unchanged():
    mine = StabilityPolicy(PROFILE)
    assert resolve_policy(PROFILE, mine) is mine


def test_a_policy_built_for_another_profile_is_refused():
    err = _refused(resolve_policy, PROFILE, StabilityPolicy(OTHER))
    assert err.fields == ["policy.profile"]
    assert err.problems[0].value == "mlp-other"


@pytest.mark.parametrize("policy", [3, StabilityPolicy, ["goodput"]])
def test_a_policy_that_is_neither_a_name_nor_an_instance_is_refused(policy):
    assert _refused(resolve_policy, PROFILE, policy).fields == ["policy"]


def test_an_unknown_policy_name_lists_the_registered_ones():
    text = str(_refused(resolve_policy, PROFILE, "no-such-policy"))
    assert "no-such-policy" in text
    for name in ("goodput", "seesaw", "stability"):
        assert name in text


# Collectors ------------------------------------------------------------------------------------


def _collector(name: str) -> MetricCollector:
    return registry.create("collectors", name, expected=MetricCollector, window=3, min_samples=2)


def test_no_collectors_means_one_per_metric_of_the_profile_with_its_window():
    built = resolve_collectors(PROFILE, None)
    assert [c.name for c in built] == list(PROFILE.metrics)
    assert all(c.window == 6 and c.min_samples == 4 for c in built)


def test_the_profiles_window_is_the_minimum_when_min_samples_is_unset():
    profile = PROFILE.replace(min_samples=None)
    assert all(c.min_samples == 6 for c in resolve_collectors(profile, None))


def test_collector_names_resolve_in_the_given_order():
    built = resolve_collectors(PROFILE, ["loss_variation", "grad_variance"])
    assert [c.name for c in built] == ["loss_variation", "grad_variance"]
    assert all(isinstance(c, MetricCollector) and c.window == 6 for c in built)


def test_collector_instances_pass_through_and_mix_with_names():
    mine = _collector("loss_deviation")
    built = resolve_collectors(PROFILE, (mine, "grad_norm_deviation"))
    assert built[0] is mine and mine.window == 3, "an instance keeps its own window"
    assert built[1].name == "grad_norm_deviation" and built[1].window == 6


@pytest.mark.parametrize("collectors", ["loss_deviation", _collector("loss_deviation")])
def test_a_single_name_or_collector_instead_of_a_sequence_is_refused(collectors):
    assert _refused(resolve_collectors, PROFILE, collectors).fields == ["collectors"]


@pytest.mark.parametrize("entry", [None, 3, MetricCollector])
def test_entries_that_are_neither_names_nor_collectors_are_refused(entry):
    assert _refused(resolve_collectors, PROFILE, ["loss_deviation", entry]).fields == ["collectors"]


def test_a_collector_named_twice_is_refused():
    err = _refused(resolve_collectors, PROFILE, ["loss_deviation", _collector("loss_deviation")])
    assert err.fields == ["collectors"] and err.problems[0].value == "loss_deviation"
    assert "twice" in str(err)


def test_no_collectors_at_all_is_refused():
    assert _refused(resolve_collectors, PROFILE, []).fields == ["collectors"]


def test_a_collector_without_a_name_is_refused():
    base = type(_collector("loss_deviation"))
    nameless = type("Nameless", (base,), {"name": ""})(window=3, min_samples=2)
    err = _refused(resolve_collectors, PROFILE, [nameless])
    assert err.fields == ["collectors"] and err.problems[0].value == "Nameless"


def test_an_unknown_collector_name_lists_the_registered_ones():
    text = str(_refused(resolve_collectors, PROFILE, ["loss_deviation", "no_such_metric"]))
    assert "no_such_metric" in text
    for name in ("grad_norm_deviation", "grad_variance", "loss_deviation", "loss_variation"):
        assert name in text

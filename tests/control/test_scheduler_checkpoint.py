"""Whether a saved scheduler state fits a scheduler: the version first, then the profile, strategy, policy, collectors."""

from __future__ import annotations

import copy

import pytest

import deba
from deba.control.checkpoint import STATE_VERSION, check_compatible

PROFILE = deba.load_profile("mlp")
OTHER = PROFILE.replace(name="mlp-other", growth_factor=1.5)
COLLECTORS = ["loss_deviation", "grad_norm_deviation"]


def _state(**overrides):
    state = {
        "version": 1,
        "profile": PROFILE.to_dict(),
        "strategy": {"name": "equal-weight", "state": {}},
        "policy": {"name": "goodput", "state": {}},
        "collectors": {"loss_deviation": {}, "grad_norm_deviation": {}},
    }
    state.update(overrides)
    return state


def _check(state, strategy="equal-weight", policy="goodput", collectors=COLLECTORS):
    check_compatible(state, PROFILE, strategy, policy, collectors)


def _refused(state, **kw) -> deba.DebaConfigError:
    with pytest.raises(deba.DebaConfigError) as info:
        _check(state, **kw)
    return info.value


def test_the_state_version_is_one():
    assert STATE_VERSION == 1


def test_a_matching_state_is_accepted():
    assert _check(_state()) is None


def test_the_collector_order_does_not_matter():
    _check(_state(), collectors=list(reversed(COLLECTORS)))


@pytest.mark.parametrize("version", [0, 2, None, "1", 1.5])
def test_another_version_is_refused_naming_the_version(version):
    err = _refused(_state(version=version))
    assert err.fields == ["state.version"]
    assert "must be 1" in str(err)


def test_a_state_without_a_version_is_refused():
    state = _state()
    del state["version"]
    assert _refused(state).fields == ["state.version"]


@pytest.mark.parametrize("state", [None, [1, 2], "state", 1])
def test_a_state_that_is_not_a_dict_is_refused_naming_its_type(state):
    err = _refused(state)
    assert err.fields == ["state.version"]
    assert err.problems[0].value == type(state).__name__


def test_the_version_is_checked_before_anything_else():
    err = _refused(_state(version=7, profile=OTHER.to_dict(), strategy={"name": "worst-metric"}))
    assert err.fields == ["state.version"]


def test_another_profile_is_refused_naming_the_saved_profile():
    err = _refused(_state(profile=OTHER.to_dict()))
    assert err.fields == ["state.profile"]
    assert err.problems[0].value == "mlp-other"
    assert "'mlp'" in str(err) and err.remedy


def test_the_same_name_with_other_values_is_another_profile():
    err = _refused(_state(profile=PROFILE.replace(window=9).to_dict()))
    assert err.fields == ["state.profile"]


@pytest.mark.parametrize("saved", [None, "mlp", 3])
def test_a_profile_that_is_not_a_document_is_refused(saved):
    err = _refused(_state(profile=saved))
    assert err.fields == ["state.profile"]
    assert err.problems[0].value == saved


def test_the_profile_is_checked_before_the_parts():
    err = _refused(_state(profile=OTHER.to_dict(), strategy={"name": "worst-metric"}))
    assert err.fields == ["state.profile"]


def test_another_strategy_is_refused_naming_the_field_and_the_saved_name():
    err = _refused(_state(strategy={"name": "worst-metric", "state": {}}))
    assert err.fields == ["state.strategy.name"]
    assert err.problems[0].value == "worst-metric"
    assert "'equal-weight'" in str(err)


@pytest.mark.parametrize("saved", [None, {}])
def test_a_missing_strategy_is_refused(saved):
    state = _state(strategy=saved)
    assert _refused(state).fields == ["state.strategy.name"]
    del state["strategy"]
    assert _refused(state).fields == ["state.strategy.name"]


def test_another_policy_is_refused_naming_the_field():
    err = _refused(_state(policy={"name": "seesaw", "state": {}}))
    assert err.fields == ["state.policy.name"]
    assert err.problems[0].value == "seesaw"


def test_a_state_from_before_policies_counts_as_the_stability_policy():
    state = _state()
    del state["policy"]
    _check(state, policy="stability")
    err = _refused(state, policy="goodput")
    assert err.fields == ["state.policy.name"] and err.problems[0].value == "stability"
    _check(_state(policy=None), policy="stability")


def test_the_strategy_is_named_before_the_policy():
    err = _refused(_state(strategy={"name": "worst-metric"}, policy={"name": "seesaw"}))
    assert err.fields == ["state.strategy.name"]


@pytest.mark.parametrize("saved", [{"loss_deviation": {}},
                                   {"loss_deviation": {}, "grad_norm_deviation": {}, "loss_variation": {}},
                                   {}, None])
def test_another_set_of_collectors_is_refused_listing_both_sets(saved):
    err = _refused(_state(collectors=saved))
    assert err.fields == ["state.collectors"]
    assert err.problems[0].value == sorted(saved or {})
    assert str(sorted(COLLECTORS)) in str(err)


def test_no_saved_collectors_fit_a_scheduler_without_collectors():
    _check(_state(collectors={}), collectors=[])


def test_the_check_does_not_change_the_state():
    state = _state()
    before = copy.deepcopy(state)
    _check(state)
    assert state == before


def test_a_schedulers_own_state_fits_it_and_not_a_scheduler_with_other_parts():
    a = deba.BatchScheduler(PROFILE)
    saved = a.state_dict()
    names = [c.name for c in a.collectors]
    check_compatible(saved, PROFILE, a.strategy.name, a.policy.name, names)
    with pytest.raises(deba.DebaConfigError) as info:
        check_compatible(saved, PROFILE, a.strategy.name, a.policy.name, names + ["grad_variance"])
    assert info.value.fields == ["state.collectors"]
    with pytest.raises(deba.DebaConfigError) as info:
        check_compatible(saved, OTHER, a.strategy.name, a.policy.name, names)
    assert info.value.fields == ["state.profile"]

"""RunOptions: every field validated once, replace() validates again, merge_options refuses conflicts."""

from __future__ import annotations

import dataclasses

import pytest

import deba
from deba.training.options import BUDGET_KINDS, RunOptions, merge_options


def _field(**kw) -> str:
    with pytest.raises(deba.DebaConfigError) as info:
        RunOptions(**kw)
    assert len(info.value.problems) == 1
    return info.value.fields[0]


def test_the_defaults():
    o = RunOptions()
    assert (o.profile, o.strategy, o.strategy_options, o.policy, o.throughput) == ("auto", "equal-weight", None, None,
                                                                                   None)
    assert (o.budget, o.max_micro_batch, o.probe_throughput, o.nonfinite_abort) == ("auto", None, None, None)


def test_the_budget_kinds():
    assert BUDGET_KINDS == ("auto", "equivalent", "samples")


@pytest.mark.parametrize("kind", BUDGET_KINDS)
def test_each_budget_kind_is_accepted(kind):
    assert RunOptions(budget=kind).budget == kind


@pytest.mark.parametrize("kind", ["steps", "Samples", "", None, 1, ("auto",)])
def test_any_other_budget_is_refused(kind):
    assert _field(budget=kind) == "budget"


@pytest.mark.parametrize("name", ["max_micro_batch", "nonfinite_abort"])
@pytest.mark.parametrize("value", [1, 7, 10**6, None])
def test_positive_int_fields_accept_ints_from_one_and_none(name, value):
    assert getattr(RunOptions(**{name: value}), name) == value


@pytest.mark.parametrize("name", ["max_micro_batch", "nonfinite_abort"])
@pytest.mark.parametrize("value", [0, -1, True, False, 2.0, "8"])
def test_positive_int_fields_refuse_anything_else(name, value):
    assert _field(**{name: value}) == name


@pytest.mark.parametrize("value", [True, False, None])
def test_probe_throughput_accepts_a_bool_or_none(value):
    assert RunOptions(probe_throughput=value).probe_throughput is value


@pytest.mark.parametrize("value", [1, 0, "yes", "False"])
def test_probe_throughput_refuses_anything_else(value):
    assert _field(probe_throughput=value) == "probe_throughput"


@pytest.mark.parametrize("value", [None, {}, {"critical_ratio": 2.0}])
def test_strategy_options_accept_a_dict_or_none(value):
    assert RunOptions(strategy_options=value).strategy_options == value


@pytest.mark.parametrize("value", [[("a", 1)], "a=1", 1])
def test_strategy_options_refuse_anything_else(value):
    assert _field(strategy_options=value) == "strategy_options"


def test_the_free_form_fields_are_kept_as_given():
    profile = deba.load_profile("mlp")
    table = {32: 100.0}
    o = RunOptions(profile=profile, strategy="worst-metric", policy="stability", throughput=table)
    assert o.profile is profile and o.throughput is table
    assert (o.strategy, o.policy) == ("worst-metric", "stability")


def test_options_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        RunOptions().budget = "samples"


def test_replace_makes_a_changed_copy_and_leaves_the_original():
    o = RunOptions(budget="samples", max_micro_batch=64)
    r = o.replace(max_micro_batch=16, probe_throughput=False)
    assert (r.budget, r.max_micro_batch, r.probe_throughput) == ("samples", 16, False)
    assert (o.max_micro_batch, o.probe_throughput) == (64, None)
    assert o.replace() == o


def test_replace_does_not_copy_profiles_or_tables():
    profile, table = deba.load_profile("mlp"), {32: 100.0, 64: 150.0}
    r = RunOptions(profile=profile, throughput=table).replace(budget="samples")
    assert r.profile is profile and r.throughput is table


@pytest.mark.parametrize("change, field", [({"budget": "steps"}, "budget"), ({"max_micro_batch": 0}, "max_micro_batch"),
                                           ({"nonfinite_abort": -2}, "nonfinite_abort"),
                                           ({"probe_throughput": 1}, "probe_throughput"),
                                           ({"strategy_options": []}, "strategy_options")])
def test_replace_validates_again(change, field):
    with pytest.raises(deba.DebaConfigError) as info:
        RunOptions().replace(**change)
    assert info.value.fields == [field]


# merge_options -------------------------------------------------------------------------------


def test_without_an_options_object_the_keywords_build_one():
    merged = merge_options(None, {"budget": "samples", "max_micro_batch": 32})
    assert merged == RunOptions(budget="samples", max_micro_batch=32)
    assert merge_options(None, {}) == RunOptions()


def test_without_an_options_object_the_keywords_are_validated():
    with pytest.raises(deba.DebaConfigError) as info:
        merge_options(None, {"nonfinite_abort": 0}, prefix="deba_")
    assert info.value.fields == ["nonfinite_abort"]


def test_an_options_object_is_used_as_it_is_when_the_keywords_are_defaults():
    opts = RunOptions(budget="samples", max_micro_batch=64, probe_throughput=True)
    given = {"budget": "auto", "max_micro_batch": None, "probe_throughput": None, "profile": "auto",
             "strategy": "equal-weight", "strategy_options": None, "policy": None, "throughput": None,
             "nonfinite_abort": None}
    assert merge_options(opts, given) is opts
    assert merge_options(opts, {}) is opts


def test_a_keyword_beside_an_options_object_is_a_conflict_named_with_the_prefix():
    with pytest.raises(deba.DebaConfigError) as info:
        merge_options(RunOptions(), {"max_micro_batch": 32}, prefix="deba_")
    err = info.value
    assert err.fields == ["deba_max_micro_batch"]
    assert err.problems[0].value == 32
    assert "cannot be given beside deba_options" in str(err)
    assert "deba_options.replace(max_micro_batch=...)" in err.remedy


def test_a_conflict_without_a_prefix_names_the_plain_field():
    with pytest.raises(deba.DebaConfigError) as info:
        merge_options(RunOptions(), {"budget": "samples"})
    assert info.value.fields == ["budget"]
    assert "beside options" in str(info.value)


def test_a_keyword_equal_to_the_options_value_still_conflicts_when_it_is_not_the_default():
    # the rule compares against the default, not against the options object
    with pytest.raises(deba.DebaConfigError) as info:
        merge_options(RunOptions(budget="samples"), {"budget": "samples"}, prefix="x_")
    assert info.value.fields == ["x_budget"]


def test_of_several_conflicts_the_first_by_name_is_reported():
    with pytest.raises(deba.DebaConfigError) as info:
        merge_options(RunOptions(), {"strategy": "worst-metric", "budget": "samples", "policy": "seesaw"},
                      prefix="deba_")
    assert info.value.fields == ["deba_budget"]


def test_an_empty_dict_of_strategy_options_differs_from_the_default_none():
    with pytest.raises(deba.DebaConfigError) as info:
        merge_options(RunOptions(), {"strategy_options": {}})
    assert info.value.fields == ["strategy_options"]


def test_a_profile_object_beside_an_options_object_conflicts():
    with pytest.raises(deba.DebaConfigError) as info:
        merge_options(RunOptions(), {"profile": deba.load_profile("mlp")}, prefix="deba_")
    assert info.value.fields == ["deba_profile"]


@pytest.mark.parametrize("options", [{"budget": "samples"}, "samples", 3, RunOptions])
def test_an_options_argument_that_is_not_run_options_is_refused(options):
    with pytest.raises(deba.DebaConfigError) as info:
        merge_options(options, {}, prefix="deba_")
    assert info.value.fields == ["deba_options"]
    assert info.value.problems[0].value == type(options).__name__

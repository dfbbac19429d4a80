"""The throughput model ``T(B)``: measured step times, the warm-up drop after a resize, fixed tables,
the step-time model between and beyond measured sizes, the memory cap, probe times and state.

Every expected value is worked out by hand from the contract in ``deba.control.throughput``'s
docstrings and docs/design.md ("Throughput"): ``T(B) = B / median(step times)``, step time
``t(B) = B / T(B)`` linear between neighbours, along the two nearest sizes' line beyond them (slope
at least 0), never more samples/s beyond the largest size than there, ``T(cap)`` beyond the cap.
"""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

import deba
from deba.control.throughput import ThroughputModel


def trained(steps, skip=2, **kw):
    """A model fed ``steps``: (batch, seconds) pairs, in order."""
    m = ThroughputModel(skip_after_resize=skip, **kw)
    for b, s in steps:
        m.record(b, s)
    return m


# Measuring ----------------------------------------------------------------------------------------


def test_throughput_is_the_batch_over_the_median_of_the_kept_step_times():
    # the two slow warm-up steps are dropped; the median of 0.1, 0.4, 0.2 is 0.2 s
    m = trained([(32, 9.0), (32, 9.0), (32, 0.1), (32, 0.4), (32, 0.2)])
    assert m.samples_per_second(32) == pytest.approx(32 / 0.2)
    assert m.measured() == pytest.approx({32: 160.0})
    # an even count: the median is the mean of the two middle values, (0.2 + 0.4) / 2
    m.record(32, 0.5)
    assert m.samples_per_second(32) == pytest.approx(32 / 0.3)


def test_the_first_steps_after_every_change_of_size_are_dropped():
    m = trained([(32, 0.1)] * 3)  # 2 dropped, 1 kept
    assert m.is_measured(32)
    m.record(64, 0.2)
    m.record(64, 0.2)
    assert not m.is_measured(64), "both steps after the change to 64 were warm-up"
    m.record(64, 0.2)
    assert m.samples_per_second(64) == pytest.approx(320.0)
    # back to 32: its first 2 steps are warm-up again and leave its median alone
    for s in (5.0, 5.0):
        m.record(32, s)
    assert m.samples_per_second(32) == pytest.approx(320.0)
    m.record(32, 0.3)  # kept: median of 0.1 and 0.3
    assert m.samples_per_second(32) == pytest.approx(32 / 0.2)


def test_skip_after_resize_sets_how_many_are_dropped():
    assert trained([(16, 0.1)], skip=0).samples_per_second(16) == pytest.approx(160.0), "0: every step kept"
    five = trained([(16, 9.0)] * 5, skip=5)
    assert not five.is_measured(16) and five.samples_per_second(16) is None
    five.record(16, 0.1)
    assert five.samples_per_second(16) == pytest.approx(160.0)


def test_the_median_is_of_the_last_32_steps():
    # 40 kept steps of 1 s, then 32 of 0.5 s: over all 72 the median would be 1 s, over the last 32 it is 0.5 s
    m = trained([(32, 1.0)] * 40 + [(32, 0.5)] * 32, skip=0)
    assert m.samples_per_second(32) == pytest.approx(64.0)
    m.record(32, 1.0)  # now 31 of 0.5 s and one of 1 s among the last 32: still 0.5 s
    assert m.samples_per_second(32) == pytest.approx(64.0)


@pytest.mark.parametrize("bad", [0.0, -0.1, math.nan, math.inf, -math.inf])
def test_a_step_time_that_is_not_a_positive_finite_number_is_not_a_measurement(bad):
    m = trained([(32, 0.1)], skip=0)
    m.record(32, bad)
    assert m.samples_per_second(32) == pytest.approx(320.0)
    m.record_probe(64, bad)
    assert not m.is_measured(64)


def test_nothing_measured_predicts_nothing():
    m = ThroughputModel()
    assert m.measured() == {} and m.samples_per_second(32) is None and not m.is_measured(32)
    m = trained([(32, 0.1)], skip=0)
    assert m.samples_per_second(32) == pytest.approx(320.0)
    assert m.samples_per_second(64) is None and m.samples_per_second(16) is None, "one size supports no line"


# Fixed tables -------------------------------------------------------------------------------------


def test_a_fixed_table_is_the_measurement_and_ignores_every_recorded_time():
    m = ThroughputModel({64: 900.0, 32: 500})
    assert m.measured() == {32: 500.0, 64: 900.0} and list(m.measured()) == [32, 64], "sorted by batch"
    for _ in range(10):
        m.record(32, 1.0)
        m.record_probe(128, 1.0)
    assert m.measured() == {32: 500.0, 64: 900.0}
    assert m.samples_per_second(32) == 500.0 and m.is_measured(64) and not m.is_measured(128)


def test_table_keys_may_be_strings_of_batch_sizes():
    assert ThroughputModel({"32": 100.0}).measured() == {32: 100.0}


# The step-time model ------------------------------------------------------------------------------


def test_between_measured_sizes_the_step_time_is_linear_between_the_two_neighbours():
    # step times: t(100) = 0.1, t(200) = 0.15, t(400) = 0.5 (per-sample cost rising past 200)
    m = ThroughputModel({100: 1000.0, 200: 200 / 0.15, 400: 800.0})
    assert m.samples_per_second(150) == pytest.approx(150 / 0.125)
    assert m.samples_per_second(300) == pytest.approx(300 / 0.325), "from 200 and 400, not one line over all three"
    assert not m.is_measured(150) and not m.is_measured(300)


def test_a_step_time_falling_with_the_batch_is_read_as_flat():
    # t(100) = 0.2, t(200) = 0.1: the slope is taken as 0, so t(150) = t(100)
    m = ThroughputModel({100: 500.0, 200: 2000.0})
    assert m.samples_per_second(150) == pytest.approx(150 / 0.2)


def test_beyond_the_largest_size_never_more_samples_per_second_than_there():
    # t(100) = 0.1, t(200) = 0.15: the line says t(400) = 0.25 (1,600/s), more than T(200) = 1,333/s;
    # the prediction is held at T(200)
    m = ThroughputModel({100: 1000.0, 200: 200 / 0.15})
    assert m.samples_per_second(400) == pytest.approx(200 / 0.15)
    # per-sample cost rising: t(100) = 0.1, t(200) = 0.3, the line gives t(400) = 0.7, slower than T(200)
    steep = ThroughputModel({100: 1000.0, 200: 200 / 0.3})
    assert steep.samples_per_second(400) == pytest.approx(400 / 0.7)


def test_beyond_the_largest_size_the_line_is_through_the_two_largest():
    # t(50) = 0.01, t(100) = 0.1, t(200) = 0.3: the line through 100 and 200 gives t(300) = 0.5
    m = ThroughputModel({50: 5000.0, 100: 1000.0, 200: 200 / 0.3})
    assert m.samples_per_second(300) == pytest.approx(300 / 0.5)


def test_below_the_smallest_size_the_line_is_through_the_two_smallest_and_no_faster_than_there():
    # t(100) = 0.1, t(200) = 0.15, t(400) = 1.0: the line through 100 and 200 gives t(50) = 0.075
    m = ThroughputModel({100: 1000.0, 200: 200 / 0.15, 400: 400.0})
    assert m.samples_per_second(50) == pytest.approx(50 / 0.075)
    # falling step times: slope 0, so t(50) = t(100) = 0.2 ... and T(50) = 250/s, below T(100)
    flat = ThroughputModel({100: 500.0, 200: 2000.0})
    assert flat.samples_per_second(50) == pytest.approx(250.0)
    # a line whose intercept is negative would make a small step faster per sample: held at T(smallest)
    # t(100) = 0.1, t(200) = 0.3 -> line t(50) = 0.0 -> held at t = 0.05, T = 1,000/s
    steep = ThroughputModel({100: 1000.0, 200: 200 / 0.3})
    assert steep.samples_per_second(50) == pytest.approx(1000.0)


def test_measured_training_times_feed_the_same_predictions():
    m = trained([(100, 0.1)] * 3 + [(200, 0.15)] * 3)
    assert m.samples_per_second(150) == pytest.approx(150 / 0.125)
    assert m.samples_per_second(400) == pytest.approx(200 / 0.15)


sizes_and_times = st.dictionaries(st.integers(1, 4096), st.floats(1e-4, 10.0), min_size=2, max_size=6)


@given(sizes_and_times, st.integers(1, 8192))
def test_predicted_step_times_stay_between_the_neighbours_and_beyond_never_beat_the_edges(times, batch):
    m = ThroughputModel({b: b / t for b, t in times.items()})
    got = m.samples_per_second(batch)
    assert got is not None and math.isfinite(got) and got > 0
    sizes = sorted(times)
    if batch in times:
        assert got == pytest.approx(batch / times[batch])
    elif batch > sizes[-1]:
        assert got <= sizes[-1] / times[sizes[-1]] * (1 + 1e-9)
    elif batch < sizes[0]:
        assert got <= sizes[0] / times[sizes[0]] * (1 + 1e-9)
    else:
        lo = max(b for b in sizes if b < batch)
        hi = min(b for b in sizes if b > batch)
        t = batch / got
        assert min(times[lo], times[hi]) * (1 - 1e-9) <= t <= max(times[lo], times[hi]) * (1 + 1e-9)


# The memory cap -----------------------------------------------------------------------------------


def test_beyond_the_memory_cap_throughput_is_the_caps():
    table = {100: 1000.0, 200: 200 / 0.15}
    m = ThroughputModel(table, memory_cap=150)
    assert m.samples_per_second(150) == pytest.approx(150 / 0.125), "the cap itself is predicted as usual"
    assert m.samples_per_second(300) == pytest.approx(150 / 0.125), "above it: T(cap)"
    assert m.samples_per_second(120) == pytest.approx(120 / 0.11), "below it: as without a cap"
    assert m.samples_per_second(200) == pytest.approx(200 / 0.15), "a measured size above the cap stays measured"
    assert ThroughputModel(table).samples_per_second(175) != m.samples_per_second(175)


def test_the_memory_cap_can_be_set_later_and_its_throughput_may_be_unknown():
    m = trained([(32, 0.1)] * 3 + [(64, 0.15)] * 3)
    before = m.samples_per_second(128)
    m.memory_cap = 32
    assert m.samples_per_second(128) == pytest.approx(320.0) != before
    lone = trained([(32, 0.1)] * 3, memory_cap=16)
    assert lone.samples_per_second(64) is None, "T(16) is not supported by one size, so neither is T(64)"


# Probe times --------------------------------------------------------------------------------------


def test_probe_times_are_measurements_without_a_warm_up_drop():
    m = ThroughputModel()
    m.record_probe(32, 0.1)
    assert m.is_measured(32) and m.samples_per_second(32) == pytest.approx(320.0)
    m.record_probe(32, 0.3)
    m.record_probe(32, 0.2)
    assert m.samples_per_second(32) == pytest.approx(160.0), "the median of the probe's times"


def test_a_probed_size_is_offset_by_the_median_training_minus_probe_gap():
    m = ThroughputModel(skip_after_resize=0)
    for b, probe in [(16, 0.05), (32, 0.08), (64, 0.14), (128, 0.26)]:
        m.record_probe(b, probe)
    assert m.samples_per_second(128) == pytest.approx(128 / 0.26), "nothing timed both ways: no offset"
    # gaps where timed both ways: 32: 0.10 - 0.08 = 0.02; 64: 0.18 - 0.14 = 0.04; 16: 0.06 - 0.05 = 0.01
    m.record(32, 0.10)
    assert m.samples_per_second(32) == pytest.approx(320.0), "training times win over the probe's"
    assert m.samples_per_second(128) == pytest.approx(128 / 0.28)
    m.record(64, 0.18)
    assert m.samples_per_second(128) == pytest.approx(128 / (0.26 + 0.03)), "median of 0.02 and 0.04"
    m.record(16, 0.06)
    assert m.samples_per_second(128) == pytest.approx(128 / (0.26 + 0.02)), "median of 0.01, 0.02, 0.04"
    assert set(m.measured()) == {16, 32, 64, 128} and m.is_measured(128)


def test_a_training_time_below_the_probes_does_not_make_probed_sizes_faster():
    # the offset is a median gap of at least 0
    m = ThroughputModel(skip_after_resize=0)
    m.record_probe(32, 0.2)
    m.record_probe(64, 0.3)
    m.record(32, 0.1)
    assert m.samples_per_second(64) == pytest.approx(64 / 0.3)


# State --------------------------------------------------------------------------------------------


def test_state_round_trips_through_json_and_resumes_mid_warm_up():
    m = trained([(32, 0.1)] * 3 + [(64, 0.15)] * 3, memory_cap=96)
    m.record_probe(128, 0.25)
    m.record(16, 9.0)  # one step of a new size: one more to drop after a resume
    twin = ThroughputModel()
    twin.load_state_dict(json.loads(json.dumps(m.state_dict())))
    assert twin.measured() == pytest.approx(m.measured())
    assert twin.memory_cap == 96 and twin.samples_per_second(200) == pytest.approx(m.samples_per_second(200))
    for model in (m, twin):
        model.record(16, 9.0)  # still warm-up
        assert not model.is_measured(16)
        model.record(16, 0.05)
        assert model.samples_per_second(16) == pytest.approx(320.0)
    assert twin.state_dict() == m.state_dict()


def test_a_fixed_table_round_trips():
    m = ThroughputModel({32: 500.0, 64: 900.0})
    twin = ThroughputModel()
    twin.load_state_dict(json.loads(json.dumps(m.state_dict())))
    assert twin.measured() == {32: 500.0, 64: 900.0}
    twin.record(32, 1.0)
    assert twin.samples_per_second(32) == 500.0, "still fixed after the resume"


@pytest.mark.parametrize("state", [{}, {"fixed": None}, {"fixed": None, "times": {"x": [0.1]}, "probe": {},
                                                          "last_batch": None, "since_resize": 0}, None])
def test_a_malformed_state_is_a_config_error_naming_the_throughput_state(state):
    with pytest.raises(deba.DebaConfigError) as info:
        ThroughputModel().load_state_dict(state)
    assert info.value.fields == ["state.throughput"]


# Validation ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("table, field", [
    ({}, "throughput"),
    ([(32, 100.0)], "throughput"),
    ({"x": 100.0}, "throughput"),
    ({32: 0.0}, "throughput[32]"),
    ({32: -5.0}, "throughput[32]"),
    ({32: math.nan}, "throughput[32]"),
    ({32: math.inf}, "throughput[32]"),
    ({32: True}, "throughput[32]"),
    ({32: "100"}, "throughput[32]"),
    ({0: 100.0}, "throughput[0]"),
    ({16: 50.0, -1: 100.0}, "throughput[-1]"),
])
def test_a_bad_table_is_a_config_error_naming_the_entry(table, field):
    with pytest.raises(deba.DebaConfigError) as info:
        ThroughputModel(table)
    assert info.value.fields == [field]
    assert f"`{field}`" in str(info.value)


@pytest.mark.parametrize("skip", [-1, 1.5, True, "2", None])
def test_a_bad_skip_after_resize_is_a_config_error_naming_it(skip):
    with pytest.raises(deba.DebaConfigError) as info:
        ThroughputModel(skip_after_resize=skip)
    assert info.value.fields == ["skip_after_resize"]

"""How often a noise measurement step runs: k = ceil(cost / 0.5 %), in [1, 200], cached per batch and 50 steps.

Expected values are worked out by hand from the class docstring:
a split step costs ``T(B)/T(B/2) - 1`` of a step, a shadow pass ``0.5 T(B)/T(B/2)``, DEBA's own
reads ``own_seconds * T(B) / B`` of a step (ignored with a fixed table), and no throughput known
gives 10.
"""

from __future__ import annotations

import pytest

import deba
from deba.control.measurement_cadence import MEASUREMENT_SHARE, MeasurementCadence
from deba.control.throughput import ThroughputModel

# T(32) = 1000, T(64) = 1100 samples/s: T(B)/T(B/2) = 1.1 at B = 64.
TABLE = {32: 1000.0, 64: 1100.0}


def _measured() -> ThroughputModel:
    """Measured (no table): T(32) = 32 / 0.01 = 3200, T(64) = 64 / 0.016 = 4000 samples/s."""
    m = ThroughputModel(skip_after_resize=0)
    for _ in range(5):
        m.record(32, 0.010)
    for _ in range(5):
        m.record(64, 0.016)
    return m


def test_the_share_is_half_of_debas_one_percent():
    assert MEASUREMENT_SHARE == 0.005


def test_nothing_timed_measures_every_ten_steps():
    assert MeasurementCadence().steps_between(ThroughputModel(), batch=64, step=0) == 10


def test_a_split_step_is_priced_by_the_throughput_ratio():
    # extra = 1.1 - 1 = 0.1 of a step -> k = 0.1 / 0.005 = 20
    assert MeasurementCadence().steps_between(ThroughputModel(TABLE), batch=64, step=0) == 20


def test_a_shadow_pass_costs_half_the_ratio():
    # extra = 0.5 * 1.1 = 0.55 of a step -> k = 110
    assert MeasurementCadence().steps_between(ThroughputModel(TABLE), batch=64, step=0, shadow=True) == 110


def test_shadow_without_a_split_costs_only_the_own_reads():
    # split=False: nothing is split and no shadow pass; with a table the own reads are ignored too
    cadence = MeasurementCadence()
    assert cadence.steps_between(ThroughputModel(TABLE), batch=64, step=0, split=False, shadow=True) == 1


def test_no_split_with_a_table_costs_nothing_so_every_step_measures():
    assert MeasurementCadence().steps_between(ThroughputModel(TABLE), batch=64, step=0, split=False) == 1


def test_a_fixed_table_ignores_the_own_seconds():
    cadence = MeasurementCadence()
    assert cadence.steps_between(ThroughputModel(TABLE), batch=64, step=0, own_seconds=5.0) == 20


def test_own_seconds_add_their_share_of_a_step_when_measured():
    # T(64)/T(32) = 4000/3200 = 1.25 -> 0.25; own 0.0008 s * 4000 / 64 = 0.05 -> cost 0.30 -> k = 60
    assert MeasurementCadence().steps_between(_measured(), batch=64, step=0) == 50
    assert MeasurementCadence().steps_between(_measured(), batch=64, step=0, own_seconds=0.0008) == 60
    # per-sample reads instead of a split: only the own reads, 0.05 -> k = 10
    assert MeasurementCadence().steps_between(_measured(), batch=64, step=0, own_seconds=0.0008, split=False) == 10


def test_negative_own_seconds_count_as_nothing():
    assert MeasurementCadence().steps_between(_measured(), batch=64, step=0, own_seconds=-1.0) == 50


def test_the_interval_is_capped_at_200_steps():
    assert MeasurementCadence().steps_between(_measured(), batch=64, step=0, own_seconds=1.0) == 200


def test_a_half_batch_never_timed_is_priced_as_a_whole_step():
    # T(64) known, T(32) not (one size only): T(B)/T(B/2) taken as 2 -> cost 1 -> 200 (the cap)
    assert MeasurementCadence().steps_between(ThroughputModel({64: 1000.0}), batch=64, step=0) == 200
    # with a shadow pass: 0.5 * 2 = 1 -> 200 as well
    assert MeasurementCadence().steps_between(ThroughputModel({64: 1000.0}), batch=64, step=0, shadow=True) == 200


def test_a_half_batch_as_fast_or_faster_per_sample_costs_at_least_one_step_interval():
    # T(64) < T(32): the ratio is below 1, the extra cost clips at 0 -> every step (k >= 1)
    assert MeasurementCadence().steps_between(ThroughputModel({32: 2000.0, 64: 1000.0}), batch=64, step=0) == 1


def test_an_odd_batch_halves_rounding_up():
    # B = 63: half = ceil(63 / 2) = 32; T(63) is read from the table's line between 32 and 64.
    table = ThroughputModel({32: 1000.0, 63: 1260.0, 64: 1280.0})
    # T(63)/T(32) = 1.26 -> 0.26 -> k = 52
    assert MeasurementCadence().steps_between(table, batch=63, step=0) == 52


# Caching -------------------------------------------------------------------------------------


def test_the_answer_is_cached_for_the_same_batch_within_fifty_steps():
    cadence = MeasurementCadence()
    assert cadence.steps_between(ThroughputModel(TABLE), batch=64, step=0) == 20
    # a different throughput model within steps 0..49 at the same batch: the remembered answer
    assert cadence.steps_between(ThroughputModel(), batch=64, step=49) == 20


def test_the_cache_is_re_read_at_each_fifty_step_boundary():
    cadence = MeasurementCadence()
    assert cadence.steps_between(ThroughputModel(TABLE), batch=64, step=49) == 20
    assert cadence.steps_between(ThroughputModel(), batch=64, step=50) == 10


def test_a_batch_change_re_reads_the_throughput():
    cadence = MeasurementCadence()
    assert cadence.steps_between(ThroughputModel(TABLE), batch=64, step=3) == 20
    assert cadence.steps_between(ThroughputModel(), batch=32, step=3) == 10


def test_the_split_and_shadow_flags_are_part_of_the_cached_key():
    cadence = MeasurementCadence()
    table = ThroughputModel(TABLE)
    assert cadence.steps_between(table, batch=64, step=0) == 20
    assert cadence.steps_between(table, batch=64, step=0, shadow=True) == 110
    assert cadence.steps_between(table, batch=64, step=0, split=False) == 1
    assert cadence.steps_between(table, batch=64, step=0) == 20


def test_forget_drops_the_remembered_answer():
    cadence = MeasurementCadence()
    assert cadence.steps_between(ThroughputModel(TABLE), batch=64, step=0) == 20
    cadence.forget()
    assert cadence.steps_between(ThroughputModel(), batch=64, step=0) == 10


def test_the_cache_is_per_instance():
    a, b = MeasurementCadence(), MeasurementCadence()
    assert a.steps_between(ThroughputModel(TABLE), batch=64, step=0) == 20
    assert b.steps_between(ThroughputModel(), batch=64, step=0) == 10


@pytest.mark.parametrize("kw, field", [({"split": 1}, "split"), ({"shadow": "yes"}, "shadow"),
                                        ({"split": None}, "split"), ({"shadow": 0}, "shadow")])
def test_split_and_shadow_must_be_bools(kw, field):
    with pytest.raises(deba.DebaConfigError) as info:
        MeasurementCadence().steps_between(ThroughputModel(TABLE), batch=64, step=0, **kw)
    assert info.value.problems[0].field == field

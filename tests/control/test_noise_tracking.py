"""The scheduler's noise bookkeeping: the gap fed with each measurement, the last clear estimate, the state."""

from __future__ import annotations

import pytest

from deba.control.noise_tracking import NoiseTracker
from deba.signals.noise import NoiseMeasurement, NoiseScaleEstimator

# b = 16, B = 32: |G|^2 = 2 big_sq - small_sq, tr(Sigma) = 32 (small_sq - big_sq).
CLEAR = NoiseMeasurement(small_batch=16, small_sq=3.0, big_batch=32, big_sq=2.0)  # |G|^2 = 1, tr = 32
NEGATIVE_G = NoiseMeasurement(small_batch=16, small_sq=1.0, big_batch=32, big_sq=0.0)  # |G|^2 = -1, tr = 32
NEGATIVE_TRACE = NoiseMeasurement(small_batch=16, small_sq=0.0, big_batch=32, big_sq=10.0)  # |G|^2 = 20, tr = -320
ZERO = NoiseMeasurement(small_batch=16, small_sq=0.0, big_batch=32, big_sq=0.0)  # |G|^2 = 0, tr = 0


def _varied(i: int) -> NoiseMeasurement:
    return NoiseMeasurement(small_batch=16, small_sq=3.0 + 0.5 * (i % 3), big_batch=32, big_sq=2.0 + 0.1 * i)


def test_a_new_tracker_has_measured_nothing():
    tracker = NoiseTracker()
    assert tracker.last_measured_step is None and tracker.last_clear is None
    assert isinstance(tracker.estimator, NoiseScaleEstimator) and tracker.estimator.count == 0


def test_a_step_without_a_measurement_changes_nothing():
    tracker = NoiseTracker()
    tracker.record(None, step=7)
    assert tracker.last_measured_step is None and tracker.estimator.count == 0
    tracker.record(CLEAR, step=3)
    tracker.record(None, step=9)
    assert tracker.last_measured_step == 3 and tracker.estimator.count == 1


def test_each_measurement_is_fed_with_the_steps_since_the_previous_one():
    steps = [5, 15, 16, 40]
    tracker = NoiseTracker()
    for i, step in enumerate(steps):
        tracker.record(_varied(i), step=step)
    # by hand: the first measurement has gap 1, then 10, 1 and 24 steps
    expected = NoiseScaleEstimator()
    for i, gap in enumerate([1, 10, 1, 24]):
        expected.update(_varied(i), gap=gap)
    assert tracker.estimator.state_dict() == pytest.approx(expected.state_dict())
    assert tracker.last_measured_step == 40
    # the gaps matter: every measurement at gap 1 averages differently
    flat = NoiseScaleEstimator()
    for i in range(4):
        flat.update(_varied(i), gap=1)
    assert flat.state_dict()["w"] != pytest.approx(tracker.estimator.state_dict()["w"])


def test_a_repeated_or_earlier_step_counts_as_a_gap_of_one():
    tracker = NoiseTracker()
    for i, step in enumerate([10, 10, 4]):
        tracker.record(_varied(i), step=step)
    expected = NoiseScaleEstimator()
    for i in range(3):
        expected.update(_varied(i), gap=1)
    assert tracker.estimator.state_dict() == pytest.approx(expected.state_dict())
    assert tracker.last_measured_step == 4


def test_the_last_clear_estimate_is_the_point_estimate_while_it_is_clear():
    tracker = NoiseTracker()
    for step in (1, 2):
        tracker.record(CLEAR, step=step)
    assert tracker.last_clear is None, "no estimate before the estimator's minimum of measurements"
    tracker.record(CLEAR, step=3)
    # identical measurements: |G|^2 = 1 with no spread, tr = 32 -> B_simple = 32
    assert tracker.last_clear == pytest.approx(32.0)


def test_without_a_clear_point_estimate_the_lower_bound_is_kept():
    tracker = NoiseTracker()
    for step in range(1, 7):
        tracker.record(CLEAR if step % 2 else NEGATIVE_G, step=step)
    noise = tracker.estimator
    assert noise.noise_scale is None, "|G|^2 averages about 0: not clearly positive"
    assert noise.noise_scale_low is not None
    assert tracker.last_clear == pytest.approx(noise.noise_scale_low)


def test_the_last_clear_estimate_survives_measurements_that_give_none():
    tracker = NoiseTracker()
    for step in (1, 2, 3):
        tracker.record(CLEAR, step=step)
    assert tracker.last_clear == pytest.approx(32.0)
    for step in range(4, 24):
        tracker.record(ZERO, step=step)
    noise = tracker.estimator
    assert noise.noise_scale is None and noise.noise_scale_low is None, "set-up: nothing clear any more"
    assert tracker.last_clear == pytest.approx(32.0), "remembered, not dropped"


def test_an_estimate_that_is_never_clear_leaves_last_clear_unset():
    tracker = NoiseTracker()
    for step in range(1, 10):
        tracker.record(ZERO, step=step)  # |G|^2 = 0 and tr = 0: neither the estimate nor its bound exists
    assert tracker.estimator.count == 9
    assert tracker.last_clear is None


def test_a_clear_estimate_of_zero_noise_is_still_recorded():
    tracker = NoiseTracker()
    for step in range(1, 6):
        tracker.record(NEGATIVE_TRACE, step=step)  # |G|^2 = 20 clearly positive, tr < 0 -> B_simple = 0
    assert tracker.last_clear == 0.0


def test_state_dict_has_the_three_entries_in_order():
    tracker = NoiseTracker()
    tracker.record(CLEAR, step=4)
    state = tracker.state_dict()
    assert list(state) == ["noise", "last_measured_step", "last_clear_noise"]
    assert state["last_measured_step"] == 4 and state["last_clear_noise"] is None
    assert state["noise"] == tracker.estimator.state_dict()


def test_a_restored_tracker_continues_exactly():
    a = NoiseTracker()
    for i, step in enumerate([2, 9, 11, 30]):
        a.record(_varied(i), step=step)
    b = NoiseTracker()
    b.load_state_dict(a.state_dict())
    assert b.state_dict() == a.state_dict()
    a.record(_varied(7), step=45)
    b.record(_varied(7), step=45)  # the gap (15) comes from the restored last step
    assert b.state_dict() == a.state_dict()


@pytest.mark.parametrize("missing", ["noise", "last_measured_step", "last_clear_noise"])
def test_a_state_missing_an_entry_is_refused(missing):
    state = NoiseTracker().state_dict()
    del state[missing]
    with pytest.raises(KeyError):
        NoiseTracker().load_state_dict(state)

"""Built-in strategies: the conformance suite plus what each must do."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

import deba
from deba.strategies import EqualWeightStrategy, LearnedStrategy, RuleBasedStrategy
from deba.strategies.learned import nonnegative_least_squares, outcomes
from deba.testing import StrategyConformance


class TestEqualWeightConformance(StrategyConformance):
    strategy_class = EqualWeightStrategy


class TestRuleBasedConformance(StrategyConformance):
    strategy_class = RuleBasedStrategy


class TestLearnedConformance(StrategyConformance):
    strategy_class = LearnedStrategy


class TestLearnedFromProfileConformance(StrategyConformance):
    strategy_class = LearnedStrategy
    profile_name = "resnet50"

    def make(self, profile=None):
        p = profile or deba.load_profile("resnet50")
        return LearnedStrategy(p.replace(calibration={"learned": True}))


def generic():
    """``generic`` on the published method's three metrics and v1's scales (the tests below feed those)."""
    return deba.load_profile("generic").replace(
        weights={"grad_variance": 1.0, "grad_norm_variation": 1.0, "loss_variation": 1.0},
        tau={"grad_variance": 100.0, "grad_norm_variation": 0.3, "loss_variation": 0.3},
        rules=deba.load_profile("paper").rules)


def test_equal_weight_is_one_minus_mean_instability():
    p = generic()
    s = EqualWeightStrategy(p)
    m = {"grad_variance": 2.0, "loss_variation": 0.15}
    u = [2.0 / (2.0 + p.tau["grad_variance"]), 0.15 / (0.15 + p.tau["loss_variation"])]
    assert s.score(m) == pytest.approx(1 - sum(u) / 2)
    assert s.score({"grad_variance": 0.0}) == 1.0
    # a weight of 0 switches a metric off
    off = EqualWeightStrategy(p.replace(weights={"grad_variance": 0.0, "loss_variation": 1.0}))
    assert off.score(m) == pytest.approx(1 - u[1])


def test_rule_based_first_match_wins_and_default_holds():
    p = generic().replace(rules=[
        {"metric": "loss_variation", "op": ">", "threshold": 0.2, "verdict": "shrink"},
        {"metric": "grad_variance", "op": "<=", "threshold": 0.5, "verdict": "grow"},
    ], rules_default="hold")
    s = RuleBasedStrategy(p)
    assert s.score({"loss_variation": 0.3, "grad_variance": 0.1}) == 0.0
    assert s.score({"loss_variation": 0.1, "grad_variance": 0.5}) == 1.0
    mid = s.score({"loss_variation": 0.1, "grad_variance": 0.9})
    assert p.decrease_below <= mid < p.increase_above
    assert s.verdict({"grad_variance": 0.1}) == ("grow", 1)


def _calibration_run(strategy, n, noisy_metric):
    """Losses that spike right after `noisy_metric` is high; the other metrics are noise."""
    rng = np.random.default_rng(0)
    loss = 2.0
    for t in range(n):
        high = t % 10 < 3
        metrics = {
            "grad_variance": float(rng.random() * 2),
            "grad_norm_variation": float(rng.random() * 0.2),
            "loss_variation": float(rng.random() * 0.05),
        }
        if high:
            metrics[noisy_metric] *= 20
        loss = loss * 0.97 if not high else loss * 1.3
        strategy.update(metrics, loss)


def test_learned_finds_the_metric_that_predicts_bad_outcomes_and_exports_it(tmp_path):
    p = generic().replace(calibration={"intervals": 60, "horizon": 2, "min_events": 3})
    s = LearnedStrategy(p)
    assert s.calibrating
    _calibration_run(s, 60, "grad_norm_variation")
    assert not s.calibrating and s.status == "learned", s.report
    w = s.weights
    assert w["grad_norm_variation"] == max(w.values()) and w["grad_norm_variation"] > 0.5
    assert sum(w.values()) == pytest.approx(1.0)
    # written into a profile file and reused: no calibration phase next time
    path = s.to_profile(name="calibrated").to_file(tmp_path / "cal.yaml")
    again = LearnedStrategy(deba.load_profile(path))
    assert not again.calibrating and again.status == "from-profile"
    assert again.weights == pytest.approx(w)


def test_learned_falls_back_to_equal_weights_and_says_so():
    p = generic().replace(calibration={"intervals": 20, "horizon": 2, "min_events": 3})
    s = LearnedStrategy(p)
    with pytest.warns(UserWarning, match="too little signal"):
        for t in range(20):  # a steadily falling loss: no bad outcome at all
            s.update({"loss_variation": 0.01}, 2.0 * 0.9**t)
    assert s.status == "fallback" and "equal weights" in s.report
    assert len(set(s.weights.values())) == 1
    json.dumps(s.state_dict(), allow_nan=False)


def test_scheduler_holds_while_learned_is_calibrating():
    p = generic().replace(calibration={"intervals": 10, "horizon": 2}, interval=1, warmup=0, window=2, min_samples=2)
    sched = deba.BatchScheduler(p, strategy="learned")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reasons = [sched.observe(deba.Observation(loss=1.0, batch_size=32, grad_norm=1.0)).reason for _ in range(6)]
    assert any("calibrating" in r for r in reasons)


def test_nnls_and_outcomes():
    a = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    w = nonnegative_least_squares(a, np.array([1.0, -1.0, 0.0]))
    assert w[1] == 0.0 and w[0] > 0
    y = outcomes(np.array([1.0, 0.9, 1.5, 0.5, 0.4, 0.3]), 1, 0.1, 0.01)
    assert y.tolist() == [0.0, 1.0, 0.0, 0.0, 0.0]


def test_strategy_options_are_validated():
    with pytest.raises(deba.DebaConfigError, match="not options"):
        deba.BatchScheduler("generic", strategy="equal-weight", strategy_options={"alpha": 1})
    with pytest.raises(deba.DebaConfigError):
        EqualWeightStrategy("generic")  # type: ignore[arg-type]


def test_scheduler_rejects_a_strategy_returning_out_of_range_scores():
    class Broken(deba.ScoringStrategy):
        name = "broken"

        def score(self, metrics):
            return 1.5

    p = generic().replace(interval=1, warmup=0, window=2, min_samples=2)
    sched = deba.BatchScheduler(p, strategy=Broken(p))
    with pytest.raises(deba.DebaConfigError, match="broken.score"):
        for _ in range(5):
            sched.observe(deba.Observation(loss=1.0, batch_size=32, grad_norm=1.0))


from deba.strategies import NoiseScaleStrategy, NormTestStrategy  # noqa: E402


class TestNoiseScaleConformance(StrategyConformance):
    strategy_class = NoiseScaleStrategy


class TestNormTestConformance(StrategyConformance):
    strategy_class = NormTestStrategy


def test_noise_scale_grows_when_the_noise_scale_exceeds_the_batch():
    p = generic()
    s = NoiseScaleStrategy(p)
    assert s.score({"grad_variance": 1.0}) == 0.5  # B_simple == B
    assert s.score({"grad_variance": 9.0}) == 0.9 >= p.increase_above
    assert s.score({"grad_variance": 0.1}) < p.decrease_below
    # monotone in the metric, unlike DEBA's stability view
    values = [s.score({"grad_variance": v}) for v in (0.01, 0.5, 1, 2, 10, 100)]
    assert values == sorted(values)
    assert NoiseScaleStrategy(p, critical_ratio=4.0).score({"grad_variance": 4.0}) == 0.5
    with pytest.raises(deba.DebaConfigError, match="critical_ratio"):
        NoiseScaleStrategy(p, critical_ratio=0)


def test_norm_test_only_grows():
    p = generic()
    s = NormTestStrategy(p, theta=0.5)
    hold = (p.increase_above + p.decrease_below) / 2
    assert s.score({"grad_variance": 0.2}) == hold  # 0.2 <= 0.25: the test passes
    assert s.score({"grad_variance": 10.0}) > p.increase_above
    assert min(s.score({"grad_variance": v}) for v in (0, 0.1, 1, 100)) >= p.decrease_below
    with pytest.raises(deba.DebaConfigError, match="theta"):
        NormTestStrategy(p, theta=-1)


def test_new_strategies_are_registered():
    assert {"noise-scale", "norm-test"} <= set(deba.registry.available("strategies"))
    sched = deba.BatchScheduler("generic", strategy="norm-test", strategy_options={"theta": 0.7})
    assert sched.strategy.theta == 0.7

"""Test helpers: a hypothesis strategy for valid profiles, and a score-echo collector/strategy pair
that lets a test dictate the stability score through the loss (score = 1 - loss)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

import numpy as np
from hypothesis import strategies as st

import deba
from deba.signals.collectors import ScalarWindowCollector


class LastLossCollector(ScalarWindowCollector):
    """Value = the latest interval's mean loss."""

    name = "last_loss"

    def extract(self, obs):
        return obs.loss

    def compute(self, values: np.ndarray) -> float:
        return float(values[-1])


class EchoStrategy(deba.ScoringStrategy):
    """Score = 1 - last_loss, clipped to [0, 1]."""

    name = "echo"

    def score(self, metrics: Mapping[str, float]) -> float:
        v = metrics.get("last_loss")
        if v is None:
            return 0.5
        return min(1.0, max(0.0, 1.0 - float(v)))


@st.composite
def profiles(draw, interval=None, policy=None) -> deba.ArchitectureProfile:
    g = draw(st.sampled_from([1, 2, 8]))
    lo = g * draw(st.integers(1, 4))
    hi = lo + g * draw(st.integers(0, 40))
    init = lo + g * draw(st.integers(0, (hi - lo) // g))
    dec = draw(st.floats(0.0, 0.9))
    inc = draw(st.floats(dec + 0.01, 1.0))
    window = draw(st.integers(2, 6))
    return deba.ArchitectureProfile(
        name="drawn",
        family="generic",
        min_batch=lo,
        max_batch=hi,
        initial_batch=init,
        granularity=g,
        growth_factor=draw(st.one_of(st.floats(1.0, 4.0, exclude_min=True), st.just(1.0 + 1e-12))),
        shrink_factor=draw(st.one_of(st.floats(1.0, 4.0, exclude_min=True), st.just(1.0 + 1e-12))),
        increase_above=inc,
        decrease_below=dec,
        interval=draw(st.sampled_from([1, 2, 3, "epoch"])) if interval is None else interval,
        window=window,
        min_samples=draw(st.integers(2, window)),
        cooldown=draw(st.integers(0, 3)),
        warmup=draw(st.integers(0, 3)),
        nonfinite_patience=draw(st.integers(1, 4)),
        weights={"last_loss": 1.0},
        sketch_size=8,
        policy=draw(st.sampled_from(["stability", "goodput"])) if policy is None else policy,
        min_gain=draw(st.sampled_from([0.0, 0.05, 0.3])),
        # Rules that need no noise estimate, so the LR factor is a function of the batch alone.
        lr_scaling=draw(st.sampled_from(["none", "linear", "sqrt"])),
    )


#: Observations carry a noise measurement of this noise scale (see ``obs``).
NOISE_SCALE = 4000.0


def rising_throughput(profile: deba.ArchitectureProfile) -> dict[int, float]:
    """A fixed table where larger batches run faster per sample (so goodput can pay)."""
    g = profile.granularity
    return {b: 1000.0 * b / (b + 8.0) for b in range(profile.min_batch, profile.max_batch + 1, g)}


def echo_scheduler(profile: deba.ArchitectureProfile, by_instance: bool = True, throughput=None) -> deba.BatchScheduler:
    """A scheduler whose score is 1 - loss. ``by_instance`` varies how it is built.

    Throughput is a fixed table (``rising_throughput`` by default), so decisions are a pure function
    of the observations for both policies.
    """
    table = rising_throughput(profile) if throughput is None else throughput
    if by_instance:
        return deba.BatchScheduler(
            profile, strategy=EchoStrategy(profile),
            collectors=[LastLossCollector(window=profile.window, min_samples=profile.required_samples)],
            throughput=table,
        )
    deba.registry.register("strategies", "echo", EchoStrategy, expected=deba.ScoringStrategy)
    deba.registry.register("collectors", "last_loss", LastLossCollector, expected=deba.MetricCollector)
    try:
        return deba.BatchScheduler(profile, strategy="echo", collectors=["last_loss"], throughput=table)
    finally:
        # The process-wide registry is left as the test found it.
        deba.registry.unregister("strategies", "echo")
        deba.registry.unregister("collectors", "last_loss")


def obs(loss: float, batch: int = 8, finite: bool = True) -> deba.Observation:
    """A step of ``batch`` samples with a noise measurement: ``|G|^2 = 1``, ``B_simple = NOISE_SCALE``."""
    big_sq = 1.0 + NOISE_SCALE / batch
    small = {"small_batch": batch / 2, "small_grad_sq": 1.0 + 2 * NOISE_SCALE / batch} if batch >= 2 else {}
    return deba.Observation(loss=loss if finite else float("nan"), batch_size=batch, grad_norm=big_sq ** 0.5, **small)


#: Fashion-MNIST IDX files: ../shared/data/fashion-mnist beside the repository (CI lays shared/
#: there), or DEBA_FASHION_MNIST when set.
FASHION_DIR = Path(os.environ.get("DEBA_FASHION_MNIST",
                                  Path(__file__).resolve().parents[1].parent / "shared" / "data" / "fashion-mnist"))

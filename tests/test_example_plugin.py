"""The example third-party plugin, installed like any user's (CI installs plugins/deba-example-strategy)."""

from __future__ import annotations

import subprocess
import sys

import pytest

import deba


def test_deba_plugins_lists_it_with_its_distribution():
    out = subprocess.run([sys.executable, "-m", "deba", "plugins"], capture_output=True, text=True, check=True).stdout
    line = next(l for l in out.splitlines() if "worst-metric" in l)
    assert "deba.strategies" in line and "deba-example-strategy" in line and "0.1.0" in line and line.endswith("ok")


def test_scheduler_uses_it_by_name():
    sched = deba.BatchScheduler("generic", strategy="worst-metric")
    assert type(sched.strategy).__module__ == "deba_example_strategy"
    # worst-metric: one unstable metric is enough to score low
    assert sched.strategy.score({"loss_variation": 1e6, "grad_norm_variation": 0.0}) < 0.01
    # Driven by name through a whole decision cycle, its score is what the scheduler decides on.
    profile = deba.load_profile("generic").replace(interval=1, window=3, min_samples=2, warmup=0, cooldown=0)
    sched = deba.BatchScheduler(profile, strategy="worst-metric")
    decisions = [sched.observe(deba.Observation(loss=1.0 + 0.1 * i, batch_size=sched.batch_size, grad_norm=1.0 + i % 2))
                 for i in range(6)]
    scored = [d for d in decisions if d.score is not None]
    assert len(scored) >= 3, "the plugin scored every decision once the windows held enough"
    for d in scored:
        assert d.score == pytest.approx(sched.strategy.score(d.metrics))


def test_its_source_is_under_30_lines_of_code():
    import deba_example_strategy, inspect

    src = inspect.getsource(deba_example_strategy)
    # count code lines: outside docstrings, not blank, not comments
    lines, inside = 0, False
    for l in src.splitlines():
        s = l.strip()
        if s.startswith('"""') or s.endswith('"""'):
            inside = not inside if s.count('"""') == 1 else inside
            continue
        if not inside and s and not s.startswith("#"):
            lines += 1
    assert 5 < lines < 30, lines

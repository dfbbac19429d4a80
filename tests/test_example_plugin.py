"""The example third-party plugin, installed like any user's (CI installs plugins/deba-example-strategy)."""

from __future__ import annotations

import subprocess
import sys

import deba
from helpers import obs


def test_deba_plugins_lists_it_with_its_distribution():
    out = subprocess.run([sys.executable, "-m", "deba", "plugins"], capture_output=True, text=True, check=True).stdout
    line = next(l for l in out.splitlines() if "worst-metric" in l)
    assert "deba.strategies" in line and "deba-example-strategy" in line and "0.1.0" in line and line.endswith("ok")


def test_scheduler_uses_it_by_name():
    sched = deba.BatchScheduler("generic", strategy="worst-metric")
    assert type(sched.strategy).__module__ == "deba_example_strategy"
    # worst-metric: one unstable metric is enough to score low
    assert sched.strategy.score({"loss_variation": 1e6, "grad_norm_variation": 0.0}) < 0.01
    for _ in range(3):
        sched.observe(obs(1.0, sched.batch_size))


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

"""A plugin written from docs/plugins.md alone works: its code blocks run against the contract."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

import deba
from deba.testing import CollectorConformance, PolicyConformance

DOC = Path(__file__).resolve().parents[1] / "docs" / "plugins.md"


def _doc_namespace() -> dict:
    """Run every ```python block of docs/plugins.md that defines a class; return what they define."""
    ns: dict = {}
    for block in re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S):
        if "class " in block and "deba.testing" not in block:
            exec(compile(block, str(DOC), "exec"), ns)  # noqa: S102 - our own documentation
    return ns


NS = _doc_namespace()


def test_the_docs_define_one_plugin_of_each_kind():
    kinds = {name: obj for name, obj in NS.items() if isinstance(obj, type)}
    assert issubclass(kinds["LossRange"], deba.MetricCollector)
    assert issubclass(kinds["HalfStep"], deba.BatchPolicy)
    assert issubclass(kinds["LoopAdapter"], deba.FrameworkAdapter)
    assert issubclass(kinds["WorstMetricStrategy"], deba.ScoringStrategy)


class TestDocumentedCollector(CollectorConformance):
    collector_class = NS["LossRange"]


class TestDocumentedPolicy(PolicyConformance):
    policy_class = NS["HalfStep"]


def test_documented_plugins_work_through_the_registry():
    profile = deba.load_profile("generic").replace(interval=1, window=3, min_samples=2, warmup=0, cooldown=0,
                                                   increase_above=0.01, decrease_below=0.0, weights={"loss_range": 1.0},
                                                   tau={"loss_range": 1.0})
    reg = deba.registry
    reg.register("collectors", "loss_range", NS["LossRange"], expected=deba.MetricCollector)
    reg.register("policies", "half-step", NS["HalfStep"], expected=deba.BatchPolicy)
    reg.register("adapters", "my-loop", NS["LoopAdapter"], expected=deba.FrameworkAdapter)
    try:
        sched = deba.BatchScheduler(profile, collectors=["loss_range"], policy="half-step")
        for i in range(6):
            d = sched.observe(deba.Observation(loss=1.0 + 0.01 * i, batch_size=sched.batch_size, grad_norm=1.0))
        assert sched.batch_size > profile.initial_batch and d.metrics.get("loss_range") is not None
        assert sched.batch_size - profile.initial_batch <= sched.changes * profile.granularity, "one grid step a time"
        model = torch.nn.Linear(2, 2)
        adapter = reg.load("adapters", "my-loop", expected=deba.FrameworkAdapter)
        ctl = adapter.create(model, torch.optim.SGD(model.parameters(), lr=0.1), profile="mlp")
        assert isinstance(ctl, deba.DebaController) and adapter.available()
    finally:
        for kind, name in (("collectors", "loss_range"), ("policies", "half-step"), ("adapters", "my-loop")):
            reg.unregister(kind, name)


def test_builtin_adapters_are_found_through_the_registry():
    found = deba.registry.load_all("adapters", deba.FrameworkAdapter)
    assert {"torch", "huggingface", "distributed"} <= set(found)
    assert found["huggingface"].requires == ("transformers", "accelerate") and found["huggingface"].extra == "hf"
    with pytest.raises(TypeError, match="abstract"):
        type("NoCreate", (deba.FrameworkAdapter,), {"name": "x", "wraps": "y"})()

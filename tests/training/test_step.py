"""The step engine: one step written once, the LR factor from Decision.lr_factor, rank adoption."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
import torch
from torch import nn

import deba
from deba.training.step import StepEngine, loss_of

ROOT = Path(__file__).resolve().parents[2]
PROFILE = deba.load_profile("mlp").replace(interval=1, window=3, min_samples=2, warmup=0, cooldown=0,
                                           increase_above=0.0001, decrease_below=0.0, lr_scaling="linear",
                                           policy="stability", shares=None)


def _engine(model: nn.Module, coupler=None, sampler=None) -> StepEngine:
    sched = deba.BatchScheduler(PROFILE)
    return StepEngine(model, sched, deba.signals.GradientProbe(model, 8), forward_loss=loss_of(model, nn.functional.cross_entropy),
                      coupler=coupler, sampler=sampler)


def test_the_factor_of_a_step_is_the_decision_in_force_when_its_batch_was_drawn():
    torch.manual_seed(0)
    model = nn.Linear(4, 3)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    coupler = deba.training.lr.LRCoupler(opt)
    engine = _engine(model, coupler=coupler)
    previous = engine.lr_factor
    changed = 0
    for _ in range(8):
        b = engine.scheduler.batch_size
        out = engine.run((torch.randn(b, 4), torch.randint(0, 3, (b,))))
        assert out.lr_factor == previous == coupler.factor, "this step's factor is the one in force before it"
        assert engine.lr_factor == out.decision.lr_factor, "the next step's factor is the decision's"
        previous = out.decision.lr_factor
        changed += out.decision.changed
    assert changed >= 1 and engine.lr_factor > 1.0, "linear scaling after growth"


def test_engine_counts_resizes_and_round_trips():
    model = nn.Linear(4, 3)
    sampler = deba.AdaptiveBatchSampler(200, batch_size=7)
    engine = _engine(model, sampler=sampler)
    assert sampler.batch_size == engine.scheduler.batch_size, "the sampler starts at the scheduler's batch"
    total = 0
    for _ in range(4):
        b = sampler.batch_size
        out = engine.run((torch.randn(b, 4), torch.randint(0, 3, (b,))))
        total += b
        assert sampler.batch_size == out.decision.batch_size
    assert engine.steps == 4 and engine.samples == total == out.total_samples
    twin = _engine(nn.Linear(4, 3))
    twin.load_state_dict(json.loads(json.dumps(engine.state_dict())))
    assert twin.state_dict() == engine.state_dict()
    with pytest.raises(deba.DebaConfigError, match="state.engine"):
        twin.load_state_dict({"steps": 1})


def test_non_finite_step_clears_gradients_and_is_counted():
    model = nn.Linear(4, 3)
    engine = _engine(model)

    def bad_loss(micro):
        return model(micro[0]).sum() * float("nan")

    out = engine.run((torch.randn(8, 4), torch.zeros(8, dtype=torch.long)), forward_loss=bad_loss)
    assert not out.finite and all(p.grad is None for p in model.parameters())
    assert engine.scheduler.nonfinite_total == 1


def test_manual_mode_observes_what_the_user_computed():
    model = nn.Linear(4, 3)
    engine = StepEngine(model, deba.BatchScheduler(PROFILE), deba.signals.GradientProbe(model, 8))
    loss = nn.functional.cross_entropy(model(torch.randn(16, 4)), torch.zeros(16, dtype=torch.long))
    loss.backward()
    out = engine.observe(loss, 16)
    assert out.result is None and out.obs.grad_norm > 0 and engine.samples == 16
    rec = out.record(epoch=0, lr=0.1)
    assert rec["local_batch_size"] == 16 and rec["micro_batches"] == 1 and rec["decided"] is out.decision.decided
    with pytest.raises(deba.DebaConfigError, match="forward_loss"):
        engine.run((torch.randn(2, 4), torch.zeros(2, dtype=torch.long)))


def test_adopting_rank_zeros_decision_changes_the_scheduler_as_if_it_decided():
    a, b = deba.BatchScheduler(PROFILE), deba.BatchScheduler(PROFILE)
    obs = deba.Observation(loss=1.0, batch_size=PROFILE.initial_batch, grad_norm=1.0)
    d = None
    for _ in range(4):
        d = a.observe(obs)
        if d.changed:
            break
    assert d is not None and d.changed
    b.adopt(d)
    assert b.batch_size == a.batch_size and b.last_decision == d
    assert b.state.changes == 1 and b.state.intervals_since_change == 0 and b.state.window_count == 0
    with pytest.raises(deba.DebaConfigError, match="decision"):
        b.adopt({"batch_size": 4})


def _calls(path: Path, names: set[str], receiver: str = "") -> list[str]:
    """Calls of ``names`` in ``path`` (with ``receiver``: only ``<...receiver...>.name(...)``)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call):
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
            on = ast.unparse(f.value) if isinstance(f, ast.Attribute) else ""
            if name in names and receiver in on:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno} {name}")
    return found


def test_the_per_step_logic_exists_once():
    """Micro-batching, reduction, observing and agreeing are called from the step engine only
    (micro-batching from the runner its measurements share)."""
    names = {"run_micro_batches", "allreduce_gradients", "gather_sketches", "broadcast_decision", "adopt"}
    files = [p for root in ("deba_core/training", "adapters") for p in (ROOT / root).rglob("*.py")]
    runner = ROOT / "deba_core/training/measurement/base.py"
    # The start-up throughput probe times forward/backward passes; it is not a training step.
    outside = [c for p in files if p.name not in ("step.py", "throughput_probe.py")
               for c in _calls(p, names - {"run_micro_batches"} if p == runner else names)]
    assert outside == [], f"per-step logic outside deba/training/step.py: {outside}"
    observe = [c for p in files if p.name != "step.py" for c in _calls(p, {"observe", "end_epoch"}, receiver="sched")]
    assert observe == [], f"scheduler.observe called outside the step engine: {observe}"


def test_constructor_keywords_set_what_callers_used_to_reassign():
    model = nn.Linear(4, 3)
    sched = deba.BatchScheduler(PROFILE)
    assert _engine(model).per_sample is not None, "a linear model reads per-sample norms by default"
    engine = StepEngine(model, sched, deba.signals.GradientProbe(model, 8), per_sample_norms=False, shadow_halves=False,
                        measure_noise=False)
    assert engine.per_sample is None and engine.shadow_halves is False and not engine._measure_now()
    for bad in ({"per_sample_norms": "no"}, {"measure_noise": 1}, {"shadow_halves": "always"},
                {"max_micro_batch": 0}, {"forward_loss": 3}):
        with pytest.raises(deba.DebaConfigError, match=next(iter(bad))):
            StepEngine(model, sched, deba.signals.GradientProbe(model, 8), **bad)


def test_run_takes_a_forward_loss_per_call_and_cap_memory_caps_the_next_steps():
    model = nn.Linear(4, 3)
    engine = _engine(model)
    own = engine.forward_loss
    seen = []

    def counting(micro):
        seen.append(len(micro[1]))
        return nn.functional.cross_entropy(model(micro[0]), micro[1])

    engine.cap_memory(3)
    out = engine.run((torch.randn(8, 4), torch.randint(0, 3, (8,))), forward_loss=counting)
    assert sum(seen) >= 8 and max(seen) <= 3 and out.result.micro_sizes == [3, 3, 2]
    assert engine.forward_loss is own, "the per-call loss does not replace the constructor's"
    engine.cap_memory(None)
    assert engine.run((torch.randn(8, 4), torch.randint(0, 3, (8,)))).result.micro_sizes == [8]
    for bad in (0, True, 2.5, "4"):
        with pytest.raises(deba.DebaConfigError, match="max_micro_batch"):
            engine.cap_memory(bad)
    with pytest.raises(deba.DebaConfigError, match="forward_loss"):
        engine.run((torch.randn(2, 4), torch.zeros(2, dtype=torch.long)), forward_loss="not callable")


def test_the_state_document_keeps_its_keys_and_old_checkpoints_load():
    model = nn.Linear(4, 3)
    engine = _engine(model)
    for _ in range(3):
        engine.run((torch.randn(8, 4), torch.randint(0, 3, (8,))))
    state = engine.state_dict()
    assert list(state) == ["steps", "samples", "equivalent_samples", "lr_factor", "grad_scaler", "max_micro_batch",
                           "oom_events", "deba_seconds", "norm_reads", "measurement_seconds", "normal_seconds",
                           "measurement_interval"]
    assert state["deba_seconds"] == engine.deba_seconds > 0.0
    with pytest.raises(AttributeError):
        engine.deba_seconds = 1.0  # read-only: DEBA's own clock counts it
    old = {"steps": 5, "samples": 40, "equivalent_samples": 40.0, "lr_factor": 1.0}  # before the optional keys
    twin = _engine(nn.Linear(4, 3))
    twin.load_state_dict(old)
    assert (twin.steps, twin.samples, twin.deba_seconds, twin.max_micro_batch) == (5, 40, 0.0, None)
    assert twin.state_dict()["measurement_interval"] is None

"""Conformance suites for plugin authors (and the built-ins).

Subclass a suite in your own tests and point it at your class; pytest collects the inherited
test methods::

    from deba.testing import StrategyConformance
    from my_plugin import MyStrategy

    class TestMyStrategy(StrategyConformance):
        strategy_class = MyStrategy

(``CollectorConformance``: ``collector_class``; ``PolicyConformance``: ``policy_class``.)

Needs only pytest. Inputs are drawn from fixed seeds, so failures reproduce.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from deba.signals.collectors.base import MetricCollector
from deba.errors import DebaConfigError
from deba.signals.observation import Observation
from deba.profiles.schema import DEFAULT_METRICS, ArchitectureProfile
from deba.profiles.loading import load_profile
from deba.control.scoring import ScoringStrategy
from deba.control.policy import BatchPolicy, Move, PolicySignals
from deba.control.throughput import ThroughputModel

__all__ = ["AdapterConformance", "AdapterRun", "CollectorConformance", "ConformanceCase", "ControllerFrontEnd", "Crash", "FitFrontEnd",
           "PolicyConformance", "StrategyConformance", "expect", "random_metrics", "random_observations",
           "random_signals"]


def expect(condition: object, message: str) -> None:
    """Fail the conformance test with ``message`` unless ``condition`` holds.

    A real exception rather than ``assert``, so the suite still checks under ``python -O``.
    """
    if not condition:
        raise AssertionError(message)


def random_metrics(rng: np.random.Generator, names: tuple[str, ...] = DEFAULT_METRICS) -> dict[str, float]:
    """A metrics mapping with some names missing and values across many scales."""
    out: dict[str, float] = {}
    for name in names:
        if rng.random() < 0.2:
            continue
        kind = rng.integers(0, 5)
        out[name] = [0.0, float(rng.random()), float(10 ** rng.uniform(-6, 6)), float(rng.random() * 3), math.inf][kind]
    return out


def random_observations(n: int, seed: int = 0, sketch_size: int = 16, micro: int = 0) -> list[Observation]:
    """A plausible run: a falling noisy loss, varying gradient norms, sketches, optional micro-batches."""
    rng = np.random.default_rng(seed)
    direction = rng.normal(size=sketch_size)
    out = []
    for t in range(n):
        loss = 2.0 * math.exp(-t / max(n, 1)) + 0.1 * rng.random()
        sketch = direction + 0.5 * rng.normal(size=sketch_size)
        kwargs: dict[str, Any] = {}
        if micro >= 2:
            kwargs["micro_sketches"] = [direction + rng.normal(size=sketch_size) for _ in range(micro)]
            kwargs["micro_sizes"] = [8] * micro
        out.append(
            Observation(
                loss=loss, batch_size=8 * max(micro, 1), grad_norm=float(1 + rng.random()), grad_sketch=sketch, step=t, **kwargs
            )
        )
    return out


class StrategyConformance:
    """The contract every :class:`ScoringStrategy` meets. Set ``strategy_class`` (and ``options``)."""

    strategy_class: ClassVar[type[ScoringStrategy]]
    options: ClassVar[dict[str, Any]] = {}
    profile_name: ClassVar[str] = "generic"
    cases: ClassVar[int] = 300

    def make(self, profile: ArchitectureProfile | None = None) -> ScoringStrategy:
        return self.strategy_class(profile or load_profile(self.profile_name), **self.options)

    def test_is_a_strategy_with_a_name(self) -> None:
        s = self.make()
        expect(isinstance(s, ScoringStrategy), 'expected: isinstance(s, ScoringStrategy)')
        expect(isinstance(s.name, str) and s.name, 'expected: isinstance(s.name, str) and s.name')

    def test_scores_are_floats_in_unit_interval(self) -> None:
        s = self.make()
        rng = np.random.default_rng(1234)
        for _ in range(self.cases):
            metrics = random_metrics(rng)
            s.update(metrics, float(rng.random() * 3))
            value = s.score(metrics)
            expect(isinstance(value, float), f"score must be a float, got {type(value).__name__}")
            expect(0.0 <= value <= 1.0, f"score {value} outside [0, 1] for {metrics}")

    def test_handles_empty_and_unknown_metrics(self) -> None:
        s = self.make()
        for metrics in ({}, {"someone_elses_metric": 0.5}):
            expect(0.0 <= s.score(metrics) <= 1.0, 'expected: 0.0 <= s.score(metrics) <= 1.0')

    def test_deterministic(self) -> None:
        rng_a, rng_b = np.random.default_rng(7), np.random.default_rng(7)
        a, b = self.make(), self.make()
        for _ in range(100):
            ma, mb = random_metrics(rng_a), random_metrics(rng_b)
            a.update(ma, 1.0)
            b.update(mb, 1.0)
            expect(a.score(ma) == b.score(mb), 'expected: a.score(ma) == b.score(mb)')

    def test_rejects_bad_metrics(self) -> None:
        s = self.make()
        for bad in ([0.1, 0.2], {"loss_variation": "high"}, {1: 0.2}):
            try:
                s.score(bad)  # type: ignore[arg-type]
            except DebaConfigError:
                continue
            raise AssertionError(f"score({bad!r}) should raise DebaConfigError")

    def test_rejects_unknown_option(self) -> None:
        try:
            self.strategy_class(load_profile(self.profile_name), not_an_option_of_anyone=1, **self.options)
        except DebaConfigError:
            return
        raise AssertionError("an unknown option should raise DebaConfigError")

    def test_state_round_trips_through_json(self) -> None:
        rng = np.random.default_rng(99)
        a = self.make()
        history = [(random_metrics(rng), float(rng.random())) for _ in range(60)]
        for metrics, loss in history[:30]:
            a.update(metrics, loss)
        state = json.loads(json.dumps(a.state_dict(), allow_nan=False))
        b = self.make()
        b.load_state_dict(state)
        for metrics, loss in history[30:]:
            a.update(metrics, loss)
            b.update(metrics, loss)
            expect(a.score(metrics) == b.score(metrics), 'expected: a.score(metrics) == b.score(metrics)')


class CollectorConformance:
    """The contract every :class:`MetricCollector` meets. Set ``collector_class``."""

    collector_class: ClassVar[type[MetricCollector]]
    window: ClassVar[int] = 6
    min_samples: ClassVar[int] = 3
    micro: ClassVar[int] = 0

    def make(self) -> MetricCollector:
        return self.collector_class(window=self.window, min_samples=self.min_samples)

    def observations(self, n: int, seed: int = 0) -> list[Observation]:
        return random_observations(n, seed=seed, micro=self.micro)

    def test_has_a_name(self) -> None:
        expect(isinstance(self.collector_class.name, str) and self.collector_class.name, 'expected: isinstance(self.collector_class.name, str) and self.collector_class.name')

    def test_none_until_min_samples(self) -> None:
        c = self.make()
        obs = self.observations(self.min_samples)
        for o in obs[:-1]:
            c.update(o)
            expect(c.value() is None, 'expected: c.value() is None')
        c.update(obs[-1])
        value = c.value()
        expect(value is not None and math.isfinite(value) and value >= 0.0, 'expected: value is not None and math.isfinite(value) and value >= 0.0')

    def test_window_is_bounded(self) -> None:
        c = self.make()
        for o in self.observations(self.window * 10):
            c.update(o)
        expect(c.count is None or c.count <= self.window, 'expected: c.count <= self.window (when reported)')
        size_full = len(json.dumps(c.state_dict()))
        for o in self.observations(self.window * 10, seed=1):
            c.update(o)
        expect(len(json.dumps(c.state_dict())) <= 1.5 * size_full + 100, 'expected: len(json.dumps(c.state_dict())) <= 1.5 * size_full + 100')

    def test_nonfinite_never_enters_the_window(self) -> None:
        c = self.make()
        good = self.observations(self.window)
        for o in good:
            c.update(o)
        before, value = c.count, c.value()
        for bad in (
            Observation(loss=float("nan"), batch_size=8, grad_norm=float("inf"), grad_finite=False,
                        grad_sketch=np.full(16, np.nan)),
            Observation(loss=float("inf"), batch_size=8, grad_norm=float("nan"), grad_finite=False),
        ):
            c.update(bad)
        expect(c.count == before, 'expected: c.count unchanged by non-finite observations (when reported)')
        expect(c.value() == value, 'expected: c.value() == value')
        expect(c.nonfinite >= 1, 'expected: c.nonfinite >= 1')

    def test_reset_empties(self) -> None:
        c = self.make()
        for o in self.observations(self.window):
            c.update(o)
        c.reset()
        expect(c.count in (None, 0) and c.value() is None, 'expected: c.value() is None (and c.count == 0 when reported)')

    def test_state_round_trips_through_json(self) -> None:
        a = self.make()
        obs = self.observations(self.window * 3)
        for o in obs[: self.window + 1]:
            a.update(o)
        b = self.make()
        b.load_state_dict(json.loads(json.dumps(a.state_dict(), allow_nan=False)))
        expect(b.value() == a.value() and b.count == a.count, 'expected: b.value() == a.value() and b.count == a.count')
        for o in obs[self.window + 1 :]:
            a.update(o)
            b.update(o)
            expect(a.value() == b.value(), 'expected: a.value() == b.value()')

    def test_rejects_bad_window(self) -> None:
        for window, min_samples in ((1, 1), (5, 6), (0, 2)):
            try:
                self.collector_class(window=window, min_samples=min_samples)
            except DebaConfigError:
                continue
            raise AssertionError(f"window={window}, min_samples={min_samples} should raise DebaConfigError")


def random_signals(rng: np.random.Generator, initial_batch: int = 32) -> PolicySignals:
    """Policy inputs across regimes: noise scale absent, small or huge; throughput rising or falling."""
    noise = [None, float(10 ** rng.uniform(0, 5))][int(rng.integers(0, 2))]
    low = None if noise is None else noise * float(rng.uniform(0.2, 1.0))
    rising = bool(rng.integers(0, 2))
    table = {b: (1000.0 * (b / 16) ** (0.5 if rising else -0.3)) for b in (16, 32, 64, 128, 256, 512, 1024, 2048)}
    progress = [None, float(rng.random())][int(rng.integers(0, 2))]
    return PolicySignals(initial_batch=initial_batch, noise_scale=noise, noise_scale_low=low,
                         throughput=ThroughputModel(table), progress=progress)


class PolicyConformance:
    """The contract every :class:`BatchPolicy` meets (docs/design.md rules 1, 4, 5). Set ``policy_class``."""

    policy_class: ClassVar[type[BatchPolicy]]
    profile_name: ClassVar[str] = "generic"
    options: ClassVar[dict[str, Any]] = {}

    def make(self) -> BatchPolicy:
        return self.policy_class(load_profile(self.profile_name), **self.options)

    def _cases(self, n: int = 300, seed: int = 0):
        rng = np.random.default_rng(seed)
        p = load_profile(self.profile_name)
        grid = list(range(p.min_batch, p.max_batch + 1, p.granularity))
        for _ in range(n):
            yield int(rng.choice(grid)), float(rng.random()), random_signals(rng, p.initial_batch)

    def test_is_a_policy_with_a_name(self) -> None:
        expect(issubclass(self.policy_class, BatchPolicy), "expected: a subclass of deba.BatchPolicy")
        expect(isinstance(self.policy_class.name, str) and self.policy_class.name, "expected: a non-empty name")

    def test_moves_stay_on_the_grid_within_bounds_and_bounded(self) -> None:
        pol, p = self.make(), load_profile(self.profile_name)
        for batch, score, signals in self._cases():
            m = pol.propose(batch, score, signals)
            expect(isinstance(m, Move) and m.action in ("grow", "shrink", "hold"), f"expected a Move, got {m!r}")
            b = m.batch_size
            expect(p.min_batch <= b <= p.max_batch and b % p.granularity == 0, f"rule 1: {b} from {batch}")
            expect((m.action == "grow") == (b > batch) and (m.action == "shrink") == (b < batch),
                   f"the action says where it went: {m.action} {batch} -> {b}")
            g = p.granularity
            if b > batch:  # rule 5: at most growth_factor up, rounded outward to the grid (or one grid step)
                expect(b <= max(batch + g, math.ceil(batch * p.growth_factor / g - 1e-9) * g), f"rule 5: {batch} -> {b}")
            if b < batch:
                expect(b >= min(batch - g, math.floor(batch / p.shrink_factor / g + 1e-9) * g), f"rule 5: {batch} -> {b}")

    def test_monotone_in_the_score(self) -> None:
        pol = self.make()
        for batch, _, signals in self._cases(100, seed=1):
            sizes = [pol.propose(batch, s, signals).batch_size for s in np.linspace(0.0, 1.0, 11)]
            expect(sizes == sorted(sizes), f"rule 4: a higher score never gives a smaller batch ({sizes})")

    def test_deterministic_and_state_round_trips_through_json(self) -> None:
        a = self.make()
        b = self.make()
        b.load_state_dict(json.loads(json.dumps(a.state_dict(), allow_nan=False)))
        for batch, score, signals in self._cases(50, seed=2):
            expect(a.propose(batch, score, signals) == b.propose(batch, score, signals), "expected: same inputs, same move")

    def test_rejects_unknown_option(self) -> None:
        try:
            self.policy_class(load_profile(self.profile_name), not_an_option_of_anyone=1, **self.options)
        except DebaConfigError:
            return
        raise AssertionError("an unknown option should raise DebaConfigError")


# Adapters ---------------------------------------------------------------------------------------


@dataclass
class ConformanceCase:
    """The run every front end trains in :class:`AdapterConformance`: a small MLP on a fixed data
    set, momentum SGD, no LR schedule, fp32, profile ``"mlp"`` and a fixed throughput table, so
    decisions depend on the observations only.

    Attributes:
        inputs, targets: the training data (``len(targets)`` samples).
        batch_size: the starting batch ``B0``.
        epochs: the budget, in (equivalent) epochs.
        lr, momentum: the optimizer's.
        throughput: the fixed table (batch -> samples/s).
        crash_after: the step at which a checkpoint is written before the run is killed, in the
            resume test.
    """

    inputs: Any
    targets: Any
    batch_size: int = 16
    epochs: int = 3
    lr: float = 0.05
    momentum: float = 0.9
    throughput: dict[int, float] | None = None
    crash_after: int = 30
    seed: int = 0

    def model(self) -> Any:
        """A fresh model, always with the same initial weights."""
        import torch

        torch.manual_seed(self.seed)
        return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(self.inputs.shape[1], 32), torch.nn.ReLU(),
                                   torch.nn.Linear(32, int(self.targets.max()) + 1))

    def optimizer(self, params: Any) -> Any:
        """The optimizer every front end uses."""
        import torch

        return torch.optim.SGD(params, lr=self.lr, momentum=self.momentum)

    def options(self) -> Any:
        """DEBA's settings for the case (one :class:`deba.RunOptions`)."""
        from deba.training.options import RunOptions

        return RunOptions(profile="mlp", throughput=self.throughput, probe_throughput=False)

    @staticmethod
    def default() -> "ConformanceCase":
        """The standard case: 768 samples of 16 features, 4 classes, a table where growing pays."""
        import torch

        g = torch.Generator().manual_seed(1)
        x = torch.randn(768, 16, generator=g)
        y = (x @ torch.randn(16, 4, generator=g)).argmax(1)
        return ConformanceCase(x, y, throughput={b: 300.0 * b ** 0.8 for b in (8, 16, 24, 32, 40, 48, 56, 64, 128)})


@dataclass
class AdapterRun:
    """What one front end's run produced, for :class:`AdapterConformance`.

    Attributes:
        steps: ``(batch_size, loss)`` of every optimizer step, in order (a resumed run: the
            steps after the checkpoint).
        state: the ``deba_state.json`` document at the end of the run (``DebaRun.state_document``).
    """

    steps: list[tuple[int, float]]
    state: dict[str, Any] | None = None
    #: (batch size decided at the step, epoch the step trained in) per step, where the driver records it.
    decided: list[tuple[int, int]] = field(default_factory=list)


class AdapterConformance:
    """Checks a front end against ``deba.fit``: same trajectory, losses, budget end, state, resume.

    Subclass it and implement :meth:`train` for your front end: train the
    :class:`ConformanceCase` (its model, optimizer, data, :meth:`ConformanceCase.options`, a
    budget of ``case.epochs`` epochs) in ``workdir``. With ``crash_after=k`` write a checkpoint
    after step ``k`` and stop the run abruptly during step ``k + 1``, as a kill would (raise
    :class:`Crash`); with ``resume=True`` continue from that checkpoint in a fresh model and
    optimizer, and return the steps after it. The reference is ``deba.fit`` on the same case.
    """

    #: Batches the front end's loader draws ahead of the step it trains (Lightning's fetcher and
    #: accelerate's loader: 1). The reference is then :class:`ControllerFrontEnd` drawing as many.
    loader_prefetch: ClassVar[int] = 0

    #: Relative tolerance on per-step losses (the same float operations give identical values;
    #: a front end that sums or orders them differently may part at the last bits).
    rtol: ClassVar[float] = 1e-5

    def train(self, case: ConformanceCase, workdir: Any, *, crash_after: int | None = None,
              resume: bool = False) -> AdapterRun:
        raise NotImplementedError("implement train(case, workdir, crash_after=..., resume=...) for your front end")

    def case(self) -> ConformanceCase:
        """The case to train (override to change sizes)."""
        return ConformanceCase.default()

    def _reference(self, case: ConformanceCase, workdir: Any) -> AdapterRun:
        if self.loader_prefetch:
            ref = ControllerFrontEnd()
            ref.loader_prefetch = self.loader_prefetch
            return ref.train(case, workdir)
        return FitFrontEnd().train(case, workdir)

    def _compare(self, mine: AdapterRun, ref: AdapterRun, what: str) -> None:
        expect(len(mine.steps) == len(ref.steps),
               f"{what}: {len(mine.steps)} steps, deba.fit {len(ref.steps)} (the budget must end at the same step)")
        for i, ((b, loss), (rb, rloss)) in enumerate(zip(mine.steps, ref.steps)):
            expect(b == rb, f"{what}: step {i + 1} trained {b} samples, deba.fit {rb}")
            expect(math.isclose(loss, rloss, rel_tol=self.rtol, abs_tol=1e-7),
                   f"{what}: step {i + 1} loss {loss!r}, deba.fit {rloss!r}")

    def test_same_trajectory_losses_and_budget_end_as_fit(self, tmp_path: Any) -> None:
        case = self.case()
        ref = self._reference(case, tmp_path / "fit")
        expect(len({b for b, _ in ref.steps}) > 1, "the case must change the batch size (check the table)")
        self._compare(self.train(case, tmp_path / "mine"), ref, "trajectory")

    def test_same_state_document_as_fit(self, tmp_path: Any) -> None:
        case = self.case()
        ref, mine = self._reference(case, tmp_path / "fit"), self.train(case, tmp_path / "mine")
        expect(mine.state is not None, "train() must return the run's state document")
        for key in ("format", "version", "profile"):
            expect(mine.state.get(key) == ref.state.get(key), f"state[{key!r}] differs from deba.fit's")
        expect(_decisions(mine.state) == _decisions(ref.state), "the scheduler's state differs from deba.fit's")
        for key in ("steps", "samples", "lr_factor"):
            expect(mine.state["engine"][key] == ref.state["engine"][key],
                   f"engine {key}: {mine.state['engine'][key]!r}, deba.fit {ref.state['engine'][key]!r}")
        expect(math.isclose(mine.state["engine"]["equivalent_samples"], ref.state["engine"]["equivalent_samples"],
                            rel_tol=1e-9), "engine equivalent_samples differ from deba.fit's")
        for key in ("epoch", "position", "batch_size", "seed"):
            expect(mine.state["sampler"][key] == ref.state["sampler"][key], f"sampler {key} differs from deba.fit's")

    def test_resumes_exactly_from_a_mid_run_checkpoint(self, tmp_path: Any) -> None:
        case = self.case()
        whole = self.train(case, tmp_path / "whole")
        k = case.crash_after
        try:
            self.train(case, tmp_path / "cut", crash_after=k)
        except Crash:
            pass
        resumed = self.train(case, tmp_path / "cut", resume=True)
        self._compare(resumed, AdapterRun(whole.steps[k:]), "resumed run")


class Crash(RuntimeError):
    """Raised by a front end's test driver to stop a run abruptly (:class:`AdapterConformance`)."""


def _decisions(state: dict[str, Any]) -> Any:
    """The part of a scheduler state that decides (no measured timings)."""
    sched = dict(state["scheduler"])
    for key in ("throughput",):
        sched.pop(key, None)
    return json.loads(json.dumps(sched))


class FitFrontEnd(AdapterConformance):
    """``deba.fit`` as a front end (the reference)."""

    def train(self, case: ConformanceCase, workdir: Any, *, crash_after: int | None = None,
              resume: bool = False) -> AdapterRun:
        from deba.training.callbacks import Callback
        from deba.training.fit import fit

        model = case.model()
        steps: list[tuple[int, float]] = []

        class Record(Callback):
            def on_step_end(self, record: dict[str, Any]) -> None:
                if crash_after is not None and record["step"] > crash_after:
                    raise Crash(f"killed in step {record['step']}")
                steps.append((record["batch_size"], record["loss"]))

        res = fit(model, (case.inputs, case.targets), optimizer=case.optimizer(model.parameters()),
                  loss_fn=_cross_entropy, batch_size=case.batch_size, epochs=case.epochs, progress=False,
                  tensorboard=False, seed=case.seed, options=case.options(), callbacks=[Record()],
                  checkpoint_dir=str(workdir), checkpoint_every=crash_after, resume=resume, log_dir=str(workdir))
        return AdapterRun(steps, json.loads(json.dumps(res.state)))


def _cross_entropy(out: Any, y: Any) -> Any:
    import torch

    return torch.nn.functional.cross_entropy(out, y)


class ControllerFrontEnd(AdapterConformance):
    """``DebaController`` in a manual-mode loop, drawing ``loader_prefetch`` batches ahead.

    With ``loader_prefetch = 0`` it is a front end like any other (it must match ``deba.fit``);
    with more it is the reference for front ends whose loader draws ahead (Lightning's fetcher,
    accelerate's loader): a decision then reaches the batches drawn after it, so the trajectory
    lags ``deba.fit``'s by that many batches, and everything else is the same code.
    """

    def train(self, case: ConformanceCase, workdir: Any, *, crash_after: int | None = None,
              resume: bool = False) -> AdapterRun:
        import collections

        import torch

        from deba.training.controller import DebaController
        from deba.training.sampler import AdaptiveBatchSampler

        workdir.mkdir(parents=True, exist_ok=True)
        model = case.model()
        opt = case.optimizer(model.parameters())
        data = torch.utils.data.TensorDataset(case.inputs, case.targets)
        sampler = AdaptiveBatchSampler(data, batch_size=case.batch_size, seed=case.seed)
        loader = torch.utils.data.DataLoader(data, batch_sampler=sampler)
        ctl = DebaController(model, opt, sampler=sampler, max_samples=case.epochs * len(data), options=case.options(),
                             seed=case.seed)
        if resume:
            saved = torch.load(workdir / "ckpt.pt", weights_only=True)
            model.load_state_dict(saved["model"])
            opt.load_state_dict(saved["optimizer"])
            ctl.load_state_dict(json.loads((workdir / "deba.json").read_text()))
        steps: list[tuple[int, float]] = []
        decided: list[tuple[int, int]] = []

        def loss_of(batch: Any) -> Any:
            return torch.nn.functional.cross_entropy(model(batch[0]), batch[1])

        while not ctl.budget_spent():
            it, ahead = iter(loader), collections.deque()
            for batch in it:
                ahead.append(batch)
                if len(ahead) <= self.loader_prefetch:
                    continue
                if not self._step(ctl, opt, ahead.popleft(), loss_of, sampler, steps, decided, crash_after, model, workdir):
                    break
            else:
                while ahead and self._step(ctl, opt, ahead.popleft(), loss_of, sampler, steps, decided, crash_after,
                                           model, workdir):
                    pass
            if sampler.position >= sampler.num_samples:
                ctl.end_epoch()
                sampler.set_epoch(sampler.epoch + 1)
        return AdapterRun(steps, json.loads(json.dumps(ctl.state_dict())), decided)

    @staticmethod
    def _step(ctl: Any, opt: Any, batch: Any, loss_of: Any, sampler: Any, steps: list, decided: list,
              crash_after: int | None, model: Any, workdir: Any) -> bool:
        """One step; ``False`` once the budget is spent."""
        import torch

        if crash_after is not None and ctl.engine.steps >= crash_after:
            raise Crash("killed")
        opt.zero_grad()
        ctl.step(batch, loss_of, epoch=sampler.epoch)
        if ctl.step_ok:
            opt.step()
        ctl.engine.after_optimizer_step()
        steps.append((len(batch[1]), ctl.last_outcome.obs.loss))
        decided.append((ctl.last_outcome.decision.batch_size, sampler.epoch))
        if crash_after is not None and ctl.engine.steps == crash_after:
            torch.save({"model": model.state_dict(), "optimizer": opt.state_dict()}, workdir / "ckpt.pt")
            (workdir / "deba.json").write_text(json.dumps(ctl.state_dict()))
        return not ctl.budget_spent()

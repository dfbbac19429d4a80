"""Manual mode: DEBA inside a training loop you keep, on the shared run object."""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

from deba.control.decision import Decision
from deba.control.scoring import ScoringStrategy
from deba.errors import DebaConfigError
from deba.profiles.schema import ArchitectureProfile
from deba.training.options import RunOptions, check_positive_int, merge_options
from deba.training.run import DebaRun
from deba.training.sampler import AdaptiveBatchSampler
from deba.training.step import StepOutcome

__all__ = ["DebaController"]


class DebaController:
    """Manual mode: DEBA inside a training loop you keep.

    Call :meth:`after_backward` after ``loss.backward()``; it probes the gradient, lets the
    scheduler decide, sets the LR factor that the next ``optimizer.step()`` applies (composing with
    your LR scheduler) and resizes the sampler. Skip ``optimizer.step()`` when :attr:`step_ok` is
    false (a non-finite loss or gradient; the gradients are cleared then, so a step that runs
    anyway changes nothing). Non-finite steps in a row stop the run with
    :class:`deba.NonFiniteTraining`, as in ``deba.fit``.

    Manual mode cannot fork your loop, so it runs no start-up throughput probe: give a
    ``throughput`` table (``RunOptions``) or let it measure the sizes it trains at.

    Args:
        model: the model being trained.
        optimizer: its optimizer.
        sampler: the :class:`deba.AdaptiveBatchSampler` feeding the loader (optional).
        profile: a profile, a name, a file, or ``"auto"`` (detect from ``model``).
        strategy: a strategy instance or registered name.
        seed: seed of the gradient sketch.
        batch_size: your batch, the starting batch ``B0`` (default: the sampler's batch size, else
            ``profile.initial_batch``); your LR belongs to it.
        max_samples: the run's length in samples, when known: the profile's timing is then
            shares of it, and :meth:`budget_spent` says when it is spent.
        options: DEBA's settings as one :class:`deba.RunOptions` instead of ``profile`` and
            ``strategy`` (and everything else it holds).

    Example:
        >>> import torch, deba
        >>> data = torch.utils.data.TensorDataset(torch.randn(64, 4), torch.randint(0, 2, (64,)))
        >>> model = torch.nn.Linear(4, 2)
        >>> opt = torch.optim.SGD(model.parameters(), lr=0.1)
        >>> sampler = deba.AdaptiveBatchSampler(data, batch_size=16)
        >>> loader = torch.utils.data.DataLoader(data, batch_sampler=sampler)
        >>> ctl = deba.DebaController(model, opt, sampler=sampler, profile="mlp")
        >>> for x, y in loader:
        ...     opt.zero_grad()
        ...     loss = torch.nn.functional.cross_entropy(model(x), y)
        ...     loss.backward()
        ...     decision = ctl.after_backward(loss, batch_size=len(y))
        ...     if ctl.step_ok:
        ...         opt.step()
        >>> ctl.scheduler.step
        4
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        *,
        sampler: AdaptiveBatchSampler | None = None,
        profile: ArchitectureProfile | str = "auto",
        strategy: ScoringStrategy | str = "equal-weight",
        seed: int = 0,
        batch_size: int | None = None,
        max_samples: int | None = None,
        options: RunOptions | None = None,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise DebaConfigError.single("model", type(model).__name__, "must be an nn.Module")
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise DebaConfigError.single("optimizer", type(optimizer).__name__, "must be a torch.optim.Optimizer")
        if sampler is not None and not isinstance(sampler, AdaptiveBatchSampler):
            raise DebaConfigError.single("sampler", type(sampler).__name__, "must be a deba.AdaptiveBatchSampler")
        check_positive_int(max_samples, "max_samples")
        start = batch_size if batch_size is not None else (sampler.batch_size if sampler is not None else None)
        opts = merge_options(options, {"profile": profile, "strategy": strategy})
        if opts.probe_throughput:
            raise DebaConfigError.single("probe_throughput", True, "is not available in manual mode: DebaController "
                                         "cannot run passes of its own before your loop starts",
                                         remedy="Give a throughput table (RunOptions(throughput=...)) or let it "
                                                "measure the sizes your loop trains at.")
        if opts.budget == "equivalent" and max_samples is None:
            raise DebaConfigError.single("budget", "equivalent", "needs max_samples: the run's length in samples")
        self.run = DebaRun(opts, model, initial_batch=start, optimizer=optimizer,
                           initial_field="batch_size" if batch_size is not None else "sampler.batch_size")
        if max_samples is not None:
            self.run.plan(max_samples)
        self.profile, self.scheduler = self.run.profile, self.run.scheduler
        self.sampler = sampler
        self.engine = self.run.attach(model, optimizer, sampler=sampler, seed=seed)
        self.probe, self.lr = self.engine.probe, self.engine.coupler
        self.step_ok = True
        self.last_outcome: StepOutcome | None = None  # the latest step's observation and decision

    @property
    def batch_size(self) -> int:
        """The batch size the scheduler wants now."""
        return self.scheduler.batch_size

    def budget_spent(self) -> bool:
        """Whether ``max_samples`` is spent (counted in equivalent samples where the budget is)."""
        return self.run.budget_spent()

    def after_backward(self, loss: float | torch.Tensor, batch_size: int, **fields: Any) -> Decision:
        """Observe the step whose gradients are in ``.grad``; returns the decision.

        Raises:
            NonFiniteTraining: too many non-finite steps in a row (``nonfinite_abort``).
        """
        out = self.engine.observe(loss, batch_size, **fields)
        self.step_ok, self.last_outcome = out.finite, out
        self.run.check_nonfinite()
        return out.decision

    def step(self, batch: Any, forward_loss: Callable[[Any], torch.Tensor], *, max_micro_batch: int | None = None,
             epoch: int | None = None) -> Decision:
        """Let DEBA run forward and backward of ``batch``: the manual mode with everything ``fit`` has.

        ``forward_loss(micro_batch)`` returns the mean loss of any slice of ``batch`` (DEBA slices it
        into micro-batches under ``max_micro_batch``, and on noise measurement steps into halves).
        The gradients are in ``.grad`` afterwards; call ``optimizer.step()`` when :attr:`step_ok`.
        Without this, :meth:`after_backward` can only use the micro-batch or rank estimates that
        happen to exist.

        Example:
            >>> import torch, deba
            >>> model = torch.nn.Linear(4, 2)
            >>> opt = torch.optim.SGD(model.parameters(), lr=0.1)
            >>> ctl = deba.DebaController(model, opt, profile="mlp", batch_size=16)
            >>> x, y = torch.randn(16, 4), torch.randint(0, 2, (16,))
            >>> d = ctl.step((x, y), lambda b: torch.nn.functional.cross_entropy(model(b[0]), b[1]))
            >>> ctl.step_ok, ctl.engine.samples
            (True, 16)
        """
        if not callable(forward_loss):
            raise DebaConfigError.single("forward_loss", forward_loss, "must be callable as forward_loss(micro_batch)")
        if max_micro_batch is not None:
            self.engine.cap_memory(max_micro_batch)
        out = self.engine.run(batch, epoch=epoch, forward_loss=forward_loss)
        self.step_ok, self.last_outcome = out.finite, out
        self.run.check_nonfinite()
        return out.decision

    def end_epoch(self) -> Decision:
        """Close an epoch (this is when ``interval: epoch`` profiles decide)."""
        return self.engine.end_epoch()

    def state_dict(self) -> dict[str, Any]:
        """The ``deba_state.json`` document of the run (scheduler, engine, sampler...; JSON-able)."""
        return self.run.state_document()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` (also the older ``{"scheduler", "engine", "sampler"}`` form)."""
        if not isinstance(state, dict) or "scheduler" not in state or "engine" not in state:
            raise DebaConfigError.single("state", type(state).__name__, "must be a DebaController.state_dict()")
        if "format" not in state:  # the form before the shared state document
            state = {**state, "profile": self.profile.to_dict()}
        self.run.restore(state, field="profile")
